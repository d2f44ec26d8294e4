//! The lifecycle metrics' settings: which profiles are in force, where more are read, how long a
//! task row waits for its parent, and the fact store (`facts::config`).
//!
//! Variables: `PROFILES` (comma-separated names, `all` or `none`), `PROFILES_DIR`,
//! `LOOKUP_WAIT_SECS`, and the fact store's.

use std::path::PathBuf;
use std::time::Duration;

use crate::facts::config::FactStoreConfig;
use crate::vars::{ConfigError, Vars};

/// Which lifecycle profiles are in force and where facts are remembered.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// Profile names to enable (`PROFILES`, file names without `.toml`); `None`: all;
    /// an empty list (`PROFILES=none`): no lifecycle metrics.
    pub profiles: Option<Vec<String>>,
    /// Extra or overriding profile files (`PROFILES_DIR`, an existing directory).
    pub profiles_dir: Option<PathBuf>,
    /// Where facts are remembered.
    pub fact_store: FactStoreConfig,
    /// How long a task row waits for the parent row that names its pipeline
    /// (`LOOKUP_WAIT_SECS`, 0-3600; 600 by default).
    pub lookup_wait: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            profiles: None,
            profiles_dir: None,
            fact_store: FactStoreConfig::default(),
            lookup_wait: Duration::from_secs(600),
        }
    }
}

impl LifecycleConfig {
    /// The lifecycle's variables; `data_project` is Firestore's project by default.
    pub fn from_vars(vars: &Vars, data_project: &str) -> Result<LifecycleConfig, ConfigError> {
        Ok(LifecycleConfig {
            profiles: match vars.pick(&["PROFILES"]) {
                None => None,
                Some((_, v)) if v.eq_ignore_ascii_case("none") => Some(Vec::new()),
                Some((_, v)) if v.eq_ignore_ascii_case("all") => None,
                Some((_, v)) => Some(crate::vars::split_list(&v)),
            },
            profiles_dir: vars.dir("PROFILES_DIR", "an existing directory of profile .toml files")?,
            fact_store: FactStoreConfig::from_vars(vars, data_project)?,
            lookup_wait: vars.seconds("LOOKUP_WAIT_SECS", 600.0)?,
        })
    }
}
