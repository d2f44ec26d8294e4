//! Google's settings: where the credentials come from, and Cloud Storage's emulator.
//!
//! Variables: `GCP_SA_KEY_JSON` (a secret), `GCP_SA_KEY_SECRET_ARN`, `GCP_EXTERNAL_ACCOUNT_JSON`
//! (at most one of the three), `GOOGLE_APPLICATION_CREDENTIALS`, `STORAGE_EMULATOR_HOST`.

use std::path::PathBuf;

use crate::vars::{ConfigError, Secret, Vars};

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

impl GoogleCredentials {
    /// `GCP_SA_KEY_JSON`, `GCP_SA_KEY_SECRET_ARN`, `GCP_EXTERNAL_ACCOUNT_JSON` (one at most),
    /// else `GOOGLE_APPLICATION_CREDENTIALS`. A key is never shown, even when it is set together
    /// with another source.
    pub fn from_vars(vars: &Vars) -> Result<GoogleCredentials, ConfigError> {
        let key = vars.raw("GCP_SA_KEY_JSON").map(Secret::from);
        let arn = vars.pick(&["GCP_SA_KEY_SECRET_ARN"]).map(|(_, v)| v);
        let external = vars.pick(&["GCP_EXTERNAL_ACCOUNT_JSON"]).map(|(_, v)| v);
        let set: Vec<&str> = [
            key.as_ref().map(|_| "GCP_SA_KEY_JSON"),
            arn.as_ref().map(|_| "GCP_SA_KEY_SECRET_ARN"),
            external.as_ref().map(|_| "GCP_EXTERNAL_ACCOUNT_JSON"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if set.len() > 1 {
            return Err(ConfigError::new(
                set[1],
                "(set)",
                &format!("only one source of Google credentials; {} is set too", set[0]),
            ));
        }
        if let Some(arn) = arn {
            let name_ok = !arn.contains(char::is_whitespace);
            if !name_ok || (arn.starts_with("arn:") && crate::aws::arn_region(&arn).is_none()) {
                return Err(ConfigError::new(
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
                return Err(ConfigError::new(
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
        let file = vars.pick(&["GOOGLE_APPLICATION_CREDENTIALS"]).map(|(_, v)| PathBuf::from(v));
        Ok(GoogleCredentials::Default { file })
    }
}

/// `host:port` (or URL) of a Cloud Storage emulator (`STORAGE_EMULATOR_HOST`, as Google's client
/// libraries read it); unset means Cloud Storage with Google credentials.
pub fn storage_emulator_host(vars: &Vars) -> Option<String> {
    vars.pick(&["STORAGE_EMULATOR_HOST"]).map(|(_, v)| v)
}
