//! The request body as the HTTP layer takes it: read within `BODY_READ_TIMEOUT_SECS`, at most
//! `MAX_BODY_BYTES`, held against `BODY_BUFFER_BYTES`; its content coding (`identity` or `gzip`,
//! anything else 415 naming `header content-encoding`) undone; and, on `/api/v1/lineage`, its
//! content type (JSON or none, anything else 415).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use super::App;
use crate::decode::{BODY, DecodeError, DecodeErrorKind};
use crate::pipeline::Refusal;

/// The content codings a request body may carry (RFC 9110 §8.4.1), as a 415 answer's
/// `Accept-Encoding` header lists them.
pub(super) const ACCEPTED_ENCODINGS: &str = "gzip, identity";

/// A request body read into memory, with the part of the body buffer its allocation holds.
pub(super) struct ReadBody {
    pub(super) bytes: Bytes,
    _held: Option<tokio::sync::OwnedSemaphorePermit>,
}

fn too_large(message: String) -> DecodeError {
    DecodeError { kind: DecodeErrorKind::TooLarge, field: Some(BODY.into()), message }
}

impl App {
    /// Reads the body within `BODY_READ_TIMEOUT_SECS`, at most `MAX_BODY_BYTES`, holding one
    /// permit of the body buffer per byte allocated for it (the buffer grows by doubling, so
    /// that a client that announces a large body but sends little holds little).
    pub(super) async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<ReadBody, Refusal> {
        let limit = self.max_body_bytes;
        let too_large = || Refusal::Undecodable(too_large(format!("request body larger than {limit} bytes")));
        let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        // a client that waits for `100 Continue` sends nothing more once refused: nothing to drain
        let waits = headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if waits && announced.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        // the rest of a body refused as too large, drained after the read (own time bound)
        let mut refused: Option<axum::body::BodyDataStream> = None;
        let read = async {
            use futures_util::StreamExt;
            let mut stream = body.into_data_stream();
            if announced.is_some_and(|n| n > limit as u64) {
                refused = Some(stream);
                return Err(too_large());
            }
            let mut buf: Vec<u8> = Vec::new();
            let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|_| {
                    Refusal::Undecodable(DecodeError::malformed(BODY.to_string(), "the request body could not be read"))
                })?;
                let needed = buf.len() + chunk.len();
                if needed > limit {
                    refused = Some(stream);
                    return Err(too_large());
                }
                if needed > buf.capacity() {
                    let target = needed.max(buf.capacity() * 2).max(16 * 1024).min(limit);
                    let more = u32::try_from(target - buf.capacity()).map_err(|_| too_large())?;
                    let permit = self
                        .body_buffer
                        .clone()
                        .try_acquire_many_owned(more)
                        .map_err(|_| Refusal::BodiesBuffered { limit: self.body_buffer_bytes })?;
                    match held.as_mut() {
                        Some(h) => h.merge(permit),
                        None => held = Some(permit),
                    }
                    buf.reserve_exact(target - buf.len());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(ReadBody { bytes: Bytes::from(buf), _held: held })
        };
        let read = match tokio::time::timeout(self.body_read_timeout, read).await {
            Ok(read) => read,
            Err(_) => Err(Refusal::BodyTimeout { timeout_secs: self.body_read_timeout.as_secs_f64() }),
        };
        if let Some(mut rest) = refused {
            let _ = tokio::time::timeout(self.body_read_timeout, drain(&mut rest, limit)).await;
        }
        read
    }
}

/// Reads and drops what is left of a body that is too large, up to [`DRAIN_BYTES`] (or four
/// times the limit, if more), before the 413 is sent: a server that answers and closes while the client is still
/// sending makes the kernel reset the connection, and the client (curl, Python, a Pub/Sub push
/// without `Expect: 100-continue`) sees "connection reset" instead of the answer (nginx's
/// lingering close does the same). Bounded in time by the body read timeout; a body larger
/// still is not read further. Not done for a client that waits for `100 Continue`.
async fn drain(stream: &mut axum::body::BodyDataStream, limit: usize) {
    use futures_util::StreamExt;
    let mut left = limit.saturating_mul(4).max(DRAIN_BYTES);
    while left > 0 {
        match stream.next().await {
            Some(Ok(chunk)) => left = left.saturating_sub(chunk.len()),
            _ => return,
        }
    }
}

/// How much of a too-large body is read (and dropped) before the 413, at least: 64 MiB, twice
/// the largest request Cloud Run accepts (32 MiB). Memory is not held for it, only time.
const DRAIN_BYTES: usize = 64 << 20;

/// Whether the body is gzip-compressed (`Content-Encoding: gzip`), as it is: absent or
/// `identity`, or refused (415, naming the header) for any other coding, which the function
/// cannot undo: reading `br` or `deflate` bytes as JSON would only fail later with a misleading
/// "not valid JSON".
pub(super) fn content_coding(headers: &HeaderMap) -> Result<bool, DecodeError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    let coding = value.to_str().unwrap_or("").trim();
    if coding.is_empty() || coding.eq_ignore_ascii_case("identity") {
        return Ok(false);
    }
    if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
        return Ok(true);
    }
    let shown = String::from_utf8_lossy(value.as_bytes());
    Err(DecodeError {
        kind: DecodeErrorKind::UnsupportedMediaType,
        field: Some("header content-encoding".into()),
        message: format!(
            "unsupported content encoding '{}': send the body uncompressed (identity) or gzip",
            crate::redact::excerpt(&shown, crate::redact::EXCERPT_CHARS)
        ),
    })
}

/// The body, gunzipped when `gzip` (from [`content_coding`]), at most `limit` bytes either way.
pub(super) async fn decompressed(gzip: bool, raw: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    if !gzip {
        return Ok(raw);
    }
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let decoder = async_compression::tokio::bufread::GzipDecoder::new(&raw[..]);
    let read = decoder.take(limit as u64 + 1).read_to_end(&mut out).await;
    match read {
        Err(e) => Err(DecodeError::malformed(BODY.to_string(), format!("the body is not valid gzip: {e}"))),
        Ok(_) if out.len() > limit => {
            Err(too_large(format!("request body larger than {limit} bytes once decompressed")))
        }
        Ok(_) => Ok(Bytes::from(out)),
    }
}

/// The content type of an OpenLineage event: JSON (`application/json`, what the OpenLineage
/// HTTP transport sends, or `application/*+json`) or none, as `POST /` accepts none.
pub(super) fn lineage_content_type(headers: &HeaderMap) -> Result<(), DecodeError> {
    let ct = crate::decode::content_type(headers)?;
    if ct.is_empty() || crate::decode::is_json_type(&ct) {
        return Ok(());
    }
    Err(DecodeError::unsupported(format!(
        "unsupported content type '{}': an OpenLineage event is JSON (application/json)",
        crate::redact::excerpt(&ct, crate::redact::EXCERPT_CHARS)
    )))
}
