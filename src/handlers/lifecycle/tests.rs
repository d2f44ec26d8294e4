use super::*;
use crate::facts::memory::Memory;
use chrono::{DateTime, Utc};
use serde_json::json;

fn lifecycle(text: &str) -> Lifecycle {
    let profile = load::parse("t", "profiles/t.toml", &format!("orchestrator = \"t\"\n{text}")).unwrap();
    Lifecycle::new(vec![profile], "p", Duration::from_secs(600))
}

fn change(table: &str, lsn: &str, row: Value) -> ChangeEvent {
    crate::decode::datastream::decode(json!({
        "source_timestamp": "2026-01-01T00:00:10Z", "read_timestamp": "2026-01-01T00:00:11Z",
        "source_metadata": {"table": table, "lsn": lsn}, "payload": row}))
    .unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:12Z".parse().unwrap()
}

fn facts(points: &[Point]) -> Vec<(String, f64)> {
    points.iter().filter(|p| p.name != names::CDC_LAG).map(|p| (p.name.clone(), p.value)).collect()
}

#[test]
fn parent_tables_are_those_other_tables_look_up() {
    let lc = Lifecycle::new(load(None, None).unwrap(), "p", std::time::Duration::from_secs(600));
    let parents = lc.parent_tables();
    // profiles/mage.toml: block_run -> pipeline_run; prefect.toml: [lookups.flow], task_run -> flow_run
    for t in ["pipeline_run", "dag_run", "runs", "flow", "flow_run"] {
        assert!(parents.iter().any(|p| p == t), "{t}: {parents:?}");
    }
    for t in ["block_run", "task_instance", "task_run"] {
        assert!(!parents.iter().any(|p| p == t), "{t}: {parents:?}");
    }
}

#[tokio::test]
async fn every_row_of_a_one_fact_events_table_is_that_fact_once() {
    let lc = lifecycle(
        "[tables.sla_miss]\nlevel = \"run\"\nkey = [\"dag_id\", \"task_id\", \"execution_date\"]\npipeline = \"dag_id\"\norder = \"events\"\nevents = { fact = \"sla_missed\", time = \"timestamp\" }\n",
    );
    let store = Memory::new(100);
    let row = json!({"dag_id": "d", "task_id": "t", "execution_date": "2026-01-01T00:00:00Z", "timestamp": "2026-01-01T00:00:09Z", "email_sent": false});
    let d = lc.derive(&change("sla_miss", "0/1", row.clone()), &store, now()).await.unwrap();
    assert_eq!(facts(&d.points), [(names::RUN_SLA_MISSED.to_string(), 1.0)]);
    let p = d.points.iter().find(|p| p.name == names::RUN_SLA_MISSED).unwrap();
    assert_eq!(p.time.to_rfc3339(), "2026-01-01T00:00:09+00:00");
    assert!(!p.labels.contains_key("status"), "{:?}", p.labels);
    // a later update of the row (email sent) is the same fact
    let mut sent = row;
    sent["email_sent"] = json!(true);
    let d = lc.derive(&change("sla_miss", "0/2", sent), &store, now()).await.unwrap();
    assert!(facts(&d.points).is_empty());
}

#[tokio::test]
async fn events_rows_naming_no_fact_need_no_parent() {
    let lc = lifecycle(
        "[tables.runs]\nlevel = \"run\"\nkey = [\"run_id\"]\npipeline = \"pipeline_name\"\nstatus = \"status\"\nterminal = { SUCCESS = \"success\" }\n\
         [tables.event_logs]\nlevel = \"task\"\nkey = [\"id\"]\npipeline = { lookup = \"runs\", via = \"run_id\" }\ntask = \"step_key\"\norder = \"events\"\n\
         events = { column = \"dagster_event_type\", values = { STEP_SUCCESS = \"success\" }, time = \"timestamp\" }\n",
    );
    let store = Memory::new(100);
    // the run is unknown: an ENGINE_EVENT row is skipped at once (only its CDC lag)...
    let engine = json!({"id": 1, "run_id": "r", "dagster_event_type": "ENGINE_EVENT", "step_key": null, "timestamp": "2026-01-01T00:00:09"});
    let d = lc.derive(&change("event_logs", "0/1", engine), &store, now()).await.unwrap();
    assert!(facts(&d.points).is_empty());
    assert_eq!(d.points.len(), 1);
    // ...a step event waits for its run
    let step = json!({"id": 2, "run_id": "r", "dagster_event_type": "STEP_SUCCESS", "step_key": "s", "timestamp": "2026-01-01T00:00:09"});
    let e = lc.derive(&change("event_logs", "0/2", step.clone()), &store, now()).await.unwrap_err();
    assert_eq!(e.kind(), "parent_not_seen");
    let run = json!({"run_id": "r", "pipeline_name": "job", "status": "STARTED"});
    lc.derive(&change("runs", "0/3", run), &store, now()).await.unwrap();
    let d = lc.derive(&change("event_logs", "0/2", step), &store, now()).await.unwrap();
    assert_eq!(facts(&d.points), [(names::TASK_FINISHED.to_string(), 1.0)]);
    let p = &d.points[0];
    assert_eq!((p.labels["pipeline"].as_str(), p.labels["task"].as_str()), ("job", "s"));
    assert_eq!(p.labels["status"], "STEP_SUCCESS");
}

