use super::*;
use axum::http::HeaderValue;
use base64::Engine;
use serde_json::json;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn record() -> Value {
    json!({"uuid": "u-1", "source_timestamp": "2024-01-15T10:30:00Z", "payload": {"pipeline_uuid": "p", "status": "COMPLETED"}})
}

/// The one record of a delivery, decoded.
fn only(d: &Delivery) -> &ChangeEvent {
    assert_eq!(d.records.len(), 1);
    d.records[0].record.as_ref().expect("a decoded record")
}

fn decoded(v: Value) -> ChangeEvent {
    datastream::decode(v).unwrap()
}

/// The request decoded as records (a test failure if it is an object notification).
fn decode(h: &HeaderMap, body: &[u8]) -> Result<Delivery, DecodeError> {
    match super::decode(h, body)? {
        Decoded::Records(d) => Ok(d),
        other => panic!("expected records, got {other:?}"),
    }
}

fn record_bytes() -> Vec<u8> {
    serde_json::to_vec(&record()).unwrap()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(v).unwrap())
}

#[test]
fn wrapped_push_camel_case() {
    let body = json!({"message": {"data": b64(&record()), "messageId": "m-1", "publishTime": "2024-01-15T10:30:01Z",
        "attributes": {"k": "v"}}, "subscription": "projects/p/subscriptions/s", "deliveryAttempt": 3});
    let d = decode(&headers(&[("content-type", "application/json")]), body.to_string().as_bytes()).unwrap();
    assert_eq!(d.format, DeliveryFormat::PubSubPush);
    assert_eq!(only(&d), &decoded(record()));
    assert_eq!(d.meta.message_id.as_deref(), Some("m-1"));
    assert_eq!(d.meta.publish_time.as_deref(), Some("2024-01-15T10:30:01Z"));
    assert_eq!(d.meta.subscription.as_deref(), Some("projects/p/subscriptions/s"));
    assert_eq!(d.meta.delivery_attempt, Some(3));
    assert_eq!(d.meta.attributes.get("k").map(String::as_str), Some("v"));
}

#[test]
fn wrapped_push_snake_case_only_and_duplicated() {
    let snake =
        json!({"message": {"data": b64(&record()), "message_id": "m-2", "publish_time": "t"}, "subscription": "s"});
    let d = decode(&headers(&[]), snake.to_string().as_bytes()).unwrap();
    assert_eq!(d.meta.message_id.as_deref(), Some("m-2"));
    assert_eq!(d.meta.publish_time.as_deref(), Some("t"));
    let both = json!({"message": {"data": b64(&record()), "messageId": "m-3", "message_id": "m-3",
        "publishTime": "t", "publish_time": "t"}, "subscription": "s"});
    let d = decode(&headers(&[("content-type", "application/json")]), both.to_string().as_bytes()).unwrap();
    assert_eq!(d.meta.message_id.as_deref(), Some("m-3"));
    assert_eq!(only(&d), &decoded(record()));
}

