//! A fake of Cloud Monitoring's `projects.timeSeries.create`: records every request and checks
//! each series as strictly as the real API (200 series, one point per series, order and 5-second
//! spacing, the 25-hour window, label limits), answering with the API's error texts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Recorded, serve};

#[derive(Default)]
/// What the fake received and wrote, and how it is to answer next.
pub struct GcmState {
    /// every request, in order
    pub requests: Vec<Recorded>,
    /// series key -> end times written, in order
    pub written: HashMap<String, Vec<DateTime<Utc>>>,
    /// statuses to answer instead of processing the next calls (e.g. 503)
    pub fail_next: VecDeque<u16>,
    /// delay before answering each call
    pub delay: Duration,
}

#[derive(Clone, Default)]
/// A fake Cloud Monitoring API on 127.0.0.1; clones share its state.
pub struct FakeGcm {
    /// base URL (the sink's endpoint)
    pub url: String,
    /// requests, written points, scripted answers
    pub state: Arc<Mutex<GcmState>>,
}

fn gcm_error(code: u16, status: &str, message: &str, total: usize, failed: usize) -> Response {
    let body = json!({"error": {"code": code, "message": message, "status": status, "details": [{
        "@type": "type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary",
        "totalPointCount": total, "successPointCount": total - failed,
        "errors": [{"status": {"code": 3}, "pointCount": failed}]}]}});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

/// Validates one series like the API does; `Err` is the reason it cannot be written.
fn check_series(ts: &Value, now: DateTime<Utc>, state: &GcmState) -> Result<(String, DateTime<Utc>), String> {
    let mtype = ts["metric"]["type"].as_str().ok_or("metric.type missing")?;
    if !mtype.starts_with("custom.googleapis.com/") {
        return Err(format!("Metric type {mtype} is not a custom metric"));
    }
    if ts["metricKind"] != "GAUGE" || ts["valueType"] != "DOUBLE" {
        return Err("The metric kind / value type must be GAUGE / DOUBLE for this test".into());
    }
    let labels = ts["metric"]["labels"].as_object().cloned().unwrap_or_default();
    if labels.len() > 30 {
        return Err("Too many labels: at most 30".into());
    }
    for (k, v) in &labels {
        let v = v.as_str().ok_or_else(|| format!("Label {k} must be a string"))?;
        if k.len() > 100 || v.len() > 1024 {
            return Err(format!("Label {k} is too long"));
        }
    }
    let resource = &ts["resource"];
    let rlabels = resource["labels"].as_object().cloned().unwrap_or_default();
    match resource["type"].as_str() {
        Some("global") if rlabels.contains_key("project_id") => {}
        Some("generic_task") => {
            let missing: Vec<&str> = ["project_id", "location", "namespace", "job", "task_id"]
                .into_iter()
                .filter(|l| !rlabels.contains_key(*l))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "The set of resource labels is incomplete. Missing labels: ({}).",
                    missing.join(" ")
                ));
            }
        }
        Some("cloud_run_revision") => {
            return Err("Metrics cannot be written to cloud_run_revision. See https://cloud.google.com/monitoring/custom-metrics/creating-metrics#which-resource for a list of writable resource types.".into());
        }
        other => return Err(format!("Unsupported resource {other:?}")),
    }
    let points = ts["points"].as_array().ok_or("points missing")?;
    if points.len() != 1 {
        return Err("When creating a time series, the points field must contain exactly one point".into());
    }
    let p = &points[0];
    if !(p["value"]["doubleValue"].is_number() || p["value"]["doubleValue"].is_string()) {
        return Err("doubleValue missing".into());
    }
    let end = p["interval"]["endTime"].as_str().ok_or("endTime missing")?;
    let end = DateTime::parse_from_rfc3339(end).map_err(|e| format!("bad endTime: {e}"))?.with_timezone(&Utc);
    if end < now - chrono::Duration::hours(25) {
        return Err(
            "The points for the metric are too old: the end time must be no more than 25 hours in the past".into()
        );
    }
    if end > now + chrono::Duration::minutes(5) {
        return Err("The end time is too far in the future".into());
    }
    let key =
        format!("{}|{}|{}", mtype, serde_json::to_string(&labels).unwrap(), serde_json::to_string(resource).unwrap());
    if let Some(last) = state.written.get(&key).and_then(|v| v.last()) {
        if end <= *last {
            return Err("Points must be written in order. One or more of the points specified had an older start time than the most recent point.".into());
        }
        if end - *last < chrono::Duration::seconds(5) {
            return Err(format!(
                "One or more points were written more frequently than the maximum sampling period configured for the metric. {{Metric: {mtype}, Timestamps: {{Youngest Existing: '{last}', New: '{end}'}}}}"
            ));
        }
    }
    Ok((key, end))
}

