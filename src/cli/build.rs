//! What every command builds from the configuration, once, before it starts: the handler
//! catalogue and the lifecycle profiles, Google credentials (checked at once), the warehouse,
//! the metric sink, the fact store and the Cloud Storage client.
//!
//! Every failure is `(what failed, why)`, for [`super::fatal`]: a process that cannot work must
//! not start and then fail every event.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, FactStoreConfig, GcmConfig, MetricsBackend, OtlpConfig};
use crate::facts::FactStore;
use crate::facts::firestore::{self, DATASTORE_SCOPE, Firestore};
use crate::facts::redis::Redis;
use crate::google::credentials::{self, BIGQUERY_SCOPE, MONITORING_SCOPE, TokenSource};
use crate::google::storage::{READ_SCOPE, Storage};
use crate::handlers::lifecycle::Profile;
use crate::handlers::{Handler, Projects};
use crate::sink::gcm::{CloudMonitoring, Retry};
use crate::sink::instance::Instance;
use crate::sink::otlp::Otlp;
use crate::sink::{JsonLines, MetricSink};
use crate::startup::StartupError;
use crate::warehouse::{BigQuery, Warehouse};

/// What failed and why.
pub type Failure = StartupError;

/// The handlers and the lifecycle profiles in force.
pub type Catalogue = (Vec<Arc<dyn Handler>>, Vec<Profile>);

/// The handlers (built-in and `HANDLERS_DIR`) and the lifecycle profiles in force (`PROFILES`,
/// `PROFILES_DIR`).
///
/// Errors: the first invalid catalogue or profile file, with its line.
pub fn catalogue(config: &Config) -> Result<Catalogue, Failure> {
    let handlers = crate::handlers::all(config.handlers_dir.as_deref()).map_err(StartupError::Catalogue)?;
    let lc = &config.lifecycle;
    let profiles = match lc.profiles.as_deref() {
        Some([]) => Vec::new(),
        enabled => {
            crate::handlers::lifecycle::load(lc.profiles_dir.as_deref(), enabled).map_err(StartupError::Profiles)?
        }
    };
    Ok((handlers, profiles))
}

/// The configuration from the environment. A command that reads no BigQuery dataset
/// (`reads_datasets` false: `replay --no-queries`, `dashboards`, `alerts`) does not need
/// `ALLOWED_DATASETS`, which the configuration requires outside local mode: a placeholder
/// stands in when it is unset (no handler that would read it runs).
///
/// Errors: the configuration's own ([`crate::config::ConfigError`]: variable, value, expected).
pub fn config(reads_datasets: bool) -> Result<Config, crate::config::ConfigError> {
    if reads_datasets || std::env::var_os("ALLOWED_DATASETS").is_some() {
        return Config::from_env();
    }
    let mut pairs: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    pairs.push(("ALLOWED_DATASETS".into(), "no_dataset_is_read".into()));
    Config::from_map(pairs)
}

/// The HTTP client every remote call shares.
pub fn http() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| StartupError::Backend { step: "cannot build the HTTP client", detail: e.to_string() })
}

/// Which remote services a command uses besides those the configuration implies (the metric
/// backend, the fact store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Claim handlers query BigQuery (`replay --no-queries`: no).
    pub bigquery: bool,
    /// Objects are read from Cloud Storage (`replay gs://…`).
    pub storage: bool,
    /// Points are written to the metric backend (`replay --dry-run`: no).
    pub backend: bool,
}

impl Needs {
    /// What `serve` needs: BigQuery; Cloud Storage only when credentials exist anyway.
    pub const SERVE: Needs = Needs { bigquery: true, storage: false, backend: true };

    /// Whether Google credentials are needed: BigQuery, Cloud Storage or Firestore without an
    /// emulator, or the Cloud Monitoring backend.
    pub fn google_credentials(&self, config: &Config) -> bool {
        (self.bigquery && config.warehouse.emulator_host.is_none())
            || (self.storage && config.storage_emulator_host.is_none())
            || self.monitoring(config)
            || config.needs_firestore_credentials()
    }

    fn monitoring(&self, config: &Config) -> bool {
        self.backend && matches!(config.metrics_backend, MetricsBackend::CloudMonitoring { .. })
    }
}

/// Google credentials, when something needs them, checked now with one token for every scope
/// needed: a production backend without usable credentials must not start.
///
/// A key in Secrets Manager is read now; workload identity federation signs with the AWS
/// credentials of the environment (both through `http`).
pub async fn tokens(
    config: &Config,
    needs: Needs,
    http: &reqwest::Client,
) -> Result<Option<Arc<dyn TokenSource>>, Failure> {
    if !needs.google_credentials(config) {
        return Ok(None);
    }
    let tokens = credentials::from_config(&config.google_credentials, http.clone(), |k| std::env::var(k).ok())
        .await
        .map_err(|e| StartupError::Credentials {
            step: "no usable Google credentials (set BIGQUERY_EMULATOR_HOST and METRICS_BACKEND=stdout for local work)",
            detail: e.to_string(),
        })?;
    let mut scopes = Vec::new();
    if needs.bigquery && config.warehouse.emulator_host.is_none() {
        scopes.push(BIGQUERY_SCOPE);
    }
    if needs.monitoring(config) {
        scopes.push(MONITORING_SCOPE);
    }
    if config.needs_firestore_credentials() {
        scopes.push(DATASTORE_SCOPE);
    }
    if needs.storage && config.storage_emulator_host.is_none() {
        scopes.push(READ_SCOPE);
    }
    credentials::check(tokens.as_ref(), &scopes)
        .await
        .map_err(|e| StartupError::Credentials { step: "no usable Google credentials", detail: e.to_string() })?;
    Ok(Some(tokens))
}

