//! Debezium change events of the PostgreSQL connector, in JSON (lifecycle.md C.1; Debezium's
//! `connectors/postgresql.adoc` and `transformations/event-flattening.adoc`, debezium/debezium
//! @aad55199), decoded into a [`ChangeEvent`]. Three forms are read:
//! * the envelope `{"before", "after", "source", "op", "ts_ms"}` (`schemas.enable=false`);
//! * the same inside `{"schema": {...}, "payload": {...}}` (the JSON converter's default);
//! * the flattened "new record state" (`ExtractNewRecordState` with `add.fields`): the row itself
//!   plus `__op`, `__table`, `__lsn`, `__source_ts_ms`, `__deleted` (string or number values, as
//!   different Debezium versions write them).
//!
//! `op`: `c` insert, `u` update, `d` delete, `r` snapshot read (history, as is any record whose
//! `source.snapshot` is not `false`), `t` truncate and `m` message (no row: ignored as deletes
//! are). Column encodings are left as Debezium writes them (`timestamptz` as ISO text,
//! `timestamp` as epoch microseconds, JSON columns as JSON text): the consumers read both. A
//! TOASTed column that did not change arrives as `__debezium_unavailable_value` and is left out
//! of the row.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::DecodeError;
use super::change::{ChangeEvent, SourceMetadata};
use super::time::{Epoch, epoch};

/// The placeholder Debezium writes for an unchanged TOASTed column (`unavailable.value.placeholder`).
const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// Whether a JSON object is a Debezium change event in one of the three forms: the envelope, the
/// flattened form, or either inside the JSON converter's `{"schema": ..., "payload": ...}`
/// (`schemas.enable=true`). A wrapper of exactly those two members whose `payload` is no object
/// is Debezium's too, so that its error names `payload` (a Datastream record has no `schema`).
pub fn looks_like(o: &Map<String, Value>) -> bool {
    let envelope = |o: &Map<String, Value>| {
        // `op` of any type: a number or null is this format's error, named `op`, not "no record";
        // a truncate (`t`) or logical message (`m`) has `source` but no row (Debezium writes a
        // message's `{"prefix", "content"}` as `message`, which is no Pub/Sub message here)
        o.contains_key("op") && (o.contains_key("after") || o.contains_key("before") || o.contains_key("source"))
    };
    let flattened = |o: &Map<String, Value>| {
        o.contains_key("__op") || o.contains_key("__table") && o.contains_key("__source_ts_ms")
    };
    let wrapper = || {
        o.contains_key("schema")
            && match o.get("payload") {
                Some(Value::Object(p)) => envelope(p) || flattened(p),
                Some(_) => o.len() == 2,
                None => false,
            }
    };
    envelope(o) || flattened(o) || wrapper()
}

/// The time of `ts_us`, else `ts_ms`, of `o` (`prefix` names `o` in errors), range-checked
/// ([`super::time::epoch`]); `None` when neither is given.
fn epoch_time(o: &Map<String, Value>, prefix: &str) -> Result<Option<DateTime<FixedOffset>>, DecodeError> {
    let given = |k: &str| o.get(k).filter(|v| !v.is_null());
    match (given("ts_us"), given("ts_ms")) {
        (Some(us), _) => epoch(us, Epoch::Micros, &format!("{prefix}ts_us")).map(Some),
        (None, Some(ms)) => epoch(ms, Epoch::Millis, &format!("{prefix}ts_ms")).map(Some),
        (None, None) => Ok(None),
    }
}

/// A text member: a string, or a number as its digits (Debezium writes `lsn`, `txId` and `pos`
/// as numbers); `None` when absent or null.
///
/// Errors: any other type (an object, a list, a boolean), naming `field`: it would have been
/// read as absent (a record identity without its log position, an `__op` taken for `u`).
fn text(v: Option<&Value>, field: &str) -> Result<Option<String>, DecodeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(DecodeError::malformed(Some(field.into()), format!("{field} must be a string or a number"))),
    }
}

/// The record's identity, `debezium:` and its parts joined by `:` (the flattened form has no
/// connector name: `debezium:<db>:...`), at most [`super::MAX_ID_BYTES`] long.
///
/// Errors: a longer identity names its longest part (a Debezium event has no `uuid` of its
/// own: "uuid is 340 bytes long" named nothing the sender wrote).
fn identity(parts: &[(&str, &str)]) -> Result<String, DecodeError> {
    let uuid = std::iter::once("debezium").chain(parts.iter().map(|(_, v)| *v)).collect::<Vec<_>>().join(":");
    if uuid.len() > super::MAX_ID_BYTES {
        let (field, value) = parts.iter().max_by_key(|(_, v)| v.len()).expect("parts");
        return Err(DecodeError::malformed(
            Some(field.to_string()),
            format!(
                "{field} is {} bytes long: the record's identity (connector, database, table, log position, op) \
                 may be at most {} bytes",
                value.len(),
                super::MAX_ID_BYTES
            ),
        ));
    }
    Ok(uuid)
}

