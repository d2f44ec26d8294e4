//! Decode: one HTTP request -> a [`Delivery`]: its format, its metadata and the change record it
//! carries ([`pubsub`] push bodies, [`cloudevents`]), then the record -> a [`ChangeEvent`]
//! ([`datastream`]).
//!
//! Accepted formats, tried in this order (protocols.md §2, "recommended decoder order"):
//! 1. `application/cloudevents-batch+json` -> rejected (415): batch mode is not supported;
//! 2. binary-mode CloudEvent: `ce-specversion` header present (all of `ce-id`, `ce-source`,
//!    `ce-type` required, values percent-decoded; `ce-time`, when given, RFC 3339); body =
//!    Pub/Sub push wrapper (Eventarc) or the record itself. A non-structured request with
//!    `ce-id`, `ce-source` or `ce-type` but no `ce-specversion` is refused (400);
//! 3. structured CloudEvent: `application/cloudevents+json`, or a JSON body with `specversion`
//!    (functions-framework leniency); `data` (or `data_base64`) = Pub/Sub push wrapper or record;
//! 4. wrapped Pub/Sub push: JSON body with a `message` object (camelCase or snake_case keys);
//! 5. unwrapped Pub/Sub push: the body is the record itself, with its metadata in
//!    `x-goog-pubsub-*` headers; without them, a record POSTed directly (format `direct`:
//!    Debezium Server's HTTP sink).

pub mod change;
pub mod cloudevents;
pub mod datastream;
pub mod debezium;
pub mod dms;
pub mod error;
pub mod files;
mod headers;
pub mod openlineage;
pub mod pubsub;
mod route;
pub mod storage;
pub mod time;
mod tree;

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde_json::Value;

pub use crate::redact::MAX_ID_BYTES;
pub use change::{ChangeEvent, ChangeKind, PipelineRun, ReadKind, SourceMetadata};
pub use error::{DecodeError, DecodeErrorKind};
use headers::is_accepted_type;
pub(crate) use headers::{content_type, header, is_json_type};
use pubsub::message_data;
pub use storage::{ObjectEvent, StorageObject};

/// How the event reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFormat {
    CloudEventBinary,
    CloudEventStructured,
    PubSubPush,
    /// A Pub/Sub push without wrapper: the body is the record, with `x-goog-pubsub-*` metadata
    /// headers.
    PubSubUnwrapped,
    /// The record itself POSTed, with neither envelope nor Pub/Sub metadata headers (Debezium
    /// Server's HTTP sink, any HTTP client; a Pub/Sub push without wrapper and without
    /// `write_metadata` cannot be told apart from it).
    Direct,
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
            DeliveryFormat::Direct => "direct",
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
        Delivery::of(format, meta, record(value))
    }

    /// A delivery of one record already decoded (or not).
    fn of(format: DeliveryFormat, meta: DeliveryMeta, record: Result<ChangeEvent, DecodeError>) -> Delivery {
        Delivery { format, meta, records: vec![RecordInput { item: None, record }] }
    }
}

/// The one record of a delivery's data, read straight from its text
/// ([`datastream::members::record`]) when the data is a plain Datastream record and the
/// delivery's metadata announces no Cloud Storage object; `None` when the JSON tree of the data
/// must decide what it is. Either way the outcome is the tree's.
fn plain_record(meta: &DeliveryMeta, data: &[u8]) -> Option<Result<ChangeEvent, DecodeError>> {
    if storage::may_announce(meta) {
        return None;
    }
    datastream::members::record(data)
}

/// Decodes one change record, whatever its format: an AWS DMS message (`data` + `metadata`), a
/// Debezium change event (envelope, with schema, or flattened), else a Datastream record.
///
/// Errors: also a record whose identity (`uuid`) is longer than [`MAX_ID_BYTES`].
pub fn record(value: Value) -> Result<ChangeEvent, DecodeError> {
    let event = if dms::looks_like_dms(&value) {
        dms::decode(value)
    } else if value.as_object().is_some_and(debezium::looks_like) {
        debezium::decode(value)
    } else {
        datastream::decode(value)
    }?;
    bounded_id("uuid", event.uuid.as_deref())?;
    Ok(event)
}

