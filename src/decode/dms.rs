//! AWS DMS messages -> [`ChangeEvent`]: what DMS writes to its Kinesis and Kafka targets
//! (`MessageFormat` `json` or `json-unformatted`), one JSON object per row change
//! (lifecycle.md C.2; AWS DMS User Guide, "Using Amazon Kinesis Data Streams as a target").
//!
//! A message is `{"data": {<row>}, "before-image": {...}, "metadata": {...}}`; it becomes:
//!
//! | DMS | change event |
//! |---|---|
//! | `metadata.schema-name`, `metadata.table-name` | `source_metadata.schema`, `.table`; `object` = `<schema>_<table>` |
//! | `metadata.operation` `insert`, `update`, `delete` | `change_type` `INSERT`, `UPDATE`, `DELETE` (a delete is `is_deleted`); `read_method` [`READ_METHOD_CDC`] |
//! | `metadata.operation` `load` (full load) | `change_type` `LOAD`; `read_method` [`READ_METHOD_FULL_LOAD`], which [`ChangeEvent::read_kind`] reads as a backfill: history, skipped unless `PROCESS_HISTORY` |
//! | `metadata.record-type` `control` (`create-table`, `drop-table`, `add-column`, ...) | no event: a [`DecodeErrorKind::NotAChange`](super::DecodeErrorKind::NotAChange) error, which the pipeline answers as done and counts as `ignored` |
//! | `metadata.commit-timestamp` (with `IncludeTransactionDetails`), else `metadata.timestamp` | `source_timestamp` |
//! | `metadata.timestamp` (when DMS processed the change) | `read_timestamp` |
//! | `metadata.transaction-id` | `source_metadata.tx_id` |
//! | `metadata.stream-position` | `source_metadata.lsn` (see [`pg_lsn`]) |
//! | `data` | `payload`: the row as DMS wrote it (for a delete: the key, other columns null). JSON columns arrive as JSON text and stay text, except `variables`, which the Datastream row decoder parses, as for every source |
//! | the change's identity (see [`identity`]) | `uuid` (the de-duplication key) |
//!
//! `before-image` (with `BeforeImageSettings`) is not read: the function's handlers read the row
//! after the change only. DMS messages carry no stream name, so `stream` stays empty.

use serde_json::{Map, Value, json};

use super::DecodeError;
use super::change::ChangeEvent;
use super::datastream;
use super::time::in_range;

/// `read_method` of a change DMS read from the source's log (insert, update, delete): read as
/// [`ReadKind::Cdc`](super::ReadKind::Cdc).
pub const READ_METHOD_CDC: &str = "dms-cdc";
/// `read_method` of a full-load record (`operation` `load`): it contains `backfill`, so
/// [`ChangeEvent::read_kind`] reads it as [`ReadKind::Backfill`](super::ReadKind::Backfill) and
/// the record is history.
pub const READ_METHOD_FULL_LOAD: &str = "dms-full-load-backfill";

/// Whether a JSON value is shaped like a DMS message: an object whose `metadata` object has
/// `record-type`, `operation` or `table-name`, or of exactly `data` and a `metadata` that is no
/// object (so that its error names `metadata`, not "unrecognised body"). (A Datastream record
/// has no `metadata`.)
pub fn looks_like_dms(v: &Value) -> bool {
    match v.get("metadata") {
        Some(Value::Object(m)) => ["record-type", "operation", "table-name"].iter().any(|k| m.contains_key(*k)),
        Some(_) => v.as_object().is_some_and(|o| o.len() == 2 && o.contains_key("data")),
        None => false,
    }
}

fn malformed(field: &str, message: impl Into<String>) -> DecodeError {
    DecodeError::malformed(Some(field.to_string()), message)
}

/// A metadata value as text (DMS writes ids as numbers and names as strings).
fn text(meta: &Map<String, Value>, key: &str) -> Result<Option<String>, DecodeError> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(malformed(&format!("metadata.{key}"), format!("metadata.{key} must be a string or a number"))),
    }
}

