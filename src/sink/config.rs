//! The sink's settings: which backend points go to, and for how long one event's points may be
//! retried. Each backend reads its own variables (`gcm::config`, `otlp::config`); stdout's
//! line format is read here.
//!
//! Variables: `LOCAL_MODE` (prefixed form `MAGEAI_MONITORING_LOCAL_MODE`), `METRICS_BACKEND`,
//! `METRICS_FORMAT`, `EMF_NAMESPACE`, `SINK_DEADLINE_SECS`, `METRICS_FILE`.

use std::path::PathBuf;
use std::time::Duration;

use super::gcm::config::GcmConfig;
use super::otlp::config::OtlpConfig;
use super::stdout::LineFormat;
use crate::vars::{ConfigError, Vars};

/// Where points go.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsBackend {
    /// One JSON line per point on stdout, in `format` (`METRICS_FORMAT`).
    Stdout { format: LineFormat },
    /// Google Cloud Monitoring (`projects.timeSeries.create`).
    CloudMonitoring(GcmConfig),
    /// An OTLP/HTTP collector.
    Otlp(OtlpConfig),
}

impl MetricsBackend {
    /// The reference's JSON lines on stdout (local work).
    pub fn stdout() -> MetricsBackend {
        MetricsBackend::Stdout { format: LineFormat::Json }
    }

    /// Whether the backend is stdout (any format).
    pub fn is_stdout(&self) -> bool {
        matches!(self, MetricsBackend::Stdout { .. })
    }

    /// Whether the backend is Cloud Monitoring.
    pub fn is_cloud_monitoring(&self) -> bool {
        matches!(self, MetricsBackend::CloudMonitoring(_))
    }

    /// `stdout`, `gcm` or `otlp`, as logs and `METRICS_BACKEND` name it.
    pub fn name(&self) -> &'static str {
        match self {
            MetricsBackend::Stdout { .. } => "stdout",
            MetricsBackend::CloudMonitoring(_) => "gcm",
            MetricsBackend::Otlp(_) => "otlp",
        }
    }

    /// `METRICS_BACKEND` (`stdout`, `gcm` — also `cloud-monitoring`, `cloud_monitoring`,
    /// `stackdriver` — or `otlp`), by default `gcm` when `LOCAL_MODE` is false and `stdout`
    /// otherwise, and the chosen backend's settings; those of the others are not read.
    pub fn from_vars(vars: &Vars) -> Result<MetricsBackend, ConfigError> {
        // The reference's LOCAL_MODE=false meant "write to Cloud Monitoring": it stays the
        // default backend for such deployments, so that a migrated one cannot silently only print.
        let local_mode = match vars.pick(&["LOCAL_MODE"]) {
            None => true,
            Some((n, v)) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" | "t" | "y" => true,
                "0" | "false" | "no" | "off" | "f" | "n" => false,
                _ => return Err(ConfigError::new(&n, &v, "true or false")),
            },
        };
        let name = match vars.pick(&["METRICS_BACKEND"]) {
            Some((n, v)) => match v.to_ascii_lowercase().as_str() {
                "stdout" | "gcm" | "otlp" => v.to_ascii_lowercase(),
                "cloud-monitoring" | "cloud_monitoring" | "stackdriver" => "gcm".into(),
                _ => return Err(ConfigError::new(&n, &v, "stdout, gcm (Cloud Monitoring) or otlp")),
            },
            None if !local_mode => "gcm".into(),
            None => "stdout".into(),
        };
        let format = vars.pick(&["METRICS_FORMAT"]);
        if let Some((n, v)) = &format
            && name != "stdout"
        {
            return Err(ConfigError::new(n, v, "unset: the line format is for METRICS_BACKEND=stdout"));
        }
        Ok(match name.as_str() {
            "gcm" => MetricsBackend::CloudMonitoring(GcmConfig::from_vars(vars)?),
            "otlp" => MetricsBackend::Otlp(OtlpConfig::from_vars(vars)?),
            _ => MetricsBackend::Stdout { format: line_format(vars, format)? },
        })
    }
}

/// `METRICS_FORMAT` (`json`, the reference's lines, or `emf`, CloudWatch Embedded Metric
/// Format, under `EMF_NAMESPACE`).
fn line_format(vars: &Vars, format: Option<(String, String)>) -> Result<LineFormat, ConfigError> {
    match format.map(|(n, v)| (n, v.to_ascii_lowercase())) {
        None => Ok(LineFormat::Json),
        Some((_, v)) if v == "json" => Ok(LineFormat::Json),
        Some((_, v)) if v == "emf" => {
            let namespace = match vars.pick(&["EMF_NAMESPACE"]) {
                None => "pipeline-run-metrics".to_string(),
                Some((n, v)) => {
                    // CloudWatch: 1 to 255 characters; `AWS/` is AWS's own
                    let ok =
                        v.len() <= 255 && v.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !v.starts_with("AWS/");
                    if !ok {
                        return Err(ConfigError::new(
                            &n,
                            &v,
                            "a CloudWatch namespace: up to 255 ASCII characters, not starting with AWS/",
                        ));
                    }
                    v
                }
            };
            Ok(LineFormat::Emf { namespace })
        }
        Some((n, v)) => {
            Err(ConfigError::new(&n, &v, "json (the reference's lines) or emf (CloudWatch Embedded Metric Format)"))
        }
    }
}

/// How long a metric sink may keep retrying one event's points (`SINK_DEADLINE_SECS`, 0-3600;
/// 20 s by default).
pub fn deadline(vars: &Vars) -> Result<Duration, ConfigError> {
    vars.seconds("SINK_DEADLINE_SECS", 20.0)
}

/// `METRICS_FILE`: where a copy of the stdout backend's lines goes (`make local-run`); an
/// error with any other backend.
pub fn metrics_file(vars: &Vars, backend: &MetricsBackend) -> Result<Option<PathBuf>, ConfigError> {
    match vars.pick(&["METRICS_FILE"]) {
        None => Ok(None),
        Some((n, v)) if !backend.is_stdout() => {
            Err(ConfigError::new(&n, &v, "unset: it copies the lines of METRICS_BACKEND=stdout only"))
        }
        Some((_, v)) => Ok(Some(PathBuf::from(v))),
    }
}

#[cfg(test)]
mod tests;
