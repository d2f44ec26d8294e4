//! CloudEvents 1.0 in binary mode (`ce-*` headers, the body is the data) and structured mode
//! (`application/cloudevents+json`, or a JSON body with `specversion`), as Eventarc and Pub/Sub's
//! CloudEvents support send them (protocols.md §2). This module reads the context attributes,
//! and tells what the data carries ([`carried`]: a Pub/Sub push wrapper, a record, a Cloud
//! Storage object) for both modes alike.

use std::borrow::Cow;

use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::pubsub::decode_base64;
use serde_json::Value;

use super::{
    BODY, DecodeError, Decoded, Delivery, DeliveryFormat, DeliveryMeta, header, looks_like_record, message_data,
    parse_json, pubsub, storage,
};

/// The context attributes of a binary-mode CloudEvent (`ce-id`, `ce-source`, `ce-type` are
/// required; values are percent-decoded).
///
/// Errors: a missing required header, a `ce-specversion` other than 1.0, or a `ce-time` that is
/// not RFC 3339, naming the header.
pub fn binary(headers: &HeaderMap) -> Result<DeliveryMeta, DecodeError> {
    let specversion = header(headers, "ce-specversion")?.unwrap_or_default();
    if specversion != "1.0" {
        return Err(DecodeError::malformed(
            Some("header ce-specversion".into()),
            format!("unsupported CloudEvents specversion '{specversion}': expected 1.0"),
        ));
    }
    let required = |name: &str| -> Result<String, DecodeError> {
        match header(headers, name)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(DecodeError::malformed(
                Some(format!("header {name}")),
                format!("binary-mode CloudEvent without the required header {name}"),
            )),
        }
    };
    let meta = DeliveryMeta {
        ce_id: Some(required("ce-id")?),
        ce_source: Some(required("ce-source")?),
        ce_type: Some(required("ce-type")?),
        ..Default::default()
    };
    rfc3339_time(header(headers, "ce-time")?.as_deref(), "header ce-time")?;
    Ok(meta)
}

/// The context headers of a binary-mode CloudEvent other than `ce-specversion`.
const BINARY_CONTEXT: [&str; 3] = ["ce-id", "ce-source", "ce-type"];

/// A request that carries binary-mode context headers (`ce-id`, `ce-source`, `ce-type`) but
/// no `ce-specversion` is an incomplete CloudEvent, not a Pub/Sub push whose body is the
/// record: refused naming `header ce-specversion`.
pub fn without_specversion(headers: &HeaderMap) -> Result<(), DecodeError> {
    let present: Vec<&str> = BINARY_CONTEXT.into_iter().filter(|h| headers.contains_key(*h)).collect();
    if present.is_empty() || headers.contains_key("ce-specversion") {
        return Ok(());
    }
    Err(DecodeError::malformed(
        Some("header ce-specversion".into()),
        format!(
            "binary-mode CloudEvent without the required header ce-specversion (it has {}): expected ce-specversion: 1.0",
            present.join(", ")
        ),
    ))
}

/// The optional `time` attribute (`field` names it), which CloudEvents 1.0 defines as an RFC 3339
/// timestamp.
fn rfc3339_time(time: Option<&str>, field: &str) -> Result<(), DecodeError> {
    match time {
        Some(t) if chrono::DateTime::parse_from_rfc3339(t).is_err() => Err(DecodeError::malformed(
            Some(field.to_string()),
            format!(
                "{field} '{}' is not an RFC 3339 timestamp (CloudEvents 1.0), e.g. 2026-11-30T10:00:00Z",
                crate::redact::excerpt(t, crate::redact::EXCERPT_CHARS)
            ),
        )),
        _ => Ok(()),
    }
}

/// The members of a structured-mode CloudEvent this module reads, unparsed.
#[derive(Deserialize)]
pub(crate) struct Structured<'a> {
    #[serde(default, borrow)]
    pub(crate) specversion: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) source: Option<&'a RawValue>,
    #[serde(default, rename = "type", borrow)]
    pub(crate) ty: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) time: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) data_base64: Option<&'a RawValue>,
}

