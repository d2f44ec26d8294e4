//! Logs-based metrics on Google Cloud: one `LogMetric` (Cloud Logging API v2,
//! <https://cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics>) per metric
//! of the stdout lines (`METRICS_BACKEND=stdout`, `METRICS_FORMAT=json`), for
//! `gcloud logging metrics create NAME --config-from-file=FILE`, or one script that creates (or
//! updates) them all.
//!
//! Each line is one JSON log entry: `jsonPayload.message = "METRIC"`, `jsonPayload.metric_type`
//! (`counter`, `histogram`, `gauge`), `jsonPayload.name`, `jsonPayload.value`,
//! `jsonPayload.labels.<key>`. A metric's filter selects exactly its lines (scope, message, kind
//! and name), so every line is counted by exactly one metric:
//! * a metric with one line per occurrence (the lifecycle counters but `pipeline.run.records`,
//!   the reference count `mageai/pipeline_run/count` and `handler_execution_failure`): a
//!   counter, `DELTA`/`INT64`, that counts the lines;
//! * any other (histograms, `pipeline.run.records`, the claim gauges): a distribution,
//!   `DELTA`/`DISTRIBUTION` with `valueExtractor: EXTRACT(jsonPayload.value)`, which keeps the
//!   count, the mean (so the sum) and the buckets of the values: explicit buckets of
//!   `sink::aggregate::SECONDS_BOUNDS` for seconds, exponential buckets otherwise;
//! * every label key the metric can carry has a label extractor
//!   `EXTRACT(jsonPayload.labels.<key>)` (a line without the key gets an empty value).
//!
//! Cloud Monitoring then shows `logging.googleapis.com/user/<name>`, counted by Cloud Logging
//! from the lines however many instances wrote them.

use serde_json::{Value, json};

use super::model::{Metric, Model, Origin};
use super::{Artifact, Inputs, OpsError};
use crate::sink::PointKind;
use crate::sink::aggregate::SECONDS_BOUNDS;

/// The Cloud Logging API's limit of labels per logs-based metric.
pub const MAX_LABELS: usize = 10;
/// The Cloud Logging API's limit of a metric identifier's length.
pub const MAX_NAME_LEN: usize = 100;

/// Whether `name` can be a logs-based metric identifier: up to 100 characters of
/// `A-Za-z0-9_-.,+!*',()%/`, not starting with `/`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('/')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.,+!*',()%/".contains(c))
}

/// The filter of a metric's lines, within `scope` (a Logging query of the function's entries).
pub fn filter(scope: Option<&str>, m: &Metric) -> String {
    let own = format!(
        "jsonPayload.message=\"METRIC\" AND jsonPayload.metric_type=\"{}\" AND jsonPayload.name=\"{}\"",
        m.kind.as_str(),
        m.name
    );
    match scope {
        Some(s) if !s.trim().is_empty() => format!("({s}) AND {own}"),
        _ => own,
    }
}

fn description(m: &Metric) -> String {
    let what = match m.origin {
        Origin::Lifecycle => "run-lifecycle metric",
        Origin::Handler => "catalogue gauge",
        Origin::Failure => "handler failure gauge",
    };
    let how = if m.one_per_line() { "lines counted" } else { "values of the lines" };
    format!("pipeline-run-metrics {what} {} ({} {how})", m.name, m.kind.as_str())
}

