//! CloudEvents in both modes: attributes, data of every kind, and what each error names.

use super::*;

#[test]
fn structured_cloud_event_direct_record_as_plain_json() {
    let ce = json!({"specversion": "1.0", "id": "e-1", "source": "//pubsub", "type": "t", "data": record()});
    let d = decode(&headers(&[("content-type", "application/json")]), ce.to_string().as_bytes()).unwrap();
    assert_eq!(d.format, DeliveryFormat::CloudEventStructured);
    assert_eq!(d.meta.ce_id.as_deref(), Some("e-1"));
    assert_eq!(only(&d), &decoded(record()));
}

#[test]
fn structured_cloud_event_with_push_wrapper_and_base64_data() {
    let push = json!({"message": {"data": b64(&record()), "messageId": "m-5"}, "subscription": "s"});
    let ce = json!({"specversion": "1.0", "id": "e-2", "source": "s", "type": "t", "data": push});
    let d =
        decode(&headers(&[("content-type", "application/cloudevents+json; charset=utf-8")]), ce.to_string().as_bytes())
            .unwrap();
    assert_eq!(d.meta.message_id.as_deref(), Some("m-5"));
    assert_eq!(only(&d), &decoded(record()));
    let ce = json!({"specversion": "1.0", "id": "e-3", "source": "s", "type": "t", "data_base64": b64(&record())});
    let d = decode(&headers(&[("content-type", "application/cloudevents+json")]), ce.to_string().as_bytes()).unwrap();
    assert_eq!(only(&d), &decoded(record()));
}

