//! The messages are AWS DMS's own output, captured by crate/commons-codec
//! (tests/transform/test_aws_dms.py at fda0e4e5: a PostgreSQL source with
//! `IncludeTransactionDetails` and before images), and the `pipeline_run` message of
//! lifecycle.md C.2.

use super::*;
use crate::decode::{ChangeKind, DecodeErrorKind, ReadKind};

fn insert() -> Value {
    json!({
        "data": {"age": 31, "attributes": "{\"baz\": \"qux\"}", "id": 46, "name": "Jane"},
        "metadata": {
            "commit-timestamp": "2024-07-29T00:58:17.974340Z", "operation": "insert",
            "partition-key-type": "schema-table", "record-type": "data", "schema-name": "public",
            "stream-position": "00000002/7C007178.3.00000002/7C007178", "table-name": "foo",
            "timestamp": "2024-07-29T00:58:17.983670Z", "transaction-id": 1139, "transaction-record-id": 1}})
}

fn update() -> Value {
    json!({
        "before-image": {},
        "data": {"age": 33, "attributes": "{\"foo\": \"bar\"}", "id": 42, "name": "John"},
        "metadata": {
            "commit-timestamp": "2024-07-29T00:58:44.886717Z", "operation": "update",
            "partition-key-type": "schema-table", "prev-transaction-id": 1139, "prev-transaction-record-id": 1,
            "record-type": "data", "schema-name": "public", "stream-position": "00000002/7C007328.2.00000002/7C007328",
            "table-name": "foo", "timestamp": "2024-07-29T00:58:44.895275Z", "transaction-id": 1140,
            "transaction-record-id": 1}})
}

fn delete() -> Value {
    json!({
        "data": {"age": null, "attributes": null, "id": 45, "name": null},
        "metadata": {
            "commit-timestamp": "2024-07-29T01:09:25.366257Z", "operation": "delete",
            "partition-key-type": "schema-table", "prev-transaction-id": 1141, "prev-transaction-record-id": 1,
            "record-type": "data", "schema-name": "public", "stream-position": "00000002/840001D8.2.00000002/840001D8",
            "table-name": "foo", "timestamp": "2024-07-29T01:09:25.375525Z", "transaction-id": 1144,
            "transaction-record-id": 1}})
}

fn load() -> Value {
    json!({
        "data": {"age": 30, "attributes": "{\"foo\": \"bar\"}", "id": 42, "name": "John"},
        "metadata": {
            "operation": "load", "partition-key-type": "primary-key", "partition-key-value": "public.foo.42",
            "record-type": "data", "schema-name": "public", "table-name": "foo",
            "timestamp": "2024-07-29T00:57:35.691762Z"}})
}

fn control_create_table() -> Value {
    json!({
        "control": {"table-def": {"columns": {
            "age": {"nullable": true, "type": "INT32"}, "attributes": {"nullable": true, "type": "STRING"},
            "id": {"nullable": false, "type": "INT32"}, "name": {"nullable": true, "type": "STRING"}},
            "primary-key": ["id"]}},
        "metadata": {
            "operation": "create-table", "partition-key-type": "task-id",
            "partition-key-value": "serv-res-id-1722195358878-yhru", "record-type": "control",
            "schema-name": "public", "table-name": "foo", "timestamp": "2024-07-29T00:30:47.266581Z"}})
}

fn control_drop_table() -> Value {
    json!({
        "control": {},
        "metadata": {
            "operation": "drop-table", "partition-key-type": "task-id",
            "partition-key-value": "serv-res-id-1722195358878-yhru", "record-type": "control",
            "schema-name": "public", "table-name": "foo", "timestamp": "2024-07-29T00:30:47.258815Z"}})
}

fn control_apply_exceptions() -> Value {
    json!({
        "control": {"table-def": {"columns": {
            "ERROR": {"nullable": false, "type": "STRING"}, "ERROR_TIME": {"nullable": false, "type": "TIMESTAMP"},
            "STATEMENT": {"nullable": false, "type": "STRING"},
            "TABLE_NAME": {"length": 128, "nullable": false, "type": "STRING"},
            "TABLE_OWNER": {"length": 128, "nullable": false, "type": "STRING"},
            "TASK_NAME": {"length": 128, "nullable": false, "type": "STRING"}}}},
        "metadata": {
            "operation": "create-table", "partition-key-type": "task-id",
            "partition-key-value": "7QBLNBTPCNDEBG7CHI3WA73YFA", "record-type": "control", "schema-name": "",
            "table-name": "awsdms_apply_exceptions", "timestamp": "2024-08-04T10:50:10.584772Z"}})
}

