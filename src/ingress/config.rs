//! The ingress's settings: where it listens, what it accepts before the pipeline sees a
//! delivery (body size, connection timeouts, push authentication, the lineage API key) and how
//! long it drains at shutdown.
//!
//! Variables: `HOST`, `PORT`, `MAX_BODY_BYTES`, `HEADER_READ_TIMEOUT_SECS`, `IDLE_TIMEOUT_SECS`,
//! `SHUTDOWN_GRACE_SECS`, `AUTH_MODE`, `PUSH_AUDIENCE`, `PUSH_SERVICE_ACCOUNTS`, `PUSH_JWKS_URL`,
//! `OPENLINEAGE_API_KEY` (a secret).

use std::net::IpAddr;
use std::time::Duration;

use crate::vars::{ConfigError, Secret, Vars};

/// The largest Pub/Sub message is 10 MB; base64 and the push wrapper add a third.
pub const DEFAULT_MAX_BODY_BYTES: usize = 14 * 1024 * 1024;

/// What the ingress does before a delivery reaches the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct IngressConfig {
    /// The address listened on (`HOST`, `0.0.0.0` by default).
    pub host: IpAddr,
    /// The port listened on (`PORT`, 8080 by default; Cloud Run sets it).
    pub port: u16,
    /// Largest accepted request body, in bytes (`MAX_BODY_BYTES`, at least 1024).
    pub max_body_bytes: usize,
    /// How long a connection may take to send a request head, or stay idle between requests.
    pub connections: Connections,
    /// After SIGTERM: how long in-flight events may still run (`SHUTDOWN_GRACE_SECS`, 0-3600).
    pub shutdown_grace: Duration,
    /// Verify the OIDC token of every push (audience and allowed service accounts).
    pub auth: Option<PushAuth>,
    /// The API key of `/api/v1/lineage` (`OPENLINEAGE_API_KEY`).
    pub lineage_api_key: Option<Secret>,
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

/// Who may push: the OIDC token's audience, the service accounts allowed to sign it and where
/// Google's signing keys are read.
#[derive(Debug, Clone, PartialEq)]
pub struct PushAuth {
    /// `PUSH_AUDIENCE`: the audience the push subscription puts in its tokens.
    pub audience: String,
    /// `PUSH_SERVICE_ACCOUNTS`: the e-mails of the accounts allowed to push, comma-separated.
    pub service_accounts: Vec<String>,
    /// `PUSH_JWKS_URL`: Google's JWKS ([`super::auth::GOOGLE_JWKS_URL`] by default).
    pub jwks_url: String,
}

impl IngressConfig {
    /// The ingress's variables. Errors name the variable and its value (never the lineage key).
    pub fn from_vars(vars: &Vars) -> Result<IngressConfig, ConfigError> {
        let host = match vars.pick(&["HOST"]) {
            None => IpAddr::from([0, 0, 0, 0]),
            Some((n, v)) => {
                v.parse().map_err(|_| ConfigError::new(&n, &v, "an IP address such as 0.0.0.0 or 127.0.0.1"))?
            }
        };
        let port = match vars.pick(&["PORT"]) {
            None => 8080,
            Some((n, v)) => v.parse().map_err(|_| ConfigError::new(&n, &v, "a port number 0-65535"))?,
        };
        let max_body_bytes =
            vars.bytes("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024, "a number of bytes, at least 1024")?;
        let connections = Connections {
            header_read: vars.timeout("HEADER_READ_TIMEOUT_SECS", Connections::default().header_read.as_secs_f64())?,
            idle: vars.timeout("IDLE_TIMEOUT_SECS", Connections::default().idle.as_secs_f64())?,
        };
        let shutdown_grace = vars.seconds("SHUTDOWN_GRACE_SECS", 8.0)?;
        let auth = push_auth(vars)?;
        let lineage_api_key = vars.pick(&["OPENLINEAGE_API_KEY"]).map(|(_, v)| Secret::from(v));
        Ok(IngressConfig { host, port, max_body_bytes, connections, shutdown_grace, auth, lineage_api_key })
    }
}

/// `AUTH_MODE` (`verify`, `off` or `trust-platform`) and the `PUSH_*` variables: verification is
/// on when `PUSH_AUDIENCE` is set, unless `AUTH_MODE` turns it off; `AUTH_MODE=verify` without
/// an audience is an error, and so is an audience without service accounts.
fn push_auth(vars: &Vars) -> Result<Option<PushAuth>, ConfigError> {
    let audience = vars.pick(&["PUSH_AUDIENCE"]).map(|(_, v)| v);
    match vars.pick(&["AUTH_MODE"]).map(|(n, v)| (n, v.to_ascii_lowercase())) {
        Some((_, v)) if v == "off" || v == "trust-platform" => Ok(None),
        Some((n, v)) if v != "verify" => Err(ConfigError::new(&n, &v, "verify, off or trust-platform")),
        mode => match (audience, mode.is_some()) {
            (None, false) => Ok(None),
            (None, true) => {
                Err(ConfigError::new("AUTH_MODE", "verify", "PUSH_AUDIENCE and PUSH_SERVICE_ACCOUNTS must be set too"))
            }
            (Some(audience), _) => {
                let accounts = vars.list("PUSH_SERVICE_ACCOUNTS").map(|(_, l)| l).unwrap_or_default();
                if accounts.is_empty() {
                    return Err(ConfigError::new(
                        "PUSH_SERVICE_ACCOUNTS",
                        "",
                        "the push subscription's service account e-mail(s), comma-separated",
                    ));
                }
                let jwks_url = vars.url("PUSH_JWKS_URL", super::auth::GOOGLE_JWKS_URL)?;
                Ok(Some(PushAuth { audience, service_accounts: accounts, jwks_url }))
            }
        },
    }
}

#[cfg(test)]
mod tests;
