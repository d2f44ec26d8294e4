//! The fact store's settings: where facts are remembered, and for how long.
//!
//! Variables: `FACT_STORE` (`memory`, `redis` or `firestore`) and the chosen store's:
//! `FACT_MEMORY_CAPACITY`; `REDIS_URL` (a secret: it may hold a password), `FACT_KEY_PREFIX`;
//! `FIRESTORE_PROJECT`, `FIRESTORE_DATABASE`, `FIRESTORE_COLLECTION_PREFIX`,
//! `FIRESTORE_EMULATOR_HOST`; and, for both shared stores, `FACT_TTL_SECS` and
//! `FACT_STORE_TIMEOUT_SECS`.

use std::time::Duration;

use crate::vars::{ConfigError, Secret, Vars};

/// How long a shared store remembers a fact by default: 8 days, longer than Pub/Sub's longest
/// retention (7 days), so that every redelivery of a record finds its facts.
pub const DEFAULT_FACT_TTL: Duration = Duration::from_secs(8 * 24 * 3600);
/// Limit of one request to a shared fact store by default.
pub const DEFAULT_FACT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where facts are remembered (`FACT_STORE`).
#[derive(Debug, Clone, PartialEq)]
pub enum FactStoreConfig {
    /// In-process, bounded: `FACT_MEMORY_CAPACITY` entries of each kind, and `FACT_MEMORY_MIB`
    /// mebibytes altogether (`None`: [`super::memory::default_bytes`] of the capacity).
    Memory { capacity: u64, bytes: Option<u64> },
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

impl Default for FactStoreConfig {
    fn default() -> Self {
        FactStoreConfig::Memory { capacity: super::memory::DEFAULT_CAPACITY, bytes: None }
    }
}

impl FactStoreConfig {
    /// `memory`, `redis` or `firestore`.
    pub fn name(&self) -> &'static str {
        match self {
            FactStoreConfig::Memory { .. } => "memory",
            FactStoreConfig::Redis { .. } => "redis",
            FactStoreConfig::Firestore { .. } => "firestore",
        }
    }

    /// `FACT_STORE` and the settings of the chosen store; those of the others are not read.
    /// `data_project` is Firestore's project by default. A Redis URL is shown with its password
    /// masked.
    pub fn from_vars(vars: &Vars, data_project: &str) -> Result<FactStoreConfig, ConfigError> {
        match vars.pick(&["FACT_STORE"]).map(|(n, v)| (n, v.to_ascii_lowercase())) {
            None => memory(vars),
            Some((_, v)) if v == "memory" => memory(vars),
            Some((_, v)) if v == "redis" => redis(vars),
            Some((_, v)) if v == "firestore" => firestore(vars, data_project),
            Some((n, v)) => Err(ConfigError::new(&n, &v, "memory, redis or firestore")),
        }
    }
}

fn memory(vars: &Vars) -> Result<FactStoreConfig, ConfigError> {
    let capacity = match vars.pick(&["FACT_MEMORY_CAPACITY"]) {
        None => super::memory::DEFAULT_CAPACITY,
        Some((n, v)) => match v.parse::<u64>() {
            // 0 would remember no fact: every redelivery would count again
            Ok(c @ 1..) => c,
            _ => return Err(ConfigError::new(&n, &v, "a whole number of at least 1")),
        },
    };
    let bytes = match vars.pick(&["FACT_MEMORY_MIB"]) {
        None => None,
        Some((n, v)) => match v.parse::<u64>() {
            Ok(mib @ 1..=65_536) => Some(mib << 20),
            _ => return Err(ConfigError::new(&n, &v, "whole mebibytes from 1 to 65536")),
        },
    };
    Ok(FactStoreConfig::Memory { capacity, bytes })
}

