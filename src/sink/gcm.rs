//! Google Cloud Monitoring sink: `projects.timeSeries.create` over REST.
//!
//! The API's rules (protocols.md §5): at most 200 series per call and exactly one point per
//! series per call, so the points of one event go out in as few calls as those rules allow (two
//! points of one series need two calls, sent in time order). Metrics are `GAUGE`/`DOUBLE` under
//! `custom.googleapis.com/`. A partial failure names the failed `timeSeries[i]` indices; each is
//! classified: a point written too frequently, out of order or as a duplicate of one already
//! there counts as already written; a point outside the 25-hour window is refused for good;
//! both are reported, never retried. 429, 5xx, timeouts and connection errors are retried with
//! exponential backoff inside the configured deadline, then reported as transient.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Delivered, Gauge, MetricSink, Rejection};
use crate::credentials::{MONITORING_SCOPE, TokenSource};
use crate::error::{ErrorClass, SinkError};

/// The API's limit of series per request.
pub const MAX_SERIES_PER_CALL: usize = 200;

/// The monitored resource the series are written against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `global` with label `project_id` (one logical writer; the reference's choice).
    Global,
    /// `generic_task`; `task_id` should be fixed (not per instance) so that one logical gauge
    /// stays one series however many instances write it.
    GenericTask { location: String, namespace: String, job: String, task_id: String },
}

impl Resource {
    fn json(&self, project: &str) -> Value {
        match self {
            Resource::Global => json!({"type": "global", "labels": {"project_id": project}}),
            Resource::GenericTask { location, namespace, job, task_id } => json!({
                "type": "generic_task",
                "labels": {"project_id": project, "location": location, "namespace": namespace, "job": job, "task_id": task_id}
            }),
        }
    }
}

/// Retry of transient failures.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// No retry starts later than this after the first call.
    pub deadline: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(20),
        }
    }
}

pub struct CloudMonitoring {
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    /// `https://monitoring.googleapis.com` (a fake's URL in tests).
    endpoint: String,
    resource: Resource,
    retry: Retry,
    /// Limit for one HTTP call.
    timeout: Duration,
}

pub const METRIC_PREFIX: &str = "custom.googleapis.com/";

