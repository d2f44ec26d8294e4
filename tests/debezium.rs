//! Debezium change events reach the function as Debezium Server's HTTP sink posts them (one per
//! POST: the envelope, with its schema, or flattened), as a CloudEvent from Debezium's CloudEvents
//! converter, or inside a Pub/Sub message; the claim handlers and the lifecycle profiles read
//! them as they read Datastream records. Fixtures: events/debezium/ (README there).

mod common;

use std::sync::Arc;

use common::app::{Answer, TestApp};
use common::fakes::warehouse::ScriptedWarehouse;
use common::fixtures::event_file;
use common::push::push_body;
use pipeline_run_metrics::facts::memory::Memory;
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, load};
use pipeline_run_metrics::ingress::http::Options;
use pipeline_run_metrics::pipeline::LifecycleParts;

async fn app() -> TestApp {
    let profiles = load(None, Some(&["mage".to_string()])).unwrap();
    let lifecycle = LifecycleParts {
        lifecycle: Arc::new(Lifecycle::new(profiles, common::METRIC_PROJECT, std::time::Duration::from_secs(600))),
        facts: Arc::new(Memory::new(1000)),
    };
    let options = Options { lifecycle: Some(lifecycle), ..Default::default() };
    let only: &[&str] = &["PipelineRunHandler"];
    TestApp::with_options(Some(only), None, Arc::new(ScriptedWarehouse::default()), options, None).await
}

async fn post_file(app: &TestApp, name: &str) -> Answer {
    let (headers, body) = event_file(name);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(&headers, body).await
}

