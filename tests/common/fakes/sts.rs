//! Fakes of Google's Security Token Service (`POST /v1/token`, the RFC 8693 exchange of workload
//! identity federation) and of IAM Credentials (`POST /v1/projects/-/serviceAccounts/
//! {email}:generateAccessToken`), on one server. Texts and statuses are the real ones
//! (tests/common/fakes/SOURCES.md §3.3, §3.4); where the real wording is not publicly known the
//! text says `UNKNOWN wording` and the product must not depend on it.
//!
//! The AWS subject token is checked as AWS would check what Google forwards: its serialisation
//! (Google's layout), the regional `GetCallerIdentity` URL, `x-goog-cloud-target-resource` =
//! the audience among the signed headers, and the SigV4 signature, recomputed here by an
//! independent implementation (AWS's documented algorithm) with the test's secret key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::serve;

/// The pool provider the fake knows (the `audience` of the exchange).
pub const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/providers/aws-lambda";
/// The service account that may be impersonated.
pub const SERVICE_ACCOUNT: &str = "metrics-fn@metrics-proj.iam.gserviceaccount.com";
/// The AWS credentials the fake's "AWS" accepts (Lambda's role credentials in the tests).
pub const AWS_ACCESS_KEY_ID: &str = "ASIAFAKEFAKEFAKE1234";
pub const AWS_SECRET_ACCESS_KEY: &str = "fAkE/sEcReT+kEy/0123456789abcdefghijKLMN";
pub const AWS_SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEFAKE//session";
pub const AWS_REGION: &str = "eu-west-1";
/// What `generateAccessToken` hands out.
pub const IMPERSONATED_TOKEN: &str = "ya29.impersonated-fake";
pub const FEDERATED_TOKEN: &str = "ya29.federated-fake";

/// One request the fake answered or refused.
#[derive(Debug, Clone)]
pub struct Call {
    /// `token` or `generateAccessToken`
    pub endpoint: &'static str,
    /// the form (STS) or the JSON body (IAM Credentials)
    pub body: Value,
    pub authorization: Option<String>,
}

#[derive(Clone, Default)]
pub struct FakeSts {
    pub url: String,
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// The attribute condition of the provider rejects the AWS identity.
    pub reject_identity: Arc<Mutex<bool>>,
    /// The AWS principal lacks roles/iam.workloadIdentityUser on the service account.
    pub deny_impersonation: Arc<Mutex<bool>>,
    /// Statuses answered (with no body) instead of processing the next STS requests.
    pub fail_next: Arc<Mutex<Vec<u16>>>,
}

impl FakeSts {
    pub async fn start() -> FakeSts {
        let mut fake = FakeSts::default();
        let app = Router::new()
            .route("/v1/token", post(token))
            .route("/v1/projects/-/serviceAccounts/{target}", post(generate_access_token))
            .with_state(fake.clone());
        fake.url = serve(app).await;
        fake
    }

    /// An `external_account` configuration as `gcloud iam workload-identity-pools
    /// create-cred-config ... --aws` writes it, with the token and impersonation URLs pointing
    /// here (the AWS verification URL is AWS's: it is signed, never called).
    pub fn config(&self, audience: &str, impersonate: Option<&str>) -> String {
        let mut config = json!({
            "universe_domain": "googleapis.com",
            "type": "external_account",
            "audience": audience,
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": format!("{}/v1/token", self.url),
            "credential_source": {
                "environment_id": "aws1",
                "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
                "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
                "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
                "imdsv2_session_token_url": "http://169.254.169.254/latest/api/token"
            }
        });
        if let Some(sa) = impersonate {
            config["service_account_impersonation_url"] =
                json!(format!("{}/v1/projects/-/serviceAccounts/{sa}:generateAccessToken", self.url));
        }
        config.to_string()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// An OAuth error answer of STS: `{"error": …, "error_description": …}`.
fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(json!({"error": error, "error_description": description})))
        .into_response()
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            (k.to_string(), percent_encoding::percent_decode_str(&v).decode_utf8_lossy().into_owned())
        })
        .collect()
}