/// A name member (connector, database, schema, table): a string; `None` when absent or null.
///
/// Errors: any other type, naming `field` (a table `5` matched no handler and was skipped).
fn name(v: Option<&Value>, field: &str) -> Result<Option<String>, DecodeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(DecodeError::malformed(Some(field.into()), format!("{field} must be a string"))),
    }
}

fn row_of(v: Option<Value>, field: &str) -> Result<Option<Map<String, Value>>, DecodeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(mut row)) => {
            row.retain(|_, v| v.as_str() != Some(UNAVAILABLE));
            Ok(Some(row))
        }
        Some(_) => Err(DecodeError::malformed(Some(field.to_string()), format!("{field} must be an object (the row)"))),
    }
}

/// Decodes one Debezium change event (any of the three forms).
///
/// Errors: an unknown `op`, a missing source time, a source or read time (`ts_ms`, `ts_us`)
/// outside [`super::time::in_range`], a row that is not an object, naming the field.
pub fn decode(value: Value) -> Result<ChangeEvent, DecodeError> {
    let Value::Object(mut o) = value else {
        return Err(DecodeError::malformed(None, "a Debezium change event must be a JSON object"));
    };
    if o.contains_key("schema")
        && let Some(payload) = o.remove("payload")
    {
        // the JSON converter's schema wrapper: every field sits under `payload`
        let Value::Object(payload) = payload else {
            return Err(DecodeError::malformed(
                Some("payload".into()),
                "payload must be an object (the Debezium change event inside the JSON converter's schema wrapper)",
            ));
        };
        let mut event = unwrapped(payload).map_err(|e| e.under("payload"))?;
        if let Some(row) = &mut event.payload {
            row.path = match row.path {
                "after" => "payload.after",
                "before" => "payload.before",
                _ => "payload",
            };
        }
        return Ok(event);
    }
    unwrapped(o)
}

/// The envelope or the flattened form, outside any schema wrapper.
fn unwrapped(mut o: Map<String, Value>) -> Result<ChangeEvent, DecodeError> {
    if o.contains_key("__op") || o.contains_key("__table") {
        return flattened(o);
    }
    let op = match o.get("op") {
        Some(Value::String(s)) => s.clone(),
        other => {
            let what = if other.is_none_or(Value::is_null) { "missing" } else { "not a string" };
            return Err(DecodeError::malformed(
                Some("op".into()),
                format!("Debezium op is {what}: expected c, u, d, r, t or m"),
            ));
        }
    };
    let source = match o.remove("source") {
        Some(Value::Object(s)) => s,
        _ => {
            return Err(DecodeError::malformed(
                Some("source".into()),
                "a Debezium change event needs its `source` block",
            ));
        }
    };
    let snapshot = match source.get("snapshot") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s != "false",
        Some(_) => true,
    };
    let change_type = match op.as_str() {
        "c" => "INSERT",
        "u" => "UPDATE",
        "d" => "DELETE",
        "r" => "READ",
        "t" => "TRUNCATE",
        "m" => "MESSAGE",
        other => {
            return Err(DecodeError::malformed(
                Some("op".into()),
                format!("unknown Debezium op '{other}': expected c, u, d, r, t or m"),
            ));
        }
    };
    let source_timestamp = epoch_time(&source, "source.")?.ok_or_else(|| {
        DecodeError::malformed(Some("source.ts_ms".into()), "source.ts_ms (or ts_us), the commit time, is required")
    })?;
    let source_us = source_timestamp.timestamp_micros();
    let read_timestamp = epoch_time(&o, "")?;
    let deleted = matches!(op.as_str(), "d" | "t" | "m");
    let path = if op == "d" { "before" } else { "after" };
    let row = match op.as_str() {
        "t" | "m" => None,
        _ => row_of(o.remove(path), path)?,
    };
    let connector = name(source.get("name"), "source.name")?.unwrap_or_default();
    let db = name(source.get("db"), "source.db")?.unwrap_or_default();
    let table = name(source.get("table"), "source.table")?;
    let lsn = text(source.get("lsn"), "source.lsn")?;
    let position = match lsn.clone() {
        Some(lsn) => lsn,
        None => text(source.get("pos"), "source.pos")?.unwrap_or_else(|| source_us.to_string()),
    };
    let uuid = identity(&[
        ("source.name", &connector),
        ("source.db", &db),
        ("source.table", table.as_deref().unwrap_or("")),
        (if lsn.is_some() { "source.lsn" } else { "source.pos" }, &position),
        ("op", &op),
    ])?;
    let metadata = SourceMetadata {
        schema: name(source.get("schema"), "source.schema")?,
        table,
        change_type: Some(change_type.into()),
        is_deleted: deleted,
        lsn,
        tx_id: text(source.get("txId"), "source.txId")?,
        primary_keys: Vec::new(),
    };
    Ok(ChangeEvent {
        uuid: Some(uuid),
        stream: Some(format!("debezium:{connector}:{db}")),
        source_timestamp,
        read_timestamp,
        object: None,
        read_method: Some(if snapshot || op == "r" { "debezium-snapshot" } else { "debezium-cdc" }.into()),
        source_metadata: metadata,
        payload: row.map(|r| super::datastream::row_payload(r, path)).transpose()?,
    })
}

