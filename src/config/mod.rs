//! The configuration: every component's settings, read from the environment once at startup
//! and validated then. Each component owns its settings and reads its own variables (through
//! [`crate::vars::Vars`], figment's `Env` provider under the prefixed-name rule); this module
//! only composes them, in the order their errors are reported:
//!
//! | component | settings | file |
//! | --- | --- | --- |
//! | ingress | [`IngressConfig`] | `src/ingress/config.rs` |
//! | projects | `metric_project`, `data_project` | here (shared by several components) |
//! | warehouse | [`WarehouseConfig`] | `src/warehouse/config.rs` |
//! | sink | [`MetricsBackend`], `sink_deadline`, `metrics_file` | `src/sink/config.rs`, `src/sink/gcm/config.rs`, `src/sink/otlp/config.rs` |
//! | logging | `log_level` | `src/logging.rs` |
//! | handlers | `handlers_dir` | `src/handlers/config.rs` |
//! | google | [`GoogleCredentials`], `storage_emulator_host` | `src/google/config.rs` |
//! | pipeline | [`Delivery`] | `src/pipeline/config.rs` |
//! | lifecycle, fact store | [`LifecycleConfig`], [`FactStoreConfig`] | `src/handlers/lifecycle/config.rs`, `src/facts/config.rs` |

use std::path::PathBuf;
use std::time::Duration;

use tracing::level_filters::LevelFilter;

use crate::vars::Vars;

pub use crate::facts::config::{DEFAULT_FACT_STORE_TIMEOUT, DEFAULT_FACT_TTL, FactStoreConfig};
pub use crate::google::config::GoogleCredentials;
pub use crate::handlers::lifecycle::config::LifecycleConfig;
pub use crate::ingress::config::{Connections, DEFAULT_MAX_BODY_BYTES, IngressConfig, PushAuth};
pub use crate::pipeline::config::{Delivery, FilesConfig};
pub use crate::sink::config::MetricsBackend;
pub use crate::sink::gcm::config::GcmConfig;
pub use crate::sink::otlp::config::OtlpConfig;
pub use crate::vars::{ConfigError, Secret};
pub use crate::warehouse::config::WarehouseConfig;

/// Every component's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the function listens and what it accepts.
    pub ingress: IngressConfig,
    /// Project metrics are written to (`CLOUD_RUN_PROJECT_ID`, prefixed form first;
    /// `local-project` by default).
    pub metric_project: String,
    /// Project of unqualified tables, of query jobs and of Firestore by default
    /// (`BIGQUERY_PROJECT_ID`, prefixed form first; `test-project` by default).
    pub data_project: String,
    /// BigQuery or its emulator.
    pub warehouse: WarehouseConfig,
    /// Where points go.
    pub metrics_backend: MetricsBackend,
    /// How long a metric sink may keep retrying one event's points.
    pub sink_deadline: Duration,
    /// `METRICS_FILE`: a copy of the stdout backend's metric lines (`make local-run`), created
    /// or truncated only once the port is bound, so that a second instance on a busy port
    /// leaves the running one's file alone.
    pub metrics_file: Option<PathBuf>,
    /// `LOG_LEVEL`.
    pub log_level: LevelFilter,
    /// Extra or overriding handler files.
    pub handlers_dir: Option<PathBuf>,
    /// Where the Google credentials come from.
    pub google_credentials: GoogleCredentials,
    /// `host:port` (or URL) of a Cloud Storage emulator; unset means Cloud Storage.
    pub storage_emulator_host: Option<String>,
    /// Delivery semantics, admission, self-observation, history and files.
    pub delivery: Delivery,
    /// Lifecycle profiles and the fact store.
    pub lifecycle: LifecycleConfig,
}

impl Config {
    /// The configuration of the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(&Vars::from_env())
    }

    /// The configuration of `pairs` as if they were the environment (tests).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Config, ConfigError> {
        Config::from_vars(&Vars::from_pairs(pairs))
    }

    /// Every component's settings from `vars`; the first invalid variable is the error.
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let ingress = IngressConfig::from_vars(vars)?;
        let metric_project = vars.project_id("CLOUD_RUN_PROJECT_ID", "local-project")?;
        let data_project = vars.project_id("BIGQUERY_PROJECT_ID", "test-project")?;
        let emulator_host = WarehouseConfig::emulator_host(vars)?;
        let local = emulator_host.is_some();
        let metrics_backend = MetricsBackend::from_vars(vars)?;
        let log_level = crate::logging::level_from_vars(vars)?;
        let warehouse = WarehouseConfig::from_vars(vars, emulator_host)?;
        let handlers_dir = crate::handlers::config::handlers_dir(vars)?;
        let metrics_file = crate::sink::config::metrics_file(vars, &metrics_backend)?;
        let sink_deadline = crate::sink::config::deadline(vars)?;
        let google_credentials = GoogleCredentials::from_vars(vars)?;
        let cx = crate::pipeline::config::Context {
            max_body_bytes: ingress.max_body_bytes,
            local,
            cloud_monitoring: metrics_backend.is_cloud_monitoring(),
            stdout: metrics_backend.is_stdout(),
        };
        let delivery = Delivery::from_vars(vars, cx)?;
        let lifecycle = LifecycleConfig::from_vars(vars, &data_project)?;
        let storage_emulator_host = crate::google::config::storage_emulator_host(vars);
        Ok(Config {
            ingress,
            metric_project,
            data_project,
            warehouse,
            metrics_backend,
            sink_deadline,
            metrics_file,
            log_level,
            handlers_dir,
            google_credentials,
            storage_emulator_host,
            delivery,
            lifecycle,
        })
    }

    /// Whether Google credentials are needed (BigQuery without emulator, Cloud Monitoring, or
    /// Firestore without emulator).
    pub fn needs_google_credentials(&self) -> bool {
        self.warehouse.emulator_host.is_none()
            || self.metrics_backend.is_cloud_monitoring()
            || self.needs_firestore_credentials()
    }

    /// Whether the fact store is Firestore itself (not its emulator).
    pub fn needs_firestore_credentials(&self) -> bool {
        matches!(self.lifecycle.fact_store, FactStoreConfig::Firestore { emulator_host: None, .. })
    }
}

/// The configuration of `pairs`, with `ALLOWED_DATASETS=tmp_*` unless they set it (outside
/// local mode it is required), for the tests of every component's settings.
#[cfg(test)]
pub(crate) fn test_config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.entry("ALLOWED_DATASETS".into()).or_insert_with(|| "tmp_*".into());
    Config::from_map(map)
}

#[cfg(test)]
mod tests;
