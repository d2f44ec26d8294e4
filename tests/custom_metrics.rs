//! Custom metrics for ordinary pipelines (docs/catalogue.md, README "Extending"): match
//! rules with lists and globs of pipelines and statuses, and the run row's own columns as typed
//! query parameters and labels, end to end through HTTP against the BigQuery emulator (which
//! executes the queries with the parameters the function sends).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::app::{Answer, TestApp};
use common::bigquery::emulator_warehouse;
use common::fixtures::{record, seed};
use common::process::{BIN, Process};
use serde_json::{Value, json};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A Mage `pipeline_run` record with the columns `payload` sets (`id`, `started_at`, ...).
fn run(pipeline: &str, status: &str, payload: Value) -> Value {
    let mut r = record(pipeline, status, "2025-11-12T09:30:00Z", json!({}));
    for (k, v) in payload.as_object().unwrap() {
        r["payload"][k] = v.clone();
    }
    r
}

/// (name, labels, value) of every point.
fn points(ans: &Answer) -> Vec<(String, BTreeMap<String, String>, f64)> {
    ans.points.iter().map(|p| (p.name.clone(), p.labels.clone(), p.value)).collect()
}

/// A fresh directory for HANDLERS_DIR with `files` (name, contents) in it.
fn handlers_dir(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("custom-metrics-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/handlers");

/// The rows-loaded example alone (`[match] pipeline = ["load_*", "daily_export"]`, `status =
/// ["COMPLETED", "FAILED"]`) against the seeded ops_audit.load_audit.
async fn rows_loaded() -> TestApp {
    seed();
    TestApp::with_catalogue(
        Some(&["RowsLoadedHandler"]),
        Some(Path::new(EXAMPLES)),
        emulator_warehouse().await,
        1 << 20,
    )
    .await
}

fn rows(pipeline: &str, status: &str, target: &str, value: f64) -> (String, BTreeMap<String, String>, f64) {
    let l = labels(&[("pipeline", pipeline), ("status", status), ("target", target)]);
    ("etl/pipeline/rows_loaded".to_string(), l, value)
}

/// One handler for every pipeline of a glob and a list: the seeded audit rows are
/// load_orders run 30512: orders 1200 at 06:01:10, orders 800 at 06:03:00, order_items 5400
/// at 06:04:30; run 30513: orders 300; daily_export run 30520: exports 42; reload_orders run
/// 30530: orders 5.
#[tokio::test]
async fn one_handler_serves_every_matching_pipeline_and_status() {
    let app = rows_loaded().await;
    // a FAILED run of a pipeline of the glob
    let failed = run("load_orders", "FAILED", json!({"id": 30513, "started_at": "2025-11-12T07:00:00Z"}));
    let ans = app.push(&failed).await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert_eq!(points(&ans), [rows("load_orders", "FAILED", "orders", 300.0)]);
    // the pipeline named in the list
    let export = run("daily_export", "COMPLETED", json!({"id": 30520, "started_at": "2025-11-12T08:00:00Z"}));
    let ans = app.push(&export).await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert_eq!(points(&ans), [rows("daily_export", "COMPLETED", "exports", 42.0)]);
    // a pipeline outside the glob (it has audit rows) and a status outside the list: no point,
    // no query, no error
    for (pipeline, status, id) in [("reload_orders", "COMPLETED", 30530), ("load_orders", "RUNNING", 30512)] {
        let r = run(pipeline, status, json!({"id": id, "started_at": "2025-11-12T06:00:00Z"}));
        let ans = app.push(&r).await;
        assert_eq!(ans.status, 204, "{pipeline} {status}: {}", ans.body);
        assert!(ans.points.is_empty(), "{pipeline} {status}: {:?}", ans.points);
    }
}

/// `@started_at` reaches BigQuery as a TIMESTAMP and filters there: with the run started at
/// 06:02:00, the orders row of 06:01:10 is left out (800 remain) and order_items keeps 5400.
/// Debezium writes a `timestamp` column as epoch microseconds: the same instant gives the
/// same result.
#[tokio::test]
async fn row_timestamps_filter_in_bigquery_in_every_encoding() {
    let app = rows_loaded().await;
    for started in [json!("2025-11-12T06:02:00Z"), json!("2025-11-12 06:02:00"), json!(1762927320000000i64)] {
        let r = run("load_orders", "COMPLETED", json!({"id": 30512, "started_at": started}));
        let ans = app.push(&r).await;
        assert_eq!(ans.status, 204, "{started}: {}", ans.body);
        assert_eq!(
            points(&ans),
            [
                rows("load_orders", "COMPLETED", "order_items", 5400.0),
                rows("load_orders", "COMPLETED", "orders", 800.0)
            ],
            "{started}"
        );
    }
    // the run id as a text (a relay that writes every column as text) is still an INT64
    let r = run("load_orders", "COMPLETED", json!({"id": "30512", "started_at": "2025-11-12T06:00:00Z"}));
    let ans = app.push(&r).await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert_eq!(
        points(&ans),
        [rows("load_orders", "COMPLETED", "order_items", 5400.0), rows("load_orders", "COMPLETED", "orders", 2000.0)]
    );
}

/// An absent or NULL column, or one that is not of its declared type, is a 400 naming the
/// column as the field, before any query.
#[tokio::test]
async fn absent_null_and_mistyped_columns_are_a_400_naming_the_field() {
    let app = rows_loaded().await;
    let cases = [
        (
            json!({"id": 30512}),
            "payload.started_at",
            "No column 'started_at' in the pipeline_run row (input 'started_at').",
        ),
        (
            json!({"id": 30512, "started_at": null}),
            "payload.started_at",
            "Column 'started_at' is NULL in the pipeline_run row (input 'started_at').",
        ),
        (
            json!({"id": "run-7", "started_at": "2025-11-12T06:00:00Z"}),
            "payload.id",
            "Column 'id' of the pipeline_run row must be an integer (INT64) for @run_id; it is a text.",
        ),
        (
            json!({"id": 30512, "started_at": "yesterday"}),
            "payload.started_at",
            "Column 'started_at' of the pipeline_run row must be a timestamp: ISO-8601 text or epoch number (TIMESTAMP) for @started_at; it is a text.",
        ),
    ];
    for (payload, field, message) in cases {
        let ans = app.push(&run("load_orders", "COMPLETED", payload.clone())).await;
        assert_eq!(ans.status, 400, "{payload}: {}", ans.body);
        assert_eq!(ans.body["error"], "invalid_input", "{payload}");
        assert_eq!(ans.body["class"], "permanent", "{payload}");
        assert_eq!(ans.body["field"], field, "{payload}");
        assert_eq!(ans.body["message"], message, "{payload}");
        let failures: Vec<&str> = ans
            .points
            .iter()
            .filter(|p| p.name == "handler_execution_failure")
            .map(|p| p.labels["handler_class"].as_str())
            .collect();
        assert_eq!(failures, ["RowsLoadedHandler"], "{payload}");
    }
}

const ECHO_SQL: &str = "SELECT
  @pipeline AS pipeline_echo,
  @run_id + 1 AS run_id_plus_1,
  UNIX_SECONDS(TIMESTAMP_ADD(@started_at, INTERVAL 1 SECOND)) AS started_s_plus_1,
  @rows_target * 2 AS rows_target_twice,
  IF(@passed_sla, 1, 0) AS passed_sla
";

const ECHO_TOML: &str = r#"sql = "echo.sql"
[match]
pipeline = "echo_*"
status = "COMPLETED"
[[inputs]]
name = "pipeline"
type = "column"
column = "pipeline_uuid"
[[inputs]]
name = "run_id"
type = "column"
column = "id"
parameter_type = "INT64"
[[inputs]]
name = "started_at"
type = "column"
parameter_type = "TIMESTAMP"
[[inputs]]
name = "rows_target"
type = "column"
column = "variables.rows_target"
parameter_type = "FLOAT64"
[[inputs]]
name = "passed_sla"
type = "column"
parameter_type = "BOOL"
[[inputs]]
name = "owner"
type = "column"
column = "variables.team.owner"
if_missing = "skip"
[[metrics]]
name = "echo/run_id_plus_1"
value = "run_id_plus_1"
labels = { pipeline = "$pipeline", echo = { column = "pipeline_echo" }, started = "$started_at", run = "$run_id", owner = "$owner" }
[[metrics]]
name = "echo/started_s_plus_1"
value = "started_s_plus_1"
[[metrics]]
name = "echo/rows_target_twice"
value = "rows_target_twice"
[[metrics]]
name = "echo/passed_sla"
value = "passed_sla"
[[handler]]
name = "EchoHandler"
"#;

/// Each column parameter arrives in BigQuery with its type (the query does arithmetic that a
/// STRING would not allow) and its value, and the label values are the row's values.
#[tokio::test]
async fn row_columns_are_typed_parameters_and_labels() {
    let dir = handlers_dir("echo", &[("echo.toml", ECHO_TOML), ("echo.sql", ECHO_SQL)]);
    let app = TestApp::with_catalogue(Some(&["EchoHandler"]), Some(&dir), emulator_warehouse().await, 1 << 20).await;
    let r = run(
        "echo_daily",
        "COMPLETED",
        json!({"id": 41, "started_at": "2025-11-12T06:02:00.250Z", "passed_sla": true,
               "variables": {"rows_target": 1200, "team": {"owner": "data-eng"}}}),
    );
    let ans = app.push(&r).await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    // 2025-11-12T06:02:00Z is 1762927320 s after the epoch
    let first = labels(&[
        ("pipeline", "echo_daily"),
        ("echo", "echo_daily"),
        ("started", "2025-11-12T06:02:00.250Z"),
        ("run", "41"),
        ("owner", "data-eng"),
    ]);
    assert_eq!(
        points(&ans),
        [
            ("echo/run_id_plus_1".to_string(), first, 42.0),
            ("echo/started_s_plus_1".to_string(), BTreeMap::new(), 1762927321.0),
            ("echo/rows_target_twice".to_string(), BTreeMap::new(), 2400.0),
            ("echo/passed_sla".to_string(), BTreeMap::new(), 1.0),
        ]
    );
    // `if_missing = "skip"`: without the column the handler writes nothing and fails nothing
    let r = run(
        "echo_daily",
        "COMPLETED",
        json!({"id": 41, "started_at": "2025-11-12T06:02:00Z", "passed_sla": false, "variables": {"rows_target": 1}}),
    );
    let ans = app.push(&r).await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert!(ans.points.is_empty(), "{:?}", ans.points);
    // a pipeline outside `echo_*`
    let ans = app.push(&run("daily_echo", "COMPLETED", json!({"id": 1}))).await;
    assert_eq!((ans.status, ans.points.len()), (204, 0), "{}", ans.body);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An invalid glob stops the process at startup (and `--check`) with the file, the line and
/// the field.
#[test]
fn an_invalid_glob_is_a_startup_error_naming_file_line_and_field() {
    let toml = ECHO_TOML.replace("pipeline = \"echo_*\"", "pipeline = [\"echo_*\", \"load_[\"]");
    let dir = handlers_dir("bad-glob", &[("echo.toml", &toml), ("echo.sql", ECHO_SQL)]);
    let file = dir.join("echo.toml").display().to_string();
    let want = format!("{file}:3: [match] pipeline: invalid pattern 'load_[': unclosed character class");
    let e = pipeline_run_metrics::handlers::all(Some(&dir)).err().expect("an invalid glob");
    assert!(e.to_string().starts_with(&want), "{e}");
    let out = Process::new(BIN)
        .clean_env(&["PATH", "HOME"])
        .env("HANDLERS_DIR", &dir)
        .env("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")
        .arg("--check")
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&want), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The first catalogue's form (one `status` string, one `pipeline_uuid` per handler) keeps
/// its meaning: docs/catalogue.md's enriched-claims example matches its pipeline only.
#[test]
fn the_single_string_form_still_matches_one_pipeline_and_status() {
    let handlers = pipeline_run_metrics::handlers::all(Some(Path::new(EXAMPLES))).unwrap();
    let h = handlers.iter().find(|h| h.name() == "EnrichedClaimsApprovalHandler").unwrap();
    let event = |pipeline: &str, status: &str| {
        pipeline_run_metrics::decode::datastream::decode_ref(&run(pipeline, status, json!({}))).unwrap()
    };
    assert!(h.matches(&event("pipesv2_approval", "COMPLETED")));
    assert!(!h.matches(&event("pipesv2_approval_v2", "COMPLETED")));
    assert!(!h.matches(&event("pipesv2_approval", "FAILED")));
    assert_eq!(h.tables(), ["pipeline_run"]);
}
