//! Test data: the sample events of events/ with their headers files, Datastream `pipeline_run`
//! records, and the local seed loaded into the emulator.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::DATA_PROJECT;
use super::bigquery::emulator;
use super::process::Process;

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
        let out = Process::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed.py"))
            .env("BIGQUERY_EMULATOR_HOST", emulator())
            .env("BIGQUERY_PROJECT_ID", DATA_PROJECT)
            .output();
        assert!(out.status.success(), "seed failed: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// The directory of the sample events (`events/`).
pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

/// The names of the sample events in `events/` (`*.json`, without the emulator seed), sorted.
pub fn sample_event_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(events_dir())
        .expect("events/")
        .map(|e| e.expect("events/ entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "seed.json")
        .collect();
    files.sort();
    files
}

/// The headers of a headers file (`events/<name>.headers`: one `name: value` per line, blank
/// lines skipped), names lowercased; `None` when there is no such file. The only reader of
/// these files in tests and benches (scripts/eventfiles.py is the scripts' one).
pub fn read_headers(path: &Path) -> Option<Vec<(String, String)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let header = |line: &str| {
        let (k, v) = line.split_once(':').unwrap_or_else(|| panic!("{}: not `name: value`: {line}", path.display()));
        (k.trim().to_ascii_lowercase(), v.trim().to_string())
    };
    Some(text.lines().filter(|l| !l.trim().is_empty()).map(header).collect())
}

/// An event file of events/ and its headers (events/<name>.headers, or JSON by default).
pub fn event_file(name: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let path = events_dir().join(name);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("events/{name}: {e}"));
    let headers = read_headers(&path.with_extension("headers"))
        .unwrap_or_else(|| vec![("content-type".to_string(), "application/json".to_string())]);
    (headers, body)
}

/// Headers as the `HeaderMap` the decoders take.
pub fn header_map(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|e| panic!("header name {k}: {e}")),
            HeaderValue::from_str(v).unwrap_or_else(|e| panic!("header {k}: {e}")),
        );
    }
    map
}

/// A Lambda invocation payload of tests/fixtures/lambda/ (see the README there), with `field`
/// (`body` of an HTTP event, `data` of a raw CloudEvent; "<set by the test>" in the file) set to
/// `value`.
pub fn lambda_event(name: &str, field: &str, value: Value) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lambda").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut event: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(event[field], "<set by the test>", "{}: no placeholder {field}", path.display());
    event[field] = value;
    event
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

/// The handlers that [`wrangling_record`] is for.
pub const PRE_AND_PROCESSABLE: &[&str] = &["PreFilteredWranglingHandler", "ProcessableWranglingHandler"];