async fn token(State(fake): State<FakeSts>, headers: HeaderMap, body: String) -> Response {
    let f = form(&body);
    fake.calls.lock().unwrap().push(Call {
        endpoint: "token",
        body: json!(f),
        authorization: headers.get("authorization").map(|v| v.to_str().unwrap().to_string()),
    });
    {
        let mut fail = fake.fail_next.lock().unwrap();
        if !fail.is_empty() {
            // STS's 5xx bodies are UNKNOWN (no public capture): status only
            return StatusCode::from_u16(fail.remove(0)).unwrap().into_response();
        }
    }
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        // RFC 6749 §5.2 code; Google's wording UNKNOWN
        return oauth_error(400, "unsupported_grant_type", "UNKNOWN wording: grant_type is not token-exchange");
    }
    let audience = get("audience");
    if !audience.starts_with("//iam.googleapis.com/projects/") || !audience.contains("/workloadIdentityPools/") {
        // CONFIRMED text (google-github-actions/auth#211); status assumed 400 (RFC 6749 §5.2)
        return oauth_error(
            400,
            "invalid_request",
            "Invalid value for \"audience\". This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of possible formats.",
        );
    }
    if audience != AUDIENCE {
        // CONFIRMED text (google-github-actions/auth#161, #202); status assumed 400 (RFC 8693 §2.2.2)
        return oauth_error(
            400,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
        );
    }
    if get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token"
        || get("subject_token_type") != "urn:ietf:params:aws:token-type:aws4_request"
        || get("scope").is_empty()
    {
        return oauth_error(
            400,
            "invalid_request",
            "UNKNOWN wording: requested_token_type, subject_token_type or scope",
        );
    }
    if let Err(why) = check_aws_request(get("subject_token"), audience) {
        // What STS says when AWS refuses the forwarded request is UNKNOWN (PARTIAL for a
        // malformed token: google-api-python-client#1136 "Invalid format of AWS credentials…")
        return oauth_error(400, "invalid_grant", &format!("UNKNOWN wording: the AWS request does not verify: {why}"));
    }
    if *fake.reject_identity.lock().unwrap() {
        // CONFIRMED text (terraform-example-foundation#1362); status assumed 400
        return oauth_error(400, "unauthorized_client", "The given credential is rejected by the attribute condition.");
    }
    // field names per RFC 8693 §2.2.1; the values of a real answer are PARTIAL (not captured)
    axum::Json(json!({
        "access_token": FEDERATED_TOKEN,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": 3599
    }))
    .into_response()
}

