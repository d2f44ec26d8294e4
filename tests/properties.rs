//! Property tests of the decoders with hostile input: arbitrary bytes, arbitrary JSON, and
//! mutations of valid deliveries must never panic or hang; valid deliveries always decode to
//! the record they carry. The case count comes from PROPTEST_CASES (make test: 2000 per
//! property; make fuzz: 200000, figures in docs/tests.md).

mod common;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use common::push::Push;
use pipeline_run_metrics::decode::{self as envelope, datastream as record};
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

fn headers(ct: &str, extra: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_str(ct).unwrap());
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            h.insert(k, v);
        }
    }
    h
}

/// Arbitrary JSON values, nested up to a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[ -~]{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("source_timestamp"),
            Just("payload"),
            Just("message"),
            Just("data"),
            Just("specversion"),
            Just("2024-01-15T10:30:00Z"),
            Just("COMPLETED"),
            Just("pipeline_run")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,12}",
                    Just("source_timestamp".to_string()),
                    Just("payload".to_string()),
                    Just("message".to_string()),
                    Just("data".to_string()),
                    Just("variables".to_string()),
                    Just("status".to_string()),
                    Just("pipeline_uuid".to_string()),
                    Just("source_metadata".to_string()),
                    Just("specversion".to_string()),
                    Just("id".to_string()),
                    Just("source".to_string()),
                    Just("type".to_string()),
                    Just("data_base64".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("application/json".to_string()),
        Just("application/cloudevents+json".to_string()),
        Just("application/cloudevents-batch+json".to_string()),
        Just("text/plain".to_string()),
        Just("".to_string()),
        "[a-z/+.;= -]{0,30}",
    ]
}

fn valid_record() -> Value {
    json!({"uuid": "u", "source_timestamp": "2024-01-15T10:30:00Z", "source_metadata": {"table": "pipeline_run"},
           "payload": {"pipeline_uuid": "pipesv2_approval", "status": "COMPLETED", "variables": {"partner": "p"}}})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), ct in content_type()) {
        let _ = envelope::decode(&headers(&ct, &[]), &body);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value(), ct in content_type(),
                                   ce in prop::collection::vec(("ce-[a-z]{1,10}", "[ -~%]{0,20}"), 0..5)) {
        let body = serde_json::to_vec(&v).unwrap();
        let _ = envelope::decode(&headers(&ct, &ce), &body);
        let _ = record::decode_ref(&v);
    }

    #[test]
    fn any_json_inside_a_push_message_never_panics(v in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64), use_raw in any::<bool>()) {
        let data = if use_raw { raw } else { serde_json::to_vec(&v).unwrap() };
        let body = Push::new(data).message_id("m").subscription("s").json();
        let _ = envelope::decode(&headers("application/json", &[]), body.to_string().as_bytes());
    }

    #[test]
    fn truncated_or_mutated_valid_deliveries_never_panic(cut in 0usize..400, flip in 0usize..400, byte in any::<u8>()) {
        let push = Push::record(&valid_record()).message_id("m").subscription("s").body().into_bytes();
        let mut body = push.clone();
        if flip < body.len() { body[flip] = byte; }
        body.truncate(cut.min(body.len()).max(1));
        let _ = envelope::decode(&headers("application/json", &[]), &body);
        let _ = envelope::decode(&headers("application/json", &[]), &body[..]);
    }

    // source times from 2000 to 2025: the change times a decoder accepts (src/decode/time.rs)
    #[test]
    fn valid_deliveries_always_decode_to_their_record(partner in "[a-z0-9_]{1,20}", ms in 946_684_800_000i64..1_764_000_000_000i64, wrapped in 0u8..3) {
        let mut rec = valid_record();
        rec["payload"]["variables"]["partner"] = json!(partner);
        rec["source_timestamp"] = json!(ms);
        let body = match wrapped {
            0 => Push::record(&rec).message_id("m").subscription("s").json(),
            1 => json!({"specversion": "1.0", "id": "i", "source": "s", "type": "t", "data": rec.clone()}),
            _ => rec.clone(),
        };
        let d = envelope::decode(&headers("application/json", &[]), body.to_string().as_bytes()).unwrap().into_delivery().unwrap();
        prop_assert_eq!(d.records.len(), 1);
        let e = d.records[0].record.clone().unwrap();
        prop_assert_eq!(&e, &record::decode_ref(&rec).unwrap());
        prop_assert_eq!(e.source_timestamp.timestamp_millis(), ms);
        let payload = e.payload.unwrap();
        let vars = payload.variables().unwrap();
        prop_assert_eq!(vars["partner"].as_str(), Some(partner.as_str()));
    }
}
