//! Metric sinks: where the points of an event are written once it is processed.
//!
//! Every sink writes inside the request, before the answer: Lambda freezes the process and
//! Cloud Run throttles its CPU once the response is sent, so nothing is left to flush later.
//! [`gcm`] writes to Google Cloud Monitoring, [`otlp`] to an OTLP/HTTP collector, and
//! [`stdout::JsonLines`] prints (local work).
//!
//! [`stdout::JsonLines`] (local work) prints one JSON line per point carrying the reference service's
//! `METRIC:` fields in its key order (handlers.md §4.3): `metric_type`, `project_id`, `name`,
//! `value`, `labels`, `timestamp`, preceded by `severity` and `message` so that Cloud Logging and
//! CloudWatch read the line as a structured entry.

use crate::error::ErrorClass;

pub mod gcm;
pub mod otlp;
pub mod point;
pub mod stdout;

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
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::AlreadyWritten => "already_written",
            Rejection::OutOfWindow => "out_of_window",
            Rejection::Refused => "refused",
        }
    }
}

/// What a sink did with the points of one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivered {
    /// Requests (or writes) made, retries included.
    pub calls: usize,
    /// Points refused for good, by metric name.
    pub rejected: Vec<(String, Rejection)>,
}

#[async_trait::async_trait]
pub trait MetricSink: Send + Sync {
    /// Writes the points of one event; returns only when they are written (or definitely not).
    async fn emit(&self, points: &[Point]) -> Result<Delivered, SinkError>;
}

/// The metric sink could not write the points of an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("metric sink: {message}")]
pub struct SinkError {
    pub class: ErrorClass,
    pub message: String,
}
