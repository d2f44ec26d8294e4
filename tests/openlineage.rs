//! OpenLineage run events posted by the real OpenLineage Python client (openlineage-python, its
//! HTTP transport, installed by scripts/install-openlineage.sh) to `/api/v1/lineage`, as a
//! home-grown orchestrator would send them (examples/openlineage/emit.py): a pipeline run with two
//! tasks, one writing 1,200 rows (sent gzip-compressed), one failing with an error message.

mod common;

use std::sync::Arc;

use common::app::TestApp;
use common::fakes::warehouse::ScriptedWarehouse;
use pipeline_run_metrics::config::Secret;
use pipeline_run_metrics::facts::memory::Memory;
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, load};
use pipeline_run_metrics::ingress::http::Options;
use pipeline_run_metrics::pipeline::LifecycleParts;

const KEY: &str = "s3cr3t-lineage-key";

async fn app(key: Option<&str>, verify: bool) -> TestApp {
    let profiles = load(None, None).unwrap();
    let lifecycle = LifecycleParts {
        lifecycle: Arc::new(Lifecycle::new(profiles, common::METRIC_PROJECT, std::time::Duration::from_secs(600))),
        facts: Arc::new(Memory::new(1000)),
    };
    let mut options =
        Options { lifecycle: Some(lifecycle), lineage_api_key: key.map(|k| Secret(k.into())), ..Default::default() };
    if verify {
        let keys = pipeline_run_metrics::ingress::auth::Keys::Static(jsonwebtoken::jwk::JwkSet { keys: Vec::new() });
        options.verifier = Some(Arc::new(pipeline_run_metrics::ingress::auth::PushVerifier::new("aud", vec![], keys)));
    }
    let only: &[&str] = &["PipelineRunHandler"];
    TestApp::with_options(Some(only), None, Arc::new(ScriptedWarehouse::default()), options, None).await
}

fn python() -> String {
    let venv = std::env::var("OPENLINEAGE_VENV")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-openlineage").to_string());
    let py = format!("{venv}/bin/python");
    assert!(std::path::Path::new(&py).exists(), "{py} missing: run `make test` (or scripts/install-openlineage.sh)");
    py
}

/// Runs the example emitter against the app; its exit status and stderr.
async fn emit(app: &TestApp, key: &str) -> (bool, String) {
    let url = app.url.clone();
    let key = key.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/openlineage/emit.py"))
            .args([&url, &key])
            .output()
            .expect("run the emitter")
    })
    .await
    .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn a_home_grown_orchestrator_reports_its_runs() {
    let app = app(Some(KEY), false).await;
    let (ok, stderr) = emit(&app, KEY).await;
    assert!(ok, "the client's events were all accepted: {stderr}");
    let points = app.metrics.take_lines().iter().map(|l| common::app::parse_point(l)).collect::<Vec<_>>();
    let find = |name: &str, label: (&str, &str)| {
        points
            .iter()
            .filter(|p| p.name == name && p.labels.get(label.0).map(String::as_str) == Some(label.1))
            .collect::<Vec<_>>()
    };
    let run = |name: &str| find(name, ("pipeline", "etl/daily_load"));
    assert_eq!(run("pipeline.run.started").len(), 1);
    let finished = run("pipeline.run.finished");
    assert_eq!(finished.len(), 1);
    assert_eq!((finished[0].labels["result"].as_str(), finished[0].labels["status"].as_str()), ("failure", "FAIL"));
    assert_eq!(finished[0].labels["orchestrator"], "openlineage");
    // FAIL 06:00:40.5 - START 06:00:00.0 (eventTime)
    assert_eq!(run("pipeline.run.duration")[0].value, 40.5);
    let tasks = run("pipeline.task.finished");
    let mut results: Vec<(&str, &str)> =
        tasks.iter().map(|p| (p.labels["task"].as_str(), p.labels["result"].as_str())).collect();
    results.sort();
    assert_eq!(results, [("extract", "success"), ("load", "failure")]);
    let durations: Vec<(&str, f64)> =
        run("pipeline.task.duration").iter().map(|p| (p.labels["task"].as_str(), p.value)).collect();
    assert!(durations.contains(&("extract", 30.25)) && durations.contains(&("load", 8.0)), "{durations:?}");
    let records = run("pipeline.run.records");
    assert_eq!((records.len(), records[0].value, records[0].unit.as_str()), (1, 1200.0, "{record}"));
    for p in &points {
        assert!(p.labels.values().all(|v| !v.contains("alice@example.com") && !v.contains("duplicate key")), "{p:?}");
    }
}

#[tokio::test]
async fn the_api_key_is_required_when_set() {
    let app = app(Some(KEY), false).await;
    let (ok, _) = emit(&app, "wrong-key").await;
    assert!(!ok, "the client raises on the 401");
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/lineage", app.url);
    let r = http.post(&url).header("authorization", "Bearer nope").body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(!body.to_string().contains("nope"), "the key sent is not echoed: {body}");
    assert!(app.metrics.take_lines().is_empty());
}

#[tokio::test]
async fn with_push_authentication_on_the_endpoint_needs_a_key() {
    let app = app(None, true).await;
    let r = reqwest::Client::new().post(format!("{}/api/v1/lineage", app.url)).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("OPENLINEAGE_API_KEY"));
}

#[tokio::test]
async fn bad_events_get_precise_errors() {
    let app = app(None, false).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/lineage", app.url);
    let cases = [
        ("not json", 400, None),
        (r#"{"eventType":"START","run":{"runId":"r"},"job":{"namespace":"n","name":"j"}}"#, 400, Some("eventTime")),
        (
            r#"{"eventType":"START","eventTime":"2026-11-30T06:00:00Z","run":{},"job":{"namespace":"n","name":"j"}}"#,
            400,
            Some("run.runId"),
        ),
        (r#"{"eventTime":"2026-11-30T06:00:00Z","dataset":{"namespace":"n","name":"d"}}"#, 204, None),
        // a UTF-8 byte order mark before the JSON text is ignored (RFC 8259 §8.1), not a 400
        (
            "\u{feff}{\"eventTime\":\"2026-11-30T06:00:00Z\",\"dataset\":{\"namespace\":\"n\",\"name\":\"d\"}}",
            204,
            None,
        ),
        (
            "\u{feff}{\"eventType\":\"START\",\"eventTime\":\"2026-11-30T06:00:00Z\",\"run\":{},\"job\":{\"namespace\":\"n\",\"name\":\"j\"}}",
            400,
            Some("run.runId"),
        ),
    ];
    for (body, status, field) in cases {
        let r = http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        if let Some(f) = field {
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["field"], f, "{body}");
        }
    }
    let r = http.post(&url).header("content-encoding", "gzip").body("not gzip").send().await.unwrap();
    assert_eq!(r.status(), 400);
}
