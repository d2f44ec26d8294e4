//! Configuration from the environment, validated once at startup.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tracing::level_filters::LevelFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsBackend {
    /// One JSON line per point on stdout (local work).
    Stdout,
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
    pub metrics_backend: MetricsBackend,
    pub log_level: LevelFilter,
    /// Limit for one BigQuery call (existence check or query, polling included).
    pub query_timeout: Duration,
    /// Extra or overriding handler files.
    pub handlers_dir: Option<PathBuf>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
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
        let metrics_backend = match pick(&["METRICS_BACKEND"]) {
            None => MetricsBackend::Stdout,
            Some((_, v)) if v.eq_ignore_ascii_case("stdout") => MetricsBackend::Stdout,
            Some((n, v)) => return Err(err(&n, &v, "stdout (the only backend of this version)")),
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
        let max_body_bytes = match pick(&["MAX_BODY_BYTES"]) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some((n, v)) => match v.parse::<usize>() {
                Ok(b) if b >= 1024 => b,
                _ => return Err(err(&n, &v, "a number of bytes, at least 1024")),
            },
        };
        Ok(Config {
            host,
            port,
            metric_project,
            data_project,
            bigquery_emulator_host,
            metrics_backend,
            log_level,
            query_timeout,
            handlers_dir,
            max_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.port, 8080);
        assert_eq!(c.metric_project, "local-project");
        assert_eq!(c.data_project, "test-project");
        assert_eq!(c.bigquery_emulator_host, None);
        assert_eq!(c.metrics_backend, MetricsBackend::Stdout);
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
        ];
        for (k, v) in cases {
            let e = cfg(&[(k, v)]).unwrap_err();
            assert_eq!(e.variable, k);
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn emulator_host_forms() {
        let c = cfg(&[("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")]).unwrap();
        assert_eq!(c.bigquery_emulator_host.as_deref(), Some("127.0.0.1:9050"));
        assert!(cfg(&[("BIGQUERY_EMULATOR_HOST", "http://localhost:9050")]).is_ok());
    }
}
