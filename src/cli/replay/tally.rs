//! The metric sink of a replay: counts every point per metric on its way to the configured
//! backend, keeps back what the backend cannot take, and writes nothing in a dry run.
//!
//! Cloud Monitoring takes no point whose end time is more than 25 hours in the past or more
//! than five minutes in the future: "the end time must not be more than 25 hours in the past or
//! more than five minutes in the future" (`google.monitoring.v3.TimeInterval`,
//! https://cloud.google.com/monitoring/api/ref_v3/rpc/google.monitoring.v3#timeinterval; the
//! same limits as [`crate::sink::gcm::MAX_AGE`]). Its sink already keeps such gauges back, but it
//! dates counter and histogram increments when it writes them (cumulative series): a run that
//! finished months ago would count as finishing now, and alerts on failure rates would fire on
//! history. So with the `gcm` backend a replay sends no point outside the window, of any kind,
//! and counts each one as `out_of_window` for its metric: the summary reports them and the exit
//! code is 1, never a silent loss. The other backends (stdout lines; OTLP to a store that
//! accepts old samples) get every point with its own time; what they refuse is counted from
//! their report ([`Delivered::rejected`], [`Delivered::unwritten`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::Serialize;

use crate::sink::{Delivered, MetricSink, Point, PointKind, Rejection};

/// What became of the points of one metric.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetricCounts {
    /// `gauge`, `counter` or `histogram`.
    pub kind: &'static str,
    /// Points computed.
    pub points: u64,
    /// Points the backend took (a point it already had counts as written; 0 in a dry run).
    pub written: u64,
    /// Points outside the backend's time window (Cloud Monitoring: 25 h back, 5 min ahead),
    /// not sent.
    pub out_of_window: u64,
    /// Points the backend already had (a second replay without `--facts-file`).
    pub already_written: u64,
    /// Points the backend refused for another reason it reported as final.
    pub refused: u64,
    /// Points that could not be written (backend unavailable until the sink's deadline).
    pub unwritten: u64,
}

impl MetricCounts {
    /// Points computed but not taken by the backend.
    pub fn not_taken(&self) -> u64 {
        self.out_of_window + self.refused + self.unwritten
    }
}

/// Counts per metric, then passes the points on (see the module documentation).
pub struct Tally {
    /// The configured backend; `None` in a dry run.
    inner: Option<Arc<dyn MetricSink>>,
    /// Keep back points outside Cloud Monitoring's window.
    window: bool,
    metrics: Mutex<HashMap<String, MetricCounts>>,
}

impl Tally {
    /// Before `inner` (`None`: a dry run, nothing written); `window` for the `gcm` backend.
    pub fn new(inner: Option<Arc<dyn MetricSink>>, window: bool) -> Tally {
        Tally { inner, window, metrics: Mutex::new(HashMap::new()) }
    }

    /// The counts so far, by metric name.
    pub fn counts(&self) -> BTreeMap<String, MetricCounts> {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, MetricCounts>> {
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds what the backend reported (rejections and failures, by metric) to the counts.
    fn count_report(metrics: &mut HashMap<String, MetricCounts>, d: &Delivered) {
        for (name, reason) in &d.rejected {
            let c = metrics.entry(name.clone()).or_default();
            match reason {
                Rejection::AlreadyWritten => c.already_written += 1,
                Rejection::OutOfWindow => {
                    c.out_of_window += 1;
                    c.written = c.written.saturating_sub(1);
                }
                Rejection::Refused => {
                    c.refused += 1;
                    c.written = c.written.saturating_sub(1);
                }
            }
        }
        for name in &d.unwritten {
            let c = metrics.entry(name.clone()).or_default();
            c.unwritten += 1;
            c.written = c.written.saturating_sub(1);
        }
    }
}

fn kind(k: PointKind) -> &'static str {
    k.as_str()
}

#[async_trait::async_trait]
impl MetricSink for Tally {
    async fn emit(&self, points: &[Point]) -> Delivered {
        let now = Utc::now();
        let mut kept_back = Vec::new();
        {
            let mut metrics = self.lock();
            for (i, p) in points.iter().enumerate() {
                let c = match metrics.get_mut(p.name.as_str()) {
                    Some(c) => c,
                    None => metrics
                        .entry(p.name.clone())
                        .or_insert(MetricCounts { kind: kind(p.kind), ..Default::default() }),
                };
                c.points += 1;
                if self.window && !crate::sink::gcm::in_window(p.time, now) {
                    c.out_of_window += 1;
                    kept_back.push(i);
                } else if self.inner.is_some() {
                    c.written += 1;
                }
            }
        }
        let send: Cow<'_, [Point]> = if kept_back.is_empty() {
            Cow::Borrowed(points)
        } else {
            Cow::Owned(
                points.iter().enumerate().filter(|(i, _)| !kept_back.contains(i)).map(|(_, p)| p.clone()).collect(),
            )
        };
        let mut d = match &self.inner {
            Some(inner) if !send.is_empty() => inner.emit(&send).await,
            _ => Delivered::default(),
        };
        Tally::count_report(&mut self.lock(), &d);
        d.rejected.extend(kept_back.iter().map(|&i| (points[i].name.clone(), Rejection::OutOfWindow)));
        d
    }

