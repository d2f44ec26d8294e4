//! Workload identity federation from AWS: Google access tokens for the function's AWS role,
//! without any Google key.
//!
//! The `external_account` configuration `gcloud iam workload-identity-pools create-cred-config
//! ... --aws` writes (`type`, `audience`, `subject_token_type`
//! `urn:ietf:params:aws:token-type:aws4_request`, `token_url`, `credential_source` with
//! `environment_id` `aws1` and `regional_cred_verification_url`, optionally
//! `service_account_impersonation_url`) is followed as Google's client libraries do
//! (google-auth-library-python `google/auth/aws.py`, `external_account.py`):
//! 1. a POST to AWS STS `GetCallerIdentity` at the regional URL is signed with SigV4 (by
//!    `aws-sigv4`, AWS's own signer) with the credentials Lambda puts in the environment
//!    (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; region `AWS_REGION` or
//!    `AWS_DEFAULT_REGION`), the signed headers including `x-goog-cloud-target-resource` = the
//!    audience; it is not sent: serialised as `{"headers":[{"key":…,"value":…},…],
//!    "method":"POST","url":…}` and percent-encoded, it is the subject token;
//! 2. Google's STS (`token_url`) exchanges it (RFC 8693 token exchange) for a federated access
//!    token (Google sends the signed request to AWS, which says whose role it is);
//! 3. with `service_account_impersonation_url`, IAM Credentials `generateAccessToken` turns that
//!    into a token of the service account for the scopes asked (the federated token carries
//!    `cloud-platform`); without it the federated token itself is used, for the scopes asked.
//!
//! Every refusal keeps its endpoint, HTTP status and the service's own words, so that a startup
//! check says which step failed and why. The AWS metadata URLs of `credential_source`
//! (`url`, `region_url`, IMDSv2) are not used: on Lambda there is no instance metadata service,
//! the credentials are in the environment.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::credentials::{TokenError, TokenSource, oauth_answer};
use crate::retry::{self, Policy};

/// `subject_token_type` of a serialised, SigV4-signed `GetCallerIdentity` request.
pub const AWS_SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";
/// The RFC 8693 grant of Google's STS.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type the exchange asks for.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The scope of the federated token when a service account is impersonated.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The header that binds the signed request to the pool provider (Google: "Including this header
/// as part of the signature is recommended").
pub const TARGET_RESOURCE_HEADER: &str = "x-goog-cloud-target-resource";

/// What Python's `urllib.parse.quote` leaves alone (letters, digits, `_.-~` and `/`): the
/// encoding of the subject token in Google's libraries.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'/');
/// A cached token is renewed this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// The lifetime asked of `generateAccessToken` (its default and maximum without an org policy).
const IMPERSONATED_LIFETIME: &str = "3600s";

/// The fields of an `external_account` configuration this module uses.
#[derive(Deserialize)]
struct Config {
    #[serde(rename = "type")]
    kind: String,
    audience: String,
    subject_token_type: String,
    token_url: String,
    #[serde(default)]
    service_account_impersonation_url: Option<String>,
    credential_source: CredentialSource,
}

#[derive(Deserialize)]
struct CredentialSource {
    #[serde(default)]
    environment_id: Option<String>,
    #[serde(default)]
    regional_cred_verification_url: Option<String>,
}

/// The AWS credentials and region the `GetCallerIdentity` request is signed with.
#[derive(Clone)]
pub struct AwsIdentity {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

impl std::fmt::Debug for AwsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsIdentity").field("access_key_id", &self.access_key_id).field("region", &self.region).finish()
    }
}

/// Where the AWS identity comes from, read again for every token (Lambda's credentials stay in
/// the environment of its execution environment).
pub type AwsIdentitySource = Arc<dyn Fn() -> Result<AwsIdentity, TokenError> + Send + Sync>;

