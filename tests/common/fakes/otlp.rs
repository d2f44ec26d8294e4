//! A fake OTLP/HTTP collector: records every request, decodes its protobuf body and answers
//! errors as the OpenTelemetry Collector's otlphttp receiver does. Every text names its public source (collected in tests/common/fakes/SOURCES.md, cited as
//! "texts §N"); where the real wording is not publicly known the text says so (`UNKNOWN
//! wording: …`) and the product must not depend on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{Recorded, serve};

/// `google.rpc.Status`, the body of the collector's error answers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The OpenTelemetry Collector's `otlpreceiver` on `/v1/metrics`, as its code answers
/// (`open-telemetry/opentelemetry-collector@934999f:receiver/otlpreceiver/otlphttp.go`, texts
/// §2.2).
#[derive(Clone, Default)]
pub struct FakeCollector {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Statuses to answer instead of processing the next requests, each with the body the
    /// collector sends for it.
    pub fail_next: Arc<Mutex<VecDeque<u16>>>,
    /// `Retry-After` seconds of the next failures (the collector sends it only when the
    /// downstream Status carries a RetryInfo detail, `otlphttp.go` L213–228).
    pub retry_after: Arc<Mutex<VecDeque<u64>>>,
}

/// The collector's error answer: a `google.rpc.Status` encoded like the request (protobuf
/// here), with the status the collector maps it to (`internal/errors/errors.go` L15–58).
fn collector_error(http: u16, code: i32, message: &str, retry_after: Option<u64>) -> Response {
    use prost::Message;
    let body = RpcStatus { code, message: message.to_string() }.encode_to_vec();
    let mut resp =
        (StatusCode::from_u16(http).unwrap(), [("content-type", "application/x-protobuf")], body).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    resp
}

/// What the collector sends for a scripted status.
fn collector_failure(http: u16, retry_after: Option<u64>) -> Response {
    match http {
        // memory_limiter's refusal (`internal/memorylimiter/memorylimiter.go` L35), 14 UNAVAILABLE
        503 => collector_error(503, 14, "data refused due to high memory usage", retry_after),
        // a downstream RESOURCE_EXHAUSTED Status; its message is the downstream's (UNKNOWN)
        429 => collector_error(429, 8, "UNKNOWN wording: the downstream's RESOURCE_EXHAUSTED message", retry_after),
        // a permanent downstream error without gRPC status (`otlp_test.go` L97–102)
        500 => collector_error(500, 13, "Permanent error: UNKNOWN wording of the downstream error", None),
        // bad data: the pdata decoder's error, e.g. io.ErrUnexpectedEOF
        400 => collector_error(400, 3, "unexpected EOF", None),
        // the auth extension's text is UNKNOWN
        401 => collector_error(401, 16, "UNKNOWN wording: the auth extension's error", None),
        403 => collector_error(403, 7, "UNKNOWN wording: a downstream PERMISSION_DENIED message", None),
        // The collector never sends 502/504 itself; a proxy in front of it would, with a body
        // that is UNKNOWN: status only.
        other => StatusCode::from_u16(other).unwrap().into_response(),
    }
}

const MAX_REQUEST_BODY: usize = 20 * 1024 * 1024;

async fn otlp_metrics(State(fake): State<FakeCollector>, headers: HeaderMap, body: Bytes) -> Response {
    fake.requests.lock().unwrap().push(Recorded {
        path: "/v1/metrics".into(),
        headers: headers.clone(),
        body: body.clone(),
    });
    if let Some(code) = fake.fail_next.lock().unwrap().pop_front() {
        let retry_after = fake.retry_after.lock().unwrap().pop_front();
        return collector_failure(code, retry_after);
    }
    // the media type is parsed: parameters and any case are accepted (`otlphttp.go` L153–168)
    let media = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    if media != "application/x-protobuf" && media != "application/json" {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [("content-type", "text/plain")],
            "415 unsupported media type, supported: [application/json, application/x-protobuf]",
        )
            .into_response();
    }
    if body.len() > MAX_REQUEST_BODY {
        // default max_request_body_size 20 MiB, answered 400, not 413 (`otlphttp.go` L170–181)
        return collector_error(400, 3, "http: request body too large", None);
    }
    if media == "application/json" {
        // this fake does not decode OTLP/JSON (the product sends protobuf)
        return ([("content-type", "application/json")], "{}").into_response();
    }
    use prost::Message;
    match opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(body.as_ref()) {
        Ok(_) => {
            // the receiver never sets partial_success (`internal/metrics/otlp.go` L33–55)
            let resp = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse {
                partial_success: None,
            };
            ([("content-type", "application/x-protobuf")], resp.encode_to_vec()).into_response()
        }
        // Status{code 3, message = the Go decoder's error}; prost's text differs from Go's
        Err(e) => collector_error(400, 3, &e.to_string(), None),
    }
}

async fn otlp_wrong_method() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [("content-type", "text/plain")], "405 method not allowed, supported: [POST]")
        .into_response()
}

impl FakeCollector {
    pub async fn start() -> FakeCollector {
        let mut fake = FakeCollector::default();
        let app = Router::new()
            .route("/v1/metrics", post(otlp_metrics).fallback(otlp_wrong_method))
            .layer(DefaultBodyLimit::disable())
            .with_state(fake.clone());
        fake.url = serve(app).await;
        fake
    }

    pub fn decoded(&self) -> Vec<opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest> {
        use prost::Message;
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(r.body.as_ref())
                    .unwrap()
            })
            .collect()
    }
}
