//! The stdout sink: one JSON line per point, in one of two formats (`METRICS_FORMAT`).
//!
//! * **`json`** (default, [`metric_line`]): the reference service's `METRIC:` fields in its key
//!   order (handlers.md §4.3): `metric_type`, `project_id`, `name`, `value`, `labels`,
//!   `timestamp`, preceded by `severity` and `message` so that Cloud Logging and CloudWatch read
//!   the line as a structured entry.
//! * **`emf`** ([`emf_line`]): CloudWatch Embedded Metric Format
//!   (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//!   CloudWatch Logs turns each line into one metric value of namespace `EMF_NAMESPACE`, with
//!   the labels as dimensions.
//!
//! Per kind, in both formats:
//! * **gauge**: one line per point with its value (the reference's line, unchanged, in `json`);
//! * **counter**: one line per increment (`value` = the increment, 1 for a lifecycle fact; in
//!   `emf`, unit `Count`): the backend sums the lines;
//! * **histogram**: one line per observation (in `emf`, unit `Seconds` for `s`): the backend
//!   builds the distribution (CloudWatch statistics and percentiles, or a logs-based
//!   DISTRIBUTION metric with `EXTRACT(jsonPayload.value)`).
//!
//! Nothing is aggregated or kept in the process: each fact's line is written before the answer,
//! so an instance that stops loses nothing. Counting happens where the logs are read, so any
//! number of instances can write (lifecycle.md D.3).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;

use super::{Delivered, MetricSink, Point, PointKind, SinkError};

/// Renders a time like Python's `datetime.isoformat()` in UTC: six fraction digits, no
/// fraction at all when the microseconds are zero, `+00:00` offset.
pub fn python_isoformat(t: &DateTime<Utc>) -> String {
    IsoTime::of(t).as_str().to_string()
}

/// [`python_isoformat`] on the stack: a stdout sink renders one per point, so no allocation.
struct IsoTime {
    buf: [u8; 40],
    len: usize,
}

impl IsoTime {
    fn of(t: &DateTime<Utc>) -> IsoTime {
        use chrono::Datelike;
        let mut out = IsoTime { buf: [0; 40], len: 0 };
        let micros = t.nanosecond() / 1_000 % 1_000_000;
        let written = if (0..=9999).contains(&t.year()) {
            let mut w = &mut out.buf[..];
            let r = if micros == 0 {
                write!(
                    w,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            } else {
                write!(
                    w,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            };
            r.ok().map(|_| 40 - w.len())
        } else {
            None
        };
        match written {
            Some(n) => out.len = n,
            // a year chrono renders with a sign or more digits: its own formatter
            None => {
                let text = if micros == 0 {
                    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
                } else {
                    format!("{}.{micros:06}+00:00", t.format("%Y-%m-%dT%H:%M:%S"))
                };
                let n = text.len().min(40);
                out.buf[..n].copy_from_slice(&text.as_bytes()[..n]);
                out.len = n;
            }
        }
        out
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
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
    timestamp: &'a str,
}

/// Renders one point as the JSON line the stdout sink prints: for a gauge, the reference's
/// fields in its order; for a counter (`value` = the increment) or a histogram (`value` = one
/// observation), `metric_type` names the kind and `unit` (UCUM) follows the value. One line per
/// observation is also what logs-based metrics count.
pub fn metric_line(g: &Point) -> String {
    let mut out = Vec::with_capacity(256);
    write_metric_line(g, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`metric_line`] appended to `out`, without a newline.
fn write_metric_line(g: &Point, out: &mut Vec<u8>) {
    let time = IsoTime::of(&g.time);
    let line = MetricLine {
        severity: "INFO",
        message: "METRIC",
        metric_type: g.kind.as_str(),
        project_id: &g.project,
        name: &g.name,
        value: g.value,
        unit: (g.kind != PointKind::Gauge).then_some(g.unit.as_ref()),
        labels: &g.labels,
        timestamp: time.as_str(),
    };
    // Non-finite values cannot be JSON numbers; serde_json writes them as null.
    let _ = serde_json::to_writer(out, &line);
}

/// The CloudWatch unit of a UCUM unit: `s` -> `Seconds`, `ms` -> `Milliseconds`, `us` ->
/// `Microseconds`, `By` -> `Bytes`, `%` -> `Percent`, `1` and any count annotation (`{run}`,
/// `{task}`) -> `Count`; anything else, and no unit, -> `None` (CloudWatch's own "no unit").
pub fn cloudwatch_unit(ucum: &str) -> &'static str {
    match ucum {
        "s" => "Seconds",
        "ms" => "Milliseconds",
        "us" => "Microseconds",
        "By" => "Bytes",
        "%" => "Percent",
        "1" => "Count",
        u if u.len() > 2 && u.starts_with('{') && u.ends_with('}') => "Count",
        _ => "None",
    }
}

/// CloudWatch's limit of dimensions in one dimension set (EMF specification, `Dimensions`).
pub const EMF_MAX_DIMENSIONS: usize = 30;

/// One EMF line: `_aws` first (timestamp in milliseconds, one metric directive naming the
/// namespace, the dimension set and the metric with its unit), then the labels as fields, then
/// the metric's value under its name.
struct EmfLine<'a> {
    point: &'a Point,
    namespace: &'a str,
}

impl EmfLine<'_> {
    /// The labels that are fields and dimensions: not empty (CloudWatch dimension values must
    /// not be), not named like the metric or `_aws` (they would clash with those keys), at most
    /// [`EMF_MAX_DIMENSIONS`], in name order.
    fn dimensions(&self) -> impl Iterator<Item = (&String, &String)> {
        self.point
            .labels
            .iter()
            .filter(|(k, v)| !v.is_empty() && **k != self.point.name && k.as_str() != "_aws")
            .take(EMF_MAX_DIMENSIONS)
    }
}

impl Serialize for EmfLine<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        use serde_json::json;
        let p = self.point;
        let names: Vec<&String> = self.dimensions().map(|(k, _)| k).collect();
        let aws = json!({
            "Timestamp": p.time.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": self.namespace,
                "Dimensions": [names],
                "Metrics": [{"Name": p.name, "Unit": cloudwatch_unit(&p.unit)}],
            }],
        });
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("_aws", &aws)?;
        for (k, v) in self.dimensions() {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry(&p.name, &p.value)?;
        map.end()
    }
}

