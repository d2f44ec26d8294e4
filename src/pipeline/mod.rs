//! The pipeline: one transport-agnostic driver per delivery.
//!
//! [`Pipeline::handle`] takes a decoded [`Delivery`] of one or more records and returns its
//! [`Answer`]. Per record: de-duplicate ([`dedup`]), dispatch to the handlers, then write the
//! points of every processed record through the sink, all within the delivery's deadline. Each
//! record gets its own [`Outcome`]; the answer of the delivery is derived from those outcomes in
//! one function ([`answer::answer`]). Every operational outcome is an internal event
//! ([`events`]) that logs and counts itself. Transports (HTTP, Lambda batches) only decode and
//! turn the answer into their own response.

pub mod answer;
pub mod config;
pub mod dedup;
pub mod events;
pub mod files;
pub mod labels;
pub mod replay;

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

pub use answer::{AckPolicy, Answer, Outcome, RecordResult, Refusal};

use crate::decode::{ChangeEvent, Delivery, DeliveryMeta};
use crate::facts::{FactStore, Reservation};
use crate::handlers::lifecycle::Lifecycle;
use crate::handlers::{Dispatcher, Report, builtin::FAILURE_METRIC};
use crate::sink::{Delivered, MetricSink, Point};
use crate::warehouse::Warehouse;
use answer::Failure;
use config::Delivery as DeliveryConfig;
use dedup::{Begin, Dedup, Ticket};
use events::Stats;

/// Everything a delivery needs, built once at startup.
pub struct Pipeline {
    pub dispatcher: Dispatcher,
    pub warehouse: Arc<dyn Warehouse>,
    pub sink: Arc<dyn MetricSink>,
    pub config: DeliveryConfig,
    lifecycle: Option<LifecycleParts>,
    /// Reads the objects of Cloud Storage notifications ([`files`]).
    storage: Option<Arc<crate::google::storage::Storage>>,
    dedup: Arc<Dedup>,
    /// Bounds the length and number of label values of every point written.
    labels: labels::LabelGuard,
    stats: Stats,
}

/// The lifecycle profiles in force and the fact store that makes their facts count once.
#[derive(Clone)]
pub struct LifecycleParts {
    pub lifecycle: Arc<Lifecycle>,
    pub facts: Arc<dyn FactStore>,
}

/// A record on its way through [`Pipeline::handle`].
enum Slot {
    /// Its outcome is known without processing (not decodable, or a replayed duplicate).
    Known(Outcome),
    /// A redelivery of a record whose first attempt runs: wait for that attempt's answer.
    Waiting(tokio::sync::watch::Receiver<Option<answer::Remembered>>),
    /// To be processed.
    Fresh(Box<ChangeEvent>, Ticket),
}

/// What processing a fresh record produced.
struct Processed {
    event: Box<ChangeEvent>,
    ticket: Ticket,
    report: Report,
    outcome: Outcome,
    /// Lifecycle facts reserved for this record: released if its points are not written.
    reserved: Vec<Reservation>,
    /// Indices of this record's points in the delivery's point list.
    points: std::ops::Range<usize>,
    /// What the label guard changed in its points.
    guarded: labels::Guarded,
}

impl Pipeline {
    pub fn new(
        dispatcher: Dispatcher,
        warehouse: Arc<dyn Warehouse>,
        sink: Arc<dyn MetricSink>,
        config: DeliveryConfig,
    ) -> Pipeline {
        let dedup = Dedup::new(config.dedup_window, config.dedup_capacity);
        let labels = labels::LabelGuard::new(config.labels);
        Pipeline {
            dispatcher,
            warehouse,
            sink,
            config,
            lifecycle: None,
            storage: None,
            dedup,
            labels,
            stats: Stats::default(),
        }
    }

    /// With lifecycle metrics (`None`: without).
    pub fn with_lifecycle(mut self, lifecycle: Option<LifecycleParts>) -> Pipeline {
        self.lifecycle = lifecycle;
        self
    }

