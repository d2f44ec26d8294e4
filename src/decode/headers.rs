//! What a delivery's HTTP request says in its headers: its media type and header values.

use axum::http::HeaderMap;

use super::DecodeError;

/// The media type of the request's `Content-Type` (lowercase, without parameters; empty when
/// absent or blank).
///
/// Errors (415, field `header content-type`): a value that is not visible ASCII, or parameters
/// without a media type (`;;;`, `; charset=utf-8`): RFC 9110 §8.3 has the type first.
pub(crate) fn content_type(headers: &HeaderMap) -> Result<String, DecodeError> {
    let Some(value) = headers.get("content-type") else { return Ok(String::new()) };
    let value = value.to_str().map_err(|_| DecodeError::unsupported("the Content-Type header is not ASCII"))?;
    let media = value.split(';').next().unwrap_or("").trim();
    if media.is_empty() && !value.trim().is_empty() {
        return Err(DecodeError::unsupported(format!(
            "Content-Type '{}' has no media type: expected one such as application/json",
            crate::redact::excerpt(value, crate::redact::EXCERPT_CHARS)
        )));
    }
    Ok(media.to_ascii_lowercase())
}

/// `application/json` or `application/*+json`.
pub(crate) fn is_json_type(ct: &str) -> bool {
    ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
}

/// Content types a body may carry. Pub/Sub sends `application/json`; unwrapped push may carry
/// whatever the publisher set (`application/octet-stream`, `text/plain`) or none.
pub(super) fn is_accepted_type(ct: &str) -> bool {
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
