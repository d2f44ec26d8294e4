//! A fake of AWS Secrets Manager's `GetSecretValue` (the AWS JSON 1.1 protocol: `POST /`,
//! `X-Amz-Target: secretsmanager.GetSecretValue`, `Content-Type: application/x-amz-json-1.1`,
//! body `{"SecretId": …}`), reached by the real AWS SDK through `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
//! Statuses and texts: tests/common/fakes/SOURCES.md §10.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::serve;

/// The account and role of the function in the fake's texts.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "eu-west-1";

#[derive(Clone, Default)]
pub struct FakeSecretsManager {
    pub url: String,
    /// SecretId (ARN) -> SecretString
    pub secrets: Arc<Mutex<HashMap<String, String>>>,
    /// SecretIds the function's role may not read.
    pub denied: Arc<Mutex<Vec<String>>>,
    /// Every request: (X-Amz-Target, Authorization, body).
    pub requests: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl FakeSecretsManager {
    pub async fn start() -> FakeSecretsManager {
        let mut fake = FakeSecretsManager::default();
        let app = Router::new().route("/", post(call)).with_state(fake.clone());
        fake.url = serve(app).await;
        fake
    }

    /// The ARN of a secret named `name` in the fake's account and region.
    pub fn arn(name: &str) -> String {
        format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf")
    }

    pub fn put(&self, arn: &str, value: &str) {
        self.secrets.lock().unwrap().insert(arn.to_string(), value.to_string());
    }

    pub fn deny(&self, arn: &str) {
        self.denied.lock().unwrap().push(arn.to_string());
    }
}

/// An AWS JSON 1.1 error: HTTP 400, `__type` and the message (SOURCES.md §10).
fn error(kind: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.1"), ("x-amzn-errortype", kind)],
        json!({"__type": kind, "Message": message}).to_string(),
    )
        .into_response()
}

async fn call(State(fake): State<FakeSecretsManager>, headers: HeaderMap, body: String) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (target, auth) = (header("x-amz-target"), header("authorization"));
    fake.requests.lock().unwrap().push((target.clone(), auth.clone(), body.clone()));
    if target != "secretsmanager.GetSecretValue" || header("content-type") != "application/x-amz-json-1.1" {
        return error("UnknownOperationException", "UNKNOWN wording: not GetSecretValue");
    }
    // SigV4 by the SDK, scoped to this service and region (the signature itself is AWS's own
    // signer's business; the STS fake verifies one independently)
    if !auth.starts_with("AWS4-HMAC-SHA256 Credential=")
        || !auth.contains(&format!("/{REGION}/secretsmanager/aws4_request"))
    {
        return error("IncompleteSignatureException", "UNKNOWN wording: not signed for secretsmanager");
    }
    let id = body["SecretId"].as_str().unwrap_or_default().to_string();
    if fake.denied.lock().unwrap().contains(&id) {
        return error(
            "AccessDeniedException",
            &format!(
                "User: arn:aws:sts::{ACCOUNT}:assumed-role/pipeline-run-metrics-role/pipeline-run-metrics is not authorized to perform: secretsmanager:GetSecretValue on resource: {id} because no identity-based policy allows the secretsmanager:GetSecretValue action"
            ),
        );
    }
    let Some(value) = fake.secrets.lock().unwrap().get(&id).cloned() else {
        return error("ResourceNotFoundException", "Secrets Manager can't find the specified secret.");
    };
    let name = id.rsplit(':').next().unwrap_or(&id).to_string();
    (
        [("content-type", "application/x-amz-json-1.1")],
        json!({
            "ARN": id, "Name": name, "VersionId": "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE",
            "SecretString": value, "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.767225600E9
        })
        .to_string(),
    )
        .into_response()
}