async fn gcm_create(
    State(fake): State<FakeGcm>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = {
        let mut st = fake.state.lock().unwrap();
        st.requests.push(Recorded {
            path: format!("/v3/projects/{project}"),
            headers: headers.clone(),
            body: body.clone(),
        });
        st.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut st = fake.state.lock().unwrap();
    if let Some(code) = st.fail_next.pop_front() {
        return gcm_error(code, "UNAVAILABLE", "The service is currently unavailable.", 0, 0);
    }
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("Bearer ") && a.len() > 7)
    {
        return gcm_error(401, "UNAUTHENTICATED", "Request is missing required authentication credential.", 0, 0);
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return gcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", 0, 0);
    };
    let Some(series) = req["timeSeries"].as_array() else {
        return gcm_error(400, "INVALID_ARGUMENT", "timeSeries is required", 0, 0);
    };
    if series.is_empty() || series.len() > 200 {
        return gcm_error(
            400,
            "INVALID_ARGUMENT",
            &format!("Request must contain between 1 and 200 TimeSeries, got {}", series.len()),
            0,
            0,
        );
    }
    let now = Utc::now();
    let mut seen = std::collections::HashSet::new();
    let mut failures: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut ok = Vec::new();
    for (i, ts) in series.iter().enumerate() {
        match check_series(ts, now, &st) {
            Ok((key, end)) => {
                if !seen.insert(key.clone()) {
                    failures
                        .entry("Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request.".into())
                        .or_default()
                        .push(i);
                } else {
                    ok.push((key, end));
                }
            }
            Err(reason) => failures.entry(reason).or_default().push(i),
        }
    }
    for (key, end) in ok {
        st.written.entry(key).or_default().push(end);
    }
    if failures.is_empty() {
        return (StatusCode::OK, axum::Json(json!({}))).into_response();
    }
    let failed: usize = failures.values().map(Vec::len).sum();
    let parts: Vec<String> = failures
        .iter()
        .map(|(reason, idx)| {
            format!("{reason}: timeSeries[{}]", idx.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","))
        })
        .collect();
    gcm_error(
        400,
        "INVALID_ARGUMENT",
        &format!("One or more TimeSeries could not be written: {}", parts.join("; ")),
        series.len(),
        failed,
    )
}

impl FakeGcm {
    /// Serves a new fake on 127.0.0.1.
    pub async fn start() -> FakeGcm {
        let mut fake = FakeGcm::default();
        let app = Router::new().route("/v3/projects/{project}/timeSeries", post(gcm_create)).with_state(fake.clone());
        fake.url = serve(app).await;
        fake
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The JSON bodies of every request received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    }

    /// Answers the next calls with these HTTP statuses (UNAVAILABLE) instead of processing them.
    pub fn fail_next(&self, codes: &[u16]) {
        self.state.lock().unwrap().fail_next.extend(codes);
    }

    /// Waits `d` before answering each call.
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Points written per series key.
    pub fn written_points(&self) -> usize {
        self.state.lock().unwrap().written.values().map(Vec::len).sum()
    }
}
