//! HTTP ingress: one axum `Router`, served by `axum::serve` (Cloud Run, local) or by lambda_http
//! (AWS Lambda Function URLs, API Gateway, ALB). It does not know which platform serves it.
//!
//! `POST /` (or a POST to any other path) takes one delivery; `GET /healthz` answers when the
//! process is ready; another method is 405 on a served path, 404 elsewhere (JSON bodies). Per
//! delivery the HTTP layer only authenticates (401), refuses a content coding other than
//! `identity` or `gzip` (415), reads the body (413 past `MAX_BODY_BYTES`, 408 past
//! `BODY_READ_TIMEOUT_SECS`, 429 when the bodies in memory would pass `BODY_BUFFER_BYTES`),
//! admits (429 past `MAX_IN_FLIGHT`), decompresses and decodes it (400/413/415), hands the
//! [`Delivery`] to the [`Pipeline`] and turns its [`Answer`] into a response.
//!
//! The body is read before an in-flight slot is taken, so that clients that send their bodies
//! slowly (or never) hold no slot: they are bounded by the body-read timeout, and the memory
//! their bodies take by the body buffer, which counts the bytes actually allocated.
//!
//! [`Delivery`]: crate::decode::Delivery

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::auth::PushVerifier;
use crate::decode::{self, DecodeError, Decoded};
use crate::handlers::Dispatcher;
use crate::pipeline::{Answer, Pipeline, Refusal};
use crate::sink::MetricSink;
use crate::warehouse::Warehouse;

mod request_body;

/// How deliveries are accepted and answered.
pub struct Options {
    pub max_body_bytes: usize,
    /// Acknowledgement, deadline, de-duplication, admission and self-metrics settings.
    pub delivery: crate::pipeline::config::Delivery,
    /// Verifies push OIDC tokens when set (built from the ingress's `auth` settings).
    pub verifier: Option<Arc<PushVerifier>>,
    /// The lifecycle profiles in force and the fact store (none: no lifecycle metrics).
    pub lifecycle: Option<crate::pipeline::LifecycleParts>,
    /// Reads the Datastream files that Cloud Storage notifications announce.
    pub storage: Option<Arc<crate::google::storage::Storage>>,
    /// The API key OpenLineage emitters must send (`Authorization: Bearer <key>`) on
    /// `/api/v1/lineage` (`OPENLINEAGE_API_KEY`). Without one the endpoint is open, unless push
    /// authentication is on: then it is closed (401) until a key is set.
    pub lineage_api_key: Option<crate::vars::Secret>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_body_bytes: super::config::DEFAULT_MAX_BODY_BYTES,
            delivery: crate::pipeline::config::Delivery::default(),
            verifier: None,
            lifecycle: None,
            storage: None,
            lineage_api_key: None,
        }
    }
}

/// The HTTP ingress state: the pipeline, and what the HTTP layer itself checks.
pub struct App {
    pub pipeline: Pipeline,
    max_body_bytes: usize,
    verifier: Option<Arc<PushVerifier>>,
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    max_in_flight: usize,
    lineage_api_key: Option<crate::vars::Secret>,
    body_read_timeout: std::time::Duration,
    /// One permit per byte of request body held in memory (`BODY_BUFFER_BYTES`).
    body_buffer: Arc<tokio::sync::Semaphore>,
    body_buffer_bytes: usize,
}

impl App {
    pub fn new(
        dispatcher: Dispatcher,
        warehouse: Arc<dyn Warehouse>,
        sink: Arc<dyn MetricSink>,
        options: Options,
    ) -> App {
        let max_in_flight = options.delivery.max_in_flight;
        let in_flight = (max_in_flight > 0).then(|| Arc::new(tokio::sync::Semaphore::new(max_in_flight)));
        let body_buffer_bytes =
            options.delivery.body_buffer_bytes.clamp(options.max_body_bytes, tokio::sync::Semaphore::MAX_PERMITS);
        App {
            body_read_timeout: options.delivery.body_read_timeout,
            body_buffer: Arc::new(tokio::sync::Semaphore::new(body_buffer_bytes)),
            body_buffer_bytes,
            pipeline: Pipeline::new(dispatcher, warehouse, sink, options.delivery)
                .with_lifecycle(options.lifecycle)
                .with_storage(options.storage),
            max_body_bytes: options.max_body_bytes,
            verifier: options.verifier,
            in_flight,
            max_in_flight,
            lineage_api_key: options.lineage_api_key,
        }
    }

