//! Internal events of records set aside or cut short on their way to the handlers: duplicates
//! and de-duplication conflicts, skipped history records, records without a row change, and
//! deliveries cancelled at their deadline.

use std::time::Duration;

use super::Stats;
use super::short;
use crate::decode::{ChangeEvent, DeliveryFormat};

/// A record answered from the de-duplication window (or still running elsewhere).
pub struct Duplicate {
    pub status: u16,
    pub format: DeliveryFormat,
    /// The first attempt was still running when this one arrived.
    pub waited: bool,
}

impl Duplicate {
    pub fn emit(&self, stats: &Stats) {
        match (self.waited, self.status) {
            (false, _) => tracing::info!(
                status = self.status,
                format = self.format.as_str(),
                "duplicate event: answered as before"
            ),
            (true, 503) => tracing::warn!(status = 503, "duplicate of an event whose first attempt did not finish"),
            (true, _) => {
                tracing::info!(status = self.status, "duplicate of an event in progress: answered as the first attempt")
            }
        }
        stats.count("duplicate", self.format.as_str());
    }
}

/// A record whose id is in the de-duplication window under other content: not a duplicate
/// (a duplicate is the same delivery), so it is processed; logged, because either the source
/// reused an id or someone sent a record under an id already seen.
pub struct DedupConflict<'a> {
    pub format: DeliveryFormat,
    pub event: &'a ChangeEvent,
    pub item: Option<&'a str>,
}

impl DedupConflict<'_> {
    pub fn emit(&self, _stats: &Stats) {
        let payload = self.event.payload.as_ref();
        tracing::warn!(
            format = self.format.as_str(),
            item = self.item.unwrap_or(""),
            datastream_uuid = self.event.uuid.as_deref().unwrap_or(""),
            pipeline_status = payload.and_then(|p| p.status.as_deref()).map(short).unwrap_or_default(),
            "de-duplication conflict: another record was seen under this id; processed as a new record"
        );
    }
}

/// A history record (backfill, snapshot, full load) skipped: it re-reads a row that already
/// existed, so it is not a change (`PROCESS_HISTORY` processes such records instead).
pub struct HistorySkipped<'a> {
    pub format: DeliveryFormat,
    pub event: &'a ChangeEvent,
    pub item: Option<&'a str>,
}

impl HistorySkipped<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::info!(
            status = 204,
            format = self.format.as_str(),
            item = self.item.unwrap_or(""),
            datastream_uuid = self.event.uuid.as_deref().unwrap_or(""),
            read_method = self.event.read_method.as_deref().map(short).unwrap_or_default(),
            table = self.event.table().map(short).unwrap_or_default(),
            "history record skipped: it re-reads an existing row (set PROCESS_HISTORY=true to process it)"
        );
        stats.count("history", self.format.as_str());
    }
}

/// A record ignored because it reports no row change (an AWS DMS control record).
pub struct Ignored<'a> {
    pub format: DeliveryFormat,
    pub item: Option<&'a str>,
    pub reason: &'a str,
}

impl Ignored<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::info!(
            status = 204,
            format = self.format.as_str(),
            item = self.item.unwrap_or(""),
            reason = self.reason,
            "record ignored: it reports no row change"
        );
        stats.count("ignored", self.format.as_str());
    }
}

/// A delivery whose work was cancelled at its deadline.
pub struct DeadlineExceeded {
    pub status: u16,
    pub deadline: Duration,
    pub format: DeliveryFormat,
    pub records: usize,
}

impl DeadlineExceeded {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(
            status = self.status,
            deadline_secs = self.deadline.as_secs_f64(),
            records = self.records,
            "event deadline exceeded: work cancelled"
        );
        for _ in 0..self.records {
            stats.count("deadline_exceeded", self.format.as_str());
        }
    }
}
