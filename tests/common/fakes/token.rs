//! A fake of Google's OAuth token endpoint (JWT-bearer grants of a service-account key) and the
//! service-account key JSON that points at it. Every text names its public source (collected in tests/common/fakes/SOURCES.md, cited as
//! "texts §N"); where the real wording is not publicly known the text says so (`UNKNOWN
//! wording: …`) and the product must not depend on it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde_json::{Value, json};

use super::serve;

/// `POST /token`, the JWT-bearer grant of Google's token endpoint (texts §3.1). It verifies the
/// assertion's signature with the public key of tests/fixtures/test-sa-private-key.pem, its
/// issuer, and its `iat`/`exp` against its own clock, and answers Google's real refusals.
#[derive(Clone, Default)]
pub struct FakeTokenServer {
    pub url: String,
    /// Assertions of the grants answered with a token.
    pub grants: Arc<Mutex<Vec<String>>>,
    /// Every token request (answered or refused).
    pub requests: Arc<Mutex<usize>>,
    /// Added to the server's clock (a client clock that is behind by this much).
    pub clock_skew: Arc<Mutex<chrono::Duration>>,
    /// Statuses to answer instead of processing the next requests (e.g. 503).
    pub fail_next: Arc<Mutex<VecDeque<u16>>>,
}

/// The e-mail of the fixture key; any other issuer is an unknown client.
pub const SA_EMAIL: &str = "metrics@my-proj.iam.gserviceaccount.com";

fn fixture_pem() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-sa-private-key.pem")).unwrap()
}

fn fixture_public_key() -> jsonwebtoken::DecodingKey {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&fixture_pem()).unwrap();
    let public = key.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap()
}

/// An OAuth error answer (RFC 6749 §5.2), compact as newer answers are
/// (spring-attic/spring-cloud-gcp#2634).
fn oauth_error(code: u16, error: &str, description: &str) -> Response {
    (StatusCode::from_u16(code).unwrap(), axum::Json(json!({"error": error, "error_description": description})))
        .into_response()
}

async fn token(State(fake): State<FakeTokenServer>, body: String) -> Response {
    *fake.requests.lock().unwrap() += 1;
    if let Some(code) = fake.fail_next.lock().unwrap().pop_front() {
        // The token endpoint's 5xx/429 bodies are UNKNOWN (no public capture): status only.
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    let form: HashMap<String, String> = body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned()))
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        // googleapis/google-api-nodejs-client#2003 (PARTIAL: old endpoint; status assumed 400)
        let got = form.get("grant_type").cloned().unwrap_or_default();
        return oauth_error(400, "unsupported_grant_type", &format!("Invalid grant_type: {got}"));
    }
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    // the issuer decides which key verifies the signature
    let claims = match jsonwebtoken::dangerous::insecure_decode::<Value>(&assertion) {
        Ok(t) => t.claims,
        // The text for an assertion that is not a JWT at all is UNKNOWN.
        Err(_) => return oauth_error(400, "invalid_grant", "UNKNOWN wording: the assertion is not a JWT"),
    };
    if claims["iss"].as_str() != Some(SA_EMAIL) {
        // erebusnz/gapi-google-analytics-php-interface#149 (401)
        return oauth_error(401, "invalid_client", "The OAuth client was not found.");
    }
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    if jsonwebtoken::decode::<Value>(&assertion, &fixture_public_key(), &v).is_err() {
        // google-cloud-python#10004, spring-cloud-gcp#2634, setup-gcloud#76 (a rotated key)
        return oauth_error(400, "invalid_grant", "Invalid JWT Signature.");
    }
    // iat/exp: the token may live at most 60 minutes and must be valid now by the server's
    // clock. How much leeway Google allows is UNKNOWN; this fake allows none.
    let now = (Utc::now() + *fake.clock_skew.lock().unwrap()).timestamp();
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0));
    if exp - iat > 3600 || iat > now || exp <= now {
        // a terraform user's log (texts §3.1)
        return oauth_error(
            400,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    // The wording for a wrong `aud` or `scope` is UNKNOWN: not checked.
    fake.grants.lock().unwrap().push(assertion);
    // `expires_in` for the JWT grant is UNKNOWN (3599 is what the metadata server documents)
    axum::Json(json!({"access_token": "ya29.fake-token", "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

impl FakeTokenServer {
    pub async fn start() -> FakeTokenServer {
        let mut fake = FakeTokenServer::default();
        let app = Router::new().route("/token", post(token)).with_state(fake.clone());
        fake.url = serve(app).await;
        fake
    }

    /// A service-account key JSON whose token endpoint is this server (key: tests/fixtures).
    pub fn service_account_json(&self) -> String {
        service_account_json(&format!("{}/token", self.url))
    }

    /// The same key JSON with another private key (a rotated or deleted key): its grants are
    /// answered "Invalid JWT Signature.".
    pub fn rotated_key_json(&self) -> String {
        use rsa::pkcs8::EncodePrivateKey;
        let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = other.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        key_json(&format!("{}/token", self.url), &pem)
    }

    /// The server's clock runs `skew` ahead of the client's.
    pub fn set_clock_skew(&self, skew: chrono::Duration) {
        *self.clock_skew.lock().unwrap() = skew;
    }
}

fn key_json(token_uri: &str, pem: &str) -> String {
    json!({
        "type": "service_account", "project_id": "my-proj", "private_key_id": "test-key-1", "private_key": pem,
        "client_email": SA_EMAIL, "client_id": "1",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri
    })
    .to_string()
}

pub fn service_account_json(token_uri: &str) -> String {
    key_json(token_uri, &fixture_pem())
}
