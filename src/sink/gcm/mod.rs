//! Google Cloud Monitoring sink: `projects.timeSeries.create` over REST, metric types under
//! `custom.googleapis.com/`.
//!
//! Per kind:
//! * **gauge**: `GAUGE`/`DOUBLE`, one point with `endTime` = the point (event) time, against
//!   the configured resource (`global`, or a `generic_task` with a fixed `task_id`): a gauge is
//!   a state of the world that every instance computes alike, so all instances write one
//!   series. Everything below about windows, partial failures and retries is about gauges.
//! * **counter** and **histogram**: `CUMULATIVE` series of this instance ([`cumulative`]):
//!   `INT64` (count units such as `{run}`) or `DOUBLE` running sums, and `DISTRIBUTION`s with
//!   explicit buckets, against a `generic_task` whose `task_id` names the instance, starting at
//!   the process start. The event's increments are added to the process's totals once its
//!   gauges are written (if they fail, the increments are not added and the event fails with
//!   them, so that its redelivery counts them once); the totals are written at most once per
//!   interval (`GCM_CUMULATIVE_INTERVAL_SECS`), inside the request of whichever event comes
//!   once the interval has passed (nothing runs after a response on serverless platforms), and
//!   at shutdown ([`MetricSink::flush`]). The point time of a counter or histogram is not used:
//!   each write is dated when it is made. A write that fails does not fail the event (its
//!   increments are safe in memory): the series keeps its total and goes out with the next
//!   write, since a cumulative point carries everything since its start.
//!
//! **When a count can be lost on this backend**: increments live in the process until they are
//! written, so an instance that stops without SIGTERM (killed, or a Lambda environment shut
//! down without an extension that forwards the signal), or dies between accumulating and
//! writing, loses its unwritten increments; a series the API refuses for good (an invalid
//! label, a descriptor of another kind) never lands. Logs-based metrics that count the stdout
//! sink's lines have no such window (docs/backends.md).
//!
//! The API's rules for gauges (protocols.md §5): at most 200 series per call and exactly one
//! point per series per call, so the points of one event go out in as few calls as those rules
//! allow (two points of one series need two calls, sent in time order).
//!
//! * **Window.** A point whose end time is more than 25 hours in the past or more than 5
//!   minutes in the future is never sent: it is counted `out_of_window` at once. The limits are
//!   the API contract's (`google/monitoring/v3/common.proto` `TimeInterval`, protocols.md §5.1);
//!   the API itself refuses only past "25h10s" (fake-texts.md §1.3), so a point sent is not
//!   refused for its age merely because it spent time in flight.
//! * **Partial failures** (HTTP 400, and also 429 and 500, which can carry the same message)
//!   name failed-series groups in one of several layouts ([`classify`]); each group is treated
//!   as its reason says: "already written" (points out of order, or more often than the
//!   sampling period: a redelivered event, or another instance wrote the series first) and
//!   "outside the window" groups are acknowledged, every point of the group counted as rejected
//!   with that reason (in the newer layouts a group lists every series of one resource, so this
//!   may count points that were in fact written); a retryable reason retries the group's points
//!   (those already written then come back as "already written", which is fine); an unknown
//!   reason follows the call's status (429, 5xx: retried; 4xx: refused for good). Series that no
//!   group names were written.
//! * **Whole-call failures** are classified by [`crate::retry::cloud_monitoring`]: 408, 429, 5xx
//!   and connection errors are retried with the shared backoff, honouring `Retry-After`, until
//!   the deadline (one deadline for all calls of an event); 401 and 403 are never retried.
//! * **Every call is made**: a call that fails does not stop the event's other calls. Only a
//!   failure to get an access token stops them (no call can be made without one). The
//!   [`Delivered`] report counts the calls actually sent and every point's result.

mod body;
mod call;
mod classify;
pub mod cumulative;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

pub use body::{MAX_SERIES_PER_CALL, METRIC_PREFIX, Resource, plan_calls, request_body};
use call::CallFailure;
use classify::{Reason, failed_groups};
pub use cumulative::{Cumulative, Settings, TaskId};

use super::aggregate::aggregable;
use super::instance::{Clock, Instance, system_clock};
use super::{Delivered, MetricSink, Point, PointKind, Rejection, SinkError};
use crate::google::credentials::{MONITORING_SCOPE, TokenSource};
use crate::retry::{self, RetryDecision};

/// Retry of transient failures: the shared backoff policy ([`crate::retry::Policy`]).
pub use crate::retry::Policy as Retry;

