//! Column inputs: a value of the run row as a typed query parameter and as label text.

use chrono::SecondsFormat;
use serde_json::{Map, Value};

use super::spec::ParameterType;
use crate::handlers::lifecycle::derive::{lookup_path, text, time};
use crate::warehouse::Param;

/// Why a column gives no value.
#[derive(Debug, PartialEq)]
pub(super) enum Problem {
    /// The row has no such column (or the path leads nowhere).
    Absent,
    /// The column is NULL.
    Null,
    /// The value does not fit the parameter type: what it is instead (a JSON type, never the
    /// value, which may be personal data).
    Mismatch(String),
}

/// The JSON type of a value, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The value at `path` (a column, or a dotted path into a JSON column) of `row` as a parameter
/// of type `ty`, with its label text.
pub(super) fn read(row: &Map<String, Value>, path: &str, ty: ParameterType) -> Result<(Param, String), Problem> {
    let value = lookup_path(row, path).ok_or(Problem::Absent)?;
    let value = value.as_ref();
    if value.is_null() {
        return Err(Problem::Null);
    }
    let mismatch = || Problem::Mismatch(kind(value).into());
    match ty {
        ParameterType::String => {
            if value.is_object() || value.is_array() {
                return Err(mismatch());
            }
            let t = text(value).ok_or_else(mismatch)?;
            Ok((Param::String(t.clone()), t))
        }
        ParameterType::Int64 => {
            let i = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(mismatch)?;
            Ok((Param::Int(i), i.to_string()))
        }
        ParameterType::Float64 => {
            let f = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                _ => None,
            }
            .ok_or_else(mismatch)?;
            let label = serde_json::Number::from_f64(f).map(|n| n.to_string()).unwrap_or_default();
            Ok((Param::Float(f), label))
        }
        ParameterType::Bool => {
            let b = match value {
                Value::Bool(b) => Some(*b),
                Value::String(s) => match s.trim() {
                    "true" | "TRUE" | "True" | "t" => Some(true),
                    "false" | "FALSE" | "False" | "f" => Some(false),
                    _ => None,
                },
                _ => None,
            }
            .ok_or_else(mismatch)?;
            Ok((Param::Bool(b), b.to_string()))
        }
        ParameterType::Timestamp => {
            let t = time(value, None).ok_or_else(mismatch)?;
            Ok((Param::Timestamp(t), t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
        }
    }
}

/// What a parameter type expects, for messages.
pub(super) fn expected(ty: ParameterType) -> &'static str {
    match ty {
        ParameterType::String => "a text, a number or a boolean (STRING)",
        ParameterType::Int64 => "an integer (INT64)",
        ParameterType::Float64 => "a number (FLOAT64)",
        ParameterType::Bool => "a boolean (BOOL)",
        ParameterType::Timestamp => "a timestamp: ISO-8601 text or epoch number (TIMESTAMP)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn row() -> Map<String, Value> {
        json!({"id": 18264, "text_id": "42", "uuid": "0196-ab", "status": "COMPLETED", "started_at": "2025-11-05T18:19:40.121835Z",
            "naive": "2025-11-05 18:19:40", "micros": 1762366780121835i64, "completed_at": null, "passed_sla": false,
            "ratio": 0.5, "variables": {"rows_target": 1200, "owner": "ana", "nested": {"k": "v"}},
            "json_text": "{\"k\": 3}"})
        .as_object()
        .unwrap()
        .clone()
    }

    fn ok(path: &str, ty: ParameterType) -> (Param, String) {
        read(&row(), path, ty).unwrap_or_else(|e| panic!("{path}: {e:?}"))
    }

    #[test]
    fn typed_values_and_their_label_text() {
        use ParameterType::*;
        let at = chrono::Utc.with_ymd_and_hms(2025, 11, 5, 18, 19, 40).unwrap();
        let with_us = at + chrono::Duration::microseconds(121_835);
        assert_eq!(ok("started_at", Timestamp), (Param::Timestamp(with_us), "2025-11-05T18:19:40.121835Z".into()));
        assert_eq!(ok("naive", Timestamp), (Param::Timestamp(at), "2025-11-05T18:19:40Z".into()), "no offset: UTC");
        assert_eq!(ok("micros", Timestamp).0, Param::Timestamp(with_us), "Debezium's epoch microseconds");
        assert_eq!(ok("id", Int64), (Param::Int(18264), "18264".into()));
        assert_eq!(ok("text_id", Int64), (Param::Int(42), "42".into()));
        assert_eq!(ok("id", String), (Param::String("18264".into()), "18264".into()));
        assert_eq!(ok("status", String), (Param::String("COMPLETED".into()), "COMPLETED".into()));
        assert_eq!(ok("passed_sla", Bool), (Param::Bool(false), "false".into()));
        assert_eq!(ok("passed_sla", String).1, "false");
        assert_eq!(ok("ratio", Float64), (Param::Float(0.5), "0.5".into()));
        assert_eq!(ok("id", Float64).1, "18264.0");
        assert_eq!(ok("variables.rows_target", Int64), (Param::Int(1200), "1200".into()));
        assert_eq!(ok("variables.nested.k", String).1, "v");
        assert_eq!(ok("json_text.k", Int64).0, Param::Int(3), "a JSON column that arrived as text");
    }

    #[test]
    fn absent_null_and_mismatched_values() {
        use ParameterType::*;
        let r = row();
        assert_eq!(read(&r, "ended_at", Timestamp), Err(Problem::Absent));
        assert_eq!(read(&r, "variables.missing", String), Err(Problem::Absent));
        assert_eq!(read(&r, "status.deeper", String), Err(Problem::Absent));
        assert_eq!(read(&r, "completed_at", Timestamp), Err(Problem::Null));
        assert_eq!(read(&r, "status", Timestamp), Err(Problem::Mismatch("a text".into())));
        assert_eq!(read(&r, "uuid", Int64), Err(Problem::Mismatch("a text".into())));
        assert_eq!(read(&r, "ratio", Int64), Err(Problem::Mismatch("a number".into())));
        assert_eq!(read(&r, "variables", String), Err(Problem::Mismatch("an object".into())));
        assert_eq!(read(&r, "status", Bool), Err(Problem::Mismatch("a text".into())));
    }
}
