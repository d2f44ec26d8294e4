//! Configuration from the environment, validated once at startup.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tracing::level_filters::LevelFilter;

#[derive(Clone, PartialEq, Eq)]
pub enum MetricsBackend {
    /// One JSON line per point on stdout, in `format` (`METRICS_FORMAT`).
    Stdout { format: crate::sink::stdout::LineFormat },
    /// Google Cloud Monitoring (`projects.timeSeries.create`): gauges against `resource`,
    /// counters and histograms as this instance's `cumulative` series.
    CloudMonitoring { endpoint: String, resource: crate::sink::gcm::Resource, cumulative: crate::sink::gcm::Cumulative },
    /// An OTLP/HTTP collector.
    Otlp { endpoint: String, headers: Vec<(String, String)>, service_name: String },
}

/// Header values are credentials (`Authorization: Bearer …`): only their names are shown.
impl std::fmt::Debug for MetricsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsBackend::Stdout { format } => f.debug_struct("Stdout").field("format", format).finish(),
            MetricsBackend::CloudMonitoring { endpoint, resource, cumulative } => f
                .debug_struct("CloudMonitoring")
                .field("endpoint", endpoint)
                .field("resource", resource)
                .field("cumulative", cumulative)
                .finish(),
            MetricsBackend::Otlp { endpoint, headers, service_name } => {
                let names: Vec<String> = headers.iter().map(|(k, _)| format!("{k}: ***")).collect();
                f.debug_struct("Otlp")
                    .field("endpoint", endpoint)
                    .field("headers", &names)
                    .field("service_name", service_name)
                    .finish()
            }
        }
    }
}

impl MetricsBackend {
    /// The reference's JSON lines on stdout (local work).
    pub fn stdout() -> MetricsBackend {
        MetricsBackend::Stdout { format: crate::sink::stdout::LineFormat::Json }
    }

    /// Whether the backend is stdout (any format).
    pub fn is_stdout(&self) -> bool {
        matches!(self, MetricsBackend::Stdout { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            MetricsBackend::Stdout { .. } => "stdout",
            MetricsBackend::CloudMonitoring { .. } => "gcm",
            MetricsBackend::Otlp { .. } => "otlp",
        }
    }
}

/// A value that must never reach a log line: its Debug form is redacted.
#[derive(Clone, PartialEq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// Project metrics are written to (`CLOUD_RUN_PROJECT_ID`).
    pub metric_project: String,
    /// Project of unqualified tables and of query jobs (`BIGQUERY_PROJECT_ID`).
    pub data_project: String,
    /// `host:port` of a BigQuery emulator; unset means BigQuery with Application Default Credentials.
    pub bigquery_emulator_host: Option<String>,
    /// `host:port` (or URL) of a Cloud Storage emulator (`STORAGE_EMULATOR_HOST`, as Google's
    /// client libraries read it); unset means Cloud Storage with Google credentials.
    pub storage_emulator_host: Option<String>,
    pub metrics_backend: MetricsBackend,
    pub log_level: LevelFilter,
    /// Limit for one BigQuery call (existence check or query, polling included).
    pub query_timeout: Duration,
    /// Extra or overriding handler files.
    pub handlers_dir: Option<PathBuf>,
    /// `METRICS_FILE`: a copy of the stdout backend's metric lines (`make local-run`), created
    /// or truncated only once the port is bound, so that a second instance on a busy port
    /// leaves the running one's file alone.
    pub metrics_file: Option<PathBuf>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a metric sink may keep retrying one event's points.
    pub sink_deadline: Duration,
    /// Where the Google credentials come from.
    pub google_credentials: GoogleCredentials,
    /// After SIGTERM: how long in-flight events may still run.
    pub shutdown_grace: Duration,
    /// Delivery semantics, security and self-observation.
    pub delivery: Delivery,
    /// Lifecycle profiles and the fact store.
    pub lifecycle: LifecycleConfig,
    /// The API key of `/api/v1/lineage` (`OPENLINEAGE_API_KEY`).
    pub lineage_api_key: Option<Secret>,
    /// How long a connection may take to send a request head, or stay idle between requests.
    pub connections: Connections,
}

/// Per-connection timeouts of the HTTP server (Cloud Run, local; Lambda has no connections).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Connections {
    /// From the first byte of a request (or from the connection's start) to the end of its head
    /// (`HEADER_READ_TIMEOUT_SECS`).
    pub header_read: Duration,
    /// From the end of a response (with nothing left to do on the connection) to the first byte
    /// of the next request (`IDLE_TIMEOUT_SECS`).
    pub idle: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Connections { header_read: Duration::from_secs(10), idle: Duration::from_secs(620) }
    }
}

/// Which lifecycle profiles are in force and where facts are remembered.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// Profile names to enable (`PROFILES`, file names without `.toml`); `None`: all;
    /// an empty list (`PROFILES=none`): no lifecycle metrics.
    pub profiles: Option<Vec<String>>,
    /// Extra or overriding profile files (`PROFILES_DIR`).
    pub profiles_dir: Option<PathBuf>,
    pub fact_store: FactStoreConfig,
    /// How long a task row waits for the parent row that names its pipeline.
    pub lookup_wait: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            profiles: None,
            profiles_dir: None,
            fact_store: FactStoreConfig::Memory { capacity: crate::facts::memory::DEFAULT_CAPACITY },
            lookup_wait: Duration::from_secs(600),
        }
    }
}

/// Where facts are remembered (`FACT_STORE`).
#[derive(Debug, Clone, PartialEq)]
pub enum FactStoreConfig {
    /// In-process, bounded (`FACT_MEMORY_CAPACITY` entries).
    Memory { capacity: u64 },
    /// Redis shared by every instance (`REDIS_URL`; it may hold a password, so it is a secret).
    Redis {
        url: Secret,
        /// `FACT_KEY_PREFIX`, `prm:` by default.
        prefix: String,
        ttl: Duration,
        timeout: Duration,
    },
    /// Firestore (native mode) shared by every instance.
    Firestore {
        /// `FIRESTORE_PROJECT`, the data project by default.
        project: String,
        /// `FIRESTORE_DATABASE`, `(default)` by default.
        database: String,
        /// `FIRESTORE_COLLECTION_PREFIX`, `prm_` by default.
        collection_prefix: String,
        /// `FIRESTORE_EMULATOR_HOST` (`host:port`): plain HTTP, no token.
        emulator_host: Option<String>,
        ttl: Duration,
        timeout: Duration,
    },
}

/// How long a shared store remembers a fact by default: 8 days, longer than Pub/Sub's longest
/// retention (7 days), so that every redelivery of a record finds its facts.
pub const DEFAULT_FACT_TTL: Duration = Duration::from_secs(8 * 24 * 3600);
/// Limit of one request to a shared fact store by default.
pub const DEFAULT_FACT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

impl FactStoreConfig {
    pub fn name(&self) -> &'static str {
        match self {
            FactStoreConfig::Memory { .. } => "memory",
            FactStoreConfig::Redis { .. } => "redis",
            FactStoreConfig::Firestore { .. } => "firestore",
        }
    }
}

