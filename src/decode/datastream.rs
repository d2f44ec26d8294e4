//! The Datastream change record (protocols.md §3.2), decoded into a typed change event.
//!
//! Only what the function uses is typed; `payload.variables` stays JSON because its shape is
//! defined by each Mage pipeline. Timestamps may be RFC 3339 strings, `YYYY-MM-DD HH:MM:SS[.f]`
//! strings (UTC) or epoch-millisecond numbers.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use super::DecodeError;
use super::change::{ChangeEvent, PipelineRun, SourceMetadata};
use super::time::in_range;

pub(crate) mod members;
use members::Members;

fn opt_string(o: &Map<String, Value>, key: &str, prefix: &str) -> Result<Option<String>, DecodeError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => {
            Err(DecodeError::malformed(Some(format!("{prefix}{key}")), format!("{prefix}{key} must be a string")))
        }
    }
}

/// A time column of the run row as text (a number, an epoch time, as its digits); the
/// lifecycle profiles check that it is a time ([`crate::handlers::lifecycle`]).
///
/// Errors: any other type, naming `<prefix><key>` ("must be a string" was untrue: epoch
/// numbers are times too).
fn time_text(o: &Map<String, Value>, key: &str, prefix: &str) -> Result<Option<String>, DecodeError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(DecodeError::malformed(
            Some(format!("{prefix}{key}")),
            format!("{prefix}{key} must be a time (an ISO-8601 text or an epoch number)"),
        )),
    }
}

/// Like [`opt_string`], moving the text out of the record instead of copying it (the record is
/// decoded once and dropped: one allocation fewer per field and record).
fn take_string(o: &mut Map<String, Value>, key: &str, prefix: &str) -> Result<Option<String>, DecodeError> {
    match o.get_mut(key) {
        Some(Value::String(s)) => Ok(Some(std::mem::take(s))),
        _ => opt_string(o, key, prefix),
    }
}

/// A schema or table name, moved out of the record: a string (a number, which
/// [`take_string`] would take as its digits, is no name Datastream writes: a table `5` matched
/// no handler and the record was skipped silently).
fn take_name(o: &mut Map<String, Value>, key: &str, prefix: &str) -> Result<Option<String>, DecodeError> {
    match o.get_mut(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(std::mem::take(s))),
        Some(_) => {
            Err(DecodeError::malformed(Some(format!("{prefix}{key}")), format!("{prefix}{key} must be a string")))
        }
    }
}

/// Parses a Datastream timestamp: epoch milliseconds, RFC 3339, or `YYYY-MM-DD[ T]HH:MM:SS[.f]`
/// without offset (taken as UTC).
pub fn parse_timestamp(v: &Value, field: &str) -> Result<DateTime<FixedOffset>, DecodeError> {
    let bad = |why: &str| DecodeError::malformed(Some(field.to_string()), format!("{field} {why}"));
    match v {
        Value::Number(n) => {
            let ms = n.as_i64().or_else(|| super::time::integral(n)).ok_or_else(|| match n.as_f64() {
                Some(f) if f.fract() == 0.0 => bad("is out of range: no time in epoch milliseconds"),
                _ => bad("must be an integer number of epoch milliseconds"),
            })?;
            Utc.timestamp_millis_opt(ms).single().map(|t| t.fixed_offset()).ok_or_else(|| bad("is out of range"))
        }
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t);
            }
            let normalised = s.replacen(' ', "T", 1);
            if let Ok(t) = DateTime::parse_from_rfc3339(&normalised) {
                return Ok(t);
            }
            for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
                if let Ok(naive) = NaiveDateTime::parse_from_str(&normalised, fmt) {
                    return Ok(naive.and_utc().fixed_offset());
                }
            }
            Err(bad("is not an RFC 3339 timestamp, 'YYYY-MM-DD HH:MM:SS[.f]' or epoch milliseconds"))
        }
        Value::Null => Err(bad("is required")),
        _ => Err(bad("must be a string or a number")),
    }
}

