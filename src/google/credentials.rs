//! Google credentials for BigQuery and Cloud Monitoring.
//!
//! One [`TokenSource`] feeds every Google client. In production it is either
//! * [`ServiceAccount`]: a service-account key given as JSON in `GCP_SA_KEY_JSON` (Lambda, from
//!   Secrets Manager), exchanged for access tokens at the key's `token_uri` with the OAuth 2.0
//!   JWT-bearer grant (RFC 7523) by this module itself, so that a refusal keeps the token
//!   endpoint's HTTP status and its `error` / `error_description`, and retries follow
//!   [`crate::retry::oauth_token`]; or
//! * [`ExternalAccount`](super::external_account::ExternalAccount): workload identity
//!   federation from AWS (an `external_account` configuration, in `GCP_EXTERNAL_ACCOUNT_JSON` or
//!   the file `GOOGLE_APPLICATION_CREDENTIALS` names): no key at all; or
//! * [`GcpAuth`]: Application Default Credentials through `gcp_auth`
//!   (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, the metadata server on Cloud Run, the
//!   gcloud CLI). `gcp_auth` does not expose the HTTP status of a failed token request, so its
//!   errors carry none; it does not read `external_account` files, which is why those are
//!   recognised first.
//!
//! On Lambda the key of [`ServiceAccount`] need not be in the environment: with
//! `GCP_SA_KEY_SECRET_ARN` it is read from AWS Secrets Manager at startup ([`crate::aws`]).
//! [`from_config`] picks the source the configuration names. Emulators and tests use a
//! [`StaticToken`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::RwLock;

use super::external_account::{AwsIdentity, ExternalAccount};
use crate::config::GoogleCredentials;
use crate::retry::{self, Policy, RetryDecision};

/// The OAuth scope of BigQuery queries.
pub const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
/// The OAuth scope of Cloud Monitoring writes.
pub const MONITORING_SCOPE: &str = "https://www.googleapis.com/auth/monitoring.write";
/// The OAuth 2.0 grant type of a signed JWT assertion (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's token endpoint, when a key names none.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Access tokens for Google APIs.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// An access token for the scopes (cached and refreshed by the implementation).
    async fn token(&self, scopes: &[&str]) -> Result<String, TokenError>;
}

/// What kind of failure a [`TokenError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenErrorKind {
    /// The key or the credentials configuration is unusable.
    InvalidKey,
    /// The token endpoint refused the grant (an HTTP 4xx, e.g. `invalid_grant`).
    Refused,
    /// The token endpoint was unreachable or kept failing (5xx, 429) until the deadline.
    Unavailable,
    /// `gcp_auth` failed (no HTTP status available).
    Provider,
}

