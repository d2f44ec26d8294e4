//! A fake of Cloud Monitoring's `projects.timeSeries.create`: records every request, checks each
//! series as the real API does (200 series, one point per series, order and sampling period, the
//! window, label limits, the interval rules of GAUGE and CUMULATIVE, the value of each value
//! type, DISTRIBUTION's documented invariants; texts §1.6) and answers with the API's real
//! statuses, bodies and message layouts.
//! Every text names its public source (collected in tests/common/fakes/SOURCES.md, cited as
//! "texts §N"); where the real wording is not publicly known the text says so (`UNKNOWN
//! wording: …`) and the product must not depend on it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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

/// How the fake writes the failed-series groups of a partial failure (texts §1.2). All follow
/// `One or more TimeSeries could not be written: ` and are joined by `; `.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GcmLayout {
    /// L1 (2019–2023): `<reason>: timeSeries[0-2,5]`, one group per reason
    /// (google/exposure-notifications-server#699, googleforgames/open-match#569).
    ReasonFirst,
    /// L3 (2024-12 → 2025-02): `timeSeries[146]: <reason>`, one group per failed series
    /// (GoogleCloudPlatform/run-gmp-sidecar#50, firezone/firezone#8026).
    IndexFirst,
    /// L5 (2025-07 → 2025-10): `timeSeries[0-29] (example metric.type="…", metric.labels={"k":
    /// "v"}): write for resource=<type>{k:v} failed with: <reason>`. One group per write group
    /// (every series of one resource, written or not) with the reason of one failed series
    /// (chainguard-dev/terraform-infra-common#958, GoogleCloudPlatform/opentelemetry-operations-python#431).
    Example,
    /// L6 (2026-06, the newest seen): `timeSeries[3,8-12] (example metric.type="…",
    /// metric.labels={…}, resource.type="…", resource.labels={…}): Monarch only accepted 199 of
    /// 200 points. Example error: <reason>`, one group per write group
    /// (GoogleCloudPlatform/prometheus-engine#1970).
    #[default]
    ExampleWithResource,
}

/// The wording of the "too old" refusal (texts §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TooOld {
    /// `… Data points cannot be written more than 25h10s in the past.` (google/slo-generator#98)
    #[default]
    H25m10s,
    /// `… Data points cannot be written more than 24h in the past.`
    /// (GoogleCloudPlatform/fluent-plugin-google-cloud PR #477); the fake then refuses points
    /// older than 24 h.
    H24,
    /// The 2023 long form (influxdata/telegraf#13826).
    Long2023,
}

#[derive(Default)]
pub struct GcmState {
    pub requests: Vec<Recorded>,
    /// series key -> end times written, in order
    pub written: HashMap<String, Vec<DateTime<Utc>>>,
    /// series key -> start time of its last point (CUMULATIVE)
    pub starts: HashMap<String, DateTime<Utc>>,
    /// metric type -> (metricKind, valueType) of its (auto-created) descriptor
    pub descriptors: HashMap<String, (String, String)>,
    /// whole-call failures to answer instead of processing the next calls: (status,
    /// Retry-After seconds)
    pub fail_next: VecDeque<(u16, Option<u64>)>,
    /// scripted answers (status, JSON body) for the next calls, e.g. a field case's answer
    pub script: VecDeque<(u16, Value)>,
    /// metric type -> how many more writes of it fail with "An internal error occurred." (500)
    pub internal_errors: HashMap<String, usize>,
    /// delay before answering each call
    pub delay: Duration,
    pub layout: GcmLayout,
    pub too_old: TooOld,
    /// "older end time" instead of "older start time" in the out-of-order text (both are real;
    /// which trigger gives which is UNKNOWN, texts §1.3)
    pub end_time_wording: bool,
}

#[derive(Clone, Default)]
pub struct FakeGcm {
    pub url: String,
    pub state: Arc<Mutex<GcmState>>,
}

/// The `google.rpc.Status` name of an HTTP status, as Google's REST envelope spells it.
fn google_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// Google's REST error envelope; key order `code`, `message`, `status`, `details`, no legacy
/// `errors` array (texts §1.1: firezone/firezone#8142, #8026).
fn google_error(code: u16, message: &str, details: Option<Value>) -> Value {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), json!(code));
    error.insert("message".into(), json!(message));
    error.insert("status".into(), json!(google_status(code)));
    if let Some(d) = details {
        error.insert("details".into(), d);
    }
    json!({ "error": error })
}