/// Decodes a Datastream record (JSON) into a [`ChangeEvent`], taking the record so that the row
/// is moved into the event, not copied.
///
/// Errors: a field of the wrong type, a missing `source_timestamp`, or a `source_timestamp` or
/// `read_timestamp` outside [`super::time::in_range`], naming the field.
pub fn decode(record: Value) -> Result<ChangeEvent, DecodeError> {
    let Value::Object(mut o) = record else {
        return Err(DecodeError::malformed(None, "the Datastream record must be a JSON object"));
    };
    decode_members(Members::take(&mut o))
}

/// A string member (a number is taken as its text), moved out of the record.
fn member_string(v: Option<Value>, key: &str) -> Result<Option<String>, DecodeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(DecodeError::malformed(Some(key.to_string()), format!("{key} must be a string"))),
    }
}

/// [`decode`] of the record's members, however they were read (from its JSON tree, or straight
/// from its text by [`members::record`]).
pub(crate) fn decode_members(m: Members) -> Result<ChangeEvent, DecodeError> {
    let source_timestamp = match &m.source_timestamp {
        None => return Err(DecodeError::malformed(Some("source_timestamp".into()), "source_timestamp is required")),
        Some(v) => in_range("source_timestamp", parse_timestamp(v, "source_timestamp")?)?,
    };
    let read_timestamp = match &m.read_timestamp {
        None | Some(Value::Null) => None,
        Some(v) => Some(in_range("read_timestamp", parse_timestamp(v, "read_timestamp")?)?),
    };
    let source_metadata = match m.source_metadata {
        None | Some(Value::Null) => SourceMetadata::default(),
        Some(Value::Object(mut o)) => decode_source_metadata(&mut o)?,
        Some(_) => {
            return Err(DecodeError::malformed(Some("source_metadata".into()), "source_metadata must be an object"));
        }
    };
    let uuid = member_string(m.uuid, "uuid")?;
    let stream = member_string(m.stream_name, "stream_name")?;
    let object = member_string(m.object, "object")?;
    let read_method = member_string(m.read_method, "read_method")?;
    let payload = match m.payload {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(row_payload(p, super::change::PAYLOAD)?),
        Some(_) => return Err(DecodeError::malformed(Some("payload".into()), "payload must be an object")),
    };
    Ok(ChangeEvent { uuid, stream, source_timestamp, read_timestamp, object, read_method, source_metadata, payload })
}

/// Decodes a record given by reference (tests and tools; the pipeline uses [`decode`]).
pub fn decode_ref(record: &Value) -> Result<ChangeEvent, DecodeError> {
    decode(record.clone())
}

fn decode_source_metadata(m: &mut Map<String, Value>) -> Result<SourceMetadata, DecodeError> {
    let p = "source_metadata.";
    let is_deleted = match m.get("is_deleted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(DecodeError::malformed(
                Some(format!("{p}is_deleted")),
                "source_metadata.is_deleted must be a boolean",
            ));
        }
    };
    let primary_keys = match m.get_mut("primary_keys") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter_mut()
            .filter_map(|v| match v {
                Value::String(s) => Some(std::mem::take(s)),
                _ => None,
            })
            .collect(),
        Some(_) => {
            return Err(DecodeError::malformed(
                Some(format!("{p}primary_keys")),
                "source_metadata.primary_keys must be an array of strings",
            ));
        }
    };
    let change_type = take_string(m, "change_type", p)?;
    if let Some(ct) = change_type.as_deref() {
        check_change_type(ct)?;
    }
    Ok(SourceMetadata {
        schema: take_name(m, "schema", p)?,
        table: take_name(m, "table", p)?,
        change_type,
        is_deleted,
        lsn: take_string(m, "lsn", p)?,
        tx_id: take_string(m, "tx_id", p)?,
        primary_keys,
    })
}

/// The `source_metadata.change_type` values a Datastream record may carry (protocols.md §3.2,
/// "change_type values"), compared without regard to case; the empty string (like a missing
/// value) is an upsert.
const CHANGE_TYPES: [&str; 6] = ["INSERT", "UPDATE", "UPDATE-INSERT", "", "DELETE", "UPDATE-DELETE"];