/// No access token could be had.
///
/// Opaque: ask with `is_*()`. Keeps the token endpoint's HTTP status ([`TokenError::status`]),
/// its OAuth `error` code ([`TokenError::oauth_error`], e.g. `invalid_grant`) and the
/// underlying error as `source()`. Never contains the key or a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    kind: TokenErrorKind,
    status: Option<u16>,
    oauth_error: Option<String>,
    retry_after: Option<Duration>,
    message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TokenError {
    fn new(kind: TokenErrorKind, message: impl Into<String>) -> TokenError {
        TokenError { kind, status: None, oauth_error: None, retry_after: None, message: message.into(), source: None }
    }

    fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> TokenError {
        self.source = Some(Arc::new(source));
        self
    }

    /// The credentials configuration is unusable.
    pub(crate) fn invalid(message: impl Into<String>) -> TokenError {
        TokenError::new(TokenErrorKind::InvalidKey, message)
    }

    /// A request could not be sent or answered (retried by the transport rule).
    pub(crate) fn unreachable(message: impl Into<String>, source: reqwest::Error) -> TokenError {
        TokenError::new(TokenErrorKind::Unavailable, message).with_source(source)
    }

    /// An answer with this HTTP status: refused for good, or worth retrying, as
    /// [`retry::oauth_token`] classifies the status.
    pub(crate) fn answered(
        status: u16,
        oauth_error: Option<String>,
        retry_after: Option<Duration>,
        message: String,
    ) -> TokenError {
        let kind = match retry::oauth_token(status, oauth_error.as_deref(), retry_after) {
            RetryDecision::NonRetryable => TokenErrorKind::Refused,
            _ => TokenErrorKind::Unavailable,
        };
        TokenError { kind, status: Some(status), oauth_error, retry_after, message, source: None }
    }

    /// The same error, its message preceded by `context`.
    pub(crate) fn context(self, context: impl std::fmt::Display) -> TokenError {
        TokenError { message: format!("{context}: {}", self.message), ..self }
    }

    /// The token endpoint's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The OAuth `error` code of the token endpoint's answer (`invalid_grant`, `invalid_client`,
    /// `unauthorized_client`, …).
    pub fn oauth_error(&self) -> Option<&str> {
        self.oauth_error.as_deref()
    }

    /// The key or credentials configuration is unusable (nothing was asked).
    pub fn is_invalid_key(&self) -> bool {
        self.kind == TokenErrorKind::InvalidKey
    }

    /// The token endpoint refused the grant for good (HTTP 4xx).
    pub fn is_refused(&self) -> bool {
        self.kind == TokenErrorKind::Refused
    }

    /// The token endpoint was unreachable or failing until the retry deadline.
    pub fn is_unavailable(&self) -> bool {
        self.kind == TokenErrorKind::Unavailable
    }

    /// How a retry of the request that failed is classified ([`retry::oauth_token`]).
    pub(crate) fn decision(&self) -> RetryDecision {
        match (self.kind, self.status) {
            (TokenErrorKind::Unavailable, Some(status)) => {
                retry::oauth_token(status, self.oauth_error(), self.retry_after)
            }
            (TokenErrorKind::Unavailable, None) => retry::transport(),
            _ => RetryDecision::NonRetryable,
        }
    }
}

/// A fixed token: for emulators, which ignore it, and for tests.
pub struct StaticToken(pub String);

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn token(&self, _: &[&str]) -> Result<String, TokenError> {
        Ok(self.0.clone())
    }
}

/// Tokens from `gcp_auth` (Application Default Credentials; cached per scope set until they
/// expire).
pub struct GcpAuth(pub Arc<dyn gcp_auth::TokenProvider>);

#[async_trait::async_trait]
impl TokenSource for GcpAuth {
    async fn token(&self, scopes: &[&str]) -> Result<String, TokenError> {
        self.0.token(scopes).await.map(|t| t.as_str().to_owned()).map_err(|e| {
            TokenError::new(TokenErrorKind::Provider, format!("Application Default Credentials: {e}")).with_source(e)
        })
    }
}

/// The fields of a service-account key JSON this module uses.
#[derive(Deserialize)]
struct ServiceAccountKey {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// The claims of the JWT-bearer assertion (Google's service-account flow:
/// https://developers.google.com/identity/protocols/oauth2/service-account#authorizingrequests).
#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// A token endpoint's answer: a token, or an RFC 6749 §5.2 error.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Longest lifetime Google accepts for the assertion: "a short-lived token (60 minutes)".
const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// A cached token is renewed this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Access tokens for a service-account key, exchanged at its `token_uri` (JWT-bearer grant),
/// cached per scope set until [`EXPIRY_MARGIN`] before they expire. Failed requests are retried
/// by [`Policy`] as [`retry::oauth_token`] says; a refusal (`invalid_grant`: "Invalid JWT
/// Signature." for a deleted or rotated key, the clock-skew text for a wrong clock) is not.
pub struct ServiceAccount {
    http: reqwest::Client,
    client_email: String,
    key_id: Option<String>,
    token_uri: String,
    key: jsonwebtoken::EncodingKey,
    retry: Policy,
    cache: RwLock<HashMap<Vec<String>, (String, Instant)>>,
}

impl ServiceAccount {
    /// Retries of token requests: 50 ms doubling to 1 s, within 3 s (startup checks wait no
    /// longer than that for a dead endpoint).
    pub const RETRY: Policy = Policy {
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        deadline: Duration::from_secs(3),
    };

