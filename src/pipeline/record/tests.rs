//! Unit tests of the per-record processing: the content digest of the de-duplication key.

use super::*;
use serde_json::json;

fn event(v: serde_json::Value) -> ChangeEvent {
    crate::decode::datastream::decode(v).unwrap()
}

#[test]
fn the_content_digest_tells_records_apart_but_not_deliveries() {
    let rec = json!({"uuid": "u-1", "source_timestamp": "2024-01-15T10:30:00Z", "read_timestamp": "2024-01-15T10:30:01Z",
        "source_metadata": {"table": "pipeline_run", "change_type": "UPDATE"},
        "payload": {"id": 1, "pipeline_uuid": "p", "status": "COMPLETED", "variables": {"partner": "a"}}});
    let d = content_digest(&event(rec.clone()));
    assert_eq!(d, content_digest(&event(rec.clone())), "the same record");
    let mut reread = rec.clone();
    reread["read_timestamp"] = "2024-01-15T10:35:00Z".into();
    assert_eq!(d, content_digest(&event(reread)), "read again later");
    let mut other_uuid = rec.clone();
    other_uuid["uuid"] = "u-2".into();
    assert_eq!(d, content_digest(&event(other_uuid)), "the id is the other half of the key");
    for (path, value) in [
        ("/payload/status", json!("RUNNING")),
        ("/payload/variables/partner", json!("b")),
        ("/source_timestamp", json!("2024-01-15T10:30:01Z")),
        ("/source_metadata/change_type", json!("DELETE")),
    ] {
        let mut changed = rec.clone();
        *changed.pointer_mut(path).unwrap() = value;
        assert_ne!(d, content_digest(&event(changed)), "{path}");
    }
}

#[test]
fn the_content_digest_is_the_one_saved_facts_files_hold() {
    // Computed by the implementation before 2026-11-30 (a streaming hasher fed piece by
    // piece): a replay's facts file saved then must still name the same records.
    let rec = json!({"uuid": "u-1", "source_timestamp": "2024-01-15T10:30:00Z", "read_timestamp": "2024-01-15T10:30:01Z",
        "source_metadata": {"table": "pipeline_run", "change_type": "UPDATE", "primary_keys": ["id"]},
        "payload": {"id": 1, "pipeline_uuid": "p", "status": "COMPLETED", "variables": {"partner": "a"}}});
    assert_eq!(format!("{:032x}", content_digest(&event(rec))), "96fe4553532b4ddeac54d3f25948821a");
}
