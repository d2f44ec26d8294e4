//! Why the process did not start: one type for every startup failure, and the one structured
//! line (severity `ERROR`, exit code 2) that reports it, so that it reaches Cloud Logging and
//! CloudWatch like every other line.

use crate::config::ConfigError;
use crate::handlers::CatalogueError;

/// A startup failure. Its `Display` is the text of its fatal line: the line's `message`, then
/// `": "`, then its `error` ([`StartupError::message`], [`StartupError::detail`]).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A variable is invalid (it is named, with its value unless that is a secret).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The handler catalogue (built-in or `HANDLERS_DIR`) does not load (`file:line: what`).
    #[error("invalid handler catalogue: {0}")]
    Catalogue(CatalogueError),
    /// The lifecycle profiles (built-in or `PROFILES_DIR`) do not load.
    #[error("invalid lifecycle profiles: {0}")]
    Profiles(CatalogueError),
    /// No usable Google credentials: `step` says which step failed (reading them, or obtaining
    /// a first token) and what to do; `detail` is the service's own words.
    #[error("{step}: {detail}")]
    Credentials { step: &'static str, detail: String },
    /// A backend (the HTTP client, BigQuery, the fact store) could not be set up or reached;
    /// `step` names it and the variables that choose it.
    #[error("{step}: {detail}")]
    Backend { step: &'static str, detail: String },
    /// A command's arguments do not fit the configuration (`step` names the argument, e.g.
    /// `--facts-file needs FACT_STORE=memory`).
    #[error("{step}: {detail}")]
    Usage { step: &'static str, detail: String },
    /// The listening address could not be bound (`detail`: the address and the reason).
    #[error("cannot bind: {detail}")]
    Bind { detail: String },
}

impl StartupError {
    /// The `message` field of the fatal line: which step failed.
    pub fn message(&self) -> &'static str {
        match self {
            StartupError::Config(_) => "invalid configuration",
            StartupError::Catalogue(_) => "invalid handler catalogue",
            StartupError::Profiles(_) => "invalid lifecycle profiles",
            StartupError::Credentials { step, .. }
            | StartupError::Backend { step, .. }
            | StartupError::Usage { step, .. } => step,
            StartupError::Bind { .. } => "cannot bind",
        }
    }

    /// The `error` field of the fatal line: what went wrong, as the failing part says it.
    pub fn detail(&self) -> String {
        match self {
            StartupError::Config(e) => e.to_string(),
            StartupError::Catalogue(e) | StartupError::Profiles(e) => e.to_string(),
            StartupError::Credentials { detail, .. }
            | StartupError::Backend { detail, .. }
            | StartupError::Usage { detail, .. }
            | StartupError::Bind { detail } => detail.clone(),
        }
    }

    /// The fatal line (one JSON object, severity `ERROR`, without the newline) written to
    /// stderr before the process exits with code 2.
    pub fn line(&self) -> String {
        fatal_line(self.message(), self.detail())
    }
}

/// One structured `ERROR` line with `message` and `error` fields (for startup failures, and for
/// the server's or the Lambda runtime's fatal errors).
pub fn fatal_line(message: &str, detail: String) -> String {
    let mut fields = serde_json::Map::new();
    fields.insert("message".into(), message.into());
    fields.insert("error".into(), detail.into());
    crate::logging::format_line(&tracing::Level::ERROR, "pipeline_run_metrics", fields)
}

#[cfg(test)]
mod tests;
