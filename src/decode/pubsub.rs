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

use serde_json::Value;

use super::{
    DecodeError, Decoded, Delivery, DeliveryFormat, DeliveryMeta, looks_like_record, plain_record, storage, without_bom,
};

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

/// A push wrapper's `message`: an object, nothing else (a derived struct would also read an
/// array, its elements taken as the fields in order). Read as [`MessageFields`].
#[derive(Debug)]
pub(crate) struct PushMessage<'a>(MessageFields<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for PushMessage<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PushMessage<'a>, D::Error> {
        struct ObjectOnly<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for ObjectOnly<'a> {
            type Value = PushMessage<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Pub/Sub message (an object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<PushMessage<'a>, A::Error> {
                MessageFields::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(PushMessage)
            }
        }
        d.deserialize_map(ObjectOnly(std::marker::PhantomData))
    }
}

/// The members of a push wrapper's `message`.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageFields<'a> {
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
///
/// Errors: a wrapper serde cannot read names the member at fault (`<prefix>message.data`,
/// `<prefix>subscription`, ...: [`refused`]), then the rest as [`message`]'s.
pub(crate) fn push_body(json: &[u8], prefix: &str) -> Result<Pushed, DecodeError> {
    let push: PushBody = serde_json::from_slice(json).map_err(|e| refused(json, prefix, &e))?;
    pushed(push, prefix)
}

/// The error of a push body serde refused (`e`): serde's words, naming the member at fault.
///
/// The body is read a second time, tracking the path, only here: a body that is read pays
/// nothing for it. The path is used for a value of the wrong type (serde's `Data` errors); a
/// syntax error, or an empty or unknown path, names `<prefix>message`, as the whole wrapper.
fn refused(json: &[u8], prefix: &str, e: &serde_json::Error) -> DecodeError {
    let path = match e.classify() {
        serde_json::error::Category::Data => {
            let mut de = serde_json::Deserializer::from_slice(json);
            match serde_path_to_error::deserialize::<_, PushBody>(&mut de) {
                Err(e) if e.path().iter().next().is_some() && !e.path().iter().any(is_unknown) => {
                    Some(e.path().to_string())
                }
                _ => None,
            }
        }
        _ => None,
    };
    let path = path
        .map_or_else(|| String::from("message"), |p: String| crate::redact::excerpt(&p, crate::redact::EXCERPT_CHARS));
    DecodeError::malformed(Some(format!("{prefix}{path}")), format!("invalid Pub/Sub push body: {e}"))
}

fn is_unknown(segment: &serde_path_to_error::Segment) -> bool {
    matches!(segment, serde_path_to_error::Segment::Unknown)
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
    let PushMessage(m) = m;
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
/// The data of a Pub/Sub message (`field` names it): a Cloud Storage notification (attributes,
/// with or without the object resource as data), or one record.
pub(crate) fn message_data(
    format: DeliveryFormat,
    meta: DeliveryMeta,
    data: Option<Vec<u8>>,
    field: &str,
) -> Result<Decoded, DecodeError> {
    let Some(bytes) = data else {
        if let Some(object) = storage::notification(format, &meta, None) {
            return Ok(Decoded::Object { format, meta, object: object? });
        }
        return Err(DecodeError::malformed(Some(field.to_string()), "Pub/Sub message without data"));
    };
    // a byte order mark before the JSON text is ignored here too ([`super::without_bom`])
    let bytes = without_bom(&bytes);
    if let Some(record) = plain_record(&meta, bytes) {
        return Ok(Decoded::Records(Delivery::of(format, meta, record)));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        DecodeError::malformed(Some(field.to_string()), format!("{field} does not decode to JSON: {e}"))
    })?;
    if !value.is_object() {
        let what = if value.is_array() { "a JSON array" } else { "a JSON scalar" };
        return Err(DecodeError::malformed(
            Some(field.to_string()),
            format!("{field} decodes to {what}, not a change record (a JSON object)"),
        ));
    }
    if let Some(object) = storage::notification(format, &meta, Some(&value)) {
        return Ok(Decoded::Object { format, meta, object: object? });
    }
    if !looks_like_record(&value) {
        // `{}` or `{"foo": 1}` was answered "source_timestamp is required", as if it were a
        // Datastream record missing one field
        return Err(DecodeError::malformed(
            Some(field.to_string()),
            format!(
                "{field} decodes to a JSON object that is no change record: expected a Datastream record, a \
                 Debezium change event, an AWS DMS message or a Cloud Storage object notification"
            ),
        ));
    }
    Ok(Decoded::Records(Delivery::single(format, meta, value)))
}
