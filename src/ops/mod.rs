//! Dashboards, alert policies and metric definitions as code, generated from the handler
//! catalogue and the lifecycle profiles in force, so that they name exactly the metrics and
//! labels the function writes.
//!
//! | function | formats | what |
//! |---|---|---|
//! | [`dashboard`] | [`DashboardFormat::Gcm`], [`DashboardFormat::Grafana`] | one dashboard, the same panels in both ([`panels`]): runs started and finished by result, success rate, p50/p95 run duration, queue wait and schedule delay, SLA misses, retries, task failures, retries and p95 durations, CDC lag, the claim gauges and handler failures |
//! | [`alerts`] | [`AlertFormat::Gcm`] (one `AlertPolicy` file each), [`AlertFormat::Prometheus`] (one rules file) | failure rate, SLA misses, p95 run duration, no successful run for N hours ([`Thresholds`]) |
//! | [`log_metrics`] | [`LogMetricFormat::GcloudJson`], [`LogMetricFormat::GcloudScript`], [`LogMetricFormat::CloudWatchTemplate`], [`LogMetricFormat::CloudWatchScript`] | the definitions that turn the stdout lines into metrics: Cloud Logging logs-based metrics ([`logs_metrics`]) or CloudWatch metric filters ([`cloudwatch`]) |
//!
//! Metric names per backend are in [`naming`]: Cloud Monitoring reads `custom.googleapis.com/<name>`
//! (`METRICS_BACKEND=gcm`) or `logging.googleapis.com/user/<name>` (the logs-based metrics),
//! chosen by [`Inputs::gcm_source`]; Prometheus reads the OTLP metrics as the OpenTelemetry
//! Prometheus translation names them.
//!
//! ```no_run
//! use pipeline_run_metrics::{handlers, ops};
//! let catalogue = handlers::all(None).unwrap();
//! let profiles = handlers::lifecycle::load(None, None).unwrap();
//! let inputs = ops::Inputs::new(&catalogue, &profiles);
//! let json = ops::dashboard(ops::DashboardFormat::Grafana, &inputs).unwrap();
//! for file in ops::alerts(ops::AlertFormat::Prometheus, &inputs, &ops::Thresholds::default()).unwrap() {
//!     std::fs::write(&file.file_name, &file.content).unwrap();
//! }
//! # let _ = json;
//! ```

pub mod alerts;
pub mod cloudwatch;
pub mod gcm;
pub mod gcm_dashboard;
pub mod grafana;
pub mod logs_metrics;
pub mod model;
pub mod naming;
pub mod panels;
pub mod promql;

use std::str::FromStr;
use std::sync::Arc;

pub use alerts::Thresholds;
pub use model::{Metric, Model, Origin};

use crate::handlers::Handler;
use crate::handlers::lifecycle::Profile;

/// Where the Cloud Monitoring dashboard and alert policies read the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GcmSource {
    /// `METRICS_BACKEND=gcm`: `custom.googleapis.com/<name>`; counters and histograms are one
    /// cumulative series per instance (resource `generic_task`, `task_id`), summed by every
    /// query.
    #[default]
    Custom,
    /// `METRICS_BACKEND=stdout` and the logs-based metrics of [`log_metrics`]:
    /// `logging.googleapis.com/user/<name>`.
    LogsBased,
}

/// What the generators read: the handlers and profiles in force, and a few names.
#[derive(Clone)]
pub struct Inputs<'a> {
    /// The handler catalogue (`handlers::all`): its gauges, and whether the failure gauge exists.
    pub handlers: &'a [Arc<dyn Handler>],
    /// The lifecycle profiles in force (`handlers::lifecycle::load`): which lifecycle metrics
    /// exist and their labels (an empty list: no lifecycle panels or alerts).
    pub profiles: &'a [Profile],
    /// Cloud Monitoring's source of the metrics (default [`GcmSource::Custom`]).
    pub gcm_source: GcmSource,
    /// Dashboard title, and prefix of the alert policies' names (default `pipeline-run-metrics`).
    pub title: String,
    /// Logs-based metrics: the Logging query that selects the function's stdout entries, ANDed
    /// with each metric's filter (default `log_id("run.googleapis.com/stdout")`, Cloud Run's
    /// stdout; add `resource.labels.service_name="..."` to keep other services' lines out; `None`:
    /// every entry of the project).
    pub log_scope: Option<String>,
    /// CloudWatch metric filters: the log group (default `/aws/lambda/pipeline-run-metrics`, the
    /// SAM template's) and the namespace (default `pipeline-run-metrics`, as `EMF_NAMESPACE`).
    pub log_group: String,
    pub cloudwatch_namespace: String,
}

