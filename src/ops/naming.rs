//! How each backend names a metric.
//!
//! * Cloud Monitoring, `METRICS_BACKEND=gcm`: `custom.googleapis.com/<name>` ([`GCM_CUSTOM`],
//!   the sink's prefix); logs-based metrics defined by [`super::log_metrics`]:
//!   `logging.googleapis.com/user/<name>` ([`GCM_LOGS_BASED`]).
//! * Prometheus, for metrics sent with `METRICS_BACKEND=otlp` through an OpenTelemetry Collector
//!   (or Prometheus' own OTLP receiver): [`prometheus_name`], the OpenTelemetry specification's
//!   translation ("Prometheus and OpenMetrics Compatibility", *OTLP Metric points to
//!   Prometheus*, `specification/compatibility/prometheus_and_openmetrics.md`): characters
//!   outside `[a-zA-Z0-9_:]` become `_` and runs of `_` collapse into one; the UCUM unit becomes
//!   a suffix (`s` -> `_seconds`; a unit in braces such as `{run}` is dropped, "a count of foo is
//!   considered unitless"; `1` -> `_ratio` for gauges) unless the name already ends with it;
//!   a monotonic Sum (our counters, DELTA turned cumulative by the collector's
//!   `deltatocumulative` processor) gets `_total`; a histogram is the series `<name>_bucket`
//!   (label `le`), `<name>_sum` and `<name>_count`. The collector's translator
//!   (`pkg/translator/prometheus`, "Prometheus Normalization") implements the same rules.
//!   Attributes become labels as they are (ours are already `[a-z_]`); `service.instance.id`
//!   becomes the `instance` label and `service.name` the `job` label.

use crate::sink::PointKind;

/// The metric-type prefix of the `gcm` sink (`crate::sink::gcm::METRIC_PREFIX`).
pub const GCM_CUSTOM: &str = "custom.googleapis.com/";
/// The metric-type prefix of user-defined logs-based metrics.
pub const GCM_LOGS_BASED: &str = "logging.googleapis.com/user/";

/// The Prometheus unit word of a UCUM unit, as the OpenTelemetry specification converts it, or
/// `None` when the unit adds no suffix.
pub fn prometheus_unit(ucum: &str, kind: PointKind) -> Option<&'static str> {
    match ucum {
        "" => None,
        u if u.starts_with('{') && u.ends_with('}') => None,
        "1" if kind == PointKind::Gauge => Some("ratio"),
        "1" => None,
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "us" => Some("microseconds"),
        "min" => Some("minutes"),
        "h" => Some("hours"),
        "d" => Some("days"),
        "By" => Some("bytes"),
        "%" => Some("percent"),
        _ => None,
    }
}

/// Characters outside `[a-zA-Z0-9_:]` replaced with `_`, runs of `_` collapsed into one.
pub fn prometheus_sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The Prometheus metric name of an OTLP metric (for a histogram, the family name: add
/// `_bucket`, `_sum` or `_count`). See the module documentation for the rules.
pub fn prometheus_name(name: &str, kind: PointKind, unit: &str) -> String {
    let mut out = prometheus_sanitize(name);
    if let Some(u) = prometheus_unit(unit, kind)
        && !out.ends_with(&format!("_{u}"))
    {
        out.push('_');
        out.push_str(u);
    }
    if kind == PointKind::Counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of the specification and of the collector's "Prometheus Normalization".
    #[test]
    fn names_follow_the_opentelemetry_translation() {
        let cases = [
            ("pipeline.run.finished", PointKind::Counter, "{run}", "pipeline_run_finished_total"),
            ("pipeline.run.duration", PointKind::Histogram, "s", "pipeline_run_duration_seconds"),
            ("pipeline.cdc.lag", PointKind::Histogram, "s", "pipeline_cdc_lag_seconds"),
            ("pipeline.run.records", PointKind::Counter, "{record}", "pipeline_run_records_total"),
            (
                "claims/pipeline/filtered_pre/vl_pago/total",
                PointKind::Gauge,
                "",
                "claims_pipeline_filtered_pre_vl_pago_total",
            ),
            ("mageai/pipeline_run/count", PointKind::Gauge, "", "mageai_pipeline_run_count"),
            ("system.filesystem.usage", PointKind::Gauge, "By", "system_filesystem_usage_bytes"),
            ("system.network.dropped", PointKind::Counter, "{packets}", "system_network_dropped_total"),
            ("system.memory.utilization", PointKind::Gauge, "1", "system_memory_utilization_ratio"),
            ("http.server.duration", PointKind::Histogram, "s", "http_server_duration_seconds"),
            ("already_seconds", PointKind::Histogram, "s", "already_seconds"),
            ("requests_total", PointKind::Counter, "", "requests_total"),
            ("a..b//c", PointKind::Gauge, "", "a_b_c"),
        ];
        for (name, kind, unit, want) in cases {
            assert_eq!(prometheus_name(name, kind, unit), want, "{name} {unit}");
        }
    }
}
