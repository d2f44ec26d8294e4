//! Black-box tests through HTTP against the real Router and the BigQuery emulator: every delivery
//! format, the seed example of the local workflow, error answers and the ack policy.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Answer, METRIC_PROJECT, TestApp, event_file, seed};
use pipeline_run_metrics::bigquery::{BigQuery, Param, Row, TableRef, Warehouse};
use pipeline_run_metrics::error::WarehouseError;
use serde_json::json;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn post_file(app: &TestApp, name: &str) -> Answer {
    let (headers, body) = event_file(name);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(&headers, body).await
}

/// The seed example (handlers.md §10, §11 with the HEAD formula): every delivery format carries
/// the same record and must give exactly these points.
#[tokio::test]
async fn seed_example_in_every_delivery_format() {
    seed();
    let app = TestApp::start(None).await;
    let ts = "2025-11-05T18:23:31.393000+00:00";
    let wl = labels(&[("approved", "false"), ("partner", "abertta")]);
    let want = vec![
        (
            "mageai/pipeline_run/count".to_string(),
            labels(&[("pipeline_uuid", "pipesv2_wrangling"), ("pipeline_status", "COMPLETED"), ("partner", "abertta")]),
            1.0,
        ),
        ("claims/pipeline/filtered_pre/vl_pago/total".to_string(), wl.clone(), 1500.0),
        ("claims/pipeline/filtered_pre/vl_pago/relative".to_string(), wl.clone(), 0.15789473684210525),
        ("claims/pipeline/processable/vl_pago/total".to_string(), wl.clone(), 8000.0),
        ("claims/pipeline/processable/vl_pago/relative".to_string(), wl.clone(), 0.8421052631578947),
    ];
    for file in [
        "pre_filtered_payload.json",
        "pubsub_push_wrapped.json",
        "pubsub_push_snake_case.json",
        "pubsub_push_unwrapped.json",
        "cloudevent_binary.json",
        "cloudevent_structured.json",
    ] {
        let ans = post_file(&app, file).await;
        assert_eq!(ans.status, 204, "{file}: {}", ans.body);
        let got: Vec<_> = ans.points.iter().map(|p| (p.name.clone(), p.labels.clone(), p.value)).collect();
        assert_eq!(got, want, "{file}: points in emission order");
        for p in &ans.points {
            assert_eq!(p.timestamp, ts, "{file}");
            assert_eq!(p.project, METRIC_PROJECT, "{file}");
        }
    }
}

#[tokio::test]
async fn invalid_events_get_a_precise_4xx() {
    seed();
    let app = TestApp::start(None).await;
    let cases = [
        ("invalid_not_an_event.json", 400, "malformed_event", None),
        ("invalid_bad_base64.json", 400, "malformed_event", Some("message.data")),
        ("invalid_batch.json", 415, "unsupported_media_type", Some("header content-type")),
        ("invalid_missing_partner.json", 400, "invalid_input", Some("payload.variables.partner")),
        (
            "invalid_table_reference.json",
            400,
            "invalid_table_reference",
            Some("payload.variables.refined_processable_claims_output_table"),
        ),
    ];
    for (file, status, error, field) in cases {
        let ans = post_file(&app, file).await;
        assert_eq!(ans.status, status, "{file}: {}", ans.body);
        assert_eq!(ans.body["error"], error, "{file}: {}", ans.body);
        assert_eq!(ans.body["class"], "permanent", "{file}");
        assert_eq!(ans.body["field"].as_str(), field, "{file}: {}", ans.body);
        assert!(!ans.body["message"].as_str().unwrap_or("").is_empty(), "{file}");
    }
    // The missing partner names both failed handlers and emits their failure gauges; the
    // count handler (which needs no partner) still counts the run.
    let ans = post_file(&app, "invalid_missing_partner.json").await;
    assert_eq!(ans.body["message"], "Missing required 'partner' variable in payload.");
    let handlers: Vec<&str> =
        ans.body["failures"].as_array().unwrap().iter().map(|f| f["handler"].as_str().unwrap()).collect();
    assert_eq!(handlers, ["PreFilteredWranglingHandler", "ProcessableWranglingHandler"]);
    let names: Vec<(&str, Option<&String>)> =
        ans.points.iter().map(|p| (p.name.as_str(), p.labels.get("handler_class"))).collect();
    assert_eq!(
        names,
        [
            ("mageai/pipeline_run/count", None),
            ("handler_execution_failure", Some(&"PreFilteredWranglingHandler".to_string())),
            ("handler_execution_failure", Some(&"ProcessableWranglingHandler".to_string())),
        ]
    );
    assert!(ans.points[1..].iter().all(|p| p.labels.get("error_class").map(String::as_str) == Some("permanent")));
}