/// Renders one point as a CloudWatch Embedded Metric Format line (see the module
/// documentation), e.g. for `pipeline.run.finished`:
/// `{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["orchestrator","pipeline","result"]],"Metrics":[{"Name":"pipeline.run.finished","Unit":"Count"}],"Namespace":"pipeline-run-metrics"}],"Timestamp":1796045429266},"orchestrator":"mage","pipeline":"etl","result":"success","pipeline.run.finished":1.0}`.
/// CloudWatch accepts timestamps up to two weeks in the past and two hours in the future; a
/// non-finite value is written as `null`, which CloudWatch does not turn into a metric.
pub fn emf_line(p: &Point, namespace: &str) -> String {
    serde_json::to_string(&EmfLine { point: p, namespace }).unwrap_or_default()
}

/// The line format of the stdout sink (`METRICS_FORMAT`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LineFormat {
    /// The reference's `METRIC` line ([`metric_line`]).
    #[default]
    Json,
    /// CloudWatch Embedded Metric Format ([`emf_line`]) in this namespace.
    Emf { namespace: String },
}

impl LineFormat {
    /// The line of one point.
    pub fn line(&self, p: &Point) -> String {
        match self {
            LineFormat::Json => metric_line(p),
            LineFormat::Emf { namespace } => emf_line(p, namespace),
        }
    }

    /// The line of one point and its newline, appended to `out`.
    pub fn write_line(&self, p: &Point, out: &mut Vec<u8>) {
        match self {
            LineFormat::Json => write_metric_line(p, out),
            LineFormat::Emf { namespace } => {
                let _ = serde_json::to_writer(&mut *out, &EmfLine { point: p, namespace });
            }
        }
        out.push(b'\n');
    }
}

/// Prints one JSON line per point to a writer (stdout in production, a buffer in tests).
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
    format: LineFormat,
}

impl<W: Write + Send> JsonLines<W> {
    /// The reference's lines ([`LineFormat::Json`]).
    pub fn new(out: W) -> Self {
        JsonLines::with_format(out, LineFormat::Json)
    }

    /// Lines in `format`.
    pub fn with_format(out: W, format: LineFormat) -> Self {
        JsonLines { out: Mutex::new(out), format }
    }
}

#[async_trait::async_trait]
impl<W: Write + Send> MetricSink for JsonLines<W> {
    async fn emit(&self, points: &[Point]) -> Delivered {
        let mut out = Delivered::default();
        if points.is_empty() {
            return out;
        }
        // every line rendered into one buffer, written with one call (one write(2) on stdout)
        let mut text = Vec::with_capacity(points.len() * 256);
        for p in points {
            self.format.write_line(p, &mut text);
        }
        out.calls = 1;
        let written = match self.out.lock() {
            Err(_) => Err(SinkError::output("poisoned")),
            Ok(mut w) => w
                .write_all(&text)
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
mod tests;