/// Refuses an identifier longer than [`MAX_ID_BYTES`]: identifiers are kept (hashed) by the
/// de-duplication window and written to every log line of their event, so their length must not
/// be the sender's choice. The value is not repeated.
pub(crate) fn bounded_id(field: &str, value: Option<&str>) -> Result<(), DecodeError> {
    match value {
        Some(v) if v.len() > MAX_ID_BYTES => Err(DecodeError::malformed(
            Some(field.to_string()),
            format!("{field} is {} bytes long: at most {MAX_ID_BYTES} are accepted", v.len()),
        )),
        _ => Ok(()),
    }
}

/// The identifiers of a delivery, each at most [`MAX_ID_BYTES`] long.
fn bounded_ids(format: DeliveryFormat, meta: &DeliveryMeta) -> Result<(), DecodeError> {
    let (message_id, ce_id) = match format {
        DeliveryFormat::PubSubUnwrapped => ("header x-goog-pubsub-message-id", "id"),
        DeliveryFormat::CloudEventBinary => ("message.messageId", "header ce-id"),
        DeliveryFormat::CloudEventStructured => ("data.message.messageId", "id"),
        DeliveryFormat::PubSubPush => ("message.messageId", "id"),
        // no delivery-level identifiers (a replay's records come from files): their records'
        // identities are checked one by one
        DeliveryFormat::OpenLineage
        | DeliveryFormat::Direct
        | DeliveryFormat::Replay
        | DeliveryFormat::LambdaKinesis
        | DeliveryFormat::LambdaSqs
        | DeliveryFormat::LambdaKafka => return Ok(()),
    };
    bounded_id(message_id, meta.message_id.as_deref())?;
    bounded_id(ce_id, meta.ce_id.as_deref())
}

/// What a delivery on `POST /` may be (docs/formats.md), as error messages list it.
pub(crate) const EXPECTED: &str = "expected a CloudEvent (binary or structured mode), a Pub/Sub push body \
{\"message\":{\"data\":<base64>,...},\"subscription\":...}, a Datastream record \
{\"source_timestamp\":...,\"payload\":{...}}, a Debezium change event {\"op\":...,\"after\":{...},\"source\":{...}}, \
an AWS DMS message {\"data\":{...},\"metadata\":{...}} or a Cloud Storage object notification \
(an OpenLineage RunEvent goes to POST /api/v1/lineage)";

