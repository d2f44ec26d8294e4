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
        // the Debezium envelope's rows (its schema wrapper renames them after decoding)
        "after" => Cow::Borrowed("after."),
        "before" => Cow::Borrowed("before."),
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
mod tests;
