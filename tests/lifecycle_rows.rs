//! Rows the lifecycle profiles refuse, and times they leave out (docs/metrics.md, "Rows refused,
//! and times left out"; src/handlers/lifecycle/check.rs), through every built-in profile at once,
//! as the service loads them. Expected values are computed from the rules and the times written in
//! each row; messages are the exact texts an answer carries.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::lifecycle::all_profiles;
use pipeline_run_metrics::decode::{self, ChangeEvent};
use pipeline_run_metrics::error::ErrorClass;
use pipeline_run_metrics::facts::memory::Memory;
use pipeline_run_metrics::handlers::HandlerError;
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, names};
use serde_json::{Value, json};

/// The commit time of every change below.
const COMMIT: &str = "2026-11-30T12:00:10Z";

fn change(table: &str, row: &Value) -> ChangeEvent {
    decode::record(json!({"source_timestamp": COMMIT, "stream_name": "s",
        "source_metadata": {"schema": "public", "table": table, "lsn": "0/10"}, "payload": row}))
    .unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The facts (name, value) of one change, in a fresh fact memory, delivered a second after its
/// commit (young enough to wait for a parent row).
async fn facts(lc: &Lifecycle, table: &str, row: &Value) -> Result<Vec<(String, f64)>, HandlerError> {
    let store = Memory::new(100);
    let d = lc.derive(&change(table, row), &store, at(COMMIT) + Duration::seconds(1)).await?;
    let mut out: Vec<(String, f64)> =
        d.points.iter().filter(|p| p.name != names::CDC_LAG).map(|p| (p.name.clone(), p.value)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn with(mut row: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        row[k] = v.clone();
    }
    row
}

/// A COMPLETED Mage run: created 12:00:00, due 12:00:01, started 12:00:04, completed 12:00:09.
fn mage_run() -> Value {
    json!({"id": 7, "pipeline_uuid": "p", "status": "COMPLETED", "created_at": "2026-11-30T12:00:00Z",
           "execution_date": "2026-11-30T12:00:01Z", "started_at": "2026-11-30T12:00:04Z",
           "completed_at": "2026-11-30T12:00:09Z", "backfill_id": null, "passed_sla": false, "variables": {}})
}

fn expected(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A refusal for good, before anything is reserved: permanent `invalid_input` naming the column.
fn assert_refused(got: Result<Vec<(String, f64)>, HandlerError>, field: &str, message: &str) {
    let e = got.expect_err(field);
    assert_eq!((e.kind(), e.class()), ("invalid_input", ErrorClass::Permanent), "{e}");
    assert_eq!(e.field(), Some(field), "{e}");
    assert_eq!(e.to_string(), message);
}

/// Finding 1: a Mage run's execution_date is a logical date. A backfill of any date (1999, four
/// days ahead) keeps every fact but those measured from it: queue wait runs from created_at
/// (12:00:04 - 12:00:00 = 4 s), no schedule delay. A scheduled run is measured as before: queue
/// wait from the later of created_at and execution_date (12:00:04 - 12:00:01 = 3 s), schedule
/// delay from execution_date (3 s); one whose execution_date is out of range (1999, four days
/// ahead) has its queue wait from created_at and no schedule delay (a second trial's 1970 date
/// gave 57 years).
#[tokio::test]
async fn a_mage_run_of_any_logical_date_keeps_its_facts() {
    let lc = all_profiles();
    let old = "1999-06-01T00:00:00Z";
    let ahead = (Utc::now() + Duration::days(4)).to_rfc3339();
    let common = [(names::RUN_STARTED, 1.0), (names::RUN_FINISHED, 1.0), (names::RUN_DURATION, 5.0)];
    let mut normal = common.to_vec();
    normal.extend([(names::RUN_QUEUE_WAIT, 3.0), (names::RUN_SCHEDULE_DELAY, 3.0)]);
    let mut backfill = common.to_vec();
    backfill.push((names::RUN_QUEUE_WAIT, 4.0));
    let cases = [
        ("normal", mage_run(), normal),
        ("backfill of 1999", with(mage_run(), json!({"backfill_id": 7, "execution_date": old})), backfill.clone()),
        (
            "backfill 4 days ahead",
            with(mage_run(), json!({"backfill_id": 7, "execution_date": ahead})),
            backfill.clone(),
        ),
        ("scheduled, 1999", with(mage_run(), json!({"execution_date": old})), backfill.clone()),
        ("scheduled, 1970", with(mage_run(), json!({"execution_date": "1970-01-01T00:00:00Z"})), backfill.clone()),
        ("scheduled, 4 days ahead", with(mage_run(), json!({"execution_date": ahead})), backfill),
    ];
    for (name, row, want) in cases {
        assert_eq!(facts(&lc, "pipeline_run", &row).await.unwrap(), expected(&want), "{name}");
    }
}

/// Finding 2: a time column the profile reads that is present, not null and no time is a 400
/// naming it, in every profile (it was read as null: starts and waits dropped, durations measured
/// to the commit time, schedule delays dropped).
#[tokio::test]
async fn a_time_column_that_is_no_time_is_refused_naming_it() {
    let lc = all_profiles();
    let af3_run = json!({"id": 1, "dag_id": "d", "run_id": "r", "state": "success", "run_type": "manual",
        "clear_number": 0, "queued_at": "2026-11-30T12:00:00Z", "run_after": "2026-11-30T12:00:00Z",
        "start_date": "2026-11-30T12:00:01Z", "end_date": "2026-11-30T12:00:05Z"});
    let mut af2_run = with(
        af3_run.clone(),
        json!({"execution_date": "2026-11-30T12:00:00Z",
        "data_interval_end": "2026-11-30T12:00:00Z"}),
    );
    af2_run.as_object_mut().unwrap().remove("run_after");
    let ti = json!({"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1, "try_number": 1,
        "state": "success", "queued_dttm": "2026-11-30T12:00:00Z", "start_date": "2026-11-30T12:00:01Z",
        "end_date": "2026-11-30T12:00:05Z"});
    let dagster_run = json!({"run_id": "r", "pipeline_name": "j", "status": "SUCCESS",
        "create_timestamp": "2026-11-30 12:00:00", "start_time": 1_796_040_001.0, "end_time": 1_796_040_005.0});
    let step = json!({"id": 3, "run_id": "r", "step_key": "s", "dagster_event_type": "STEP_SUCCESS"});
    let flow_run = json!({"id": "f", "flow_id": "x", "state_type": "COMPLETED", "run_count": 1,
        "created": "2026-11-30T12:00:00Z", "expected_start_time": "2026-11-30T12:00:00Z",
        "start_time": "2026-11-30T12:00:01Z", "end_time": "2026-11-30T12:00:05Z"});
    let block = json!({"id": 9, "pipeline_run_id": 7, "block_uuid": "b", "status": "COMPLETED",
        "created_at": "2026-11-30T12:00:00Z", "started_at": "2026-11-30T12:00:01Z", "completed_at": "2026-11-30T12:00:05Z"});
    let cases = [
        ("pipeline_run", with(mage_run(), json!({"started_at": "soon"})), "started_at", "a text"),
        ("pipeline_run", with(mage_run(), json!({"completed_at": "garbage"})), "completed_at", "a text"),
        ("pipeline_run", with(mage_run(), json!({"execution_date": "nope"})), "execution_date", "a text"),
        ("block_run", with(block, json!({"completed_at": "garbage"})), "completed_at", "a text"),
        ("dag_run", with(af3_run.clone(), json!({"start_date": "garbage"})), "start_date", "a text"),
        ("dag_run", with(af3_run.clone(), json!({"end_date": true})), "end_date", "a boolean"),
        ("dag_run", with(af3_run, json!({"run_after": {"t": 1}})), "run_after", "an object"),
        ("dag_run", with(af2_run, json!({"end_date": "garbage"})), "end_date", "a text"),
        ("task_instance", with(ti, json!({"queued_dttm": "later"})), "queued_dttm", "a text"),
        ("runs", with(dagster_run, json!({"end_time": "garbage"})), "end_time", "a text"),
        ("event_logs", with(step, json!({"timestamp": [1]})), "timestamp", "an array"),
        ("flow_run", with(flow_run, json!({"expected_start_time": "nope"})), "expected_start_time", "a text"),
    ];
    for (table, row, column, kind) in cases {
        let message = format!(
            "The {table} row's {column} is not a time (an ISO-8601 text or an epoch number); it is {kind}: the row is corrupt, none of its facts is counted."
        );
        assert_refused(facts(&lc, table, &row).await, &format!("payload.{column}"), &message);
    }
}

/// Finding 3: in a terminal status of an attempt that ran, a start after the end is corrupt (the
/// duration was dropped while the waits and a start stamped after the finish were counted); the
/// same order in a non-terminal row (an earlier attempt's end kept on the row) is no error.
#[tokio::test]
async fn a_finished_attempt_that_starts_after_its_end_is_refused() {
    let lc = all_profiles();
    let late = with(mage_run(), json!({"started_at": "2026-11-30T13:00:00Z", "completed_at": "2026-11-30T12:00:01Z"}));
    assert_refused(
        facts(&lc, "pipeline_run", &late).await,
        "payload.started_at",
        "The pipeline_run row's started_at (2026-11-30T13:00:00+00:00) is after its completed_at (2026-11-30T12:00:01+00:00) in status COMPLETED: the row is corrupt, none of its facts is counted.",
    );
    let af = json!({"id": 1, "dag_id": "d", "run_id": "r", "state": "failed", "run_type": "manual",
        "clear_number": 0, "queued_at": "2026-11-30T12:00:00Z", "run_after": "2026-11-30T12:00:00Z",
        "start_date": "2026-11-30T12:00:06Z", "end_date": "2026-11-30T12:00:05Z"});
    assert_refused(
        facts(&lc, "dag_run", &af).await,
        "payload.start_date",
        "The dag_run row's start_date (2026-11-30T12:00:06+00:00) is after its end_date (2026-11-30T12:00:05+00:00) in status failed: the row is corrupt, none of its facts is counted.",
    );
    // RUNNING again after an earlier attempt ended at 12:00:02: a start (12:00:04), waits as ever
    let running = with(mage_run(), json!({"status": "RUNNING", "completed_at": "2026-11-30T12:00:02Z"}));
    let want = expected(&[(names::RUN_STARTED, 1.0), (names::RUN_QUEUE_WAIT, 3.0), (names::RUN_SCHEDULE_DELAY, 3.0)]);
    assert_eq!(facts(&lc, "pipeline_run", &running).await.unwrap(), want);
}

/// Finding 4: a status column of another type than text is a 400 naming it in every profile (an
/// Airflow `state: 3` was answered 204 and its run never counted). Mage's status is refused by the
/// decoder already, as the decoder types Mage's columns.
#[tokio::test]
async fn a_status_that_is_no_text_is_refused_naming_it() {
    let lc = all_profiles();
    let cases = [
        (
            "dag_run",
            json!({"id": 1, "dag_id": "d", "run_id": "r", "run_after": "2026-11-30T12:00:00Z", "state": 3}),
            "state",
            "a number",
        ),
        (
            "dag_run",
            json!({"id": 1, "dag_id": "d", "run_id": "r", "execution_date": "2026-11-30T12:00:00Z", "state": true}),
            "state",
            "a boolean",
        ),
        (
            "task_instance",
            json!({"id": "u", "dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1, "state": ["success"]}),
            "state",
            "an array",
        ),
        (
            "event_logs",
            json!({"id": 3, "run_id": "r", "step_key": "s", "dagster_event_type": 3}),
            "dagster_event_type",
            "a number",
        ),
        (
            "flow_run",
            json!({"id": "f", "flow_id": "x", "state_type": {"type": "COMPLETED"}}),
            "state_type",
            "an object",
        ),
        (
            "task_run",
            json!({"id": "t", "flow_run_id": "f", "task_key": "k", "state_type": 1}),
            "state_type",
            "a number",
        ),
    ];
    for (table, row, column, kind) in cases {
        let message = format!(
            "The {table} row's {column} must be a text (a status word); it is {kind}: the row is corrupt, none of its facts is counted."
        );
        assert_refused(facts(&lc, table, &row).await, &format!("payload.{column}"), &message);
    }
    // a column named `status` (Mage, Dagster `runs`) is typed by the decoder: a 400 before any
    // profile reads the row
    let dagster = json!({"run_id": "r", "pipeline_name": "j", "status": 3});
    for (table, row) in [("pipeline_run", with(mage_run(), json!({"status": 3}))), ("runs", dagster)] {
        let record = json!({"source_timestamp": COMMIT, "source_metadata": {"table": table}, "payload": row});
        let e = decode::record(record).unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.message.as_str()),
            (Some("payload.status"), "payload.status must be a string")
        );
    }
}

/// Finding 5: a parent key of a type no parent row can have (a fraction, an object, an array, a
/// boolean) is refused for good at once, naming the column (a fraction waited for its parent until
/// LOOKUP_WAIT_SECS; an object was counted under pipeline `unknown`). An integer or a text not
/// seen yet still waits; a null key still counts under `unknown`.
#[tokio::test]
async fn a_parent_key_that_can_name_no_parent_is_refused_at_once() {
    let lc = all_profiles();
    let block = json!({"id": 9, "block_uuid": "b", "status": "RUNNING", "created_at": "2026-11-30T12:00:00Z",
        "started_at": "2026-11-30T12:00:01Z"});
    for (key, kind) in [
        (json!(1.5), "a number that is no integer key (a fraction, or beyond 64 bits)"),
        (json!(1e30), "a number that is no integer key (a fraction, or beyond 64 bits)"),
        (json!({"a": 1}), "an object"),
        (json!([7]), "an array"),
        (json!(true), "a boolean"),
    ] {
        let row = with(block.clone(), json!({"pipeline_run_id": key}));
        let message = format!(
            "The block_run row's pipeline_run_id must be the key of a pipeline_run row (an integer or a text); it is {kind}: it names no pipeline_run row, none of its facts is counted."
        );
        assert_refused(facts(&lc, "block_run", &row).await, "payload.pipeline_run_id", &message);
    }
    let task_run = json!({"id": "t", "flow_run_id": 2.5, "task_key": "k", "state_type": "RUNNING", "run_count": 1,
        "start_time": "2026-11-30T12:00:01Z"});
    let message = "The task_run row's flow_run_id must be the key of a flow_run row (an integer or a text); it is a number that is no integer key (a fraction, or beyond 64 bits): it names no flow_run row, none of its facts is counted.";
    assert_refused(facts(&lc, "task_run", &task_run).await, "payload.flow_run_id", message);
    // keys a parent row can have: wait for it (transient), as before; 7.0 is the integer 7, so
    // it names run 7 once that row was seen
    for key in [json!(7), json!("7"), json!(7.0)] {
        let row = with(block.clone(), json!({"pipeline_run_id": key}));
        let e = facts(&lc, "block_run", &row).await.unwrap_err();
        assert_eq!((e.kind(), e.class()), ("parent_not_seen", ErrorClass::Transient), "{e}");
    }
    let store = Memory::new(100);
    let now = at(COMMIT) + Duration::seconds(1);
    lc.derive(&change("pipeline_run", &mage_run()), &store, now).await.unwrap();
    let row = with(block.clone(), json!({"pipeline_run_id": 7.0}));
    let d = lc.derive(&change("block_run", &row), &store, now).await.unwrap();
    let wait = d.points.iter().find(|p| p.name == names::TASK_QUEUE_WAIT).expect("a queue wait");
    assert_eq!(wait.labels["pipeline"], "p");
    // no parent key: the task counts under pipeline `unknown` (queue wait 12:00:01 - 12:00:00)
    let row = with(block, json!({"pipeline_run_id": null}));
    assert_eq!(facts(&lc, "block_run", &row).await.unwrap(), expected(&[(names::TASK_QUEUE_WAIT, 1.0)]));
}
