//! Faults found by trying the function as its users do: backfill rows handled as if the run had
//! just changed, and Cloud Storage events recognised on only one delivery route.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::app::{Answer, TestApp};
use common::fakes::warehouse::ScriptedWarehouse;
use common::fixtures::event_file;
use pipeline_run_metrics::config::Delivery;
use pipeline_run_metrics::ingress::http::Options;

const WRANGLING: &[&str] = &["PipelineRunHandler", "PreFilteredWranglingHandler", "ProcessableWranglingHandler"];

async fn app(wh: Arc<ScriptedWarehouse>, process_history: bool) -> TestApp {
    let options = Options { delivery: Delivery { process_history, ..Default::default() }, ..Default::default() };
    TestApp::with_options(Some(WRANGLING), None, wh, options, None).await
}

async fn post_file(app: &TestApp, name: &str) -> Answer {
    let (headers, body) = event_file(name);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(&headers, body).await
}

/// A Datastream backfill re-reads every row when a stream starts: the run in
/// events/backfill_wrangling_complete.json finished on 2025-11-05 and was re-read on 2026-02-10.
/// By default it runs no query and writes no point.
#[tokio::test]
async fn a_backfill_record_is_history_and_runs_nothing() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let app = app(wh.clone(), false).await;
    let ans = post_file(&app, "backfill_wrangling_complete.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert!(ans.points.is_empty(), "no point for a history record: {:?}", ans.points);
    assert_eq!(wh.queries.load(Ordering::SeqCst), 0, "no claim query for a history record");
    let counts = app.app.event_counts();
    assert_eq!(counts.get(&("cloudevent_structured".to_string(), "history".to_string())), Some(&1), "{counts:?}");
    // the live record of the same run is processed as before
    let live = post_file(&app, "wrangling_complete.json").await;
    assert_eq!(live.status, 204, "{}", live.body);
    assert_eq!(live.points.len(), 5, "{:?}", live.points);
}

/// With PROCESS_HISTORY the record is processed, timed by the row (completed_at), not by the
/// backfill's read time.
#[tokio::test]
async fn process_history_uses_the_rows_own_time() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let app = app(wh.clone(), true).await;
    let ans = post_file(&app, "backfill_wrangling_complete.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert_eq!(ans.points.len(), 5, "{:?}", ans.points);
    for p in &ans.points {
        assert_eq!(p.timestamp, "2025-11-05T18:23:31.390000+00:00", "{}: completed_at of the row", p.name);
    }
    assert!(wh.queries.load(Ordering::SeqCst) > 0);
}

/// Field case c06: an Eventarc Cloud Storage event (binary or structured CloudEvent) is the same
/// notification as a Pub/Sub bucket notification, and is recognised as one on every route: here,
/// without a way to read Cloud Storage, each says so with a 503 (tests/storage.rs reads them from
/// a Cloud Storage emulator).
#[tokio::test]
async fn cloud_storage_events_are_recognised_on_every_route() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let app = app(wh.clone(), false).await;
    for file in
        ["gcs_notification_push.json", "gcs_finalized_eventarc_binary.json", "gcs_finalized_eventarc_structured.json"]
    {
        let ans = post_file(&app, file).await;
        assert_eq!(ans.status, 503, "{file}: {}", ans.body);
        assert_eq!(ans.body["error"], "source_unavailable", "{file}");
        let message = ans.body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("Cloud Storage notifications need STORAGE_EMULATOR_HOST"), "{file}: {message}");
    }
    assert_eq!(wh.queries.load(Ordering::SeqCst), 0);
}
