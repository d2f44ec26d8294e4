//! CloudWatch metric filters for the stdout lines (`METRICS_FORMAT=json`) in the function's log
//! group: a CloudFormation template of `AWS::Logs::MetricFilter` resources
//! (<https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-logs-metricfilter.html>)
//! or `aws logs put-metric-filter` commands.
//!
//! One filter per metric, matching exactly its lines with a JSON filter pattern
//! (`{ ($.message = "METRIC") && ($.metric_type = "counter") && ($.name = "pipeline.run.finished") }`),
//! publishing `$.value` (1 per fact for counters, one observation for histograms, the gauge's
//! value) under the metric's name in the namespace, unit from UCUM like the EMF lines. A filter
//! takes at most three dimensions: the first three of `pipeline`, `task`, `result`,
//! `orchestrator`, `table`, `run_kind` the metric has (for a gauge: its labels), never a label
//! that a line may lack. Read counters with the `Sum` statistic, histograms with percentiles.
//!
//! With `METRICS_FORMAT=emf` no filter is needed: each line is an Embedded Metric Format record
//! that CloudWatch turns into metrics itself, with every label as a dimension (and these filters
//! match no EMF line: those have no `message`).

use serde_json::{Value, json};

use super::model::{Metric, Model, Origin};
use super::{Artifact, Inputs, OpsError};
use crate::sink::stdout::cloudwatch_unit;

/// CloudWatch's limit of dimensions per metric filter.
pub const MAX_DIMENSIONS: usize = 3;
/// CloudWatch's limit of metric filters per log group.
pub const MAX_FILTERS: usize = 100;
const PRIORITY: [&str; 6] = ["pipeline", "task", "result", "orchestrator", "table", "run_kind"];

/// The dimensions of a metric's filter (see the module documentation): labels every line
/// carries with a value, the lifecycle ones in the order above, a gauge's in name order.
pub fn dimensions(m: &Metric) -> Vec<String> {
    let mut v: Vec<String> = PRIORITY.iter().filter(|k| m.always.contains(**k)).map(|k| k.to_string()).collect();
    if m.origin != Origin::Lifecycle {
        v.extend(m.always.iter().filter(|k| !PRIORITY.contains(&k.as_str())).cloned());
    }
    v.truncate(MAX_DIMENSIONS);
    v
}

/// The filter pattern of a metric's lines.
pub fn pattern(m: &Metric) -> String {
    format!("{{ ($.message = \"METRIC\") && ($.metric_type = \"{}\") && ($.name = \"{}\") }}", m.kind.as_str(), m.name)
}

fn filter_name(m: &Metric) -> String {
    format!("pipeline-run-metrics {}", m.name)
}

/// A CloudFormation logical id: the alphanumeric parts of the name, capitalised.
fn logical_id(name: &str) -> String {
    let mut out = String::from("Filter");
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let mut c = part.chars();
        if let Some(f) = c.next() {
            out.push(f.to_ascii_uppercase());
            out.push_str(c.as_str());
        }
    }
    out
}

fn all(model: &Model) -> Result<Vec<&Metric>, OpsError> {
    let v: Vec<&Metric> = model.metrics.values().collect();
    if v.len() > MAX_FILTERS {
        return Err(OpsError::Name(format!(
            "{} metrics: CloudWatch takes {MAX_FILTERS} metric filters per log group",
            v.len()
        )));
    }
    Ok(v)
}

/// The CloudFormation template (parameters `LogGroupName`, `Namespace`).
pub fn template(inputs: &Inputs, model: &Model) -> Result<Vec<Artifact>, OpsError> {
    let mut resources = serde_json::Map::new();
    for m in all(model)? {
        let dims: Vec<Value> =
            dimensions(m).iter().map(|k| json!({"Key": k, "Value": format!("$.labels.{k}")})).collect();
        let mut t = json!({
            "MetricName": m.name,
            "MetricNamespace": {"Ref": "Namespace"},
            "MetricValue": "$.value",
            "Unit": cloudwatch_unit(&m.unit),
        });
        if !dims.is_empty() {
            t["Dimensions"] = json!(dims);
        }
        let id = logical_id(&m.name);
        if resources.contains_key(&id) {
            return Err(OpsError::Name(format!("two metrics make the logical id {id}")));
        }
        resources.insert(
            id,
            json!({"Type": "AWS::Logs::MetricFilter", "Properties": {
                "LogGroupName": {"Ref": "LogGroupName"},
                "FilterName": filter_name(m),
                "FilterPattern": pattern(m),
                "MetricTransformations": [t],
            }}),
        );
    }
    let doc = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "CloudWatch metric filters for the METRIC lines of pipeline-run-metrics (METRICS_FORMAT=json); not needed with METRICS_FORMAT=emf.",
        "Parameters": {
            "LogGroupName": {"Type": "String", "Default": inputs.log_group, "Description": "The function's log group"},
            "Namespace": {"Type": "String", "Default": inputs.cloudwatch_namespace, "Description": "CloudWatch namespace of the metrics"},
        },
        "Resources": resources,
    });
    Ok(vec![Artifact {
        file_name: "cloudwatch-metric-filters.json".into(),
        content: serde_json::to_string_pretty(&doc).expect("JSON of JSON values"),
    }])
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `aws logs put-metric-filter` commands (create or replace), one per metric.
pub fn script(inputs: &Inputs, model: &Model) -> Result<Vec<Artifact>, OpsError> {
    let mut s = format!(
        "#!/usr/bin/env bash\n\
         # CloudWatch metric filters for the METRIC lines of pipeline-run-metrics (METRICS_FORMAT=json);\n\
         # not needed with METRICS_FORMAT=emf. put-metric-filter creates or replaces, so this can run again.\n\
         set -euo pipefail\n\
         LOG_GROUP=\"${{LOG_GROUP:-{}}}\"\n",
        inputs.log_group
    );
    for m in all(model)? {
        let dims: serde_json::Map<String, Value> =
            dimensions(m).iter().map(|k| (k.clone(), json!(format!("$.labels.{k}")))).collect();
        let mut t = json!({
            "metricName": m.name,
            "metricNamespace": inputs.cloudwatch_namespace,
            "metricValue": "$.value",
            "unit": cloudwatch_unit(&m.unit),
        });
        if !dims.is_empty() {
            t["dimensions"] = Value::Object(dims);
        }
        s.push_str(&format!(
            "aws logs put-metric-filter --log-group-name \"$LOG_GROUP\" --filter-name {} --filter-pattern {} --metric-transformations {}\n",
            sh_quote(&filter_name(m)),
            sh_quote(&pattern(m)),
            sh_quote(&serde_json::to_string(&json!([t])).expect("JSON"))
        ));
    }
    Ok(vec![Artifact { file_name: "cloudwatch-metric-filters.sh".into(), content: s }])
}