/// How far in the past a point's end time may be (API contract: "not more than 25 hours in the
/// past", `common.proto`; protocols.md §5.1).
pub const MAX_AGE: Duration = Duration::from_secs(25 * 3600);
/// How far in the future a point's end time may be (API contract: "not more than five minutes
/// in the future").
pub const MAX_AHEAD: Duration = Duration::from_secs(5 * 60);

/// Whether Cloud Monitoring accepts a point with end time `time` at `now` (see [`MAX_AGE`],
/// [`MAX_AHEAD`]).
pub fn in_window(time: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let age = now.signed_duration_since(time);
    age <= chrono::Duration::from_std(MAX_AGE).unwrap_or(chrono::Duration::MAX)
        && -age <= chrono::Duration::from_std(MAX_AHEAD).unwrap_or(chrono::Duration::MAX)
}

/// The Cloud Monitoring sink (see the module documentation).
pub struct CloudMonitoring {
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    /// `https://monitoring.googleapis.com` (a fake's URL in tests).
    endpoint: String,
    resource: Resource,
    retry: Retry,
    /// Limit for one HTTP call.
    timeout: Duration,
    /// The cumulative series of this instance.
    cumulative: Settings,
    clock: Clock,
    totals: Mutex<cumulative::State>,
    /// Held while totals are written: one write at a time.
    writing: tokio::sync::Mutex<()>,
}

