use super::*;
use crate::decode::{ChangeKind, ReadKind};
use serde_json::json;

fn full() -> Value {
    json!({"uuid": "6c1b", "read_timestamp": 1735689600123i64, "source_timestamp": 1735689599000i64,
        "object": "public_pipeline_run", "read_method": "postgres-cdc-wal", "stream_name": "s", "schema_key": "k",
        "sort_keys": [1735689599000i64, "0/16B2C00"],
        "source_metadata": {"schema": "public", "table": "pipeline_run", "is_deleted": false, "change_type": "UPDATE",
            "tx_id": "77", "lsn": "0/16B2C00", "primary_keys": ["id"]},
        "payload": {"id": 42, "pipeline_uuid": "etl", "status": "COMPLETED", "passed_sla": false,
            "execution_date": "2025-01-01T00:00:00Z", "started_at": "2025-01-01T00:00:01Z", "completed_at": null,
            "variables": {"partner": "acme", "n": 1}}})
}

#[test]
fn decodes_every_field_of_a_cdc_record() {
    let e = decode(full()).unwrap();
    assert_eq!(e.uuid.as_deref(), Some("6c1b"));
    assert_eq!(e.source_timestamp.to_rfc3339(), "2024-12-31T23:59:59+00:00");
    assert_eq!(e.read_timestamp.unwrap().timestamp_millis(), 1735689600123);
    assert_eq!(e.read_kind(), ReadKind::Cdc);
    assert_eq!(e.change_kind(), ChangeKind::Upsert);
    assert_eq!(e.table(), Some("pipeline_run"));
    assert_eq!(e.source_metadata.lsn.as_deref(), Some("0/16B2C00"));
    assert_eq!(e.source_metadata.tx_id.as_deref(), Some("77"));
    assert_eq!(e.source_metadata.primary_keys, vec!["id".to_string()]);
    let p = e.payload.unwrap();
    assert_eq!(p.id, Some(42));
    assert_eq!(p.pipeline_uuid.as_deref(), Some("etl"));
    assert_eq!(p.status.as_deref(), Some("COMPLETED"));
    assert_eq!(p.completed_at, None);
    assert_eq!(p.variables().unwrap().get("partner"), Some(&json!("acme")));
}

#[test]
fn timestamp_forms() {
    let cases = [
        (json!("2025-11-05T18:23:31.393000Z"), "2025-11-05T18:23:31.393+00:00"),
        (json!("2024-01-15T10:30:00+02:00"), "2024-01-15T10:30:00+02:00"),
        (json!("2024-01-15 10:30:00.5"), "2024-01-15T10:30:00.500+00:00"),
        (json!("2024-01-15T10:30:00"), "2024-01-15T10:30:00+00:00"),
        (json!(1705314600000i64), "2024-01-15T10:30:00+00:00"),
    ];
    for (v, want) in cases {
        let t = parse_timestamp(&v, "source_timestamp").unwrap();
        assert_eq!(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false), want, "{v}");
    }
    for bad in [json!("yesterday"), json!(true), json!(1.5), json!(null)] {
        let e = parse_timestamp(&bad, "source_timestamp").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("source_timestamp"), "{bad}");
    }
}

#[test]
fn backfill_and_deletes() {
    let mut r = full();
    r["read_method"] = json!("postgresql-backfill");
    assert_eq!(decode(r.clone()).unwrap().read_kind(), ReadKind::Backfill);
    let del = json!({"source_timestamp": "2024-01-15T10:30:00Z", "source_metadata": {"table": "pipeline_run",
        "change_type": "DELETE", "is_deleted": true}});
    let e = decode(del).unwrap();
    assert_eq!(e.change_kind(), ChangeKind::Delete);
    assert_eq!(e.payload, None);
    let mut r = full();
    r["source_metadata"]["is_deleted"] = json!(true);
    assert_eq!(decode(r.clone()).unwrap().change_kind(), ChangeKind::Delete);
}

#[test]
fn table_from_object_when_metadata_lacks_it() {
    let e = decode(
        json!({"source_timestamp": 1705314600000i64, "object": "public_pipeline_run", "source_metadata": {"schema": "public"}}),
    )
    .unwrap();
    assert_eq!(e.table(), Some("pipeline_run"));
    assert!(e.is_table("pipeline_run"));
    assert!(!e.is_table("block_run"));
    let e = decode(json!({"source_timestamp": 1705314600000i64})).unwrap();
    assert!(e.is_table("pipeline_run"));
}

