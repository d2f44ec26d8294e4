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

use super::{DecodeError, DeliveryFormat, DeliveryMeta};
use crate::redact::{EXCERPT_CHARS, excerpt};

/// The attributes Cloud Storage sets on a notification message: any of them makes a Pub/Sub
/// message a notification, whose `eventType`, `bucketId` and `objectId` are then required.
const ATTRIBUTES: [&str; 6] =
    ["eventType", "bucketId", "objectId", "objectGeneration", "payloadFormat", "notificationConfig"];

/// The `eventType` values of Cloud Storage notifications, as messages list them.
const EVENT_TYPES: &str = "OBJECT_FINALIZE, OBJECT_METADATA_UPDATE, OBJECT_DELETE, OBJECT_ARCHIVE";

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
    /// The event's name in log lines and answers.
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
    /// The bucket (`bucketId`, or the resource's `bucket`).
    pub bucket: String,
    /// The object name (`objectId`), e.g.
    /// `ds/public_pipeline_run/2025/11/05/18/23/<hash>_postgresql-cdc_1_2_3.jsonl.gz`.
    pub name: String,
    /// The generation the notification is about (read exactly that one), when given: a
    /// decimal integer (checked when decoded: it becomes part of the request URL).
    pub generation: Option<String>,
    /// What happened to it: only a finalized object is read.
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
    ATTRIBUTES.iter().any(|k| meta.attributes.contains_key(*k))
        || meta.ce_type.as_deref().and_then(event_from_ce_type).is_some()
        || meta.ce_source.as_deref().is_some_and(|s| s.starts_with("//storage.googleapis.com/"))
}

/// The object a delivery announces, if it is a Cloud Storage notification on any route: Pub/Sub
/// notification attributes ([`ATTRIBUTES`]), a CloudEvent of a `google.cloud.storage.object.v1.*`
/// type or from a `//storage.googleapis.com/` source, or data that is an object resource
/// (`kind: storage#object` with `bucket` and `name`). `None` for anything else.
///
/// Errors (checked here, before anything is fetched): a notification whose `eventType` is
/// missing or not one of Cloud Storage's, without `bucketId` or `objectId`, or whose generation
/// is not a decimal integer; a CloudEvent of Cloud Storage of an unknown type, or whose object
/// resource lacks `bucket` or `name`. Each names the attribute or field, as `format` carries it.
pub fn notification(
    format: DeliveryFormat,
    meta: &DeliveryMeta,
    data: Option<&Value>,
) -> Option<Result<StorageObject, DecodeError>> {
    let size = data.and_then(|d| text(d.get("size"))).and_then(|s| s.parse().ok());
    let (message, data_at) = match format {
        DeliveryFormat::CloudEventStructured => ("data.message", "data."),
        _ => ("message", ""),
    };
    if ATTRIBUTES.iter().any(|k| meta.attributes.contains_key(*k)) {
        return Some(from_attributes(meta, data, message).map(|mut o| {
            o.size = size;
            o
        }));
    }
    let ce_type = meta.ce_type.as_deref();
    let ce_event = ce_type.and_then(event_from_ce_type);
    let from_storage = meta.ce_source.as_deref().is_some_and(|s| s.starts_with("//storage.googleapis.com/"));
    let of_storage = ce_type.is_some_and(|t| t.starts_with("google.cloud.storage."));
    let resource = data.filter(|d| d.get("kind").and_then(Value::as_str) == Some("storage#object"));
    if ce_event.is_none() && !from_storage && !of_storage && resource.is_none() {
        return None;
    }
    let field = |name: &str| format!("{data_at}{name}");
    Some((|| {
        let event = match (ce_type, ce_event) {
            (_, Some(event)) => event,
            // an object resource relayed without a CloudEvent of Cloud Storage
            (_, None) if !from_storage && !of_storage => ObjectEvent::Finalized,
            (t, None) => {
                let at = if format == DeliveryFormat::CloudEventBinary { "header ce-type" } else { "type" };
                let t = excerpt(t.unwrap_or_default(), EXCERPT_CHARS);
                return Err(DecodeError::malformed(
                    Some(at.to_string()),
                    format!(
                        "{at} '{t}' is not a Cloud Storage object event: expected google.cloud.storage.object.v1. \
                         followed by finalized, metadataUpdated, deleted or archived"
                    ),
                ));
            }
        };
        let d = data.unwrap_or(&Value::Null);
        let bucket = text(d.get("bucket"))
            .or_else(|| meta.ce_source.as_deref().and_then(|s| s.rsplit_once("/buckets/")).map(|(_, b)| b.to_string()))
            .ok_or_else(|| missing(&field("bucket"), "the object's bucket"))?;
        let name = text(d.get("name")).ok_or_else(|| missing(&field("name"), "the object's name"))?;
        let generation = generation(text(d.get("generation")), &field("generation"))?;
        Ok(StorageObject { bucket, name, generation, event, size })
    })())
}

/// The object of a Pub/Sub notification: its attributes (named `<message>.attributes.<name>`),
/// the generation from the resource in `data` when the attribute is absent.
fn from_attributes(meta: &DeliveryMeta, data: Option<&Value>, message: &str) -> Result<StorageObject, DecodeError> {
    let a = &meta.attributes;
    let field = |name: &str| format!("{message}.attributes.{name}");
    let event = match a.get("eventType").map(String::as_str) {
        None | Some("") => return Err(missing(&field("eventType"), &format!("its event ({EVENT_TYPES})"))),
        Some(t) => event_from_attribute(t).ok_or_else(|| {
            let f = field("eventType");
            DecodeError::malformed(
                Some(f.clone()),
                format!(
                    "{f} '{}' is not a Cloud Storage notification event: expected one of {EVENT_TYPES}",
                    excerpt(t, EXCERPT_CHARS)
                ),
            )
        })?,
    };
    let required = |name: &str, what: &str| match a.get(name) {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        _ => Err(missing(&field(name), what)),
    };
    let bucket = required("bucketId", "the object's bucket")?;
    let name = required("objectId", "the object's name")?;
    let generation = match a.get("objectGeneration") {
        Some(g) => generation(Some(g.clone()), &field("objectGeneration"))?,
        None => generation(data.and_then(|d| text(d.get("generation"))), &format!("{message}.data.generation"))?,
    };
    Ok(StorageObject { bucket, name, generation, event, size: None })
}

/// A Cloud Storage notification without `field`, which names `what`.
fn missing(field: &str, what: &str) -> DecodeError {
    DecodeError::malformed(
        Some(field.to_string()),
        format!("{field} is missing: a Cloud Storage notification names {what}"),
    )
}

/// An object generation, which must be a decimal integer (an int64, as Cloud Storage writes it
/// in decimal text): it becomes the `generation` parameter of the read.
fn generation(g: Option<String>, field: &str) -> Result<Option<String>, DecodeError> {
    match g {
        Some(g) if g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) || g.parse::<i64>().is_err() => {
            Err(DecodeError::malformed(
                Some(field.to_string()),
                format!(
                    "{field} '{}' is not an object generation: expected a decimal integer",
                    excerpt(&g, EXCERPT_CHARS)
                ),
            ))
        }
        g => Ok(g),
    }
}

#[cfg(test)]
mod tests;