/// lifecycle.md C.2: a Mage `pipeline_run` update with a key-only before image.
fn pipeline_run() -> Value {
    json!({
        "data": {"id": 4187, "pipeline_uuid": "pipesv2_wrangling", "status": "COMPLETED",
                 "started_at": "2025-11-05T18:20:05.901Z", "completed_at": "2025-11-05T18:23:31.39Z",
                 "execution_date": "2025-11-05T18:20:00Z", "variables": "{\"partner\": \"abertta\"}"},
        "before-image": {"id": 4187},
        "metadata": {
            "timestamp": "2025-11-05T18:23:31.512930Z", "record-type": "data", "operation": "update",
            "partition-key-type": "schema-table", "schema-name": "public", "table-name": "pipeline_run",
            "transaction-id": 1140, "commit-timestamp": "2025-11-05T18:23:31.393512Z",
            "stream-position": "00000002/7C007328.2.00000002/7C007328",
            "prev-transaction-id": 1139, "prev-transaction-record-id": 1, "transaction-record-id": 1}})
}

fn rfc3339(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[test]
fn insert_maps_every_field() {
    let e = decode(insert()).unwrap();
    assert_eq!(e.table(), Some("foo"));
    assert_eq!(e.source_metadata.schema.as_deref(), Some("public"));
    assert_eq!(e.object.as_deref(), Some("public_foo"));
    assert_eq!(e.change_kind(), ChangeKind::Upsert);
    assert_eq!(e.source_metadata.change_type.as_deref(), Some("INSERT"));
    assert_eq!(e.read_kind(), ReadKind::Cdc);
    assert!(!e.is_history());
    assert_eq!(rfc3339(e.source_timestamp), "2024-07-29T00:58:17.974340Z", "commit-timestamp");
    assert_eq!(rfc3339(e.read_timestamp.unwrap()), "2024-07-29T00:58:17.983670Z", "timestamp");
    assert_eq!(e.source_metadata.tx_id.as_deref(), Some("1139"));
    assert_eq!(e.source_metadata.lsn.as_deref(), Some("2/7C007178"));
    assert_eq!(e.uuid.as_deref(), Some("dms:public.foo:insert:1139:1:00000002/7C007178.3.00000002/7C007178"));
    assert_eq!(e.stream, None);
    let row = &e.payload.unwrap().row;
    assert_eq!(row["attributes"], json!("{\"baz\": \"qux\"}"), "JSON columns stay text");
    assert_eq!(row["id"], json!(46));
}

#[test]
fn update_and_delete() {
    let e = decode(update()).unwrap();
    assert_eq!(e.change_kind(), ChangeKind::Upsert);
    assert_eq!(e.source_metadata.lsn.as_deref(), Some("2/7C007328"));
    let e = decode(delete()).unwrap();
    assert_eq!(e.change_kind(), ChangeKind::Delete);
    assert!(e.source_metadata.is_deleted);
    assert_eq!(e.read_kind(), ReadKind::Cdc);
    assert_eq!(e.payload.unwrap().row["id"], json!(45), "a delete carries the key");
}

#[test]
fn load_is_history_timed_by_its_read() {
    let e = decode(load()).unwrap();
    assert_eq!(e.read_method.as_deref(), Some(READ_METHOD_FULL_LOAD));
    assert_eq!(e.read_kind(), ReadKind::Backfill);
    assert!(e.is_history());
    assert_eq!(e.change_kind(), ChangeKind::Upsert);
    assert_eq!(rfc3339(e.source_timestamp), "2024-07-29T00:57:35.691762Z", "no commit-timestamp: timestamp");
    assert_eq!(e.source_metadata.lsn, None);
    // no transaction details: a hash of the message, the same for the same message
    let uuid = e.uuid.unwrap();
    assert!(uuid.starts_with("dms-") && uuid.len() == 4 + 32, "{uuid}");
    assert_eq!(decode(load()).unwrap().uuid.as_deref(), Some(uuid.as_str()));
    let mut other = load();
    other["data"]["age"] = json!(31);
    assert_ne!(decode(other).unwrap().uuid.as_deref(), Some(uuid.as_str()));
    let mut later = load();
    later["metadata"]["timestamp"] = json!("2024-07-30T00:57:35.691762Z");
    assert_ne!(decode(later).unwrap().uuid.as_deref(), Some(uuid.as_str()));
}

#[test]
fn control_records_are_not_changes() {
    for (m, what) in [
        (control_create_table(), "create-table of public.foo"),
        (control_drop_table(), "drop-table of public.foo"),
        (control_apply_exceptions(), "create-table of awsdms_apply_exceptions"),
    ] {
        let e = decode(m).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::NotAChange, "{e}");
        assert_eq!(e.field.as_deref(), Some("metadata.record-type"));
        assert!(e.message.contains(what), "{e}");
    }
}

