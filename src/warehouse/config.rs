//! The warehouse's settings: BigQuery or its emulator, the limit of one call, and which
//! datasets handlers may read.
//!
//! Variables: `BIGQUERY_EMULATOR_HOST`, `BIGQUERY_TIMEOUT_SECS`, `ALLOWED_DATASETS` (kept in the
//! pipeline's `Delivery`, checked here). The data project (`BIGQUERY_PROJECT_ID`) is shared by
//! several components and read by `config`.

use std::time::Duration;

use crate::vars::{ConfigError, Vars, is_host_port, split_list};

/// BigQuery or its emulator.
#[derive(Debug, Clone, PartialEq)]
pub struct WarehouseConfig {
    /// `host:port` of a BigQuery emulator (`BIGQUERY_EMULATOR_HOST`, an `http://` in front
    /// allowed); unset means BigQuery with Google credentials ("local mode" is its being set).
    pub emulator_host: Option<String>,
    /// Limit for one BigQuery call, existence check or query, polling included
    /// (`BIGQUERY_TIMEOUT_SECS`, more than 0 and at most 3600; 30 s by default).
    pub query_timeout: Duration,
}

impl WarehouseConfig {
    /// `BIGQUERY_EMULATOR_HOST` only: whether this is local mode decides other defaults.
    pub fn emulator_host(vars: &Vars) -> Result<Option<String>, ConfigError> {
        match vars.pick(&["BIGQUERY_EMULATOR_HOST"]) {
            None => Ok(None),
            Some((n, v)) if !is_host_port(&v) => {
                Err(ConfigError::new(&n, &v, "host:port of a BigQuery emulator, e.g. 127.0.0.1:9050"))
            }
            Some((_, v)) => Ok(Some(v)),
        }
    }

    /// `BIGQUERY_TIMEOUT_SECS`, with the emulator host read before.
    pub fn from_vars(vars: &Vars, emulator_host: Option<String>) -> Result<WarehouseConfig, ConfigError> {
        let query_timeout = match vars.pick(&["BIGQUERY_TIMEOUT_SECS"]) {
            None => Duration::from_secs(30),
            Some((n, v)) => match v.parse::<f64>() {
                Ok(s) if s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
                _ => return Err(ConfigError::new(&n, &v, "seconds, more than 0 and at most 3600")),
            },
        };
        Ok(WarehouseConfig { emulator_host, query_timeout })
    }
}

/// Which datasets handlers may read (`ALLOWED_DATASETS`): comma-separated `dataset` (of the
/// data project), `project.dataset`, a prefix `tmp_*` / `project.tmp_*`, or `project.*`.
/// Required outside local mode: without it any table the credentials can read could be named by
/// a payload variable. In local mode (an emulator) the default, `None`, is any dataset of the
/// data project.
pub fn allowed_datasets(vars: &Vars, local: bool) -> Result<Option<Vec<String>>, ConfigError> {
    match vars.pick(&["ALLOWED_DATASETS"]) {
        None if !local => Err(ConfigError::new(
            "ALLOWED_DATASETS",
            "",
            "the datasets handlers may read, required outside local mode (BIGQUERY_EMULATOR_HOST unset): \
             comma-separated `dataset` (of the data project), `project.dataset`, or a prefix such as `tmp_*`",
        )),
        None => Ok(None),
        Some((n, v)) => {
            let list = split_list(&v);
            if list.is_empty() || !list.iter().all(|d| valid_dataset(d)) {
                return Err(ConfigError::new(
                    &n,
                    &v,
                    "comma-separated datasets, each `dataset`, `project.dataset`, or a prefix `tmp_*` / `project.tmp_*` \
                     (`project.*`: every dataset of that project)",
                ));
            }
            Ok(Some(list))
        }
    }
}

/// One item of `ALLOWED_DATASETS`.
fn valid_dataset(d: &str) -> bool {
    let name = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
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
}