    /// The backend's own flush (Cloud Monitoring's cumulative totals); nothing in a dry run.
    async fn flush(&self) -> Delivered {
        match &self.inner {
            Some(inner) => inner.flush().await,
            None => Delivered::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{JsonLines, SharedBuffer, SinkError};

    fn at_hours_ago(name: &str, hours: i64) -> Point {
        Point::counter(name, 1.0, "{run}", Utc::now() - chrono::Duration::hours(hours), Default::default(), "p")
    }

    #[tokio::test]
    async fn cloud_monitoring_gets_no_point_older_than_25_hours_and_each_is_counted() {
        let buf = SharedBuffer::default();
        let tally = Tally::new(Some(Arc::new(JsonLines::new(buf.clone()))), true);
        let points = [at_hours_ago("a", 1), at_hours_ago("a", 26), at_hours_ago("b", 24 * 40), at_hours_ago("b", 24)];
        let d = tally.emit(&points).await;
        assert_eq!(buf.take_lines().len(), 2, "only the points of the last 25 hours are sent");
        assert_eq!(d.result(), Ok(()));
        assert_eq!(d.rejected, vec![("a".into(), Rejection::OutOfWindow), ("b".into(), Rejection::OutOfWindow)]);
        let c = tally.counts();
        assert_eq!((c["a"].points, c["a"].written, c["a"].out_of_window), (2, 1, 1));
        assert_eq!((c["b"].points, c["b"].written, c["b"].out_of_window, c["b"].kind), (2, 1, 1, "counter"));
    }

    #[tokio::test]
    async fn other_backends_get_history_and_a_dry_run_writes_nothing() {
        let buf = SharedBuffer::default();
        let tally = Tally::new(Some(Arc::new(JsonLines::new(buf.clone()))), false);
        tally.emit(&[at_hours_ago("a", 24 * 400)]).await;
        assert_eq!(buf.take_lines().len(), 1);
        assert_eq!((tally.counts()["a"].written, tally.counts()["a"].out_of_window), (1, 0));
        let dry = Tally::new(None, true);
        let d = dry.emit(&[at_hours_ago("a", 1), at_hours_ago("a", 30)]).await;
        assert_eq!(d.calls, 0);
        let c = &dry.counts()["a"];
        assert_eq!((c.points, c.written, c.out_of_window), (2, 0, 1), "counted as if sent, never written");
    }

    /// A backend that refuses the first point for good and cannot write the second.
    struct Picky;

    #[async_trait::async_trait]
    impl MetricSink for Picky {
        async fn emit(&self, points: &[Point]) -> Delivered {
            let mut d = Delivered { calls: 1, ..Default::default() };
            d.rejected.push((points[0].name.clone(), Rejection::Refused));
            d.fail(&points[1..2], SinkError::unavailable("down"));
            d
        }
    }

    #[tokio::test]
    async fn what_the_backend_refuses_or_cannot_write_is_counted() {
        let tally = Tally::new(Some(Arc::new(Picky)), false);
        let d = tally.emit(&[at_hours_ago("a", 1), at_hours_ago("b", 1), at_hours_ago("b", 1)]).await;
        assert!(d.result().is_err(), "the failure reaches the pipeline: the records are not done");
        let c = tally.counts();
        assert_eq!((c["a"].written, c["a"].refused, c["a"].not_taken()), (0, 1, 1));
        assert_eq!((c["b"].points, c["b"].written, c["b"].unwritten), (2, 1, 1));
    }
}
