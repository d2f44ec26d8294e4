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