#[test]
fn only_a_top_level_message_makes_cloud_event_data_a_push_body() {
    // a row with a `message` column is a record; an escaped key is still the key
    let mut rec = record();
    rec["payload"]["message"] = json!("done");
    let ce = json!({"specversion": "1.0", "id": "e-4", "source": "s", "type": "t", "data": rec.clone()});
    let d = decode(&headers(&[("content-type", "application/json")]), ce.to_string().as_bytes()).unwrap();
    assert_eq!(only(&d), &decoded(rec));
    let push = format!(r#"{{"\u006dessage": {{"data": "{}", "messageId": "m-6"}}}}"#, b64(&record()));
    let ce = format!(r#"{{"specversion": "1.0", "id": "e-5", "source": "s", "type": "t", "data": {push}}}"#);
    let d = decode(&headers(&[("content-type", "application/json")]), ce.as_bytes()).unwrap();
    assert_eq!(d.meta.message_id.as_deref(), Some("m-6"));
    // `"message": null` is a push body without a message, as before: its error names it
    let ce = json!({"specversion": "1.0", "id": "e-6", "source": "s", "type": "t", "data": {"message": null}});
    let e = decode(&headers(&[("content-type", "application/json")]), ce.to_string().as_bytes()).unwrap_err();
    assert!(e.field.as_deref().is_some_and(|f| f.contains("message")), "{e:?}");
}

#[test]
fn structured_cloud_event_errors_name_the_attribute() {
    let ce = json!({"specversion": "1.0", "source": "s", "type": "t", "data": record()});
    let e =
        decode(&headers(&[("content-type", "application/cloudevents+json")]), ce.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("id"));
    let ce = json!({"specversion": "0.3", "id": "1", "source": "s", "type": "t", "data": record()});
    let e = decode(&headers(&[]), ce.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("specversion"));
    let ce =
        json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": record(), "data_base64": "e30="});
    let e = decode(&headers(&[]), ce.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("data_base64"));
    let ce = json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": {"x": 1}});
    let e = decode(&headers(&[]), ce.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("data"));
}

/// A required attribute that is present but not a non-empty string is told apart from one that
/// is absent (or null): both name the attribute, only the absent one is "without" it.
#[test]
fn a_present_attribute_of_the_wrong_type_is_not_called_missing() {
    let h = headers(&[("content-type", "application/cloudevents+json")]);
    for name in ["id", "source", "type"] {
        let event = |value: Option<Value>| {
            let mut ce = json!({"specversion": "1.0", "id": "i", "source": "s", "type": "t", "data": record()});
            match value {
                Some(v) => ce[name] = v,
                None => _ = ce.as_object_mut().unwrap().remove(name),
            }
            ce
        };
        let present = [json!(5), json!(""), json!(["i"]), json!({"a": "b"}), json!(true)]
            .map(|v| (event(Some(v)), format!("structured CloudEvent attribute '{name}' must be a non-empty string")));
        let absent = [event(None), event(Some(Value::Null))].map(|ce| {
            (ce, format!("structured CloudEvent without the required attribute '{name}' (a non-empty string)"))
        });
        for (ce, want) in present.into_iter().chain(absent) {
            let e = decode(&h, ce.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(name), "{ce}");
            assert_eq!(e.message, want, "{ce}");
        }
    }
}

#[test]
fn binary_cloud_event_percent_decodes_headers() {
    let push =
        json!({"message": {"data": b64(&record()), "messageId": "m-7"}, "subscription": "projects/p/subscriptions/s"});
    let h = headers(&[
        ("content-type", "application/json; charset=utf-8"),
        ("ce-specversion", "1.0"),
        ("ce-id", "m%207"),
        ("ce-source", "//pubsub.googleapis.com/projects/p/topics/t"),
        ("ce-type", "google.cloud.pubsub.topic.v1.messagePublished"),
    ]);
    let d = decode(&h, push.to_string().as_bytes()).unwrap();
    assert_eq!(d.format, DeliveryFormat::CloudEventBinary);
    assert_eq!(d.meta.ce_id.as_deref(), Some("m 7"));
    assert_eq!(d.meta.message_id.as_deref(), Some("m-7"));
    assert_eq!(only(&d), &decoded(record()));
}

#[test]
fn binary_cloud_event_missing_header() {
    let h = headers(&[("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-type", "t")]);
    let e = decode(&h, record().to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("header ce-source"));
}

/// CloudEvents 1.0 defines `time` as an RFC 3339 timestamp, in either mode.
#[test]
fn a_cloud_event_time_that_is_not_rfc3339_is_refused_naming_it() {
    let ce = |time: Value| json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "time": time, "data": record()});
    for bad in [json!("not a time"), json!("2026-11-30"), json!("2026-11-30 10:00:00"), json!(1764496800)] {
        let e = decode(&headers(&[]), ce(bad.clone()).to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("time"), "{bad}: {e}");
        assert!(e.message.contains("RFC 3339"), "{bad}: {e}");
    }
    for good in [json!("2026-11-30T10:00:00Z"), json!("2026-11-30T10:00:00.123+01:00"), Value::Null] {
        assert!(decode(&headers(&[]), ce(good.clone()).to_string().as_bytes()).is_ok(), "{good}");
    }
    let binary = |time: &str| {
        headers(&[("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "s"), ("ce-type", "t"), ("ce-time", time)])
    };
    let e = decode(&binary("not%20a%20time"), record().to_string().as_bytes()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("header ce-time"), "{e}");
    assert!(decode(&binary("2026-11-30T10:00:00Z"), record().to_string().as_bytes()).is_ok());
}

/// Binary-mode context headers without `ce-specversion` are an incomplete CloudEvent, not an
/// unwrapped push.
#[test]
fn binary_headers_without_specversion_name_it() {
    for present in [&["ce-id", "ce-source", "ce-type"][..], &["ce-type"], &["ce-id", "ce-source"]] {
        let pairs: Vec<(&str, &str)> = present.iter().map(|h| (*h, "x")).collect();
        for body in [record(), json!({"message": {"data": b64(&record())}})] {
            let e = decode(&headers(&pairs), body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("header ce-specversion"), "{present:?}: {e}");
            assert!(e.message.contains("ce-specversion"), "{e}");
        }
    }
    // a structured CloudEvent is told by its body, whatever its headers
    let ce = json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": record()});
    assert!(decode(&headers(&[("ce-id", "x")]), ce.to_string().as_bytes()).is_ok());
    // other headers do not make a CloudEvent
    assert!(decode(&headers(&[("ce-other", "x")]), record().to_string().as_bytes()).is_ok());
}