#[test]
fn mage_pipeline_run() {
    let e = decode(pipeline_run()).unwrap();
    assert!(e.is_table("pipeline_run"));
    let p = e.payload.unwrap();
    assert_eq!(p.id, Some(4187));
    assert_eq!(p.pipeline_uuid.as_deref(), Some("pipesv2_wrangling"));
    assert_eq!(p.status.as_deref(), Some("COMPLETED"));
    assert_eq!(p.variables().unwrap().get("partner"), Some(&json!("abertta")), "variables text is parsed");
    assert_eq!(rfc3339(e.source_timestamp), "2025-11-05T18:23:31.393512Z");
}

#[test]
fn recognised_shapes() {
    for m in [insert(), load(), control_drop_table(), pipeline_run()] {
        assert!(looks_like_dms(&m), "{m}");
    }
    let datastream = json!({"uuid": "u", "source_timestamp": 1, "payload": {"id": 1}});
    assert!(!looks_like_dms(&datastream));
    assert!(!looks_like_dms(&json!({"metadata": "x"})));
    assert!(!looks_like_dms(&json!([1])));
}

#[test]
fn errors_name_the_field() {
    let with = |path: &[&str], v: Value| {
        let mut m = pipeline_run();
        let mut at = &mut m;
        for k in &path[..path.len() - 1] {
            at = &mut at[*k];
        }
        at.as_object_mut().unwrap().insert(path[path.len() - 1].to_string(), v);
        m
    };
    let without = |path: &[&str]| {
        let mut m = pipeline_run();
        let mut at = &mut m;
        for k in &path[..path.len() - 1] {
            at = &mut at[*k];
        }
        at.as_object_mut().unwrap().remove(path[path.len() - 1]);
        m
    };
    let cases = [
        (json!({"unknown": "foo:bar"}), "metadata"),
        (json!({"metadata": []}), "metadata"),
        // commons-codec's MSG_SCHEMA_TABLE_MISSING and MSG_UNKNOWN_OPERATION
        (json!({"control": {}, "metadata": {"operation": "insert"}}), "metadata.table-name"),
        (
            json!({"control": {}, "metadata": {"operation": "FOOBAR", "schema-name": "public", "table-name": "foo"}}),
            "metadata.operation",
        ),
        (without(&["metadata", "operation"]), "metadata.operation"),
        (with(&["metadata", "record-type"], json!("ddl")), "metadata.record-type"),
        (with(&["metadata", "table-name"], json!("")), "metadata.table-name"),
        (with(&["metadata", "table-name"], json!(["t"])), "metadata.table-name"),
        (with(&["metadata", "table-name"], json!(5)), "metadata.table-name"),
        (with(&["metadata", "schema-name"], json!(5)), "metadata.schema-name"),
        (without(&["metadata", "timestamp"]), "metadata.timestamp"),
        (with(&["metadata", "timestamp"], json!("yesterday")), "metadata.timestamp"),
        (with(&["metadata", "commit-timestamp"], json!(true)), "metadata.commit-timestamp"),
        (with(&["metadata", "transaction-id"], json!({"x": 1})), "metadata.transaction-id"),
        (without(&["data"]), "data"),
        (with(&["data"], json!("row")), "data"),
        (with(&["data", "status"], json!(3)), "data.status"),
        // a text id is a key (Airflow 3 and Prefect ids are UUIDs): a structure is not
        (with(&["data", "id"], json!({"x": 1})), "data.id"),
        (with(&["data", "variables"], json!("not json")), "data.variables"),
    ];
    for (m, field) in cases {
        let e = decode(m.clone()).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Malformed, "{m}: {e}");
        assert_eq!(e.field.as_deref(), Some(field), "{m}: {e}");
        assert!(e.message.contains(field), "the message names the field: {e}");
    }
    assert!(decode(json!("x")).is_err());
    // `{"data", "metadata": "x"}` is a DMS message whose metadata is at fault, on every route
    let v = json!({"data": {"id": 1}, "metadata": "x"});
    assert!(looks_like_dms(&v));
    assert_eq!(crate::decode::record(v).unwrap_err().field.as_deref(), Some("metadata"));
    // handlers' errors are named under the row's path too (HandlerError::name_row)
    assert_eq!(decode(update()).unwrap().payload.unwrap().path, "data");
}

#[test]
fn stream_positions() {
    assert_eq!(pg_lsn("00000002/7C007328.2.00000002/7C007328").as_deref(), Some("2/7C007328"));
    assert_eq!(pg_lsn("00000000/00000000.1.00000000/00000000").as_deref(), Some("0/0"));
    assert_eq!(pg_lsn("BD/A0007310").as_deref(), Some("BD/A0007310"));
    for other in ["", "mysql-bin-changelog.000024:373", "x/y.1", "1/"] {
        assert_eq!(pg_lsn(other), None, "{other}");
    }
}