    /// Records seen by this instance, by (delivery format, outcome): `ok`, `permanent`,
    /// `transient`, `rejected`, `duplicate`, `unauthorized`, `overloaded`, `deadline_exceeded`.
    pub fn event_counts(&self) -> std::collections::BTreeMap<(String, String), u64> {
        self.pipeline.stats().event_counts()
    }
}

/// The routes: `POST /` (and a POST to any other path), `GET /`, `POST /api/v1/lineage`,
/// `GET /healthz`. Anything else gets a JSON error body: 405 (with `Allow`) for a method a
/// served path does not take, 404 for another method on any other path.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", post(ingest).get(index))
        // OpenLineage's HTTP transport posts run events here by default.
        .route("/api/v1/lineage", post(lineage))
        // Any other path too: a push endpoint URL may carry one, API Gateway REST stages prefix
        // it, and lambda_http's pass_through turns non-HTTP invocations into POST /events. Only
        // for POST: `GET /nope` is an unknown path, not a method `/nope` refuses.
        .route("/{*path}", post(ingest).fallback(not_found))
        .route("/healthz", get(healthz))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(app)
}

async fn not_found(State(app): State<Arc<App>>, method: Method, uri: Uri) -> Response {
    response(app.pipeline.refuse(&Refusal::NoRoute { method: method.to_string(), path: uri.path().to_string() }))
}

async fn method_not_allowed(State(app): State<Arc<App>>, method: Method, uri: Uri) -> Response {
    // as the routes above declare them (axum's `Allow` header says the same)
    let allowed = match uri.path() {
        "/" => "GET, HEAD, POST",
        "/healthz" => "GET, HEAD",
        _ => "POST",
    };
    let refusal = Refusal::MethodNotAllowed { method: method.to_string(), path: uri.path().to_string(), allowed };
    response(app.pipeline.refuse(&refusal))
}

/// `GET /`: what a person (a browser, curl) finds at the service's URL. 200 and JSON, as
/// `/healthz`: the request is not an error (a 405 would read as a broken deployment), and the
/// body says where deliveries go and where readiness is answered.
async fn index() -> impl IntoResponse {
    axum::Json(json!({
        "service": "pipeline-run-metrics",
        "message": "POST change records (Pub/Sub push, CloudEvents, Debezium, DMS, OpenLineage at /api/v1/lineage) to /; GET /healthz for readiness",
        "deliveries": "POST /",
        "health": "GET /healthz",
    }))
}

async fn healthz(State(app): State<Arc<App>>) -> impl IntoResponse {
    axum::Json(json!({"status": "ok", "handlers": app.pipeline.dispatcher.handlers().len()}))
}

/// The HTTP response of an [`Answer`]: its status, and its JSON body when it has one.
pub fn response(answer: Answer) -> Response {
    if answer.body.is_empty() {
        return answer.status.into_response();
    }
    (answer.status, [(header::CONTENT_TYPE, "application/json")], answer.body).into_response()
}