/// The JSON document of `body` (`what` in messages; `field` names it in errors: `body`, `data`).
pub(crate) fn parse_json(body: &[u8], what: &str, field: &str) -> Result<Value, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::malformed(field.to_string(), format!("empty {what}: {EXPECTED}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| DecodeError::malformed(field.to_string(), format!("{what} is not valid JSON ({e}): {EXPECTED}")))
}

/// The field of errors about the request body as a whole (not JSON, not UTF-8, empty,
/// unrecognised, too large).
pub const BODY: &str = "body";

/// The body without a leading UTF-8 byte order mark, which some Windows tools write before
/// JSON text: RFC 8259 §8.1 lets a parser ignore it, and serde_json refuses it ("expected value
/// at line 1 column 1" of a body that looks like JSON).
pub fn without_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
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

/// Decodes one HTTP request: its route (binary or structured CloudEvent, wrapped or unwrapped
/// Pub/Sub push), then what the route carries, recognised the same way on every route.
///
/// Errors: a request that is not a delivery at all, or whose message id or CloudEvent id is
/// longer than [`MAX_ID_BYTES`] (the whole delivery is refused); a record that does not decode
/// is carried in [`RecordInput::record`] instead.
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Decoded, DecodeError> {
    let decoded = route(headers, without_bom(body))?;
    match &decoded {
        Decoded::Records(d) => bounded_ids(d.format, &d.meta)?,
        Decoded::Object { format, meta, .. } => bounded_ids(*format, meta)?,
    }
    Ok(decoded)
}

fn route(headers: &HeaderMap, body: &[u8]) -> Result<Decoded, DecodeError> {
    let ct = content_type(headers)?;
    if ct == "application/cloudevents-batch+json" {
        return Err(DecodeError::unsupported(
            "CloudEvents batch mode is not supported: send one event per request (binary or structured mode)",
        ));
    }
    if !is_accepted_type(&ct) {
        return Err(DecodeError::unsupported(format!(
            "unsupported content type '{}': expected application/json, application/cloudevents+json (or another \
             application/*+json), application/octet-stream, text/plain or none",
            crate::redact::excerpt(&ct, crate::redact::EXCERPT_CHARS)
        )));
    }
    if headers.contains_key("ce-specversion") {
        let meta = cloudevents::binary(headers)?;
        // binary mode: the body is the event's data
        return cloudevents::carried(DeliveryFormat::CloudEventBinary, meta, body, BODY);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::malformed(BODY.to_string(), format!("empty body: {EXPECTED}")));
    }
    // Every delivery is a JSON object; `Top` would also read an array as its fields in order
    // (serde's sequence form of a struct), taking `[1]` for a CloudEvent of specversion 1.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => DecodeError::malformed(BODY.to_string(), format!("unrecognised body: {EXPECTED}")),
            Err(e) => DecodeError::malformed(BODY.to_string(), format!("body is not valid JSON ({e}): {EXPECTED}")),
        });
    }
    // One pass reads the route keys and what the route reads (see `route::Routed`); a body it
    // does not read goes the way it always went: `Top`, then the route's own parser.
    let routed = serde_json::from_slice::<route::Routed>(body).ok();
    let (structured, has_message) = match &routed {
        Some(r) => (r.has_specversion(), r.has_message()),
        None => match serde_json::from_slice::<route::Top>(body) {
            Ok(top) => (top.specversion.is_some(), top.message.is_some() && top.op.is_none()),
            Err(e) => {
                return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => DecodeError::malformed(BODY.to_string(), format!("unrecognised body: {EXPECTED}")),
                    Err(_) => {
                        DecodeError::malformed(BODY.to_string(), format!("body is not valid JSON ({e}): {EXPECTED}"))
                    }
                });
            }
        },
    };
    if ct == "application/cloudevents+json" || structured {
        return match routed {
            Some(r) => r.cloudevent(body),
            None => {
                let (meta, data) = cloudevents::structured(body)?;
                cloudevents::carried(DeliveryFormat::CloudEventStructured, meta, &data, "data")
            }
        };
    }
    // neither binary nor structured: ce-id/ce-source/ce-type headers say it was meant as binary
    cloudevents::without_specversion(headers)?;
    if has_message {
        let (meta, data) = match routed.and_then(route::Routed::push) {
            Some(push) => push?,
            None => pubsub::push_body(body, "")?,
        };
        return message_data(DeliveryFormat::PubSubPush, meta, data, "message.data");
    }
    let meta = DeliveryMeta {
        message_id: header(headers, "x-goog-pubsub-message-id")?,
        subscription: header(headers, "x-goog-pubsub-subscription-name")?,
        publish_time: header(headers, "x-goog-pubsub-publish-time")?,
        ..Default::default()
    };
    // Pub/Sub's metadata headers say who pushed it; without them it is a direct POST
    let format = if meta == DeliveryMeta::default() { DeliveryFormat::Direct } else { DeliveryFormat::PubSubUnwrapped };
    if let Some(record) = plain_record(&meta, body) {
        return Ok(Decoded::Records(Delivery::of(format, meta, record)));
    }
    let value = parse_json(body, "body", BODY)?;
    if let Some(object) = storage::notification(format, &meta, Some(&value)) {
        return Ok(Decoded::Object { format, meta, object: object? });
    }
    if looks_like_record(&value) {
        return Ok(Decoded::Records(Delivery::single(format, meta, value)));
    }
    if value.get("message").is_some() {
        // `"message": null` (a null is read as no message above): a push body whose message is
        // missing, named as `"message": "abc"` is
        return Err(DecodeError::malformed(
            Some("message".into()),
            "message must be an object (the Pub/Sub message: {\"data\": <base64>, \"messageId\": ...})",
        ));
    }
    if ["eventTime", "run", "job"].iter().all(|k| value.get(k).is_some()) {
        return Err(DecodeError::malformed(
            BODY.to_string(),
            "an OpenLineage event: POST it to /api/v1/lineage (the path the OpenLineage HTTP transport posts to)",
        ));
    }
    Err(DecodeError::malformed(BODY.to_string(), format!("unrecognised body: {EXPECTED}")))
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
mod tests;
