use super::*;
use crate::decode::{ChangeKind, ReadKind};
use serde_json::json;

/// lifecycle.md C.1's realistic example (a Mage run finishing), `schemas.enable=false`.
fn envelope() -> Value {
    json!({"before": null, "after": {"id": 4187, "created_at": "2025-11-05T18:20:02.114Z",
        "pipeline_uuid": "pipesv2_wrangling", "status": "COMPLETED", "started_at": "2025-11-05T18:20:05.901Z",
        "completed_at": "2025-11-05T18:23:31.390Z", "variables": "{\"partner\": \"abertta\"}", "metrics": "__debezium_unavailable_value"},
        "source": {"version": "3.2.0.Final", "connector": "postgresql", "name": "mage", "ts_ms": 1762367011393i64,
            "ts_us": 1762367011393512i64, "snapshot": "false", "db": "mage", "schema": "public", "table": "pipeline_run",
            "txId": 556, "lsn": 24023128, "xmin": null},
        "op": "u", "ts_ms": 1762367011455i64, "ts_us": 1762367011455002i64})
}

#[test]
fn the_envelope_with_and_without_schema() {
    for v in [envelope(), json!({"schema": {"type": "struct"}, "payload": envelope()})] {
        assert!(looks_like(v.as_object().unwrap()));
        let e = decode(v).unwrap();
        assert_eq!(e.table(), Some("pipeline_run"));
        assert_eq!(e.change_kind(), ChangeKind::Upsert);
        assert_eq!(e.read_kind(), ReadKind::Cdc);
        assert_eq!(e.source_timestamp.timestamp_micros(), 1762367011393512);
        assert_eq!(e.read_timestamp.unwrap().timestamp_micros(), 1762367011455002);
        assert_eq!(e.source_metadata.lsn.as_deref(), Some("24023128"));
        let p = e.payload.unwrap();
        assert_eq!(p.status.as_deref(), Some("COMPLETED"));
        assert_eq!(p.variables().unwrap()["partner"], "abertta", "JSON text parsed");
        assert!(!p.row.contains_key("metrics"), "unavailable TOASTed value left out");
    }
}

#[test]
fn snapshots_are_history_and_deletes_carry_the_old_row() {
    let mut r = envelope();
    r["op"] = json!("r");
    r["source"]["snapshot"] = json!("true");
    assert_eq!(decode(r).unwrap().read_kind(), ReadKind::Backfill);
    let mut d = envelope();
    d["op"] = json!("d");
    d["before"] = json!({"id": 4187});
    d["after"] = Value::Null;
    let e = decode(d).unwrap();
    assert_eq!(e.change_kind(), ChangeKind::Delete);
    assert_eq!(e.payload.unwrap().row["id"], 4187);
}

#[test]
fn the_flattened_form() {
    let v = json!({"id": 4187, "pipeline_uuid": "pipesv2_wrangling", "status": "COMPLETED",
        "__op": "u", "__table": "pipeline_run", "__lsn": 24023128, "__source_ts_ms": "1762367011393", "__deleted": "false"});
    assert!(looks_like(v.as_object().unwrap()));
    let e = decode(v).unwrap();
    assert_eq!((e.table(), e.change_kind()), (Some("pipeline_run"), ChangeKind::Upsert));
    assert_eq!(e.source_timestamp.timestamp_millis(), 1762367011393);
    let p = e.payload.unwrap();
    assert!(p.row.keys().all(|k| !k.starts_with("__")));
    let deleted =
        json!({"id": 1, "__op": "d", "__table": "t", "__source_ts_ms": 1762367011393i64, "__deleted": "true"});
    assert_eq!(decode(deleted).unwrap().change_kind(), ChangeKind::Delete);
}

