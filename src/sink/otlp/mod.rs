//! OTLP/HTTP sink: one `ExportMetricsServiceRequest` (protobuf) per event, POSTed to
//! `{endpoint}/v1/metrics` before the answer is returned. Built from `opentelemetry-proto`
//! messages directly, because the OpenTelemetry SDK cannot set a point's time (stack.md §9.3).
//! Metric names and label keys are the same as in Cloud Monitoring; the resource carries
//! `service.name`, `service.instance.id` (a random id per process, [`Instance`]) and
//! `gcp.project_id` (one resource per metric project).
//!
//! Per kind ([`request`]):
//! * **gauge**: one `Gauge` metric per point, its one data point at `time_unix_nano` = the point
//!   (event) time, as before counters and histograms existed;
//! * **counter**: a `Sum` (monotonic, `AGGREGATION_TEMPORALITY_DELTA`) per metric name, one data
//!   point per label set holding the sum of the event's increments (`as_int` for count units
//!   such as `{run}`, else `as_double`);
//! * **histogram**: a `Histogram` (DELTA) per metric name, one data point per label set with the
//!   count, sum, min, max and bucket counts of the event's observations over
//!   [`SECONDS_BOUNDS`] (OpenTelemetry's upper-inclusive buckets).
//!
//! **Delta times.** A delta point covers `(start_time_unix_nano, time_unix_nano]`. The sink
//! writes the deltas of each series as one unbroken sequence, as the metrics data model defines
//! it ("Resets and Gaps": the start of each delta point is the time of the preceding one): the
//! first point of a series starts at the process start, each later one at the time of the
//! series' previous export, and every point's time is the time of its export (strictly
//! increasing, so `start < time` always). The event's own time is not the point's time: a
//! collector's `deltatocumulative` processor drops points whose start is older than the
//! series' start or whose time is not after the last one's ("ErrOlderStart", "ErrOutOfOrder"),
//! so event times of unordered records would lose counts. Exports that carry counters or
//! histograms are therefore sent one at a time per process, and a series' time advances only
//! when the collector accepted the export: a failed export is retried by the redelivery of its
//! event, in a point that starts where the last accepted one ended.
//!
//! Failures follow the OTLP/HTTP specification ([`crate::retry::otlp`]): only 429, 502, 503 and
//! 504 (and a call without answer) are retried, with the shared backoff and honouring
//! `Retry-After`; every other status is final. An error answer's body is a `google.rpc.Status`
//! (protobuf, as the request) whose `message` is reported. 401 and 403 are reported as
//! unauthorized ([`SinkError::unauthorized`]). A partial success (HTTP 200 with
//! `partial_success.rejected_data_points`) counts that many points as refused; it is never
//! retried ("The client MUST NOT retry the request when it receives a partial success
//! response", spec L586–611). Counter and histogram points whose value cannot be summed (not
//! finite, or a negative increment) are refused before sending.

mod request;

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;

pub use request::{DeltaTimes, Identity, kv, request, unix_nanos};

use chrono::{DateTime, Utc};

