//! HTTP ingress: one axum `Router`, served by `axum::serve` (Cloud Run, local) or by lambda_http
//! (AWS Lambda Function URLs, API Gateway, ALB). It does not know which platform serves it.
//!
//! `POST /` (or a POST to any other path) takes one delivery; `GET /healthz` answers when the
//! process is ready. Per delivery the HTTP layer only authenticates (401), reads the body (413
//! past `MAX_BODY_BYTES`, 408 past `BODY_READ_TIMEOUT_SECS`, 429 when the bodies in memory would
//! pass `BODY_BUFFER_BYTES`), admits (429 past `MAX_IN_FLIGHT`), decodes it (400/415), hands the
//! [`Delivery`] to the [`Pipeline`] and turns its [`Answer`] into a response.
//!
//! The body is read before an in-flight slot is taken, so that clients that send their bodies
//! slowly (or never) hold no slot: they are bounded by the body-read timeout, and the memory
//! their bodies take by the body buffer, which counts the bytes actually allocated.
//!
//! [`Delivery`]: crate::decode::Delivery

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::auth::PushVerifier;
use crate::decode::{self, DecodeError, DecodeErrorKind, Decoded};
use crate::handlers::Dispatcher;
use crate::pipeline::{Answer, Pipeline, Refusal};
use crate::sink::MetricSink;
use crate::warehouse::Warehouse;

