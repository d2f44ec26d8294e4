//! Google credentials for BigQuery and Cloud Monitoring.
//!
//! One [`TokenSource`] feeds every Google client. In production it is `gcp_auth`: a
//! service-account key given as JSON in `GCP_SA_KEY_JSON` (Lambda, from Secrets Manager), else
//! Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, the
//! metadata server on Cloud Run, the gcloud CLI). Emulators and tests use a static token.

use std::sync::Arc;

pub const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
pub const MONITORING_SCOPE: &str = "https://www.googleapis.com/auth/monitoring.write";

#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// An access token for the scopes (cached and refreshed by the implementation).
    async fn token(&self, scopes: &[&str]) -> Result<String, String>;
}

/// A fixed token: for emulators, which ignore it, and for tests.
pub struct StaticToken(pub String);

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn token(&self, _: &[&str]) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

/// Tokens from `gcp_auth` (cached per scope set until they expire).
pub struct GcpAuth(pub Arc<dyn gcp_auth::TokenProvider>);

#[async_trait::async_trait]
impl TokenSource for GcpAuth {
    async fn token(&self, scopes: &[&str]) -> Result<String, String> {
        self.0.token(scopes).await.map(|t| t.as_str().to_owned()).map_err(|e| e.to_string())
    }
}

/// Production credentials: `GCP_SA_KEY_JSON` (a service-account key, e.g. resolved from AWS
/// Secrets Manager), else Application Default Credentials.
pub async fn from_env(sa_key_json: Option<&str>) -> Result<Arc<dyn TokenSource>, String> {
    if let Some(json) = sa_key_json {
        let sa = gcp_auth::CustomServiceAccount::from_json(json)
            .map_err(|e| format!("GCP_SA_KEY_JSON is not a usable service-account key: {e}"))?;
        return Ok(Arc::new(GcpAuth(Arc::new(sa))));
    }
    let provider = gcp_auth::provider().await.map_err(|e| format!("no Application Default Credentials: {e}"))?;
    Ok(Arc::new(GcpAuth(provider)))
}

/// Fetches one token for `scopes`, so that unusable credentials stop the process at startup
/// instead of failing every event.
pub async fn check(tokens: &dyn TokenSource, scopes: &[&str]) -> Result<(), String> {
    tokens.token(scopes).await.map(|_| ()).map_err(|e| format!("cannot obtain an access token for {scopes:?}: {e}"))
}