/// The flattened form: the row plus `__`-prefixed metadata fields.
fn flattened(mut o: Map<String, Value>) -> Result<ChangeEvent, DecodeError> {
    let field = |o: &mut Map<String, Value>, k: &str| o.remove(&format!("__{k}"));
    let op = text(field(&mut o, "op").as_ref(), "__op")?.unwrap_or_else(|| "u".into());
    let table = name(field(&mut o, "table").as_ref(), "__table")?;
    if table.is_none() {
        // without it no lifecycle profile can tell the table, and the run's facts were skipped
        // silently (the claim handlers, which never looked at tables, still ran)
        return Err(DecodeError::malformed(
            Some("__table".into()),
            "__table is required (add.fields=op,table,lsn,source.ts_ms on ExtractNewRecordState)",
        ));
    }
    let lsn = text(field(&mut o, "lsn").as_ref(), "__lsn")?;
    let source_ms = field(&mut o, "source_ts_ms").filter(|v| !v.is_null());
    // ExtractNewRecordState writes "true"/"false" (delete.handling.mode=rewrite); a boolean is
    // taken too; anything else was read as "not deleted"
    let deleted = match field(&mut o, "deleted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(_) => {
            return Err(DecodeError::malformed(
                Some("__deleted".into()),
                "__deleted must be \"true\", \"false\" or a boolean",
            ));
        }
    } || op == "d";
    let db = name(field(&mut o, "db").as_ref(), "__db")?.unwrap_or_default();
    let schema = name(field(&mut o, "schema").as_ref(), "__schema")?;
    o.retain(|k, _| !k.starts_with("__"));
    let source_timestamp = match source_ms {
        Some(ms) => epoch(&ms, Epoch::Millis, "__source_ts_ms")?,
        None => {
            return Err(DecodeError::malformed(
                Some("__source_ts_ms".into()),
                "__source_ts_ms is required (add.fields=op,table,lsn,source.ts_ms on ExtractNewRecordState)",
            ));
        }
    };
    let source_ms = source_timestamp.timestamp_millis();
    // ExtractNewRecordState writes c, u, d (delete.handling.mode=rewrite) and r (snapshot reads)
    let change_type = match op.as_str() {
        "c" => "INSERT",
        "u" => "UPDATE",
        "d" => "DELETE",
        "r" => "READ",
        other => {
            return Err(DecodeError::malformed(
                Some("__op".into()),
                format!(
                    "unknown Debezium __op '{}': expected c, u, d or r",
                    crate::redact::excerpt(other, crate::redact::EXCERPT_CHARS)
                ),
            ));
        }
    };
    let position = lsn.clone().unwrap_or_else(|| (source_ms * 1000).to_string());
    let uuid =
        identity(&[("__db", &db), ("__table", table.as_deref().unwrap_or("")), ("__lsn", &position), ("__op", &op)])?;
    o.retain(|_, v| v.as_str() != Some(UNAVAILABLE));
    Ok(ChangeEvent {
        uuid: Some(uuid),
        stream: Some(format!("debezium::{db}")),
        source_timestamp,
        read_timestamp: None,
        object: None,
        read_method: Some(if op == "r" { "debezium-snapshot" } else { "debezium-cdc" }.into()),
        source_metadata: SourceMetadata {
            schema,
            table,
            change_type: Some(change_type.into()),
            is_deleted: deleted,
            lsn,
            tx_id: None,
            primary_keys: Vec::new(),
        },
        payload: Some(super::datastream::row_payload(o, "")?),
    })
}

#[cfg(test)]
mod tests;