    /// Reads a service-account key JSON (`"type": "service_account"`, `client_email`,
    /// `private_key` as PKCS#8 PEM, optional `private_key_id` and `token_uri`).
    pub fn from_json(json: &str, http: reqwest::Client) -> Result<ServiceAccount, TokenError> {
        let invalid = |why: String| TokenError::new(TokenErrorKind::InvalidKey, why);
        let key: ServiceAccountKey = serde_json::from_str(json)
            .map_err(|e| invalid(format!("not a service-account key: {e}")).with_source(e))?;
        if key.kind != "service_account" {
            return Err(invalid(format!("key type is '{}', not 'service_account'", key.kind)));
        }
        let signing = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
            .map_err(|e| invalid(format!("unusable private_key: {e}")).with_source(e))?;
        Ok(ServiceAccount {
            http,
            client_email: key.client_email,
            key_id: key.private_key_id,
            token_uri: key.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string()),
            key: signing,
            retry: ServiceAccount::RETRY,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Changes the retry policy of token requests.
    pub fn with_retry(mut self, retry: Policy) -> ServiceAccount {
        self.retry = retry;
        self
    }

    fn assertion(&self, scopes: &[&str]) -> Result<String, TokenError> {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: &self.client_email,
            scope: scopes.join(" "),
            aud: &self.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            TokenError::new(TokenErrorKind::InvalidKey, format!("cannot sign the token request: {e}")).with_source(e)
        })
    }

    /// One token request.
    async fn fetch(&self, scopes: &[&str]) -> Result<(String, Duration), TokenError> {
        let assertion = self.assertion(scopes)?;
        let resp = self
            .http
            .post(&self.token_uri)
            .timeout(Duration::from_secs(10))
            .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|e| {
                TokenError::new(
                    TokenErrorKind::Unavailable,
                    format!("token request to {} failed: {}", self.token_uri, crate::error::transport(&e)),
                )
                .with_source(e)
            })?;
        oauth_answer(resp, &format!("token endpoint {}", self.token_uri)).await
    }
}

/// Reads an OAuth token endpoint's answer (RFC 6749 §5.1 / §5.2; Google's STS answers the same
/// way, RFC 8693 §2.2): the token and its lifetime, or a [`TokenError`] with the status, the
/// `error` code and `error_description`, named after `endpoint`.
pub(crate) async fn oauth_answer(resp: reqwest::Response, endpoint: &str) -> Result<(String, Duration), TokenError> {
    let status = resp.status().as_u16();
    let retry_after = retry::retry_after(resp.headers());
    let text = resp.text().await.unwrap_or_default();
    let answer = serde_json::from_str::<TokenAnswer>(&text).ok();
    if (200..300).contains(&status)
        && let Some(TokenAnswer { access_token: Some(token), expires_in, .. }) = answer
    {
        return Ok((token, Duration::from_secs(expires_in.unwrap_or(3600))));
    }
    let (error, description) = match answer {
        Some(a) => (a.error, a.error_description),
        None => (None, None),
    };
    let detail = match (&error, &description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e.clone(),
        _ if text.trim().is_empty() => "(no body)".to_string(),
        _ => text.chars().take(200).collect(),
    };
    Err(TokenError::answered(status, error, retry_after, format!("{endpoint} answered HTTP {status}: {detail}")))
}

#[async_trait::async_trait]
impl TokenSource for ServiceAccount {
    async fn token(&self, scopes: &[&str]) -> Result<String, TokenError> {
        let key: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        if let Some((token, until)) = self.cache.read().await.get(&key)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.retry.retry(|| self.fetch(scopes), TokenError::decision).await?;
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        self.cache.write().await.insert(key, (token.clone(), until));
        Ok(token)
    }
}

/// What to do when no credentials are found, as one line: every source this function takes.
pub const NO_CREDENTIALS: &str = "no Google credentials found; provide one of: \
`gcloud auth application-default login` (your user, on a workstation); \
GOOGLE_APPLICATION_CREDENTIALS=<path> (a service-account key or an external_account file); \
GCP_SA_KEY_JSON=<key JSON>; the service account of Cloud Run or GCE (metadata server); \
on AWS: GCP_SA_KEY_SECRET_ARN=<Secrets Manager secret holding the key> or \
GCP_EXTERNAL_ACCOUNT_JSON=<workload identity federation configuration>";

