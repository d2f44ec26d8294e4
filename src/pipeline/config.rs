//! The pipeline's settings: how deliveries are admitted, de-duplicated, answered and observed,
//! which history records and Cloud Storage files are read, and the bounds of labels.
//!
//! Variables: `ACK_PERMANENT_ERRORS`, `EVENT_DEADLINE_SECS`, `DEDUP_WINDOW_SECS`,
//! `DEDUP_CAPACITY`, `MAX_IN_FLIGHT`, `BODY_READ_TIMEOUT_SECS`, `BODY_BUFFER_BYTES`,
//! `ALLOWED_DATASETS` (validated by `warehouse::config`), `SELF_METRICS`,
//! `SELF_METRICS_INTERVAL_SECS`, `PROCESS_HISTORY`, `HISTORY_TIME_COLUMNS`, `FILES_PREFIXES`,
//! `FILES_TABLES`, `MAX_LINE_BYTES`, `MAX_LABEL_VALUE_BYTES`, `MAX_LABEL_VALUES`.

use std::time::Duration;

use super::labels::{GCM_MAX_LABEL_VALUE_BYTES, LabelLimits};
use crate::vars::{ConfigError, Vars, split_list};

/// Bytes of request bodies held at once by default: four bodies of the ingress's default
/// `MAX_BODY_BYTES` (14 MiB).
pub const DEFAULT_BODY_BUFFER_BYTES: usize = 4 * 14 * 1024 * 1024;

/// How deliveries are accepted and answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
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
    pub labels: LabelLimits,
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
            ack_permanent: false,
            event_deadline: Duration::from_secs(50),
            dedup_window: Duration::from_secs(600),
            dedup_capacity: 50_000,
            max_in_flight: 256,
            body_read_timeout: Duration::from_secs(20),
            body_buffer_bytes: DEFAULT_BODY_BUFFER_BYTES,
            allowed_datasets: None,
            self_metrics: false,
            self_metrics_interval: Duration::from_secs(60),
            process_history: false,
            history_time_columns: vec!["completed_at".into(), "updated_at".into()],
            files: FilesConfig::default(),
            labels: LabelLimits::default(),
        }
    }
}

/// What the pipeline's defaults and bounds depend on in other components' settings.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The ingress's `MAX_BODY_BYTES`: `BODY_BUFFER_BYTES` is at least that, four times it by
    /// default.
    pub max_body_bytes: usize,
    /// Local mode (a BigQuery emulator): `ALLOWED_DATASETS` may be left unset.
    pub local: bool,
    /// The sink is Cloud Monitoring: label values of at most 1024 bytes.
    pub cloud_monitoring: bool,
    /// The sink is stdout: no self-metrics by default.
    pub stdout: bool,
}

impl Delivery {
    /// The pipeline's variables, bounded by `cx`. Errors name the variable and its value.
    pub fn from_vars(vars: &Vars, cx: Context) -> Result<Delivery, ConfigError> {
        let allowed_datasets = crate::warehouse::config::allowed_datasets(vars, cx.local)?;
        let labels = label_limits(vars, cx.cloud_monitoring)?;
        let defaults = Delivery::default();
        Ok(Delivery {
            labels,
            ack_permanent: vars.flag("ACK_PERMANENT_ERRORS", false)?,
            event_deadline: vars.seconds("EVENT_DEADLINE_SECS", 50.0)?,
            dedup_window: vars.seconds("DEDUP_WINDOW_SECS", 600.0)?,
            dedup_capacity: match vars.count("DEDUP_CAPACITY", defaults.dedup_capacity)? {
                // 0 would remember nothing while the window looks on: say how to turn it off
                0 => {
                    return Err(ConfigError::new(
                        "DEDUP_CAPACITY",
                        "0",
                        "a whole number of at least 1 (DEDUP_WINDOW_SECS=0 turns the window off)",
                    ));
                }
                n => n,
            },
            max_in_flight: vars.count("MAX_IN_FLIGHT", defaults.max_in_flight)?,
            body_read_timeout: vars.timeout("BODY_READ_TIMEOUT_SECS", 20.0)?,
            body_buffer_bytes: vars.bytes(
                "BODY_BUFFER_BYTES",
                4 * cx.max_body_bytes,
                cx.max_body_bytes,
                &format!("a number of bytes, at least MAX_BODY_BYTES ({})", cx.max_body_bytes),
            )?,
            allowed_datasets,
            self_metrics: vars.flag("SELF_METRICS", !cx.stdout)?,
            self_metrics_interval: vars.seconds("SELF_METRICS_INTERVAL_SECS", 60.0)?,
            process_history: vars.flag("PROCESS_HISTORY", false)?,
            files: FilesConfig {
                prefixes: vars.list("FILES_PREFIXES").map(|(_, l)| l).unwrap_or_default(),
                tables: vars.list("FILES_TABLES").map(|(_, l)| l),
                max_line_bytes: vars.bytes(
                    "MAX_LINE_BYTES",
                    FilesConfig::default().max_line_bytes,
                    1024,
                    "a number of bytes, at least 1024",
                )?,
            },
            history_time_columns: match vars.pick(&["HISTORY_TIME_COLUMNS"]) {
                None => defaults.history_time_columns,
                Some((n, v)) => {
                    let list = split_list(&v);
                    if list.is_empty()
                        || !list.iter().all(|c| c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
                    {
                        return Err(ConfigError::new(&n, &v, "comma-separated column names of the run table"));
                    }
                    list
                }
            },
        })
    }
}

/// `MAX_LABEL_VALUE_BYTES` (at least 64; at most 1024 for Cloud Monitoring, which refuses
/// longer values) and `MAX_LABEL_VALUES`.
fn label_limits(vars: &Vars, cloud_monitoring: bool) -> Result<LabelLimits, ConfigError> {
    let max_value_bytes = match vars.pick(&["MAX_LABEL_VALUE_BYTES"]) {
        None => LabelLimits::default().max_value_bytes,
        Some((n, v)) => match v.parse::<usize>() {
            Ok(b) if b >= 64 && (b <= GCM_MAX_LABEL_VALUE_BYTES || !cloud_monitoring) => b,
            _ if cloud_monitoring => {
                return Err(ConfigError::new(
                    &n,
                    &v,
                    "a number of bytes from 64 to 1024 (Cloud Monitoring refuses longer label values)",
                ));
            }
            _ => return Err(ConfigError::new(&n, &v, "a number of bytes, at least 64")),
        },
    };
    Ok(LabelLimits { max_value_bytes, max_values: vars.count("MAX_LABEL_VALUES", LabelLimits::default().max_values)? })
}

#[cfg(test)]
mod tests;
