//! Metric sinks: where the points of an event are written once it is processed.
//!
//! Every sink writes inside the request, before the answer: Lambda freezes the process and
//! Cloud Run throttles its CPU once the response is sent, so nothing may run after it.
//! [`gcm`] writes to Google Cloud Monitoring, [`otlp`] to an OTLP/HTTP collector, and
//! [`stdout::JsonLines`] prints one JSON line per point (the reference's `METRIC` line, or
//! CloudWatch Embedded Metric Format).
//!
//! What each backend does with each [`PointKind`]:
//!
//! | kind | stdout | OTLP | Cloud Monitoring |
//! |---|---|---|---|
//! | gauge | one line per point | one `Gauge` data point at the point time | `GAUGE`/`DOUBLE`, `endTime` = point time, shared resource |
//! | counter | one line per increment | `Sum`, monotonic, DELTA, the event's increments per series | `CUMULATIVE` `INT64`/`DOUBLE` per instance, running total |
//! | histogram | one line per observation | `Histogram`, DELTA, the event's observations per series | `CUMULATIVE` `DISTRIBUTION` per instance |
//!
//! Only the Cloud Monitoring sink keeps anything between events: the running totals of its
//! cumulative series, written at most once per interval inside a request and at shutdown
//! ([`MetricSink::flush`]); see [`gcm`] for when a count can be lost there.

use crate::error::ErrorClass;

pub mod aggregate;
pub mod gcm;
pub mod instance;
pub mod otlp;
pub mod point;
pub mod stdout;
pub mod tee;

pub use point::{Labels, Point, PointKind};

pub use stdout::{JsonLines, SharedBuffer, metric_line, python_isoformat};

/// Why a backend refused a point for good. Such points are logged and counted, never retried:
/// retrying the same point cannot succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The series already has a point at or after this time, or one less than the minimum
    /// spacing before it: typically a redelivered event whose points were written. Counted as
    /// written.
    AlreadyWritten,
    /// The point time is outside the backend's window (Cloud Monitoring: 25 h in the past, 5 min
    /// in the future).
    OutOfWindow,
    /// The backend dropped the point for another reason it reported as final.
    Refused,
}

impl Rejection {
    /// The label of the reason in logs and in the `points_rejected` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::AlreadyWritten => "already_written",
            Rejection::OutOfWindow => "out_of_window",
            Rejection::Refused => "refused",
        }
    }
}

/// What a sink did with the points of one event: the calls it made and what happened to each
/// point, failures included. Every point is either written, in `rejected` (refused for good,
/// acknowledged) or in `unwritten` (failed; `failed` says why).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivered {
    /// Requests (or writes) actually sent, retries included; 0 when none could be sent.
    pub calls: usize,
    /// Points refused for good, by metric name.
    pub rejected: Vec<(String, Rejection)>,
    /// Points that could not be written, by metric name (retryable failures that ran out of
    /// time, and refusals the sink cannot classify).
    pub unwritten: Vec<String>,
    /// Why points are unwritten: the failure that decides the event's answer (a transient one
    /// wins over a permanent one, because a redelivery can still write part of the points).
    pub failed: Option<SinkError>,
}

impl Delivered {
    /// Records a failure of `points`; keeps the deciding failure (transient over permanent,
    /// else the first).
    pub fn fail<'a>(&mut self, points: impl IntoIterator<Item = &'a Point>, error: SinkError) {
        self.unwritten.extend(points.into_iter().map(|p| p.name.clone()));
        let replace = match &self.failed {
            None => true,
            Some(kept) => kept.is_permanent() && error.is_transient(),
        };
        if replace {
            self.failed = Some(error);
        }
    }

    /// The event's sink result: `Err` with the deciding failure when any point failed.
    pub fn result(&self) -> Result<(), &SinkError> {
        match &self.failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Where the points of an event are written (stdout, Cloud Monitoring, OTLP).
#[async_trait::async_trait]
pub trait MetricSink: Send + Sync {
    /// Writes the points of one event; returns when every point is written, refused or failed.
    /// A failed call does not stop the others: every call that can be made is made, and the
    /// report carries the calls made and every point's result, failures included.
    async fn emit(&self, points: &[Point]) -> Delivered;

    /// Writes what the sink still holds, at shutdown (SIGTERM). Only the Cloud Monitoring sink
    /// holds anything (the running totals of its cumulative series); the others write every
    /// point inside [`MetricSink::emit`].
    async fn flush(&self) -> Delivered {
        Delivered::default()
    }
}

/// What kind of failure a [`SinkError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SinkErrorKind {
    /// The backend refused points, or the request, for a reason a retry cannot fix.
    Refused,
    /// The backend was unreachable or kept failing with retryable errors until the deadline.
    Unavailable,
    /// The backend refused the credentials (HTTP 401 or 403).
    Unauthorized,
    /// No access token could be had for the backend.
    Credentials,
    /// The local output (stdout) could not be written.
    Output,
}

