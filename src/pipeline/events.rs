//! Internal events: every operational outcome is a type whose one `emit()` writes its structured
//! log line and counts the function's own metric, so that the two never disagree.
//!
//! The counters ([`Stats`]) are written through the configured sink at most once per interval
//! (piggybacked on a delivery's points: nothing runs after a response on serverless platforms).
//! Counts are since the instance started, labelled with a random instance id, so that every
//! instance writes its own series:
//! * `pipeline_run_metrics/events{format, outcome, instance}`: records by delivery format and
//!   outcome (`ok`, `permanent`, `transient`, `rejected`, `duplicate`, `history`, `ignored`,
//!   `unauthorized`, `overloaded`, `body_timeout`, `deadline_exceeded`);
//! * `pipeline_run_metrics/points_rejected{reason, instance}`: points a backend refused for good;
//! * `pipeline_run_metrics/handler_duration_seconds{handler_class, instance}`: mean handler time
//!   since the last write;
//! * `pipeline_run_metrics/labels_guarded{action, label, instance}`: label values truncated
//!   (`action` = `truncated`) or folded into `other` (`folded`) since the instance started.
//!
//! Payload variables are never logged: they hold e-mail addresses (`responsibles`). A failure that
//! concerns one names the variable and a fingerprint of its value ([`crate::redact`]); free-text
//! columns that are logged (pipeline, status) are cut to 128 characters.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::answer::Outcome;
use crate::decode::{ChangeEvent, DecodeError, DeliveryFormat, DeliveryMeta};
use crate::handlers::Report;
use crate::sink::{Delivered, Point};

/// The function's own counters since the instance started.
pub struct Stats {
    instance: String,
    inner: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// (format, outcome) -> records; both names are static, so counting allocates nothing
    events: BTreeMap<(&'static str, &'static str), u64>,
    rejected: BTreeMap<&'static str, u64>,
    /// (action `truncated` / `folded`, label) -> values
    labels: BTreeMap<(&'static str, String), u64>,
    /// handler -> (total seconds, count) since the last flush
    durations: BTreeMap<String, (f64, u64)>,
    last_flush: Option<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64 ^ (std::process::id() as u64) << 32;
        Stats { instance: format!("{nanos:016x}"), inner: Mutex::new(Counts::default()) }
    }
}

impl Stats {
    fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn count(&self, outcome: &'static str, format: &'static str) {
        self.with(|c| *c.events.entry((format, outcome)).or_default() += 1);
    }

    /// Counts what the label guard did (values truncated, values folded into `other`).
    pub fn count_guarded(&self, guarded: &super::labels::Guarded) {
        if guarded.is_empty() {
            return;
        }
        self.with(|c| {
            for (action, list) in [("truncated", &guarded.truncated), ("folded", &guarded.folded)] {
                for (label, n) in list {
                    *c.labels.entry((action, label.clone())).or_default() += *n as u64;
                }
            }
        });
    }

    /// Records by (delivery format, outcome) since the instance started.
    pub fn event_counts(&self) -> BTreeMap<(String, String), u64> {
        self.with(|c| c.events.iter().map(|((f, o), n)| ((f.to_string(), o.to_string()), *n)).collect())
    }

    /// The counters as gauges, at most once per `interval` (empty otherwise).
    pub fn flush(&self, project: &str, interval: Duration) -> Vec<Point> {
        self.with(|c| {
            if c.last_flush.is_some_and(|t| t.elapsed() < interval) {
                return Vec::new();
            }
            c.last_flush = Some(Instant::now());
            let now = Utc::now();
            let g = |name: &str, value: f64, labels: [(&str, &str); 3]| {
                let labels = labels.iter().filter(|(k, _)| !k.is_empty());
                Point::gauge(name, value, now, labels.map(|(k, v)| (k.to_string(), v.to_string())).collect(), project)
            };
            let mut out = Vec::new();
            for ((format, outcome), n) in &c.events {
                out.push(g(
                    "pipeline_run_metrics/events",
                    *n as f64,
                    [("format", format), ("outcome", outcome), ("instance", &self.instance)],
                ));
            }
            for (reason, n) in &c.rejected {
                out.push(g(
                    "pipeline_run_metrics/points_rejected",
                    *n as f64,
                    [("reason", reason), ("instance", &self.instance), ("", "")],
                ));
            }
            for ((action, label), n) in &c.labels {
                out.push(g(
                    "pipeline_run_metrics/labels_guarded",
                    *n as f64,
                    [("action", action), ("label", label), ("instance", &self.instance)],
                ));
            }
            for (handler, (total, n)) in std::mem::take(&mut c.durations) {
                out.push(g(
                    "pipeline_run_metrics/handler_duration_seconds",
                    total / n.max(1) as f64,
                    [("handler_class", &handler), ("instance", &self.instance), ("", "")],
                ));
            }
            out
        })
    }
}

