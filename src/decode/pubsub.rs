//! Pub/Sub push bodies: the wrapper `{"message": {...}, "subscription": ...}` in camelCase or
//! snake_case keys (protocols.md §1.1), whose `message.data` is the base64 of the record.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::{DecodeError, DeliveryMeta};

/// The Pub/Sub push wrapper (`PubsubMessage` plus subscription). Eventarc's
/// `MessagePublishedData` has the same shape.
#[derive(Debug, Clone, Deserialize)]
struct PushBody {
    message: PushMessage,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default, alias = "delivery_attempt", rename = "deliveryAttempt")]
    delivery_attempt: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
struct PushMessage {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "messageId")]
    message_id_camel: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time_camel: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
}

pub(crate) fn decode_base64(s: &str, field: &str) -> Result<Vec<u8>, DecodeError> {
    let trimmed: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(trimmed.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed.as_bytes()))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(trimmed.as_bytes()))
        .map_err(|e| DecodeError::malformed(Some(field.to_string()), format!("{field} is not valid base64: {e}")))
}

pub(crate) fn push_body(value: Value, prefix: &str) -> Result<(DeliveryMeta, Value), DecodeError> {
    let push: PushBody = serde_json::from_value(value).map_err(|e| {
        DecodeError::malformed(Some(format!("{prefix}message")), format!("invalid Pub/Sub push body: {e}"))
    })?;
    let m = push.message;
    let attributes = m.attributes.unwrap_or_default();
    let meta = DeliveryMeta {
        message_id: m.message_id_camel.or(m.message_id_snake),
        subscription: push.subscription,
        publish_time: m.publish_time_camel.or(m.publish_time_snake),
        delivery_attempt: push.delivery_attempt,
        attributes,
        ..Default::default()
    };
    let data_field = format!("{prefix}message.data");
    let data = match m.data {
        Some(d) if !d.is_empty() => d,
        _ => {
            if meta.attributes.contains_key("objectId") && meta.attributes.contains_key("bucketId") {
                return Err(DecodeError::malformed(
                    Some(data_field),
                    "Cloud Storage notifications (Datastream files) are not supported: relay one Datastream record per message",
                ));
            }
            return Err(DecodeError::malformed(Some(data_field), "Pub/Sub message without data"));
        }
    };
    let bytes = decode_base64(&data, &data_field)?;
    let record: Value = serde_json::from_slice(&bytes).map_err(|e| {
        DecodeError::malformed(Some(data_field.clone()), format!("{data_field} does not decode to JSON: {e}"))
    })?;
    if meta.attributes.get("eventType").is_some_and(|t| t.starts_with("OBJECT_"))
        && meta.attributes.contains_key("objectId")
    {
        return Err(DecodeError::malformed(
            Some(data_field),
            "Cloud Storage notifications (Datastream files) are not supported: relay one Datastream record per message",
        ));
    }
    Ok((meta, record))
}