/// The metric sink could not write (some of) the points of an event.
///
/// Opaque: ask with `is_*()` and [`SinkError::class`]. It keeps the backend's HTTP status when
/// there was one ([`SinkError::status`]) and the underlying error as its `source()`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("metric sink: {message}")]
pub struct SinkError {
    kind: SinkErrorKind,
    status: Option<u16>,
    message: String,
    #[source]
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for SinkError {
    /// Same kind, status and message (sources are not compared).
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.status == other.status && self.message == other.message
    }
}

impl SinkError {
    fn new(kind: SinkErrorKind, message: impl Into<String>) -> SinkError {
        SinkError { kind, status: None, message: message.into(), source: None }
    }

    /// The backend refused points or the request for good (permanent).
    pub fn refused(message: impl Into<String>) -> SinkError {
        SinkError::new(SinkErrorKind::Refused, message)
    }

    /// The backend stayed unavailable until the retry deadline (transient).
    pub fn unavailable(message: impl Into<String>) -> SinkError {
        SinkError::new(SinkErrorKind::Unavailable, message)
    }

    /// The backend answered 401 or 403. Not retried by the sink (the same credentials get the
    /// same answer), but transient for the event: the event is not at fault, and once the
    /// credentials or IAM are fixed a redelivery succeeds, so it must not be dead-lettered or
    /// dropped as a bad event.
    pub fn unauthorized(status: u16, message: impl Into<String>) -> SinkError {
        SinkError::new(SinkErrorKind::Unauthorized, message).with_status(status)
    }

    /// No access token (transient, for the same reason as [`SinkError::unauthorized`]); keeps
    /// the token error as source and its HTTP status.
    pub fn credentials(error: crate::google::credentials::TokenError) -> SinkError {
        SinkError {
            kind: SinkErrorKind::Credentials,
            status: error.status(),
            message: format!("no access token: {error}"),
            source: Some(std::sync::Arc::new(error)),
        }
    }

    /// The local output failed (transient).
    pub fn output(message: impl Into<String>) -> SinkError {
        SinkError::new(SinkErrorKind::Output, message)
    }

    /// The backend's HTTP status.
    pub fn with_status(mut self, status: u16) -> SinkError {
        self.status = Some(status);
        self
    }

    /// The same failure told with another text (status and source kept).
    pub fn with_message(mut self, message: impl Into<String>) -> SinkError {
        self.message = message.into();
        self
    }

    /// The underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> SinkError {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// Whether retrying the event can change the result.
    pub fn class(&self) -> ErrorClass {
        match self.kind {
            SinkErrorKind::Refused => ErrorClass::Permanent,
            SinkErrorKind::Unavailable
            | SinkErrorKind::Unauthorized
            | SinkErrorKind::Credentials
            | SinkErrorKind::Output => ErrorClass::Transient,
        }
    }

    /// The text for logs and error bodies (without the "metric sink:" prefix).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The backend's HTTP status, when the failure was an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// A retry of the event may succeed (answered 503).
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// A retry of the event cannot succeed (answered 400, or acknowledged).
    pub fn is_permanent(&self) -> bool {
        self.class() == ErrorClass::Permanent
    }

    /// The backend refused points or the request for good.
    pub fn is_refused(&self) -> bool {
        self.kind == SinkErrorKind::Refused
    }

    /// The backend stayed unavailable (or kept throttling) until the deadline.
    pub fn is_unavailable(&self) -> bool {
        self.kind == SinkErrorKind::Unavailable
    }

    /// The backend refused the credentials (401/403).
    pub fn is_unauthorized(&self) -> bool {
        self.kind == SinkErrorKind::Unauthorized
    }

    /// No access token could be had.
    pub fn is_credentials(&self) -> bool {
        self.kind == SinkErrorKind::Credentials
    }
}
