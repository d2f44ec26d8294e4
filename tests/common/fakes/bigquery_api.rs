//! A fake of BigQuery's REST API (`jobs.query`, `jobs.getQueryResults`) for what bqemulator
//! cannot show: it records every call, can answer "not complete yet" a number of times, pages its
//! results, waits before answering, puts an error inside an HTTP 200 (bqemulator's way), or
//! answers HTTP errors with BigQuery's real bodies (sources: tests/common/fakes/SOURCES.md §4.1).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::serve;

#[derive(Clone, Default)]
pub struct FakeBigQuery {
    pub calls: Arc<Mutex<Vec<String>>>,
    /// how many getQueryResults calls answer "not complete yet"
    pub incomplete: Arc<Mutex<u32>>,
    pub delay: Duration,
    /// bqemulator's way (stack.md §5): SQL errors in an HTTP 200. Real BigQuery answers them
    /// with HTTP errors (python-bigquery `retry.py`; fake-texts.md §4.3).
    pub error_in_200: bool,
    /// HTTP errors to answer to the next `jobs.query` calls: (status, body).
    pub fail_next: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

/// BigQuery's error envelope: the legacy `errors` array plus `status` (fake-texts.md §4.1).
pub fn bq_error(code: u16, status: &str, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"error": {"code": code, "message": message, "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status}}),
    )
}

fn schema() -> Value {
    json!({"fields": [{"name": "status", "type": "STRING", "mode": "NULLABLE"}, {"name": "v", "type": "FLOAT", "mode": "NULLABLE"}]})
}

async fn query(
    State(f): State<FakeBigQuery>,
    Path(project): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    f.calls.lock().unwrap().push(format!("query {project} {}", body["parameterMode"]));
    tokio::time::sleep(f.delay).await;
    if let Some((code, body)) = f.fail_next.lock().unwrap().pop_front() {
        return (axum::http::StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response();
    }
    if f.error_in_200 {
        return axum::Json(json!({"jobComplete": true, "rows": [], "totalRows": "0",
            "errors": [{"reason": "invalidQuery", "message": "Syntax error: Unexpected keyword"}]}))
        .into_response();
    }
    axum::Json(json!({"kind": "bigquery#queryResponse", "jobComplete": false,
        "jobReference": {"projectId": project, "jobId": "job_1", "location": "US"}}))
    .into_response()
}

async fn results(
    State(f): State<FakeBigQuery>,
    Path((project, job)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> axum::Json<Value> {
    let q: std::collections::HashMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    f.calls
        .lock()
        .unwrap()
        .push(format!("results {project} {job} page={}", q.get("pageToken").cloned().unwrap_or_default()));
    {
        let mut n = f.incomplete.lock().unwrap();
        if *n > 0 {
            *n -= 1;
            return axum::Json(json!({"jobComplete": false, "jobReference": {"projectId": project, "jobId": job}}));
        }
    }
    match q.get("pageToken").map(String::as_str) {
        None => axum::Json(json!({"jobComplete": true, "schema": schema(), "totalRows": "3", "pageToken": "p2",
            "rows": [{"f": [{"v": "A"}, {"v": "1.5"}]}, {"f": [{"v": "B"}, {"v": null}]}]})),
        Some(_) => axum::Json(json!({"jobComplete": true, "schema": schema(), "totalRows": "3",
            "rows": [{"f": [{"v": "C"}, {"v": "0.30000000000000004"}]}]})),
    }
}

/// Serves the fake on 127.0.0.1; returns its base URL.
pub async fn start(f: FakeBigQuery) -> String {
    let app = Router::new()
        .route("/bigquery/v2/projects/{project}/queries", post(query))
        .route("/bigquery/v2/projects/{project}/queries/{job}", get(results))
        .with_state(f);
    serve(app).await
}
