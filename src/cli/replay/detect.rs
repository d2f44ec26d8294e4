//! Files in a format replay does not read. Each line goes through the format's decoder behind a
//! shape check: a JSON line that is no change record of any format (a wal2json change, a
//! `.expected.json` oracle) is refused as such, not with the first missing field of a
//! Datastream record ("source_timestamp is required"). When none of a file's first lines (its
//! first chunk) is a record, the file is in another format: it is reported once, by name, and
//! not read on, instead of one error per line.

use super::args::Format;
use crate::decode::RecordInput;
use crate::decode::files::{RecordDecoder, SHAPE_FIELD, shaped};

/// What a replay reads, for messages.
const EXPECTED: &str = "replay reads JSON Lines of Datastream records, Debezium change events or AWS DMS messages";

/// The decoder of `format` behind the shape check.
pub fn decoder(format: Format) -> RecordDecoder {
    match format {
        Format::Auto => |v| shaped(v, crate::decode::record),
        Format::Datastream => |v| shaped(v, crate::decode::datastream::decode),
        Format::Debezium => |v| shaped(v, crate::decode::debezium::decode),
        Format::Dms => |v| shaped(v, crate::decode::dms::decode),
    }
}

/// Whether a line was refused for not being a record at all (not JSON, or the wrong shape).
fn not_a_record(input: &RecordInput) -> bool {
    match &input.record {
        Err(e) => {
            e.field.as_deref().is_some_and(|f| f.ends_with(&format!(": {SHAPE_FIELD}")))
                || e.message.contains("is not a JSON record")
        }
        Ok(_) => false,
    }
}

/// Why the file is in a format replay does not read, when no line of its first chunk is a record
/// (each is not JSON, or JSON of another shape): the first line's reason; `None` otherwise.
pub fn unsupported(first_chunk: &[RecordInput]) -> Option<String> {
    if first_chunk.is_empty() || !first_chunk.iter().all(not_a_record) {
        return None;
    }
    let first = first_chunk[0].record.as_ref().err().map(|e| e.message.as_str()).unwrap_or_default();
    let lines = first_chunk.len();
    Some(format!(
        "unsupported format: none of its first {lines} line{} is a change record ({}: {first}); {EXPECTED}; \
         nothing of the file was replayed",
        if lines == 1 { "" } else { "s" },
        first_chunk[0].item.as_deref().unwrap_or("line 1"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DecodeError;
    use serde_json::{Value, json};

    fn input(line: u64, v: Value) -> RecordInput {
        let record = decoder(Format::Auto)(v).map_err(|mut e| {
            e.field = Some(format!("line {line}: {}", e.field.unwrap_or_default()));
            e
        });
        RecordInput { item: Some(format!("line {line}")), record }
    }

    #[test]
    fn lines_of_another_shape_say_what_they_are() {
        let begin =
            json!({"action": "B", "xid": 763, "timestamp": "2026-11-30 13:30:44.184687+00", "lsn": "0/19E2B18"});
        let e = decoder(Format::Auto)(begin).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("format"));
        assert!(e.message.contains("wal2json") && !e.message.contains("required"), "{e}");
        let e = decoder(Format::Debezium)(json!({"xid": 1, "change": []})).unwrap_err();
        assert!(e.message.contains("wal2json"), "{e}");
        assert!(decoder(Format::Auto)(json!({"runs": []})).unwrap_err().message.contains("a JSON object"));
        // a record of another format still gets its decoder's own error
        let e = decoder(Format::Auto)(json!({"payload": {}})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("source_timestamp"), "{e}");
    }

    /// A record's identity is bounded whichever format is named, as on every other route (a
    /// plain Datastream line, read straight from its text, is bounded too).
    #[test]
    fn every_format_bounds_the_identity() {
        let long = "u".repeat(crate::decode::MAX_ID_BYTES + 1);
        let record = json!({"uuid": long, "source_timestamp": "2026-11-30T13:30:44Z", "payload": {"id": 1}});
        for format in [Format::Auto, Format::Datastream] {
            let e = decoder(format)(record.clone()).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("uuid"), "{format:?}");
        }
        let direct = crate::decode::datastream::members::record(record.to_string().as_bytes()).expect("plain");
        assert_eq!(direct.unwrap_err().field.as_deref(), Some("uuid"));
        let mut ok = record;
        ok["uuid"] = json!("u-1");
        assert!(decoder(Format::Datastream)(ok).is_ok());
    }

    #[test]
    fn a_first_chunk_without_any_record_is_an_unsupported_format() {
        let wal = |a: &str| json!({"action": a, "xid": 763, "lsn": "0/19E2B18"});
        let chunk = [input(1, wal("B")), input(2, wal("I")), input(3, wal("C"))];
        let why = unsupported(&chunk).unwrap();
        assert!(why.starts_with("unsupported format: none of its first 3 lines"), "{why}");
        assert!(why.contains("line 1: a wal2json change"), "{why}");
        let not_json = RecordInput {
            item: Some("line 1".into()),
            record: Err(DecodeError::malformed("line 1".to_string(), "line 1 is not a JSON record: expected value")),
        };
        assert!(unsupported(std::slice::from_ref(&not_json)).is_some(), "a pretty-printed JSON file");
        // one record among them, or a record with a bad field: the file is read line by line
        let record = json!({"source_timestamp": "2026-11-30T13:30:44Z", "payload": {"id": 1}});
        assert_eq!(unsupported(&[input(1, wal("B")), input(2, record)]), None);
        assert_eq!(unsupported(&[input(1, json!({"source_timestamp": true}))]), None);
        assert_eq!(unsupported(&[]), None);
    }
}
