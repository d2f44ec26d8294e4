//! Internal events of requests and notifications turned away before any record is processed:
//! unauthenticated, overloaded, bodies too slow or too many, sources unavailable, notifications
//! this function does not read, and requests or records that cannot be decoded.

use super::Stats;
use crate::decode::{DecodeError, DeliveryFormat, DeliveryMeta};

/// A push without a valid OIDC token.
pub struct Unauthorized<'a> {
    pub reason: &'a str,
}

impl Unauthorized<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 401, reason = %self.reason, "push not authenticated");
        stats.count("unauthorized", "none");
    }
}

/// A delivery refused because too many are in flight.
pub struct Overloaded {
    pub limit: usize,
}

impl Overloaded {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 429, limit = self.limit, "too many events in flight");
        stats.count("overloaded", "none");
    }
}

/// A request refused because the request bodies in memory would pass `BODY_BUFFER_BYTES`.
pub struct BodiesBuffered {
    pub limit: usize,
}

impl BodiesBuffered {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 429, limit_bytes = self.limit, "too many request bytes in memory");
        stats.count("overloaded", "none");
    }
}

/// A request whose body did not arrive in time (a slow or stalled client).
pub struct BodyTimeout {
    pub timeout_secs: f64,
}

impl BodyTimeout {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 408, timeout_secs = self.timeout_secs, "request body not received in time");
        stats.count("body_timeout", "none");
    }
}

/// What a delivery names cannot be read now (a Cloud Storage object).
pub struct SourceUnavailable<'a> {
    pub reason: &'a str,
}

impl SourceUnavailable<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::warn!(status = 503, reason = %self.reason, "delivery source unavailable, retry expected");
        stats.count("transient", "storage_object");
    }
}

/// A notification this function does not read (another event type, an object outside the
/// configured prefixes and tables).
pub struct NotificationIgnored<'a> {
    pub reason: &'a str,
}

impl NotificationIgnored<'_> {
    pub fn emit(&self, stats: &Stats) {
        tracing::info!(status = 204, reason = %self.reason, "notification ignored");
        stats.count("ignored", "storage_object");
    }
}

/// A request no route takes (404) or a method its path does not take (405). Logged, not counted:
/// it is no delivery (a POST to any path is one), so the `events` counter, which counts
/// deliveries' records, leaves it out.
pub struct NotRouted<'a> {
    pub status: u16,
    pub method: &'a str,
    pub path: &'a str,
}

impl NotRouted<'_> {
    pub fn emit(&self) {
        let excerpt = |s: &str| crate::redact::excerpt(s, crate::redact::EXCERPT_CHARS);
        tracing::warn!(status = self.status, method = %excerpt(self.method), path = %excerpt(self.path), "request not routed");
    }
}

/// A request or a record that could not be decoded.
pub struct Rejected<'a> {
    pub status: u16,
    pub error: &'a DecodeError,
    pub format: Option<DeliveryFormat>,
    pub meta: Option<&'a DeliveryMeta>,
    pub item: Option<&'a str>,
}

impl Rejected<'_> {
    pub fn emit(&self, stats: &Stats) {
        let format = self.format.map(DeliveryFormat::as_str).unwrap_or("unknown");
        let kind = match self.error.kind {
            crate::decode::DecodeErrorKind::Malformed => "malformed_event",
            crate::decode::DecodeErrorKind::UnsupportedMediaType => "unsupported_media_type",
            crate::decode::DecodeErrorKind::TooLarge => "payload_too_large",
            crate::decode::DecodeErrorKind::NotAChange => "not_a_change",
        };
        tracing::warn!(
            status = self.status,
            error = kind,
            field = self.error.field.as_deref().unwrap_or(""),
            reason = %crate::redact::quoted(&self.error.message),
            format = format,
            message_id = self.meta.and_then(|m| m.message_id.as_deref()).unwrap_or(""),
            item = self.item.unwrap_or(""),
            "event rejected"
        );
        stats.count("rejected", format);
    }
}