    /// Claim handlers and lifecycle profiles of one record, run concurrently; their results
    /// and points in one report, and the facts the lifecycle reserved.
    async fn dispatch(&self, event: &ChangeEvent) -> (Report, Vec<Reservation>) {
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

    async fn release(&self, facts: &[Reservation]) {
        if let Some(parts) = &self.lifecycle {
            for f in facts {
                if let Err(e) = crate::facts::release(parts.facts.as_ref(), f).await {
                    tracing::warn!(error = %e, "a fact whose points were not written could not be released");
                }
            }
        }
    }

    pub fn policy(&self) -> AckPolicy {
        AckPolicy { ack_permanent: self.config.ack_permanent }
    }

    /// The function's own counters (internal events count into them).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A processed history record is timed by its row (the first non-null of
    /// `history_time_columns`), not by the time of the read, which is when the backfill ran.
    fn history_time(&self, event: &mut ChangeEvent) {
        if let Some(t) = self.row_time(event) {
            event.source_timestamp = t;
        }
    }

    /// The first non-null of `history_time_columns` in the record's row.
    fn row_time(&self, event: &ChangeEvent) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        let row = &event.payload.as_ref()?.row;
        self.config.history_time_columns.iter().find_map(|c| {
            row.get(c).filter(|v| !v.is_null()).and_then(|v| crate::decode::datastream::parse_timestamp(v, c).ok())
        })
    }

    /// The answer to a refused delivery, logged and counted.
    pub fn refuse(&self, refusal: &Refusal) -> Answer {
        let answer = answer::refuse(refusal, self.policy());
        match refusal {
            Refusal::Unauthorized(reason) => events::Unauthorized { reason }.emit(&self.stats),
            Refusal::Overloaded { limit } => events::Overloaded { limit: *limit }.emit(&self.stats),
            Refusal::BodiesBuffered { limit } => events::BodiesBuffered { limit: *limit }.emit(&self.stats),
            Refusal::BodyTimeout { timeout_secs } => {
                events::BodyTimeout { timeout_secs: *timeout_secs }.emit(&self.stats)
            }
            Refusal::Undecodable(error) => {
                events::Rejected { status: answer.status.as_u16(), error, format: None, meta: None, item: None }
                    .emit(&self.stats)
            }
            Refusal::Unavailable(reason) => events::SourceUnavailable { reason }.emit(&self.stats),
            Refusal::Ignored(reason) => events::NotificationIgnored { reason }.emit(&self.stats),
        }
        answer
    }

    /// Processes one delivery and answers it.
    pub async fn handle(&self, delivery: Delivery) -> Answer {
        let span = match delivery.records.as_slice() {
            [one] => tracing::info_span!(
                "event",
                message_id = delivery.meta.message_id.as_deref().unwrap_or(""),
                ce_id = delivery.meta.ce_id.as_deref().unwrap_or(""),
                datastream_uuid = one.record.as_ref().ok().and_then(|e| e.uuid.as_deref()).unwrap_or(""),
                delivery_attempt = delivery.meta.delivery_attempt.unwrap_or(0),
            ),
            _ => tracing::info_span!(
                "delivery",
                message_id = delivery.meta.message_id.as_deref().unwrap_or(""),
                ce_id = delivery.meta.ce_id.as_deref().unwrap_or(""),
                delivery_attempt = delivery.meta.delivery_attempt.unwrap_or(0),
                records = delivery.records.len(),
            ),
        };
        self.process(delivery).instrument(span).await
    }

    async fn process(&self, delivery: Delivery) -> Answer {
        let Delivery { format, meta, records } = delivery;
        let results = self.outcomes(format, &meta, records, self.config.event_deadline).await;
        answer::answer(&results, self.policy())
    }

