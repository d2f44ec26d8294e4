//! What a delivery's HTTP request says in its headers: its media type and header values.

use axum::http::HeaderMap;

use super::DecodeError;

/// The media type of the request's `Content-Type` (lowercase, without parameters; empty when
/// absent).
pub(crate) fn content_type(headers: &HeaderMap) -> String {
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
