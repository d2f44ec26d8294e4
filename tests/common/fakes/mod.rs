//! In-process fakes of services that have no emulator, one file per service. Each binds
//! 127.0.0.1:0, records every request and validates it as strictly as the real API.

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;

pub mod bigquery_api;
pub mod gcm;
pub mod jwks;
pub mod lambda_runtime;
pub mod otlp;
pub mod secrets_manager;
pub mod sts;
pub mod token;
pub mod warehouse;

/// Serves `app` on 127.0.0.1 (a free port) in the background; returns its `http://` URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[derive(Debug, Clone)]
/// One request a fake received.
pub struct Recorded {
    /// request path
    pub path: String,
    /// request headers
    pub headers: HeaderMap,
    /// request body
    pub body: Bytes,
}
