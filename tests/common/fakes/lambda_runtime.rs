//! A mock of the AWS Lambda Runtime API: hands out the queued invocations on
//! `GET /2018-06-01/runtime/invocation/next` (long poll, like the real API) and records what
//! the function posts back (`/response` or `/error`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;

use super::serve;

/// The invocations still to hand out and the answers received; clones share them.
#[derive(Clone, Default)]
pub struct LambdaRuntime {
    /// (request id, invocation payload), handed out in order
    pub queue: Arc<Mutex<VecDeque<(String, Value)>>>,
    /// (request id, "response" or "error", body), as posted by the function
    pub responses: Arc<Mutex<Vec<(String, String, Value)>>>,
}

async fn next(State(m): State<LambdaRuntime>) -> axum::response::Response {
    loop {
        let item = m.queue.lock().unwrap().pop_front();
        if let Some((id, event)) = item {
            return (
                [
                    ("lambda-runtime-aws-request-id", id.as_str()),
                    ("lambda-runtime-deadline-ms", "4102444800000"),
                    ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:f"),
                    ("content-type", "application/json"),
                ],
                event.to_string(),
            )
                .into_response();
        }
        // long poll, like the real API
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn respond(
    State(m): State<LambdaRuntime>,
    Path((id, kind)): Path<(String, String)>,
    body: Bytes,
) -> impl IntoResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
    m.responses.lock().unwrap().push((id, kind, v));
    (axum::http::StatusCode::ACCEPTED, "")
}

impl LambdaRuntime {
    /// Serves the mock on 127.0.0.1; returns its `host:port` (the `AWS_LAMBDA_RUNTIME_API` value).
    pub async fn start(&self) -> String {
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(respond))
            .with_state(self.clone());
        serve(app).await.trim_start_matches("http://").to_string()
    }
}