use super::aggregate::SeriesKey;
use super::instance::{Clock, Instance, system_clock};
use super::{Delivered, MetricSink, Point, PointKind, Rejection};
use crate::retry::{self, Policy as Retry, RetryDecision};
use crate::sink::SinkError;

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer (spec L615–636; the Collector's
/// `receiver/otlpreceiver/otlphttp.go` `writeError`). Only `code` and `message` are read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`; "may be omitted", clients should not act on it.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Human-readable text.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The message of an error answer: the `google.rpc.Status` message when the body is one
/// (protobuf or JSON), else the body's text.
fn error_text(content_type: &str, body: &[u8]) -> String {
    if content_type.starts_with("application/x-protobuf")
        && let Ok(s) = RpcStatus::decode(body)
        && !s.message.is_empty()
    {
        return s.message;
    }
    if content_type.starts_with("application/json")
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(m) = v["message"].as_str()
    {
        return m.to_string();
    }
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// The delta sequences of this process: when each series' last accepted export was, and the
/// last time handed out (times only grow, even if the clock steps back).
#[derive(Default)]
struct Sequences {
    last: HashMap<SeriesKey, u64>,
    now: u64,
}

/// The OTLP/HTTP sink (see the module documentation).
pub struct Otlp {
    http: reqwest::Client,
    /// e.g. `http://127.0.0.1:4318` (`/v1/metrics` is appended).
    endpoint: String,
    /// Extra headers (`OTEL_EXPORTER_OTLP_HEADERS`), e.g. an API key.
    headers: Vec<(String, String)>,
    identity: Identity,
    process_start: DateTime<Utc>,
    clock: Clock,
    retry: Retry,
    timeout: Duration,
    /// Held while an export with delta points is built and sent: one at a time per process.
    sequences: tokio::sync::Mutex<Sequences>,
}

impl Otlp {
    /// A sink posting to `{endpoint}/v1/metrics` with extra `headers`, resource attribute
    /// `service.name` = `service_name`, and `retry` as the backoff of one event's export; this
    /// process's [`Instance`] and the system clock.
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        headers: Vec<(String, String)>,
        service_name: &str,
        retry: Retry,
    ) -> Self {
        let instance = Instance::process();
        Otlp {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            headers,
            identity: Identity { service_name: service_name.to_string(), instance_id: instance.id.clone() },
            process_start: instance.started,
            clock: system_clock(),
            retry,
            timeout: Duration::from_secs(10),
            sequences: tokio::sync::Mutex::new(Sequences::default()),
        }
    }

    /// Another instance (id and start time) and clock (tests).
    pub fn with_instance(mut self, instance: &Instance, clock: Clock) -> Self {
        self.identity.instance_id = instance.id.clone();
        self.process_start = instance.started;
        self.clock = clock;
        self
    }

    /// What this sink says about itself in every request.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Posts `body` until it is accepted, refused for good or the deadline passes; a partial
    /// success counts as accepted (its refused points go into `out`).
    async fn send(&self, body: Vec<u8>, points: &[&Point], out: &mut Delivered) -> bool {
        let mut backoff = self.retry.start();
        loop {
            out.calls += 1;
            let mut req = self
                .http
                .post(format!("{}/v1/metrics", self.endpoint))
                .header("content-type", "application/x-protobuf")
                .timeout(self.timeout)
                .body(body.clone());
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            let (decision, failure) = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    // A partial success names how many points the backend dropped.
                    let bytes = resp.bytes().await.unwrap_or_default();
                    if let Ok(r) = ExportMetricsServiceResponse::decode(bytes.as_ref())
                        && let Some(p) = r.partial_success
                        && p.rejected_data_points > 0
                    {
                        let n = (p.rejected_data_points as usize).min(points.len());
                        out.rejected.extend(points.iter().take(n).map(|g| (g.name.clone(), Rejection::Refused)));
                        tracing::warn!(rejected = p.rejected_data_points, reason = %p.error_message, "OTLP collector rejected points");
                    }
                    return true;
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let decision = retry::otlp(status, retry::retry_after(resp.headers()));
                    let content_type = resp
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    let text = error_text(&content_type, &resp.bytes().await.unwrap_or_default());
                    let message = format!("OTLP collector answered {status}: {text}");
                    let error = match (status, decision) {
                        (401 | 403, _) => SinkError::unauthorized(status, message),
                        (_, RetryDecision::NonRetryable) => SinkError::refused(message).with_status(status),
                        _ => SinkError::unavailable(message).with_status(status),
                    };
                    (decision, error)
                }
                Err(e) => (
                    retry::transport(),
                    SinkError::unavailable(format!("request failed: {}", crate::error::transport(&e))).with_source(e),
                ),
            };
            if !backoff.wait(decision).await {
                let failure = if failure.is_unavailable() {
                    let message =
                        format!("OTLP collector still failing after {} calls: {}", out.calls, failure.message());
                    failure.with_message(message)
                } else {
                    failure
                };
                out.fail(points.iter().copied(), failure);
                return false;
            }
        }
    }
}

#[async_trait::async_trait]
impl MetricSink for Otlp {
    async fn emit(&self, points: &[Point]) -> Delivered {
        let mut out = Delivered::default();
        if points.is_empty() {
            return out;
        }
        let process_start = unix_nanos(self.process_start);
        if points.iter().all(|p| p.kind == PointKind::Gauge) {
            // no delta point: no sequence to keep, exports need not wait for each other
            let empty = HashMap::new();
            let times = DeltaTimes { now: 0, process_start, last: &empty };
            let (req, _, _) = request(points, &self.identity, times);
            let all: Vec<&Point> = points.iter().collect();
            self.send(req.encode_to_vec(), &all, &mut out).await;
            return out;
        }
        let mut seq = self.sequences.lock().await;
        // strictly after the previous export and after the process start
        let now = unix_nanos((self.clock)()).max(seq.now + 1).max(process_start + 1);
        let times = DeltaTimes { now, process_start, last: &seq.last };
        let (req, deltas, refused) = request(points, &self.identity, times);
        for p in &refused {
            tracing::warn!(metric = %p.name, value = p.value, "a counter or histogram point that cannot be summed is not sent");
            out.rejected.push((p.name.clone(), Rejection::Refused));
        }
        let sent: Vec<&Point> = points.iter().filter(|p| !refused.iter().any(|r| std::ptr::eq(*r, *p))).collect();
        if sent.is_empty() {
            return out;
        }
        if self.send(req.encode_to_vec(), &sent, &mut out).await {
            seq.now = now;
            for key in deltas {
                seq.last.insert(key, now);
            }
        }
        out
    }
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS` (`k1=v1,k2=v2`, values percent-encoded).
pub fn parse_headers(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("'{pair}' is not key=value"))?;
            let v = percent_encoding::percent_decode_str(v.trim()).decode_utf8().map_err(|e| e.to_string())?;
            Ok((k.trim().to_string(), v.into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
