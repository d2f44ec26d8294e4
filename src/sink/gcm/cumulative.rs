//! Counters and histograms as `CUMULATIVE` series of this instance (lifecycle.md C.4, D.3).
//!
//! Cloud Monitoring takes no `DELTA` for user-defined metrics, and one series takes at most one
//! point per sampling period (5 s), in order: many instances cannot add to one series. So each
//! instance keeps its own series, against a `generic_task` whose `task_id` names the instance
//! ([`TaskId`]), each starting at the process start and carrying the running total of this
//! process: a counter's sum (`INT64` for count units such as `{run}`, else `DOUBLE`), a
//! histogram's `DISTRIBUTION` (explicit buckets [`SECONDS_BOUNDS`]). Charts and alerts sum
//! over `task_id`, and the `delta`/`rate` aligners read each series' start.
//!
//! [`State`] holds the totals; [`State::take_due`] hands out the series to write at most once
//! per interval (and all of them, whatever the interval, at shutdown), [`State::accepted`]
//! records what the API accepted. A series the API did not accept keeps its total and is
//! written again at the next write: a cumulative point carries everything since the start, so
//! a late write loses nothing and a repeated one doubles nothing.
//!
//! The API documents that a point's start time must not be more than 25 hours in the past
//! (`TimeInterval`): a series whose start is older than [`ROLLOVER`] starts again (a reset, as
//! after a restart), from its last accepted point's end time, or one interval back if that
//! point is older, with the increments not written yet.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::body::{METRIC_PREFIX, Resource, double_json};
use crate::sink::aggregate::{BucketRule, Distribution, SECONDS_BOUNDS, SeriesKey, whole_count};
use crate::sink::instance::Instance;
use crate::sink::{Point, PointKind};

/// The smallest spacing of two points of one series the API accepts ("one point each 5
/// seconds", https://cloud.google.com/monitoring/quotas; protocols.md §5.2).
pub const MIN_SPACING: Duration = Duration::from_secs(5);

/// After this long, a series starts again (the API's 25-hour limit on start times, with an
/// hour to spare).
pub const ROLLOVER: Duration = Duration::from_secs(24 * 3600);

/// Where the `task_id` of this instance's series comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskId {
    /// Cloud Run: the revision (`K_REVISION`) and the random id of the process (several
    /// instances run one revision).
    CloudRun { revision: String },
    /// AWS Lambda: the log stream name (`AWS_LAMBDA_LOG_STREAM_NAME`), one per execution
    /// environment.
    Lambda { log_stream: String },
    /// Elsewhere: the random id of the process.
    Process,
}

impl TaskId {
    /// From the platform's variables: `K_REVISION`, else `AWS_LAMBDA_LOG_STREAM_NAME`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> TaskId {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(revision) = get("K_REVISION") {
            TaskId::CloudRun { revision }
        } else if let Some(log_stream) = get("AWS_LAMBDA_LOG_STREAM_NAME") {
            TaskId::Lambda { log_stream }
        } else {
            TaskId::Process
        }
    }

    /// The `task_id` of a process whose random id is `instance_id`.
    pub fn resolve(&self, instance_id: &str) -> String {
        match self {
            TaskId::CloudRun { revision } => format!("{revision}-{instance_id}"),
            TaskId::Lambda { log_stream } => log_stream.clone(),
            TaskId::Process => instance_id.to_string(),
        }
    }
}

/// How the cumulative series are written (`GCM_LOCATION`, `GCM_NAMESPACE`, `GCM_JOB`, the
/// platform's instance, `GCM_CUMULATIVE_INTERVAL_SECS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cumulative {
    pub location: String,
    pub namespace: String,
    pub job: String,
    pub task: TaskId,
    /// At most one write of a series per interval (at least [`MIN_SPACING`]).
    pub interval: Duration,
}

impl Default for Cumulative {
    fn default() -> Self {
        Cumulative {
            location: "global".into(),
            namespace: "pipeline-run-metrics".into(),
            job: "pipeline-run-metrics".into(),
            task: TaskId::Process,
            interval: Duration::from_secs(60),
        }
    }
}

impl Cumulative {
    /// The settings of `instance`'s series.
    pub fn settings(&self, instance: &Instance) -> Settings {
        Settings {
            resource: Resource::GenericTask {
                location: self.location.clone(),
                namespace: self.namespace.clone(),
                job: self.job.clone(),
                task_id: self.task.resolve(&instance.id),
            },
            start: instance.started,
            interval: self.interval.max(MIN_SPACING),
        }
    }
}

/// The cumulative series of one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// A `generic_task` naming the instance.
    pub resource: Resource,
    /// The start of every series (the process start).
    pub start: DateTime<Utc>,
    pub interval: Duration,
}

/// A running total.
#[derive(Debug, Clone, PartialEq)]
pub enum Total {
    /// A counter's sum.
    Count(f64),
    /// A histogram's observations.
    Distribution(Distribution),
}

impl Total {
    fn zero(kind: PointKind) -> Total {
        match kind {
            PointKind::Histogram => Total::Distribution(Distribution::empty()),
            _ => Total::Count(0.0),
        }
    }

    fn add(&mut self, x: f64) {
        match self {
            Total::Count(sum) => *sum += x,
            Total::Distribution(d) => d.observe(BucketRule::LowerInclusive, x),
        }
    }

    fn minus(&self, base: &Total) -> Total {
        match (self, base) {
            (Total::Count(a), Total::Count(b)) => Total::Count(a - b),
            (Total::Distribution(a), Total::Distribution(b)) => Total::Distribution(a.minus(b)),
            _ => self.clone(),
        }
    }
}

