//! Alert policies: Cloud Monitoring `AlertPolicy` resources
//! (<https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies>), one file
//! each for `gcloud alpha monitoring policies create --policy-from-file=FILE`, and a Prometheus
//! alerting-rules file (<https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/>)
//! for `promtool check rules` and Prometheus' `rule_files` (or a `PrometheusRule` resource).
//!
//! Four alerts, per orchestrator and pipeline, thresholds from [`Thresholds`]:
//! 1. **failure rate**: failed runs over finished runs in `failure_window` above `failure_rate`;
//! 2. **SLA missed**: any `pipeline.run.sla_missed` in `sla_window`;
//! 3. **slow runs**: the p95 run duration in `duration_window` above `duration_p95`;
//! 4. **no successful run**: no finished run with result success in `no_success` (Cloud
//!    Monitoring: a missing series counts as no success; Prometheus: for pipelines that finished
//!    any run in `no_success_lookback`).

use std::time::Duration;

use serde_json::{Value, json};

use super::gcm::{aggregation, filter, is_count, percentile_reducer};
use super::model::Model;
use super::promql::{Selector, counted, quantile, ratio, sum_increments};
use super::{Artifact, Inputs, OpsError};
use crate::handlers::lifecycle::names;

/// Alert thresholds; [`Thresholds::default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Failed over finished runs above which a pipeline alerts (default 0.2: one run in five).
    pub failure_rate: f64,
    /// Window of the failure rate (default 1 h).
    pub failure_window: Duration,
    /// Window in which one SLA miss alerts (default 15 min; alerts stay open while misses keep
    /// coming and close after a window without any).
    pub sla_window: Duration,
    /// p95 run duration above which a pipeline alerts (default 1 h).
    pub duration_p95: Duration,
    /// Window of the p95 duration (default 1 h).
    pub duration_window: Duration,
    /// How long without a successful run before a pipeline alerts (default 24 h).
    pub no_success: Duration,
    /// Prometheus: pipelines that finished a run in this window are expected to succeed
    /// (default 7 days); Cloud Monitoring instead treats a vanished series as missing data.
    pub no_success_lookback: Duration,
    /// Cloud Monitoring notification channels (`projects/P/notificationChannels/ID`) of every
    /// policy; none by default (add them in the file or the console).
    pub notification_channels: Vec<String>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            failure_rate: 0.2,
            failure_window: Duration::from_secs(3600),
            sla_window: Duration::from_secs(900),
            duration_p95: Duration::from_secs(3600),
            duration_window: Duration::from_secs(3600),
            no_success: Duration::from_secs(24 * 3600),
            no_success_lookback: Duration::from_secs(7 * 24 * 3600),
            notification_channels: Vec::new(),
        }
    }
}

impl Thresholds {
    /// Errors: a rate outside (0, 1], a window that is not a whole number of minutes (at least
    /// one), a lookback not longer than `no_success`.
    pub fn validate(&self) -> Result<(), OpsError> {
        let bad = |name: &str, why: &str| Err(OpsError::Threshold(format!("{name}: {why}")));
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return bad("failure_rate", "must be in (0, 1]");
        }
        for (name, d) in [
            ("failure_window", self.failure_window),
            ("sla_window", self.sla_window),
            ("duration_window", self.duration_window),
            ("no_success", self.no_success),
            ("no_success_lookback", self.no_success_lookback),
        ] {
            if d.as_secs() < 60 || !d.as_secs().is_multiple_of(60) || d.subsec_nanos() != 0 {
                return bad(name, "must be a whole number of minutes, at least one");
            }
        }
        if self.duration_p95.is_zero() {
            return bad("duration_p95", "must be above zero");
        }
        if self.no_success_lookback <= self.no_success {
            return bad("no_success_lookback", "must be longer than no_success");
        }
        Ok(())
    }
}

/// A Prometheus duration (`90m`, `1h`, `7d`).
pub fn prom_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn human(d: Duration) -> String {
    prom_duration(d).replace('d', " d").replace('h', " h").replace('m', " min").replace('s', " s")
}

const BY: [&str; 2] = ["orchestrator", "pipeline"];

struct Alert {
    /// File-name slug and Prometheus alert name.
    slug: &'static str,
    name: &'static str,
    title: String,
    summary: String,
    severity: &'static str,
}

