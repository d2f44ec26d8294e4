//! The Cloud Monitoring sink's settings: the API's endpoint, the monitored resource of gauges
//! and the instance's cumulative series of counters and histograms.
//!
//! Variables: `GCM_ENDPOINT`, `GCM_RESOURCE`, `GCM_LOCATION`, `GCM_NAMESPACE`, `GCM_JOB` (else
//! `K_SERVICE`, else `AWS_LAMBDA_FUNCTION_NAME`), `GCM_TASK_ID`, `GCM_CUMULATIVE_INTERVAL_SECS`,
//! and the platform's `K_REVISION` / `AWS_LAMBDA_LOG_STREAM_NAME` ([`TaskId::from_env`]).

use std::time::Duration;

use super::{Cumulative, Resource, TaskId};
use crate::vars::{ConfigError, Vars};

/// Cloud Monitoring's endpoint by default.
pub const DEFAULT_ENDPOINT: &str = "https://monitoring.googleapis.com";

/// Where and as what points are written to Cloud Monitoring.
#[derive(Debug, Clone, PartialEq)]
pub struct GcmConfig {
    /// The API's base URL (`GCM_ENDPOINT`, an `http(s)://` URL; [`DEFAULT_ENDPOINT`]).
    pub endpoint: String,
    /// The monitored resource of gauges (`GCM_RESOURCE`: `global` or `generic_task`).
    pub resource: Resource,
    /// The instance's cumulative series (counters and histograms).
    pub cumulative: Cumulative,
}

impl GcmConfig {
    /// The sink's variables. Errors name the variable and its value.
    pub fn from_vars(vars: &Vars) -> Result<GcmConfig, ConfigError> {
        let text = |names: &[&str], default: &str| vars.pick(names).map(|(_, v)| v).unwrap_or_else(|| default.into());
        let location = text(&["GCM_LOCATION"], "global");
        let namespace = text(&["GCM_NAMESPACE"], "pipeline-run-metrics");
        let job = text(&["GCM_JOB", "K_SERVICE", "AWS_LAMBDA_FUNCTION_NAME"], "pipeline-run-metrics");
        let resource = match vars.pick(&["GCM_RESOURCE"]).map(|(n, v)| (n, v.to_ascii_lowercase())) {
            None => Resource::Global,
            Some((_, v)) if v == "global" => Resource::Global,
            Some((_, v)) if v == "generic_task" => Resource::GenericTask {
                location: location.clone(),
                namespace: namespace.clone(),
                job: job.clone(),
                task_id: text(&["GCM_TASK_ID"], "singleton"),
            },
            Some((n, v)) => return Err(ConfigError::new(&n, &v, "global or generic_task")),
        };
        let endpoint = vars.url("GCM_ENDPOINT", DEFAULT_ENDPOINT)?;
        let interval = match vars.pick(&["GCM_CUMULATIVE_INTERVAL_SECS"]) {
            None => Duration::from_secs(60),
            Some((n, v)) => match v.parse::<f64>() {
                Ok(s) if (5.0..=3600.0).contains(&s) => Duration::from_secs_f64(s),
                _ => return Err(ConfigError::new(&n, &v, "seconds, from 5 (the API's sampling period) to 3600")),
            },
        };
        let task = TaskId::from_env(|k| vars.raw(k));
        let cumulative = Cumulative { location, namespace, job, task, interval };
        Ok(GcmConfig { endpoint, resource, cumulative })
    }
}
