//! Decode: one HTTP request -> a [`Delivery`]: its format, its metadata and the change record it
//! carries ([`pubsub`] push bodies, [`cloudevents`]), then the record -> a [`ChangeEvent`]
//! ([`datastream`]).
//!
//! Accepted formats, tried in this order (protocols.md §2, "recommended decoder order"):
//! 1. `application/cloudevents-batch+json` -> rejected (415): batch mode is not supported;
//! 2. binary-mode CloudEvent: `ce-specversion` header present (all of `ce-id`, `ce-source`,
//!    `ce-type` required, values percent-decoded); body = Pub/Sub push wrapper (Eventarc) or the
//!    record itself;
//! 3. structured CloudEvent: `application/cloudevents+json`, or a JSON body with `specversion`
//!    (functions-framework leniency); `data` (or `data_base64`) = Pub/Sub push wrapper or record;
//! 4. wrapped Pub/Sub push: JSON body with a `message` object (camelCase or snake_case keys);
//! 5. unwrapped Pub/Sub push: the body is the record itself (metadata, when written, comes in
//!    `x-goog-pubsub-*` headers).

pub mod change;
pub mod cloudevents;
pub mod datastream;
pub mod debezium;
pub mod dms;
pub mod error;
pub mod files;
pub mod openlineage;
pub mod pubsub;
pub mod storage;

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde_json::Value;

pub use change::{ChangeEvent, ChangeKind, PipelineRun, ReadKind, SourceMetadata};
pub use error::{DecodeError, DecodeErrorKind};
pub use storage::{ObjectEvent, StorageObject};

/// How the event reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFormat {
    CloudEventBinary,
    CloudEventStructured,
    PubSubPush,
    PubSubUnwrapped,
    /// An OpenLineage RunEvent posted by the OpenLineage HTTP transport.
    OpenLineage,
    /// An AWS Lambda batch from a Kinesis data stream (one record per Kinesis record).
    LambdaKinesis,
    /// An AWS Lambda batch from an SQS queue (one record per message).
    LambdaSqs,
    /// An AWS Lambda batch from Amazon MSK or a self-managed Kafka cluster.
    LambdaKafka,
    /// A record read from a file by `pipeline-run-metrics replay`.
    Replay,
}

impl DeliveryFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryFormat::CloudEventBinary => "cloudevent_binary",
            DeliveryFormat::CloudEventStructured => "cloudevent_structured",
            DeliveryFormat::PubSubPush => "pubsub_push",
            DeliveryFormat::PubSubUnwrapped => "pubsub_unwrapped",
            DeliveryFormat::OpenLineage => "openlineage",
            DeliveryFormat::LambdaKinesis => "lambda_kinesis",
            DeliveryFormat::LambdaSqs => "lambda_sqs",
            DeliveryFormat::LambdaKafka => "lambda_kafka",
            DeliveryFormat::Replay => "replay",
        }
    }
}

/// Identifiers of one delivery, for logs and de-duplication.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryMeta {
    pub message_id: Option<String>,
    pub subscription: Option<String>,
    pub publish_time: Option<String>,
    pub delivery_attempt: Option<u32>,
    pub attributes: BTreeMap<String, String>,
    pub ce_id: Option<String>,
    pub ce_source: Option<String>,
    pub ce_type: Option<String>,
}

/// A decoded delivery: its format, its metadata and the change records it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub format: DeliveryFormat,
    pub meta: DeliveryMeta,
    pub records: Vec<RecordInput>,
}

/// One record of a delivery, decoded or not: a record that cannot be decoded fails alone,
/// without the others of its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordInput {
    /// The transport's id of the item (a batch item id, a file line); `None` when the delivery
    /// is the record.
    pub item: Option<String>,
    pub record: Result<ChangeEvent, DecodeError>,
}