/// BigQuery, or its emulator (`BIGQUERY_EMULATOR_HOST`).
///
/// Errors: the client cannot be set up; no emulator and no credentials.
pub async fn warehouse(
    config: &Config,
    http: &reqwest::Client,
    tokens: Option<&Arc<dyn TokenSource>>,
) -> Result<Arc<dyn Warehouse>, Failure> {
    match (&config.warehouse.emulator_host, tokens) {
        (Some(host), _) => {
            // an emulator that does not answer is one warning with cause and fix, not a failure
            crate::warehouse::probe::warn_if_unreachable(host).await;
            Ok(Arc::new(
                BigQuery::emulator(host, &config.data_project, config.warehouse.query_timeout, http.clone())
                    .await
                    .map_err(|detail| StartupError::Backend {
                        step: "cannot set up the BigQuery emulator client",
                        detail,
                    })?,
            ))
        }
        (None, Some(tokens)) => Ok(Arc::new(
            BigQuery::production(tokens.clone(), &config.data_project, config.warehouse.query_timeout, http.clone())
                .await
                .map_err(|detail| StartupError::Backend { step: "cannot set up the BigQuery client", detail })?,
        )),
        (None, None) => Err(StartupError::Backend {
            step: "no BigQuery",
            detail: "neither BIGQUERY_EMULATOR_HOST nor Google credentials".into(),
        }),
    }
}

/// The metric sink of `METRICS_BACKEND` (the `gcm` backend needs `tokens`).
///
/// Errors: the stdout backend's copy file (`METRICS_FILE`) cannot be created.
pub fn sink(
    config: &Config,
    http: &reqwest::Client,
    tokens: Option<&Arc<dyn TokenSource>>,
) -> Result<Arc<dyn MetricSink>, Failure> {
    let retry = Retry { deadline: config.sink_deadline, ..Retry::default() };
    Ok(match &config.metrics_backend {
        MetricsBackend::Stdout { format } => {
            let out = crate::sink::tee::Tee::open(config.metrics_file.as_deref())
                .map_err(|detail| StartupError::Backend { step: "cannot create the metrics file", detail })?;
            Arc::new(JsonLines::with_format(out, format.clone()))
        }
        MetricsBackend::CloudMonitoring(GcmConfig { endpoint, resource, cumulative }) => {
            let tokens = tokens.expect("Needs::google_credentials covers Cloud Monitoring").clone();
            Arc::new(
                CloudMonitoring::new(http.clone(), tokens, endpoint, resource.clone(), retry)
                    .with_cumulative(cumulative.settings(Instance::process())),
            )
        }
        MetricsBackend::Otlp(otlp @ OtlpConfig { endpoint, service_name, .. }) => {
            Arc::new(Otlp::new(http.clone(), endpoint, otlp.header_pairs(), service_name, retry))
        }
    })
}

/// The Cloud Storage client: the emulator (`STORAGE_EMULATOR_HOST`), else Cloud Storage with
/// `tokens`; `None` with neither.
pub fn storage(config: &Config, http: &reqwest::Client, tokens: Option<&Arc<dyn TokenSource>>) -> Option<Arc<Storage>> {
    match (&config.storage_emulator_host, tokens) {
        (Some(host), _) => Some(Arc::new(Storage::emulator(http.clone(), host))),
        (None, Some(tokens)) => Some(Arc::new(Storage::production(http.clone(), tokens.clone()))),
        (None, None) => None,
    }
}

/// The metric and data projects, and the datasets handlers may read.
pub fn projects(config: &Config) -> Projects {
    let mut projects = Projects::new(config.metric_project.clone(), config.data_project.clone());
    projects.allowed_datasets = config.delivery.allowed_datasets.clone();
    projects
}

/// The fact store, checked with one cheap call, so that a wrong URL, project or database stops
/// the process at startup instead of failing every record.
pub async fn fact_store(
    config: &FactStoreConfig,
    http: reqwest::Client,
    tokens: Option<Arc<dyn TokenSource>>,
) -> Result<Arc<dyn FactStore>, Failure> {
    let store: Arc<dyn FactStore> = match config {
        FactStoreConfig::Memory { capacity, bytes } => Arc::new(crate::facts::memory::Memory::with_bounds(
            *capacity,
            bytes.unwrap_or_else(|| crate::facts::memory::default_bytes(*capacity)),
        )),
        FactStoreConfig::Redis { url, prefix, ttl, timeout } => {
            Arc::new(Redis::connect(url.expose(), prefix, *ttl, *timeout).await.map_err(|detail| {
                StartupError::Backend { step: "cannot reach the fact store (FACT_STORE=redis, REDIS_URL)", detail }
            })?)
        }
        FactStoreConfig::Firestore { project, database, collection_prefix, emulator_host, ttl, timeout } => {
            let endpoint = match emulator_host {
                Some(h) => format!("http://{h}"),
                None => firestore::PRODUCTION_ENDPOINT.to_string(),
            };
            let tokens = match emulator_host {
                Some(_) => None,
                None => Some(tokens.expect("Needs::google_credentials covers Firestore")),
            };
            let settings = firestore::Settings {
                endpoint,
                project: project.clone(),
                database: database.clone(),
                collection_prefix: collection_prefix.clone(),
                ttl: *ttl,
                timeout: *timeout,
                tokens,
            };
            let store = Firestore::new(http, settings);
            store.check().await.map_err(|detail| StartupError::Backend {
                step: "cannot reach the fact store (FACT_STORE=firestore, FIRESTORE_PROJECT, FIRESTORE_DATABASE)",
                detail,
            })?;
            Arc::new(store)
        }
    };
    Ok(store)
}