/// How deliveries are accepted and answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Verify the OIDC token of every push (audience and allowed service accounts).
    pub auth: Option<PushAuth>,
    /// Answer permanent errors 200 (logged, counted) instead of 4xx.
    pub ack_permanent: bool,
    /// Limit for processing one event (queries and sink); past it: 503 and cancellation.
    pub event_deadline: Duration,
    /// De-duplication window (0 disables it) and how many keys it keeps at most.
    pub dedup_window: Duration,
    pub dedup_capacity: usize,
    /// Events processed at once in this instance; more get 429 (0: no limit).
    pub max_in_flight: usize,
    /// How long a request body may take to arrive (read before an in-flight slot is taken);
    /// past it: 408.
    pub body_read_timeout: Duration,
    /// Bytes of request bodies held in memory at once by this instance, read or being read; a
    /// body that would pass it gets 429 (`BODY_BUFFER_BYTES`, at least `MAX_BODY_BYTES`).
    pub body_buffer_bytes: usize,
    /// Datasets (`dataset` or `project.dataset`) handlers may read; `None`: any.
    pub allowed_datasets: Option<Vec<String>>,
    /// Write the function's own metrics (events by format and outcome, handler durations).
    pub self_metrics: bool,
    pub self_metrics_interval: Duration,
    /// Process history records (Datastream backfill and supplementation reads, Debezium
    /// snapshots, DMS full load) instead of skipping them, with the point time taken from the
    /// row (`history_time_columns`, first non-null) instead of the read time.
    pub process_history: bool,
    pub history_time_columns: Vec<String>,
    /// Which Datastream files announced by Cloud Storage notifications are read.
    pub files: FilesConfig,
    /// Longest label value and distinct values per label (`MAX_LABEL_VALUE_BYTES`,
    /// `MAX_LABEL_VALUES`).
    pub labels: crate::pipeline::labels::LabelLimits,
}

/// Which Cloud Storage objects are read, and how (`FILES_PREFIXES`, `FILES_TABLES`,
/// `MAX_LINE_BYTES`).
#[derive(Debug, Clone, PartialEq)]
pub struct FilesConfig {
    /// Object name prefixes to read (`ds/public_pipeline_run/`); an object under one is read.
    pub prefixes: Vec<String>,
    /// Tables (`pipeline_run`, or globs such as `audit_*`) whose files (`…/<schema>_<table>/YYYY/…`)
    /// are read; `None`: the tables the handlers and profiles in force read.
    pub tables: Option<Vec<String>>,
    /// The longest line read; a longer one fails alone.
    pub max_line_bytes: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig { prefixes: Vec::new(), tables: None, max_line_bytes: 16 * 1024 * 1024 }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            auth: None,
            ack_permanent: false,
            event_deadline: Duration::from_secs(50),
            dedup_window: Duration::from_secs(600),
            dedup_capacity: 50_000,
            max_in_flight: 256,
            body_read_timeout: Duration::from_secs(20),
            body_buffer_bytes: 4 * DEFAULT_MAX_BODY_BYTES,
            allowed_datasets: None,
            self_metrics: false,
            self_metrics_interval: Duration::from_secs(60),
            process_history: false,
            history_time_columns: vec!["completed_at".into(), "updated_at".into()],
            files: FilesConfig::default(),
            labels: crate::pipeline::labels::LabelLimits::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushAuth {
    pub audience: String,
    pub service_accounts: Vec<String>,
    pub jwks_url: String,
}

/// Where the Google credentials come from: at most one of `GCP_SA_KEY_JSON`,
/// `GCP_SA_KEY_SECRET_ARN` and `GCP_EXTERNAL_ACCOUNT_JSON`, else Application Default Credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum GoogleCredentials {
    /// A service-account key JSON in the environment (`GCP_SA_KEY_JSON`).
    KeyJson(Secret),
    /// The Secrets Manager secret holding the key JSON (`GCP_SA_KEY_SECRET_ARN`), read at startup.
    KeySecret(String),
    /// An `external_account` configuration for workload identity federation from AWS
    /// (`GCP_EXTERNAL_ACCOUNT_JSON`; nothing secret in it).
    ExternalAccountJson(String),
    /// Application Default Credentials; `file` is `GOOGLE_APPLICATION_CREDENTIALS` (an
    /// `external_account` file is used for workload identity federation, any other is read by
    /// `gcp_auth`).
    Default { file: Option<PathBuf> },
}

/// A configuration error names the variable and says what is expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {expected}")]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub expected: String,
}

