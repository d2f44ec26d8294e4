//! Black-box tests through HTTP against the real Router and the BigQuery emulator: every delivery
//! format, the seed example of the local workflow, error answers and the ack policy.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::METRIC_PROJECT;
use common::app::{Answer, TestApp};
use common::fixtures::{event_file, seed};
use common::push::Push;
use pipeline_run_metrics::warehouse::WarehouseError;
use pipeline_run_metrics::warehouse::{BigQuery, Param, Row, TableRef, Warehouse};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn post_file(app: &TestApp, name: &str) -> Answer {
    let (headers, body) = event_file(name);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(&headers, body).await
}

fn wrangling_points() -> Vec<(String, BTreeMap<String, String>, f64)> {
    // Seed data of events/seed.json; the entity values are worked out by hand in docs/formats.md
    // ("Local seed"): providers new {c, d, e} of {a..e}, beneficiaries new {2, 4, 5, 6} of
    // {1..6}; latest/previous month 6/2 for both.
    let wl = labels(&[("approved", "false"), ("partner", "abertta")]);
    let p = |n: &str, v: f64| (n.to_string(), wl.clone(), v);
    vec![
        (
            "mageai/pipeline_run/count".to_string(),
            labels(&[("pipeline_uuid", "pipesv2_wrangling"), ("pipeline_status", "COMPLETED"), ("partner", "abertta")]),
            1.0,
        ),
        p("claims/pipeline/providers/new_pct_last_3_mo", 0.6),
        p("claims/pipeline/beneficiaries/new_pct_last_3_mo", 0.6666666666666666),
        p("claims/pipeline/providers/volume_ratio_last_1_mo", 3.0),
        p("claims/pipeline/beneficiaries/volume_ratio_last_1_mo", 3.0),
        p("claims/pipeline/filtered_pre/vl_pago/total", 1500.0),
        p("claims/pipeline/filtered_pre/vl_pago/relative", 0.15789473684210525),
        p("claims/pipeline/processable/vl_pago/total", 8000.0),
        p("claims/pipeline/processable/vl_pago/relative", 0.8421052631578947),
    ]
}

/// The complete wrangling example in every delivery format: the same points, in the same order.
#[tokio::test]
async fn seed_example_in_every_delivery_format() {
    seed();
    let app = TestApp::start(None).await;
    let ts = "2025-11-05T18:23:31.393000+00:00";
    for file in [
        "wrangling_complete.json",
        "pubsub_push_wrapped.json",
        "pubsub_push_snake_case.json",
        "pubsub_push_unwrapped.json",
        "cloudevent_binary.json",
        "cloudevent_structured.json",
    ] {
        let ans = post_file(&app, file).await;
        assert_eq!(ans.status, 204, "{file}: {}", ans.body);
        let got: Vec<_> = ans.points.iter().map(|p| (p.name.clone(), p.labels.clone(), p.value)).collect();
        assert_eq!(got, wrangling_points(), "{file}: points in emission order");
        for p in &ans.points {
            assert_eq!(p.timestamp, ts, "{file}");
            assert_eq!(p.project, METRIC_PROJECT, "{file}");
        }
    }
}

/// The reference's own example (handlers.md §10, §11, HEAD formula U / (U + P)): it lacks the
/// historical-table variables, so the four entity handlers fail with 400 while the pre-filtered
/// and processable points are still written.
#[tokio::test]
async fn reference_example_gets_the_documented_answer() {
    seed();
    let app = TestApp::start(None).await;
    let ans = post_file(&app, "pre_filtered_payload.json").await;
    assert_eq!(ans.status, 400, "{}", ans.body);
    assert_eq!(ans.body["message"], "No variable 'refined_processable_claims_historical_table' found in payload.");
    assert_eq!(ans.body["field"], "payload.variables.refined_processable_claims_historical_table");
    let failed: Vec<&str> =
        ans.body["failures"].as_array().unwrap().iter().map(|f| f["handler"].as_str().unwrap()).collect();
    assert_eq!(
        failed,
        [
            "NewProvidersWranglingHandler",
            "NewBeneficiariesWranglingHandler",
            "ProvidersVolumeRatioWranglingHandler",
            "BeneficiariesVolumeRatioWranglingHandler"
        ]
    );
    let good: Vec<_> = ans
        .points
        .iter()
        .filter(|p| p.name != "handler_execution_failure")
        .map(|p| (p.name.clone(), p.labels.clone(), p.value))
        .collect();
    let want: Vec<_> = wrangling_points().into_iter().filter(|(n, _, _)| !n.contains("last_")).collect();
    assert_eq!(good, want);
    let failures: Vec<&str> = ans
        .points
        .iter()
        .filter(|p| p.name == "handler_execution_failure")
        .map(|p| p.labels["handler_class"].as_str())
        .collect();
    assert_eq!(failures, failed);
}