fn reply(code: u16, body: Value, retry_after: Option<u64>) -> Response {
    let mut resp = (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    resp
}

/// The real body of a whole-call failure with this status.
fn gcm_whole_failure(code: u16) -> Value {
    match code {
        // No/invalid token, texts §1.4: the message is CONFIRMED for Google APIs; the ErrorInfo
        // detail's `metadata.method` for Monitoring is UNKNOWN (the one below is a guess from
        // the RPC name) and whether an `errors[]` array is present for Monitoring is UNKNOWN.
        401 => google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            Some(
                json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                "domain": "googleapis.com", "metadata": {"service": "monitoring.googleapis.com",
                "method": "google.monitoring.v3.MetricService.CreateTimeSeries"}}]),
            ),
        ),
        // Missing IAM permission: dynatrace-oss/dynatrace-gcp-monitor#25 (REST body).
        403 => {
            google_error(403, "Permission monitoring.timeSeries.create denied (or the resource may not exist).", None)
        }
        // Quota: the pattern is google/slo-generator#288 (a Monitoring read quota); the metric and
        // limit names for time-series ingestion are UNKNOWN, so are the rest of the message and
        // its details.
        429 => google_error(
            429,
            "Quota exceeded for quota metric 'UNKNOWN (time series ingestion)' and limit 'UNKNOWN' of service 'monitoring.googleapis.com'",
            None,
        ),
        // GoogleCloudPlatform/kubernetes-engine-samples#1084 (2024-01).
        500 => google_error(
            500,
            "Internal error encountered. Please retry after a few seconds. If internal errors persist, contact support at https://cloud.google.com/support/docs.",
            None,
        ),
        // Monitoring's own 503 text is UNKNOWN; this is the generic Google text of older APIs
        // (google-api-php-client#1945, google-gemini/gemini-cli#11196).
        503 => google_error(503, "The service is currently unavailable.", None),
        other => panic!("FakeGcm: no known real body for a whole-call HTTP {other}"),
    }
}

/// A Monitoring timestamp in the sampling-period text: `'2025/10/05-06:03:53.004'`
/// (GoogleCloudPlatform/opentelemetry-operations-python#431).
fn monarch_time(t: &DateTime<Utc>) -> String {
    t.format("%Y/%m/%d-%H:%M:%S%.3f").to_string()
}

