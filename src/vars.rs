//! The variables of the environment, read once at startup through `figment`, and the vocabulary
//! every component's configuration is written in: [`Vars`] (the sources and the prefixed-name
//! rule), [`ConfigError`] (which variable, which value, what was expected), [`Secret`] (a value
//! that must never be printed) and the parsers several components share (seconds, flags, counts,
//! lists, URLs, directories).
//!
//! Each component reads its own variables (`ingress::config`, `pipeline::config`,
//! `warehouse::config`, `sink::config`, `sink::gcm::config`, `sink::otlp::config`,
//! `facts::config`, `handlers::lifecycle::config`, `google::config`); `config` composes them.
//!
//! # The rule of names
//! * A value that is empty or only whitespace counts as unset; a value is read trimmed.
//! * For the reference service's variables ([`PREFIXED`]), `MAGEAI_MONITORING_<NAME>` wins over
//!   `<NAME>` (the reference read them so); an empty prefixed value leaves the plain one in force.
//!   An error names the variable that was read, prefixed or not. No other variable has a
//!   prefixed form.
//! * Names are case-sensitive, as the environment's are.

use std::path::PathBuf;
use std::time::Duration;

use figment::providers::Env;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

/// The prefix of the reference service's variables.
pub const PREFIX: &str = "MAGEAI_MONITORING_";

/// The variables that may be given as `MAGEAI_MONITORING_<NAME>`, which then wins over `<NAME>`
/// (the reference service's `CLOUD_RUN_PROJECT_ID`, `BIGQUERY_PROJECT_ID` and `LOCAL_MODE`).
pub const PREFIXED: [&str; 3] = ["CLOUD_RUN_PROJECT_ID", "BIGQUERY_PROJECT_ID", "LOCAL_MODE"];

/// The name of the figment source of plain names.
const PLAIN_SOURCE: &str = "environment variable(s)";
/// The name of the figment source of prefixed names (merged over the plain ones).
const PREFIXED_SOURCE: &str = "`MAGEAI_MONITORING_` environment variable(s)";

/// `<NAME>` when `variable` is `MAGEAI_MONITORING_<NAME>` and `<NAME>` is one of [`PREFIXED`]
/// (exact case).
pub fn unprefixed(variable: &str) -> Option<&str> {
    variable.strip_prefix(PREFIX).filter(|rest| PREFIXED.contains(rest))
}

/// A configuration error names the variable and says what is expected. `value` is what the
/// variable held, or a stand-in (`(not shown)`, `(set)`, a URL with its password masked) when it
/// holds a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {expected}")]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub expected: String,
}

impl ConfigError {
    /// The error of `variable`, which held `value`, where `expected` was expected.
    pub fn new(variable: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError { variable: variable.into(), value: value.into(), expected: expected.into() }
    }
}

/// A value that must never reach a log line or an error (a key, a token, a password): a
/// [`secrecy::SecretString`], whose `Debug` is redacted; read it with
/// [`secrecy::ExposeSecret::expose_secret`] where it is used. Equality compares in constant
/// time.
#[derive(Clone)]
pub struct Secret(pub secrecy::SecretString);

impl Secret {
    /// The secret text, for the one place that uses it.
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.into())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s.into())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.expose().as_bytes().ct_eq(other.expose().as_bytes()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One figment source: variables as their raw text. Values are not parsed as figment
/// `Value`s (which would turn `8080` into a number and a JSON key into a dictionary): each
/// component parses and validates its own. Empty values are left out (they count as unset).
struct Source {
    name: &'static str,
    vars: Vec<(String, String)>,
}

impl Provider for Source {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict = self
            .vars
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        Ok(Profile::Default.collect(dict))
    }
}