/// `make local-test`'s complete example of every pipeline: 204 and every metric of the pipeline.
#[tokio::test]
async fn complete_example_of_every_pipeline() {
    seed();
    let app = TestApp::start(None).await;
    let entity = [
        "claims/pipeline/providers/new_pct_last_3_mo",
        "claims/pipeline/beneficiaries/new_pct_last_3_mo",
        "claims/pipeline/providers/volume_ratio_last_1_mo",
        "claims/pipeline/beneficiaries/volume_ratio_last_1_mo",
    ];
    let cases: [(&str, Vec<&str>); 6] = [
        (
            "wrangling_complete.json",
            [
                &entity[..],
                &[
                    "claims/pipeline/filtered_pre/vl_pago/total",
                    "claims/pipeline/filtered_pre/vl_pago/relative",
                    "claims/pipeline/processable/vl_pago/total",
                    "claims/pipeline/processable/vl_pago/relative",
                ],
            ]
            .concat(),
        ),
        (
            "approval_complete.json",
            [
                &entity[..],
                &[
                    "claims/pipeline/filtered_post/vl_glosa_arvo/total",
                    "claims/pipeline/filtered_post/vl_glosa_arvo/relative",
                    "claims/pipeline/filtered_pre/vl_pago/total",
                    "claims/pipeline/filtered_pre/vl_pago/relative",
                    "claims/pipeline/processable/vl_pago/total",
                    "claims/pipeline/processable/vl_pago/relative",
                    "claims/pipeline/savings/vl_glosa_arvo",
                    "claims/pipeline/savings/count",
                    "claims/glosa/approved/vl_glosa_arvo",
                ],
            ]
            .concat(),
        ),
        (
            "selection_complete.json",
            vec![
                "claims/pipeline/filtered_post/vl_glosa_arvo/total",
                "claims/pipeline/filtered_post/vl_glosa_arvo/relative",
            ],
        ),
        ("evaluation_complete.json", vec!["claims/pipeline/savings/vl_glosa_arvo", "claims/pipeline/savings/count"]),
        (
            "submission_complete.json",
            vec![
                "claims/pipeline/claims/vl_pago/sent_over_recv_last_2_days",
                "claims/pipeline/claims/vl_info/sent_over_recv_last_2_days",
                "claims/pipeline/savings/vl_glosa_arvo/sent_over_accepted_last_2_days",
                "claims/pipeline/savings/vl_glosa_arvo/sent_over_validation_last_2_days",
                "claims/pipeline/savings/vl_glosa_arvo/shared_id_fatura_sent_over_validation",
            ],
        ),
        ("release_complete.json", vec!["claims/pipeline/validation/vl_glosa_arvo/expired/total"]),
    ];
    for (file, metrics) in cases {
        let ans = post_file(&app, file).await;
        assert_eq!(ans.status, 204, "{file}: {}", ans.body);
        let got: std::collections::BTreeSet<&str> = ans.points.iter().map(|p| p.name.as_str()).collect();
        let mut want: std::collections::BTreeSet<&str> = metrics.into_iter().collect();
        want.insert("mageai/pipeline_run/count");
        assert_eq!(got, want, "{file}");
    }
}