    /// Every record's outcome: de-duplicated, dispatched and written within `deadline` (past
    /// it, the unfinished records are transient failures and their work is cancelled).
    async fn outcomes(
        &self,
        format: crate::decode::DeliveryFormat,
        meta: &DeliveryMeta,
        records: Vec<crate::decode::RecordInput>,
        deadline: std::time::Duration,
    ) -> Vec<RecordResult> {
        let started = Instant::now();
        let mut items = Vec::with_capacity(records.len());
        let mut slots = Vec::with_capacity(records.len());
        for input in records {
            slots.push(match input.record {
                Err(e) => match Outcome::of_decode_error(e) {
                    Outcome::Ignored { reason } => {
                        events::Ignored { format, item: input.item.as_deref(), reason: &reason }.emit(&self.stats);
                        Slot::Known(Outcome::Ignored { reason })
                    }
                    rejected => Slot::Known(rejected),
                },
                Ok(event) if event.is_history() && !self.config.process_history => {
                    events::HistorySkipped { format, event: &event, item: input.item.as_deref() }.emit(&self.stats);
                    Slot::Known(Outcome::History)
                }
                Ok(mut event) => {
                    if event.is_history() {
                        self.history_time(&mut event);
                    }
                    let key = match dedup_id(meta, &event) {
                        Some(id) if self.dedup.enabled() => Some(dedup::Key { id, content: content_digest(&event) }),
                        _ => None,
                    };
                    match self.dedup.begin(key) {
                        Begin::Seen(prev) => {
                            events::Duplicate { status: prev.status, format, waited: false }.emit(&self.stats);
                            Slot::Known(Outcome::Duplicate(prev))
                        }
                        Begin::Running(rx) => Slot::Waiting(rx),
                        Begin::Fresh(ticket) => {
                            if ticket.conflict() {
                                events::DedupConflict { format, event: &event, item: input.item.as_deref() }
                                    .emit(&self.stats);
                            }
                            Slot::Fresh(Box::new(event), ticket)
                        }
                    }
                }
            });
            items.push(input.item);
        }
        let mut outcomes: Vec<Option<Outcome>> = slots
            .iter_mut()
            .map(|s| match s {
                Slot::Known(o) => Some(std::mem::replace(o, Outcome::Done)),
                _ => None,
            })
            .collect();
        let work = self.run(format, meta, &items, slots, started);
        match tokio::time::timeout(deadline, work).await {
            Ok(done) => {
                for (i, o) in done {
                    outcomes[i] = Some(o);
                }
            }
            Err(_) => {
                // The work was cancelled: its tickets are dropped, so redeliveries are processed
                // anew.
                let outcome = Outcome::DeadlineExceeded { deadline_secs: deadline.as_secs_f64() };
                let pending = outcomes.iter().filter(|o| o.is_none()).count();
                let status = answer::record_answer(&outcome, self.policy()).status.as_u16();
                events::DeadlineExceeded { status, deadline, format, records: pending }.emit(&self.stats);
                for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                    *o = Some(outcome.clone());
                }
            }
        }
        let results: Vec<RecordResult> = items
            .into_iter()
            .zip(outcomes)
            .map(|(item, outcome)| RecordResult { item, outcome: outcome.unwrap_or(Outcome::InProgress) })
            .collect();
        for r in &results {
            if let Outcome::Rejected(error) = &r.outcome {
                let status = answer::record_answer(&r.outcome, self.policy()).status.as_u16();
                events::Rejected { status, error, format: Some(format), meta: Some(meta), item: r.item.as_deref() }
                    .emit(&self.stats);
            }
        }
        results
    }

    /// Waits for the duplicates, processes the fresh records and writes their points. Returns
    /// (record index, outcome) for every record that was not known before.
    async fn run(
        &self,
        format: crate::decode::DeliveryFormat,
        meta: &DeliveryMeta,
        items: &[Option<String>],
        slots: Vec<Slot>,
        started: Instant,
    ) -> Vec<(usize, Outcome)> {
        let mut out = Vec::new();
        let mut fresh = Vec::new();
        let mut waiting = Vec::new();
        for (i, slot) in slots.into_iter().enumerate() {
            match slot {
                Slot::Known(_) => {}
                Slot::Waiting(rx) => waiting.push((i, rx)),
                Slot::Fresh(event, ticket) => fresh.push((i, event, ticket)),
            }
        }
        // A redelivery while the first attempt runs waits for its outcome: a final answer, or
        // None when it failed transiently or was cancelled.
        let waits = futures_util::future::join_all(waiting.into_iter().map(|(i, mut rx)| async move {
            let _ = rx.changed().await;
            let prev = rx.borrow().clone();
            (i, prev)
        }));
        let dispatches = futures_util::future::join_all(fresh.into_iter().map(|(i, event, ticket)| async move {
            let (report, reserved) = self.dispatch(&event).await;
            (i, event, ticket, report, reserved)
        }));
        let (waited, dispatched) = futures_util::future::join(waits, dispatches).await;
        for (i, prev) in waited {
            let outcome = match prev {
                Some(prev) => Outcome::Duplicate(prev),
                None => Outcome::InProgress,
            };
            let status = answer::record_answer(&outcome, self.policy()).status.as_u16();
            events::Duplicate { status, format, waited: true }.emit(&self.stats);
            out.push((i, outcome));
        }
        // Points of every processed record, written in one sink call. A record that failed
        // transiently will be retried: only its failure gauges are written now, so that the
        // retry writes every point exactly once.
        let mut points: Vec<Point> = Vec::new();
        let mut processed: Vec<(usize, Processed)> = Vec::with_capacity(dispatched.len());
        for (i, event, ticket, mut report, mut reserved) in dispatched {
            let outcome = report_outcome(&report);
            events::Dispatched { format, outcome: &outcome, report: &report }.emit(&self.stats);
            let mut own = std::mem::take(&mut report.points);
            if outcome.class() == Some(crate::error::ErrorClass::Transient) {
                own.retain(|p| p.name == FAILURE_METRIC);
                // nothing of this record is written now: its redelivery must find its facts free
                self.release(&std::mem::take(&mut reserved)).await;
            }
            // Every point of the record (claim gauges, lifecycle counters, failure gauges)
            // passes the label guard before the sink.
            let guarded = self.labels.apply(&mut own);
            self.stats.count_guarded(&guarded);
            let start = points.len();
            points.extend(own);
            processed.push((
                i,
                Processed { event, ticket, report, outcome, reserved, points: start..points.len(), guarded },
            ));
        }
        if processed.is_empty() {
            return out;
        }
        if self.config.self_metrics {
            points.extend(self.stats.flush(&self.dispatcher.projects().metric, self.config.self_metrics_interval));
        }
        let written = points.len();
        let delivered: Delivered = self.sink.emit(&points).await;
        let single = processed.len() == 1;
        for (i, mut p) in processed {
            if let Err(e) = delivered.result()
                && (single || !p.points.is_empty())
            {
                p.outcome = Outcome::SinkFailed(e.clone());
                self.release(&p.reserved).await;
            }
            let answer = answer::record_answer(&p.outcome, self.policy());
            events::Processed {
                status: answer.status.as_u16(),
                format,
                meta,
                item: items[i].as_deref(),
                event: &p.event,
                report: &p.report,
                outcome: &p.outcome,
                points: if single { written } else { p.points.len() },
                guarded: &p.guarded,
                sink: &delivered,
                started,
            }
            .emit(&self.stats);
            let is_final = p.outcome.is_final();
            p.ticket.finish(answer.remembered(), is_final);
            out.push((i, p.outcome));
        }
        out
    }
}