fn alerts_for(model: &Model, t: &Thresholds) -> Vec<Alert> {
    let mut out = Vec::new();
    if model.get(names::RUN_FINISHED).is_some() {
        out.push(Alert {
            slug: "failure-rate",
            name: "PipelineRunFailureRateHigh",
            title: format!("Pipeline failure rate above {}%", t.failure_rate * 100.0),
            summary: format!(
                "More than {}% of the finished runs of a pipeline failed in the last {}.",
                t.failure_rate * 100.0,
                human(t.failure_window)
            ),
            severity: "ERROR",
        });
    }
    if model.get(names::RUN_SLA_MISSED).is_some() {
        out.push(Alert {
            slug: "sla-missed",
            name: "PipelineRunSlaMissed",
            title: "Pipeline run missed its SLA".into(),
            summary: format!("A run of a pipeline missed its SLA or deadline in the last {}.", human(t.sla_window)),
            severity: "WARNING",
        });
    }
    if model.get(names::RUN_DURATION).is_some() {
        out.push(Alert {
            slug: "duration-p95",
            name: "PipelineRunDurationP95High",
            title: format!("Pipeline p95 run duration above {}", human(t.duration_p95)),
            summary: format!(
                "The 95th percentile of the run durations of a pipeline in the last {} is above {}.",
                human(t.duration_window),
                human(t.duration_p95)
            ),
            severity: "WARNING",
        });
    }
    if model.get(names::RUN_FINISHED).is_some() {
        out.push(Alert {
            slug: "no-success",
            name: "PipelineNoSuccessfulRun",
            title: format!("No successful pipeline run for {}", human(t.no_success)),
            summary: format!(
                "A pipeline has not finished a run with result success in the last {}.",
                human(t.no_success)
            ),
            severity: "ERROR",
        });
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn gcm_condition(model: &Model, inputs: &Inputs, slug: &str, t: &Thresholds) -> Result<Value, OpsError> {
    let source = inputs.gcm_source;
    let by: Vec<String> = BY.iter().map(|s| s.to_string()).collect();
    let get = |n: &str| model.get(n).ok_or_else(|| OpsError::Unknown(n.to_string()));
    let success = vec![("result".to_string(), "success".to_string())];
    Ok(match slug {
        "failure-rate" => {
            let m = get(names::RUN_FINISHED)?;
            let failure = vec![("result".to_string(), "failure".to_string())];
            let agg = aggregation(t.failure_window.as_secs(), "ALIGN_DELTA", "REDUCE_SUM", &by);
            json!({"displayName": "failed / finished runs", "conditionThreshold": {
                "filter": filter(source, m, &failure),
                "aggregations": [agg],
                "denominatorFilter": filter(source, m, &[]),
                "denominatorAggregations": [agg],
                "comparison": "COMPARISON_GT",
                "thresholdValue": t.failure_rate,
                "duration": "0s",
                "trigger": {"count": 1},
                "evaluationMissingData": "EVALUATION_MISSING_DATA_INACTIVE",
            }})
        }
        "sla-missed" => {
            let m = get(names::RUN_SLA_MISSED)?;
            let reducer = if is_count(source, m) { "REDUCE_SUM" } else { "REDUCE_COUNT" };
            json!({"displayName": "SLA misses", "conditionThreshold": {
                "filter": filter(source, m, &[]),
                "aggregations": [aggregation(t.sla_window.as_secs(), "ALIGN_DELTA", reducer, &by)],
                "comparison": "COMPARISON_GT",
                "thresholdValue": 0,
                "duration": "0s",
                "trigger": {"count": 1},
                "evaluationMissingData": "EVALUATION_MISSING_DATA_INACTIVE",
            }})
        }
        "duration-p95" => {
            let m = get(names::RUN_DURATION)?;
            let reducer = percentile_reducer(0.95).expect("p95");
            json!({"displayName": "p95 run duration (s)", "conditionThreshold": {
                "filter": filter(source, m, &[]),
                "aggregations": [aggregation(t.duration_window.as_secs(), "ALIGN_DELTA", reducer, &by)],
                "comparison": "COMPARISON_GT",
                "thresholdValue": t.duration_p95.as_secs_f64(),
                "duration": "0s",
                "trigger": {"count": 1},
                "evaluationMissingData": "EVALUATION_MISSING_DATA_INACTIVE",
            }})
        }
        "no-success" => {
            // a window of at most 24 h, held for the rest of `no_success`: no success in either
            let m = get(names::RUN_FINISHED)?;
            let window = t.no_success.min(Duration::from_secs(86_400));
            json!({"displayName": "successful runs", "conditionThreshold": {
                "filter": filter(source, m, &success),
                "aggregations": [aggregation(window.as_secs(), "ALIGN_DELTA", "REDUCE_SUM", &by)],
                "comparison": "COMPARISON_LT",
                "thresholdValue": 1,
                "duration": secs(t.no_success - window),
                "trigger": {"count": 1},
                // the series of a pipeline that stops succeeding may end (logs-based metrics
                // write nothing without lines, instances of the `gcm` backend stop): no data is
                // no success
                "evaluationMissingData": "EVALUATION_MISSING_DATA_ACTIVE",
            }})
        }
        other => return Err(OpsError::Unknown(other.to_string())),
    })
}

fn gcm_policies(inputs: &Inputs, model: &Model, t: &Thresholds) -> Result<Vec<Artifact>, OpsError> {
    let mut out = Vec::new();
    for a in alerts_for(model, t) {
        let mut policy = json!({
            "displayName": format!("{}: {}", inputs.title, a.title),
            "documentation": {
                "content": format!(
                    "{} Labels `orchestrator` and `pipeline` name it. Generated by pipeline-run-metrics from the \
                     lifecycle profiles in force.",
                    a.summary
                ),
                "mimeType": "text/markdown",
                "subject": a.title,
            },
            "userLabels": {"source": "pipeline-run-metrics", "alert": a.slug.replace('-', "_")},
            "conditions": [gcm_condition(model, inputs, a.slug, t)?],
            "combiner": "OR",
            "severity": a.severity,
            "alertStrategy": {"autoClose": "604800s"},
        });
        if !t.notification_channels.is_empty() {
            policy["notificationChannels"] = json!(t.notification_channels);
        }
        out.push(Artifact {
            file_name: format!("alert-{}.json", a.slug),
            content: serde_json::to_string_pretty(&policy).expect("JSON of JSON values"),
        });
    }
    Ok(out)
}

fn prom_expr(model: &Model, slug: &str, t: &Thresholds) -> Result<String, OpsError> {
    let by: Vec<String> = BY.iter().map(|s| s.to_string()).collect();
    let get = |n: &str| model.get(n).ok_or_else(|| OpsError::Unknown(n.to_string()));
    Ok(match slug {
        "failure-rate" => {
            let m = get(names::RUN_FINISHED)?;
            let w = prom_duration(t.failure_window);
            format!("{} > {}", ratio(&counted(m).eq("result", "failure"), &counted(m), &w, &by), t.failure_rate)
        }
        "sla-missed" => {
            let m = get(names::RUN_SLA_MISSED)?;
            format!("{} > 0", sum_increments(&counted(m), &prom_duration(t.sla_window), &by))
        }
        "duration-p95" => {
            let m = get(names::RUN_DURATION)?;
            let q = quantile(&Selector::of(m, "_bucket"), 0.95, &prom_duration(t.duration_window), &by);
            format!("{q} > {}", t.duration_p95.as_secs_f64())
        }
        "no-success" => {
            let m = get(names::RUN_FINISHED)?;
            let active = sum_increments(&counted(m), &prom_duration(t.no_success_lookback), &by);
            let ok = sum_increments(&counted(m).eq("result", "success"), &prom_duration(t.no_success), &by);
            format!("({active} > 0) unless on ({}) ({ok} > 0)", by.join(", "))
        }
        other => return Err(OpsError::Unknown(other.to_string())),
    })
}

/// A file-name stem of a title: alphanumerics, `-` and `_` kept, anything else `-`.
fn file_stem(title: &str) -> String {
    title.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).collect()
}

/// A YAML scalar: a JSON string is a valid YAML double-quoted scalar.
fn y(s: &str) -> String {
    serde_json::to_string(s).expect("a string")
}

fn prometheus_rules(inputs: &Inputs, model: &Model, t: &Thresholds) -> Result<Vec<Artifact>, OpsError> {
    let mut text = String::from(
        "# Prometheus alerting rules of pipeline-run-metrics (generated from the lifecycle profiles in force).\n\
         # Metric names: the OTLP metrics as Prometheus stores them (OpenTelemetry's Prometheus translation).\n\
         groups:\n  - name: pipeline-run-metrics\n",
    );
    let alerts = alerts_for(model, t);
    text.push_str(if alerts.is_empty() { "    rules: []\n" } else { "    rules:\n" });
    for a in alerts {
        let severity = if a.severity == "ERROR" { "critical" } else { "warning" };
        text.push_str(&format!("      - alert: {}\n", a.name));
        text.push_str(&format!("        expr: {}\n", y(&prom_expr(model, a.slug, t)?)));
        text.push_str("        labels:\n");
        text.push_str(&format!("          severity: {}\n", y(severity)));
        text.push_str(&format!("          service: {}\n", y("pipeline-run-metrics")));
        text.push_str("        annotations:\n");
        text.push_str(&format!("          summary: {}\n", y(&format!("{}: {{{{ $labels.pipeline }}}}", a.title))));
        text.push_str(&format!(
            "          description: {}\n",
            y(&format!(
                "{} Orchestrator {{{{ $labels.orchestrator }}}}, pipeline {{{{ $labels.pipeline }}}}, value {{{{ $value }}}}.",
                a.summary
            ))
        ));
    }
    Ok(vec![Artifact { file_name: format!("{}.rules.yml", file_stem(&inputs.title)), content: text }])
}

/// Renders the alert policies (see the module documentation).
pub fn render(
    format: super::AlertFormat,
    inputs: &Inputs,
    model: &Model,
    t: &Thresholds,
) -> Result<Vec<Artifact>, OpsError> {
    t.validate()?;
    match format {
        super::AlertFormat::Gcm => gcm_policies(inputs, model, t),
        super::AlertFormat::Prometheus => prometheus_rules(inputs, model, t),
    }
}