/// One series' state.
#[derive(Debug, Clone)]
struct Series {
    unit: String,
    start: DateTime<Utc>,
    /// Everything since the process start.
    total: Total,
    /// The part of `total` before `start` (non-zero after a rollover).
    base: Total,
    /// Bumped by every observation; the series is due when it differs from `written_version`.
    version: u64,
    written_version: u64,
    /// End time and total of the last accepted point.
    written: Option<(DateTime<Utc>, Total)>,
}

/// One point to write: a series' total at `end`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub key: SeriesKey,
    pub unit: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The value since `start`.
    pub value: Total,
    total: Total,
    version: u64,
}

/// The running totals of this process (see the module documentation).
#[derive(Debug, Default)]
pub struct State {
    series: BTreeMap<SeriesKey, Series>,
    /// When the last (periodic) write was handed out.
    last_write: Option<DateTime<Utc>>,
}

impl State {
    /// Adds a counter increment or a histogram observation (the caller checked that it can be
    /// summed); a new series starts at `start`.
    pub fn add(&mut self, p: &Point, start: DateTime<Utc>) {
        let s = self.series.entry(SeriesKey::of(p)).or_insert_with(|| Series {
            unit: p.unit.to_string(),
            start,
            total: Total::zero(p.kind),
            base: Total::zero(p.kind),
            version: 0,
            written_version: 0,
            written: None,
        });
        s.total.add(p.value);
        s.version += 1;
    }

    /// Series with increments not written yet.
    pub fn pending(&self) -> usize {
        self.series.values().filter(|s| s.version != s.written_version).count()
    }

    /// The points to write at `now`: every series with increments not written yet, when the
    /// last write is at least `interval` old or `force` (shutdown); none otherwise. Each end
    /// time is after the series' start and at least [`MIN_SPACING`] after its last accepted
    /// point (a forced write within 5 s of the last one is dated up to 5 s ahead, which the API
    /// allows: "not more than five minutes in the future").
    pub fn take_due(&mut self, now: DateTime<Utc>, interval: Duration, force: bool) -> Vec<Snapshot> {
        let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
        if !force && self.last_write.is_some_and(|t| now - t < interval) {
            return Vec::new();
        }
        let rollover = chrono::Duration::from_std(ROLLOVER).unwrap_or(chrono::Duration::MAX);
        let spacing = chrono::Duration::from_std(MIN_SPACING).unwrap_or_default();
        let mut out = Vec::new();
        for (key, s) in self.series.iter_mut().filter(|(_, s)| s.version != s.written_version) {
            if now - s.start > rollover {
                // a new start: at the last accepted point (the increments since are the new
                // segment's), or one interval back when that point is older (an idle series)
                let recent = now - interval;
                match &s.written {
                    Some((end, total)) => {
                        s.start = (*end).max(recent);
                        s.base = total.clone();
                    }
                    None => s.start = recent,
                }
            }
            let mut end = now.max(s.start + chrono::Duration::milliseconds(1));
            if let Some((last, _)) = &s.written {
                end = end.max(*last + spacing);
            }
            out.push(Snapshot {
                key: key.clone(),
                unit: s.unit.clone(),
                start: s.start,
                end,
                value: s.total.minus(&s.base),
                total: s.total.clone(),
                version: s.version,
            });
        }
        if !out.is_empty() {
            self.last_write = Some(now);
        }
        out
    }

    /// The API accepted `snap`.
    pub fn accepted(&mut self, snap: &Snapshot) {
        if let Some(s) = self.series.get_mut(&snap.key) {
            s.written_version = s.written_version.max(snap.version);
            if s.written.as_ref().is_none_or(|(end, _)| *end < snap.end) {
                s.written = Some((snap.end, snap.total.clone()));
            }
        }
    }
}

/// RFC 3339 with microseconds, as the gauges' `endTime`.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The value type of a series: `INT64` for count units, `DOUBLE` for other counters,
/// `DISTRIBUTION` for histograms.
pub fn value_type(s: &Snapshot) -> &'static str {
    match &s.value {
        Total::Distribution(_) => "DISTRIBUTION",
        Total::Count(_) if whole_count(&s.unit) => "INT64",
        Total::Count(_) => "DOUBLE",
    }
}

/// A point's `value` (proto3 JSON: 64-bit integers are strings).
pub fn value_json(s: &Snapshot) -> Value {
    match &s.value {
        Total::Count(v) if whole_count(&s.unit) => json!({"int64Value": (v.round() as i64).to_string()}),
        Total::Count(v) => json!({"doubleValue": double_json(*v)}),
        Total::Distribution(d) => json!({"distributionValue": {
            "count": d.count.to_string(),
            "mean": d.mean(),
            "sumOfSquaredDeviation": d.sum_of_squared_deviation(),
            "bucketOptions": {"explicitBuckets": {"bounds": SECONDS_BOUNDS}},
            "bucketCounts": d.buckets.iter().map(u64::to_string).collect::<Vec<_>>(),
        }}),
    }
}

/// One `TimeSeries` of a `timeSeries.create` body for `s`.
pub fn series_json(s: &Snapshot, resource: &Resource) -> Value {
    let labels: serde_json::Map<String, Value> =
        s.key.labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let mut series = json!({
        "metric": {"type": format!("{METRIC_PREFIX}{}", s.key.name), "labels": labels},
        "resource": resource.json(&s.key.project),
        "metricKind": "CUMULATIVE",
        "valueType": value_type(s),
        "points": [{
            "interval": {"startTime": rfc3339(s.start), "endTime": rfc3339(s.end)},
            "value": value_json(s),
        }],
    });
    if !s.unit.is_empty() {
        series["unit"] = json!(s.unit);
    }
    series
}

#[cfg(test)]
mod tests;