#[tokio::test]
async fn non_matching_events_are_acknowledged() {
    let app = TestApp::start(None).await;
    let ans = post_file(&app, "nonmatching_running.json").await;
    assert_eq!(ans.status, 204);
    assert_eq!(ans.points.len(), 1);
    assert_eq!(ans.points[0].name, "mageai/pipeline_run/count");
    assert_eq!(ans.points[0].labels["pipeline_status"], "RUNNING");
    for file in ["nonmatching_block_run.json", "nonmatching_delete_without_payload.json"] {
        let ans = post_file(&app, file).await;
        assert_eq!(ans.status, 204, "{file}: {}", ans.body);
        assert!(ans.points.is_empty(), "{file}: {:?}", ans.points);
    }
}

#[tokio::test]
async fn healthz_answers_when_ready() {
    let app = TestApp::start(None).await;
    let r = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

/// Counts the calls that reach the warehouse.
struct Counting {
    inner: Arc<dyn Warehouse>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Warehouse for Counting {
    async fn table_exists(&self, t: &TableRef) -> Result<bool, WarehouseError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.table_exists(t).await
    }
    async fn query(&self, sql: &str, params: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.query(sql, params).await
    }
}

#[tokio::test]
async fn an_invalid_table_reference_stops_every_query_of_the_event() {
    let inner = BigQuery::emulator(
        common::emulator(),
        common::DATA_PROJECT,
        std::time::Duration::from_secs(30),
        reqwest::Client::new(),
    )
    .await
    .unwrap();
    let counting = Arc::new(Counting { inner: Arc::new(inner), calls: AtomicUsize::new(0) });
    let app = TestApp::with_warehouse(None, counting.clone(), 1 << 20).await;
    let ans = post_file(&app, "invalid_table_reference.json").await;
    assert_eq!(ans.status, 400);
    assert_eq!(counting.calls.load(Ordering::SeqCst), 0, "no BigQuery call may be made");
    // ... while a valid event does reach BigQuery through the same wrapper
    seed();
    let ans = post_file(&app, "pre_filtered_payload.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert_eq!(counting.calls.load(Ordering::SeqCst), 3, "2 existence checks + 1 shared query");
}

#[tokio::test]
async fn bigquery_unreachable_is_transient_503() {
    // Nothing listens on port 1: connection refused, like BigQuery being unreachable.
    let down =
        BigQuery::emulator("127.0.0.1:1", "test-project", std::time::Duration::from_secs(5), reqwest::Client::new())
            .await
            .unwrap();
    let app = TestApp::with_warehouse(None, Arc::new(down), 1 << 20).await;
    let ans = post_file(&app, "pre_filtered_payload.json").await;
    assert_eq!(ans.status, 503, "{}", ans.body);
    assert_eq!(ans.body["class"], "transient");
    assert_eq!(ans.body["error"], "bigquery_unavailable");
    let failures: Vec<&str> = ans
        .points
        .iter()
        .filter(|p| p.name == "handler_execution_failure")
        .map(|p| p.labels["error_class"].as_str())
        .collect();
    assert_eq!(failures, ["transient", "transient"]);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = TestApp::with_warehouse(
        None,
        Arc::new(
            BigQuery::emulator("127.0.0.1:1", "p", std::time::Duration::from_secs(1), reqwest::Client::new())
                .await
                .unwrap(),
        ),
        4096,
    )
    .await;
    let body = json!({"message": {"data": "A".repeat(8192), "messageId": "1"}}).to_string();
    let ans = app.post(&[("content-type", "application/json")], body).await;
    assert_eq!(ans.status, 413, "{}", ans.body);
    assert_eq!(ans.body["error"], "payload_too_large");
}