impl CloudMonitoring {
    pub fn new(
        http: reqwest::Client,
        tokens: Arc<dyn TokenSource>,
        endpoint: &str,
        resource: Resource,
        retry: Retry,
    ) -> Self {
        CloudMonitoring {
            http,
            tokens,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            resource,
            retry,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The request body for a set of points that are all of different series.
pub fn request_body(points: &[&Gauge], resource: &Resource) -> Value {
    let series: Vec<Value> = points
        .iter()
        .map(|g| {
            json!({
                "metric": {"type": format!("{METRIC_PREFIX}{}", g.name), "labels": g.labels},
                "resource": resource.json(&g.project),
                "metricKind": "GAUGE",
                "valueType": "DOUBLE",
                "points": [{
                    "interval": {"endTime": g.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)},
                    "value": {"doubleValue": double_json(g.value)}
                }]
            })
        })
        .collect();
    json!({ "timeSeries": series })
}

/// proto3 JSON: doubles that are not finite are the strings "NaN", "Infinity", "-Infinity".
fn double_json(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("NaN")
    } else if v > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

type SeriesKey = (String, String, Vec<(String, String)>);

fn series_key(g: &Gauge) -> SeriesKey {
    (g.project.clone(), g.name.clone(), g.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Splits the points of one event into calls: per project, the k-th point (in time order) of
/// every series goes into round k, and each round is cut into chunks of 200 series. Calls are
/// sent in this order, so points of one series are written oldest first.
pub fn plan_calls(points: &[Gauge]) -> Vec<(String, Vec<&Gauge>)> {
    let mut by_project: BTreeMap<&str, Vec<&Gauge>> = BTreeMap::new();
    for g in points {
        by_project.entry(g.project.as_str()).or_default().push(g);
    }
    let mut calls = Vec::new();
    for (project, mut pts) in by_project {
        pts.sort_by_key(|g| g.time); // stable: equal times keep emission order
        let mut rounds: Vec<Vec<&Gauge>> = Vec::new();
        let mut seen: HashMap<SeriesKey, usize> = HashMap::new();
        for g in pts {
            let n = seen.entry(series_key(g)).or_insert(0);
            if rounds.len() <= *n {
                rounds.push(Vec::new());
            }
            rounds[*n].push(g);
            *n += 1;
        }
        for round in rounds {
            for chunk in round.chunks(MAX_SERIES_PER_CALL) {
                calls.push((project.to_string(), chunk.to_vec()));
            }
        }
    }
    calls
}

/// How one failed series (or a whole failed call) is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Rejected(Rejection),
    Retry,
    Fail,
}

/// Classifies an error text of Cloud Monitoring (protocols.md §5.3).
fn classify_text(text: &str) -> Option<Verdict> {
    let t = text.to_ascii_lowercase();
    if t.contains("more frequently than the maximum sampling period")
        || t.contains("must be written in order")
        || t.contains("older start time")
        || t.contains("older end time")
    {
        return Some(Verdict::Rejected(Rejection::AlreadyWritten));
    }
    if t.contains("too old") || t.contains("25 hours") || t.contains("in the future") || t.contains("older than") {
        return Some(Verdict::Rejected(Rejection::OutOfWindow));
    }
    if t.contains("duplicate timeseries")
        || t.contains("unavailable")
        || t.contains("deadline exceeded")
        || t.contains("internal error")
    {
        return Some(Verdict::Retry);
    }
    None
}

/// Parses `...: timeSeries[0,2-4]; ...: timeSeries[7]` into (index, reason text) pairs.
fn failed_series(message: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = message;
    let mut reason_start = 0usize;
    let mut consumed = 0usize;
    while let Some(i) = rest.find("timeSeries[") {
        let abs = consumed + i;
        let reason = message[reason_start..abs].trim().trim_end_matches(':').trim();
        let after = &rest[i + "timeSeries[".len()..];
        let Some(end) = after.find(']') else { break };
        for part in after[..end].split(',') {
            let part = part.trim();
            let range = match part.split_once('-') {
                Some((a, b)) => a.trim().parse::<usize>().ok().zip(b.trim().parse::<usize>().ok()),
                None => part.parse::<usize>().ok().map(|a| (a, a)),
            };
            if let Some((a, b)) = range {
                for idx in a..=b.min(a + 10_000) {
                    out.push((idx, reason.to_string()));
                }
            }
        }
        let next = i + "timeSeries[".len() + end + 1;
        consumed += next;
        rest = &rest[next..];
        reason_start = consumed;
        // skip separators like "; " before the next reason
        while message[reason_start..].starts_with([';', ' ', ',', '.']) {
            reason_start += 1;
        }
    }
    out
}

enum CallError {
    /// Some series failed; the others were written.
    Partial(Vec<(usize, String)>),
    /// The whole call failed.
    Whole { status: Option<u16>, message: String },
}

impl CloudMonitoring {
    async fn call(&self, project: &str, points: &[&Gauge]) -> Result<(), CallError> {
        let token = self
            .tokens
            .token(&[MONITORING_SCOPE])
            .await
            .map_err(|e| CallError::Whole { status: None, message: format!("no access token: {e}") })?;
        let url = format!("{}/v3/projects/{project}/timeSeries", self.endpoint);
        let resp = self
            .http
            .post(url)
            .bearer_auth(token)
            .timeout(self.timeout)
            .json(&request_body(points, &self.resource))
            .send()
            .await
            .map_err(|e| CallError::Whole { status: None, message: format!("request failed: {e}") })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        let failed = failed_series(&message);
        if !failed.is_empty() && status.as_u16() == 400 {
            return Err(CallError::Partial(failed));
        }
        Err(CallError::Whole { status: Some(status.as_u16()), message })
    }

    /// Writes one call's points, retrying what can be retried.
    async fn write(&self, project: &str, points: Vec<&Gauge>, out: &mut Delivered) -> Result<(), SinkError> {
        let started = Instant::now();
        let mut pending = points;
        let mut backoff = self.retry.first_backoff;
        loop {
            out.calls += 1;
            let mut retry = Vec::new();
            let mut last_error = String::new();
            match self.call(project, &pending).await {
                Ok(()) => return Ok(()),
                Err(CallError::Partial(failed)) => {
                    for (idx, reason) in failed {
                        let Some(g) = pending.get(idx) else { continue };
                        match classify_text(&reason) {
                            Some(Verdict::Rejected(r)) => out.rejected.push((g.name.clone(), r)),
                            Some(Verdict::Retry) => retry.push(*g),
                            _ => {
                                return Err(SinkError {
                                    class: ErrorClass::Permanent,
                                    message: format!("Cloud Monitoring refused {}: {reason}", g.name),
                                });
                            }
                        }
                        last_error = reason;
                    }
                }
                Err(CallError::Whole { status, message }) => {
                    let verdict = match status {
                        None | Some(401 | 403 | 408 | 429 | 500..=599) => Verdict::Retry,
                        Some(_) => classify_text(&message).unwrap_or(Verdict::Fail),
                    };
                    match verdict {
                        Verdict::Rejected(r) => {
                            out.rejected.extend(pending.iter().map(|g| (g.name.clone(), r)));
                            return Ok(());
                        }
                        Verdict::Retry => retry = pending.clone(),
                        Verdict::Fail => {
                            return Err(SinkError {
                                class: ErrorClass::Permanent,
                                message: format!("Cloud Monitoring rejected the request ({status:?}): {message}"),
                            });
                        }
                    }
                    last_error = format!("{status:?}: {message}");
                }
            }
            if retry.is_empty() {
                return Ok(());
            }
            if started.elapsed() + backoff > self.retry.deadline {
                return Err(SinkError {
                    class: ErrorClass::Transient,
                    message: format!(
                        "Cloud Monitoring still failing after {} calls in {:?}: {last_error}",
                        out.calls,
                        started.elapsed()
                    ),
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
            pending = retry;
        }
    }
}

#[async_trait::async_trait]
impl MetricSink for CloudMonitoring {
    async fn emit(&self, points: &[Gauge]) -> Result<Delivered, SinkError> {
        let mut out = Delivered::default();
        for (project, call) in plan_calls(points) {
            self.write(&project, call, &mut out).await?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn g(name: &str, labels: &[(&str, &str)], secs: i64) -> Gauge {
        Gauge {
            name: name.into(),
            value: 1.5,
            time: chrono::Utc.timestamp_opt(1_767_323_045 + secs, 123_000_000).unwrap(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            project: "my-proj".into(),
        }
    }

    #[test]
    fn body_is_the_documented_shape() {
        let p = g("pipeline_run/duration_seconds", &[("pipeline", "daily_load")], 0);
        let body = request_body(&[&p], &Resource::Global);
        assert_eq!(
            body,
            json!({"timeSeries":[{"metric":{"labels":{"pipeline":"daily_load"},"type":"custom.googleapis.com/pipeline_run/duration_seconds"},
                "metricKind":"GAUGE","points":[{"interval":{"endTime":"2026-01-02T03:04:05.123000Z"},"value":{"doubleValue":1.5}}],
                "resource":{"labels":{"project_id":"my-proj"},"type":"global"},"valueType":"DOUBLE"}]})
        );
        let task = Resource::GenericTask {
            location: "us-east1".into(),
            namespace: "ns".into(),
            job: "j".into(),
            task_id: "singleton".into(),
        };
        assert_eq!(
            request_body(&[&p], &task)["timeSeries"][0]["resource"],
            json!({"type":"generic_task","labels":{"project_id":"my-proj","location":"us-east1","namespace":"ns","job":"j","task_id":"singleton"}})
        );
        let mut nan = p.clone();
        nan.value = f64::NAN;
        assert_eq!(
            request_body(&[&nan], &Resource::Global)["timeSeries"][0]["points"][0]["value"]["doubleValue"],
            "NaN"
        );
    }

    #[test]
    fn plan_puts_one_point_per_series_per_call_and_at_most_200_series() {
        let mut pts: Vec<Gauge> = (0..450).map(|i| g("m", &[("i", &i.to_string())], 0)).collect();
        // a second and third point of series i=0, later in time
        pts.push(g("m", &[("i", "0")], 10));
        pts.push(g("m", &[("i", "0")], 20));
        let calls = plan_calls(&pts);
        let sizes: Vec<usize> = calls.iter().map(|(_, c)| c.len()).collect();
        assert_eq!(sizes, vec![200, 200, 50, 1, 1]);
        for (_, c) in &calls {
            let keys: std::collections::HashSet<_> = c.iter().map(|g| series_key(g)).collect();
            assert_eq!(keys.len(), c.len(), "no series twice in one call");
        }
        assert_eq!(calls[3].1[0].time, pts[450].time);
        assert_eq!(calls[4].1[0].time, pts[451].time);
        assert_eq!(plan_calls(&[]).len(), 0);
        assert_eq!(plan_calls(&pts[..200]).len(), 1, "200 series: exactly one call");
    }

    #[test]
    fn parses_failed_series_indices() {
        let m = "One or more TimeSeries could not be written: One or more points were written more frequently than the maximum \
                 sampling period configured for the metric. {Metric: x}: timeSeries[0-2,5]; Points must be written in order. \
                 One or more of the points specified had an older start time than the most recent point.: timeSeries[7]";
        let f = failed_series(m);
        let idx: Vec<usize> = f.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![0, 1, 2, 5, 7]);
        assert!(f[0].1.contains("more frequently"), "{:?}", f[0]);
        assert!(f[4].1.starts_with("Points must be written in order"), "{:?}", f[4]);
        assert_eq!(classify_text(&f[0].1), Some(Verdict::Rejected(Rejection::AlreadyWritten)));
        assert_eq!(classify_text(&f[4].1), Some(Verdict::Rejected(Rejection::AlreadyWritten)));
        assert!(failed_series("Metrics cannot be written to cloud_run_revision.").is_empty());
    }
}