/// The `LogMetric` of one metric.
pub fn log_metric(scope: Option<&str>, m: &Metric) -> Result<Value, OpsError> {
    if !valid_name(&m.name) {
        return Err(OpsError::Name(format!("'{}' cannot be a logs-based metric name", m.name)));
    }
    if m.labels.len() > MAX_LABELS {
        return Err(OpsError::Name(format!(
            "{} has {} labels; logs-based metrics take {MAX_LABELS}",
            m.name,
            m.labels.len()
        )));
    }
    let labels: Vec<Value> = m
        .labels
        .iter()
        .map(|k| json!({"key": k, "valueType": "STRING", "description": format!("label {k} of the line")}))
        .collect();
    let extractors: serde_json::Map<String, Value> =
        m.labels.iter().map(|k| (k.clone(), json!(format!("EXTRACT(jsonPayload.labels.{k})")))).collect();
    let mut out = json!({
        "name": m.name,
        "description": description(m),
        "filter": filter(scope, m),
        "labelExtractors": extractors,
    });
    if m.one_per_line() {
        out["metricDescriptor"] = json!({"metricKind": "DELTA", "valueType": "INT64", "unit": "1", "labels": labels});
    } else {
        let unit = if m.unit.is_empty() { "1" } else { m.unit.as_str() };
        out["metricDescriptor"] =
            json!({"metricKind": "DELTA", "valueType": "DISTRIBUTION", "unit": unit, "labels": labels});
        out["valueExtractor"] = json!("EXTRACT(jsonPayload.value)");
        out["bucketOptions"] = if m.unit == "s" {
            json!({"explicitBuckets": {"bounds": SECONDS_BOUNDS}})
        } else {
            // counts of records and the claim values (fractions to sums of money): 1e-4 .. ~1.8e15
            json!({"exponentialBuckets": {"numFiniteBuckets": 64, "growthFactor": 2.0, "scale": 0.0001}})
        };
    }
    Ok(out)
}

/// The metrics with a logs-based definition: all of the model (lifecycle, catalogue gauges,
/// the reference count, the failure gauge).
fn metrics(model: &Model) -> impl Iterator<Item = &Metric> {
    model.metrics.values().filter(|m| matches!(m.kind, PointKind::Counter | PointKind::Histogram | PointKind::Gauge))
}

/// A file name for a metric (`/` is not allowed in file names).
pub fn file_name(name: &str) -> String {
    format!("log-metric-{}.json", name.replace('/', "__"))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// One `LogMetric` JSON file per metric.
pub fn json_files(inputs: &Inputs, model: &Model) -> Result<Vec<Artifact>, OpsError> {
    let scope = inputs.log_scope.as_deref();
    metrics(model)
        .map(|m| {
            Ok(Artifact {
                file_name: file_name(&m.name),
                content: serde_json::to_string_pretty(&log_metric(scope, m)?).expect("JSON of JSON values"),
            })
        })
        .collect()
}

/// One bash script: per metric, its `LogMetric` in a here-document and one gcloud command that
/// creates it, or updates it when it exists (so the script can run again after a change).
pub fn script(inputs: &Inputs, model: &Model) -> Result<Vec<Artifact>, OpsError> {
    let scope = inputs.log_scope.as_deref();
    let mut s = String::from(
        "#!/usr/bin/env bash\n\
         # Creates (or updates) the logs-based metrics that count the METRIC lines of pipeline-run-metrics\n\
         # (METRICS_BACKEND=stdout) in Cloud Logging; generated from the handler catalogue and the lifecycle\n\
         # profiles in force. Usage: PROJECT=my-project bash this-script.sh (default: gcloud's project).\n\
         set -euo pipefail\n\
         PROJECT=\"${PROJECT:-$(gcloud config get-value project 2>/dev/null)}\"\n\
         dir=$(mktemp -d)\n\
         trap 'rm -rf \"$dir\"' EXIT\n\
         apply() { # NAME FILE: create the metric, or update it if it exists\n\
         \x20 if gcloud logging metrics describe \"$1\" --project=\"$PROJECT\" >/dev/null 2>&1; then\n\
         \x20   gcloud logging metrics update \"$1\" --project=\"$PROJECT\" --config-from-file=\"$2\"\n\
         \x20 else\n\
         \x20   gcloud logging metrics create \"$1\" --project=\"$PROJECT\" --config-from-file=\"$2\"\n\
         \x20 fi\n\
         }\n",
    );
    for (i, m) in metrics(model).enumerate() {
        let body = serde_json::to_string_pretty(&log_metric(scope, m)?).expect("JSON of JSON values");
        s.push_str(&format!("\n# {} ({})\n", m.name, m.kind.as_str()));
        s.push_str(&format!("cat > \"$dir/{i}.json\" <<'LOG_METRIC'\n{body}\nLOG_METRIC\n"));
        s.push_str(&format!("apply {} \"$dir/{i}.json\"\n", sh_quote(&m.name)));
    }
    Ok(vec![Artifact { file_name: "create-log-metrics.sh".into(), content: s }])
}
