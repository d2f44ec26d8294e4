//! Internal events of processing: a record's handlers run, a record processed and its points
//! written, and a file read in part.

use std::time::Instant;

use super::Stats;
use super::short;
use crate::decode::{ChangeEvent, DeliveryFormat, DeliveryMeta};
use crate::handlers::Report;
use crate::pipeline::answer::Outcome;
use crate::sink::Delivered;

/// A file read in part: how many records, with what outcomes.
pub struct FileRead<'a> {
    pub status: u16,
    pub object: &'a str,
    pub records: usize,
    pub done: usize,
    pub transient: usize,
    pub permanent: usize,
    pub unread: Option<&'a str>,
    pub started: Instant,
}

impl FileRead<'_> {
    pub fn emit(&self, stats: &Stats) {
        macro_rules! line {
            ($level:ident, $msg:expr) => {
                tracing::$level!(
                    status = self.status,
                    object = self.object,
                    records = self.records,
                    done = self.done,
                    transient = self.transient,
                    permanent = self.permanent,
                    unread = self.unread.unwrap_or(""),
                    elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                    $msg
                )
            };
        }
        if self.status == 204 {
            line!(info, "file processed");
        } else {
            line!(warn, "file processed with failures");
        }
        stats.count(if self.status == 204 { "ok" } else { "failed" }, "storage_object");
    }
}

/// One record's handlers have run (before its points are written, so that the function's own
/// metrics written with them already count it).
pub struct Dispatched<'a> {
    pub format: DeliveryFormat,
    pub outcome: &'a Outcome,
    pub report: &'a Report,
}

impl Dispatched<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::debug!(
            format = self.format.as_str(),
            outcome = self.outcome.label(),
            handlers = self.report.results.len(),
            "event dispatched"
        );
        stats.with(|c| {
            *c.events.entry((self.format.as_str(), self.outcome.label())).or_default() += 1;
            for r in &self.report.results {
                let e = match c.durations.get_mut(r.handler.as_str()) {
                    Some(e) => e,
                    None => c.durations.entry(r.handler.clone()).or_default(),
                };
                e.0 += r.elapsed.as_secs_f64();
                e.1 += 1;
            }
        });
    }
}

/// One processed record: its handlers, its points and how they were written. One line per
/// record; never includes payload variables.
pub struct Processed<'a> {
    pub status: u16,
    pub format: DeliveryFormat,
    pub meta: &'a DeliveryMeta,
    pub item: Option<&'a str>,
    pub event: &'a ChangeEvent,
    pub report: &'a Report,
    pub outcome: &'a Outcome,
    /// Points sent for this record (failure gauges and self-metrics included).
    pub points: usize,
    /// What the label guard changed in its points.
    pub guarded: &'a crate::pipeline::labels::Guarded,
    /// What the sink did with the delivery's points (calls made, rejections, failures).
    pub sink: &'a Delivered,
    pub started: Instant,
}

impl Processed<'_> {
    pub fn emit(&self, stats: &Stats) {
        stats.with(|c| {
            for (_, r) in &self.sink.rejected {
                *c.rejected.entry(r.as_str()).or_default() += 1;
            }
        });
        let success = (200..300).contains(&self.status);
        let info = success && *self.outcome == Outcome::Done;
        if (info && !tracing::enabled!(tracing::Level::INFO)) || !tracing::enabled!(tracing::Level::WARN) {
            // the line would not be written: its fields are not built (a replay logs at WARN)
            return;
        }
        let failures = crate::error::grouped(
            self.report.failures().map(|(h, e)| (h, format!("{} ({})", e.log_text(), e.class().as_str()))),
        );
        let handlers: Vec<&str> = self.report.results.iter().map(|r| r.handler.as_str()).collect();
        let d = self.sink;
        let rejected = d.rejected.iter().map(|(m, r)| format!("{m}: {}", r.as_str())).collect::<Vec<_>>().join("; ");
        let payload = self.event.payload.as_ref();
        macro_rules! line {
            ($level:ident, $msg:expr) => {
                tracing::$level!(
                    status = self.status,
                    format = self.format.as_str(),
                    message_id = self.meta.message_id.as_deref().unwrap_or(""),
                    ce_id = self.meta.ce_id.as_deref().unwrap_or(""),
                    delivery_attempt = self.meta.delivery_attempt.unwrap_or(0),
                    item = self.item.unwrap_or(""),
                    datastream_uuid = self.event.uuid.as_deref().unwrap_or(""),
                    pipeline_uuid = payload.and_then(|p| p.pipeline_uuid.as_deref()).map(short).unwrap_or_default(),
                    pipeline_status = payload.and_then(|p| p.status.as_deref()).map(short).unwrap_or_default(),
                    handlers = handlers.join(","),
                    points = self.points,
                    tables_checked = self.report.tables_checked,
                    queries = self.report.queries_run,
                    failures = failures.as_str(),
                    sink_error = d.failed.as_ref().map(|e| e.message()).unwrap_or(""),
                    sink_calls = d.calls,
                    points_rejected = rejected.as_str(),
                    points_unwritten = d.unwritten.len(),
                    labels_truncated = crate::pipeline::labels::Guarded::describe(&self.guarded.truncated),
                    labels_folded = crate::pipeline::labels::Guarded::describe(&self.guarded.folded),
                    elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                    $msg
                )
            };
        }
        if info {
            if handlers.is_empty() {
                line!(info, "no handler matched the event");
            } else {
                line!(info, "event processed");
            }
        } else if self.status == 503 {
            line!(warn, "event failed, retry expected");
        } else if success {
            line!(warn, "event failed permanently: acknowledged (ACK_PERMANENT_ERRORS)");
        } else {
            line!(warn, "event failed permanently");
        }
    }
}
