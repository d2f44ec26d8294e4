//! The BigQuery client's rough edges that bqemulator cannot show (it always answers
//! `jobComplete: true` and puts SQL errors in HTTP 200): an incomplete job is polled with
//! `getQueryResults` until complete, result pages are followed, a slow answer times out as a
//! transient error, and errors inside an HTTP 200 are errors. Against an in-process fake of the
//! REST API that records what the client sent and answers HTTP errors with BigQuery's real
//! bodies (sources in /work/research/fake-texts.md §4.1): retryable reasons are retried,
//! `quotaExceeded` and request errors are not.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use pipeline_run_metrics::warehouse::WarehouseError;
use pipeline_run_metrics::warehouse::{BigQuery, Cell, Param, Warehouse};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<String>>>,
    /// how many getQueryResults calls answer "not complete yet"
    incomplete: Arc<Mutex<u32>>,
    delay: Duration,
    /// bqemulator's way (stack.md §5): SQL errors in an HTTP 200. Real BigQuery answers them
    /// with HTTP errors (python-bigquery `retry.py`; fake-texts.md §4.3).
    error_in_200: bool,
    /// HTTP errors to answer to the next `jobs.query` calls: (status, body).
    fail_next: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

/// BigQuery's error envelope: the legacy `errors` array plus `status` (fake-texts.md §4.1).
fn bq_error(code: u16, status: &str, reason: &str, message: &str) -> (u16, Value) {
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
    State(f): State<Fake>,
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
    State(f): State<Fake>,
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

async fn start(f: Fake) -> String {
    let app = Router::new()
        .route("/bigquery/v2/projects/{project}/queries", post(query))
        .route("/bigquery/v2/projects/{project}/queries/{job}", get(results))
        .with_state(f);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    host
}

#[tokio::test]
async fn an_incomplete_job_is_polled_and_every_page_read() {
    let fake = Fake { incomplete: Arc::new(Mutex::new(2)), ..Default::default() };
    let host = start(fake.clone()).await;
    let bq = BigQuery::emulator(&host, "data-proj", Duration::from_secs(10), reqwest::Client::new()).await.unwrap();
    let rows =
        bq.query("SELECT status, v FROM t WHERE x = @x", &[("x".into(), Param::String("y".into()))]).await.unwrap();
    let got: Vec<(Cell, Cell)> = rows.iter().map(|r| (r["status"].clone(), r["v"].clone())).collect();
    assert_eq!(
        got,
        vec![
            (Cell::Text("A".into()), Cell::Float(1.5)),
            (Cell::Text("B".into()), Cell::Null),
            (Cell::Text("C".into()), Cell::Float(0.30000000000000004)),
        ]
    );
    assert_eq!(
        *fake.calls.lock().unwrap(),
        vec![
            "query data-proj \"NAMED\"",
            "results data-proj job_1 page=",
            "results data-proj job_1 page=",
            "results data-proj job_1 page=",
            "results data-proj job_1 page=p2",
        ]
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let fake = Fake { delay: Duration::from_secs(3), ..Default::default() };
    let host = start(fake).await;
    let bq = BigQuery::emulator(&host, "p", Duration::from_millis(300), reqwest::Client::new()).await.unwrap();
    let e = bq.query("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(e, WarehouseError::Unavailable(ref m) if m.contains("timed out")), "{e:?}");
}

#[tokio::test]
async fn an_error_inside_an_http_200_is_an_error() {
    let host = start(Fake { error_in_200: true, ..Default::default() }).await;
    let bq = BigQuery::emulator(&host, "p", Duration::from_secs(5), reqwest::Client::new()).await.unwrap();
    let e = bq.query("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(e, WarehouseError::Rejected("Syntax error: Unexpected keyword".into()));
}

/// (answer of the first `jobs.query`, `jobs.query` calls made, result). The bodies are BigQuery's
/// (fake-texts.md §4.1); a retryable one is followed by the normal answer.
#[tokio::test]
async fn http_errors_are_classified_and_retryable_ones_retried() {
    // mozilla/bigquery-etl#1698 (the `project:dataset.table` form)
    let not_found =
        bq_error(404, "NOT_FOUND", "notFound", "Not found: Table data-proj:ds.t was not found in location US");
    // metabase/metabase#20514 (its `location`/`locationType` fields are left out)
    let invalid =
        bq_error(400, "INVALID_ARGUMENT", "invalidQuery", "Unrecognized name: `beeper_api_db.users` at [4:27]");
    // the troubleshooting doc's example; the rest of the quota message is UNKNOWN
    let quota = bq_error(403, "PERMISSION_DENIED", "quotaExceeded", "Quota exceeded: UNKNOWN wording of the rest");
    // the troubleshooting doc's example message
    let rate = bq_error(
        403,
        "PERMISSION_DENIED",
        "rateLimitExceeded",
        "Exceeded rate limits: too many table update operations for this table",
    );
    // reason backendError is documented for 500/503; its message text is UNKNOWN
    let backend = bq_error(503, "UNAVAILABLE", "backendError", "UNKNOWN wording of a backendError");
    type Want = fn(&Result<Vec<pipeline_run_metrics::warehouse::Row>, WarehouseError>) -> bool;
    let table: Vec<((u16, Value), usize, Want)> = vec![
        (not_found, 1, |r| matches!(r, Err(WarehouseError::NotFound(m)) if m.contains("was not found"))),
        (invalid, 1, |r| matches!(r, Err(WarehouseError::Rejected(m)) if m.contains("Unrecognized name"))),
        (quota, 1, |r| matches!(r, Err(WarehouseError::Unavailable(m)) if m.contains("Quota exceeded"))),
        (rate, 2, |r| r.as_ref().is_ok_and(|rows| rows.len() == 3)),
        (backend, 2, |r| r.as_ref().is_ok_and(|rows| rows.len() == 3)),
    ];
    for (answer, calls, want) in table {
        let fake = Fake::default();
        fake.fail_next.lock().unwrap().push_back(answer.clone());
        let host = start(fake.clone()).await;
        let bq = BigQuery::emulator(&host, "data-proj", Duration::from_secs(10), reqwest::Client::new()).await.unwrap();
        let r = bq.query("SELECT status, v FROM t", &[]).await;
        assert!(want(&r), "{answer:?}: {r:?}");
        let queries = fake.calls.lock().unwrap().iter().filter(|c| c.starts_with("query")).count();
        assert_eq!(queries, calls, "{answer:?}");
    }
}