/// `0-2,5,7-8`
fn compress(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

/// One refused series: its index, the reason text and the per-point status code the
/// `CreateTimeSeriesSummary` counts it under (9 FAILED_PRECONDITION for the sampling period,
/// 3 INVALID_ARGUMENT otherwise; texts §1.1).
struct Refused {
    index: usize,
    reason: String,
    code: i32,
}

/// A series that can be written: its key, end time and start time (CUMULATIVE).
type Accepted = (String, DateTime<Utc>, Option<DateTime<Utc>>);

/// Validates one series like the API does; `Err((reason, code))` is why it cannot be written.
fn check_series(i: usize, ts: &Value, now: DateTime<Utc>, state: &GcmState) -> Result<Accepted, (String, i32)> {
    let bad = |reason: String| Err((reason, 3));
    let mtype = ts["metric"]["type"].as_str().unwrap_or("");
    // stackdriver-prometheus-sidecar#251, #255
    if !mtype.contains('.') || !mtype.contains('/') || mtype.ends_with('/') {
        return bad(format!(
            "Field timeSeries[{i}].metric.type had an invalid value of \"{mtype}\": The metric type must be a URL-formatted string with a domain and non-empty path."
        ));
    }
    if !mtype.starts_with("custom.googleapis.com/") {
        return bad(format!("UNKNOWN wording: metric type {mtype} is not writable by this fake"));
    }
    let kind = ts["metricKind"].as_str().unwrap_or("GAUGE").to_string();
    let value_type = ts["valueType"].as_str().unwrap_or("DOUBLE").to_string();
    match state.descriptors.get(mtype) {
        // firezone/firezone#8026, stackdriver-prometheus-sidecar#86
        Some((k, _)) if *k != kind => {
            return bad(format!("Metric kind for metric {mtype} must be {k}, but is {kind}."));
        }
        Some((_, v)) if *v != value_type => {
            return bad(format!("UNKNOWN wording: value type of {mtype} must be {v}, but is {value_type}"));
        }
        None if kind != "GAUGE" && kind != "CUMULATIVE" => {
            return bad(format!("UNKNOWN wording: a descriptor cannot be auto-created with kind {kind}"));
        }
        _ => {}
    }
    let labels = ts["metric"]["labels"].as_object().cloned().unwrap_or_default();
    if labels.len() > 30 {
        // the limit is on the quota page; the text for custom.googleapis.com is UNKNOWN
        return bad(format!("UNKNOWN wording: metric {mtype} would have over 30 labels"));
    }
    for (k, v) in &labels {
        // opentelemetry-operations-go#98 (2020)
        let valid_key = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return bad(format!(
                "Field timeSeries[{i}].metric.labels had an invalid value of \"{k}\": Label key contains invalid characters."
            ));
        }
        let len = v.as_str().map(str::len).unwrap_or(usize::MAX);
        if k.len() > 100 || len > 1024 {
            return bad(format!("UNKNOWN wording: label {k} longer than the 100/1024 limit"));
        }
    }
    let resource = &ts["resource"];
    let rlabels = resource["labels"].as_object().cloned().unwrap_or_default();
    match resource["type"].as_str() {
        Some("global") if rlabels.contains_key("project_id") => {}
        Some("generic_task") => {
            // opentelemetry-operations-java#139, cloudprober/cloudprober#257
            let missing: Vec<&str> = ["project_id", "location", "namespace", "job", "task_id"]
                .into_iter()
                .filter(|l| !rlabels.contains_key(*l))
                .collect();
            if !missing.is_empty() {
                return bad(format!(
                    "The set of resource labels is incomplete. Missing labels: ({}).",
                    missing.join(" ")
                ));
            }
        }
        // opentelemetry-operations-java#248
        Some("cloud_run_revision") => {
            return bad("Metrics cannot be written to cloud_run_revision. See https://cloud.google.com/monitoring/custom-metrics/creating-metrics#which-resource for a list of writable resource types.".into());
        }
        other => return bad(format!("UNKNOWN wording: resource {other:?} not modelled by this fake")),
    }
    let points = ts["points"].as_array().cloned().unwrap_or_default();
    if points.len() != 1 {
        // opentelemetry-operations-java#225 (the trigger is inferred from the field path)
        return bad(format!(
            "Field timeSeries[{i}].points had an invalid value: Only one point can be written per TimeSeries per request."
        ));
    }
    let p = &points[0];
    check_value(i, &p["value"], &value_type)?;
    let raw_end = p["interval"]["endTime"].as_str().unwrap_or("");
    let Ok(end) = DateTime::parse_from_rfc3339(raw_end).map(|t| t.with_timezone(&Utc)) else {
        // a bad timestamp fails the whole request's JSON parsing; see gcm_create
        unreachable!("checked before")
    };
    let shown = end.to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    // The API refuses past 25h10s (texts §1.3), a little more than the documented 25 h; the
    // "24h" wording is taken to mean a 24 h window.
    let window = match state.too_old {
        TooOld::H24 => chrono::Duration::hours(24),
        TooOld::H25m10s | TooOld::Long2023 => chrono::Duration::hours(25) + chrono::Duration::seconds(10),
    };
    if end < now - window {
        let why = match state.too_old {
            TooOld::H25m10s => "Data points cannot be written more than 25h10s in the past.".to_string(),
            TooOld::H24 => "Data points cannot be written more than 24h in the past.".to_string(),
            TooOld::Long2023 => {
                let ago = now - end;
                format!(
                    "Data points cannot be written more than approximately 24 hours in the past, specifically no more than 25h10s in the past. Your data point is {}h{}m{}s before the present time, which is too far in the past.",
                    ago.num_hours(),
                    ago.num_minutes() % 60,
                    ago.num_seconds() % 60
                )
            }
        };
        return bad(format!(
            "Field timeSeries[{i}].points[0].interval.end_time had an invalid value of \"{shown}\": {why}"
        ));
    }
    if end > now + chrono::Duration::minutes(5) {
        return bad(format!(
            "Field timeSeries[{i}].points[0].interval.end_time had an invalid value of \"{shown}\": UNKNOWN wording: more than 5 minutes in the future"
        ));
    }
    // the interval rules per kind (texts §1.3, §1.6)
    let start =
        p["interval"]["startTime"].as_str().map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc));
    let shown_start = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    match (kind.as_str(), start) {
        // google/exposure-notifications-verification-server#1309
        ("GAUGE", Some(st)) if st != end => {
            return bad(format!(
                "Field timeSeries[{i}].points[0].interval.start_time had an invalid value of \"{}\": The start time must be equal to the end time ({shown}) for the gauge metric '{mtype}'.",
                shown_start(&st)
            ));
        }
        // run-gmp-sidecar#50, go-metrics-stackdriver#19 (a missing start is the zero time)
        ("CUMULATIVE", st) if st.is_none_or(|st| st >= end) => {
            let st = st.map(|t| shown_start(&t)).unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
            return bad(format!(
                "Field timeSeries[{i}].points[0].interval.start_time had an invalid value of \"{st}\": The start time must be before the end time ({shown}) for the non-gauge metric '{mtype}'."
            ));
        }
        // TimeInterval: "the start time must not be more than 25 hours in the past"
        ("CUMULATIVE", Some(st)) if st < now - chrono::Duration::hours(25) => {
            return bad(format!(
                "Field timeSeries[{i}].points[0].interval.start_time had an invalid value of \"{}\": UNKNOWN wording: start time more than 25 hours in the past",
                shown_start(&st)
            ));
        }
        _ => {}
    }
    let key =
        format!("{}|{}|{}", mtype, serde_json::to_string(&labels).unwrap(), serde_json::to_string(resource).unwrap());
    if let (Some(st), Some(last_start)) = (start, state.starts.get(&key))
        && st < *last_start
    {
        // a CUMULATIVE point whose start is older than the series' current start (the trigger
        // is inferred from the text, texts §1.6)
        return bad(
            "Points must be written in order. One or more of the points specified had an older start time than the most recent point.".into(),
        );
    }
    if let Some(last) = state.written.get(&key).and_then(|v| v.last()) {
        // exposure-notifications-server#699, chainguard#958 ("start"); python-monitoring#57,
        // rekor-tiles#470 ("end")
        if end < *last {
            let which = if state.end_time_wording { "end" } else { "start" };
            return bad(format!(
                "Points must be written in order. One or more of the points specified had an older {which} time than the most recent point."
            ));
        }
        // the same end time or less than 5 s after the last point; per-point code 9
        // (firezone#8142, opentelemetry-operations-python#431)
        if end - *last < chrono::Duration::seconds(5) {
            return Err((
                format!(
                    "One or more points were written more frequently than the maximum sampling period configured for the metric. {{Metric: {mtype}, Timestamps: {{Youngest Existing: '{}', New: '{}'}}}}",
                    monarch_time(last),
                    monarch_time(&end)
                ),
                9,
            ));
        }
    }
    Ok((key, end, start))
}

