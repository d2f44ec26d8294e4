use super::*;
use serde_json::json;

const PUSH: DeliveryFormat = DeliveryFormat::PubSubPush;

fn resource() -> Value {
    json!({"kind": "storage#object", "bucket": "b", "name": "ds/public_pipeline_run/x.jsonl", "generation": "17", "size": "2311"})
}

/// A Pub/Sub notification's attributes, `drop` left out and `set` replaced.
fn attributes(drop: &str, set: &[(&str, &str)]) -> DeliveryMeta {
    let mut meta = DeliveryMeta::default();
    for (k, v) in [("eventType", "OBJECT_FINALIZE"), ("bucketId", "b"), ("objectId", "o"), ("objectGeneration", "9")]
        .into_iter()
        .chain(set.iter().copied())
    {
        meta.attributes.insert(k.into(), v.into());
    }
    meta.attributes.remove(drop);
    meta
}

fn refused(format: DeliveryFormat, meta: &DeliveryMeta, data: Option<&Value>) -> DecodeError {
    notification(format, meta, data).expect("a notification").expect_err("refused")
}

#[test]
fn every_route_is_recognised() {
    let push = attributes("", &[]);
    let o = notification(PUSH, &push, None).expect("attributes alone").unwrap();
    assert_eq!((o.bucket.as_str(), o.name.as_str(), o.generation.as_deref()), ("b", "o", Some("9")));
    assert_eq!(o.event, ObjectEvent::Finalized);

    let ce = DeliveryMeta {
        ce_type: Some("google.cloud.storage.object.v1.finalized".into()),
        ce_source: Some("//storage.googleapis.com/projects/_/buckets/b".into()),
        ..Default::default()
    };
    let structured = DeliveryFormat::CloudEventStructured;
    let o = notification(structured, &ce, Some(&resource())).expect("Eventarc").unwrap();
    assert_eq!((o.bucket.as_str(), o.generation.as_deref(), o.size), ("b", Some("17"), Some(2311)));
    let deleted = DeliveryMeta { ce_type: Some("google.cloud.storage.object.v1.deleted".into()), ..ce.clone() };
    assert_eq!(notification(structured, &deleted, Some(&resource())).unwrap().unwrap().event, ObjectEvent::Deleted);

    // the object resource alone (for instance relayed without attributes)
    let o = notification(DeliveryFormat::Direct, &DeliveryMeta::default(), Some(&resource())).unwrap().unwrap();
    assert_eq!((o.name.as_str(), o.event), ("ds/public_pipeline_run/x.jsonl", ObjectEvent::Finalized));
}

#[test]
fn records_and_other_events_are_not_notifications() {
    let record = json!({"source_timestamp": 1, "payload": {"name": "x", "bucket": "y"}});
    assert_eq!(notification(PUSH, &DeliveryMeta::default(), Some(&record)), None);
    let other =
        DeliveryMeta { ce_type: Some("google.cloud.pubsub.topic.v1.messagePublished".into()), ..Default::default() };
    assert_eq!(notification(DeliveryFormat::CloudEventBinary, &other, Some(&record)), None);
}

/// Cloud Storage's other event types are notifications to ignore (answered 204 later), not
/// errors.
#[test]
fn the_other_known_event_types_are_kept_to_be_ignored() {
    for (t, event) in [
        ("OBJECT_DELETE", ObjectEvent::Deleted),
        ("OBJECT_ARCHIVE", ObjectEvent::Archived),
        ("OBJECT_METADATA_UPDATE", ObjectEvent::MetadataUpdated),
    ] {
        let o = notification(PUSH, &attributes("", &[("eventType", t)]), None).unwrap().unwrap();
        assert_eq!(o.event, event, "{t}");
    }
}