/// An attribute that is not a string is refused naming it, in a push body, in a binary
/// CloudEvent carrying one and in a structured CloudEvent whose data is one (`data.` prefix);
/// string attributes are still read in every case.
#[test]
fn a_push_attribute_that_is_not_a_string_is_named() {
    let json = headers(&[("content-type", "application/json")]);
    let binary = headers(&[
        ("content-type", "application/json"),
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-source", "s"),
        ("ce-type", "t"),
    ]);
    let ce = |data: Value| json!({"specversion": "1.0", "id": "e", "source": "s", "type": "t", "data": data});
    for bad in [json!(42), json!(true), json!(null), json!({"a": "b"}), json!(["x"]), json!(1.5)] {
        for keys in ["camel", "snake"] {
            let mut message = json!({"data": b64(&record()), "attributes": {"ok": "v", "table": bad}});
            message[if keys == "camel" { "messageId" } else { "message_id" }] = json!("m");
            let push = json!({"message": message, "subscription": "s"});
            for (h, body, field) in [
                (&json, push.clone(), "message.attributes.table"),
                (&headers(&[]), push.clone(), "message.attributes.table"),
                (&binary, push.clone(), "message.attributes.table"),
                (&json, ce(push.clone()), "data.message.attributes.table"),
                (&headers(&[]), ce(json!({"subscription": "s", "message": message})), "data.message.attributes.table"),
            ] {
                let e = super::decode(h, body.to_string().as_bytes()).unwrap_err();
                assert_eq!(e.kind, DecodeErrorKind::Malformed, "{body}");
                assert_eq!(e.field.as_deref(), Some(field), "{body}");
                assert_eq!(e.message, format!("{field} must be a string: Pub/Sub attributes are strings"), "{body}");
            }
        }
    }
    let long = "k".repeat(5_000);
    let push = json!({"message": {"data": b64(&record()), "attributes": {long.as_str(): 1}}});
    let e = super::decode(&json, push.to_string().as_bytes()).unwrap_err();
    assert!(e.field.as_deref().is_some_and(|f| f.starts_with("message.attributes.kkk") && f.len() < 200), "{e:?}");
    // string attributes are kept, wrapped or in a CloudEvent's data
    let push = json!({"message": {"data": b64(&record()), "attributes": {"table": "pipeline_run", "e": ""}}});
    for body in [push.clone(), ce(push)] {
        let d = decode(&json, body.to_string().as_bytes()).unwrap();
        assert_eq!(d.meta.attributes.get("table").map(String::as_str), Some("pipeline_run"), "{body}");
        assert_eq!(d.meta.attributes.get("e").map(String::as_str), Some(""), "{body}");
        assert_eq!(only(&d), &decoded(record()));
    }
    // attributes that are not an object are refused as a push body serde cannot read, naming them
    let push = json!({"message": {"data": b64(&record()), "attributes": 5}});
    let e = super::decode(&json, push.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("message.attributes"));
}

/// A push wrapper serde refuses names the member of the wrong type, not the whole `message`:
/// posted as it is and as a structured CloudEvent's data (`data.` prefix), with serde's words
/// after "invalid Pub/Sub push body: ".
#[test]
fn a_push_body_of_the_wrong_shape_names_the_member_at_fault() {
    let json = headers(&[("content-type", "application/json")]);
    let cloudevents = headers(&[("content-type", "application/cloudevents+json")]);
    let ok = b64(&record());
    let cases = [
        (json!({"message": {"data": 123}, "subscription": "s"}), "message.data", "invalid type: integer `123`"),
        (json!({"message": {"data": ok, "messageId": 12345}}), "message.messageId", "invalid type: integer `12345`"),
        (json!({"message": {"data": ok, "attributes": ["a"]}}), "message.attributes", "invalid type: sequence"),
        (json!({"message": {"data": ok, "attributes": 5}}), "message.attributes", "invalid type: integer `5`"),
        (json!({"message": {"data": ok}, "subscription": 5}), "subscription", "invalid type: integer `5`"),
        (json!({"message": {"data": ok}, "deliveryAttempt": "x"}), "deliveryAttempt", "invalid type: string \"x\""),
        (json!({"message": {"data": ok}, "delivery_attempt": -1}), "delivery_attempt", "invalid value: integer `-1`"),
        (json!({"message": [1, 2]}), "message", "invalid type: sequence, expected a Pub/Sub message (an object)"),
        (
            json!({"message": "m", "subscription": "s"}),
            "message",
            "invalid type: string \"m\", expected a Pub/Sub message",
        ),
    ];
    for (wrapper, field, words) in cases {
        let serde_says = serde_json::from_slice::<pubsub::PushBody>(wrapper.to_string().as_bytes()).unwrap_err();
        let ce = json!({"specversion": "1.0", "id": "i", "source": "s", "type": "t", "data": wrapper});
        for (h, body, field) in [
            (&json, wrapper.clone(), field.to_string()),
            (&headers(&[]), wrapper.clone(), field.to_string()),
            (&cloudevents, ce.clone(), format!("data.{field}")),
            (&json, ce, format!("data.{field}")),
        ] {
            let e = super::decode(h, body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::Malformed, "{body}");
            assert_eq!(e.field.as_deref(), Some(field.as_str()), "{body}");
            assert_eq!(e.message, format!("invalid Pub/Sub push body: {serde_says}"), "{body}");
            assert!(e.message.starts_with(&format!("invalid Pub/Sub push body: {words}")), "{body}: {}", e.message);
        }
    }
    // a message that is an empty array was read as a message without fields: it is no object
    let e = super::decode(&json, br#"{"message": []}"#).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("message"));
    assert!(e.message.contains("expected a Pub/Sub message (an object)"), "{e}");
}

#[test]
fn push_without_data_names_the_field() {
    let body = json!({"message": {"messageId": "m"}, "subscription": "s"});
    let e = decode(&headers(&[]), body.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("message.data"));
    let body = json!({"message": {"data": "!!!not base64", "messageId": "m"}, "subscription": "s"});
    let e = decode(&headers(&[]), body.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("message.data"));
    assert!(e.message.contains("base64"), "{e}");
    let body =
        json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode("not json"), "messageId": "m"}});
    let e = decode(&headers(&[]), body.to_string().as_bytes()).unwrap_err();
    assert!(e.message.contains("does not decode to JSON"), "{e}");
    for (data, what) in [("[1,2,3]", "a JSON array"), ("17", "a JSON scalar")] {
        let body =
            json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode(data), "messageId": "m"}});
        let e = decode(&headers(&[]), body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("message.data"), "{data}");
        assert!(e.message.contains(what), "{e}");
    }
}