/// Checks a point's value against the series' value type (texts §1.3, §1.6): the value must
/// carry the field of its type (`doubleValue`, `int64Value` as a proto3 JSON string or number,
/// `distributionValue`), and a distribution must keep `google.api.Distribution`'s documented
/// invariants.
fn check_value(i: usize, value: &Value, value_type: &str) -> Result<(), (String, i32)> {
    let bad = |reason: String| Err((reason, 3));
    let field = ["doubleValue", "int64Value", "distributionValue", "boolValue", "stringValue"]
        .into_iter()
        .find(|f| value.get(f).is_some());
    let Some(field) = field else {
        // GoogleCloudPlatform/docker-clamav-malware-scanner#278
        return bad(format!(
            "Field timeSeries[{i}].points[0].value had an invalid value: A point has an unrecognized value type."
        ));
    };
    let v = &value[field];
    let expected = match value_type {
        "DOUBLE" => "doubleValue",
        "INT64" => "int64Value",
        "DISTRIBUTION" => "distributionValue",
        other => return bad(format!("UNKNOWN wording: value type {other} not modelled by this fake")),
    };
    if field != expected {
        return bad(format!("UNKNOWN wording: a {field} point for a {value_type} series"));
    }
    match field {
        "doubleValue" if v.is_number() || v.is_string() => Ok(()),
        "int64Value" if v.as_str().is_some_and(|s| s.parse::<i64>().is_ok()) || v.is_i64() => Ok(()),
        "distributionValue" => check_distribution(v),
        _ => bad(format!("UNKNOWN wording: {field} of {v} is not a valid value")),
    }
}