/// A schema or table name of `metadata`: a string (a number is no name DMS writes; a table
/// `5` matched no handler and the record was skipped silently).
fn name(meta: &Map<String, Value>, key: &str) -> Result<Option<String>, DecodeError> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(&format!("metadata.{key}"), format!("metadata.{key} must be a string"))),
    }
}

/// The LSN of a PostgreSQL source's `stream-position`, in PostgreSQL's own form.
///
/// For PostgreSQL, DMS writes `<LSN>.<n>.<LSN>` with zero-padded halves, e.g.
/// `00000002/7C007328.2.00000002/7C007328`; the first LSN is taken, without the padding
/// (`2/7C007328`), so that it orders like a Datastream or Debezium LSN. Any other form (another
/// source engine, or no position) gives `None`: the change is then ordered by its commit time.
pub fn pg_lsn(position: &str) -> Option<String> {
    let first = position.split('.').next()?;
    let (hi, lo) = first.split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some(format!("{hi:X}/{lo:X}"))
}

/// The identity of one DMS change, used as its `uuid` (the de-duplication key).
///
/// * With transaction details (`IncludeTransactionDetails`: `transaction-id`,
///   `transaction-record-id`, `stream-position`), the change is named by them and its table:
///   `dms:<schema>.<table>:<operation>:<transaction-id>:<transaction-record-id>:<stream-position>`
///   (missing parts empty). A DMS restart that sends the change again names it the same.
/// * Without them (full-load records, tasks without transaction details), it is `dms-` and the
///   XXH3-128 hash (hex) of the schema, table, operation, `metadata.timestamp` and the row: the
///   same message delivered twice has one identity, two reads of a row at different times two.
pub fn identity(meta: &Map<String, Value>, data: &Map<String, Value>) -> Result<String, DecodeError> {
    let schema = text(meta, "schema-name")?.unwrap_or_default();
    let table = text(meta, "table-name")?.unwrap_or_default();
    let operation = text(meta, "operation")?.unwrap_or_default();
    let tx = text(meta, "transaction-id")?;
    let record = text(meta, "transaction-record-id")?;
    let position = text(meta, "stream-position")?;
    if tx.is_some() || position.is_some() {
        return Ok(format!(
            "dms:{schema}.{table}:{operation}:{}:{}:{}",
            tx.unwrap_or_default(),
            record.unwrap_or_default(),
            position.unwrap_or_default()
        ));
    }
    // serde_json's Map is ordered by key: the serialisation is canonical.
    let bytes = serde_json::to_vec(&json!([schema, table, operation, meta.get("timestamp"), data])).unwrap_or_default();
    Ok(format!("dms-{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)))
}

/// Decodes one DMS message into a [`ChangeEvent`], taking the message so that the row is moved,
/// not copied.
///
/// Errors, each naming its field: a message without `metadata` (`metadata`), a control record
/// ([`DecodeErrorKind::NotAChange`](super::DecodeErrorKind::NotAChange), field
/// `metadata.record-type`: not a failure), an unknown `record-type` or `operation`, a data
/// record without `table-name`, `timestamp` or `data`, a timestamp that does not parse or is out of range ([`super::time::in_range`]), or a row
/// column of the wrong type (`data.status`, `data.variables`, ...).
pub fn decode(message: Value) -> Result<ChangeEvent, DecodeError> {
    let Value::Object(mut o) = message else {
        return Err(DecodeError::malformed(None, "an AWS DMS message must be a JSON object"));
    };
    let meta = match o.remove("metadata") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => {
            return Err(malformed(
                "metadata",
                "metadata is required: an AWS DMS message is {\"data\":{...},\"metadata\":{...}}",
            ));
        }
        Some(_) => return Err(malformed("metadata", "metadata must be an object")),
    };
    let schema = name(&meta, "schema-name")?.filter(|s| !s.is_empty());
    let table = name(&meta, "table-name")?.filter(|s| !s.is_empty());
    let operation = text(&meta, "operation")?;
    match text(&meta, "record-type")?.as_deref() {
        Some("control") => {
            return Err(DecodeError::not_a_change(
                Some("metadata.record-type".into()),
                format!(
                    "an AWS DMS control record ({} of {}{}): no row changed",
                    operation.as_deref().unwrap_or("unknown operation"),
                    schema.as_deref().map(|s| format!("{s}.")).unwrap_or_default(),
                    table.as_deref().unwrap_or("no table"),
                ),
            ));
        }
        Some("data") | None => {}
        Some(other) => {
            return Err(malformed(
                "metadata.record-type",
                format!("metadata.record-type must be 'data' or 'control', not '{other}'"),
            ));
        }
    }
    let (change_type, read_method) = match operation.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("insert") => ("INSERT", READ_METHOD_CDC),
        Some("update") => ("UPDATE", READ_METHOD_CDC),
        Some("delete") => ("DELETE", READ_METHOD_CDC),
        Some("load") => ("LOAD", READ_METHOD_FULL_LOAD),
        Some(_) => {
            return Err(malformed(
                "metadata.operation",
                format!(
                    "metadata.operation of a data record must be load, insert, update or delete, not '{}'",
                    operation.unwrap_or_default()
                ),
            ));
        }
        None => return Err(malformed("metadata.operation", "metadata.operation is required")),
    };
    let Some(table) = table else {
        return Err(malformed("metadata.table-name", "metadata.table-name is required in a data record"));
    };
    let read_timestamp = match meta.get("timestamp") {
        None | Some(Value::Null) => {
            return Err(malformed("metadata.timestamp", "metadata.timestamp is required"));
        }
        Some(v) => in_range("metadata.timestamp", datastream::parse_timestamp(v, "metadata.timestamp")?)?,
    };
    let source_timestamp = match meta.get("commit-timestamp") {
        None | Some(Value::Null) => read_timestamp,
        Some(v) => in_range("metadata.commit-timestamp", datastream::parse_timestamp(v, "metadata.commit-timestamp")?)?,
    };
    let data = match o.remove("data") {
        Some(Value::Object(d)) => d,
        None | Some(Value::Null) => return Err(malformed("data", "data (the row) is required in a data record")),
        Some(_) => return Err(malformed("data", "data must be an object")),
    };
    let uuid = identity(&meta, &data)?;
    let tx_id = text(&meta, "transaction-id")?;
    let lsn = text(&meta, "stream-position")?.as_deref().and_then(pg_lsn);
    // The row is typed by the Datastream decoder (one set of rules for every source); its errors
    // name `payload.<column>`, which is `data.<column>` here. (The time is replaced below; it is
    // given, in range, because the Datastream decoder checks it.)
    let placeholder = source_timestamp.timestamp_millis();
    let mut event = datastream::decode(json!({"source_timestamp": placeholder, "payload": Value::Object(data)}))
        .map_err(|mut e| {
            e.field = e.field.map(|f| f.strip_prefix("payload").map(|rest| format!("data{rest}")).unwrap_or(f));
            e.message = e.message.replace("payload.", "data.").replace("payload ", "data ");
            e
        })?;
    if let Some(row) = &mut event.payload {
        row.path = "data";
    }
    event.uuid = Some(uuid);
    event.source_timestamp = source_timestamp;
    event.read_timestamp = Some(read_timestamp);
    event.object = Some(match &schema {
        Some(s) => format!("{s}_{table}"),
        None => table.clone(),
    });
    event.read_method = Some(read_method.to_string());
    let sm = &mut event.source_metadata;
    sm.schema = schema;
    sm.table = Some(table);
    sm.change_type = Some(change_type.to_string());
    sm.is_deleted = change_type == "DELETE";
    sm.tx_id = tx_id;
    sm.lsn = lsn;
    Ok(event)
}

#[cfg(test)]
mod tests;