/// Refuses a `change_type` outside [`CHANGE_TYPES`]: taken for a live change, an unknown one
/// (a typo, another source's operation) would be counted as an upsert.
fn check_change_type(ct: &str) -> Result<(), DecodeError> {
    if CHANGE_TYPES.iter().any(|known| ct.eq_ignore_ascii_case(known)) {
        return Ok(());
    }
    Err(DecodeError::malformed(
        Some("source_metadata.change_type".into()),
        format!(
            "source_metadata.change_type '{}' is not one of INSERT, UPDATE, UPDATE-INSERT, DELETE, UPDATE-DELETE \
             or empty",
            crate::redact::excerpt(ct, crate::redact::EXCERPT_CHARS)
        ),
    ))
}

/// The row after a change (any source format), with the Mage `pipeline_run` columns the claim
/// handlers read typed. `path` is where the row sits in the record ([`PipelineRun::path`]);
/// error fields are named `<path>.<column>`.
pub(crate) fn row_payload(mut p: Map<String, Value>, path: &'static str) -> Result<PipelineRun, DecodeError> {
    let pre: &str = &match path {
        "" => Cow::Borrowed(""),
        super::change::PAYLOAD => Cow::Borrowed("payload."),
        other => Cow::Owned(format!("{other}.")),
    };
    let id = match p.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(Value::String(s)) => {
            // the row's identity, kept (hashed) by the fact store and logged like the uuid
            super::bounded_id(&format!("{pre}id"), Some(s))?;
            s.parse().ok()
        }
        Some(_) => {
            return Err(DecodeError::malformed(
                Some(format!("{pre}id")),
                format!("{pre}id must be an integer or a text"),
            ));
        }
    };
    let not_an_object =
        || DecodeError::malformed(Some(format!("{pre}variables")), format!("{pre}variables must be a JSON object"));
    match p.get("variables") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        // Mage's JSON column can arrive as JSON text (Debezium, DMS, some relays): parsed once.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => {
                p.insert("variables".into(), v);
            }
            _ => return Err(not_an_object()),
        },
        Some(_) => return Err(not_an_object()),
    }
    // pipeline_uuid and status must be strings when present: they become label values.
    let strict = |key: &str| -> Result<Option<String>, DecodeError> {
        match p.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(DecodeError::malformed(Some(format!("{pre}{key}")), format!("{pre}{key} must be a string"))),
        }
    };
    Ok(PipelineRun {
        path,
        id,
        pipeline_uuid: strict("pipeline_uuid")?,
        status: strict("status")?,
        execution_date: time_text(&p, "execution_date", pre)?,
        started_at: time_text(&p, "started_at", pre)?,
        completed_at: time_text(&p, "completed_at", pre)?,
        row: p,
    })
}

#[cfg(test)]
mod tests {
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
            (
                json!({"source_timestamp": 1705314600000i64, "payload": {"pipeline_uuid": ["x"]}}),
                "payload.pipeline_uuid",
            ),
            (json!({"source_timestamp": 1705314600000i64, "payload": {"variables": [1]}}), "payload.variables"),
            (json!({"source_timestamp": 1705314600000i64, "payload": {"id": [1]}}), "payload.id"),
            (
                json!({"source_timestamp": 1705314600000i64, "source_metadata": {"is_deleted": "no"}}),
                "source_metadata.is_deleted",
            ),
            (json!({"source_timestamp": 1705314600000i64, "source_metadata": 5}), "source_metadata"),
            // a name is a string: a table `5` matched no handler, the record skipped silently
            (json!({"source_timestamp": 1705314600000i64, "source_metadata": {"table": 5}}), "source_metadata.table"),
            (
                json!({"source_timestamp": 1705314600000i64, "source_metadata": {"schema": false}}),
                "source_metadata.schema",
            ),
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
            assert!(
                e.message.contains("INSERT, UPDATE, UPDATE-INSERT, DELETE, UPDATE-DELETE or empty"),
                "{}",
                e.message
            );
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
        let e = decode(json!({"source_timestamp": 1705314600000i64, "payload": {"variables": "{\"partner\":\"p\"}"}}))
            .unwrap();
        assert_eq!(e.payload.unwrap().variables().unwrap().get("partner"), Some(&json!("p")));
    }
}