/// `google.api.Distribution` (distribution.proto): `count` non-negative and "must equal the sum
/// of the values in bucket_counts if a histogram is provided"; `mean` and
/// `sum_of_squared_deviation` zero when `count` is zero; explicit `bounds` "must be
/// monotonically increasing"; `bucket_counts` has at most N = bounds + 1 values (fewer are
/// padded with zeros). The API's wording for each violation is UNKNOWN.
fn check_distribution(d: &Value) -> Result<(), (String, i32)> {
    let bad = |what: &str| Err((format!("UNKNOWN wording: invalid distribution: {what}"), 3));
    let int = |v: &Value| v.as_str().and_then(|s| s.parse::<i64>().ok()).or_else(|| v.as_i64());
    let count = match d.get("count") {
        None => 0,
        Some(c) => match int(c) {
            Some(c) if c >= 0 => c,
            _ => return bad("count is not a non-negative int64"),
        },
    };
    let mean = d["mean"].as_f64().unwrap_or(0.0);
    let ssd = d["sumOfSquaredDeviation"].as_f64().unwrap_or(0.0);
    if ssd < 0.0 {
        return bad("sumOfSquaredDeviation is negative");
    }
    if count == 0 && (mean != 0.0 || ssd != 0.0) {
        return bad("mean and sumOfSquaredDeviation must be 0 when count is 0");
    }
    let Some(counts) = d.get("bucketCounts") else { return Ok(()) };
    let counts: Option<Vec<i64>> =
        counts.as_array().map(|a| a.iter().map(int).collect()).and_then(|v: Vec<_>| v.into_iter().collect());
    let Some(counts) = counts else { return bad("bucketCounts are not int64 values") };
    let Some(bounds) = d["bucketOptions"]["explicitBuckets"]["bounds"].as_array() else {
        return bad("a histogram without explicitBuckets (the only bucket options this fake models)");
    };
    let bounds: Vec<f64> = bounds.iter().filter_map(Value::as_f64).collect();
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return bad("explicit bounds are not monotonically increasing");
    }
    if counts.len() > bounds.len() + 1 {
        return bad("more bucketCounts than buckets");
    }
    if counts.iter().any(|c| *c < 0) || counts.iter().sum::<i64>() != count {
        return bad("count is not the sum of bucketCounts");
    }
    Ok(())
}