/// The subject token as AWS (behind Google) would check it; the reason when it does not verify.
fn check_aws_request(subject_token: &str, audience: &str) -> Result<(), String> {
    // Google's libraries percent-encode the JSON once more before the form encoding
    let json = percent_encoding::percent_decode_str(subject_token).decode_utf8().map_err(|e| e.to_string())?;
    let req: Value = serde_json::from_str(&json).map_err(|e| format!("not JSON: {e}"))?;
    if req["method"] != "POST" {
        return Err(format!("method {}", req["method"]));
    }
    let url = req["url"].as_str().unwrap_or_default();
    let expected_url = format!("https://sts.{AWS_REGION}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15");
    if url != expected_url {
        return Err(format!("url {url}"));
    }
    let headers: HashMap<String, String> = req["headers"]
        .as_array()
        .ok_or("no headers")?
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap_or_default().to_ascii_lowercase(),
                h["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    if headers.get("x-goog-cloud-target-resource").map(String::as_str) != Some(audience) {
        return Err("x-goog-cloud-target-resource is not the audience".into());
    }
    if headers.get("host").map(String::as_str) != Some(&format!("sts.{AWS_REGION}.amazonaws.com")) {
        return Err("host".into());
    }
    // Authorization: AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/sts/aws4_request, SignedHeaders=…, Signature=…
    let auth = headers.get("authorization").ok_or("no Authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not AWS4-HMAC-SHA256")?;
    let mut parts = HashMap::new();
    for p in rest.split(", ") {
        let (k, v) = p.split_once('=').ok_or("malformed Authorization")?;
        parts.insert(k, v);
    }
    let credential: Vec<&str> = parts.get("Credential").ok_or("no Credential")?.split('/').collect();
    let [key_id, date, region, service, terminator] = credential[..] else { return Err("Credential".into()) };
    if key_id != AWS_ACCESS_KEY_ID || region != AWS_REGION || service != "sts" || terminator != "aws4_request" {
        return Err(format!("credential scope {credential:?}"));
    }
    let signed: Vec<&str> = parts.get("SignedHeaders").ok_or("no SignedHeaders")?.split(';').collect();
    for needed in ["host", "x-amz-date", "x-goog-cloud-target-resource", "x-amz-security-token"] {
        if !signed.contains(&needed) {
            return Err(format!("{needed} is not signed"));
        }
    }
    if headers.get("x-amz-security-token").map(String::as_str) != Some(AWS_SESSION_TOKEN) {
        return Err("session token".into());
    }
    let amz_date = headers.get("x-amz-date").ok_or("no x-amz-date")?;
    if !amz_date.starts_with(date) {
        return Err("x-amz-date and the credential scope disagree".into());
    }
    // AWS SigV4: canonical request, string to sign, derived key
    let canonical_headers: String =
        signed.iter().map(|h| format!("{h}:{}\n", headers.get(*h).map(|v| v.trim()).unwrap_or(""))).collect();
    let canonical = format!(
        "POST\n/\nAction=GetCallerIdentity&Version=2011-06-15\n{canonical_headers}\n{}\n{}",
        signed.join(";"),
        hex(&Sha256::digest(b""))
    );
    let scope = format!("{date}/{region}/sts/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{AWS_SECRET_ACCESS_KEY}").as_bytes(), date.as_bytes());
    for part in [region, "sts", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    if parts.get("Signature") != Some(&signature.as_str()) {
        // AWS STS itself answers 403 SignatureDoesNotMatch here
        return Err("SignatureDoesNotMatch".into());
    }
    Ok(())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn generate_access_token(
    State(fake): State<FakeSts>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let authorization = headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.calls.lock().unwrap().push(Call {
        endpoint: "generateAccessToken",
        body: body.clone(),
        authorization: authorization.clone(),
    });
    let Some(email) = target.strip_suffix(":generateAccessToken") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if authorization.as_deref() != Some(&format!("Bearer {FEDERATED_TOKEN}")) {
        // Google's usual 401 envelope for a missing or invalid access token (PARTIAL: the
        // generic API message, not captured from IAM Credentials itself)
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.", "status": "UNAUTHENTICATED"}})),
        )
            .into_response();
    }
    if email != SERVICE_ACCOUNT {
        // CONFIRMED: a wrong service-account e-mail is a 404 without body (google-github-actions/auth#471)
        return StatusCode::NOT_FOUND.into_response();
    }
    if *fake.deny_impersonation.lock().unwrap() {
        // CONFIRMED (google-github-actions/auth#340, DataDog/stratus-red-team#299)
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": {
                "code": 403,
                "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
                "status": "PERMISSION_DENIED",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "IAM_PERMISSION_DENIED",
                    "domain": "iam.googleapis.com",
                    "metadata": {"permission": "iam.serviceAccounts.getAccessToken"}
                }]
            }})),
        )
            .into_response();
    }
    let scopes_ok = body["scope"].as_array().is_some_and(|s| !s.is_empty() && s.iter().all(Value::is_string));
    if !scopes_ok {
        // the 400 of a request the API cannot read (google-cloud-python#15186, CONFIRMED)
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}})),
        )
            .into_response();
    }
    // field names of the REST reference (PARTIAL: no captured body); expireTime as RFC 3339 UTC
    let expire = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    axum::Json(json!({"accessToken": IMPERSONATED_TOKEN, "expireTime": expire})).into_response()
}
