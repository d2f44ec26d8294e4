//! A fake OTLP/HTTP collector: records every request and decodes its protobuf body.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{Recorded, serve};

#[derive(Clone, Default)]
/// A fake OTLP/HTTP collector on 127.0.0.1; clones share its state.
pub struct FakeCollector {
    /// base URL (the exporter's endpoint)
    pub url: String,
    /// every request, in order
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// HTTP statuses to answer the next calls with instead of processing them
    pub fail_next: Arc<Mutex<VecDeque<u16>>>,
}

async fn otlp_metrics(State(fake): State<FakeCollector>, headers: HeaderMap, body: Bytes) -> Response {
    fake.requests.lock().unwrap().push(Recorded {
        path: "/v1/metrics".into(),
        headers: headers.clone(),
        body: body.clone(),
    });
    if let Some(code) = fake.fail_next.lock().unwrap().pop_front() {
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-protobuf") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    use prost::Message;
    match opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(body.as_ref()) {
        Ok(_) => {
            let resp = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse {
                partial_success: None,
            };
            ([("content-type", "application/x-protobuf")], resp.encode_to_vec()).into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

impl FakeCollector {
    /// Serves a new collector on 127.0.0.1.
    pub async fn start() -> FakeCollector {
        let mut fake = FakeCollector::default();
        let app = Router::new().route("/v1/metrics", post(otlp_metrics)).with_state(fake.clone());
        fake.url = serve(app).await;
        fake
    }

    /// Every request body received so far, decoded.
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
