//! A fake of Google's OAuth token endpoint (JWT-bearer grants of a service-account key) and the
//! service-account key JSON that points at it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::serve;

#[derive(Clone, Default)]
/// A fake OAuth token endpoint on 127.0.0.1 (`POST /token`); clones share its records.
pub struct FakeTokenServer {
    /// base URL
    pub url: String,
    /// the signed JWT assertions it granted tokens for
    pub grants: Arc<Mutex<Vec<String>>>,
}

async fn token(State(fake): State<FakeTokenServer>, body: String) -> Response {
    let form: HashMap<String, String> =
        body.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if form.get("grant_type").map(String::as_str) != Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
        || form.get("assertion").is_none_or(|a| a.split('.').count() != 3)
    {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    }
    fake.grants.lock().unwrap().push(form["assertion"].clone());
    axum::Json(json!({"access_token": "ya29.fake-token", "token_type": "Bearer", "expires_in": 3600})).into_response()
}

impl FakeTokenServer {
    /// Serves a new token endpoint on 127.0.0.1.
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
}

/// A service-account key JSON (key: tests/fixtures/test-sa-private-key.pem) whose token endpoint
/// is `token_uri`.
pub fn service_account_json(token_uri: &str) -> String {
    let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-sa-private-key.pem"))
        .unwrap();
    json!({
        "type": "service_account", "project_id": "my-proj", "private_key_id": "test-key-1", "private_key": pem,
        "client_email": "metrics@my-proj.iam.gserviceaccount.com", "client_id": "1",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri
    })
    .to_string()
}