impl<'a> Inputs<'a> {
    /// The inputs with the documented defaults.
    pub fn new(handlers: &'a [Arc<dyn Handler>], profiles: &'a [Profile]) -> Inputs<'a> {
        Inputs {
            handlers,
            profiles,
            gcm_source: GcmSource::Custom,
            title: "pipeline-run-metrics".into(),
            log_scope: Some("log_id(\"run.googleapis.com/stdout\")".into()),
            log_group: "/aws/lambda/pipeline-run-metrics".into(),
            cloudwatch_namespace: "pipeline-run-metrics".into(),
        }
    }
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// A suggested file name (no directory).
    pub file_name: String,
    pub content: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OpsError {
    /// Neither a handler metric nor a lifecycle profile: nothing to show.
    #[error("no metrics: the inputs have no handler metric and no lifecycle profile")]
    Empty,
    #[error("invalid threshold {0}")]
    Threshold(String),
    /// A metric or label that a backend cannot name (a logs-based metric name, too many labels).
    #[error("{0}")]
    Name(String),
    #[error("no percentile reducer for the quantile {0}")]
    Quantile(f64),
    /// A generator asked for a metric the inputs do not have (a bug).
    #[error("unknown metric {0}")]
    Unknown(String),
    #[error("unknown format '{0}'")]
    Format(String),
}

macro_rules! format_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }
        impl $name {
            /// Every format, as the command line names it.
            pub const ALL: &'static [(&'static str, $name)] = &[$(($text, $name::$variant)),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl FromStr for $name {
            type Err = OpsError;
            fn from_str(s: &str) -> Result<Self, OpsError> {
                Self::ALL.iter().find(|(t, _)| *t == s).map(|(_, v)| *v).ok_or_else(|| OpsError::Format(s.to_string()))
            }
        }
    };
}

format_enum! {
    /// Dashboard formats.
    DashboardFormat {
        /// Cloud Monitoring `Dashboard` JSON (`gcloud monitoring dashboards create --config-from-file`).
        Gcm = "gcm",
        /// Grafana dashboard JSON (PromQL over the OTLP metrics in Prometheus).
        Grafana = "grafana",
    }
}

format_enum! {
    /// Alert formats.
    AlertFormat {
        /// Cloud Monitoring `AlertPolicy` JSON, one file per policy
        /// (`gcloud alpha monitoring policies create --policy-from-file`).
        Gcm = "gcm",
        /// A Prometheus alerting-rules file (`promtool check rules`).
        Prometheus = "prometheus",
    }
}

format_enum! {
    /// Formats of the definitions that turn stdout lines into metrics.
    LogMetricFormat {
        /// One Cloud Logging `LogMetric` JSON per metric (`gcloud logging metrics create NAME --config-from-file`).
        GcloudJson = "gcloud-json",
        /// A bash script with one gcloud command per metric (create, or update if it exists).
        GcloudScript = "gcloud-script",
        /// A CloudFormation template of `AWS::Logs::MetricFilter` resources.
        CloudWatchTemplate = "cloudwatch-template",
        /// A bash script of `aws logs put-metric-filter` commands.
        CloudWatchScript = "cloudwatch-script",
    }
}

fn model(inputs: &Inputs) -> Result<Model, OpsError> {
    let m = Model::new(inputs);
    if m.metrics.is_empty() { Err(OpsError::Empty) } else { Ok(m) }
}

/// The dashboard in `format`: a JSON document.
///
/// Errors: [`OpsError::Empty`] when the inputs have no metric.
pub fn dashboard(format: DashboardFormat, inputs: &Inputs) -> Result<String, OpsError> {
    let model = model(inputs)?;
    match format {
        DashboardFormat::Gcm => gcm_dashboard::render(inputs, &model),
        DashboardFormat::Grafana => grafana::render(inputs, &model),
    }
}

/// The alert policies in `format`: one file per Cloud Monitoring policy, or one Prometheus rules
/// file. Alerts on lifecycle metrics that no profile writes are left out (none at all without
/// profiles).
///
/// Errors: [`OpsError::Threshold`] for invalid thresholds ([`Thresholds::validate`]),
/// [`OpsError::Empty`].
pub fn alerts(format: AlertFormat, inputs: &Inputs, thresholds: &Thresholds) -> Result<Vec<Artifact>, OpsError> {
    let model = model(inputs)?;
    alerts::render(format, inputs, &model, thresholds)
}

/// The definitions that turn the stdout lines into metrics, in `format`: one file per
/// logs-based metric, or one script or template for all.
///
/// Errors: [`OpsError::Name`] when a metric cannot be defined (name, label count, filter
/// count), [`OpsError::Empty`].
pub fn log_metrics(format: LogMetricFormat, inputs: &Inputs) -> Result<Vec<Artifact>, OpsError> {
    let model = model(inputs)?;
    match format {
        LogMetricFormat::GcloudJson => logs_metrics::json_files(inputs, &model),
        LogMetricFormat::GcloudScript => logs_metrics::script(inputs, &model),
        LogMetricFormat::CloudWatchTemplate => cloudwatch::template(inputs, &model),
        LogMetricFormat::CloudWatchScript => cloudwatch::script(inputs, &model),
    }
}
