//! Per-record processing: the claim handlers and lifecycle profiles of one record, the release
//! of facts whose points were not written, the time of a history record, and the key
//! (id and content digest) under which the de-duplication window remembers a record.

use std::time::Instant;

use super::Pipeline;
use super::answer::{Failure, Outcome};
use crate::decode::{ChangeEvent, DeliveryMeta};
use crate::facts::Reservation;
use crate::handlers::{Report, builtin::FAILURE_METRIC};

impl Pipeline {
    /// Claim handlers and lifecycle profiles of one record, run concurrently; their results
    /// and points in one report, and the facts the lifecycle reserved.
    /// Handlers name row fields `payload.<column>`; the report names them where the delivered
    /// record has its row ([`crate::handlers::HandlerError::name_row`]).
    pub(super) async fn dispatch(&self, event: &ChangeEvent) -> (Report, Vec<Reservation>) {
        let (mut report, reserved) = self.run_handlers(event).await;
        if let Some(row) = event.payload.as_ref().filter(|r| r.path != crate::decode::change::PAYLOAD) {
            for r in &mut report.results {
                if let Err(e) = &mut r.result {
                    e.name_row(row.path);
                }
            }
        }
        (report, reserved)
    }

    async fn run_handlers(&self, event: &ChangeEvent) -> (Report, Vec<Reservation>) {
        let claims = self.dispatcher.dispatch(event, self.warehouse.as_ref());
        let Some(parts) = self.lifecycle.as_ref().filter(|l| l.lifecycle.matches(event)) else {
            return (claims.await, Vec::new());
        };
        let started = Instant::now();
        let name = parts.lifecycle.table_of(event).map(|(p, _)| p.name.as_str()).unwrap_or("lookup");
        let lifecycle = parts.lifecycle.derive(event, parts.facts.as_ref(), chrono::Utc::now());
        let (mut report, derived) = futures_util::future::join(claims, lifecycle).await;
        let handler = format!("lifecycle/{name}");
        let result = match derived {
            Ok(d) => {
                let n = d.points.len();
                // the failure gauges of the claim handlers stay last
                let at = report.points.iter().position(|p| p.name == FAILURE_METRIC).unwrap_or(report.points.len());
                report.points.splice(at..at, d.points);
                report.results.push(crate::handlers::dispatch::HandlerResult {
                    handler,
                    result: Ok(n),
                    elapsed: started.elapsed(),
                });
                return (report, d.reserved);
            }
            Err(e) => e,
        };
        report.points.push(crate::handlers::builtin::failure_gauge(
            &handler,
            result.class(),
            chrono::Utc::now(),
            &self.dispatcher.projects().metric,
        ));
        report.results.push(crate::handlers::dispatch::HandlerResult {
            handler,
            result: Err(result),
            elapsed: started.elapsed(),
        });
        (report, Vec::new())
    }

    pub(super) async fn release(&self, facts: &[Reservation]) {
        if let Some(parts) = &self.lifecycle {
            for f in facts {
                if let Err(e) = crate::facts::release(parts.facts.as_ref(), f).await {
                    tracing::warn!(error = %e, "a fact whose points were not written could not be released");
                }
            }
        }
    }

    /// A processed history record is timed by its row (the first non-null of
    /// `history_time_columns`), not by the time of the read, which is when the backfill ran.
    pub(super) fn history_time(&self, event: &mut ChangeEvent) {
        if let Some(t) = self.row_time(event) {
            event.source_timestamp = t;
        }
    }

    /// The first non-null of `history_time_columns` in the record's row.
    pub(super) fn row_time(&self, event: &ChangeEvent) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        let row = &event.payload.as_ref()?.row;
        self.config.history_time_columns.iter().find_map(|c| {
            row.get(c).filter(|v| !v.is_null()).and_then(|v| crate::decode::datastream::parse_timestamp(v, c).ok())
        })
    }
}

/// The outcome of a dispatched record, before its points are written.
pub(super) fn report_outcome(report: &Report) -> Outcome {
    let failures: Vec<Failure> =
        report.failures().map(|(h, e)| Failure { handler: h.to_string(), error: e.clone() }).collect();
    if failures.is_empty() {
        return Outcome::Done;
    }
    let transient = failures.iter().any(|f| f.error.class() == crate::error::ErrorClass::Transient);
    Outcome::HandlersFailed { transient, failures }
}

/// The id of a record for de-duplication: a 128-bit hash of the Datastream uuid, else of the
/// message id (with its subscription), else of the CloudEvent source + id. The window keeps the
/// hash, never the id.
pub(super) fn dedup_id(meta: &DeliveryMeta, event: &ChangeEvent) -> Option<u128> {
    let key = |parts: &[&str]| Some(crate::facts::Key::of(parts).0);
    if let Some(u) = event.uuid.as_deref().filter(|u| !u.is_empty()) {
        return key(&["uuid", u]);
    }
    if let Some(m) = meta.message_id.as_deref().filter(|m| !m.is_empty()) {
        return key(&["msg", meta.subscription.as_deref().unwrap_or(""), m]);
    }
    match (&meta.ce_source, &meta.ce_id) {
        (Some(s), Some(i)) => key(&["ce", s, i]),
        _ => None,
    }
}

/// A 128-bit digest of what a record says: where and when the change happened and the row after
/// it (every field the handlers and profiles read). Not the id (the other half of the key), nor
/// `read_timestamp` (when the source read the change, which a re-read of the same change may
/// change). Two deliveries of the same record have the same digest; a different record under the
/// same id has another.
pub(super) fn content_digest(event: &ChangeEvent) -> u128 {
    // The bytes are gathered in one buffer per thread and hashed at once: the same digest as
    // feeding them to a streaming hasher piece by piece, at a fraction of the cost (a row is
    // hundreds of small writes).
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    fn text(b: &mut Vec<u8>, s: Option<&str>) {
        match s {
            None => b.push(0),
            Some(s) => {
                b.push(1);
                b.extend_from_slice(&(s.len() as u64).to_le_bytes());
                b.extend_from_slice(s.as_bytes());
            }
        }
    }
    BUFFER.with_borrow_mut(|b| {
        b.clear();
        let m = &event.source_metadata;
        text(b, event.stream.as_deref());
        text(b, Some(&event.source_timestamp.to_rfc3339()));
        text(b, event.object.as_deref());
        text(b, event.read_method.as_deref());
        for field in [&m.schema, &m.table, &m.change_type, &m.lsn, &m.tx_id] {
            text(b, field.as_deref());
        }
        text(b, Some(if m.is_deleted { "deleted" } else { "" }));
        text(b, Some(&m.primary_keys.join("\u{1f}")));
        match &event.payload {
            None => text(b, None),
            Some(p) => {
                text(b, Some("row"));
                // serde_json writes a map in key order: the same row gives the same bytes
                let _ = serde_json::to_writer(&mut *b, &p.row);
            }
        }
        let digest = xxhash_rust::xxh3::xxh3_128(b);
        if b.capacity() > 1 << 20 {
            // a huge row once: do not keep its buffer for the life of the thread
            *b = Vec::new();
        }
        digest
    })
}

#[cfg(test)]
mod tests;