impl AwsIdentity {
    /// The identity in the variables Lambda sets (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`; `AWS_DEFAULT_REGION` too), as Google's libraries read
    /// them first; a missing one is named.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<AwsIdentity, TokenError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let missing = |what: &str| {
            TokenError::invalid(format!(
                "{what} is not set: workload identity federation signs with the AWS credentials in the environment \
                 (as Lambda sets them); the metadata URLs of credential_source are not used"
            ))
        };
        Ok(AwsIdentity {
            access_key_id: var("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
            session_token: var("AWS_SESSION_TOKEN"),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .ok_or_else(|| missing("AWS_REGION (or AWS_DEFAULT_REGION)"))?,
        })
    }

    /// A source that reads the identity through `env` each time.
    pub fn reader(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> AwsIdentitySource {
        Arc::new(move || AwsIdentity::from_env(&env))
    }

    /// A fixed identity (tests).
    pub fn fixed(self) -> AwsIdentitySource {
        Arc::new(move || Ok(self.clone()))
    }
}

/// The serialised signed request (the subject token before percent-encoding), in the layout of
/// Google's libraries: keys in order, headers sorted by name.
#[derive(Serialize)]
struct SignedRequest<'a> {
    headers: Vec<KeyValue<'a>>,
    method: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: &'a str,
}

/// Tokens through workload identity federation from AWS, cached per scope set until
/// [`EXPIRY_MARGIN`] before they expire; each step retried as [`retry::oauth_token`] says.
pub struct ExternalAccount {
    http: reqwest::Client,
    audience: String,
    token_url: String,
    verification_url: String,
    impersonation_url: Option<String>,
    aws: AwsIdentitySource,
    retry: Policy,
    cache: RwLock<HashMap<Vec<String>, (String, Instant)>>,
}

impl ExternalAccount {
    /// Reads an `external_account` configuration of the AWS kind; anything else is refused with
    /// the field at fault.
    pub fn from_json(json: &str, http: reqwest::Client, aws: AwsIdentitySource) -> Result<ExternalAccount, TokenError> {
        let config: Config = serde_json::from_str(json)
            .map_err(|e| TokenError::invalid(format!("not an external_account credential configuration: {e}")))?;
        if config.kind != "external_account" {
            return Err(TokenError::invalid(format!("type is '{}', not 'external_account'", config.kind)));
        }
        if config.subject_token_type != AWS_SUBJECT_TOKEN_TYPE {
            return Err(TokenError::invalid(format!(
                "subject_token_type is '{}': only AWS ('{AWS_SUBJECT_TOKEN_TYPE}') is supported",
                config.subject_token_type
            )));
        }
        let source = &config.credential_source;
        if source.environment_id.as_deref() != Some("aws1") {
            return Err(TokenError::invalid(format!(
                "credential_source.environment_id is {:?}, not \"aws1\"",
                source.environment_id.as_deref().unwrap_or("missing")
            )));
        }
        let verification_url =
            source.regional_cred_verification_url.clone().filter(|u| u.starts_with("https://")).ok_or_else(|| {
                TokenError::invalid("credential_source.regional_cred_verification_url (https) is missing")
            })?;
        for (field, url) in [
            ("token_url", Some(&config.token_url)),
            ("service_account_impersonation_url", config.service_account_impersonation_url.as_ref()),
        ] {
            if let Some(url) = url
                && reqwest::Url::parse(url).is_err()
            {
                return Err(TokenError::invalid(format!("{field} is not a URL: {url}")));
            }
        }
        Ok(ExternalAccount {
            http,
            audience: config.audience,
            token_url: config.token_url,
            verification_url,
            impersonation_url: config.service_account_impersonation_url,
            aws,
            retry: crate::google::credentials::ServiceAccount::RETRY,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Changes the retry policy of the STS and IAM Credentials requests.
    pub fn with_retry(mut self, retry: Policy) -> ExternalAccount {
        self.retry = retry;
        self
    }

    /// The subject token: the signed `GetCallerIdentity` request, serialised and
    /// percent-encoded, signed at `now`.
    pub fn subject_token(&self, aws: &AwsIdentity, now: SystemTime) -> Result<String, TokenError> {
        let url = self.verification_url.replace("{region}", &aws.region);
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| TokenError::invalid(format!("regional_cred_verification_url {url}: {e}")))?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        let credentials = aws_credential_types::Credentials::new(
            aws.access_key_id.clone(),
            aws.secret_access_key.clone(),
            aws.session_token.clone(),
            None,
            "environment",
        );
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&aws.region)
            .name("sts")
            .time(now)
            .settings(aws_sigv4::http_request::SigningSettings::default())
            .build()
            .map_err(|e| TokenError::invalid(format!("cannot sign the AWS request: {e}")))?
            .into();
        let to_sign = [("host", host.as_str()), (TARGET_RESOURCE_HEADER, self.audience.as_str())];
        let signable = aws_sigv4::http_request::SignableRequest::new(
            "POST",
            url.as_str(),
            to_sign.iter().copied(),
            aws_sigv4::http_request::SignableBody::Bytes(b""),
        )
        .map_err(|e| TokenError::invalid(format!("cannot sign the AWS request: {e}")))?;
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|e| TokenError::invalid(format!("cannot sign the AWS request: {e}")))?
            .into_parts();
        let mut headers: Vec<(String, String)> = to_sign.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (name, value) in instructions.headers() {
            // Google's libraries and documentation spell it "Authorization"
            let name = if name.eq_ignore_ascii_case("authorization") { "Authorization" } else { name };
            headers.push((name.to_string(), value.to_string()));
        }
        headers.sort();
        let request = SignedRequest {
            headers: headers.iter().map(|(k, v)| KeyValue { key: k, value: v }).collect(),
            method: "POST",
            url: &url,
        };
        let json = serde_json::to_string(&request).expect("serialisable");
        Ok(utf8_percent_encode(&json, QUOTE).to_string())
    }