/// How deliveries are accepted and answered.
pub struct Options {
    pub max_body_bytes: usize,
    /// Acknowledgement, deadline, de-duplication, admission and self-metrics settings.
    pub delivery: crate::config::Delivery,
    /// Verifies push OIDC tokens when set (built from `delivery.auth`).
    pub verifier: Option<Arc<PushVerifier>>,
    /// The lifecycle profiles in force and the fact store (none: no lifecycle metrics).
    pub lifecycle: Option<crate::pipeline::LifecycleParts>,
    /// Reads the Datastream files that Cloud Storage notifications announce.
    pub storage: Option<Arc<crate::google::storage::Storage>>,
    /// The API key OpenLineage emitters must send (`Authorization: Bearer <key>`) on
    /// `/api/v1/lineage` (`OPENLINEAGE_API_KEY`). Without one the endpoint is open, unless push
    /// authentication is on: then it is closed (401) until a key is set.
    pub lineage_api_key: Option<crate::config::Secret>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
            delivery: crate::config::Delivery::default(),
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
    lineage_api_key: Option<crate::config::Secret>,
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

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", post(ingest).get(index))
        // OpenLineage's HTTP transport posts run events here by default.
        .route("/api/v1/lineage", post(lineage))
        // Any other path too: a push endpoint URL may carry one, API Gateway REST stages prefix
        // it, and lambda_http's pass_through turns non-HTTP invocations into POST /events.
        .route("/{*path}", post(ingest))
        .route("/healthz", get(healthz))
        .with_state(app)
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

/// A request body read into memory, with the part of the body buffer its allocation holds.
struct ReadBody {
    bytes: Bytes,
    _held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl App {
    /// Reads the body within `BODY_READ_TIMEOUT_SECS`, at most `MAX_BODY_BYTES`, holding one
    /// permit of the body buffer per byte allocated for it (the buffer grows by doubling, so
    /// that a client that announces a large body but sends little holds little).
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<ReadBody, Refusal> {
        let limit = self.max_body_bytes;
        let too_large = || {
            Refusal::Undecodable(DecodeError {
                kind: DecodeErrorKind::TooLarge,
                field: None,
                message: format!("request body larger than {limit} bytes"),
            })
        };
        let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let read = async {
            use futures_util::StreamExt;
            let mut stream = body.into_data_stream();
            let mut buf: Vec<u8> = Vec::new();
            let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|_| {
                    Refusal::Undecodable(DecodeError::malformed(None, "the request body could not be read"))
                })?;
                let needed = buf.len() + chunk.len();
                if needed > limit {
                    return Err(too_large());
                }
                if needed > buf.capacity() {
                    let target = needed.max(buf.capacity() * 2).max(16 * 1024).min(limit);
                    let more = u32::try_from(target - buf.capacity()).map_err(|_| too_large())?;
                    let permit = self
                        .body_buffer
                        .clone()
                        .try_acquire_many_owned(more)
                        .map_err(|_| Refusal::BodiesBuffered { limit: self.body_buffer_bytes })?;
                    match held.as_mut() {
                        Some(h) => h.merge(permit),
                        None => held = Some(permit),
                    }
                    buf.reserve_exact(target - buf.len());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(ReadBody { bytes: Bytes::from(buf), _held: held })
        };
        match tokio::time::timeout(self.body_read_timeout, read).await {
            Ok(read) => read,
            Err(_) => Err(Refusal::BodyTimeout { timeout_secs: self.body_read_timeout.as_secs_f64() }),
        }
    }
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
    if bool::from(sent.as_bytes().ct_eq(key.0.as_bytes())) {
        Ok(())
    } else {
        Err("missing or wrong API key (Authorization: Bearer <OPENLINEAGE_API_KEY>)".into())
    }
}

/// The body, gunzipped when the emitter compressed it (`Content-Encoding: gzip`, the transport's
/// `compression: gzip`), at most `limit` bytes either way.
async fn gunzip_lineage(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(raw);
    }
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let decoder = async_compression::tokio::bufread::GzipDecoder::new(&raw[..]);
    let read = decoder.take(limit as u64 + 1).read_to_end(&mut out).await;
    match read {
        Err(e) => Err(DecodeError::malformed(None, format!("the body is not valid gzip: {e}"))),
        Ok(_) if out.len() > limit => Err(DecodeError {
            kind: DecodeErrorKind::TooLarge,
            field: None,
            message: format!("request body larger than {limit} bytes once decompressed"),
        }),
        Ok(_) => Ok(Bytes::from(out)),
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

async fn lineage(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let pipeline = &app.pipeline;
    if let Err(reason) = lineage_authorized(&app, &headers) {
        return response(pipeline.refuse(&Refusal::Unauthorized(reason)));
    }
    // as on `POST /`: the body first (bounded in time and memory), then a slot
    let read = match app.read_body(&headers, body).await {
        Ok(b) => b,
        Err(refusal) => return response(pipeline.refuse(&refusal)),
    };
    let _permit = match app.admit() {
        Ok(p) => p,
        Err(refusal) => return response(pipeline.refuse(&refusal)),
    };
    let body = match gunzip_lineage(&headers, read.bytes.clone(), app.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return response(pipeline.refuse(&Refusal::Undecodable(e))),
    };
    drop(read);
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let e = DecodeError::malformed(None, format!("an OpenLineage event must be JSON: {e}"));
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
    // The body first: a slow client must not hold an in-flight slot while it sends.
    let body = match app.read_body(&headers, body).await {
        Ok(b) => b,
        Err(refusal) => return response(pipeline.refuse(&refusal)),
    };
    let _permit = match app.admit() {
        Ok(p) => p,
        Err(refusal) => return response(pipeline.refuse(&refusal)),
    };
    let delivery = match decode::decode(&headers, &body.bytes) {
        Ok(Decoded::Records(d)) => d,
        Ok(Decoded::Object { format, meta, object }) => {
            // Recognised on every route (Pub/Sub bucket notification, Eventarc CloudEvent).
            drop(body);
            return response(pipeline.handle_object(format, meta, object).await);
        }
        Err(e) => return response(pipeline.refuse(&Refusal::Undecodable(e))),
    };
    drop(body);
    let answer = pipeline.handle(delivery).await;
    debug_assert!(answer.status != StatusCode::OK || pipeline.config.ack_permanent || answer.body.is_empty());
    response(answer)
}