#[test]
fn gcs_notification_is_recognised_on_every_route() {
    let object =
        json!({"kind": "storage#object", "bucket": "b", "name": "ds/public_pipeline_run/f.jsonl", "generation": "7"});
    let push = json!({"message": {"data": b64(&object), "messageId": "m",
        "attributes": {"eventType": "OBJECT_FINALIZE", "objectId": "ds/public_pipeline_run/f.jsonl", "bucketId": "b",
                       "objectGeneration": "7"}}, "subscription": "s"});
    let ce_binary = headers(&[
        ("content-type", "application/json"),
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-source", "//storage.googleapis.com/projects/_/buckets/b"),
        ("ce-type", "google.cloud.storage.object.v1.finalized"),
    ]);
    let structured = json!({"specversion": "1.0", "id": "1", "source": "//storage.googleapis.com/projects/_/buckets/b",
        "type": "google.cloud.storage.object.v1.finalized", "data": object});
    let no_payload = json!({"message": {"messageId": "m", "attributes": {"eventType": "OBJECT_FINALIZE",
        "objectId": "ds/public_pipeline_run/f.jsonl", "bucketId": "b", "objectGeneration": "7", "payloadFormat": "NONE"}}});
    let cases = [
        (headers(&[]), push.to_string(), DeliveryFormat::PubSubPush),
        (ce_binary, object.to_string(), DeliveryFormat::CloudEventBinary),
        (
            headers(&[("content-type", "application/cloudevents+json")]),
            structured.to_string(),
            DeliveryFormat::CloudEventStructured,
        ),
        (headers(&[]), no_payload.to_string(), DeliveryFormat::PubSubPush),
        (headers(&[]), object.to_string(), DeliveryFormat::Direct),
        (headers(&[("x-goog-pubsub-message-id", "m")]), object.to_string(), DeliveryFormat::PubSubUnwrapped),
    ];
    for (h, body, want) in cases {
        match super::decode(&h, body.as_bytes()).unwrap() {
            Decoded::Object { format, object, .. } => {
                assert_eq!(format, want, "{body}");
                assert_eq!((object.bucket.as_str(), object.name.as_str()), ("b", "ds/public_pipeline_run/f.jsonl"));
                assert_eq!(object.generation.as_deref(), Some("7"), "{body}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn unwrapped_push_reads_metadata_headers() {
    let h = headers(&[
        ("content-type", "application/json"),
        ("x-goog-pubsub-message-id", "m-9"),
        ("x-goog-pubsub-subscription-name", "projects/p/subscriptions/s"),
    ]);
    let d = decode(&h, record().to_string().as_bytes()).unwrap();
    assert_eq!(d.format, DeliveryFormat::PubSubUnwrapped);
    assert_eq!(d.meta.message_id.as_deref(), Some("m-9"));
    assert_eq!(only(&d), &decoded(record()));
    // without metadata headers and without a content type: posted directly, not by Pub/Sub
    let d = decode(&headers(&[]), record().to_string().as_bytes()).unwrap();
    assert_eq!(d.format, DeliveryFormat::Direct);
    assert_eq!(d.meta.message_id, None);
    let h = headers(&[("x-goog-pubsub-subscription-name", "projects/p/subscriptions/s")]);
    assert_eq!(decode(&h, record().to_string().as_bytes()).unwrap().format, DeliveryFormat::PubSubUnwrapped);
}

/// A Debezium change event POSTed as Debezium Server's HTTP sink sends it is `direct`, the
/// name its log lines and counters carry.
#[test]
fn a_debezium_event_posted_directly_is_named_direct() {
    let event = json!({"before": null, "after": {"id": 1, "status": "RUNNING"}, "op": "u",
        "source": {"ts_ms": 1762367011393i64, "name": "m", "db": "d", "table": "pipeline_run", "lsn": 1}});
    let d = decode(&headers(&[("content-type", "application/json")]), event.to_string().as_bytes()).unwrap();
    assert_eq!((d.format, d.format.as_str()), (DeliveryFormat::Direct, "direct"));
    assert!(d.records[0].record.is_ok());
}

#[test]
fn deeply_nested_json_is_rejected_not_crashing() {
    let body = "[".repeat(100_000);
    let e = decode(&headers(&[]), body.as_bytes()).unwrap_err();
    assert_eq!(e.kind, crate::decode::DecodeErrorKind::Malformed);
}

#[test]
fn identifiers_are_at_most_max_id_bytes() {
    let long = "i".repeat(MAX_ID_BYTES + 1);
    let ok = "i".repeat(MAX_ID_BYTES);
    let mut rec = record();
    rec["uuid"] = long.clone().into();
    assert_eq!(super::record(rec.clone()).unwrap_err().field.as_deref(), Some("uuid"));
    rec["uuid"] = ok.clone().into();
    assert!(super::record(rec).is_ok());
    let push = |id: &str| json!({"message": {"data": b64(&record()), "messageId": id}}).to_string();
    let e = decode(&headers(&[]), push(&long).as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("message.messageId"));
    assert!(!e.message.contains(&long), "{e}");
    assert!(decode(&headers(&[]), push(&ok).as_bytes()).is_ok());
    let ce = json!({"specversion": "1.0", "id": long, "source": "s", "type": "t", "data": record()});
    let e = decode(&headers(&[]), ce.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("id"));
    let h = headers(&[("ce-specversion", "1.0"), ("ce-id", &long), ("ce-source", "s"), ("ce-type", "t")]);
    assert_eq!(decode(&h, record().to_string().as_bytes()).unwrap_err().field.as_deref(), Some("header ce-id"));
}

/// A row's text id is an identity like the uuid: at most [`MAX_ID_BYTES`], refused naming the
/// column in every change format, without repeating it.
#[test]
fn row_ids_are_at_most_max_id_bytes() {
    let long = "i".repeat(MAX_ID_BYTES + 1);
    let ok = "i".repeat(MAX_ID_BYTES);
    let make = |field: &str, id: &str| match field {
        "payload.id" => json!({"source_timestamp": "2024-01-15T10:30:00Z", "payload": {"id": id}}),
        "after.id" => json!({"before": null, "after": {"id": id}, "op": "u",
               "source": {"ts_ms": 1762367011393i64, "name": "m", "db": "d", "table": "t", "lsn": 1}}),
        _ => json!({"data": {"id": id}, "metadata": {"timestamp": "2025-11-05T18:23:31Z", "record-type": "data",
               "operation": "update", "schema-name": "public", "table-name": "t"}}),
    };
    for field in ["payload.id", "after.id", "data.id"] {
        let e = super::record(make(field, &long)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert!(e.message.contains("at most 256"), "{e}");
        assert!(!e.message.contains(&long), "the id is not repeated: {e}");
        assert!(super::record(make(field, &ok)).is_ok(), "{field}");
    }
}

/// A body that is not a JSON object is never read as a delivery: an array is not taken for a
/// CloudEvent whose `specversion` is its first element.
#[test]
fn arrays_and_scalars_are_unrecognised_bodies() {
    let h = headers(&[("content-type", "application/json")]);
    for body in ["[1]", "[\"a\"]", "[{}]", "[[]]", " [\"1.0\", \"id\"] ", "1", "\"text\"", "null", "true"] {
        let e = decode(&h, body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("unrecognised body"), "{body}: {e}");
        assert!(!e.to_string().contains("specversion"), "{body}: {e}");
    }
    // deeply nested arrays end at the parser's recursion limit, as invalid JSON
    let deep = "[".repeat(100_000);
    let e = decode(&h, deep.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("not valid JSON"), "{e}");
    assert!(e.to_string().len() < 1_000, "the error does not echo the body");
}

mod bodies;
mod cloudevents;
mod messages;
