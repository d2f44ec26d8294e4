//! A JWKS endpoint like Google's (the keys that sign Pub/Sub push OIDC tokens).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use super::serve;

/// A JWKS endpoint on 127.0.0.1 that counts its fetches and serves whatever keys it holds now.
pub async fn jwks_server(keys: Arc<std::sync::Mutex<Vec<Value>>>, fetches: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || {
            let keys = keys.clone();
            let fetches = fetches.clone();
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"keys": keys.lock().unwrap().clone()}))
            }
        }),
    );
    format!("{}/certs", serve(app).await)
}

/// How a [`scripted_jwks_server`] answers: served keys, failures and delays that a test changes
/// while the server runs.
#[derive(Default)]
pub struct JwksScript {
    /// the keys served
    pub keys: std::sync::Mutex<Vec<Value>>,
    /// fetches received (failed ones included)
    pub fetches: AtomicUsize,
    /// answer 500 instead of the keys
    pub fail: std::sync::atomic::AtomicBool,
    /// wait this many milliseconds before answering
    pub delay_ms: std::sync::atomic::AtomicU64,
}

/// A JWKS endpoint on 127.0.0.1 that follows `script` at each fetch (count, delay, then keys or
/// a 500); returns its URL.
pub async fn scripted_jwks_server(script: Arc<JwksScript>) -> String {
    let app = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || {
            let script = script.clone();
            async move {
                script.fetches.fetch_add(1, Ordering::SeqCst);
                let delay = script.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                if script.fail.load(Ordering::SeqCst) {
                    return Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                }
                Ok(axum::Json(json!({"keys": script.keys.lock().unwrap().clone()})))
            }
        }),
    );
    format!("{}/certs", serve(app).await)
}
