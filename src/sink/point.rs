//! Metric points: gauges, counters and histograms.
//!
//! One [`Point`] type carries every kind; each sink states what it does with each kind (see the
//! sink modules). Units are UCUM, as OpenTelemetry's semantic conventions use them: `s` for
//! seconds, `{run}` and `{task}` for counts of runs and tasks, `1` for dimensionless values.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// What a point's value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// The value at the point's time (idempotent: writing it twice changes nothing).
    Gauge,
    /// An increment of a monotonic count.
    Counter,
    /// One observation of a distribution.
    Histogram,
}

impl PointKind {
    /// The `metric_type` of the stdout line.
    pub fn as_str(self) -> &'static str {
        match self {
            PointKind::Gauge => "gauge",
            PointKind::Counter => "counter",
            PointKind::Histogram => "histogram",
        }
    }
}

/// Label name -> value, in name order.
pub type Labels = BTreeMap<String, String>;

/// One point of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub kind: PointKind,
    /// Metric name without any backend prefix (e.g. `mageai/pipeline_run/count`,
    /// `pipeline.run.finished`).
    pub name: String,
    /// The gauge value, the counter increment, or the observation.
    pub value: f64,
    /// UCUM unit (`s`, `{run}`, `1`); empty when the metric declares none (the claim gauges).
    pub unit: Cow<'static, str>,
    pub labels: Labels,
    /// Point (end) time.
    pub time: DateTime<Utc>,
    /// The project the metric is written to (the "run project").
    pub project: String,
}

impl Point {
    /// A gauge without unit (the claim metrics and the reference's count).
    pub fn gauge(
        name: impl Into<String>,
        value: f64,
        time: DateTime<Utc>,
        labels: Labels,
        project: impl Into<String>,
    ) -> Point {
        Point {
            kind: PointKind::Gauge,
            name: name.into(),
            value,
            unit: Cow::Borrowed(""),
            labels,
            time,
            project: project.into(),
        }
    }

    /// A counter increment.
    pub fn counter(
        name: impl Into<String>,
        increment: f64,
        unit: &'static str,
        time: DateTime<Utc>,
        labels: Labels,
        project: impl Into<String>,
    ) -> Point {
        Point {
            kind: PointKind::Counter,
            unit: Cow::Borrowed(unit),
            ..Point::gauge(name, increment, time, labels, project)
        }
    }

    /// One histogram observation.
    pub fn histogram(
        name: impl Into<String>,
        observation: f64,
        unit: &'static str,
        time: DateTime<Utc>,
        labels: Labels,
        project: impl Into<String>,
    ) -> Point {
        Point {
            kind: PointKind::Histogram,
            unit: Cow::Borrowed(unit),
            ..Point::gauge(name, observation, time, labels, project)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (constructor's point, kind, its `metric_type`, unit): every kind.
    #[test]
    fn constructors_set_kind_and_unit() {
        let t = Utc::now();
        let table = [
            (Point::gauge("g", 1.5, t, Labels::new(), "p"), PointKind::Gauge, "gauge", ""),
            (Point::counter("c", 1.0, "{run}", t, Labels::new(), "p"), PointKind::Counter, "counter", "{run}"),
            (Point::histogram("h", 2.5, "s", t, Labels::new(), "p"), PointKind::Histogram, "histogram", "s"),
        ];
        for (p, kind, name, unit) in table {
            assert_eq!((p.kind, p.kind.as_str(), p.unit.as_ref()), (kind, name, unit));
            assert_eq!((p.time, p.project.as_str()), (t, "p"));
        }
    }
}