    /// Step 2: the federated token from Google's STS.
    async fn exchange(&self, scopes: &[&str]) -> Result<(String, Duration), TokenError> {
        let aws = (self.aws)()?;
        let subject = self.subject_token(&aws, SystemTime::now())?;
        let scope = match self.impersonation_url {
            Some(_) => CLOUD_PLATFORM_SCOPE.to_string(),
            None => scopes.join(" "),
        };
        let resp = self
            .http
            .post(&self.token_url)
            .timeout(Duration::from_secs(10))
            .form(&[
                ("grant_type", TOKEN_EXCHANGE_GRANT),
                ("audience", self.audience.as_str()),
                ("scope", scope.as_str()),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
                ("subject_token", subject.as_str()),
                ("subject_token_type", AWS_SUBJECT_TOKEN_TYPE),
            ])
            .send()
            .await
            .map_err(|e| {
                TokenError::unreachable(
                    format!("token exchange at {} failed: {}", self.token_url, crate::error::transport(&e)),
                    e,
                )
            })?;
        oauth_answer(resp, &format!("Security Token Service {} (token exchange)", self.token_url)).await
    }

    /// Step 3: a token of the impersonated service account.
    async fn impersonate(&self, url: &str, federated: &str, scopes: &[&str]) -> Result<(String, Duration), TokenError> {
        let resp = self
            .http
            .post(url)
            .timeout(Duration::from_secs(10))
            .bearer_auth(federated)
            .json(&serde_json::json!({"scope": scopes, "lifetime": IMPERSONATED_LIFETIME}))
            .send()
            .await
            .map_err(|e| {
                TokenError::unreachable(
                    format!("generateAccessToken at {url} failed: {}", crate::error::transport(&e)),
                    e,
                )
            })?;
        let status = resp.status().as_u16();
        let retry_after = retry::retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let value: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status)
            && let Some(v) = &value
            && let Some(token) = v["accessToken"].as_str()
        {
            let lifetime = v["expireTime"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .and_then(|t| (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok())
                .unwrap_or(Duration::from_secs(3600));
            return Ok((token.to_string(), lifetime));
        }
        // Google's error envelope: {"error": {"code", "message", "status", "details"}}
        let error = value.as_ref().map(|v| &v["error"]);
        let detail = match (error.and_then(|e| e["status"].as_str()), error.and_then(|e| e["message"].as_str())) {
            (Some(s), Some(m)) => format!("{s}: {m}"),
            (None, Some(m)) => m.to_string(),
            _ if text.trim().is_empty() => "(no body)".to_string(),
            _ => text.chars().take(200).collect(),
        };
        let account = url.rsplit('/').next().unwrap_or(url).trim_end_matches(":generateAccessToken");
        // (Google's `status` is in the message; it is not an OAuth error code)
        Err(TokenError::answered(
            status,
            None,
            retry_after,
            format!("IAM Credentials generateAccessToken for {account} answered HTTP {status}: {detail}"),
        ))
    }

    async fn fetch(&self, scopes: &[&str]) -> Result<(String, Duration), TokenError> {
        let (federated, lifetime) = self.retry.retry(|| self.exchange(scopes), TokenError::decision).await?;
        match &self.impersonation_url {
            None => Ok((federated, lifetime)),
            Some(url) => self.retry.retry(|| self.impersonate(url, &federated, scopes), TokenError::decision).await,
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for ExternalAccount {
    async fn token(&self, scopes: &[&str]) -> Result<String, TokenError> {
        let key: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        if let Some((token, until)) = self.cache.read().await.get(&key)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch(scopes).await?;
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        self.cache.write().await.insert(key, (token.clone(), until));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
      "type": "external_account",
      "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aws-pool/providers/aws-lambda",
      "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
      "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/fn@p.iam.gserviceaccount.com:generateAccessToken",
      "token_url": "https://sts.googleapis.com/v1/token",
      "credential_source": {
        "environment_id": "aws1",
        "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
        "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
      }
    }"#;

    fn identity() -> AwsIdentity {
        AwsIdentity {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("session-token".into()),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn the_subject_token_is_the_signed_request_serialised_as_google_documents() {
        let ea = ExternalAccount::from_json(CONFIG, reqwest::Client::new(), identity().fixed()).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        let token = ea.subject_token(&identity(), at).unwrap();
        let json = percent_encoding::percent_decode_str(&token).decode_utf8().unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["url"], "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15");
        let keys: Vec<&str> = v["headers"].as_array().unwrap().iter().map(|h| h["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["Authorization", "host", "x-amz-date", "x-amz-security-token", TARGET_RESOURCE_HEADER]);
        let header =
            |k: &str| v["headers"].as_array().unwrap().iter().find(|h| h["key"] == k).unwrap()["value"].clone();
        assert_eq!(header("host"), "sts.eu-west-1.amazonaws.com");
        assert_eq!(header("x-amz-date"), "20260101T000000Z");
        assert_eq!(header("x-amz-security-token"), "session-token");
        assert_eq!(
            header(TARGET_RESOURCE_HEADER),
            "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aws-pool/providers/aws-lambda"
        );
        let auth = header("Authorization");
        let auth = auth.as_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/sts/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource, Signature="
            ),
            "{auth}"
        );
        // the JSON keys in the order Google's libraries write them, percent-encoded like quote()
        assert!(json.starts_with("{\"headers\":[{\"key\":\"Authorization\""), "{json}");
        assert!(token.starts_with("%7B%22headers%22%3A%5B"), "{token}");
        assert!(!token.contains(['{', '"', ' ', ':']), "{token}");
    }

    #[test]
    fn configurations_that_are_not_aws_external_accounts_are_refused_naming_the_field() {
        let with = |from: &str, to: &str| CONFIG.replace(from, to);
        for (json, says) in [
            ("{}".to_string(), "not an external_account credential configuration"),
            (with("\"external_account\"", "\"service_account\""), "not 'external_account'"),
            (with("aws:token-type:aws4_request", "oauth:token-type:jwt"), "only AWS"),
            (with("\"aws1\"", "\"aws2\""), "environment_id"),
            (with("https://sts.{region}", "http://sts.{region}"), "regional_cred_verification_url"),
            (with("https://sts.googleapis.com/v1/token", "sts"), "token_url is not a URL"),
        ] {
            let err = ExternalAccount::from_json(&json, reqwest::Client::new(), identity().fixed()).err().unwrap();
            assert!(err.is_invalid_key() && err.to_string().contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn the_aws_identity_is_read_from_lambdas_variables_and_a_missing_one_is_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let id = AwsIdentity::from_env(&env(&[
            ("AWS_ACCESS_KEY_ID", "ASIA1"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
            ("AWS_DEFAULT_REGION", "us-east-2"),
        ]))
        .unwrap();
        assert_eq!(
            (id.access_key_id.as_str(), id.session_token.as_deref(), id.region.as_str()),
            ("ASIA1", Some("t"), "us-east-2")
        );
        assert!(!format!("{id:?}").contains("\"s\""), "the secret is not printed");
        let err = AwsIdentity::from_env(&env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_REGION", "r")])).unwrap_err();
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY is not set"), "{err}");
        let err =
            AwsIdentity::from_env(&env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "s")])).unwrap_err();
        assert!(err.to_string().contains("AWS_REGION"), "{err}");
    }
}
