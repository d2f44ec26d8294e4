//! The stdout sink: one JSON line per point carrying the reference service's `METRIC:` fields
//! in its key order (handlers.md §4.3): `metric_type`, `project_id`, `name`, `value`, `labels`,
//! `timestamp`, preceded by `severity` and `message` so that Cloud Logging and CloudWatch read
//! the line as a structured entry.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;

use super::{Delivered, MetricSink, Point, PointKind, SinkError};

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
    /// Counters and histograms only: a gauge line keeps the reference's fields exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    labels: &'a BTreeMap<String, String>,
    timestamp: String,
}

/// Renders one point as the JSON line the stdout sink prints: for a gauge, the reference's
/// fields in its order; for a counter (`value` = the increment) or a histogram (`value` = one
/// observation), `metric_type` names the kind and `unit` (UCUM) follows the value. One line per
/// observation is also what logs-based metrics count.
pub fn metric_line(g: &Point) -> String {
    let line = MetricLine {
        severity: "INFO",
        message: "METRIC",
        metric_type: g.kind.as_str(),
        project_id: &g.project,
        name: &g.name,
        value: g.value,
        unit: (g.kind != PointKind::Gauge).then_some(g.unit.as_ref()),
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
    async fn emit(&self, points: &[Point]) -> Delivered {
        let mut out = Delivered::default();
        if points.is_empty() {
            return out;
        }
        let mut text = String::new();
        for p in points {
            text.push_str(&metric_line(p));
            text.push('\n');
        }
        out.calls = 1;
        let written = match self.out.lock() {
            Err(_) => Err(SinkError::output("poisoned")),
            Ok(mut w) => w
                .write_all(text.as_bytes())
                .and_then(|_| w.flush())
                .map_err(|e| SinkError::output(format!("cannot write to stdout: {e}")).with_source(e)),
        };
        if let Err(e) = written {
            out.fail(points, e);
        }
        out
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
        let g = Point::gauge(
            "claims/pipeline/filtered_pre/vl_pago/relative",
            1500.0 / 9500.0,
            Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap(),
            BTreeMap::from([("partner".into(), "abertta".into()), ("approved".into(), "false".into())]),
            "local-project",
        );
        let d = sink.emit(&[g.clone(), Point { value: 1500.0, ..g }]).await;
        assert_eq!(d.result(), Ok(()));
        assert_eq!(d.calls, 1);
        let lines = buf.take_lines();
        assert_eq!(
            lines,
            vec![
                r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"local-project","name":"claims/pipeline/filtered_pre/vl_pago/relative","value":0.15789473684210525,"labels":{"approved":"false","partner":"abertta"},"timestamp":"2025-11-05T18:23:31+00:00"}"#,
                r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"local-project","name":"claims/pipeline/filtered_pre/vl_pago/relative","value":1500.0,"labels":{"approved":"false","partner":"abertta"},"timestamp":"2025-11-05T18:23:31+00:00"}"#,
            ]
        );
    }

    #[test]
    fn counter_and_histogram_lines_name_their_kind_and_unit() {
        let t = Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap();
        let labels = BTreeMap::from([("pipeline".to_string(), "etl".to_string())]);
        let c = Point::counter("pipeline.run.finished", 1.0, "{run}", t, labels.clone(), "p");
        assert_eq!(
            metric_line(&c),
            r#"{"severity":"INFO","message":"METRIC","metric_type":"counter","project_id":"p","name":"pipeline.run.finished","value":1.0,"unit":"{run}","labels":{"pipeline":"etl"},"timestamp":"2025-11-05T18:23:31+00:00"}"#
        );
        let h = Point::histogram("pipeline.run.duration", 205.489, "s", t, labels, "p");
        assert_eq!(
            metric_line(&h),
            r#"{"severity":"INFO","message":"METRIC","metric_type":"histogram","project_id":"p","name":"pipeline.run.duration","value":205.489,"unit":"s","labels":{"pipeline":"etl"},"timestamp":"2025-11-05T18:23:31+00:00"}"#
        );
    }
}