#[test]
fn errors_name_the_field() {
    let mut v = envelope();
    v["op"] = json!("x");
    assert_eq!(decode(v).unwrap_err().field.as_deref(), Some("op"));
    for op in [json!(123), json!(null)] {
        let mut v = envelope();
        v["op"] = op.clone();
        assert!(looks_like(v.as_object().unwrap()), "{op}: still a Debezium envelope");
        let e = decode(v).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("op"), "{op}");
        assert!(e.message.contains("expected c, u, d, r, t or m"), "{e}");
    }
    let mut v = envelope();
    v["source"].as_object_mut().unwrap().retain(|k, _| !k.starts_with("ts_"));
    assert_eq!(decode(v).unwrap_err().field.as_deref(), Some("source.ts_ms"));
    let mut v = envelope();
    v["after"] = json!([1]);
    assert_eq!(decode(v).unwrap_err().field.as_deref(), Some("after"));
    let v = json!({"id": 1, "__op": "u", "__table": "t"});
    assert_eq!(decode(v).unwrap_err().field.as_deref(), Some("__source_ts_ms"));
}

/// The flattened form's `__op` is one of the operations ExtractNewRecordState writes: any
/// other is refused naming it (a trial's `"__op": "q"` was counted as a finished run).
#[test]
fn a_flattened_op_outside_c_u_d_r_is_refused() {
    let row = |op: Value| {
        json!({"id": 1, "status": "COMPLETED", "__op": op, "__table": "pipeline_run",
            "__source_ts_ms": 1762367011393i64})
    };
    for (op, kind) in [("c", "INSERT"), ("u", "UPDATE"), ("d", "DELETE"), ("r", "READ")] {
        let e = decode(row(json!(op))).unwrap();
        assert_eq!(e.source_metadata.change_type.as_deref(), Some(kind), "{op}");
    }
    // absent (add.fields without op): an update, as before
    let mut v = row(Value::Null);
    v.as_object_mut().unwrap().remove("__op");
    assert_eq!(decode(v).unwrap().source_metadata.change_type.as_deref(), Some("UPDATE"));
    for op in [json!("q"), json!(5), json!("U"), json!("x".repeat(500))] {
        let e = decode(row(op.clone())).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("__op"), "{op}");
        assert!(e.message.contains("expected c, u, d or r") && e.message.len() < 200, "{e}");
    }
}

/// A row's error and its path are named where the event has the row: `after` or `before`
/// (a delete), under `payload.` inside the schema wrapper (every other field too), and
/// top-level when flattened.
#[test]
fn row_fields_are_named_where_the_event_has_them() {
    let schema = |v: Value| json!({"schema": {"type": "struct"}, "payload": v});
    let mut deleted = envelope();
    deleted["op"] = json!("d");
    deleted["before"] = deleted["after"].take();
    let flat = json!({"id": 1, "status": "COMPLETED", "__op": "u", "__table": "pipeline_run",
        "__source_ts_ms": 1762367011393i64});
    for (event, column, field, path) in [
        (envelope(), "/after/status", "after.status", "after"),
        (deleted.clone(), "/before/status", "before.status", "before"),
        (schema(envelope()), "/payload/after/status", "payload.after.status", "payload.after"),
        (schema(deleted), "/payload/before/status", "payload.before.status", "payload.before"),
        (flat.clone(), "/status", "status", ""),
        (schema(flat), "/payload/status", "payload.status", "payload"),
    ] {
        assert_eq!(decode(event.clone()).unwrap().payload.unwrap().path, path, "{event}");
        let mut bad = event.clone();
        *bad.pointer_mut(column).unwrap() = json!(3);
        let e = decode(bad).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{event}");
        assert_eq!(e.message, format!("{field} must be a string"));
    }
    let mut v = schema(envelope());
    v["payload"]["op"] = json!("x");
    assert_eq!(decode(v).unwrap_err().field.as_deref(), Some("payload.op"));
    let mut v = schema(envelope());
    v["payload"]["source"].as_object_mut().unwrap().retain(|k, _| !k.starts_with("ts_"));
    let e = decode(v).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("payload.source.ts_ms"));
    assert!(e.message.starts_with("payload.source.ts_ms (or ts_us)"), "{e}");
}

