//! Test data: the sample events of events/ with their headers files, Datastream `pipeline_run`
//! records, and the local seed loaded into the emulator.

use std::sync::OnceLock;

use serde_json::{Value, json};

use super::DATA_PROJECT;
use super::bigquery::emulator;

/// A `pipeline_run` CDC record like Datastream writes it, with a fresh `uuid` each time.
pub fn record(pipeline_uuid: &str, status: &str, source_timestamp: &str, variables: Value) -> Value {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let uuid = format!("0c5d3a4e-0000-4000-8000-{:06x}{n:06x}", std::process::id() & 0xffffff);
    json!({
        "uuid": uuid, "read_timestamp": source_timestamp,
        "source_timestamp": source_timestamp, "object": "public_pipeline_run", "read_method": "postgresql-cdc",
        "stream_name": "projects/1/locations/us-east1/streams/mageai-cdc-stream",
        "source_metadata": {"schema": "public", "table": "pipeline_run", "is_deleted": false, "change_type": "UPDATE",
            "tx_id": 1, "lsn": "BD/A0007310", "primary_keys": ["id"]},
        "payload": {"id": 1, "pipeline_uuid": pipeline_uuid, "status": status, "variables": variables}
    })
}

/// Loads the local seed (events/seed.json) into the emulator, once per test process.
pub fn seed() {
    static SEEDED: OnceLock<()> = OnceLock::new();
    SEEDED.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed.py"))
            .env("BIGQUERY_EMULATOR_HOST", emulator())
            .env("BIGQUERY_PROJECT_ID", DATA_PROJECT)
            .output()
            .expect("run scripts/seed.py");
        assert!(out.status.success(), "seed failed: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// An event file of events/ and its headers (events/<name>.headers, or JSON by default).
pub fn event_file(name: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let body = std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("events/{name}: {e}"));
    let side = format!("{dir}/{}.headers", name.trim_end_matches(".json"));
    let headers = match std::fs::read_to_string(&side) {
        Ok(text) => text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
        Err(_) => vec![("content-type".to_string(), "application/json".to_string())],
    };
    (headers, body)
}

/// A wrangling record that only the pre-filtered and processable handlers need (use with
/// `only = PRE_AND_PROCESSABLE`).
pub fn wrangling_record() -> Value {
    record(
        "pipesv2_wrangling",
        "COMPLETED",
        "2025-11-05T18:23:31.393Z",
        json!({"partner": "abertta", "refined_unprocessable_claims_output_table": "tmp_abertta.u",
               "refined_processable_claims_output_table": "tmp_abertta.p"}),
    )
}

pub const PRE_AND_PROCESSABLE: &[&str] = &["PreFilteredWranglingHandler", "ProcessableWranglingHandler"];