/// A push without a valid OIDC token.
pub struct Unauthorized<'a> {
    pub reason: &'a str,
}

impl Unauthorized<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 401, reason = %self.reason, "push not authenticated");
        stats.count("unauthorized", "none");
    }
}

/// A delivery refused because too many are in flight.
pub struct Overloaded {
    pub limit: usize,
}

impl Overloaded {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 429, limit = self.limit, "too many events in flight");
        stats.count("overloaded", "none");
    }
}

/// A request refused because the request bodies in memory would pass `BODY_BUFFER_BYTES`.
pub struct BodiesBuffered {
    pub limit: usize,
}

impl BodiesBuffered {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 429, limit_bytes = self.limit, "too many request bytes in memory");
        stats.count("overloaded", "none");
    }
}

/// A request whose body did not arrive in time (a slow or stalled client).
pub struct BodyTimeout {
    pub timeout_secs: f64,
}

impl BodyTimeout {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 408, timeout_secs = self.timeout_secs, "request body not received in time");
        stats.count("body_timeout", "none");
    }
}

/// What a delivery names cannot be read now (a Cloud Storage object).
pub struct SourceUnavailable<'a> {
    pub reason: &'a str,
}

impl SourceUnavailable<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 503, reason = %self.reason, "delivery source unavailable, retry expected");
        stats.count("transient", "storage_object");
    }
}

/// A notification this function does not read (another event type, an object outside the
/// configured prefixes and tables).
pub struct NotificationIgnored<'a> {
    pub reason: &'a str,
}

impl NotificationIgnored<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::info!(status = 204, reason = %self.reason, "notification ignored");
        stats.count("ignored", "storage_object");
    }
}

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

/// A request or a record that could not be decoded.
pub struct Rejected<'a> {
    pub status: u16,
    pub error: &'a DecodeError,
    pub format: Option<DeliveryFormat>,
    pub meta: Option<&'a DeliveryMeta>,
    pub item: Option<&'a str>,
}

impl Rejected<'_> {
    pub fn emit(&self, stats: &Stats) {
        let format = self.format.map(DeliveryFormat::as_str).unwrap_or("unknown");
        let kind = match self.error.kind {
            crate::decode::DecodeErrorKind::Malformed => "malformed_event",
            crate::decode::DecodeErrorKind::UnsupportedMediaType => "unsupported_media_type",
            crate::decode::DecodeErrorKind::TooLarge => "payload_too_large",
            crate::decode::DecodeErrorKind::NotAChange => "not_a_change",
        };
        tracing::warn!(
            status = self.status,
            error = kind,
            field = self.error.field.as_deref().unwrap_or(""),
            reason = %crate::redact::quoted(&self.error.message),
            format = format,
            message_id = self.meta.and_then(|m| m.message_id.as_deref()).unwrap_or(""),
            item = self.item.unwrap_or(""),
            "event rejected"
        );
        stats.count("rejected", format);
    }
}

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

/// A free-text field of a record as a log line carries it: at most 128 characters.
pub(crate) fn short(s: &str) -> String {
    crate::redact::excerpt(s, 128)
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
    pub guarded: &'a super::labels::Guarded,
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
                    labels_truncated = super::labels::Guarded::describe(&self.guarded.truncated),
                    labels_folded = super::labels::Guarded::describe(&self.guarded.folded),
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