/// The largest Pub/Sub message is 10 MB; base64 and the push wrapper add a third.
pub const DEFAULT_MAX_BODY_BYTES: usize = 14 * 1024 * 1024;

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds the configuration from a variable lookup (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // Like the reference service: the prefixed name first, then the plain one.
        let pick = |names: &[&str]| -> Option<(String, String)> {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()).map(|v| (n.to_string(), v.trim().to_string())))
        };
        let err = |variable: &str, value: &str, expected: &str| ConfigError {
            variable: variable.into(),
            value: value.into(),
            expected: expected.into(),
        };
        let host = match pick(&["HOST"]) {
            None => IpAddr::from([0, 0, 0, 0]),
            Some((n, v)) => v.parse().map_err(|_| err(&n, &v, "an IP address such as 0.0.0.0 or 127.0.0.1"))?,
        };
        let port = match pick(&["PORT"]) {
            None => 8080,
            Some((n, v)) => v.parse().map_err(|_| err(&n, &v, "a port number 0-65535"))?,
        };
        let project = |names: &[&str], default: &str| -> Result<String, ConfigError> {
            match pick(names) {
                None => Ok(default.to_string()),
                Some((n, v)) => {
                    let ok = v.len() <= 63
                        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
                    if ok { Ok(v) } else { Err(err(&n, &v, "a Google Cloud project id (letters, digits, hyphens)")) }
                }
            }
        };
        let metric_project =
            project(&["MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID", "CLOUD_RUN_PROJECT_ID"], "local-project")?;
        let data_project = project(&["MAGEAI_MONITORING_BIGQUERY_PROJECT_ID", "BIGQUERY_PROJECT_ID"], "test-project")?;
        let bigquery_emulator_host = match pick(&["BIGQUERY_EMULATOR_HOST"]) {
            None => None,
            Some((n, v)) => {
                let hostport = v.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
                let valid = hostport.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !valid {
                    return Err(err(&n, &v, "host:port of a BigQuery emulator, e.g. 127.0.0.1:9050"));
                }
                Some(v)
            }
        };
        // The reference's LOCAL_MODE=false meant "write to Cloud Monitoring": it stays the default
        // backend for such deployments, so that a migrated one cannot silently only print.
        let local_mode = match pick(&["MAGEAI_MONITORING_LOCAL_MODE", "LOCAL_MODE"]) {
            None => true,
            Some((n, v)) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" | "t" | "y" => true,
                "0" | "false" | "no" | "off" | "f" | "n" => false,
                _ => return Err(err(&n, &v, "true or false")),
            },
        };
        let backend_name = match pick(&["METRICS_BACKEND"]) {
            Some((n, v)) => match v.to_ascii_lowercase().as_str() {
                "stdout" | "gcm" | "otlp" => v.to_ascii_lowercase(),
                "cloud-monitoring" | "cloud_monitoring" | "stackdriver" => "gcm".into(),
                _ => return Err(err(&n, &v, "stdout, gcm (Cloud Monitoring) or otlp")),
            },
            None if !local_mode => "gcm".into(),
            None => "stdout".into(),
        };
        let location = pick(&["GCM_LOCATION"]).map(|(_, v)| v).unwrap_or_else(|| "global".into());
        let namespace = pick(&["GCM_NAMESPACE"]).map(|(_, v)| v).unwrap_or_else(|| "pipeline-run-metrics".into());
        let job = pick(&["GCM_JOB", "K_SERVICE", "AWS_LAMBDA_FUNCTION_NAME"])
            .map(|(_, v)| v)
            .unwrap_or_else(|| "pipeline-run-metrics".into());
        let format_var = pick(&["METRICS_FORMAT"]);
        if let Some((n, v)) = &format_var
            && backend_name != "stdout"
        {
            return Err(err(n, v, "unset: the line format is for METRICS_BACKEND=stdout"));
        }
        let metrics_backend = match backend_name.as_str() {
            "gcm" => {
                let resource = match pick(&["GCM_RESOURCE"]).map(|(n, v)| (n, v.to_ascii_lowercase())) {
                    None => crate::sink::gcm::Resource::Global,
                    Some((_, v)) if v == "global" => crate::sink::gcm::Resource::Global,
                    Some((_, v)) if v == "generic_task" => crate::sink::gcm::Resource::GenericTask {
                        location: location.clone(),
                        namespace: namespace.clone(),
                        job: job.clone(),
                        task_id: pick(&["GCM_TASK_ID"]).map(|(_, v)| v).unwrap_or_else(|| "singleton".into()),
                    },
                    Some((n, v)) => return Err(err(&n, &v, "global or generic_task")),
                };
                let endpoint = url_var(&pick, "GCM_ENDPOINT", "https://monitoring.googleapis.com")?;
                let interval = match pick(&["GCM_CUMULATIVE_INTERVAL_SECS"]) {
                    None => Duration::from_secs(60),
                    Some((n, v)) => match v.parse::<f64>() {
                        Ok(s) if (5.0..=3600.0).contains(&s) => Duration::from_secs_f64(s),
                        _ => return Err(err(&n, &v, "seconds, from 5 (the API's sampling period) to 3600")),
                    },
                };
                let cumulative = crate::sink::gcm::Cumulative {
                    location,
                    namespace,
                    job,
                    task: crate::sink::gcm::TaskId::from_env(&get),
                    interval,
                };
                MetricsBackend::CloudMonitoring { endpoint, resource, cumulative }
            }
            "otlp" => {
                let endpoint = url_var(&pick, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")?;
                let headers = match pick(&["OTEL_EXPORTER_OTLP_HEADERS"]) {
                    None => Vec::new(),
                    // Header values are credentials: the error names the pair by its position
                    // and says what is wrong, never what it holds.
                    Some((n, v)) => crate::sink::otlp::parse_headers(&v).map_err(|_| {
                        err(&n, "(not shown)", &format!("key=value pairs separated by commas ({})", header_problem(&v)))
                    })?,
                };
                let service_name =
                    pick(&["OTEL_SERVICE_NAME"]).map(|(_, v)| v).unwrap_or_else(|| "pipeline-run-metrics".into());
                MetricsBackend::Otlp { endpoint, headers, service_name }
            }
            _ => {
                let format = match format_var.map(|(n, v)| (n, v.to_ascii_lowercase())) {
                    None => crate::sink::stdout::LineFormat::Json,
                    Some((_, v)) if v == "json" => crate::sink::stdout::LineFormat::Json,
                    Some((_, v)) if v == "emf" => {
                        let namespace = match pick(&["EMF_NAMESPACE"]) {
                            None => "pipeline-run-metrics".to_string(),
                            Some((n, v)) => {
                                // CloudWatch: 1 to 255 characters; `AWS/` is AWS's own
                                let ok = v.len() <= 255
                                    && v.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                                    && !v.starts_with("AWS/");
                                if !ok {
                                    return Err(err(
                                        &n,
                                        &v,
                                        "a CloudWatch namespace: up to 255 ASCII characters, not starting with AWS/",
                                    ));
                                }
                                v
                            }
                        };
                        crate::sink::stdout::LineFormat::Emf { namespace }
                    }
                    Some((n, v)) => {
                        return Err(err(
                            &n,
                            &v,
                            "json (the reference's lines) or emf (CloudWatch Embedded Metric Format)",
                        ));
                    }
                };
                MetricsBackend::Stdout { format }
            }
        };
        let log_level = match pick(&["LOG_LEVEL"]) {
            None => LevelFilter::INFO,
            Some((n, v)) => match v.to_ascii_lowercase().as_str() {
                "error" => LevelFilter::ERROR,
                "warn" | "warning" => LevelFilter::WARN,
                "info" => LevelFilter::INFO,
                "debug" => LevelFilter::DEBUG,
                "trace" => LevelFilter::TRACE,
                "off" => LevelFilter::OFF,
                _ => return Err(err(&n, &v, "one of error, warn, info, debug, trace, off")),
            },
        };
        let query_timeout = match pick(&["BIGQUERY_TIMEOUT_SECS"]) {
            None => Duration::from_secs(30),
            Some((n, v)) => match v.parse::<f64>() {
                Ok(s) if s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
                _ => return Err(err(&n, &v, "seconds, more than 0 and at most 3600")),
            },
        };
        let handlers_dir = match pick(&["HANDLERS_DIR"]) {
            None => None,
            Some((n, v)) => {
                let p = PathBuf::from(&v);
                if !p.is_dir() {
                    return Err(err(&n, &v, "an existing directory of handler .toml/.sql files"));
                }
                Some(p)
            }
        };
        let metrics_file = match pick(&["METRICS_FILE"]) {
            None => None,
            Some((n, v)) if !matches!(metrics_backend, MetricsBackend::Stdout { .. }) => {
                return Err(err(&n, &v, "unset: it copies the lines of METRICS_BACKEND=stdout only"));
            }
            Some((_, v)) => Some(PathBuf::from(v)),
        };
        let max_body_bytes = match pick(&["MAX_BODY_BYTES"]) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some((n, v)) => match v.parse::<usize>() {
                Ok(b) if b >= 1024 => b,
                _ => return Err(err(&n, &v, "a number of bytes, at least 1024")),
            },
        };
        let seconds = |name: &str, default: f64| -> Result<Duration, ConfigError> {
            match pick(&[name]) {
                None => Ok(Duration::from_secs_f64(default)),
                Some((n, v)) => match v.parse::<f64>() {
                    Ok(s) if (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
                    _ => Err(err(&n, &v, "seconds, from 0 to 3600")),
                },
            }
        };
        // a timeout that must pass before anything can happen: more than 0
        let timeout = |name: &str, default: f64| -> Result<Duration, ConfigError> {
            match pick(&[name]) {
                None => Ok(Duration::from_secs_f64(default)),
                Some((n, v)) => match v.parse::<f64>() {
                    Ok(s) if s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
                    _ => Err(err(&n, &v, "seconds, more than 0 and at most 3600")),
                },
            }
        };
        let connections = Connections {
            header_read: timeout("HEADER_READ_TIMEOUT_SECS", Connections::default().header_read.as_secs_f64())?,
            idle: timeout("IDLE_TIMEOUT_SECS", Connections::default().idle.as_secs_f64())?,
        };
        let sink_deadline = seconds("SINK_DEADLINE_SECS", 20.0)?;
        let shutdown_grace = seconds("SHUTDOWN_GRACE_SECS", 8.0)?;
        let google_credentials = google_credentials(&get, &pick)?;
        let flag = |name: &str, default: bool| -> Result<bool, ConfigError> {
            match pick(&[name]) {
                None => Ok(default),
                Some((n, v)) => match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    _ => Err(err(&n, &v, "true or false")),
                },
            }
        };
        let count = |name: &str, default: usize| -> Result<usize, ConfigError> {
            match pick(&[name]) {
                None => Ok(default),
                Some((n, v)) => v.parse().map_err(|_| err(&n, &v, "a whole number")),
            }
        };
        let audience = pick(&["PUSH_AUDIENCE"]).map(|(_, v)| v);
        let auth = match pick(&["AUTH_MODE"]).map(|(n, v)| (n, v.to_ascii_lowercase())) {
            Some((_, v)) if v == "off" || v == "trust-platform" => None,
            Some((n, v)) if v != "verify" => return Err(err(&n, &v, "verify, off or trust-platform")),
            mode => match (audience, mode.is_some()) {
                (None, false) => None,
                (None, true) => {
                    return Err(err("AUTH_MODE", "verify", "PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNTS must be set too"));
                }
                (Some(audience), _) => {
                    let accounts: Vec<String> = pick(&["PUSH_SERVICE_ACCOUNTS"])
                        .map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                        .unwrap_or_default();
                    if accounts.is_empty() {
                        return Err(err(
                            "PUSH_SERVICE_ACCOUNTS",
                            "",
                            "the push subscription's service account e-mail(s), comma-separated",
                        ));
                    }
                    let jwks_url = url_var(&pick, "PUSH_JWKS_URL", crate::ingress::auth::GOOGLE_JWKS_URL)?;
                    Some(PushAuth { audience, service_accounts: accounts, jwks_url })
                }
            },
        };
        // Which datasets handlers may read. Required outside local mode: without it any table the
        // credentials can read could be named by a payload variable. In local mode (an emulator)
        // the default is any dataset of the data project.
        let allowed_datasets = match pick(&["ALLOWED_DATASETS"]) {
            None if bigquery_emulator_host.is_none() => {
                return Err(err(
                    "ALLOWED_DATASETS",
                    "",
                    "the datasets handlers may read, required outside local mode (BIGQUERY_EMULATOR_HOST unset): \
                     comma-separated `dataset` (of the data project), `project.dataset`, or a prefix such as `tmp_*`",
                ));
            }
            None => None,
            Some((n, v)) => {
                let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                let name = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let valid = |d: &str| {
                    let (project, dataset) = match d.split_once('.') {
                        Some((p, d)) => (Some(p), d),
                        None => (None, d),
                    };
                    let project_ok = project.is_none_or(|p| {
                        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !p.starts_with('-')
                    });
                    let dataset_ok = match dataset.strip_suffix('*') {
                        Some(prefix) => prefix.is_empty() && project.is_some() || name(prefix),
                        None => name(dataset),
                    };
                    project_ok && dataset_ok
                };
                if list.is_empty() || !list.iter().all(|d| valid(d)) {
                    return Err(err(
                        &n,
                        &v,
                        "comma-separated datasets, each `dataset`, `project.dataset`, or a prefix `tmp_*` / `project.tmp_*` \
                         (`project.*`: every dataset of that project)",
                    ));
                }
                Some(list)
            }
        };
        let labels = {
            use crate::pipeline::labels::{GCM_MAX_LABEL_VALUE_BYTES, LabelLimits};
            let is_gcm = matches!(metrics_backend, MetricsBackend::CloudMonitoring { .. });
            let max_value_bytes = match pick(&["MAX_LABEL_VALUE_BYTES"]) {
                None => LabelLimits::default().max_value_bytes,
                Some((n, v)) => match v.parse::<usize>() {
                    Ok(b) if b >= 64 && (b <= GCM_MAX_LABEL_VALUE_BYTES || !is_gcm) => b,
                    _ if is_gcm => {
                        return Err(err(
                            &n,
                            &v,
                            "a number of bytes from 64 to 1024 (Cloud Monitoring refuses longer label values)",
                        ));
                    }
                    _ => return Err(err(&n, &v, "a number of bytes, at least 64")),
                },
            };
            LabelLimits { max_value_bytes, max_values: count("MAX_LABEL_VALUES", LabelLimits::default().max_values)? }
        };
        let delivery = Delivery {
            labels,
            auth,
            ack_permanent: flag("ACK_PERMANENT_ERRORS", false)?,
            event_deadline: seconds("EVENT_DEADLINE_SECS", 50.0)?,
            dedup_window: seconds("DEDUP_WINDOW_SECS", 600.0)?,
            dedup_capacity: count("DEDUP_CAPACITY", 50_000)?,
            max_in_flight: count("MAX_IN_FLIGHT", 256)?,
            body_read_timeout: timeout("BODY_READ_TIMEOUT_SECS", 20.0)?,
            body_buffer_bytes: match pick(&["BODY_BUFFER_BYTES"]) {
                None => 4 * max_body_bytes,
                Some((n, v)) => match v.parse::<usize>() {
                    Ok(b) if b >= max_body_bytes => b,
                    _ => {
                        return Err(err(
                            &n,
                            &v,
                            &format!("a number of bytes, at least MAX_BODY_BYTES ({max_body_bytes})"),
                        ));
                    }
                },
            },
            allowed_datasets,
            self_metrics: flag("SELF_METRICS", !metrics_backend.is_stdout())?,
            self_metrics_interval: seconds("SELF_METRICS_INTERVAL_SECS", 60.0)?,
            process_history: flag("PROCESS_HISTORY", false)?,
            files: FilesConfig {
                prefixes: pick(&["FILES_PREFIXES"])
                    .map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default(),
                tables: pick(&["FILES_TABLES"])
                    .map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
                max_line_bytes: match pick(&["MAX_LINE_BYTES"]) {
                    None => FilesConfig::default().max_line_bytes,
                    Some((n, v)) => match v.parse::<usize>() {
                        Ok(b) if b >= 1024 => b,
                        _ => return Err(err(&n, &v, "a number of bytes, at least 1024")),
                    },
                },
            },
            history_time_columns: match pick(&["HISTORY_TIME_COLUMNS"]) {
                None => vec!["completed_at".into(), "updated_at".into()],
                Some((n, v)) => {
                    let list: Vec<String> =
                        v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                    if list.is_empty()
                        || !list.iter().all(|c| c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
                    {
                        return Err(err(&n, &v, "comma-separated column names of the run table"));
                    }
                    list
                }
            },
        };
        let dir = |name: &str, what: &str| -> Result<Option<PathBuf>, ConfigError> {
            match pick(&[name]) {
                None => Ok(None),
                Some((n, v)) => {
                    let p = PathBuf::from(&v);
                    if p.is_dir() { Ok(Some(p)) } else { Err(err(&n, &v, what)) }
                }
            }
        };
        let lifecycle = LifecycleConfig {
            profiles: match pick(&["PROFILES"]) {
                None => None,
                Some((_, v)) if v.eq_ignore_ascii_case("none") => Some(Vec::new()),
                Some((_, v)) if v.eq_ignore_ascii_case("all") => None,
                Some((_, v)) => Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
            },
            profiles_dir: dir("PROFILES_DIR", "an existing directory of profile .toml files")?,
            fact_store: fact_store(&pick, &data_project)?,
            lookup_wait: seconds("LOOKUP_WAIT_SECS", 600.0)?,
        };
        let storage_emulator_host = pick(&["STORAGE_EMULATOR_HOST"]).map(|(_, v)| v);
        let lineage_api_key =
            get("OPENLINEAGE_API_KEY").filter(|v| !v.trim().is_empty()).map(|v| Secret(v.trim().to_string()));
        Ok(Config {
            lineage_api_key,
            connections,
            storage_emulator_host,
            lifecycle,
            host,
            port,
            metric_project,
            data_project,
            bigquery_emulator_host,
            metrics_backend,
            log_level,
            query_timeout,
            handlers_dir,
            metrics_file,
            max_body_bytes,
            sink_deadline,
            google_credentials,
            shutdown_grace,
            delivery,
        })
    }

    /// Whether Google credentials are needed (BigQuery without emulator, Cloud Monitoring, or
    /// Firestore without emulator).
    pub fn needs_google_credentials(&self) -> bool {
        self.bigquery_emulator_host.is_none()
            || matches!(self.metrics_backend, MetricsBackend::CloudMonitoring { .. })
            || self.needs_firestore_credentials()
    }

    /// Whether the fact store is Firestore itself (not its emulator).
    pub fn needs_firestore_credentials(&self) -> bool {
        matches!(self.lifecycle.fact_store, FactStoreConfig::Firestore { emulator_host: None, .. })
    }
}

