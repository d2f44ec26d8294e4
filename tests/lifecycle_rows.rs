//! Rows the lifecycle profiles refuse, and times they leave out (docs/metrics.md, "Rows refused,
//! and times left out"; src/handlers/lifecycle/check.rs), through every built-in profile at once,
//! as the service loads them. Expected values are computed from the rules and the times written in
//! each row; messages are the exact texts an answer carries.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::lifecycle::all_profiles;
use pipeline_run_metrics::decode::{self, ChangeEvent};
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

/// Finding 1: a Mage run's execution_date is a logical date. A backfill of any date (1999, four
/// days ahead) keeps every fact but those measured from it: queue wait runs from created_at
/// (12:00:04 - 12:00:00 = 4 s), no schedule delay. A scheduled run is measured as before: queue
/// wait from the later of created_at and execution_date (12:00:04 - 12:00:01 = 3 s), schedule
/// delay from execution_date (3 s); one whose execution_date is out of range has its queue wait
/// from created_at, and its schedule delay from that date as it is (a logical date of any age),
/// none when the date is after the start.
#[tokio::test]
async fn a_mage_run_of_any_logical_date_keeps_its_facts() {
    let lc = all_profiles();
    let old = "1999-06-01T00:00:00Z";
    let ahead = (Utc::now() + Duration::days(4)).to_rfc3339();
    let start = at("2026-11-30T12:00:04Z");
    let common = [(names::RUN_STARTED, 1.0), (names::RUN_FINISHED, 1.0), (names::RUN_DURATION, 5.0)];
    let mut normal = common.to_vec();
    normal.extend([(names::RUN_QUEUE_WAIT, 3.0), (names::RUN_SCHEDULE_DELAY, 3.0)]);
    let mut backfill = common.to_vec();
    backfill.push((names::RUN_QUEUE_WAIT, 4.0));
    let mut old_scheduled = backfill.clone();
    old_scheduled.push((names::RUN_SCHEDULE_DELAY, (start - at(old)).num_seconds() as f64));
    let cases = [
        ("normal", mage_run(), normal),
        ("backfill of 1999", with(mage_run(), json!({"backfill_id": 7, "execution_date": old})), backfill.clone()),
        (
            "backfill 4 days ahead",
            with(mage_run(), json!({"backfill_id": 7, "execution_date": ahead})),
            backfill.clone(),
        ),
        ("scheduled, 1999", with(mage_run(), json!({"execution_date": old})), old_scheduled),
        ("scheduled, 4 days ahead", with(mage_run(), json!({"execution_date": ahead})), backfill),
    ];
    for (name, row, want) in cases {
        assert_eq!(facts(&lc, "pipeline_run", &row).await.unwrap(), expected(&want), "{name}");
    }
}