/// The outcome of a dispatched record, before its points are written.
fn report_outcome(report: &Report) -> Outcome {
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
fn dedup_id(meta: &DeliveryMeta, event: &ChangeEvent) -> Option<u128> {
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
fn content_digest(event: &ChangeEvent) -> u128 {
    struct Hasher(xxhash_rust::xxh3::Xxh3);
    impl Hasher {
        fn text(&mut self, s: Option<&str>) {
            match s {
                None => self.0.update(&[0]),
                Some(s) => {
                    self.0.update(&[1]);
                    self.0.update(&(s.len() as u64).to_le_bytes());
                    self.0.update(s.as_bytes());
                }
            }
        }
    }
    impl std::io::Write for Hasher {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hasher(xxhash_rust::xxh3::Xxh3::new());
    let m = &event.source_metadata;
    h.text(event.stream.as_deref());
    h.text(Some(&event.source_timestamp.to_rfc3339()));
    h.text(event.object.as_deref());
    h.text(event.read_method.as_deref());
    for field in [&m.schema, &m.table, &m.change_type, &m.lsn, &m.tx_id] {
        h.text(field.as_deref());
    }
    h.text(Some(if m.is_deleted { "deleted" } else { "" }));
    h.text(Some(&m.primary_keys.join("\u{1f}")));
    match &event.payload {
        None => h.text(None),
        Some(p) => {
            h.text(Some("row"));
            // serde_json writes a map in key order: the same row gives the same bytes
            let _ = serde_json::to_writer(&mut h, &p.row);
        }
    }
    h.0.digest128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> ChangeEvent {
        crate::decode::datastream::decode(v).unwrap()
    }

    #[test]
    fn the_content_digest_tells_records_apart_but_not_deliveries() {
        let rec = json!({"uuid": "u-1", "source_timestamp": "2024-01-15T10:30:00Z", "read_timestamp": "2024-01-15T10:30:01Z",
            "source_metadata": {"table": "pipeline_run", "change_type": "UPDATE"},
            "payload": {"id": 1, "pipeline_uuid": "p", "status": "COMPLETED", "variables": {"partner": "a"}}});
        let d = content_digest(&event(rec.clone()));
        assert_eq!(d, content_digest(&event(rec.clone())), "the same record");
        let mut reread = rec.clone();
        reread["read_timestamp"] = "2024-01-15T10:35:00Z".into();
        assert_eq!(d, content_digest(&event(reread)), "read again later");
        let mut other_uuid = rec.clone();
        other_uuid["uuid"] = "u-2".into();
        assert_eq!(d, content_digest(&event(other_uuid)), "the id is the other half of the key");
        for (path, value) in [
            ("/payload/status", json!("RUNNING")),
            ("/payload/variables/partner", json!("b")),
            ("/source_timestamp", json!("2024-01-15T10:30:01Z")),
            ("/source_metadata/change_type", json!("DELETE")),
        ] {
            let mut changed = rec.clone();
            *changed.pointer_mut(path).unwrap() = value;
            assert_ne!(d, content_digest(&event(changed)), "{path}");
        }
    }
}