impl Delivery {
    /// A delivery of one record (JSON), decoded by its format ([`record`]).
    pub fn single(format: DeliveryFormat, meta: DeliveryMeta, value: Value) -> Delivery {
        Delivery { format, meta, records: vec![RecordInput { item: None, record: record(value) }] }
    }
}

/// Decodes one change record, whatever its format: an AWS DMS message (`data` + `metadata`), a
/// Debezium change event (envelope, with schema, or flattened), else a Datastream record.
pub fn record(value: Value) -> Result<ChangeEvent, DecodeError> {
    if dms::looks_like_dms(&value) {
        return dms::decode(value);
    }
    match value.as_object() {
        Some(o) if debezium::looks_like(o) => debezium::decode(value),
        _ => datastream::decode(value),
    }
}

pub(crate) const EXPECTED: &str = "expected a CloudEvent (binary or structured mode), a Pub/Sub push body \
{\"message\":{\"data\":<base64>,...},\"subscription\":...}, a Datastream record \
{\"source_timestamp\":...,\"payload\":{...}} or a Debezium change event {\"op\":...,\"after\":{...},\"source\":{...}}";

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json_type(ct: &str) -> bool {
    ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
}

/// Content types a body may carry. Pub/Sub sends `application/json`; unwrapped push may carry
/// whatever the publisher set (`application/octet-stream`, `text/plain`) or none.
fn is_accepted_type(ct: &str) -> bool {
    ct.is_empty() || is_json_type(ct) || ct == "application/octet-stream" || ct == "text/plain"
}

pub(crate) fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, DecodeError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => {
            let raw = v
                .to_str()
                .map_err(|_| DecodeError::malformed(format!("header {name}"), format!("header {name} is not ASCII")))?;
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().map_err(|_| {
                DecodeError::malformed(
                    format!("header {name}"),
                    format!("header {name} is not UTF-8 after percent-decoding"),
                )
            })?;
            Ok(Some(decoded.into_owned()))
        }
    }
}

pub(crate) fn parse_json(body: &[u8], what: &str) -> Result<Value, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::malformed(None, format!("empty body: {EXPECTED}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| DecodeError::malformed(None, format!("{what} is not valid JSON ({e}): {EXPECTED}")))
}

/// What a request carries: change records, or the announcement of a Cloud Storage object whose
/// lines are change records.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Records(Delivery),
    Object { format: DeliveryFormat, meta: DeliveryMeta, object: storage::StorageObject },
}

impl Decoded {
    /// The delivery of records, or `None` for an object notification.
    pub fn into_delivery(self) -> Option<Delivery> {
        match self {
            Decoded::Records(d) => Some(d),
            Decoded::Object { .. } => None,
        }
    }
}

/// The top-level keys that decide the route, read without building the document.
#[derive(serde::Deserialize)]
struct Top<'a> {
    #[serde(default, borrow)]
    specversion: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    message: Option<&'a serde_json::value::RawValue>,
}