/// `{"k": "v", "k2": "v2"}` as the example part prints labels (texts §1.2).
fn json_ish(labels: &Value) -> String {
    let pairs: Vec<String> = labels
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("\"{k}\": \"{}\"", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    format!("{{{}}}", pairs.join(", "))
}

/// `{k:v,k2:v2}` as `write for resource=` prints labels (texts §1.2, L4/L5).
fn colon_ish(labels: &Value) -> String {
    let pairs: Vec<String> = labels
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    format!("{{{}}}", pairs.join(","))
}

/// The partial-failure message in `layout`.
fn partial_message(layout: GcmLayout, series: &[Value], refused: &[Refused]) -> String {
    let groups: Vec<String> = match layout {
        GcmLayout::ReasonFirst => {
            let mut by_reason: Vec<(&str, Vec<usize>)> = Vec::new();
            for r in refused {
                match by_reason.iter_mut().find(|(reason, _)| *reason == r.reason) {
                    Some((_, ix)) => ix.push(r.index),
                    None => by_reason.push((&r.reason, vec![r.index])),
                }
            }
            by_reason.iter().map(|(reason, ix)| format!("{reason}: timeSeries[{}]", compress(ix))).collect()
        }
        GcmLayout::IndexFirst => refused.iter().map(|r| format!("timeSeries[{}]: {}", r.index, r.reason)).collect(),
        GcmLayout::Example | GcmLayout::ExampleWithResource => {
            // one group per resource: every series of it, with the first failure as example
            let mut groups: Vec<(&Value, Vec<usize>, &Refused)> = Vec::new();
            for r in refused {
                let res = &series[r.index]["resource"];
                if groups.iter().any(|(k, _, _)| *k == res) {
                    continue;
                }
                let members = (0..series.len()).filter(|&j| series[j]["resource"] == *res).collect();
                groups.push((res, members, r));
            }
            groups
                .iter()
                .map(|(_, members, example)| {
                    let ts = &series[example.index];
                    let metric = format!(
                        "example metric.type=\"{}\", metric.labels={}",
                        ts["metric"]["type"].as_str().unwrap_or(""),
                        json_ish(&ts["metric"]["labels"])
                    );
                    let resource = &ts["resource"];
                    let failed = refused.iter().filter(|r| members.contains(&r.index)).count();
                    if layout == GcmLayout::Example {
                        format!(
                            "timeSeries[{}] ({metric}): write for resource={}{} failed with: {}",
                            compress(members),
                            resource["type"].as_str().unwrap_or(""),
                            colon_ish(&resource["labels"]),
                            example.reason
                        )
                    } else {
                        format!(
                            "timeSeries[{}] ({metric}, resource.type=\"{}\", resource.labels={}): Monarch only accepted {} of {} points. Example error: {}",
                            compress(members),
                            resource["type"].as_str().unwrap_or(""),
                            json_ish(&resource["labels"]),
                            members.len() - failed,
                            members.len(),
                            example.reason
                        )
                    }
                })
                .collect()
        }
    };
    format!("One or more TimeSeries could not be written: {}", groups.join("; "))
}

/// `CreateTimeSeriesSummary`, with point counts per status code; a zero `successPointCount` is
/// left out as proto3 JSON does (whether REST prints it is UNKNOWN, texts §1.1).
fn summary(total: usize, refused: &[Refused]) -> Value {
    let mut by_code: BTreeMap<i32, usize> = BTreeMap::new();
    for r in refused {
        *by_code.entry(r.code).or_default() += 1;
    }
    let mut s = serde_json::Map::new();
    s.insert("@type".into(), json!("type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary"));
    s.insert("totalPointCount".into(), json!(total));
    if total > refused.len() {
        s.insert("successPointCount".into(), json!(total - refused.len()));
    }
    s.insert(
        "errors".into(),
        by_code.iter().map(|(code, n)| json!({"status": {"code": code}, "pointCount": n})).collect(),
    );
    json!([s])
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
    if let Some((code, body)) = st.script.pop_front() {
        return reply(code, body, None);
    }
    if let Some((code, retry_after)) = st.fail_next.pop_front() {
        return reply(code, gcm_whole_failure(code), retry_after);
    }
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("Bearer ") && a.len() > 7)
    {
        // texts §1.4, google/google-api-php-client#2479: the no-credential text and reason
        let body = google_error(
            401,
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            Some(json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CREDENTIALS_MISSING",
                "domain": "googleapis.com", "metadata": {"service": "monitoring.googleapis.com",
                "method": "google.monitoring.v3.MetricService.CreateTimeSeries"}}])),
        );
        return reply(401, body, None);
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        // "Invalid JSON payload received." is CONFIRMED for Monitoring (vectordotdev/vector#14057);
        // the rest of the text for a syntax error is UNKNOWN
        return reply(400, google_error(400, "Invalid JSON payload received. UNKNOWN wording follows", None), None);
    };
    let series = req["timeSeries"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        // opentelemetry-operations-go#98
        return reply(400, google_error(400, "Request was missing field timeSeries.", None), None);
    }
    if series.len() > 200 {
        // ServiceWeaver/weaver-gke#142
        return reply(
            400,
            google_error(
                400,
                "Field timeSeries had an invalid value: A maximum of 200 TimeSeries can be written in a single request.",
                None,
            ),
            None,
        );
    }
    for (i, ts) in series.iter().enumerate() {
        let interval = &ts["points"][0]["interval"];
        let end = interval["endTime"].as_str().unwrap_or("");
        let start = interval["startTime"].as_str();
        let bad_time = if DateTime::parse_from_rfc3339(end).is_err() {
            Some(("end_time", "endTime"))
        } else if start.is_some_and(|s| DateTime::parse_from_rfc3339(s).is_err()) {
            Some(("start_time", "startTime"))
        } else {
            None
        };
        if let Some((path, field)) = bad_time {
            // cloud-custodian/cloud-custodian#7629 (a read call): the field path format of
            // create is UNKNOWN
            return reply(
                400,
                google_error(
                    400,
                    &format!(
                        "Invalid value at 'time_series[{i}].points[0].interval.{path}' (type.googleapis.com/google.protobuf.Timestamp), Field '{field}', Illegal timestamp format; timestamps must end with 'Z' or have a valid timezone offset."
                    ),
                    None,
                ),
                None,
            );
        }
    }
    let now = Utc::now();
    let mut seen = HashSet::new();
    let mut refused: Vec<Refused> = Vec::new();
    let mut ok = Vec::new();
    let mut internal = false;
    for (i, ts) in series.iter().enumerate() {
        let mtype = ts["metric"]["type"].as_str().unwrap_or("").to_string();
        if let Some(n) = st.internal_errors.get_mut(&mtype).filter(|n| **n > 0) {
            // nodejs-monitoring#191, python-monitoring#7: a 500 partial failure
            *n -= 1;
            internal = true;
            refused.push(Refused { index: i, reason: "An internal error occurred.".into(), code: 13 });
            continue;
        }
        match check_series(i, ts, now, &st) {
            Ok((key, end, start)) => {
                if !seen.insert(key.clone()) {
                    // google/go-metrics-stackdriver#5, #11
                    refused.push(Refused {
                        index: i,
                        reason: format!("Field timeSeries[{i}] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request."),
                        code: 3,
                    });
                } else {
                    ok.push((key, end, start, mtype, ts["metricKind"].clone(), ts["valueType"].clone()));
                }
            }
            Err((reason, code)) => refused.push(Refused { index: i, reason, code }),
        }
    }
    for (key, end, start, mtype, kind, value_type) in ok {
        if let Some(start) = start {
            st.starts.insert(key.clone(), start);
        }
        st.written.entry(key).or_default().push(end);
        st.descriptors.entry(mtype).or_insert_with(|| {
            (kind.as_str().unwrap_or("GAUGE").to_string(), value_type.as_str().unwrap_or("DOUBLE").to_string())
        });
    }
    if refused.is_empty() {
        return (StatusCode::OK, axum::Json(json!({}))).into_response();
    }
    // a partial failure comes as 400, or 500 when a series failed internally (texts §1.1)
    let code = if internal { 500 } else { 400 };
    let message = partial_message(st.layout, &series, &refused);
    reply(code, google_error(code, &message, Some(summary(series.len(), &refused))), None)
}