/// The JSON converter's wrapper is recognised around the flattened form too, and a wrapper
/// whose payload is no event is refused naming `payload` (it was taken for a Datastream
/// record without `source_timestamp`).
#[test]
fn the_schema_wrapper_around_any_form_or_none() {
    let flat = json!({"id": 1, "status": "COMPLETED", "__op": "u", "__table": "pipeline_run",
        "__source_ts_ms": 1762367011393i64});
    let wrapped = json!({"schema": {"type": "struct"}, "payload": flat});
    assert!(looks_like(wrapped.as_object().unwrap()));
    assert_eq!(crate::decode::record(wrapped).unwrap().table(), Some("pipeline_run"));
    for payload in [json!("x"), json!(null), json!([1]), json!(5)] {
        let v = json!({"schema": {}, "payload": payload});
        assert!(looks_like(v.as_object().unwrap()), "{v}");
        let e = crate::decode::record(v.clone()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("payload"), "{v}: {e}");
        assert!(e.message.contains("schema wrapper"), "{e}");
    }
    // a third member: not the converter's wrapper (a Datastream record's error decides)
    let v = json!({"schema": {}, "payload": "x", "source_timestamp": 1762367011393i64});
    assert!(!looks_like(v.as_object().unwrap()));
    // a wrapper around something that is not an event is not taken for one
    let v = json!({"schema": {}, "payload": {"id": 1}});
    assert!(!looks_like(v.as_object().unwrap()));
}

/// Members of the wrong type are refused naming them, not read as absent: a table `5` matched
/// no handler, an object `lsn` left the identity without its position, `__deleted: "maybe"`
/// was "not deleted", an object `__op` an update.
#[test]
fn members_of_the_wrong_type_are_refused() {
    let flat = || {
        json!({"id": 1, "status": "COMPLETED", "__op": "u", "__table": "pipeline_run",
            "__source_ts_ms": 1762367011393i64})
    };
    let cases = [
        (envelope(), "/source/table", json!(5), "source.table", "must be a string"),
        (envelope(), "/source/db", json!(["d"]), "source.db", "must be a string"),
        (envelope(), "/source/name", json!(true), "source.name", "must be a string"),
        (envelope(), "/source/schema", json!(1), "source.schema", "must be a string"),
        (envelope(), "/source/lsn", json!({"a": 1}), "source.lsn", "must be a string or a number"),
        (envelope(), "/source/txId", json!([1]), "source.txId", "must be a string or a number"),
        (flat(), "/__table", json!(5), "__table", "must be a string"),
        (flat(), "/__lsn", json!({}), "__lsn", "must be a string or a number"),
        (flat(), "/__op", json!({}), "__op", "must be a string or a number"),
        (flat(), "/__deleted", json!("maybe"), "__deleted", "must be \"true\", \"false\" or a boolean"),
        (flat(), "/__deleted", json!(1), "__deleted", "must be \"true\", \"false\" or a boolean"),
    ];
    for (mut event, at, value, field, words) in cases {
        match event.pointer_mut(at) {
            Some(v) => *v = value.clone(),
            None => {
                event.as_object_mut().unwrap().insert(at[1..].to_string(), value.clone());
            }
        }
        let e = decode(event).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{at} = {value}: {e}");
        assert!(e.message.contains(words), "{at} = {value}: {e}");
    }
    // the accepted spellings of __deleted, and numbers where Debezium writes them
    for (deleted, is) in [(json!("true"), true), (json!("false"), false), (json!(true), true), (Value::Null, false)] {
        let mut v = flat();
        v["__deleted"] = deleted.clone();
        assert_eq!(decode(v).unwrap().source_metadata.is_deleted, is, "{deleted}");
    }
    assert_eq!(decode(envelope()).unwrap().source_metadata.tx_id.as_deref(), Some("556"));
}

/// The identity is built from the connector, database, table, log position and op: one too
/// long names its longest part, never a `uuid` the event does not have.
#[test]
fn a_too_long_identity_names_its_longest_part() {
    let e = decode(envelope()).unwrap();
    assert_eq!(e.uuid.as_deref(), Some("debezium:mage:mage:pipeline_run:24023128:u"));
    for (at, field) in
        [("/source/name", "source.name"), ("/source/table", "source.table"), ("/source/lsn", "source.lsn")]
    {
        let mut v = envelope();
        *v.pointer_mut(at).unwrap() = json!("x".repeat(300));
        let e = decode(v).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert!(e.message.starts_with(&format!("{field} is 300 bytes long")), "{e}");
    }
    let flat = json!({"id": 1, "__op": "u", "__table": "t".repeat(300), "__source_ts_ms": 1762367011393i64});
    assert_eq!(decode(flat).unwrap_err().field.as_deref(), Some("__table"));
}
