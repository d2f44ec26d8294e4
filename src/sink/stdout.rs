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
        // nanoseconds below a microsecond are dropped, as Python has none
        let t = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap() + chrono::Duration::nanoseconds(999);
        assert_eq!(python_isoformat(&t), "2024-01-15T10:30:00+00:00");
        let t = Utc.with_ymd_and_hms(12, 3, 4, 5, 6, 7).unwrap();
        assert_eq!(python_isoformat(&t), "0012-03-04T05:06:07+00:00");
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

    /// (point, `json` line, `emf` line in namespace `ns`): every kind in both formats.
    #[test]
    fn every_kind_in_both_formats() {
        let t = Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap() + chrono::Duration::milliseconds(393);
        let labels = BTreeMap::from([
            ("pipeline".to_string(), "etl".to_string()),
            ("result".to_string(), "success".to_string()),
            ("status".to_string(), String::new()),
        ]);
        let table: Vec<(Point, &str, &str)> = vec![
            (
                Point::counter("pipeline.run.finished", 1.0, "{run}", t, labels.clone(), "p"),
                r#"{"severity":"INFO","message":"METRIC","metric_type":"counter","project_id":"p","name":"pipeline.run.finished","value":1.0,"unit":"{run}","labels":{"pipeline":"etl","result":"success","status":""},"timestamp":"2025-11-05T18:23:31.393000+00:00"}"#,
                r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["pipeline","result"]],"Metrics":[{"Name":"pipeline.run.finished","Unit":"Count"}],"Namespace":"ns"}],"Timestamp":1762367011393},"pipeline":"etl","result":"success","pipeline.run.finished":1.0}"#,
            ),
            (
                Point::histogram("pipeline.run.duration", 205.489, "s", t, labels.clone(), "p"),
                r#"{"severity":"INFO","message":"METRIC","metric_type":"histogram","project_id":"p","name":"pipeline.run.duration","value":205.489,"unit":"s","labels":{"pipeline":"etl","result":"success","status":""},"timestamp":"2025-11-05T18:23:31.393000+00:00"}"#,
                r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["pipeline","result"]],"Metrics":[{"Name":"pipeline.run.duration","Unit":"Seconds"}],"Namespace":"ns"}],"Timestamp":1762367011393},"pipeline":"etl","result":"success","pipeline.run.duration":205.489}"#,
            ),
            (
                Point::gauge(
                    "claims/pipeline/filtered_pre/vl_pago/total",
                    1500.0,
                    t,
                    BTreeMap::from([("partner".into(), "abertta".into())]),
                    "p",
                ),
                r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"p","name":"claims/pipeline/filtered_pre/vl_pago/total","value":1500.0,"labels":{"partner":"abertta"},"timestamp":"2025-11-05T18:23:31.393000+00:00"}"#,
                r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["partner"]],"Metrics":[{"Name":"claims/pipeline/filtered_pre/vl_pago/total","Unit":"None"}],"Namespace":"ns"}],"Timestamp":1762367011393},"partner":"abertta","claims/pipeline/filtered_pre/vl_pago/total":1500.0}"#,
            ),
            (
                // no labels: an empty dimension set; a label named like the metric stays out
                Point::counter(
                    "pipeline.task.retried",
                    1.0,
                    "{task}",
                    t,
                    BTreeMap::from([("pipeline.task.retried".into(), "x".into())]),
                    "p",
                ),
                r#"{"severity":"INFO","message":"METRIC","metric_type":"counter","project_id":"p","name":"pipeline.task.retried","value":1.0,"unit":"{task}","labels":{"pipeline.task.retried":"x"},"timestamp":"2025-11-05T18:23:31.393000+00:00"}"#,
                r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"pipeline.task.retried","Unit":"Count"}],"Namespace":"ns"}],"Timestamp":1762367011393},"pipeline.task.retried":1.0}"#,
            ),
        ];
        let emf = LineFormat::Emf { namespace: "ns".into() };
        for (p, json, emf_want) in table {
            assert_eq!(metric_line(&p), json);
            assert_eq!(LineFormat::Json.line(&p), json);
            assert_eq!(emf.line(&p), emf_want);
            let v: serde_json::Value = serde_json::from_str(&emf.line(&p)).unwrap();
            assert_eq!(v[&p.name], p.value, "the value sits under the metric name");
        }
    }

    #[test]
    fn ucum_units_map_to_cloudwatch_units() {
        let table = [
            ("s", "Seconds"),
            ("ms", "Milliseconds"),
            ("us", "Microseconds"),
            ("By", "Bytes"),
            ("%", "Percent"),
            ("1", "Count"),
            ("{run}", "Count"),
            ("{task}", "Count"),
            ("{record}", "Count"),
            ("", "None"),
            ("{}", "None"),
            ("min", "None"),
        ];
        for (ucum, cw) in table {
            assert_eq!(cloudwatch_unit(ucum), cw, "{ucum}");
        }
    }

    #[test]
    fn at_most_30_dimensions() {
        let labels: BTreeMap<String, String> = (0..40).map(|i| (format!("k{i:02}"), "v".to_string())).collect();
        let p = Point::gauge("g", 1.0, Utc::now(), labels, "p");
        let v: serde_json::Value = serde_json::from_str(&emf_line(&p, "ns")).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].as_array().unwrap().len(), 30);
        assert!(v.get("k29").is_some() && v.get("k30").is_none());
    }

    #[tokio::test]
    async fn the_sink_prints_emf_lines_when_asked() {
        let buf = SharedBuffer::default();
        let sink = JsonLines::with_format(buf.clone(), LineFormat::Emf { namespace: "pipeline-run-metrics".into() });
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 13, 30, 29).unwrap();
        let c = Point::counter("pipeline.run.started", 1.0, "{run}", t, BTreeMap::new(), "p");
        let d = sink.emit(&[c.clone(), c]).await;
        assert_eq!((d.result(), d.calls), (Ok(()), 1));
        let line = r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"pipeline.run.started","Unit":"Count"}],"Namespace":"pipeline-run-metrics"}],"Timestamp":1796045429000},"pipeline.run.started":1.0}"#;
        assert_eq!(buf.take_lines(), vec![line, line], "one line per increment");
    }
}