fn names(a: &Answer) -> Vec<String> {
    let mut n: Vec<String> = a.points.iter().map(|p| p.name.clone()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn every_debezium_form_is_a_change_record() {
    let app = app().await;
    // Each file is a COMPLETED pipeline_run of its own row id (4187, 4187 at a later LSN, 4188,
    // 4189): the reference's count gauge, plus the lifecycle facts of a finished run.
    let mut finished = 0;
    for file in [
        "debezium/http_envelope.json",
        "debezium/http_with_schema.json",
        "debezium/http_flattened.json",
        "debezium/cloudevent_structured.json",
    ] {
        let ans = post_file(&app, file).await;
        assert_eq!(ans.status, 204, "{file}: {}", ans.body);
        let count =
            ans.points.iter().find(|p| p.name == "mageai/pipeline_run/count").unwrap_or_else(|| panic!("{file}"));
        assert_eq!(count.labels["pipeline_uuid"], "pipesv2_wrangling", "{file}");
        assert_eq!(count.labels["pipeline_status"], "COMPLETED", "{file}");
        assert_eq!(count.labels["partner"], "abertta", "{file}: the JSON column arrives as text");
        finished += ans.points.iter().filter(|p| p.name == "pipeline.run.finished").count();
    }
    // rows 4187 (twice: the same run, touched again), 4188, 4189: three runs finished
    assert_eq!(finished, 3);
    // the three HTTP-sink posts are counted as direct deliveries, not as Pub/Sub pushes
    let counts = app.app.event_counts();
    assert_eq!(counts.get(&("direct".to_string(), "ok".to_string())), Some(&3), "{counts:?}");
    assert!(!counts.keys().any(|(format, _)| format == "pubsub_unwrapped"), "{counts:?}");
}

#[tokio::test]
async fn the_envelope_values_are_read_as_debezium_writes_them() {
    let app = app().await;
    let ans = post_file(&app, "debezium/http_envelope.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert_eq!(
        names(&ans),
        [
            "mageai/pipeline_run/count",
            "pipeline.cdc.lag",
            "pipeline.run.duration",
            "pipeline.run.finished",
            "pipeline.run.queue_wait",
            "pipeline.run.schedule_delay",
            "pipeline.run.started",
        ]
    );
    let value = |n: &str| ans.points.iter().find(|p| p.name == n).unwrap().value;
    // completed_at 18:23:31.390 - started_at 18:20:05.901
    assert_eq!(value("pipeline.run.duration"), 205.489);
    // processing ts_us 1762367011455002 - source ts_us 1762367011393512
    assert_eq!(value("pipeline.cdc.lag"), 0.06149);
    // the count gauge is timed by the commit (source.ts_us)
    let count = ans.points.iter().find(|p| p.name == "mageai/pipeline_run/count").unwrap();
    assert_eq!(count.timestamp, "2025-11-05T18:23:31.393512+00:00");
}

#[tokio::test]
async fn a_debezium_event_inside_a_pubsub_message() {
    let app = app().await;
    let (_, body) = event_file("debezium/http_envelope.json");
    let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ans = app.post(&[("content-type", "application/json")], push_body(&record, "m-dbz")).await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert!(ans.points.iter().any(|p| p.name == "pipeline.run.finished"));
}

#[tokio::test]
async fn snapshot_reads_are_history() {
    let app = app().await;
    let ans = post_file(&app, "debezium/http_snapshot.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert!(ans.points.is_empty(), "{:?}", names(&ans));
}

#[tokio::test]
async fn bad_debezium_events_name_the_field() {
    let app = app().await;
    let (_, body) = event_file("debezium/http_envelope.json");
    let mut bad: serde_json::Value = serde_json::from_slice(&body).unwrap();
    bad["op"] = "x".into();
    let ans = app.post(&[("content-type", "application/json")], bad.to_string()).await;
    assert_eq!(ans.status, 400);
    assert_eq!(ans.body["field"], "op");
    assert!(ans.body["message"].as_str().unwrap().contains("expected c, u, d, r, t or m"), "{}", ans.body);
    // the JSON converter's wrapper around no event: its payload is at fault, not a missing
    // Datastream source_timestamp
    let ans = app.post(&[("content-type", "application/json")], r#"{"schema":{},"payload":"x"}"#.to_string()).await;
    assert_eq!((ans.status, &ans.body["field"]), (400, &serde_json::json!("payload")), "{}", ans.body);
}

/// A bad column is named where the posted event has it: `after.` in the envelope,
/// `payload.after.` inside the JSON converter's schema wrapper, top-level when flattened (the
/// columns are the event's own members); a CloudEvent's data is the envelope. Both a decode
/// error (variables that are not a JSON object) and a handler's (a `partner` variable that is a
/// list, refused by PipelineRunHandler) follow the row.
#[tokio::test]
async fn row_errors_name_the_column_where_the_event_has_it() {
    let app = app().await;
    for (file, at, row) in [
        ("debezium/http_envelope.json", "/after/variables", "after."),
        ("debezium/http_with_schema.json", "/payload/after/variables", "payload.after."),
        ("debezium/http_flattened.json", "/variables", ""),
        ("debezium/cloudevent_structured.json", "/data/after/variables", "after."),
    ] {
        let (headers, body) = event_file(file);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for (variables, status, field, words) in [
            ("not json", 400, format!("{row}variables"), format!("{row}variables must be a JSON object")),
            (r#"{"partner": ["a"]}"#, 400, format!("{row}variables.partner"), "must be a string or a number".into()),
        ] {
            let mut bad = event.clone();
            *bad.pointer_mut(at).unwrap_or_else(|| panic!("{file}: {at}")) = variables.into();
            let ans = app.post(&headers, bad.to_string()).await;
            assert_eq!(ans.status, status, "{file} {variables}: {}", ans.body);
            let text = ans.body.to_string();
            assert!(text.contains(&format!("\"field\":\"{field}\"")), "{file} {variables}: {text}");
            assert!(text.contains(&words), "{file} {variables}: {text}");
            if !row.starts_with("payload") {
                assert!(!text.contains("payload."), "{file} {variables}: {text}");
            }
        }
    }
}

/// A lifecycle row refused for a corrupt column (a completed_at that is no time, which was read
/// as null and measured the duration to the commit time; a start after the end) is a 400 naming
/// the column where the envelope has it, `after.<column>`, with no lifecycle point written.
#[tokio::test]
async fn corrupt_lifecycle_columns_are_named_in_the_envelope() {
    let app = app().await;
    let (headers, body) = event_file("debezium/http_envelope.json");
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for (column, value, field, message) in [
        (
            "completed_at",
            "garbage",
            "after.completed_at",
            "The pipeline_run row's completed_at is not a time (an ISO-8601 text or an epoch number); it is a text: the row is corrupt, none of its facts is counted.",
        ),
        (
            "started_at",
            "2025-11-05T18:23:31.391Z",
            "after.started_at",
            "The pipeline_run row's started_at (2025-11-05T18:23:31.391+00:00) is after its completed_at (2025-11-05T18:23:31.390+00:00) in status COMPLETED: the row is corrupt, none of its facts is counted.",
        ),
    ] {
        let mut bad = event.clone();
        bad["after"][column] = value.into();
        let ans = app.post(&headers, bad.to_string()).await;
        assert_eq!(ans.status, 400, "{column}: {}", ans.body);
        assert_eq!(
            (ans.body["error"].as_str(), ans.body["class"].as_str()),
            (Some("invalid_input"), Some("permanent"))
        );
        assert_eq!(ans.body["field"], field, "{}", ans.body);
        assert_eq!(ans.body["message"], message, "{}", ans.body);
        assert!(!ans.points.iter().any(|p| p.name.starts_with("pipeline.")), "{column}: no lifecycle point");
    }
}

/// A truncate and a logical message carry no row: Debezium writes them without `before` and
/// `after` (a message with its `{"prefix", "content"}` as `message`), and they are ignored (204)
/// as formats.md says. The message was read as a Pub/Sub push body ("Pub/Sub message without
/// data"), the truncate as no delivery at all, the wrapped message as a Datastream record.
/// A flattened event without `__table` (add.fields without table) is refused naming it: its
/// lifecycle facts were skipped silently.
#[tokio::test]
async fn rowless_events_are_ignored_and_a_flattened_event_needs_its_table() {
    let app = app().await;
    let source = serde_json::json!({"version": "3.2.0.Final", "connector": "postgresql", "name": "mage",
        "ts_ms": 1762367011393i64, "snapshot": "false", "db": "mage", "schema": "public", "table": "pipeline_run",
        "txId": 556, "lsn": 24023130});
    let message = serde_json::json!({"op": "m", "ts_ms": 1762367011455i64, "source": source,
        "message": {"prefix": "audit", "content": "aGVsbG8="}});
    let truncate = serde_json::json!({"op": "t", "ts_ms": 1762367011455i64, "source": source});
    let wrapped = serde_json::json!({"schema": {"type": "struct"}, "payload": message});
    for event in [message, truncate, wrapped] {
        let ans = app.post(&[("content-type", "application/json")], event.to_string()).await;
        assert_eq!(ans.status, 204, "{event}: {}", ans.body);
        assert!(ans.points.is_empty(), "{event}: {:?}", names(&ans));
    }
    let (_, body) = event_file("debezium/http_flattened.json");
    let mut flat: serde_json::Value = serde_json::from_slice(&body).unwrap();
    flat.as_object_mut().unwrap().remove("__table");
    let ans = app.post(&[("content-type", "application/json")], flat.to_string()).await;
    assert_eq!((ans.status, &ans.body["field"]), (400, &serde_json::json!("__table")), "{}", ans.body);
}
