//! Records of the lifecycle benchmarks (benches/lifecycle_derive.rs, benches/lifecycle_process.rs):
//! the representative record of each built-in profile's tables, taken from the recorded runs
//! under events/lifecycle/, and rows made new by rewriting their key columns, so that every
//! benchmarked record derives its facts instead of finding them taken.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pipeline_run_metrics::decode::{self, ChangeEvent};
use pipeline_run_metrics::facts::memory::{DEFAULT_CAPACITY, Memory};
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, load};
use serde_json::{Value, json};

/// (id, profile, recording directory, table, key columns rewritten to make a new row).
pub type Case = (&'static str, &'static str, &'static str, &'static str, &'static [&'static str]);

/// A run table and a task table of every built-in profile that has a recording.
pub const CASES: &[Case] = &[
    ("mage_pipeline_run", "mage", "mage", "pipeline_run", &["id"]),
    ("mage_block_run", "mage", "mage", "block_run", &["id"]),
    ("airflow2_dag_run", "airflow-2", "airflow2", "dag_run", &["id", "run_id"]),
    ("airflow2_task_instance", "airflow-2", "airflow2", "task_instance", &["run_id"]),
    ("airflow3_dag_run", "airflow-3", "airflow3", "dag_run", &["id", "run_id"]),
    ("airflow3_task_instance", "airflow-3", "airflow3", "task_instance", &["id", "run_id"]),
    ("dagster_runs", "dagster", "dagster", "runs", &["run_id"]),
    ("dagster_event_logs", "dagster", "dagster", "event_logs", &["id"]),
    ("prefect_flow_run", "prefect", "prefect", "flow_run", &["id"]),
    ("prefect_task_run", "prefect", "prefect", "task_run", &["id"]),
];

/// The run-table cases (one per recorded profile).
pub fn run_cases() -> impl Iterator<Item = &'static Case> {
    CASES.iter().filter(|c| matches!(c.3, "pipeline_run" | "dag_run" | "runs" | "flow_run"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The engine with the built-in profile `profile` alone.
pub fn lifecycle(profile: &str) -> Lifecycle {
    let profiles = load(None, Some(&[profile.to_string()])).expect("built-in profile");
    Lifecycle::new(profiles, "metrics-project", Duration::from_secs(600))
}

/// When a record is derived: one second after its commit (young enough to wait for a parent).
pub fn now_of(e: &ChangeEvent) -> DateTime<Utc> {
    e.source_timestamp.with_timezone(&Utc) + chrono::Duration::seconds(1)
}

/// Rewrites the key columns of a record's payload so that it is a row never seen: a number
/// becomes `9_000_000_000_000 + n` (13 digits for `n` < 10^12), a string gets `-<n, 12 hex
/// digits>` appended. The Datastream `uuid` becomes `b0000000-0000-4000-8000-<n, 12 hex digits>`.
pub fn renew(record: &mut Value, columns: &[&str], n: u64) {
    if let Some(payload) = record.get_mut("payload").and_then(Value::as_object_mut) {
        for c in columns {
            let v = payload.get_mut(*c).unwrap_or_else(|| panic!("no column {c}"));
            *v = match v {
                Value::Number(_) => json!(9_000_000_000_000u64 + n),
                Value::String(s) => json!(format!("{s}-{n:012x}")),
                other => panic!("key column {c} is {other}"),
            };
        }
    }
    if record.get("uuid").is_some() {
        record["uuid"] = json!(format!("b0000000-0000-4000-8000-{n:012x}"));
    }
}

/// The records (JSON) of a recorded `success` scenario, in log order.
pub fn recording(dir: &str) -> Vec<Value> {
    let path = root().join(format!("events/lifecycle/{dir}/success.datastream.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).expect("record")).collect()
}

/// The profile's engine, a memory (the binary's default capacity) holding the replayed
/// recording, and the representative record of `table`: of the table's changes in the recording,
/// the one that derives the most points as a new row (keys rewritten), the latest on a tie; for
/// a run table, its terminal change (started, finished, duration, queue wait, CDC lag).
pub fn prepare(
    rt: &tokio::runtime::Runtime,
    profile: &str,
    dir: &str,
    table: &str,
    keys: &[&str],
) -> (Lifecycle, Memory, Value) {
    let lc = lifecycle(profile);
    let store = Memory::new(DEFAULT_CAPACITY);
    let records = recording(dir);
    // twice: a task row whose parent comes later in the log finds it on the second pass
    for _ in 0..2 {
        for r in &records {
            let event = decode::record(r.clone()).expect("record");
            let _ = rt.block_on(lc.derive(&event, &store, now_of(&event)));
        }
    }
    let mut best: Option<(usize, Value)> = None;
    for (i, r) in records.iter().enumerate().filter(|(_, r)| r["source_metadata"]["table"] == table) {
        let mut renewed = r.clone();
        renew(&mut renewed, keys, 500_000 + i as u64);
        let event = decode::record(renewed).expect("record");
        let Ok(d) = rt.block_on(lc.derive(&event, &store, now_of(&event))) else { continue };
        if best.as_ref().is_none_or(|b| d.points.len() >= b.0) {
            best = Some((d.points.len(), r.clone()));
        }
    }
    let (_, record) = best.unwrap_or_else(|| panic!("{dir}: no {table} record with points"));
    (lc, store, record)
}

/// An OpenLineage COMPLETE run event, as the HTTP transport posts it, for run `n`.
pub fn openlineage_event(n: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "eventType": "COMPLETE",
        "eventTime": "2026-11-30T13:30:12.345678Z",
        "producer": "https://example.com/home-grown-orchestrator",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": format!("0190a000-0000-7000-8000-{n:012x}"), "facets": {}},
        "job": {"namespace": "etl", "name": "nightly_orders"},
        "inputs": [],
        "outputs": [{"namespace": "postgres://db", "name": "public.orders",
                     "outputFacets": {"outputStatistics": {"rowCount": 1234}}}],
    }))
    .unwrap()
}