/// Decodes one HTTP request: its route (binary or structured CloudEvent, wrapped or unwrapped
/// Pub/Sub push), then what the route carries, recognised the same way on every route.
///
/// Errors: a request that is not a delivery at all (the whole delivery is refused); a record
/// that does not decode is carried in [`RecordInput::record`] instead.
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Decoded, DecodeError> {
    let ct = content_type(headers);
    if ct == "application/cloudevents-batch+json" {
        return Err(DecodeError::unsupported(
            "CloudEvents batch mode is not supported: send one event per request (binary or structured mode)",
        ));
    }
    if !is_accepted_type(&ct) {
        return Err(DecodeError::unsupported(format!(
            "unsupported content type '{ct}': expected application/json or application/cloudevents+json"
        )));
    }
    if headers.contains_key("ce-specversion") {
        let meta = cloudevents::binary(headers)?;
        return carried(DeliveryFormat::CloudEventBinary, meta, body, "data");
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::malformed(None, format!("empty body: {EXPECTED}")));
    }
    let top: Top = match serde_json::from_slice(body) {
        Ok(top) => top,
        Err(e) => {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => DecodeError::malformed(None, format!("unrecognised body: {EXPECTED}")),
                Err(_) => DecodeError::malformed(None, format!("body is not valid JSON ({e}): {EXPECTED}")),
            });
        }
    };
    if ct == "application/cloudevents+json" || top.specversion.is_some() {
        let (meta, data) = cloudevents::structured(body)?;
        return carried(DeliveryFormat::CloudEventStructured, meta, &data, "data");
    }
    if top.message.is_some() {
        let (meta, data) = pubsub::push_body(body, "")?;
        return message_data(DeliveryFormat::PubSubPush, meta, data, "message.data");
    }
    let meta = DeliveryMeta {
        message_id: header(headers, "x-goog-pubsub-message-id")?,
        subscription: header(headers, "x-goog-pubsub-subscription-name")?,
        publish_time: header(headers, "x-goog-pubsub-publish-time")?,
        ..Default::default()
    };
    let value = parse_json(body, "body")?;
    if let Some(object) = storage::notification(&meta, Some(&value)) {
        return Ok(Decoded::Object { format: DeliveryFormat::PubSubUnwrapped, meta, object });
    }
    if looks_like_record(&value) {
        return Ok(Decoded::Records(Delivery::single(DeliveryFormat::PubSubUnwrapped, meta, value)));
    }
    Err(DecodeError::malformed(None, format!("unrecognised body: {EXPECTED}")))
}

/// The data of a Pub/Sub message (`field` names it): a Cloud Storage notification (attributes,
/// with or without the object resource as data), or one record.
fn message_data(
    format: DeliveryFormat,
    meta: DeliveryMeta,
    data: Option<Vec<u8>>,
    field: &str,
) -> Result<Decoded, DecodeError> {
    let Some(bytes) = data else {
        if let Some(object) = storage::notification(&meta, None) {
            return Ok(Decoded::Object { format, meta, object });
        }
        return Err(DecodeError::malformed(Some(field.to_string()), "Pub/Sub message without data"));
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        DecodeError::malformed(Some(field.to_string()), format!("{field} does not decode to JSON: {e}"))
    })?;
    if let Some(object) = storage::notification(&meta, Some(&value)) {
        return Ok(Decoded::Object { format, meta, object });
    }
    Ok(Decoded::Records(Delivery::single(format, meta, value)))
}

/// The data of a CloudEvent (`field` names it): a Pub/Sub push wrapper (Eventarc's
/// `MessagePublishedData`), a Cloud Storage object resource, or a record.
fn carried(format: DeliveryFormat, meta: DeliveryMeta, data: &[u8], field: &str) -> Result<Decoded, DecodeError> {
    let value = parse_json(data, "CloudEvent data")?;
    if value.get("message").is_some() {
        let (mut inner, data) = pubsub::push_body(data, &format!("{field}."))?;
        (inner.ce_id, inner.ce_source, inner.ce_type) = (meta.ce_id, meta.ce_source, meta.ce_type);
        return message_data(format, inner, data, &format!("{field}.message.data"));
    }
    if let Some(object) = storage::notification(&meta, Some(&value)) {
        return Ok(Decoded::Object { format, meta, object });
    }
    if looks_like_record(&value) {
        return Ok(Decoded::Records(Delivery::single(format, meta, value)));
    }
    Err(DecodeError::malformed(
        Some(field.to_string()),
        format!("CloudEvent {field} is neither a Pub/Sub message {{\"message\":{{...}}}} nor a Datastream record"),
    ))
}