#[tokio::test]
async fn a_retry_that_keeps_the_start_time_is_not_a_new_start() {
    let table = "[tables.flow_run]\nlevel = \"run\"\nkey = [\"id\"]\npipeline = \"flow\"\nstatus = \"state_type\"\n\
         terminal = { COMPLETED = \"success\" }\nrunning = [\"RUNNING\"]\nattempt = [\"run_count\"]\n\
         retried = { statuses = [\"RUNNING\"], column = \"run_count\", above = 1 }\n\
         times = { created = \"created\", started = \"start_time\", ended = \"end_time\" }\n";
    let rows = [
        json!({"id": "f", "flow": "x", "state_type": "RUNNING", "run_count": 1, "created": "2026-01-01T00:00:00Z", "start_time": "2026-01-01T00:00:01Z"}),
        json!({"id": "f", "flow": "x", "state_type": "RUNNING", "run_count": 2, "created": "2026-01-01T00:00:00Z", "start_time": "2026-01-01T00:00:01Z"}),
        json!({"id": "f", "flow": "x", "state_type": "COMPLETED", "run_count": 2, "created": "2026-01-01T00:00:00Z", "start_time": "2026-01-01T00:00:01Z", "end_time": "2026-01-01T00:00:05Z"}),
    ];
    let count = |points: &[Point], name: &str| points.iter().filter(|p| p.name == name).count();
    for (starts, want) in [("", 2), ("starts = \"start_time\"\n", 1)] {
        let lc = lifecycle(&format!("{table}{starts}"));
        let store = Memory::new(100);
        let mut points = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            points.extend(
                lc.derive(&change("flow_run", &format!("0/{i}"), row.clone()), &store, now()).await.unwrap().points,
            );
        }
        assert_eq!(count(&points, names::RUN_STARTED), want, "{starts}");
        assert_eq!(count(&points, names::RUN_QUEUE_WAIT), want, "{starts}");
        assert_eq!(count(&points, names::RUN_RETRIED), 1, "{starts}");
        assert_eq!(count(&points, names::RUN_FINISHED), 1, "{starts}");
    }
}

/// A row whose own times no run can have (a 1970 end, a start years ahead) is refused for good,
/// naming the column, before anything is reserved: no point stamped 1970, and the corrected row
/// still counts.
#[tokio::test]
async fn a_row_with_an_impossible_time_is_a_permanent_failure_naming_the_column() {
    let lc = lifecycle(
        "[tables.pipeline_run]\nlevel = \"run\"\nkey = [\"id\"]\npipeline = \"pipeline_uuid\"\nstatus = \"status\"\n\
         terminal = { COMPLETED = \"success\" }\nrunning = [\"RUNNING\"]\n\
         times = { created = \"created_at\", started = \"started_at\", ended = \"completed_at\" }\n",
    );
    let store = Memory::new(100);
    let row = |started: Value, completed: Value| {
        json!({"id": 7, "pipeline_uuid": "p", "status": "COMPLETED", "created_at": "2026-01-01T00:00:00Z",
               "started_at": started, "completed_at": completed})
    };
    let ok = json!("2026-01-01T00:00:01Z");
    let ahead = json!((Utc::now() + chrono::Duration::days(3)).to_rfc3339());
    for (row, column, why) in [
        (row(ok.clone(), json!("1970-01-01T00:00:00Z")), "payload.completed_at", "before 2000-01-01"),
        (row(ok.clone(), json!(0)), "payload.completed_at", "before 2000-01-01"),
        (row(json!("1999-12-31 23:59:59"), json!("2026-01-01T00:00:05Z")), "payload.started_at", "before 2000-01-01"),
        (row(ahead, json!("2026-01-01T00:00:05Z")), "payload.started_at", "more than a day ahead"),
    ] {
        let e = lc.derive(&change("pipeline_run", "0/1", row), &store, now()).await.unwrap_err();
        assert_eq!(e.class(), crate::error::ErrorClass::Permanent, "{e}");
        assert_eq!(e.field(), Some(column), "{e}");
        assert!(e.to_string().contains(why) && e.to_string().contains("corrupt"), "{e}");
    }
    let d = lc.derive(&change("pipeline_run", "0/1", row(ok, json!("2026-01-01T00:00:05Z"))), &store, now()).await;
    let d = d.unwrap();
    let got = facts(&d.points);
    for (name, value) in [(names::RUN_STARTED, 1.0), (names::RUN_FINISHED, 1.0), (names::RUN_DURATION, 4.0)] {
        assert!(got.contains(&(name.to_string(), value)), "nothing was reserved by the refused rows: {got:?}");
    }
    assert!(d.points.iter().all(|p| p.time.timestamp() >= crate::decode::time::EARLIEST));
}
