//! The range of a change time (a commit, source or read timestamp, an OpenLineage `eventTime`):
//! from [`EARLIEST`] (2000-01-01T00:00:00Z) to [`FUTURE_SLACK_SECS`] (one day) after the
//! instance's clock. Nothing the function counts happened before 2000 (the orchestrators it reads
//! are younger), and a time a day ahead is no clock skew: such a time is a corrupt or mistyped
//! field (`ts_ms` -5, seconds read as milliseconds), whose point would be stamped 1970 or
//! refused by the backend. The record is refused (400) naming the field.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde_json::Value;

use super::DecodeError;

/// The earliest change time accepted: 2000-01-01T00:00:00Z, in seconds since 1970.
pub const EARLIEST: i64 = 946_684_800;

/// How far a change time may be ahead of the instance's clock, in seconds: one day.
pub const FUTURE_SLACK_SECS: i64 = 86_400;

/// Which bound `t` passes: "before 2000-01-01" or "more than a day ahead of this instance's
/// clock"; `None` when it is a possible change time. Also what a lifecycle profile checks the
/// row's own times against.
pub fn outside<Tz: TimeZone>(t: &DateTime<Tz>) -> Option<&'static str> {
    if t.timestamp() < EARLIEST {
        Some("before 2000-01-01")
    } else if t.timestamp() > Utc::now().timestamp() + FUTURE_SLACK_SECS {
        Some("more than a day ahead of this instance's clock")
    } else {
        None
    }
}

/// `t` when it lies between [`EARLIEST`] and a day from now; otherwise a 400 naming `field`,
/// saying which bound it passes.
pub fn in_range(field: &str, t: DateTime<FixedOffset>) -> Result<DateTime<FixedOffset>, DecodeError> {
    match outside(&t) {
        None => Ok(t),
        Some(why) => Err(DecodeError::malformed(
            field.to_string(),
            format!("{field} is out of range: {} is {why}", t.to_rfc3339()),
        )),
    }
}

/// The unit of an epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epoch {
    Millis,
    Micros,
}

/// A JSON number written as a float (`1.7623e12`, `1762367011393.0`) whose value is a whole
/// number an `i64` holds: the integer it stands for (some producers write every number as a
/// float); `None` for a fraction or a value beyond `i64`.
pub fn integral(n: &serde_json::Number) -> Option<i64> {
    let f = n.as_f64().filter(|f| f.fract() == 0.0)?;
    // 2^63 itself does not fit; every whole f64 below it in magnitude does, exactly
    (f.abs() < 9_223_372_036_854_775_808.0).then_some(f as i64)
}

