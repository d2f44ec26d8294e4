//! Metric sinks: where the points of an event are written once it is processed.
//!
//! Every sink writes inside the request, before the answer: Lambda freezes the process and
//! Cloud Run throttles its CPU once the response is sent, so nothing is left to flush later.
//! [`gcm`] writes to Google Cloud Monitoring, [`otlp`] to an OTLP/HTTP collector, and
//! [`JsonLines`] prints (local work).
//!
//! `StdoutJson` (local work) prints one JSON line per point carrying the reference service's
//! `METRIC:` fields in its key order (handlers.md §4.3): `metric_type`, `project_id`, `name`,
//! `value`, `labels`, `timestamp`, preceded by `severity` and `message` so that Cloud Logging and
//! CloudWatch read the line as a structured entry.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;

use crate::error::{ErrorClass, SinkError};

pub mod gcm;
pub mod otlp;

/// One gauge point.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// Metric name without the `custom.googleapis.com/` prefix.
    pub name: String,
    pub value: f64,
    /// Point (end) time.
    pub time: DateTime<Utc>,
    pub labels: BTreeMap<String, String>,
    /// The project the metric is written to (the "run project").
    pub project: String,
}

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
    async fn emit(&self, points: &[Gauge]) -> Result<Delivered, SinkError>;
}

/// Renders a time like Python's `datetime.isoformat()` in UTC: six fraction digits, no
/// fraction at all when the microseconds are zero, `+00:00` offset.
pub fn python_isoformat(t: &DateTime<Utc>) -> String {
    let micros = t.nanosecond() / 1_000 % 1_000_000;
    if micros == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        format!("{}.{micros:06}+00:00", t.format("%Y-%m-%dT%H:%M:%S"))
    }
}

#[derive(Serialize)]
struct MetricLine<'a> {
    severity: &'static str,
    message: &'static str,
    metric_type: &'static str,
    project_id: &'a str,
    name: &'a str,
    value: f64,
    labels: &'a BTreeMap<String, String>,
    timestamp: String,
}

/// Renders one point as the JSON line the stdout sink prints.
pub fn metric_line(g: &Gauge) -> String {
    let line = MetricLine {
        severity: "INFO",
        message: "METRIC",
        metric_type: "gauge",
        project_id: &g.project,
        name: &g.name,
        value: g.value,
        labels: &g.labels,
        timestamp: python_isoformat(&g.time),
    };
    // Non-finite values cannot be JSON numbers; serde_json writes them as null.
    serde_json::to_string(&line).unwrap_or_default()
}

/// Prints one JSON line per point to a writer (stdout in production, a buffer in tests).
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out: Mutex::new(out) }
    }
}

#[async_trait::async_trait]
impl<W: Write + Send> MetricSink for JsonLines<W> {
    async fn emit(&self, points: &[Gauge]) -> Result<Delivered, SinkError> {
        if points.is_empty() {
            return Ok(Delivered::default());
        }
        let mut text = String::new();
        for p in points {
            text.push_str(&metric_line(p));
            text.push('\n');
        }
        let mut out =
            self.out.lock().map_err(|_| SinkError { class: ErrorClass::Transient, message: "poisoned".into() })?;
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| SinkError { class: ErrorClass::Transient, message: format!("cannot write to stdout: {e}") })?;
        Ok(Delivered { calls: 1, rejected: Vec::new() })
    }
}

/// A cloneable in-memory writer, for tests and benchmarks.
#[derive(Clone, Default)]
pub struct SharedBuffer(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// Takes the lines written so far.
    pub fn take_lines(&self) -> Vec<String> {
        let mut buf = self.0.lock().expect("buffer lock");
        let text = String::from_utf8_lossy(&buf).into_owned();
        buf.clear();
        text.lines().map(str::to_string).collect()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn isoformat_like_python() {
        let t = Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap() + chrono::Duration::milliseconds(393);
        assert_eq!(python_isoformat(&t), "2025-11-05T18:23:31.393000+00:00");
        let t = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap();
        assert_eq!(python_isoformat(&t), "2024-01-15T10:30:00+00:00");
        let t = t + chrono::Duration::microseconds(7);
        assert_eq!(python_isoformat(&t), "2024-01-15T10:30:00.000007+00:00");
    }

    #[tokio::test]
    async fn json_line_has_reference_fields_in_order() {
        let buf = SharedBuffer::default();
        let sink = JsonLines::new(buf.clone());
        let g = Gauge {
            name: "claims/pipeline/filtered_pre/vl_pago/relative".into(),
            value: 1500.0 / 9500.0,
            time: Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap(),
            labels: BTreeMap::from([("partner".into(), "abertta".into()), ("approved".into(), "false".into())]),
            project: "local-project".into(),
        };
        sink.emit(&[g.clone(), Gauge { value: 1500.0, ..g }]).await.unwrap();
        let lines = buf.take_lines();
        assert_eq!(
            lines,
            vec![
                r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"local-project","name":"claims/pipeline/filtered_pre/vl_pago/relative","value":0.15789473684210525,"labels":{"approved":"false","partner":"abertta"},"timestamp":"2025-11-05T18:23:31+00:00"}"#,
                r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"local-project","name":"claims/pipeline/filtered_pre/vl_pago/relative","value":1500.0,"labels":{"approved":"false","partner":"abertta"},"timestamp":"2025-11-05T18:23:31+00:00"}"#,
            ]
        );
    }
}