#[test]
fn invalid_fields_are_named() {
    let cases = [
        (json!({"payload": {}}), "source_timestamp"),
        (json!({"source_timestamp": 1705314600000i64, "payload": []}), "payload"),
        (json!({"source_timestamp": 1705314600000i64, "payload": {"status": 3}}), "payload.status"),
        (json!({"source_timestamp": 1705314600000i64, "payload": {"pipeline_uuid": ["x"]}}), "payload.pipeline_uuid"),
        (json!({"source_timestamp": 1705314600000i64, "payload": {"variables": [1]}}), "payload.variables"),
        (json!({"source_timestamp": 1705314600000i64, "payload": {"id": [1]}}), "payload.id"),
        (
            json!({"source_timestamp": 1705314600000i64, "source_metadata": {"is_deleted": "no"}}),
            "source_metadata.is_deleted",
        ),
        (json!({"source_timestamp": 1705314600000i64, "source_metadata": 5}), "source_metadata"),
        // a name is a string: a table `5` matched no handler, the record skipped silently
        (json!({"source_timestamp": 1705314600000i64, "source_metadata": {"table": 5}}), "source_metadata.table"),
        (json!({"source_timestamp": 1705314600000i64, "source_metadata": {"schema": false}}), "source_metadata.schema"),
        (
            json!({"source_timestamp": 1705314600000i64, "source_metadata": {"change_type": "WEIRD"}}),
            "source_metadata.change_type",
        ),
    ];
    for (v, field) in cases {
        let e = decode(v.clone()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{v}");
    }
    assert!(decode(json!("x")).is_err());
}

#[test]
fn change_types_outside_the_documented_set_are_refused() {
    let with = |ct: Value| json!({"source_timestamp": 1705314600000i64, "source_metadata": {"change_type": ct}});
    let accepted = [
        ("INSERT", ChangeKind::Upsert),
        ("UPDATE", ChangeKind::Upsert),
        ("UPDATE-INSERT", ChangeKind::Upsert),
        ("", ChangeKind::Upsert),
        ("update", ChangeKind::Upsert),
        ("update-insert", ChangeKind::Upsert),
        ("Insert", ChangeKind::Upsert),
        ("DELETE", ChangeKind::Delete),
        ("UPDATE-DELETE", ChangeKind::Delete),
        ("delete", ChangeKind::Delete),
        ("update-delete", ChangeKind::Delete),
    ];
    for (ct, kind) in accepted {
        assert_eq!(decode(with(json!(ct))).unwrap().change_kind(), kind, "{ct:?}");
    }
    assert_eq!(
        decode(json!({"source_timestamp": 1705314600000i64, "source_metadata": {}})).unwrap().change_kind(),
        ChangeKind::Upsert
    );
    assert_eq!(decode(with(Value::Null)).unwrap().change_kind(), ChangeKind::Upsert);
    let long = "X".repeat(10_000);
    for ct in ["WEIRD", "LOAD", "UPSERT", "INSERT ", "UPDATE_DELETE", "c", long.as_str()] {
        let e = decode(with(json!(ct))).unwrap_err();
        assert_eq!(e.kind, crate::decode::DecodeErrorKind::Malformed, "{ct}");
        assert_eq!(e.field.as_deref(), Some("source_metadata.change_type"), "{ct}");
        assert!(e.message.contains("INSERT, UPDATE, UPDATE-INSERT, DELETE, UPDATE-DELETE or empty"), "{}", e.message);
        assert!(e.message.len() < 400, "the value is not echoed whole: {} bytes", e.message.len());
    }
    // a number is taken as its text, and refused like any other unknown value
    let e = decode(with(json!(3))).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("source_metadata.change_type"));
}

#[test]
fn text_keys_are_accepted() {
    // Airflow 3 task_instance and Prefect rows are keyed by UUIDs: the row keeps the id, the
    // integer id (Mage's) is absent.
    let e = decode(
        json!({"source_timestamp": 1705314600000i64, "payload": {"id": "01a22cac-cf5c-7f8b-950f-b9b52c9a8500"}}),
    );
    let p = e.unwrap().payload.unwrap();
    assert_eq!(p.id, None);
    assert_eq!(p.row["id"], "01a22cac-cf5c-7f8b-950f-b9b52c9a8500");
    assert_eq!(
        decode(json!({"source_timestamp": 1705314600000i64, "payload": {"id": "42"}})).unwrap().payload.unwrap().id,
        Some(42)
    );
}

#[test]
fn variables_as_json_text_are_accepted() {
    let e =
        decode(json!({"source_timestamp": 1705314600000i64, "payload": {"variables": "{\"partner\":\"p\"}"}})).unwrap();
    assert_eq!(e.payload.unwrap().variables().unwrap().get("partner"), Some(&json!("p")));
}
