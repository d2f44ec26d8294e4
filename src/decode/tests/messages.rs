//! What the error messages of bodies that are no delivery say: every accepted kind, and where
//! what was sent belongs instead.

use super::*;

fn message(h: &HeaderMap, body: &str) -> DecodeError {
    decode(h, body.as_bytes()).unwrap_err()
}

/// The list of accepted bodies names every kind `POST /` takes (DMS and Cloud Storage
/// notifications were missing), and where an OpenLineage event goes.
#[test]
fn an_unrecognised_body_lists_every_accepted_kind() {
    let e = message(&headers(&[("content-type", "application/json")]), r#"{"foo": 1}"#);
    assert_eq!(e.field.as_deref(), Some("body"));
    for kind in [
        "CloudEvent",
        "Pub/Sub push body",
        "Datastream record",
        "Debezium",
        "AWS DMS",
        "Cloud Storage",
        "/api/v1/lineage",
    ] {
        assert!(e.message.contains(kind), "{kind}: {e}");
    }
    // an OpenLineage event posted to `/` is told where to go
    let lineage = json!({"eventType": "START", "eventTime": "2026-11-30T06:00:00Z", "run": {"runId": "r"},
        "job": {"namespace": "n", "name": "j"}, "producer": "p"});
    let e = message(&headers(&[]), &lineage.to_string());
    assert_eq!(e.field.as_deref(), Some("body"));
    assert!(e.message.contains("OpenLineage") && e.message.contains("POST it to /api/v1/lineage"), "{e}");
}

/// A 415 lists what is accepted, not two types of six.
#[test]
fn an_unsupported_content_type_lists_the_accepted_ones() {
    let e = message(&headers(&[("content-type", "text/html")]), "{}");
    for t in [
        "application/json",
        "application/cloudevents+json",
        "application/*+json",
        "application/octet-stream",
        "text/plain",
    ] {
        assert!(e.message.contains(t), "{t}: {e}");
    }
}

/// A structured CloudEvent without `specversion` says it is required (it said "unsupported
/// specversion null"); a wrong one is still unsupported.
#[test]
fn a_missing_specversion_is_required_not_unsupported() {
    let ce = headers(&[("content-type", "application/cloudevents+json")]);
    for body in [r#"{"id": "i", "source": "s", "type": "t", "data": {}}"#, r#"{"specversion": null, "id": "i"}"#] {
        let e = message(&ce, body);
        assert_eq!(e.field.as_deref(), Some("specversion"), "{body}");
        assert!(e.message.starts_with("specversion is required"), "{body}: {e}");
    }
    let e = message(&ce, r#"{"specversion": "0.3", "id": "i", "source": "s", "type": "t"}"#);
    assert_eq!(e.message, "unsupported CloudEvents specversion \"0.3\": expected \"1.0\"");
}

/// Pub/Sub data that is a JSON object but no change record is named as such (it was answered
/// "source_timestamp is required", as if a Datastream record missed one field).
#[test]
fn message_data_that_is_no_change_record_says_so() {
    let json = headers(&[("content-type", "application/json")]);
    let nested = json!({"message": {"data": b64(&record())}});
    for data in [json!({}), json!({"foo": 1}), nested] {
        let push = json!({"message": {"data": b64(&data), "messageId": "m"}, "subscription": "s"});
        let e = message(&json, &push.to_string());
        assert_eq!(e.field.as_deref(), Some("message.data"), "{data}");
        assert!(e.message.contains("no change record"), "{data}: {e}");
    }
    // a Datastream record that misses its time still names the time
    let push = json!({"message": {"data": b64(&json!({"payload": {"id": 1}})), "messageId": "m"}});
    let d = decode(&json, push.to_string().as_bytes()).unwrap();
    let e = d.records[0].record.as_ref().unwrap_err();
    assert_eq!(e.field.as_deref(), Some("source_timestamp"));
}

/// A push body whose `message` is null names `message`, as one whose message is a text does (it
/// named `body`).
#[test]
fn a_null_message_is_named_like_a_wrong_one() {
    let json = headers(&[("content-type", "application/json")]);
    for body in [r#"{"message": null, "subscription": "s"}"#, r#"{"message": "abc", "subscription": "s"}"#] {
        let e = message(&json, body);
        assert_eq!(e.field.as_deref(), Some("message"), "{body}: {e}");
    }
}