/// The runs of the sample events are as long as real runs: `make local-test` shows their
/// `pipeline.run.duration`, queue wait and schedule delay, and a sample whose `started_at` was
/// copied from another sample days before its `completed_at` showed a run of 6 days.
#[test]
fn sample_runs_last_minutes_not_days() {
    use chrono::DateTime;
    use pipeline_run_metrics::decode::{Decoded, decode};
    let files = common::fixtures::sample_event_files();
    let mut checked = Vec::new();
    for file in &files {
        let (headers, body) = event_file(file);
        let Ok(Decoded::Records(delivery)) = decode(&common::fixtures::header_map(&headers), &body) else { continue };
        for run in delivery.records.iter().filter_map(|r| r.record.as_ref().ok()?.payload.as_ref()) {
            let time = |column: &str| {
                let text = run.row.get(column)?.as_str()?;
                Some(DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{file}: {column} {text}: {e}")))
            };
            if time("started_at").is_none() {
                continue;
            }
            for (from, to) in
                [("created_at", "started_at"), ("execution_date", "started_at"), ("started_at", "completed_at")]
            {
                if let (Some(a), Some(b)) = (time(from), time(to)) {
                    let seconds = (b - a).num_seconds();
                    assert!((0..=3600).contains(&seconds), "{file}: {from} {a} to {to} {b} is {seconds} s");
                }
            }
            if time("completed_at").is_some() {
                checked.push(file.as_str());
            }
        }
    }
    for sample in ["approval_complete.json", "evaluation_complete.json", "release_complete.json"] {
        assert!(checked.contains(&sample), "{sample} has a run with start and completion: {checked:?}");
    }
}

#[tokio::test]
async fn invalid_events_get_a_precise_4xx() {
    seed();
    let app = TestApp::start(None).await;
    let cases = [
        ("invalid_not_an_event.json", 400, "malformed_event", Some("body")),
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
    let mut answers = std::collections::HashMap::new();
    for (file, status, error, field) in cases {
        let ans = post_file(&app, file).await;
        assert_eq!(ans.status, status, "{file}: {}", ans.body);
        assert_eq!(ans.body["error"], error, "{file}: {}", ans.body);
        assert_eq!(ans.body["class"], "permanent", "{file}");
        assert_eq!(ans.body["field"].as_str(), field, "{file}: {}", ans.body);
        assert!(!ans.body["message"].as_str().unwrap_or("").is_empty(), "{file}");
        answers.insert(file, ans);
    }
    // The missing partner names both failed handlers and emits their failure gauges; the
    // count handler (which needs no partner) still counts the run.
    let ans = &answers["invalid_missing_partner.json"];
    assert_eq!(ans.body["message"], "Missing required 'partner' variable in payload.");
    let handlers: Vec<&str> =
        ans.body["failures"].as_array().unwrap().iter().map(|f| f["handler"].as_str().unwrap()).collect();
    let expected = [
        "NewProvidersWranglingHandler",
        "NewBeneficiariesWranglingHandler",
        "ProvidersVolumeRatioWranglingHandler",
        "BeneficiariesVolumeRatioWranglingHandler",
        "PreFilteredWranglingHandler",
        "ProcessableWranglingHandler",
    ];
    assert_eq!(handlers, expected);
    let names: Vec<(&str, Option<&String>)> =
        ans.points.iter().map(|p| (p.name.as_str(), p.labels.get("handler_class"))).collect();
    assert_eq!(names[0], ("mageai/pipeline_run/count", None));
    let failed: Vec<&str> = names[1..]
        .iter()
        .map(|(n, h)| {
            assert_eq!(*n, "handler_execution_failure");
            h.unwrap().as_str()
        })
        .collect();
    assert_eq!(failed, expected);
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

/// A person opening the service's URL is told where deliveries and readiness are, in JSON as
/// `/healthz` answers; a POST to `/` still takes deliveries.
#[tokio::test]
async fn get_root_points_to_post_and_healthz() {
    let app = TestApp::start(None).await;
    let r = reqwest::get(format!("{}/", app.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["deliveries"], "POST /");
    assert_eq!(body["health"], "GET /healthz");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("POST") && message.contains("/healthz"), "{message}");
    // other methods on / are still refused
    let r = reqwest::Client::new().put(format!("{}/", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
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
        common::bigquery::emulator(),
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
    let ans = post_file(&app, "wrangling_complete.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    // 4 tables checked once each (shared by 6 handlers), 2 queries (each shared by its families)
    assert_eq!(counting.calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn bigquery_unreachable_is_transient_503() {
    // Nothing listens on port 1: connection refused, like BigQuery being unreachable.
    let down =
        BigQuery::emulator("127.0.0.1:1", "test-project", std::time::Duration::from_secs(5), reqwest::Client::new())
            .await
            .unwrap();
    let app = TestApp::with_warehouse(None, Arc::new(down), 1 << 20).await;
    let ans = post_file(&app, "wrangling_complete.json").await;
    assert_eq!(ans.status, 503, "{}", ans.body);
    assert_eq!(ans.body["class"], "transient");
    assert_eq!(ans.body["error"], "bigquery_unavailable");
    let failures: Vec<&str> = ans
        .points
        .iter()
        .filter(|p| p.name == "handler_execution_failure")
        .map(|p| p.labels["error_class"].as_str())
        .collect();
    assert_eq!(failures, ["transient"; 6], "every query handler of the wrangling event");
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
    // 6,144 zero bytes: "A" × 8,192 in base64
    let body = Push::new(vec![0u8; 6144]).message_id("1").without_subscription().body();
    let ans = app.post(&[("content-type", "application/json")], body).await;
    assert_eq!(ans.status, 413, "{}", ans.body);
    assert_eq!(ans.body["error"], "payload_too_large");
}

/// A body far over the limit, sent without `Expect: 100-continue` by a client that writes it
/// all before it reads (curl, Python's http.client), gets its 413 answer: the function answered
/// and closed while the client was still sending, the kernel reset the connection, and the
/// client saw "connection reset" (a trial, 14 MiB to the real binary).
#[tokio::test]
async fn a_body_far_over_the_limit_gets_its_413_not_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app =
        TestApp::with_warehouse(None, Arc::new(common::fakes::warehouse::ScriptedWarehouse::default()), 4096).await;
    let addr = app.url.trim_start_matches("http://").to_string();
    for chunked in [false, true] {
        let size = 16 << 20;
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let length = if chunked { "transfer-encoding: chunked".to_string() } else { format!("content-length: {size}") };
        let head = format!(
            "POST / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\n{length}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let piece = vec![b' '; 64 << 10];
        let mut sent = 0;
        while sent < size {
            let wrote = if chunked {
                let mut c = format!("{:x}\r\n", piece.len()).into_bytes();
                c.extend_from_slice(&piece);
                c.extend_from_slice(b"\r\n");
                s.write_all(&c).await
            } else {
                s.write_all(&piece).await
            };
            wrote.unwrap_or_else(|e| panic!("chunked {chunked}: the connection broke after {sent} bytes: {e}"));
            sent += piece.len();
        }
        if chunked {
            s.write_all(b"0\r\n\r\n").await.unwrap();
        }
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap_or_else(|e| panic!("chunked {chunked}: no answer: {e}"));
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 413"), "chunked {chunked}: {text}");
        assert!(text.contains("payload_too_large"), "chunked {chunked}: {text}");
    }
}

/// handlers.md §8 budget: the reference sends 23 existence checks and 12 queries for an approval
/// event; here each table is checked once per event and families that read the same tables
/// share one query.
#[tokio::test]
async fn approval_event_bigquery_requests() {
    seed();
    let counting =
        Arc::new(Counting { inner: common::bigquery::emulator_warehouse().await, calls: AtomicUsize::new(0) });
    let app = TestApp::with_warehouse(None, counting.clone(), 1 << 20).await;
    let ans = post_file(&app, "approval_complete.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    // 7 distinct tables checked (unprocessable, processable, excluded, selected savings, savings,
    // 2 historical) + 5 queries (claims_paid, post_filtered, selected_savings, savings,
    // claims_entities) for 9 query handlers
    assert_eq!(counting.calls.load(Ordering::SeqCst), 7 + 5);
}