/// A change record: a Datastream record has at least one of its top-level metadata keys; a
/// Debezium change event has its envelope or flattened fields.
pub(crate) fn looks_like_record(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        ["source_timestamp", "payload", "source_metadata", "read_method", "uuid"].iter().any(|k| o.contains_key(*k))
            || debezium::looks_like(o)
    }) || dms::looks_like_dms(v)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn push_without_data_names_the_field() {
        let body = json!({"message": {"messageId": "m"}, "subscription": "s"});
        let e = decode(&headers(&[]), body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("message.data"));
        let body = json!({"message": {"data": "!!!not base64", "messageId": "m"}, "subscription": "s"});
        let e = decode(&headers(&[]), body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("message.data"));
        assert!(e.message.contains("base64"), "{e}");
        let body = json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode("not json"), "messageId": "m"}});
        let e = decode(&headers(&[]), body.to_string().as_bytes()).unwrap_err();
        assert!(e.message.contains("does not decode to JSON"), "{e}");
    }

    #[test]
    fn gcs_notification_is_recognised_on_every_route() {
        let object = json!({"kind": "storage#object", "bucket": "b", "name": "ds/public_pipeline_run/f.jsonl", "generation": "7"});
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
            (headers(&[]), object.to_string(), DeliveryFormat::PubSubUnwrapped),
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
        // without metadata headers and without a content type
        let d = decode(&headers(&[]), record().to_string().as_bytes()).unwrap();
        assert_eq!(d.format, DeliveryFormat::PubSubUnwrapped);
        assert_eq!(d.meta.message_id, None);
    }

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
        let d = decode(
            &headers(&[("content-type", "application/cloudevents+json; charset=utf-8")]),
            ce.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(d.meta.message_id.as_deref(), Some("m-5"));
        assert_eq!(only(&d), &decoded(record()));
        let ce = json!({"specversion": "1.0", "id": "e-3", "source": "s", "type": "t", "data_base64": b64(&record())});
        let d =
            decode(&headers(&[("content-type", "application/cloudevents+json")]), ce.to_string().as_bytes()).unwrap();
        assert_eq!(only(&d), &decoded(record()));
    }

    #[test]
    fn structured_cloud_event_errors_name_the_attribute() {
        let ce = json!({"specversion": "1.0", "source": "s", "type": "t", "data": record()});
        let e = decode(&headers(&[("content-type", "application/cloudevents+json")]), ce.to_string().as_bytes())
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("id"));
        let ce = json!({"specversion": "0.3", "id": "1", "source": "s", "type": "t", "data": record()});
        let e = decode(&headers(&[]), ce.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("specversion"));
        let ce = json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": record(), "data_base64": "e30="});
        let e = decode(&headers(&[]), ce.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("data_base64"));
        let ce = json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": {"x": 1}});
        let e = decode(&headers(&[]), ce.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("data"));
    }

    #[test]
    fn binary_cloud_event_percent_decodes_headers() {
        let push = json!({"message": {"data": b64(&record()), "messageId": "m-7"}, "subscription": "projects/p/subscriptions/s"});
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

    #[test]
    fn batch_and_unknown_content_types_are_unsupported() {
        for ct in ["application/cloudevents-batch+json", "text/html", "application/xml", "multipart/form-data"] {
            let e = decode(&headers(&[("content-type", ct)]), b"[]").unwrap_err();
            assert_eq!(e.kind, crate::decode::DecodeErrorKind::UnsupportedMediaType, "{ct}");
        }
    }

    #[test]
    fn garbage_bodies_are_malformed_and_say_what_was_expected() {
        for body in [&b""[..], b"not json", b"{\"x\":1}", b"[1,2]", b"42"] {
            let e = decode(&headers(&[("content-type", "application/json")]), body).unwrap_err();
            assert_eq!(e.kind, crate::decode::DecodeErrorKind::Malformed);
            assert!(e.message.contains("expected"), "{e}");
        }
    }

    #[test]
    fn deeply_nested_json_is_rejected_not_crashing() {
        let body = "[".repeat(100_000);
        let e = decode(&headers(&[]), body.as_bytes()).unwrap_err();
        assert_eq!(e.kind, crate::decode::DecodeErrorKind::Malformed);
    }
}
