//! Pub/Sub push bodies: the wrapper `{"message": {...}, "subscription": ...}` with camelCase or
//! snake_case keys, or both (protocols.md §1.1), whose `message.data` is the base64 of the
//! payload. Eventarc's `MessagePublishedData` has the same shape.
//!
//! The wrapper is parsed straight from the request bytes, borrowing its strings: the base64 text
//! is never copied before it is decoded.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use super::{DecodeError, DeliveryMeta};

/// The push wrapper (`PubsubMessage` plus subscription).
#[derive(Debug, Deserialize)]
pub(crate) struct PushBody<'a> {
    #[serde(borrow)]
    message: PushMessage<'a>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default, alias = "delivery_attempt", rename = "deliveryAttempt")]
    delivery_attempt: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PushMessage<'a> {
    #[serde(default, borrow)]
    data: Option<Cow<'a, str>>,
    /// Read as any JSON value, so that a value that is not a string is refused by [`message`]
    /// naming its key, not by serde naming the whole `message`.
    #[serde(default)]
    attributes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, rename = "messageId")]
    message_id_camel: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time_camel: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
}

/// Decodes base64 (standard, unpadded or URL-safe alphabet; whitespace ignored).
///
/// Errors: malformed, naming `field`.
pub(crate) fn decode_base64(s: &str, field: &str) -> Result<Vec<u8>, DecodeError> {
    let engine = &base64::engine::general_purpose::STANDARD;
    if let Ok(bytes) = engine.decode(s.as_bytes()) {
        return Ok(bytes);
    }
    let trimmed: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    engine
        .decode(trimmed.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed.as_bytes()))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(trimmed.as_bytes()))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed.as_bytes()))
        .map_err(|e| DecodeError::malformed(Some(field.to_string()), format!("{field} is not valid base64: {e}")))
}

/// A push message's metadata and its data (decoded from base64), if any.
pub(crate) type Pushed = (DeliveryMeta, Option<Vec<u8>>);

/// The message of a push body: its metadata, and its data (decoded from base64; `None` when the
/// message has none, as a Cloud Storage notification with `payloadFormat=NONE`).
///
/// `prefix` is the path of the wrapper in the request (`""`, or `data.` inside a CloudEvent), for
/// the field names of errors.
pub(crate) fn push_body(json: &[u8], prefix: &str) -> Result<Pushed, DecodeError> {
    let push: PushBody = serde_json::from_slice(json).map_err(|e| {
        DecodeError::malformed(Some(format!("{prefix}message")), format!("invalid Pub/Sub push body: {e}"))
    })?;
    pushed(push, prefix)
}

/// [`push_body`] of a wrapper already read.
pub(crate) fn pushed(push: PushBody<'_>, prefix: &str) -> Result<Pushed, DecodeError> {
    message(push.message, push.subscription, push.delivery_attempt, prefix)
}

/// A message's attributes, every one a string (a `PubsubMessage`'s `attributes` is a
/// `map<string, string>`).
///
/// Errors: malformed, naming `<prefix>message.attributes.<key>` (the key cut to an excerpt).
fn attributes(
    attributes: BTreeMap<String, serde_json::Value>,
    prefix: &str,
) -> Result<BTreeMap<String, String>, DecodeError> {
    attributes
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => Ok((key, s)),
            _ => {
                let field = format!(
                    "{prefix}message.attributes.{}",
                    crate::redact::excerpt(&key, crate::redact::EXCERPT_CHARS)
                );
                let message = format!("{field} must be a string: Pub/Sub attributes are strings");
                Err(DecodeError::malformed(Some(field), message))
            }
        })
        .collect()
}

/// The metadata and the data (decoded from base64) of a push message already read; `prefix` as
/// in [`push_body`].
pub(crate) fn message(
    m: PushMessage<'_>,
    subscription: Option<String>,
    delivery_attempt: Option<u32>,
    prefix: &str,
) -> Result<Pushed, DecodeError> {
    let meta = DeliveryMeta {
        message_id: m.message_id_camel.or(m.message_id_snake),
        subscription,
        publish_time: m.publish_time_camel.or(m.publish_time_snake),
        delivery_attempt,
        attributes: attributes(m.attributes.unwrap_or_default(), prefix)?,
        ..Default::default()
    };
    let data = match m.data {
        Some(d) if !d.is_empty() => Some(decode_base64(&d, &format!("{prefix}message.data"))?),
        _ => None,
    };
    Ok((meta, data))
}