/// `FACT_TTL_SECS` and `FACT_STORE_TIMEOUT_SECS` of the shared store `name`.
fn shared(vars: &Vars, name: &str) -> Result<(Duration, Duration), ConfigError> {
    let ttl = match vars.pick(&["FACT_TTL_SECS"]) {
        None => DEFAULT_FACT_TTL,
        Some((n, v)) => match v.parse::<u64>() {
            Ok(s) if (60..=366 * 24 * 3600).contains(&s) => Duration::from_secs(s),
            _ => {
                return Err(ConfigError::new(
                    &n,
                    &v,
                    "whole seconds from 60 to 31622400, longer than the longest redelivery (Pub/Sub keeps messages up to 7 days; default 691200 = 8 days)",
                ));
            }
        },
    };
    let timeout = match vars.pick(&["FACT_STORE_TIMEOUT_SECS"]) {
        None => DEFAULT_FACT_STORE_TIMEOUT,
        Some((n, v)) => match v.parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 60.0 => Duration::from_secs_f64(s),
            _ => {
                return Err(ConfigError::new(
                    &n,
                    &v,
                    &format!("seconds, more than 0 and at most 60, for each request to {name}"),
                ));
            }
        },
    };
    Ok((ttl, timeout))
}

fn redis(vars: &Vars) -> Result<FactStoreConfig, ConfigError> {
    let Some((n, url)) = vars.pick(&["REDIS_URL"]) else {
        return Err(ConfigError::new(
            "REDIS_URL",
            "",
            "required with FACT_STORE=redis: redis://[user:password@]host:port/db",
        ));
    };
    if let Err(e) = redis::Client::open(url.as_str()) {
        let shown = super::redis::redact(&url);
        return Err(ConfigError::new(&n, &shown, &format!("a Redis URL such as redis://10.0.0.3:6379/0 ({e})")));
    }
    let prefix = match vars.pick(&["FACT_KEY_PREFIX"]) {
        None => "prm:".to_string(),
        Some((n, v)) if !simple_name(&v, 64) => {
            return Err(ConfigError::new(&n, &v, "at most 64 letters, digits, '_', '-', ':' or '.'"));
        }
        Some((_, v)) => v,
    };
    let (ttl, timeout) = shared(vars, "Redis")?;
    Ok(FactStoreConfig::Redis { url: Secret::from(url), prefix, ttl, timeout })
}

fn simple_name(v: &str, max: usize) -> bool {
    v.len() <= max && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':' || c == '.')
}

fn firestore(vars: &Vars, data_project: &str) -> Result<FactStoreConfig, ConfigError> {
    let project = match vars.pick(&["FIRESTORE_PROJECT"]) {
        None => data_project.to_string(),
        Some((n, v)) => {
            let ok = v.len() <= 63
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
            if !ok {
                return Err(ConfigError::new(&n, &v, "a Google Cloud project id (letters, digits, hyphens)"));
            }
            v
        }
    };
    let database = match vars.pick(&["FIRESTORE_DATABASE"]) {
        None => "(default)".to_string(),
        Some((_, v)) if v == "(default)" => v,
        Some((n, v)) => {
            let ok = (4..=63).contains(&v.len())
                && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && v.chars().next().is_some_and(|c| c.is_ascii_lowercase());
            if !ok {
                return Err(ConfigError::new(
                    &n,
                    &v,
                    "(default) or a database id (4-63 lowercase letters, digits, hyphens)",
                ));
            }
            v
        }
    };
    let collection_prefix = match vars.pick(&["FIRESTORE_COLLECTION_PREFIX"]) {
        None => "prm_".to_string(),
        Some((n, v)) if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || v.len() > 64 => {
            return Err(ConfigError::new(&n, &v, "at most 64 letters, digits, '_' or '-'"));
        }
        Some((_, v)) => v,
    };
    let emulator_host = match vars.pick(&["FIRESTORE_EMULATOR_HOST"]) {
        None => None,
        Some((n, v)) => {
            let h = v.trim_start_matches("http://").trim_end_matches('/').to_string();
            let ok = h.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok || h.contains('/') {
                return Err(ConfigError::new(&n, &v, "host:port of the Firestore emulator, e.g. 127.0.0.1:8080"));
            }
            Some(h)
        }
    };
    let (ttl, timeout) = shared(vars, "Firestore")?;
    Ok(FactStoreConfig::Firestore { project, database, collection_prefix, emulator_host, ttl, timeout })
}

#[cfg(test)]
mod tests;