/// Production credentials: `GCP_SA_KEY_JSON` (a service-account key, e.g. resolved from AWS
/// Secrets Manager), else Application Default Credentials.
pub async fn from_env(sa_key_json: Option<&str>) -> Result<Arc<dyn TokenSource>, TokenError> {
    if let Some(json) = sa_key_json {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().map_err(|e| {
            TokenError::new(TokenErrorKind::InvalidKey, format!("cannot build the HTTP client: {e}")).with_source(e)
        })?;
        let sa = ServiceAccount::from_json(json, http).map_err(|e| TokenError {
            message: format!("GCP_SA_KEY_JSON is not a usable service-account key: {}", e.message),
            ..e
        })?;
        return Ok(Arc::new(sa));
    }
    // gcp_auth's own error lists the sources it tried in its words (kept as source, not shown):
    // the line says which ones this function takes and how to provide one
    let provider = gcp_auth::provider().await.map_err(|e| {
        let message = match e {
            gcp_auth::Error::NoAuthMethod(..) => NO_CREDENTIALS.to_string(),
            // a source was found but is unusable (a GOOGLE_APPLICATION_CREDENTIALS file gcp_auth
            // cannot read): its own words say which
            ref other => format!("Application Default Credentials unusable: {}", crate::error::chain(other)),
        };
        TokenError::new(TokenErrorKind::Provider, message).with_source(e)
    })?;
    Ok(Arc::new(GcpAuth(provider)))
}

/// Production credentials as the configuration names them ([`GoogleCredentials`]): a key in
/// `GCP_SA_KEY_JSON` or in the Secrets Manager secret `GCP_SA_KEY_SECRET_ARN` (read now), an
/// `external_account` configuration (`GCP_EXTERNAL_ACCOUNT_JSON`, or the file
/// `GOOGLE_APPLICATION_CREDENTIALS` names), else Application Default Credentials. `env` reads the
/// AWS variables of workload identity federation (the process environment in production).
pub async fn from_config(
    source: &GoogleCredentials,
    http: reqwest::Client,
    env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> Result<Arc<dyn TokenSource>, TokenError> {
    match source {
        GoogleCredentials::KeyJson(json) => from_env(Some(json.0.as_str())).await,
        GoogleCredentials::KeySecret(arn) => {
            let json = crate::aws::secret_string(arn)
                .await
                .map_err(|e| TokenError::invalid(format!("GCP_SA_KEY_SECRET_ARN: {e}")).with_source(e))?;
            let sa = ServiceAccount::from_json(&json, http)
                .map_err(|e| e.context(format!("the secret {arn} is not a usable service-account key")))?;
            Ok(Arc::new(sa))
        }
        GoogleCredentials::ExternalAccountJson(json) => {
            let ea = ExternalAccount::from_json(json, http, AwsIdentity::reader(env))
                .map_err(|e| e.context("GCP_EXTERNAL_ACCOUNT_JSON"))?;
            Ok(Arc::new(ea))
        }
        GoogleCredentials::Default { file: Some(path) } => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                TokenError::invalid(format!("GOOGLE_APPLICATION_CREDENTIALS={}: {e}", path.display())).with_source(e)
            })?;
            let kind = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned));
            if kind.as_deref() == Some("external_account") {
                let ea = ExternalAccount::from_json(&text, http, AwsIdentity::reader(env))
                    .map_err(|e| e.context(format!("GOOGLE_APPLICATION_CREDENTIALS={}", path.display())))?;
                return Ok(Arc::new(ea));
            }
            from_env(None).await
        }
        GoogleCredentials::Default { file: None } => from_env(None).await,
    }
}

/// Fetches one token for `scopes`, so that unusable credentials stop the process at startup
/// instead of failing every event.
pub async fn check(tokens: &dyn TokenSource, scopes: &[&str]) -> Result<(), TokenError> {
    tokens.token(scopes).await.map(|_| ()).map_err(|e| TokenError {
        message: format!("cannot obtain an access token for {scopes:?}: {}", e.message),
        ..e
    })
}
