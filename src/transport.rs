//! HTTP transport: one axum `Router`, served by `axum::serve` (Cloud Run, local) and usable by
//! any other runtime that drives a tower service. It does not know which platform serves it.
//!
//! `POST /` (or a POST to any other path) takes one delivery; `GET /healthz` answers when the
//! process is ready. The HTTP status of a delivery follows [`crate::error::ack_status`].

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::bigquery::Warehouse;
use crate::dispatch::{Dispatcher, Report};
use crate::envelope::{self, Delivery};
use crate::error::{DecodeError, DecodeErrorKind, HandlerError, Outcome, SinkError, ack_status};
use crate::record;
use crate::sink::Delivered;
use crate::sink::MetricSink;

/// Everything a request needs, built once at startup.
pub struct App {
    pub dispatcher: Dispatcher,
    pub warehouse: Arc<dyn Warehouse>,
    pub sink: Arc<dyn MetricSink>,
    pub max_body_bytes: usize,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", post(ingest))
        // Any other path too: a push endpoint URL may carry one, API Gateway REST stages prefix
        // it, and lambda_http's pass_through turns non-HTTP invocations into POST /events.
        .route("/{*path}", post(ingest))
        .route("/healthz", get(healthz))
        .with_state(app)
}

async fn healthz(State(app): State<Arc<App>>) -> impl IntoResponse {
    axum::Json(json!({"status": "ok", "handlers": app.dispatcher.handlers().len()}))
}

fn error_body(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn decode_error_response(e: &DecodeError) -> Response {
    let status = ack_status(Outcome::Rejected(e.kind));
    let kind = match e.kind {
        DecodeErrorKind::Malformed => "malformed_event",
        DecodeErrorKind::UnsupportedMediaType => "unsupported_media_type",
        DecodeErrorKind::TooLarge => "payload_too_large",
    };
    error_body(status, json!({"error": kind, "class": "permanent", "message": e.message, "field": e.field}))
}

fn failure_json(handler: &str, e: &HandlerError) -> Value {
    json!({"handler": handler, "error": e.kind(), "class": e.class(), "message": e.to_string(), "field": e.field()})
}

/// The answer for a dispatched event: 204, or an error body whose headline is the first failure
/// of the class that decided the status, and which lists every failure.
fn report_response(report: &Report, sink: &Result<Delivered, SinkError>) -> Response {
    if let Err(e) = sink {
        let status = ack_status(Outcome::SinkFailed(e.class));
        return error_body(status, json!({"error": "metric_sink_failed", "class": e.class, "message": e.message}));
    }
    let outcome = report.outcome();
    let status = ack_status(outcome);
    if outcome == Outcome::Done {
        return StatusCode::NO_CONTENT.into_response();
    }
    let deciding = match outcome {
        Outcome::HandlersFailed { transient: true } => crate::error::ErrorClass::Transient,
        _ => crate::error::ErrorClass::Permanent,
    };
    let failures: Vec<Value> = report.failures().map(|(h, e)| failure_json(h, e)).collect();
    let (handler, first) =
        report.failures().find(|(_, e)| e.class() == deciding).expect("a failure of the deciding class");
    let mut body = failure_json(handler, first);
    body["failures"] = Value::Array(failures);
    error_body(status, body)
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, DecodeError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| DecodeError {
        kind: DecodeErrorKind::TooLarge,
        field: None,
        message: format!("request body larger than {limit} bytes"),
    })
}

async fn ingest(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let body = match read_body(body, app.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return rejected(&e, None),
    };
    let delivery = match envelope::decode(&headers, &body) {
        Ok(d) => d,
        Err(e) => return rejected(&e, None),
    };
    let event = match record::decode(&delivery.record) {
        Ok(ev) => ev,
        Err(e) => return rejected(&e, Some(&delivery)),
    };
    let report = app.dispatcher.dispatch(&event, app.warehouse.as_ref()).await;
    let sink = app.sink.emit(&report.points).await;
    let response = report_response(&report, &sink);
    log_event(&delivery, &event, &report, &sink, response.status(), started);
    response
}

fn rejected(e: &DecodeError, delivery: Option<&Delivery>) -> Response {
    let response = decode_error_response(e);
    tracing::warn!(
        status = response.status().as_u16(),
        error = ?e.kind,
        field = e.field.as_deref().unwrap_or(""),
        reason = %e.message,
        format = delivery.map(|d| d.format.as_str()).unwrap_or("unknown"),
        message_id = delivery.and_then(|d| d.meta.message_id.as_deref()).unwrap_or(""),
        "event rejected"
    );
    response
}

/// One structured line per event. Never includes payload variables.
fn log_event(
    delivery: &Delivery,
    event: &record::ChangeEvent,
    report: &Report,
    sink: &Result<Delivered, SinkError>,
    status: StatusCode,
    started: Instant,
) {
    let failures: Vec<String> =
        report.failures().map(|(h, e)| format!("{h}: {} ({})", e, e.class().as_str())).collect();
    let handlers: Vec<&str> = report.results.iter().map(|r| r.handler.as_str()).collect();
    let (sink_calls, rejected) = match sink {
        Ok(d) => {
            (d.calls, d.rejected.iter().map(|(m, r)| format!("{m}: {}", r.as_str())).collect::<Vec<_>>().join("; "))
        }
        Err(_) => (0, String::new()),
    };
    let payload = event.payload.as_ref();
    macro_rules! emit {
        ($level:ident, $msg:expr) => {
            tracing::$level!(
                status = status.as_u16(),
                format = delivery.format.as_str(),
                message_id = delivery.meta.message_id.as_deref().unwrap_or(""),
                ce_id = delivery.meta.ce_id.as_deref().unwrap_or(""),
                delivery_attempt = delivery.meta.delivery_attempt.unwrap_or(0),
                datastream_uuid = event.uuid.as_deref().unwrap_or(""),
                pipeline_uuid = payload.and_then(|p| p.pipeline_uuid.as_deref()).unwrap_or(""),
                pipeline_status = payload.and_then(|p| p.status.as_deref()).unwrap_or(""),
                handlers = handlers.join(","),
                points = report.points.len(),
                tables_checked = report.tables_checked,
                queries = report.queries_run,
                failures = failures.join("; "),
                sink_error = sink.as_ref().err().map(|e| e.message.as_str()).unwrap_or(""),
                sink_calls = sink_calls,
                points_rejected = rejected.as_str(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                $msg
            )
        };
    }
    if status.is_success() {
        if handlers.is_empty() {
            emit!(info, "no handler matched the event");
        } else {
            emit!(info, "event processed");
        }
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        emit!(warn, "event failed, retry expected");
    } else {
        emit!(warn, "event failed permanently");
    }
}