/// An epoch number (a JSON number or a string of digits, as Debezium writes them) in `unit`,
/// range-checked with [`in_range`]. A number that is no time at all (past what an `i64` holds,
/// or past year 262143) is "out of range", never "required"; a fraction or text is "must be an
/// integer".
pub fn epoch(v: &Value, unit: Epoch, field: &str) -> Result<DateTime<FixedOffset>, DecodeError> {
    let name = match unit {
        Epoch::Millis => "milliseconds",
        Epoch::Micros => "microseconds",
    };
    let out_of_range = || {
        DecodeError::malformed(
            field.to_string(),
            format!(
                "{field} is out of range: {} is no time in epoch {name}",
                crate::redact::excerpt(&v.to_string(), 32)
            ),
        )
    };
    let not_integer =
        || DecodeError::malformed(field.to_string(), format!("{field} must be an integer number of epoch {name}"));
    let n: i64 = match v {
        Value::Number(n) => match (n.as_i64(), integral(n)) {
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) if n.as_u64().is_some() || n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                return Err(out_of_range());
            }
            (None, None) => return Err(not_integer()),
        },
        Value::String(s) => match s.trim().parse::<i128>() {
            Ok(n) => i64::try_from(n).map_err(|_| out_of_range())?,
            Err(_) => return Err(not_integer()),
        },
        _ => return Err(not_integer()),
    };
    let t = match unit {
        Epoch::Millis => Utc.timestamp_millis_opt(n).single(),
        Epoch::Micros => Utc.timestamp_micros(n).single(),
    };
    in_range(field, t.ok_or_else(out_of_range)?.fixed_offset())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A whole number written as a float is the time it stands for (a trial's
    /// `source_timestamp: 1.7965e12` was "out of range: no time in epoch milliseconds"); a
    /// fraction is still "must be an integer", and a float past `i64` still "out of range".
    #[test]
    fn whole_numbers_written_as_floats_are_times() {
        let ms = 1_762_367_011_000i64;
        let as_float: Value = serde_json::from_str("1.762367011e12").unwrap();
        assert!(as_float.is_f64());
        assert_eq!(epoch(&as_float, Epoch::Millis, "ts_ms").unwrap().timestamp_millis(), ms);
        let t = crate::decode::datastream::parse_timestamp(&as_float, "source_timestamp").unwrap();
        assert_eq!(t.timestamp_millis(), ms);
        let fraction: Value = serde_json::from_str("1762367011000.5").unwrap();
        assert!(epoch(&fraction, Epoch::Millis, "ts_ms").unwrap_err().message.contains("must be an integer"));
        let e = crate::decode::datastream::parse_timestamp(&fraction, "source_timestamp").unwrap_err();
        assert!(e.message.contains("must be an integer"), "{e}");
        let huge: Value = serde_json::from_str("1e300").unwrap();
        assert!(epoch(&huge, Epoch::Millis, "ts_ms").unwrap_err().message.contains("out of range"));
        let e = crate::decode::datastream::parse_timestamp(&huge, "source_timestamp").unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        let bound: Value = serde_json::from_str("9.223372036854775808e18").unwrap();
        assert_eq!(integral(bound.as_number().unwrap()), None, "2^63 is no i64");
        assert_eq!(integral(serde_json::Number::from_f64(-4.0).as_ref().unwrap()), Some(-4));
    }

    #[test]
    fn times_between_2000_and_a_day_ahead_are_accepted() {
        let now = Utc::now().timestamp_millis();
        for ms in [EARLIEST * 1000, 1_762_367_011_393, now, now + (FUTURE_SLACK_SECS - 60) * 1000] {
            assert_eq!(epoch(&json!(ms), Epoch::Millis, "ts_ms").unwrap().timestamp_millis(), ms);
            assert_eq!(epoch(&json!(ms.to_string()), Epoch::Millis, "ts_ms").unwrap().timestamp_millis(), ms);
            assert_eq!(epoch(&json!(ms * 1000), Epoch::Micros, "ts_us").unwrap().timestamp_millis(), ms);
        }
    }

    #[test]
    fn impossible_times_are_out_of_range_naming_the_field() {
        let ahead = Utc::now().timestamp_millis() + (FUTURE_SLACK_SECS + 60) * 1000;
        for (v, why) in [
            (json!(-5), "before 2000-01-01"),
            (json!(0), "before 2000-01-01"),
            (json!(EARLIEST * 1000 - 1), "before 2000-01-01"),
            (json!(ahead), "more than a day ahead"),
            (json!(i64::MAX), "no time in epoch"),
            (json!(u64::MAX), "no time in epoch"),
            (serde_json::from_str::<Value>("99999999999999999999").unwrap(), "no time in epoch"),
            (json!("99999999999999999999"), "no time in epoch"),
            (json!(-1e300), "no time in epoch"),
        ] {
            let e = epoch(&v, Epoch::Millis, "source.ts_ms").unwrap_err();
            assert_eq!(e.field.as_deref(), Some("source.ts_ms"), "{v}");
            assert!(e.message.contains("source.ts_ms is out of range") && e.message.contains(why), "{v}: {e}");
            assert!(!e.message.contains("required"), "{v}: {e}");
        }
        for v in [json!(1.5), json!("soon"), json!(true), json!([1])] {
            let e = epoch(&v, Epoch::Millis, "ts_ms").unwrap_err();
            assert!(e.message.contains("must be an integer"), "{v}: {e}");
        }
    }

    /// Every change format checks its change times where it reads them, naming the field.
    #[test]
    fn every_decoder_refuses_impossible_change_times() {
        let huge = || serde_json::from_str::<Value>("99999999999999999999").unwrap();
        let ahead = (Utc::now() + chrono::Duration::days(2)).to_rfc3339();
        let debezium = |source: Value, top: Value| {
            let mut v = json!({"before": null, "after": {"id": 1, "status": "COMPLETED"}, "op": "u",
                "source": {"name": "mage", "db": "mage", "schema": "public", "table": "pipeline_run", "lsn": 1}});
            v["source"].as_object_mut().unwrap().extend(source.as_object().unwrap().clone());
            v.as_object_mut().unwrap().extend(top.as_object().unwrap().clone());
            v
        };
        let datastream = |k: &str, t: Value| {
            let mut v = json!({"uuid": "u", "source_timestamp": "2025-11-05T18:23:31Z", "payload": {"id": 1}});
            v[k] = t;
            v
        };
        let dms = |k: &str, t: Value| {
            let mut v = json!({"data": {"id": 1, "status": "COMPLETED"}, "metadata": {"timestamp": "2025-11-05T18:23:31Z",
                "record-type": "data", "operation": "update", "schema-name": "public", "table-name": "pipeline_run"}});
            v["metadata"][k] = t;
            v
        };
        let cases = [
            (debezium(json!({"ts_ms": -5}), json!({})), "source.ts_ms", "before 2000-01-01"),
            (debezium(json!({"ts_ms": huge()}), json!({})), "source.ts_ms", "no time in epoch"),
            (debezium(json!({"ts_us": 1}), json!({})), "source.ts_us", "before 2000-01-01"),
            (debezium(json!({"ts_ms": 1762367011393i64}), json!({"ts_ms": -5})), "ts_ms", "before 2000-01-01"),
            (json!({"id": 1, "__op": "u", "__table": "t", "__source_ts_ms": -5}), "__source_ts_ms", "before 2000"),
            (json!({"id": 1, "__op": "u", "__table": "t", "__source_ts_ms": huge()}), "__source_ts_ms", "no time"),
            (datastream("source_timestamp", json!(-5)), "source_timestamp", "before 2000-01-01"),
            (datastream("source_timestamp", json!("1970-01-01T00:00:00Z")), "source_timestamp", "before 2000"),
            (datastream("source_timestamp", huge()), "source_timestamp", "out of range"),
            (datastream("source_timestamp", json!(ahead)), "source_timestamp", "more than a day ahead"),
            (datastream("read_timestamp", json!(5)), "read_timestamp", "before 2000-01-01"),
            (dms("timestamp", json!("1969-12-31T23:59:59Z")), "metadata.timestamp", "before 2000-01-01"),
            (dms("commit-timestamp", json!(ahead)), "metadata.commit-timestamp", "more than a day ahead"),
        ];
        for (record, field, why) in cases {
            let e = crate::decode::record(record.clone()).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{record}: {e}");
            assert!(e.message.contains("out of range") && e.message.contains(why), "{record}: {e}");
            assert!(!e.message.contains("required"), "{record}: {e}");
        }
        // in range, the same records decode
        let ok = debezium(json!({"ts_ms": 1762367011393i64}), json!({"ts_ms": 1762367011455i64}));
        assert_eq!(crate::decode::record(ok).unwrap().source_timestamp.timestamp_millis(), 1762367011393);
        assert!(crate::decode::record(datastream("read_timestamp", json!(1762367011455i64))).is_ok());
        assert!(crate::decode::record(dms("commit-timestamp", json!("2025-11-05T18:23:31Z"))).is_ok());
        let lineage = json!({"eventType": "START", "eventTime": "1970-01-01T00:00:00Z", "run": {"runId": "r"},
            "job": {"namespace": "n", "name": "j"}});
        let e = crate::decode::openlineage::decode(lineage).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("eventTime"), "{e}");
    }
}