/// A trial's notifications with an unknown or no `eventType`, without `bucketId` or
/// `objectId`, or with `objectGeneration: "abc"` were read (or answered 503 when no Cloud
/// Storage was reachable). Each is refused when decoded, naming the attribute.
#[test]
fn a_malformed_notification_is_refused_naming_the_attribute() {
    let cases = [
        (
            attributes("eventType", &[]),
            "message.attributes.eventType",
            "message.attributes.eventType is missing: a Cloud Storage notification names its event \
             (OBJECT_FINALIZE, OBJECT_METADATA_UPDATE, OBJECT_DELETE, OBJECT_ARCHIVE)",
        ),
        (
            attributes("", &[("eventType", "XYZ")]),
            "message.attributes.eventType",
            "message.attributes.eventType 'XYZ' is not a Cloud Storage notification event: expected one of \
             OBJECT_FINALIZE, OBJECT_METADATA_UPDATE, OBJECT_DELETE, OBJECT_ARCHIVE",
        ),
        (
            attributes("bucketId", &[]),
            "message.attributes.bucketId",
            "message.attributes.bucketId is missing: a Cloud Storage notification names the object's bucket",
        ),
        (
            attributes("objectId", &[]),
            "message.attributes.objectId",
            "message.attributes.objectId is missing: a Cloud Storage notification names the object's name",
        ),
        (
            attributes("", &[("objectId", "")]),
            "message.attributes.objectId",
            "message.attributes.objectId is missing: a Cloud Storage notification names the object's name",
        ),
        (
            attributes("", &[("objectGeneration", "abc")]),
            "message.attributes.objectGeneration",
            "message.attributes.objectGeneration 'abc' is not an object generation: expected a decimal integer",
        ),
        (
            attributes("", &[("objectGeneration", "-1")]),
            "message.attributes.objectGeneration",
            "message.attributes.objectGeneration '-1' is not an object generation: expected a decimal integer",
        ),
    ];
    for (meta, field, message) in cases {
        // the object resource as data does not stand in for a missing attribute
        let e = refused(PUSH, &meta, Some(&resource()));
        assert_eq!((e.field.as_deref(), e.message.as_str()), (Some(field), message));
    }
    // inside a structured CloudEvent (Eventarc's Pub/Sub event), the wrapper is under `data`
    let e = refused(DeliveryFormat::CloudEventStructured, &attributes("bucketId", &[]), None);
    assert_eq!(e.field.as_deref(), Some("data.message.attributes.bucketId"));
    // without the attribute, the resource's generation is checked the same way
    let mut bad = resource();
    bad["generation"] = json!("1&x=y");
    let e = refused(PUSH, &attributes("objectGeneration", &[]), Some(&bad));
    assert_eq!(e.field.as_deref(), Some("message.data.generation"));
}

/// The Eventarc form: an unknown type of Cloud Storage, a resource without its name or with a
/// generation that is no number, are refused the same way.
#[test]
fn a_malformed_storage_cloudevent_is_refused_naming_the_field() {
    let ce = DeliveryMeta {
        ce_type: Some("google.cloud.storage.object.v1.exploded".into()),
        ce_source: Some("//storage.googleapis.com/projects/_/buckets/b".into()),
        ..Default::default()
    };
    let e = refused(DeliveryFormat::CloudEventBinary, &ce, Some(&resource()));
    assert_eq!(e.field.as_deref(), Some("header ce-type"));
    assert_eq!(
        e.message,
        "header ce-type 'google.cloud.storage.object.v1.exploded' is not a Cloud Storage object event: expected \
         google.cloud.storage.object.v1. followed by finalized, metadataUpdated, deleted or archived"
    );
    let ce = DeliveryMeta { ce_type: Some("google.cloud.storage.object.v1.finalized".into()), ..ce };
    let mut nameless = resource();
    nameless.as_object_mut().unwrap().remove("name");
    let e = refused(DeliveryFormat::CloudEventStructured, &ce, Some(&nameless));
    assert_eq!(
        (e.field.as_deref(), e.message.as_str()),
        (Some("data.name"), "data.name is missing: a Cloud Storage notification names the object's name")
    );
    let mut bad = resource();
    bad["generation"] = json!("abc");
    assert_eq!(refused(DeliveryFormat::CloudEventBinary, &ce, Some(&bad)).field.as_deref(), Some("generation"));
}
