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
//!
//! This file holds the counters; the events are grouped by stage: `refusals` (before any record
//! is processed), `records` (records set aside on their way to the handlers) and `processed`
//! (handlers run, records written, files read), all re-exported here.

mod processed;
mod records;
mod refusals;

pub use processed::{Dispatched, FileRead, Processed};
pub use records::{DeadlineExceeded, DedupConflict, Duplicate, HistorySkipped, Ignored};
pub use refusals::{
    BodiesBuffered, BodyTimeout, NotRouted, NotificationIgnored, Overloaded, Rejected, SourceUnavailable, Unauthorized,
};

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::sink::Point;

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

/// A free-text field of a record as a log line carries it: at most 128 characters.
pub(crate) fn short(s: &str) -> String {
    crate::redact::excerpt(s, 128)
}