fn as_string(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// The context attributes and the data (JSON text: `data` as a JSON value, or a string holding
/// JSON, or `data_base64` decoded) of a structured-mode CloudEvent.
///
/// Errors: not an object, a specversion other than "1.0", a missing `id`/`source`/`type` (or one
/// that is not a non-empty string), a `time` that is not RFC 3339, both or neither of
/// `data`/`data_base64`, naming the attribute.
pub fn structured(body: &[u8]) -> Result<(DeliveryMeta, Cow<'_, [u8]>), DecodeError> {
    let ce: Structured = serde_json::from_slice(body).map_err(|_| {
        DecodeError::malformed(super::BODY.to_string(), "a structured CloudEvent must be a JSON object")
    })?;
    attributes(ce)
}

/// The context attributes of a structured-mode CloudEvent (its data aside): errors as
/// [`structured`]'s.
pub(crate) fn context(ce: &Structured<'_>) -> Result<DeliveryMeta, DecodeError> {
    match ce.specversion.map(RawValue::get) {
        Some("\"1.0\"") => {}
        None | Some("null") => {
            return Err(DecodeError::malformed(
                Some("specversion".into()),
                "specversion is required: a structured CloudEvent (application/cloudevents+json) has \"specversion\": \"1.0\"",
            ));
        }
        Some(other) => {
            return Err(DecodeError::malformed(
                Some("specversion".into()),
                format!(
                    "unsupported CloudEvents specversion {}: expected \"1.0\"",
                    crate::redact::excerpt(other, crate::redact::EXCERPT_CHARS)
                ),
            ));
        }
    }
    // an absent (or null) attribute is missing; a present one of another type, or empty, is
    // wrong: the sender is told which of the two it is
    let attr = |name: &str, raw: Option<&RawValue>| -> Result<String, DecodeError> {
        if let Some(s) = as_string(raw).filter(|s| !s.is_empty()) {
            return Ok(s);
        }
        let message = match raw.map(RawValue::get) {
            None | Some("null") => {
                format!("structured CloudEvent without the required attribute '{name}' (a non-empty string)")
            }
            Some(_) => format!("structured CloudEvent attribute '{name}' must be a non-empty string"),
        };
        Err(DecodeError::malformed(Some(name.to_string()), message))
    };
    let meta = DeliveryMeta {
        ce_id: Some(attr("id", ce.id)?),
        ce_source: Some(attr("source", ce.source)?),
        ce_type: Some(attr("type", ce.ty)?),
        ..Default::default()
    };
    match ce.time.map(RawValue::get) {
        None | Some("null") => {}
        Some(_) => rfc3339_time(Some(as_string(ce.time).as_deref().unwrap_or("(not a string)")), "time")?,
    }
    Ok(meta)
}

/// The error of an event with both `data` and `data_base64`.
pub(crate) fn both_data() -> DecodeError {
    DecodeError::malformed(Some("data_base64".into()), "a CloudEvent must not carry both 'data' and 'data_base64'")
}

/// [`structured`] after the event's members were read.
pub(crate) fn attributes(ce: Structured<'_>) -> Result<(DeliveryMeta, Cow<'_, [u8]>), DecodeError> {
    let meta = context(&ce)?;
    let data = match (ce.data, ce.data_base64) {
        (Some(_), Some(_)) => return Err(both_data()),
        (Some(raw), None) => match as_string(Some(raw)) {
            // data given as a JSON string holding the JSON document
            Some(text) => Cow::Owned(text.into_bytes()),
            None => Cow::Borrowed(raw.get().as_bytes()),
        },
        (None, Some(raw)) => {
            let b64 = as_string(Some(raw))
                .ok_or_else(|| DecodeError::malformed(Some("data_base64".into()), "'data_base64' must be a string"))?;
            Cow::Owned(decode_base64(&b64, "data_base64")?)
        }
        (None, None) => {
            return Err(DecodeError::malformed(Some("data".into()), "structured CloudEvent without 'data'"));
        }
    };
    Ok((meta, data))
}

/// The data of a CloudEvent (`field` names it: `data` in structured mode, [`BODY`] in binary
/// mode): a Pub/Sub push wrapper (Eventarc's `MessagePublishedData`), a Cloud Storage object
/// resource, or a record.
pub(super) fn carried(
    format: DeliveryFormat,
    meta: DeliveryMeta,
    data: &[u8],
    field: &str,
) -> Result<Decoded, DecodeError> {
    // A push body is told by a scan that builds nothing: its base64 text is read once, by
    // `push_body`, not first copied into a JSON tree. An object that names "message" is read as
    // a push body at once (it succeeds exactly when the probe below would find a `message`);
    // only when that fails does the probe decide whose error it is.
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        message: Option<&'a serde_json::value::RawValue>,
    }
    let prefix = if field == BODY { String::new() } else { format!("{field}.") };
    let names_message = memchr::memmem::find(data, b"\"message\"").is_some();
    let is_object = data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let mut pushed = (names_message && is_object).then(|| pubsub::push_body(data, &prefix));
    let is_push = matches!(pushed, Some(Ok(_)))
        || names_message && matches!(serde_json::from_slice::<Probe>(data), Ok(Probe { message: Some(_) }));
    if !is_push && let Some(record) = super::plain_record(&meta, data) {
        return Ok(Decoded::Records(Delivery::of(format, meta, record)));
    }
    let value = if is_push { Value::Null } else { parse_json(data, "CloudEvent data", field)? };
    if is_push || value.get("message").is_some() {
        let (mut inner, data) = match pushed.take() {
            Some(pushed) => pushed?,
            None => pubsub::push_body(data, &prefix)?,
        };
        (inner.ce_id, inner.ce_source, inner.ce_type) = (meta.ce_id, meta.ce_source, meta.ce_type);
        return message_data(format, inner, data, &format!("{prefix}message.data"));
    }
    if let Some(object) = storage::notification(format, &meta, Some(&value)) {
        return Ok(Decoded::Object { format, meta, object: object? });
    }
    if looks_like_record(&value) {
        return Ok(Decoded::Records(Delivery::single(format, meta, value)));
    }
    Err(DecodeError::malformed(
        Some(field.to_string()),
        format!(
            "CloudEvent {field} is neither a Pub/Sub message {{\"message\":{{...}}}} nor a change record \
             (a Datastream record, a Debezium change event or an AWS DMS message), nor a Cloud Storage object"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data that is no delivery at all is refused naming `data` and saying what is accepted,
    /// every change format included.
    #[test]
    fn data_of_no_known_kind_says_what_is_accepted() {
        for data in [&b"[1,2]"[..], b"5", b"{\"id\":1}"] {
            let e = carried(DeliveryFormat::CloudEventStructured, DeliveryMeta::default(), data, "data").unwrap_err();
            assert_eq!(e.field.as_deref(), Some("data"));
            for kind in ["Pub/Sub message", "Datastream record", "Debezium change event", "AWS DMS message"] {
                assert!(e.message.contains(kind), "{kind}: {e}");
            }
        }
    }
}