/// The variables of one configuration: the plain names, with the prefixed forms of
/// [`PREFIXED`] merged over them (see the module's rule of names).
pub struct Vars {
    figment: Figment,
    /// Every name asked for (see [`Vars::asked`]).
    asked: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Vars {
    /// The process environment: figment's `Env` provider, once for every name and once for the
    /// prefixed names (the prefix stripped).
    pub fn from_env() -> Vars {
        let plain = Env::raw().lowercase(false).iter().map(|(k, v)| (k.as_str().to_string(), v)).collect();
        // (`lowercase(false)` after `filter_map`: figment's `filter_map` turns lowercasing back on)
        let prefixed = Env::raw()
            .filter_map(|k| unprefixed(k.as_str()).map(|rest| rest.to_string().into()))
            .lowercase(false)
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v))
            .collect();
        Vars::from_sources(plain, prefixed)
    }

    /// `pairs` as if they were the environment (tests), under the same rule of names.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Vars {
        let plain: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let prefixed =
            plain.iter().filter_map(|(k, v)| unprefixed(k).map(|rest| (rest.to_string(), v.clone()))).collect();
        Vars::from_sources(plain, prefixed)
    }

    fn from_sources(plain: Vec<(String, String)>, prefixed: Vec<(String, String)>) -> Vars {
        let figment = Figment::new()
            .merge(Source { name: PLAIN_SOURCE, vars: plain })
            .merge(Source { name: PREFIXED_SOURCE, vars: prefixed });
        Vars { figment, asked: Default::default() }
    }

    /// The first of `names` that is set: the variable as it was set (`MAGEAI_MONITORING_<NAME>`
    /// when the prefixed form won) and its value, trimmed.
    pub fn pick(&self, names: &[&str]) -> Option<(String, String)> {
        names.iter().find_map(|name| {
            self.note(name);
            let value = self.figment.find_value(name).ok()?;
            let Value::String(tag, text) = value else { return None };
            let prefixed = self.figment.get_metadata(tag).is_some_and(|m| m.name == PREFIXED_SOURCE);
            let variable = if prefixed { format!("{PREFIX}{name}") } else { name.to_string() };
            Some((variable, text.trim().to_string()))
        })
    }

    /// The value of `name` as it was set (not trimmed; unset when empty), for values whose
    /// every byte counts (a key JSON) and for lookups handed on (`TaskId::from_env`).
    pub fn raw(&self, name: &str) -> Option<String> {
        self.note(name);
        match self.figment.find_value(name) {
            Ok(Value::String(_, text)) => Some(text),
            _ => None,
        }
    }

    fn note(&self, name: &str) {
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(name.to_string());
            if PREFIXED.contains(&name) {
                asked.insert(format!("{PREFIX}{name}"));
            }
        }
    }

    /// Every variable name asked for so far, set or not (with its `MAGEAI_MONITORING_` form
    /// where it has one: both are read). The command line's help lists exactly the
    /// variables a configuration reads, which its test checks with this.
    pub fn asked(&self) -> std::collections::BTreeSet<String> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Seconds from 0 to 3600 (`default` when unset).
    pub fn seconds(&self, name: &str, default: f64) -> Result<Duration, ConfigError> {
        match self.pick(&[name]) {
            None => Ok(Duration::from_secs_f64(default)),
            Some((n, v)) => match v.parse::<f64>() {
                Ok(s) if (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
                _ => Err(ConfigError::new(&n, &v, "seconds, from 0 to 3600")),
            },
        }
    }

    /// A timeout that must pass before anything can happen: seconds, more than 0 and at most
    /// 3600 (`default` when unset).
    pub fn timeout(&self, name: &str, default: f64) -> Result<Duration, ConfigError> {
        match self.pick(&[name]) {
            None => Ok(Duration::from_secs_f64(default)),
            Some((n, v)) => match v.parse::<f64>() {
                Ok(s) if s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
                _ => Err(ConfigError::new(&n, &v, "seconds, more than 0 and at most 3600")),
            },
        }
    }

    /// `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off` (any case; `default` when unset).
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.pick(&[name]) {
            None => Ok(default),
            Some((n, v)) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::new(&n, &v, "true or false")),
            },
        }
    }

    /// A whole number (`default` when unset).
    pub fn count(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        match self.pick(&[name]) {
            None => Ok(default),
            Some((n, v)) => v.parse().map_err(|_| ConfigError::new(&n, &v, "a whole number")),
        }
    }

    /// A number of bytes of at least `min` (`default` when unset); `expected` says so.
    pub fn bytes(&self, name: &str, default: usize, min: usize, expected: &str) -> Result<usize, ConfigError> {
        match self.pick(&[name]) {
            None => Ok(default),
            Some((n, v)) => match v.parse::<usize>() {
                Ok(b) if b >= min => Ok(b),
                _ => Err(ConfigError::new(&n, &v, expected)),
            },
        }
    }

    /// A comma-separated list: the variable and its non-empty items, trimmed.
    pub fn list(&self, name: &str) -> Option<(String, Vec<String>)> {
        self.pick(&[name]).map(|(n, v)| (n, split_list(&v)))
    }

    /// An existing directory (`None` when unset); `what` says what it should hold.
    pub fn dir(&self, name: &str, what: &str) -> Result<Option<PathBuf>, ConfigError> {
        match self.pick(&[name]) {
            None => Ok(None),
            Some((n, v)) => {
                let p = PathBuf::from(&v);
                if p.is_dir() { Ok(Some(p)) } else { Err(ConfigError::new(&n, &v, what)) }
            }
        }
    }

    /// An `http://` or `https://` URL with a host, checked by the `url` crate (`default` when
    /// unset), without its trailing `/`. The error shows the value with any password masked.
    pub fn url(&self, name: &str, default: &str) -> Result<String, ConfigError> {
        match self.pick(&[name]) {
            None => Ok(default.to_string()),
            Some((n, v)) => match url::Url::parse(&v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    Ok(v.trim_end_matches('/').to_string())
                }
                _ => Err(ConfigError::new(&n, &mask_userinfo(&v), "an http:// or https:// URL")),
            },
        }
    }

    /// A Google Cloud project id (`default` when unset): at most 63 letters, digits, hyphens or
    /// underscores, starting with a letter or digit.
    pub fn project_id(&self, name: &str, default: &str) -> Result<String, ConfigError> {
        match self.pick(&[name]) {
            None => Ok(default.to_string()),
            Some((n, v)) => {
                let ok = v.len() <= 63
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
                if ok {
                    Ok(v)
                } else {
                    Err(ConfigError::new(&n, &v, "a Google Cloud project id (letters, digits, hyphens)"))
                }
            }
        }
    }
}

/// The non-empty items of a comma-separated list, trimmed.
pub fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// Whether `v` is `host:port` (an optional `http://` or `https://` and a trailing `/` allowed).
pub fn is_host_port(v: &str) -> bool {
    let hostport = v.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
    hostport.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

/// `v` with the user information of its authority (`user:password@`) replaced by `***@`, so
/// that an error can show a URL without its password.
pub fn mask_userinfo(v: &str) -> String {
    let Some((scheme, rest)) = v.split_once("://") else {
        // Not a well-formed URL (a typo such as `redis//u:p@h` or `http:/u:p@h`, which is when
        // this text is shown): whatever stands before the last '@' may be a password.
        return match v.rfind('@') {
            Some(at) => format!("***@{}", &v[at + 1..]),
            None => v.to_string(),
        };
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests;
