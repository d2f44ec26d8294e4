//! OTLP/HTTP sink: one `ExportMetricsServiceRequest` (protobuf) per event, POSTed to
//! `{endpoint}/v1/metrics` before the answer is returned. Built from `opentelemetry-proto`
//! messages directly, because the OpenTelemetry SDK cannot set a point's time (stack.md §9.3).
//! Each point is a `Point` data point with `time_unix_nano` = the event's time; metric names and
//! label keys are the same as in Cloud Monitoring.
//!
//! Failures follow the OTLP/HTTP specification ([`crate::retry::otlp`]): only 429, 502, 503 and
//! 504 (and a call without answer) are retried, with the shared backoff and honouring
//! `Retry-After`; every other status is final. An error answer's body is a `google.rpc.Status`
//! (protobuf, as the request) whose `message` is reported. 401 and 403 are reported as
//! unauthorized ([`SinkError::unauthorized`]). A partial success (HTTP 200 with
//! `partial_success.rejected_data_points`) counts that many points as refused; it is never
//! retried ("The client MUST NOT retry the request when it receives a partial success
//! response", spec L586–611).

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::{Delivered, MetricSink, Point, Rejection};
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

/// The OTLP/HTTP sink (see the module documentation).
pub struct Otlp {
    http: reqwest::Client,
    /// e.g. `http://127.0.0.1:4318` (`/v1/metrics` is appended).
    endpoint: String,
    /// Extra headers (`OTEL_EXPORTER_OTLP_HEADERS`), e.g. an API key.
    headers: Vec<(String, String)>,
    service_name: String,
    retry: Retry,
    timeout: Duration,
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

impl Otlp {
    /// A sink posting to `{endpoint}/v1/metrics` with extra `headers`, resource attribute
    /// `service.name` = `service_name`, and `retry` as the backoff of one event's export.
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        headers: Vec<(String, String)>,
        service_name: &str,
        retry: Retry,
    ) -> Self {
        Otlp {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            headers,
            service_name: service_name.to_string(),
            retry,
            timeout: Duration::from_secs(10),
        }
    }

    /// The export request for one event's points: one resource per metric project.
    pub fn request(&self, points: &[Point]) -> ExportMetricsServiceRequest {
        let mut projects: Vec<&str> = points.iter().map(|g| g.project.as_str()).collect();
        projects.dedup();
        projects.sort_unstable();
        projects.dedup();
        let resource_metrics = projects
            .into_iter()
            .map(|project| {
                let metrics = points
                    .iter()
                    .filter(|g| g.project == project)
                    .map(|g| Metric {
                        name: g.name.clone(),
                        data: Some(metric::Data::Gauge(opentelemetry_proto::tonic::metrics::v1::Gauge {
                            data_points: vec![NumberDataPoint {
                                attributes: g.labels.iter().map(|(k, v)| kv(k, v)).collect(),
                                time_unix_nano: g.time.timestamp_nanos_opt().unwrap_or(0).max(0) as u64,
                                value: Some(number_data_point::Value::AsDouble(g.value)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    })
                    .collect();
                ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", &self.service_name), kv("gcp.project_id", project)],
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "pipeline-run-metrics".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            ..Default::default()
                        }),
                        metrics,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect();
        ExportMetricsServiceRequest { resource_metrics }
    }
}

#[async_trait::async_trait]
impl MetricSink for Otlp {
    async fn emit(&self, points: &[Point]) -> Delivered {
        let mut out = Delivered::default();
        if points.is_empty() {
            return out;
        }
        let body = self.request(points).encode_to_vec();
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
                    return out;
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
                Err(e) => (retry::transport(), SinkError::unavailable(format!("request failed: {e}")).with_source(e)),
            };
            if !backoff.wait(decision).await {
                let failure = if failure.is_unavailable() {
                    let message =
                        format!("OTLP collector still failing after {} calls: {}", out.calls, failure.message());
                    failure.with_message(message)
                } else {
                    failure
                };
                out.fail(points, failure);
                return out;
            }
        }
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
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn request_carries_explicit_times_and_labels() {
        let sink = Otlp::new(reqwest::Client::new(), "http://x", vec![], "svc", Retry::default());
        let g = Point::gauge(
            "claims/pipeline/filtered_pre/vl_pago/total",
            1500.0,
            chrono::Utc.timestamp_opt(1_767_323_045, 123_000_000).unwrap(),
            [("partner".to_string(), "abertta".to_string())].into_iter().collect(),
            "p",
        );
        let req = sink.request(&[g]);
        let rm = &req.resource_metrics[0];
        assert_eq!(rm.resource.as_ref().unwrap().attributes[0], kv("service.name", "svc"));
        let m = &rm.scope_metrics[0].metrics[0];
        assert_eq!(m.name, "claims/pipeline/filtered_pre/vl_pago/total");
        let Some(metric::Data::Gauge(gauge)) = &m.data else { panic!("gauge") };
        assert_eq!(gauge.data_points[0].time_unix_nano, 1_767_323_045_123_000_000);
        assert_eq!(gauge.data_points[0].value, Some(number_data_point::Value::AsDouble(1500.0)));
        assert_eq!(gauge.data_points[0].attributes, vec![kv("partner", "abertta")]);
    }

    #[test]
    fn headers_parse() {
        assert_eq!(
            parse_headers("api-key=a%20b, x=1").unwrap(),
            vec![("api-key".to_string(), "a b".to_string()), ("x".to_string(), "1".to_string())]
        );
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("").unwrap().is_empty());
    }
}
