//! Cloud Storage object notifications: a Datastream file was written (or changed) in a bucket.
//!
//! The same event reaches the function by two routes, and both are recognised:
//! * a bucket notification on a Pub/Sub topic, pushed: message attributes `eventType`
//!   (`OBJECT_FINALIZE`, `OBJECT_DELETE`, `OBJECT_ARCHIVE`, `OBJECT_METADATA_UPDATE`),
//!   `bucketId`, `objectId`, `objectGeneration`, and the object resource as data when
//!   `payloadFormat=JSON_API_V1` (https://cloud.google.com/storage/docs/pubsub-notifications);
//! * an Eventarc CloudEvent (binary or structured): `type`
//!   `google.cloud.storage.object.v1.finalized` (or `.deleted`, `.archived`,
//!   `.metadataUpdated`), `source` `//storage.googleapis.com/projects/_/buckets/<bucket>`, the
//!   object resource (`kind: storage#object`, `bucket`, `name`, `generation`) as data
//!   (googleapis/google-cloudevents, `StorageObjectData`).

use serde_json::Value;

use super::DeliveryMeta;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectEvent {
    /// A new object (or a new generation of one) was written: its records are to be read.
    Finalized,
    Deleted,
    Archived,
    MetadataUpdated,
}

impl ObjectEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectEvent::Finalized => "finalized",
            ObjectEvent::Deleted => "deleted",
            ObjectEvent::Archived => "archived",
            ObjectEvent::MetadataUpdated => "metadata_updated",
        }
    }
}

/// One Cloud Storage object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageObject {
    pub bucket: String,
    /// The object name (`objectId`), e.g.
    /// `ds/public_pipeline_run/2025/11/05/18/23/<hash>_postgresql-cdc_1_2_3.jsonl.gz`.
    pub name: String,
    /// The generation the notification is about (read exactly that one), when given.
    pub generation: Option<String>,
    pub event: ObjectEvent,
    /// Size in bytes, when the notification carries the object resource.
    pub size: Option<u64>,
}

fn event_from_attribute(t: &str) -> Option<ObjectEvent> {
    Some(match t {
        "OBJECT_FINALIZE" => ObjectEvent::Finalized,
        "OBJECT_DELETE" => ObjectEvent::Deleted,
        "OBJECT_ARCHIVE" => ObjectEvent::Archived,
        "OBJECT_METADATA_UPDATE" => ObjectEvent::MetadataUpdated,
        _ => return None,
    })
}

fn event_from_ce_type(t: &str) -> Option<ObjectEvent> {
    Some(match t.strip_prefix("google.cloud.storage.object.v1.")? {
        "finalized" => ObjectEvent::Finalized,
        "deleted" => ObjectEvent::Deleted,
        "archived" => ObjectEvent::Archived,
        "metadataUpdated" => ObjectEvent::MetadataUpdated,
        _ => return None,
    })
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether `meta` alone may make a delivery a Cloud Storage notification ([`notification`]):
/// Pub/Sub notification attributes, or a CloudEvent whose type or source is Cloud Storage's.
/// When it is false, only data that is an object resource (`"kind": "storage#object"`) is one.
pub(crate) fn may_announce(meta: &DeliveryMeta) -> bool {
    let a = &meta.attributes;
    ["bucketId", "objectId", "eventType"].iter().any(|k| a.contains_key(*k))
        || meta.ce_type.as_deref().and_then(event_from_ce_type).is_some()
        || meta.ce_source.as_deref().is_some_and(|s| s.starts_with("//storage.googleapis.com/"))
}

/// The object a delivery announces, if it is a Cloud Storage notification on any route: Pub/Sub
/// attributes, a CloudEvent of a `google.cloud.storage.object.v1.*` type or from a
/// `//storage.googleapis.com/` source, or data that is an object resource (`kind:
/// storage#object` with `bucket` and `name`). `None` for anything else.
pub fn notification(meta: &DeliveryMeta, data: Option<&Value>) -> Option<StorageObject> {
    let a = &meta.attributes;
    let size = data.and_then(|d| text(d.get("size"))).and_then(|s| s.parse().ok());
    if let (Some(bucket), Some(name)) = (a.get("bucketId"), a.get("objectId"))
        && let Some(event) = a.get("eventType").and_then(|t| event_from_attribute(t))
    {
        let generation = a.get("objectGeneration").cloned().or_else(|| data.and_then(|d| text(d.get("generation"))));
        return Some(StorageObject { bucket: bucket.clone(), name: name.clone(), generation, event, size });
    }
    let ce_event = meta.ce_type.as_deref().and_then(event_from_ce_type);
    let from_storage = meta.ce_source.as_deref().is_some_and(|s| s.starts_with("//storage.googleapis.com/"));
    let resource = data.filter(|d| d.get("kind").and_then(Value::as_str) == Some("storage#object"));
    if ce_event.is_none() && !from_storage && resource.is_none() {
        return None;
    }
    let d = data?;
    let bucket = text(d.get("bucket"))
        .or_else(|| meta.ce_source.as_deref().and_then(|s| s.rsplit_once("/buckets/")).map(|(_, b)| b.to_string()))?;
    let name = text(d.get("name"))?;
    Some(StorageObject {
        bucket,
        name,
        generation: text(d.get("generation")),
        event: ce_event.unwrap_or(ObjectEvent::Finalized),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource() -> Value {
        json!({"kind": "storage#object", "bucket": "b", "name": "ds/public_pipeline_run/x.jsonl", "generation": "17", "size": "2311"})
    }

    #[test]
    fn every_route_is_recognised() {
        let mut push = DeliveryMeta::default();
        for (k, v) in
            [("eventType", "OBJECT_FINALIZE"), ("bucketId", "b"), ("objectId", "o"), ("objectGeneration", "9")]
        {
            push.attributes.insert(k.into(), v.into());
        }
        let o = notification(&push, None).expect("attributes alone");
        assert_eq!((o.bucket.as_str(), o.name.as_str(), o.generation.as_deref()), ("b", "o", Some("9")));
        assert_eq!(o.event, ObjectEvent::Finalized);

        let ce = DeliveryMeta {
            ce_type: Some("google.cloud.storage.object.v1.finalized".into()),
            ce_source: Some("//storage.googleapis.com/projects/_/buckets/b".into()),
            ..Default::default()
        };
        let o = notification(&ce, Some(&resource())).expect("Eventarc");
        assert_eq!((o.bucket.as_str(), o.generation.as_deref(), o.size), ("b", Some("17"), Some(2311)));
        let deleted = DeliveryMeta { ce_type: Some("google.cloud.storage.object.v1.deleted".into()), ..ce.clone() };
        assert_eq!(notification(&deleted, Some(&resource())).unwrap().event, ObjectEvent::Deleted);

        // the object resource alone (for instance relayed without attributes)
        let o = notification(&DeliveryMeta::default(), Some(&resource())).expect("kind storage#object");
        assert_eq!(o.name, "ds/public_pipeline_run/x.jsonl");
    }

    #[test]
    fn records_and_other_events_are_not_notifications() {
        let record = json!({"source_timestamp": 1, "payload": {"name": "x", "bucket": "y"}});
        assert_eq!(notification(&DeliveryMeta::default(), Some(&record)), None);
        let other = DeliveryMeta {
            ce_type: Some("google.cloud.pubsub.topic.v1.messagePublished".into()),
            ..Default::default()
        };
        assert_eq!(notification(&other, Some(&record)), None);
    }
}
