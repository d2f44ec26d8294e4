//! CloudEvents 1.0 in binary mode (`ce-*` headers, the body is the data) and structured mode
//! (`application/cloudevents+json`, or a JSON body with `specversion`), as Eventarc and Pub/Sub's
//! CloudEvents support send them (protocols.md §2). The data is a Pub/Sub push wrapper (Eventarc)
//! or the record itself.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde_json::Value;

use super::pubsub::{decode_base64, push_body};
use super::{DecodeError, Delivery, DeliveryFormat, DeliveryMeta, header, looks_like_record, parse_json};

pub fn binary(headers: &HeaderMap, body: &[u8]) -> Result<Delivery, DecodeError> {
    let specversion = header(headers, "ce-specversion")?.unwrap_or_default();
    if specversion != "1.0" {
        return Err(DecodeError::malformed(
            Some("header ce-specversion".into()),
            format!("unsupported CloudEvents specversion '{specversion}': expected 1.0"),
        ));
    }
    let mut required = BTreeMap::new();
    for name in ["ce-id", "ce-source", "ce-type"] {
        match header(headers, name)? {
            Some(v) if !v.is_empty() => {
                required.insert(name, v);
            }
            _ => {
                return Err(DecodeError::malformed(
                    Some(format!("header {name}")),
                    format!("binary-mode CloudEvent without the required header {name}"),
                ));
            }
        }
    }
    let value = parse_json(body, "CloudEvent data")?;
    let (mut meta, record) = data_to_record(value, "data")?;
    meta.ce_id = required.remove("ce-id");
    meta.ce_source = required.remove("ce-source");
    meta.ce_type = required.remove("ce-type");
    Ok(Delivery::single(DeliveryFormat::CloudEventBinary, meta, &record))
}

pub fn structured(value: Value) -> Result<Delivery, DecodeError> {
    let Value::Object(mut ce) = value else {
        return Err(DecodeError::malformed(None, "a structured CloudEvent must be a JSON object"));
    };
    match ce.get("specversion") {
        Some(Value::String(s)) if s == "1.0" => {}
        other => {
            return Err(DecodeError::malformed(
                Some("specversion".into()),
                format!(
                    "unsupported CloudEvents specversion {}: expected \"1.0\"",
                    other.cloned().unwrap_or(Value::Null)
                ),
            ));
        }
    }
    let attr = |name: &str| -> Result<String, DecodeError> {
        match ce.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(DecodeError::malformed(
                Some(name.to_string()),
                format!("structured CloudEvent without the required attribute '{name}' (a non-empty string)"),
            )),
        }
    };
    let (id, source, ty) = (attr("id")?, attr("source")?, attr("type")?);
    let data = match (ce.remove("data"), ce.remove("data_base64")) {
        (Some(_), Some(_)) => {
            return Err(DecodeError::malformed(
                Some("data_base64".into()),
                "a CloudEvent must not carry both 'data' and 'data_base64'",
            ));
        }
        (Some(Value::String(s)), None) => parse_json(s.as_bytes(), "CloudEvent data")?,
        (Some(v), None) => v,
        (None, Some(Value::String(b64))) => {
            let bytes = decode_base64(&b64, "data_base64")?;
            parse_json(&bytes, "CloudEvent data_base64")?
        }
        (None, Some(_)) => {
            return Err(DecodeError::malformed(Some("data_base64".into()), "'data_base64' must be a string"));
        }
        (None, None) => {
            return Err(DecodeError::malformed(Some("data".into()), "structured CloudEvent without 'data'"));
        }
    };
    let (mut meta, record) = data_to_record(data, "data.")?;
    meta.ce_id = Some(id);
    meta.ce_source = Some(source);
    meta.ce_type = Some(ty);
    Ok(Delivery::single(DeliveryFormat::CloudEventStructured, meta, &record))
}

/// CloudEvent data is either a Pub/Sub push wrapper (Eventarc) or the record itself.
fn data_to_record(data: Value, prefix: &str) -> Result<(DeliveryMeta, Value), DecodeError> {
    if data.get("message").is_some() {
        return push_body(data, prefix);
    }
    if looks_like_record(&data) {
        return Ok((DeliveryMeta::default(), data));
    }
    let field = prefix.trim_end_matches('.');
    Err(DecodeError::malformed(
        Some(field.to_string()),
        format!("CloudEvent {field} is neither a Pub/Sub message {{\"message\":{{...}}}} nor a Datastream record"),
    ))
}