impl CloudMonitoring {
    /// A sink writing to `{endpoint}/v3/projects/{project}/timeSeries`, gauges against
    /// `resource`, with tokens for [`MONITORING_SCOPE`] and `retry` as the backoff of one
    /// event's calls; counters and histograms as this process's cumulative series with the
    /// default [`Cumulative`] settings and the system clock.
    pub fn new(
        http: reqwest::Client,
        tokens: Arc<dyn TokenSource>,
        endpoint: &str,
        resource: Resource,
        retry: Retry,
    ) -> Self {
        CloudMonitoring {
            http,
            tokens,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            resource,
            retry,
            timeout: Duration::from_secs(10),
            cumulative: Cumulative::default().settings(Instance::process()),
            clock: system_clock(),
            totals: Mutex::new(cumulative::State::default()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Other cumulative settings (resource, start, interval).
    pub fn with_cumulative(mut self, settings: Settings) -> Self {
        self.cumulative = settings;
        self
    }

    /// Another clock for the cumulative series (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Series whose increments are not written yet.
    pub fn pending(&self) -> usize {
        self.totals.lock().unwrap_or_else(|p| p.into_inner()).pending()
    }
}

impl CloudMonitoring {
    /// Writes the gauges of an event (see the module documentation); every result goes into
    /// `out`.
    async fn write_gauges(&self, gauges: Vec<&Point>, out: &mut Delivered) {
        let now = Utc::now();
        let (sendable, late): (Vec<&Point>, Vec<&Point>) = gauges.into_iter().partition(|p| in_window(p.time, now));
        out.rejected.extend(late.iter().map(|p| (p.name.clone(), Rejection::OutOfWindow)));
        let started = Instant::now();
        let mut stopped: Option<SinkError> = None;
        for (project, call) in plan_calls(sendable) {
            if let Some(e) = &stopped {
                out.fail(call, e.clone());
                continue;
            }
            let mut backoff = self.retry.start_at(started);
            if let Err(e) = self.write(&project, call, &mut backoff, out).await {
                stopped = Some(e);
            }
        }
    }

    /// Writes the totals that are due (all of them when `force`), at most one write at a time
    /// (a periodic write finding another under way skips). Failures keep the series' totals
    /// for the next write and never fail the event: they are logged, refusals for good also
    /// counted in `out.rejected`. At shutdown (`force`), retryable failures are retried within
    /// the sink's deadline; otherwise the next interval's write is the retry.
    async fn write_totals(&self, force: bool, out: &mut Delivered) {
        let _writing = if force {
            self.writing.lock().await
        } else {
            match self.writing.try_lock() {
                Ok(g) => g,
                Err(_) => return,
            }
        };
        let now = (self.clock)();
        let due = self.totals.lock().unwrap_or_else(|p| p.into_inner()).take_due(now, self.cumulative.interval, force);
        if due.is_empty() {
            return;
        }
        let mut by_project: std::collections::BTreeMap<&str, Vec<&cumulative::Snapshot>> = Default::default();
        for snap in &due {
            by_project.entry(snap.key.project.as_str()).or_default().push(snap);
        }
        let started = Instant::now();
        for (project, series) in by_project {
            for chunk in series.chunks(MAX_SERIES_PER_CALL) {
                let mut backoff = self.retry.start_at(started);
                let mut pending: Vec<&cumulative::Snapshot> = chunk.to_vec();
                loop {
                    let token = match self.tokens.token(&[MONITORING_SCOPE]).await {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::warn!(error = %e, series = self.pending(), "no access token: cumulative series kept for the next write");
                            return;
                        }
                    };
                    let body = json!({"timeSeries": pending.iter().map(|s| cumulative::series_json(s, &self.cumulative.resource)).collect::<Vec<_>>()});
                    out.calls += 1;
                    let failure = match self.post(&token, project, &body).await {
                        Ok(()) => {
                            self.accept(&pending);
                            break;
                        }
                        Err(f) => f,
                    };
                    let (retry, decision) = self.sort_totals_failure(&pending, &failure, out);
                    if retry.is_empty() || !force || !backoff.wait(decision).await {
                        break;
                    }
                    pending = retry;
                }
            }
        }
    }

    fn accept(&self, written: &[&cumulative::Snapshot]) {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        written.iter().for_each(|s| totals.accepted(s));
    }

    /// Sorts the series of a failed write of totals: those no failed group names were written
    /// (accepted now); the others are kept, logged, refusals for good counted in `out`. Returns
    /// the series a retry may write, with the decision for the wait.
    fn sort_totals_failure<'s>(
        &self,
        pending: &[&'s cumulative::Snapshot],
        failure: &CallFailure,
        out: &mut Delivered,
    ) -> (Vec<&'s cumulative::Snapshot>, RetryDecision) {
        let whole = match failure.status {
            Some(status) => retry::cloud_monitoring(status, failure.retry_after),
            None => retry::transport(),
        };
        let mut failed = vec![false; pending.len()];
        let mut retry = Vec::new();
        let groups = if failure.status.is_some() { failed_groups(&failure.message, pending.len()) } else { Vec::new() };
        if groups.is_empty() {
            // no answer, or one that names nothing: no series was written
            failed.iter_mut().for_each(|f| *f = true);
            retry.extend(pending.iter().copied());
            tracing::warn!(
                status = failure.status,
                error = %failure.message,
                series = pending.len(),
                "cumulative series not written: their totals go out with the next write"
            );
        }
        for group in groups {
            let indices = group.indices.unwrap_or_else(|| (0..pending.len()).collect());
            let reason = classify::classify_reason(&group.reason);
            for i in indices {
                if std::mem::replace(&mut failed[i], true) {
                    continue;
                }
                match reason {
                    Reason::Retry => retry.push(pending[i]),
                    Reason::Unknown if whole.is_retryable() => retry.push(pending[i]),
                    Reason::Unknown => out.rejected.push((pending[i].key.name.clone(), Rejection::Refused)),
                    Reason::Rejected(_) => {}
                }
                tracing::warn!(
                    series = %pending[i].key,
                    status = failure.status,
                    reason = %group.reason,
                    "cumulative series not written: its total goes out with the next write"
                );
            }
        }
        let written: Vec<&cumulative::Snapshot> =
            pending.iter().zip(&failed).filter(|(_, f)| !**f).map(|(s, _)| *s).collect();
        self.accept(&written);
        (retry, if whole.is_retryable() { whole } else { RetryDecision::Retryable })
    }
}

#[async_trait::async_trait]
impl MetricSink for CloudMonitoring {
    async fn emit(&self, points: &[Point]) -> Delivered {
        let mut out = Delivered::default();
        let (gauges, counted): (Vec<&Point>, Vec<&Point>) = points.iter().partition(|p| p.kind == PointKind::Gauge);
        self.write_gauges(gauges, &mut out).await;
        if !counted.is_empty() {
            if let Some(e) = out.failed.clone() {
                // the event fails: its redelivery must find its increments not counted yet
                out.fail(counted, e);
            } else {
                let start = self.cumulative.start;
                let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
                for p in counted {
                    if aggregable(p) {
                        totals.add(p, start);
                    } else {
                        tracing::warn!(metric = %p.name, value = p.value, "a counter or histogram point that cannot be summed is not counted");
                        out.rejected.push((p.name.clone(), Rejection::Refused));
                    }
                }
            }
        }
        self.write_totals(false, &mut out).await;
        out
    }

    async fn flush(&self) -> Delivered {
        let mut out = Delivered::default();
        self.write_totals(true, &mut out).await;
        out
    }
}

#[cfg(test)]
mod tests;