/// `GCP_SA_KEY_JSON`, `GCP_SA_KEY_SECRET_ARN`, `GCP_EXTERNAL_ACCOUNT_JSON` (one at most), else
/// `GOOGLE_APPLICATION_CREDENTIALS`.
fn google_credentials(
    get: &impl Fn(&str) -> Option<String>,
    pick: &impl Fn(&[&str]) -> Option<(String, String)>,
) -> Result<GoogleCredentials, ConfigError> {
    let err = |variable: &str, value: &str, expected: &str| ConfigError {
        variable: variable.into(),
        value: value.into(),
        expected: expected.into(),
    };
    let key = get("GCP_SA_KEY_JSON").filter(|v| !v.trim().is_empty()).map(Secret);
    let arn = pick(&["GCP_SA_KEY_SECRET_ARN"]).map(|(_, v)| v);
    let external = pick(&["GCP_EXTERNAL_ACCOUNT_JSON"]).map(|(_, v)| v);
    let set: Vec<&str> = [
        key.as_ref().map(|_| "GCP_SA_KEY_JSON"),
        arn.as_ref().map(|_| "GCP_SA_KEY_SECRET_ARN"),
        external.as_ref().map(|_| "GCP_EXTERNAL_ACCOUNT_JSON"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if set.len() > 1 {
        return Err(err(set[1], "(set)", &format!("only one source of Google credentials; {} is set too", set[0])));
    }
    if let Some(arn) = arn {
        let name_ok = !arn.contains(char::is_whitespace);
        if !name_ok || (arn.starts_with("arn:") && crate::aws::arn_region(&arn).is_none()) {
            return Err(err(
                "GCP_SA_KEY_SECRET_ARN",
                &arn,
                "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME (or a secret name)",
            ));
        }
        return Ok(GoogleCredentials::KeySecret(arn));
    }
    if let Some(json) = external {
        if !serde_json::from_str::<serde_json::Value>(&json).is_ok_and(|v| v["type"] == "external_account") {
            // the configuration holds no secret: safe to show its start
            let start: String = json.chars().take(40).collect();
            return Err(err(
                "GCP_EXTERNAL_ACCOUNT_JSON",
                &start,
                "an external_account credential configuration (JSON)",
            ));
        }
        return Ok(GoogleCredentials::ExternalAccountJson(json));
    }
    if let Some(key) = key {
        return Ok(GoogleCredentials::KeyJson(key));
    }
    let file = pick(&["GOOGLE_APPLICATION_CREDENTIALS"]).map(|(_, v)| PathBuf::from(v));
    Ok(GoogleCredentials::Default { file })
}

/// `FACT_STORE` and the settings of the chosen store; those of the others are not read.
fn fact_store(
    pick: &impl Fn(&[&str]) -> Option<(String, String)>,
    data_project: &str,
) -> Result<FactStoreConfig, ConfigError> {
    let err = |variable: &str, value: &str, expected: &str| ConfigError {
        variable: variable.into(),
        value: value.into(),
        expected: expected.into(),
    };
    let kind = pick(&["FACT_STORE"]).map(|(n, v)| (n, v.to_ascii_lowercase()));
    let shared = |name: &str| -> Result<(Duration, Duration), ConfigError> {
        let ttl = match pick(&["FACT_TTL_SECS"]) {
            None => DEFAULT_FACT_TTL,
            Some((n, v)) => match v.parse::<u64>() {
                Ok(s) if (60..=366 * 24 * 3600).contains(&s) => Duration::from_secs(s),
                _ => {
                    return Err(err(
                        &n,
                        &v,
                        "whole seconds from 60 to 31622400, longer than the longest redelivery (Pub/Sub keeps messages up to 7 days; default 691200 = 8 days)",
                    ));
                }
            },
        };
        let timeout = match pick(&["FACT_STORE_TIMEOUT_SECS"]) {
            None => DEFAULT_FACT_STORE_TIMEOUT,
            Some((n, v)) => match v.parse::<f64>() {
                Ok(s) if s > 0.0 && s <= 60.0 => Duration::from_secs_f64(s),
                _ => {
                    return Err(err(
                        &n,
                        &v,
                        &format!("seconds, more than 0 and at most 60, for each request to {name}"),
                    ));
                }
            },
        };
        Ok((ttl, timeout))
    };
    let simple_name = |v: &str, max: usize| {
        v.len() <= max && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':' || c == '.')
    };
    match kind {
        None => memory(pick),
        Some((_, v)) if v == "memory" => memory(pick),
        Some((_, v)) if v == "redis" => {
            let Some((n, url)) = pick(&["REDIS_URL"]) else {
                return Err(err(
                    "REDIS_URL",
                    "",
                    "required with FACT_STORE=redis: redis://[user:password@]host:port/db",
                ));
            };
            if let Err(e) = redis::Client::open(url.as_str()) {
                let shown = crate::facts::redis::redact(&url);
                return Err(err(&n, &shown, &format!("a Redis URL such as redis://10.0.0.3:6379/0 ({e})")));
            }
            let prefix = match pick(&["FACT_KEY_PREFIX"]) {
                None => "prm:".to_string(),
                Some((n, v)) if !simple_name(&v, 64) => {
                    return Err(err(&n, &v, "at most 64 letters, digits, '_', '-', ':' or '.'"));
                }
                Some((_, v)) => v,
            };
            let (ttl, timeout) = shared("Redis")?;
            Ok(FactStoreConfig::Redis { url: Secret(url), prefix, ttl, timeout })
        }
        Some((_, v)) if v == "firestore" => {
            let project = match pick(&["FIRESTORE_PROJECT"]) {
                None => data_project.to_string(),
                Some((n, v)) => {
                    let ok = v.len() <= 63
                        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
                    if !ok {
                        return Err(err(&n, &v, "a Google Cloud project id (letters, digits, hyphens)"));
                    }
                    v
                }
            };
            let database = match pick(&["FIRESTORE_DATABASE"]) {
                None => "(default)".to_string(),
                Some((_, v)) if v == "(default)" => v,
                Some((n, v)) => {
                    let ok = (4..=63).contains(&v.len())
                        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && v.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                    if !ok {
                        return Err(err(
                            &n,
                            &v,
                            "(default) or a database id (4-63 lowercase letters, digits, hyphens)",
                        ));
                    }
                    v
                }
            };
            let collection_prefix = match pick(&["FIRESTORE_COLLECTION_PREFIX"]) {
                None => "prm_".to_string(),
                Some((n, v))
                    if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || v.len() > 64 =>
                {
                    return Err(err(&n, &v, "at most 64 letters, digits, '_' or '-'"));
                }
                Some((_, v)) => v,
            };
            let emulator_host = match pick(&["FIRESTORE_EMULATOR_HOST"]) {
                None => None,
                Some((n, v)) => {
                    let h = v.trim_start_matches("http://").trim_end_matches('/').to_string();
                    let ok =
                        h.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                    if !ok || h.contains('/') {
                        return Err(err(&n, &v, "host:port of the Firestore emulator, e.g. 127.0.0.1:8080"));
                    }
                    Some(h)
                }
            };
            let (ttl, timeout) = shared("Firestore")?;
            Ok(FactStoreConfig::Firestore { project, database, collection_prefix, emulator_host, ttl, timeout })
        }
        Some((n, v)) => Err(err(&n, &v, "memory, redis or firestore")),
    }
}

fn memory(pick: &impl Fn(&[&str]) -> Option<(String, String)>) -> Result<FactStoreConfig, ConfigError> {
    let capacity = match pick(&["FACT_MEMORY_CAPACITY"]) {
        None => crate::facts::memory::DEFAULT_CAPACITY,
        Some((n, v)) => {
            v.parse::<u64>().map_err(|_| ConfigError { variable: n, value: v, expected: "a whole number".into() })?
        }
    };
    Ok(FactStoreConfig::Memory { capacity })
}

/// What is wrong with an `OTEL_EXPORTER_OTLP_HEADERS` value, without any of its text: which
/// pair, and why.
fn header_problem(value: &str) -> String {
    for (i, pair) in value.split(',').filter(|p| !p.trim().is_empty()).enumerate() {
        match pair.split_once('=') {
            None => return format!("pair {} has no '='", i + 1),
            Some((_, v)) if percent_encoding::percent_decode_str(v.trim()).decode_utf8().is_err() => {
                return format!("the value of pair {} is not UTF-8 once percent-decoded", i + 1);
            }
            Some(_) => {}
        }
    }
    "not key=value pairs".into()
}

fn url_var(
    pick: &impl Fn(&[&str]) -> Option<(String, String)>,
    name: &str,
    default: &str,
) -> Result<String, ConfigError> {
    match pick(&[name]) {
        None => Ok(default.to_string()),
        Some((n, v)) if v.starts_with("http://") || v.starts_with("https://") => {
            let _ = n;
            Ok(v.trim_end_matches('/').to_string())
        }
        Some((n, v)) => Err(ConfigError { variable: n, value: v, expected: "an http:// or https:// URL".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The configuration of `pairs`, with ALLOWED_DATASETS=tmp_* unless they set it (outside
    /// local mode it is required; see `allowed_datasets_are_required_outside_local_mode`).
    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        map.entry("ALLOWED_DATASETS".into()).or_insert_with(|| "tmp_*".into());
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn allowed_datasets_are_required_outside_local_mode() {
        let e = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(e.variable, "ALLOWED_DATASETS");
        assert!(e.to_string().contains("required outside local mode"), "{e}");
        let local = Config::from_lookup(|k| (k == "BIGQUERY_EMULATOR_HOST").then(|| "127.0.0.1:9050".to_string()));
        assert_eq!(local.unwrap().delivery.allowed_datasets, None, "local mode: the data project's datasets");
        let c = cfg(&[("ALLOWED_DATASETS", "tmp_*, refined,other-proj.claims_*,third-proj.*")]).unwrap();
        assert_eq!(
            c.delivery.allowed_datasets.unwrap(),
            vec!["tmp_*", "refined", "other-proj.claims_*", "third-proj.*"]
        );
        for bad in ["*", "a.b.c", "a b", "tmp*x", "-p.ds", "ds-x", ""] {
            assert!(cfg(&[("ALLOWED_DATASETS", bad)]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.port, 8080);
        assert_eq!(c.metric_project, "local-project");
        assert_eq!(c.data_project, "test-project");
        assert_eq!(c.bigquery_emulator_host, None);
        assert_eq!(c.metrics_backend, MetricsBackend::stdout());
        assert_eq!(c.log_level, LevelFilter::INFO);
        assert_eq!(c.query_timeout, Duration::from_secs(30));
    }

    #[test]
    fn prefixed_names_win() {
        let c = cfg(&[
            ("CLOUD_RUN_PROJECT_ID", "plain"),
            ("MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID", "prefixed"),
            ("BIGQUERY_PROJECT_ID", "data-proj"),
        ])
        .unwrap();
        assert_eq!(c.metric_project, "prefixed");
        assert_eq!(c.data_project, "data-proj");
    }

    #[test]
    fn errors_name_the_variable() {
        let cases = [
            ("PORT", "eighty"),
            ("HOST", "localhost:1"),
            ("CLOUD_RUN_PROJECT_ID", "bad project"),
            ("BIGQUERY_EMULATOR_HOST", "9050"),
            ("METRICS_BACKEND", "carrier-pigeon"),
            ("LOG_LEVEL", "loud"),
            ("BIGQUERY_TIMEOUT_SECS", "0"),
            ("HANDLERS_DIR", "/does/not/exist"),
            ("MAX_BODY_BYTES", "12"),
            ("METRICS_BACKEND", "kafka"),
            ("LOCAL_MODE", "maybe"),
            ("SINK_DEADLINE_SECS", "-1"),
            ("HEADER_READ_TIMEOUT_SECS", "0"),
            ("IDLE_TIMEOUT_SECS", "forever"),
            ("BODY_READ_TIMEOUT_SECS", "-1"),
            ("BODY_BUFFER_BYTES", "1024"),
            ("MAX_LABEL_VALUES", "some"),
            ("MAX_LABEL_VALUE_BYTES", "10"),
        ];
        for (k, v) in cases {
            let e = cfg(&[(k, v)]).unwrap_err();
            assert_eq!(e.variable, k);
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn backend_settings_are_validated_when_the_backend_is_chosen() {
        let e = cfg(&[("METRICS_BACKEND", "gcm"), ("GCM_ENDPOINT", "monitoring.googleapis.com")]).unwrap_err();
        assert_eq!(e.variable, "GCM_ENDPOINT");
        let e = cfg(&[("METRICS_BACKEND", "gcm"), ("GCM_RESOURCE", "cloud_run_revision")]).unwrap_err();
        assert_eq!(e.variable, "GCM_RESOURCE");
        let e = cfg(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).unwrap_err();
        assert_eq!(e.variable, "OTEL_EXPORTER_OTLP_ENDPOINT");
    }

    #[test]
    fn backends() {
        assert_eq!(cfg(&[]).unwrap().metrics_backend, MetricsBackend::stdout());
        // the reference's production flag selects Cloud Monitoring unless a backend is named
        let c = cfg(&[("LOCAL_MODE", "false")]).unwrap();
        assert_eq!(
            c.metrics_backend,
            MetricsBackend::CloudMonitoring {
                endpoint: "https://monitoring.googleapis.com".into(),
                resource: crate::sink::gcm::Resource::Global,
                cumulative: crate::sink::gcm::Cumulative::default(),
            }
        );
        assert!(c.needs_google_credentials());
        let c = cfg(&[("LOCAL_MODE", "false"), ("METRICS_BACKEND", "stdout")]).unwrap();
        assert_eq!(c.metrics_backend, MetricsBackend::stdout());
        let c =
            cfg(&[("METRICS_BACKEND", "gcm"), ("GCM_RESOURCE", "generic_task"), ("K_SERVICE", "metrics-fn")]).unwrap();
        let MetricsBackend::CloudMonitoring { resource, .. } = c.metrics_backend else { panic!() };
        assert_eq!(
            resource,
            crate::sink::gcm::Resource::GenericTask {
                location: "global".into(),
                namespace: "pipeline-run-metrics".into(),
                job: "metrics-fn".into(),
                task_id: "singleton".into()
            }
        );
        let c = cfg(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", "k=v")]).unwrap();
        assert_eq!(
            c.metrics_backend,
            MetricsBackend::Otlp {
                endpoint: "http://127.0.0.1:4318".into(),
                headers: vec![("k".into(), "v".into())],
                service_name: "pipeline-run-metrics".into()
            }
        );
        assert!(c.needs_google_credentials(), "BigQuery without emulator");
        let c = cfg(&[("METRICS_BACKEND", "otlp"), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")]).unwrap();
        assert!(!c.needs_google_credentials());
    }

    #[test]
    fn stdout_formats() {
        use crate::sink::stdout::LineFormat;
        let table: &[(&[(&str, &str)], LineFormat)] = &[
            (&[], LineFormat::Json),
            (&[("METRICS_FORMAT", "json")], LineFormat::Json),
            (&[("METRICS_FORMAT", "EMF")], LineFormat::Emf { namespace: "pipeline-run-metrics".into() }),
            (
                &[("METRICS_FORMAT", "emf"), ("EMF_NAMESPACE", "Data/Pipelines")],
                LineFormat::Emf { namespace: "Data/Pipelines".into() },
            ),
        ];
        for (env, want) in table {
            assert_eq!(cfg(env).unwrap().metrics_backend, MetricsBackend::Stdout { format: want.clone() }, "{env:?}");
        }
        for (env, variable) in [
            (vec![("METRICS_FORMAT", "xml")], "METRICS_FORMAT"),
            (vec![("METRICS_FORMAT", "emf"), ("METRICS_BACKEND", "otlp")], "METRICS_FORMAT"),
            (vec![("METRICS_FORMAT", "emf"), ("EMF_NAMESPACE", "AWS/Lambda")], "EMF_NAMESPACE"),
        ] {
            assert_eq!(cfg(&env).unwrap_err().variable, variable, "{env:?}");
        }
    }

    #[test]
    fn cumulative_series_name_the_platform_instance() {
        use crate::sink::gcm::{Cumulative, TaskId};
        let cumulative = |env: &[(&str, &str)]| {
            let mut env = env.to_vec();
            env.push(("METRICS_BACKEND", "gcm"));
            match cfg(&env).unwrap().metrics_backend {
                MetricsBackend::CloudMonitoring { cumulative, .. } => cumulative,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(cumulative(&[]), Cumulative::default());
        assert_eq!(
            cumulative(&[("K_SERVICE", "fn"), ("K_REVISION", "fn-00007-xyz"), ("GCM_CUMULATIVE_INTERVAL_SECS", "30")]),
            Cumulative {
                job: "fn".into(),
                task: TaskId::CloudRun { revision: "fn-00007-xyz".into() },
                interval: Duration::from_secs(30),
                ..Cumulative::default()
            }
        );
        assert_eq!(
            cumulative(&[("AWS_LAMBDA_FUNCTION_NAME", "f"), ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/30/[$LATEST]ab")]),
            Cumulative {
                job: "f".into(),
                task: TaskId::Lambda { log_stream: "2026/11/30/[$LATEST]ab".into() },
                ..Cumulative::default()
            }
        );
        for bad in ["4", "0", "3601", "soon"] {
            let e = cfg(&[("METRICS_BACKEND", "gcm"), ("GCM_CUMULATIVE_INTERVAL_SECS", bad)]).unwrap_err();
            assert_eq!(e.variable, "GCM_CUMULATIVE_INTERVAL_SECS");
        }
    }

    #[test]
    fn delivery_settings() {
        let d = cfg(&[("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")]).unwrap().delivery;
        assert_eq!(d, Delivery { allowed_datasets: Some(vec!["tmp_*".into()]), ..Delivery::default() });
        let d = cfg(&[
            ("PUSH_AUDIENCE", "https://fn.example.com/"),
            ("PUSH_SERVICE_ACCOUNTS", "a@p.iam.gserviceaccount.com, b@p.iam.gserviceaccount.com"),
            ("ACK_PERMANENT_ERRORS", "true"),
            ("ALLOWED_DATASETS", "tmp_cemig,other-proj.refined"),
            ("DEDUP_WINDOW_SECS", "0"),
        ])
        .unwrap()
        .delivery;
        let auth = d.auth.unwrap();
        assert_eq!(auth.audience, "https://fn.example.com/");
        assert_eq!(auth.service_accounts, vec!["a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com"]);
        assert_eq!(auth.jwks_url, crate::ingress::auth::GOOGLE_JWKS_URL);
        assert!(d.ack_permanent);
        assert_eq!(d.allowed_datasets.unwrap(), vec!["tmp_cemig", "other-proj.refined"]);
        assert_eq!(d.dedup_window, Duration::ZERO);
        assert!(cfg(&[("PUSH_AUDIENCE", "https://x/"), ("AUTH_MODE", "off")]).unwrap().delivery.auth.is_none());
        for bad in [
            vec![("AUTH_MODE", "verify")],
            vec![("PUSH_AUDIENCE", "https://x/")],
            vec![("ALLOWED_DATASETS", "a.b.c")],
            vec![("ALLOWED_DATASETS", "a b")],
            vec![("MAX_IN_FLIGHT", "many")],
        ] {
            assert!(cfg(&bad).is_err(), "{bad:?}");
        }
        assert!(cfg(&[("METRICS_BACKEND", "otlp")]).unwrap().delivery.self_metrics, "on for production backends");
    }

    #[test]
    fn connection_and_body_limits() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.connections, Connections::default());
        assert_eq!(c.delivery.body_read_timeout, Duration::from_secs(20));
        assert_eq!(c.delivery.body_buffer_bytes, 4 * DEFAULT_MAX_BODY_BYTES);
        let c = cfg(&[
            ("HEADER_READ_TIMEOUT_SECS", "2.5"),
            ("IDLE_TIMEOUT_SECS", "30"),
            ("BODY_READ_TIMEOUT_SECS", "5"),
            ("MAX_BODY_BYTES", "2048"),
        ])
        .unwrap();
        assert_eq!(
            c.connections,
            Connections { header_read: Duration::from_millis(2500), idle: Duration::from_secs(30) }
        );
        assert_eq!(c.delivery.body_read_timeout, Duration::from_secs(5));
        assert_eq!(c.delivery.body_buffer_bytes, 8192, "four bodies of MAX_BODY_BYTES by default");
        let e = cfg(&[("MAX_BODY_BYTES", "4096"), ("BODY_BUFFER_BYTES", "2048")]).unwrap_err();
        assert_eq!(e.variable, "BODY_BUFFER_BYTES");
        assert!(e.expected.contains("MAX_BODY_BYTES"), "{e}");
    }

    #[test]
    fn label_limits_follow_the_backend() {
        use crate::pipeline::labels::LabelLimits;
        assert_eq!(cfg(&[]).unwrap().delivery.labels, LabelLimits { max_value_bytes: 1024, max_values: 1000 });
        let c = cfg(&[("MAX_LABEL_VALUES", "0"), ("MAX_LABEL_VALUE_BYTES", "4096")]).unwrap();
        assert_eq!(
            c.delivery.labels,
            LabelLimits { max_value_bytes: 4096, max_values: 0 },
            "stdout takes longer values"
        );
        let e = cfg(&[("METRICS_BACKEND", "gcm"), ("MAX_LABEL_VALUE_BYTES", "4096")]).unwrap_err();
        assert_eq!(e.variable, "MAX_LABEL_VALUE_BYTES");
        assert!(e.expected.contains("Cloud Monitoring"), "{e}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = cfg(&[("GCP_SA_KEY_JSON", "{\"private_key\": \"XYZ\"}")]).unwrap();
        assert!(!format!("{c:?}").contains("XYZ"));
        assert!(matches!(c.google_credentials, GoogleCredentials::KeyJson(_)));
        let e = cfg(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", "token")]).unwrap_err();
        assert!(!e.to_string().contains("token\""), "{e}");
        let e = cfg(&[
            ("METRICS_BACKEND", "otlp"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,Authorization: Bearer s3cr3t"),
        ])
        .unwrap_err();
        assert!(!e.to_string().contains("s3cr3t") && !e.to_string().contains("acme"), "{e}");
        assert!(e.to_string().contains("pair 2 has no '='"), "{e}");
        let c = cfg(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cr3t")])
            .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"), "{c:?}");
        assert!(format!("{c:?}").contains("authorization: ***"), "{c:?}");
    }

    #[test]
    fn google_credentials_have_one_source() {
        let creds = |env: &[(&str, &str)]| cfg(env).map(|c| c.google_credentials);
        assert_eq!(creds(&[]).unwrap(), GoogleCredentials::Default { file: None });
        assert_eq!(
            creds(&[("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp/wif.json")]).unwrap(),
            GoogleCredentials::Default { file: Some("/etc/gcp/wif.json".into()) }
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gcp-key-AbCdEf";
        assert_eq!(creds(&[("GCP_SA_KEY_SECRET_ARN", arn)]).unwrap(), GoogleCredentials::KeySecret(arn.into()));
        assert_eq!(
            creds(&[("GCP_SA_KEY_SECRET_ARN", "gcp-key")]).unwrap(),
            GoogleCredentials::KeySecret("gcp-key".into())
        );
        let wif = r#"{"type": "external_account", "audience": "//iam.googleapis.com/x"}"#;
        assert_eq!(
            creds(&[("GCP_EXTERNAL_ACCOUNT_JSON", wif)]).unwrap(),
            GoogleCredentials::ExternalAccountJson(wif.into())
        );
        for (env, variable) in [
            (vec![("GCP_SA_KEY_JSON", "{}"), ("GCP_SA_KEY_SECRET_ARN", arn)], "GCP_SA_KEY_SECRET_ARN"),
            (vec![("GCP_SA_KEY_SECRET_ARN", arn), ("GCP_EXTERNAL_ACCOUNT_JSON", wif)], "GCP_EXTERNAL_ACCOUNT_JSON"),
            (vec![("GCP_SA_KEY_SECRET_ARN", "arn:aws:s3:::bucket")], "GCP_SA_KEY_SECRET_ARN"),
            (vec![("GCP_EXTERNAL_ACCOUNT_JSON", r#"{"type": "service_account"}"#)], "GCP_EXTERNAL_ACCOUNT_JSON"),
        ] {
            let e = creds(&env).unwrap_err();
            assert_eq!(e.variable, variable, "{env:?}: {e}");
        }
        // a key set together with another source is named, never shown
        let e = creds(&[("GCP_SA_KEY_JSON", "{\"private_key\": \"XYZ\"}"), ("GCP_EXTERNAL_ACCOUNT_JSON", wif)])
            .unwrap_err();
        assert!(!e.to_string().contains("XYZ"), "{e}");
    }

    #[test]
    fn fact_stores() {
        let lc = |pairs: &[(&str, &str)]| cfg(pairs).map(|c| c.lifecycle.fact_store);
        assert_eq!(lc(&[]).unwrap(), FactStoreConfig::Memory { capacity: crate::facts::memory::DEFAULT_CAPACITY });
        assert_eq!(
            lc(&[("FACT_STORE", "memory"), ("FACT_MEMORY_CAPACITY", "7")]).unwrap(),
            FactStoreConfig::Memory { capacity: 7 }
        );
        let r = lc(&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://:pw@127.0.0.1:6379/0")]).unwrap();
        assert_eq!(
            r,
            FactStoreConfig::Redis {
                url: Secret("redis://:pw@127.0.0.1:6379/0".into()),
                prefix: "prm:".into(),
                ttl: Duration::from_secs(8 * 24 * 3600),
                timeout: Duration::from_secs(5)
            }
        );
        assert!(!format!("{r:?}").contains("pw"), "the URL may hold a password");
        let r = lc(&[
            ("FACT_STORE", "REDIS"),
            ("REDIS_URL", "redis://10.0.0.3"),
            ("FACT_KEY_PREFIX", "svc:"),
            ("FACT_TTL_SECS", "3600"),
            ("FACT_STORE_TIMEOUT_SECS", "0.5"),
        ])
        .unwrap();
        assert_eq!(
            r,
            FactStoreConfig::Redis {
                url: Secret("redis://10.0.0.3".into()),
                prefix: "svc:".into(),
                ttl: Duration::from_secs(3600),
                timeout: Duration::from_millis(500)
            }
        );
        let c = cfg(&[("FACT_STORE", "firestore"), ("BIGQUERY_PROJECT_ID", "data-p")]).unwrap();
        assert_eq!(
            c.lifecycle.fact_store,
            FactStoreConfig::Firestore {
                project: "data-p".into(),
                database: "(default)".into(),
                collection_prefix: "prm_".into(),
                emulator_host: None,
                ttl: Duration::from_secs(8 * 24 * 3600),
                timeout: Duration::from_secs(5)
            }
        );
        assert!(c.needs_firestore_credentials());
        let c = cfg(&[
            ("FACT_STORE", "firestore"),
            ("FIRESTORE_PROJECT", "facts-p"),
            ("FIRESTORE_DATABASE", "metrics-db"),
            ("FIRESTORE_COLLECTION_PREFIX", "t1_"),
            ("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8089"),
            ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050"),
        ])
        .unwrap();
        let FactStoreConfig::Firestore { project, database, collection_prefix, emulator_host, .. } =
            &c.lifecycle.fact_store
        else {
            panic!()
        };
        assert_eq!((project.as_str(), database.as_str(), collection_prefix.as_str()), ("facts-p", "metrics-db", "t1_"));
        assert_eq!(emulator_host.as_deref(), Some("127.0.0.1:8089"));
        assert!(!c.needs_google_credentials(), "the emulator needs no token");
    }

    #[test]
    fn fact_store_errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("FACT_STORE", "dynamo")], "FACT_STORE"),
            (&[("FACT_STORE", "redis")], "REDIS_URL"),
            (&[("FACT_STORE", "redis"), ("REDIS_URL", "http://127.0.0.1:6379")], "REDIS_URL"),
            (&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://h"), ("FACT_KEY_PREFIX", "a b")], "FACT_KEY_PREFIX"),
            (&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://h"), ("FACT_TTL_SECS", "10")], "FACT_TTL_SECS"),
            (&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://h"), ("FACT_TTL_SECS", "8d")], "FACT_TTL_SECS"),
            (
                &[("FACT_STORE", "redis"), ("REDIS_URL", "redis://h"), ("FACT_STORE_TIMEOUT_SECS", "0")],
                "FACT_STORE_TIMEOUT_SECS",
            ),
            (&[("FACT_STORE", "firestore"), ("FIRESTORE_PROJECT", "a b")], "FIRESTORE_PROJECT"),
            (&[("FACT_STORE", "firestore"), ("FIRESTORE_DATABASE", "Default")], "FIRESTORE_DATABASE"),
            (&[("FACT_STORE", "firestore"), ("FIRESTORE_COLLECTION_PREFIX", "a/b")], "FIRESTORE_COLLECTION_PREFIX"),
            (&[("FACT_STORE", "firestore"), ("FIRESTORE_EMULATOR_HOST", "localhost")], "FIRESTORE_EMULATOR_HOST"),
            (&[("FACT_STORE", "memory"), ("FACT_MEMORY_CAPACITY", "lots")], "FACT_MEMORY_CAPACITY"),
        ];
        for (pairs, variable) in cases {
            let e = cfg(pairs).unwrap_err();
            assert_eq!(e.variable, *variable, "{pairs:?}: {e}");
            assert!(e.to_string().contains(variable), "{e}");
        }
        let e = cfg(&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://:hunter2@h:notaport")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn emulator_host_forms() {
        let c = cfg(&[("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")]).unwrap();
        assert_eq!(c.bigquery_emulator_host.as_deref(), Some("127.0.0.1:9050"));
        assert!(cfg(&[("BIGQUERY_EMULATOR_HOST", "http://localhost:9050")]).is_ok());
    }
}
