//! What Cloud Monitoring reads, shared by the dashboard and the alert policies: the metric type
//! of each metric under the chosen source, filters and aggregations (REST resource
//! `Aggregation`: <https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies#Aggregation>).

use serde_json::{Value, json};

use super::GcmSource;
use super::model::Metric;
use super::naming::{GCM_CUSTOM, GCM_LOGS_BASED};
use crate::sink::PointKind;

/// The metric type of a metric (`custom.googleapis.com/pipeline.run.finished`).
pub fn metric_type(source: GcmSource, name: &str) -> String {
    match source {
        GcmSource::Custom => format!("{GCM_CUSTOM}{name}"),
        GcmSource::LogsBased => format!("{GCM_LOGS_BASED}{name}"),
    }
}

/// A Monitoring filter for the series of a metric with these label values: its type, for the
/// per-instance cumulative series of the `gcm` sink also the `generic_task` resource they are
/// written against.
pub fn filter(source: GcmSource, m: &Metric, matchers: &[(String, String)]) -> String {
    let mut out = format!("metric.type=\"{}\"", metric_type(source, &m.name));
    if source == GcmSource::Custom && m.kind != PointKind::Gauge {
        out.push_str(" AND resource.type=\"generic_task\"");
    }
    for (k, v) in matchers {
        out.push_str(&format!(" AND metric.labels.{k}=\"{v}\""));
    }
    out
}

/// Whether the metric is a counter under this source: a DELTA/CUMULATIVE INT64 series whose
/// aligned delta is a count. Under logs-based metrics, only metrics with one line per
/// occurrence are counters; the others are distributions.
pub fn is_count(source: GcmSource, m: &Metric) -> bool {
    match source {
        GcmSource::Custom => m.kind == PointKind::Counter,
        GcmSource::LogsBased => m.one_per_line(),
    }
}

/// `groupByFields` of metric labels.
pub fn group_by(by: &[String]) -> Value {
    json!(by.iter().map(|k| format!("metric.label.{k}")).collect::<Vec<_>>())
}

/// An aggregation: `period` seconds, an aligner, and a cross-series reducer over `by` (which
/// sums across instances: the `task_id` of the cumulative series is not kept).
pub fn aggregation(period: u64, aligner: &str, reducer: &str, by: &[String]) -> Value {
    let mut a = json!({
        "alignmentPeriod": format!("{period}s"),
        "perSeriesAligner": aligner,
        "crossSeriesReducer": reducer,
    });
    if !by.is_empty() {
        a["groupByFields"] = group_by(by);
    }
    a
}

/// The percentile reducer of a quantile (0.5, 0.95, 0.99, 0.05).
pub fn percentile_reducer(q: f64) -> Option<&'static str> {
    match (q * 100.0).round() as u32 {
        50 => Some("REDUCE_PERCENTILE_50"),
        95 => Some("REDUCE_PERCENTILE_95"),
        99 => Some("REDUCE_PERCENTILE_99"),
        5 => Some("REDUCE_PERCENTILE_05"),
        _ => None,
    }
}