impl FakeGcm {
    pub async fn start() -> FakeGcm {
        let mut fake = FakeGcm::default();
        let app = Router::new().route("/v3/projects/{project}/timeSeries", post(gcm_create)).with_state(fake.clone());
        fake.url = serve(app).await;
        fake
    }

    /// Partial failures in this layout from now on.
    pub fn set_layout(&self, layout: GcmLayout) {
        self.state.lock().unwrap().layout = layout;
    }

    /// The "too old" refusal in this wording from now on.
    pub fn set_too_old(&self, wording: TooOld) {
        self.state.lock().unwrap().too_old = wording;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.requests().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    }

    /// The next calls fail as a whole with these statuses and their real bodies.
    pub fn fail_next(&self, codes: &[u16]) {
        self.state.lock().unwrap().fail_next.extend(codes.iter().map(|c| (*c, None)));
    }

    /// The next call fails as a whole with `code` and `Retry-After: secs` (whether Monitoring
    /// sends `Retry-After` is UNKNOWN; the header is standard HTTP).
    pub fn fail_next_with_retry_after(&self, code: u16, secs: u64) {
        self.state.lock().unwrap().fail_next.push_back((code, Some(secs)));
    }

    /// The next call is answered with this status and body, whatever it sent.
    pub fn answer_next(&self, code: u16, body: Value) {
        self.state.lock().unwrap().script.push_back((code, body));
    }

    /// The next `times` writes of metric type `mtype` fail with "An internal error occurred."
    /// inside a 500 partial failure.
    pub fn internal_error_next(&self, mtype: &str, times: usize) {
        self.state.lock().unwrap().internal_errors.insert(mtype.to_string(), times);
    }

    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Points written, all series together.
    pub fn written_points(&self) -> usize {
        self.state.lock().unwrap().written.values().map(Vec::len).sum()
    }

    /// Every series of every request whose `metricKind` is `kind`, in the order sent (written
    /// or not).
    pub fn series_of_kind(&self, kind: &str) -> Vec<Value> {
        self.bodies()
            .into_iter()
            .flat_map(|b| b["timeSeries"].as_array().cloned().unwrap_or_default())
            .filter(|ts| ts["metricKind"] == kind)
            .collect()
    }
}