/// Whether the request carries the OpenLineage API key (compared in constant time).
fn lineage_authorized(app: &App, headers: &HeaderMap) -> Result<(), String> {
    let Some(key) = &app.lineage_api_key else {
        return match &app.verifier {
            None => Ok(()),
            Some(_) => Err("push authentication is on: set OPENLINEAGE_API_KEY to accept OpenLineage events".into()),
        };
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    use subtle::ConstantTimeEq;
    if bool::from(sent.as_bytes().ct_eq(key.expose().as_bytes())) {
        Ok(())
    } else {
        Err("missing or wrong API key (Authorization: Bearer <OPENLINEAGE_API_KEY>)".into())
    }
}

impl App {
    /// An in-flight slot (`MAX_IN_FLIGHT`; none when unlimited), or the refusal (429).
    fn admit(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, Refusal> {
        match &self.in_flight {
            None => Ok(None),
            Some(sem) => {
                sem.clone().try_acquire_owned().map(Some).map_err(|_| Refusal::Overloaded { limit: self.max_in_flight })
            }
        }
    }
}

/// The answer to a request refused because of its content coding: 415 with the codings the
/// function accepts (`Accept-Encoding`, RFC 9110 §12.5.3).
fn refuse_coding(pipeline: &Pipeline, e: DecodeError) -> Response {
    let mut r = response(pipeline.refuse(&Refusal::Undecodable(e)));
    r.headers_mut().insert(header::ACCEPT_ENCODING, HeaderValue::from_static(request_body::ACCEPTED_ENCODINGS));
    r
}

async fn lineage(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let pipeline = &app.pipeline;
    if let Err(reason) = lineage_authorized(&app, &headers) {
        return response(pipeline.refuse(&Refusal::Unauthorized(reason)));
    }
    // what the headers alone refuse, before the body is read
    if let Err(e) = request_body::lineage_content_type(&headers) {
        return response(pipeline.refuse(&Refusal::Undecodable(e)));
    }
    let gzip = match request_body::content_coding(&headers) {
        Ok(gzip) => gzip,
        Err(e) => return refuse_coding(pipeline, e),
    };
    // as on `POST /`: the body first (bounded in time and memory), then a slot
    let read = match app.read_body(&headers, body).await {
        Ok(b) => b,
        Err(refusal) => return response(pipeline.refuse(&refusal)),
    };
    let _permit = match app.admit() {
        Ok(p) => p,
        Err(refusal) => return response(pipeline.refuse(&refusal)),
    };
    let body = match request_body::decompressed(gzip, read.bytes.clone(), app.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return response(pipeline.refuse(&Refusal::Undecodable(e))),
    };
    drop(read);
    let value: serde_json::Value = match serde_json::from_slice(decode::without_bom(&body)) {
        Ok(v) => v,
        Err(e) => {
            let e = DecodeError::malformed(decode::BODY.to_string(), format!("an OpenLineage event must be JSON: {e}"));
            return response(pipeline.refuse(&Refusal::Undecodable(e)));
        }
    };
    let record = match decode::openlineage::decode(value) {
        Ok(None) => return response(pipeline.refuse(&Refusal::Ignored("an OpenLineage event without a run".into()))),
        Ok(Some(event)) => Ok(event),
        Err(e) => Err(e),
    };
    let delivery = decode::Delivery {
        format: decode::DeliveryFormat::OpenLineage,
        meta: decode::DeliveryMeta::default(),
        records: vec![decode::RecordInput { item: None, record }],
    };
    response(pipeline.handle(delivery).await)
}

async fn ingest(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let pipeline = &app.pipeline;
    if let Some(verifier) = &app.verifier {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Err(e) = verifier.verify(authorization).await {
            return response(pipeline.refuse(&Refusal::Unauthorized(e.to_string())));
        }
    }
    let gzip = match request_body::content_coding(&headers) {
        Ok(gzip) => gzip,
        Err(e) => return refuse_coding(pipeline, e),
    };
    // The body first: a slow client must not hold an in-flight slot while it sends.
    let read = match app.read_body(&headers, body).await {
        Ok(b) => b,
        Err(refusal) => return response(pipeline.refuse(&refusal)),
    };
    let _permit = match app.admit() {
        Ok(p) => p,
        Err(refusal) => return response(pipeline.refuse(&refusal)),
    };
    let body = match request_body::decompressed(gzip, read.bytes.clone(), app.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return response(pipeline.refuse(&Refusal::Undecodable(e))),
    };
    // `read` holds its part of the body buffer until the body is decoded (`body` may share it)
    let delivery = match decode::decode(&headers, &body) {
        Ok(Decoded::Records(d)) => d,
        Ok(Decoded::Object { format, meta, object }) => {
            // Recognised on every route (Pub/Sub bucket notification, Eventarc CloudEvent).
            drop((body, read));
            return response(pipeline.handle_object(format, meta, object).await);
        }
        Err(e) => return response(pipeline.refuse(&Refusal::Undecodable(e))),
    };
    drop((body, read));
    let answer = pipeline.handle(delivery).await;
    debug_assert!(answer.status != StatusCode::OK || pipeline.config.ack_permanent || answer.body.is_empty());
    response(answer)
}
