//! HTTP transport: one axum `Router`, served by `axum::serve` (Cloud Run, local) or by
//! lambda_http (AWS Lambda). It does not know which platform serves it.
//!
//! `POST /` (or a POST to any other path) takes one delivery; `GET /healthz` answers when the
//! process is ready. Per delivery: authenticate (401), admit (429 past `MAX_IN_FLIGHT`), read
//! the body (413), decode it (400/415), de-duplicate, then dispatch and write the points within
//! the event deadline (503 past it). The HTTP status follows [`crate::error::ack_status`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::auth::PushVerifier;
use crate::bigquery::Warehouse;
use crate::dedup::{Answer, Begin, Dedup};
use crate::dispatch::{Dispatcher, Report};
use crate::envelope::{self, Delivery};
use crate::error::{DecodeError, DecodeErrorKind, ErrorClass, HandlerError, Outcome, SinkError, ack_status};
use crate::record::{self, ChangeEvent};
use crate::sink::{Delivered, Gauge, MetricSink};

/// How deliveries are accepted and answered.
pub struct Options {
    pub max_body_bytes: usize,
    /// Acknowledgement, deadline, de-duplication, admission and self-metrics settings.
    pub delivery: crate::config::Delivery,
    /// Verifies push OIDC tokens when set (built from `delivery.auth`).
    pub verifier: Option<Arc<PushVerifier>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
            delivery: crate::config::Delivery::default(),
            verifier: None,
        }
    }
}

/// Everything a request needs, built once at startup.
pub struct App {
    pub dispatcher: Dispatcher,
    pub warehouse: Arc<dyn Warehouse>,
    pub sink: Arc<dyn MetricSink>,
    pub options: Options,
    dedup: Arc<Dedup>,
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    stats: Mutex<SelfStats>,
}

impl App {
    /// Events seen by this instance, by (delivery format, outcome): `ok`, `permanent`,
    /// `transient`, `rejected`, `duplicate`, `unauthorized`, `overloaded`, `deadline_exceeded`.
    pub fn event_counts(&self) -> BTreeMap<(String, String), u64> {
        self.stats.lock().map(|s| s.events.clone()).unwrap_or_default()
    }

    pub fn new(
        dispatcher: Dispatcher,
        warehouse: Arc<dyn Warehouse>,
        sink: Arc<dyn MetricSink>,
        options: Options,
    ) -> App {
        let dedup = Dedup::new(options.delivery.dedup_window, options.delivery.dedup_capacity);
        let in_flight = (options.delivery.max_in_flight > 0)
            .then(|| Arc::new(tokio::sync::Semaphore::new(options.delivery.max_in_flight)));
        App { dispatcher, warehouse, sink, options, dedup, in_flight, stats: Mutex::new(SelfStats::new()) }
    }
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

fn json_response(status: StatusCode, body: &Value) -> (StatusCode, Bytes) {
    (status, Bytes::from(serde_json::to_vec(body).unwrap_or_default()))
}

fn into_response((status, body): (StatusCode, Bytes)) -> Response {
    if body.is_empty() {
        return status.into_response();
    }
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn failure_json(handler: &str, e: &HandlerError) -> Value {
    json!({"handler": handler, "error": e.kind(), "class": e.class(), "message": e.to_string(), "field": e.field()})
}

/// The outcome of a dispatched event, and its answer: 204, or an error body whose headline is
/// the first failure of the class that decided the status, and which lists every failure.
fn report_answer(
    report: &Report,
    sink: &Result<Delivered, SinkError>,
    ack_permanent: bool,
) -> (Outcome, StatusCode, Bytes) {
    if let Err(e) = sink {
        let outcome = Outcome::SinkFailed(e.class);
        let (status, body) = json_response(
            ack_status(outcome, ack_permanent),
            &json!({"error": "metric_sink_failed", "class": e.class, "message": e.message}),
        );
        return (outcome, status, body);
    }
    let outcome = report.outcome();
    let status = ack_status(outcome, ack_permanent);
    if outcome == Outcome::Done {
        return (outcome, status, Bytes::new());
    }
    let deciding = match outcome {
        Outcome::HandlersFailed { transient: true } => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    };
    let failures: Vec<Value> = report.failures().map(|(h, e)| failure_json(h, e)).collect();
    let (handler, first) =
        report.failures().find(|(_, e)| e.class() == deciding).expect("a failure of the deciding class");
    let mut body = failure_json(handler, first);
    body["failures"] = Value::Array(failures);
    let (status, body) = json_response(status, &body);
    (outcome, status, body)
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, DecodeError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| DecodeError {
        kind: DecodeErrorKind::TooLarge,
        field: None,
        message: format!("request body larger than {limit} bytes"),
    })
}

/// One key per event for de-duplication: the Datastream uuid, else the message id, else the
/// CloudEvent source + id.
fn dedup_key(delivery: &Delivery, event: &ChangeEvent) -> Option<String> {
    if let Some(u) = event.uuid.as_deref().filter(|u| !u.is_empty()) {
        return Some(format!("uuid:{u}"));
    }
    if let Some(m) = delivery.meta.message_id.as_deref().filter(|m| !m.is_empty()) {
        return Some(format!("msg:{}:{m}", delivery.meta.subscription.as_deref().unwrap_or("")));
    }
    match (&delivery.meta.ce_source, &delivery.meta.ce_id) {
        (Some(s), Some(i)) => Some(format!("ce:{s}:{i}")),
        _ => None,
    }
}

async fn ingest(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    if let Some(verifier) = &app.options.verifier {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Err(e) = verifier.verify(authorization).await {
            tracing::warn!(status = 401, reason = %e, "push not authenticated");
            app.stats.lock().expect("stats").count("unauthorized", "none");
            let status = ack_status(Outcome::Unauthorized, app.options.delivery.ack_permanent);
            return into_response(json_response(status, &json!({"error": "unauthorized", "message": e.0})));
        }
    }
    let _permit = match &app.in_flight {
        None => None,
        Some(sem) => match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                tracing::warn!(status = 429, limit = app.options.delivery.max_in_flight, "too many events in flight");
                app.stats.lock().expect("stats").count("overloaded", "none");
                let status = ack_status(Outcome::Overloaded, app.options.delivery.ack_permanent);
                return into_response(json_response(
                    status,
                    &json!({"error": "overloaded", "message": format!("more than {} events in flight; retry later", app.options.delivery.max_in_flight)}),
                ));
            }
        },
    };
    let body = match read_body(body, app.options.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return rejected(&app, &e, None),
    };
    let delivery = match envelope::decode(&headers, &body) {
        Ok(d) => d,
        Err(e) => return rejected(&app, &e, None),
    };
    let event = match record::decode(&delivery.record) {
        Ok(ev) => ev,
        Err(e) => return rejected(&app, &e, Some(&delivery)),
    };
    let span = tracing::info_span!(
        "event",
        message_id = delivery.meta.message_id.as_deref().unwrap_or(""),
        ce_id = delivery.meta.ce_id.as_deref().unwrap_or(""),
        datastream_uuid = event.uuid.as_deref().unwrap_or(""),
        delivery_attempt = delivery.meta.delivery_attempt.unwrap_or(0),
    );
    process(app, delivery, event, started).instrument(span).await
}

async fn process(app: Arc<App>, delivery: Delivery, event: ChangeEvent, started: Instant) -> Response {
    let ticket = match app.dedup.begin(dedup_key(&delivery, &event)) {
        Begin::Fresh(t) => t,
        Begin::Seen(answer) => {
            tracing::info!(
                status = answer.status,
                format = delivery.format.as_str(),
                "duplicate event: answered as before"
            );
            app.stats.lock().expect("stats").count("duplicate", delivery.format.as_str());
            return into_response((StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK), answer.body));
        }
        Begin::Running(mut rx) => {
            // a redelivery while the first attempt runs: wait for its outcome (a final answer,
            // or None when it failed transiently or was cancelled)
            let answer = match tokio::time::timeout(app.options.delivery.event_deadline, rx.changed()).await {
                Ok(_) => rx.borrow().clone(),
                Err(_) => None,
            };
            app.stats.lock().expect("stats").count("duplicate", delivery.format.as_str());
            return match answer {
                Some(a) => {
                    tracing::info!(
                        status = a.status,
                        "duplicate of an event in progress: answered as the first attempt"
                    );
                    into_response((StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK), a.body))
                }
                None => {
                    tracing::warn!(status = 503, "duplicate of an event whose first attempt did not finish");
                    into_response(json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"error": "in_progress", "class": "transient", "message": "the same event is being processed; retry later"}),
                    ))
                }
            };
        }
    };
    let work = async {
        let mut report = app.dispatcher.dispatch(&event, app.warehouse.as_ref()).await;
        // A transient failure will be retried: write only the failure gauges now, so that the
        // retry writes every point exactly once. Otherwise write everything.
        let mut points: Vec<Gauge> = std::mem::take(&mut report.points);
        if report.outcome() == (Outcome::HandlersFailed { transient: true }) {
            points.retain(|p| p.name == crate::handler::FAILURE_METRIC);
        }
        let self_points = {
            let mut stats = app.stats.lock().expect("stats");
            let outcome = match report.outcome() {
                Outcome::Done => "ok",
                Outcome::HandlersFailed { transient: true } => "transient",
                _ => "permanent",
            };
            stats.count(outcome, delivery.format.as_str());
            for r in &report.results {
                stats.handler(&r.handler, r.elapsed);
            }
            if app.options.delivery.self_metrics {
                stats.flush(&app.dispatcher.projects().metric, app.options.delivery.self_metrics_interval)
            } else {
                vec![]
            }
        };
        points.extend(self_points);
        let written = points.len();
        let sink = app.sink.emit(&points).await;
        (report, sink, written)
    };
    match tokio::time::timeout(app.options.delivery.event_deadline, work).await {
        Err(_) => {
            drop(ticket); // forget it: the redelivery is processed anew
            let status = ack_status(Outcome::DeadlineExceeded, app.options.delivery.ack_permanent);
            tracing::warn!(
                status = status.as_u16(),
                deadline_secs = app.options.delivery.event_deadline.as_secs_f64(),
                "event deadline exceeded: work cancelled"
            );
            app.stats.lock().expect("stats").count("deadline_exceeded", delivery.format.as_str());
            into_response(json_response(
                status,
                &json!({"error": "deadline_exceeded", "class": "transient",
                        "message": format!("the event did not finish within {:?}", app.options.delivery.event_deadline)}),
            ))
        }
        Ok((report, sink, written)) => {
            if let Ok(d) = &sink {
                let mut stats = app.stats.lock().expect("stats");
                for (_, r) in &d.rejected {
                    stats.rejected(r.as_str());
                }
            }
            let (outcome, status, body) = report_answer(&report, &sink, app.options.delivery.ack_permanent);
            log_event(&delivery, &event, &report, &sink, written, status, started);
            ticket.finish(Answer { status: status.as_u16(), body: body.clone() }, outcome.is_final());
            into_response((status, body))
        }
    }
}

fn rejected(app: &App, e: &DecodeError, delivery: Option<&Delivery>) -> Response {
    let status = ack_status(Outcome::Rejected(e.kind), app.options.delivery.ack_permanent);
    let kind = match e.kind {
        DecodeErrorKind::Malformed => "malformed_event",
        DecodeErrorKind::UnsupportedMediaType => "unsupported_media_type",
        DecodeErrorKind::TooLarge => "payload_too_large",
    };
    app.stats.lock().expect("stats").count("rejected", delivery.map(|d| d.format.as_str()).unwrap_or("unknown"));
    tracing::warn!(
        status = status.as_u16(),
        error = kind,
        field = e.field.as_deref().unwrap_or(""),
        reason = %e.message,
        format = delivery.map(|d| d.format.as_str()).unwrap_or("unknown"),
        message_id = delivery.and_then(|d| d.meta.message_id.as_deref()).unwrap_or(""),
        "event rejected"
    );
    into_response(json_response(
        status,
        &json!({"error": kind, "class": "permanent", "message": e.message, "field": e.field}),
    ))
}

/// One structured line per event. Never includes payload variables.
fn log_event(
    delivery: &Delivery,
    event: &ChangeEvent,
    report: &Report,
    sink: &Result<Delivered, SinkError>,
    points: usize,
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
                points = points,
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
    if status.is_success() && report.outcome() == Outcome::Done {
        if handlers.is_empty() {
            emit!(info, "no handler matched the event");
        } else {
            emit!(info, "event processed");
        }
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        emit!(warn, "event failed, retry expected");
    } else if status.is_success() {
        emit!(warn, "event failed permanently: acknowledged (ACK_PERMANENT_ERRORS)");
    } else {
        emit!(warn, "event failed permanently");
    }
}

/// The function's own counters, written through the configured sink at most once per interval
/// (piggybacked on an event's points: nothing runs after a response on serverless platforms).
/// Counts are since the instance started, labelled with a random instance id, so that every
/// instance writes its own series.
struct SelfStats {
    instance: String,
    events: BTreeMap<(String, String), u64>,
    rejected: BTreeMap<String, u64>,
    /// handler -> (total seconds, count) since the last flush
    durations: BTreeMap<String, (f64, u64)>,
    last_flush: Option<Instant>,
}

impl SelfStats {
    fn new() -> Self {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64 ^ (std::process::id() as u64) << 32;
        SelfStats {
            instance: format!("{nanos:016x}"),
            events: BTreeMap::new(),
            rejected: BTreeMap::new(),
            durations: BTreeMap::new(),
            last_flush: None,
        }
    }

    fn count(&mut self, outcome: &str, format: &str) {
        *self.events.entry((format.to_string(), outcome.to_string())).or_default() += 1;
    }

    fn rejected(&mut self, reason: &str) {
        *self.rejected.entry(reason.to_string()).or_default() += 1;
    }

    fn handler(&mut self, handler: &str, elapsed: Duration) {
        let e = self.durations.entry(handler.to_string()).or_default();
        e.0 += elapsed.as_secs_f64();
        e.1 += 1;
    }

    fn flush(&mut self, project: &str, interval: Duration) -> Vec<Gauge> {
        if self.last_flush.is_some_and(|t| t.elapsed() < interval) {
            return Vec::new();
        }
        self.last_flush = Some(Instant::now());
        let now = Utc::now();
        let g = |name: &str, value: f64, labels: Vec<(&str, &str)>| Gauge {
            name: name.to_string(),
            value,
            time: now,
            labels: labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            project: project.to_string(),
        };
        let mut out = Vec::new();
        for ((format, outcome), n) in &self.events {
            out.push(g(
                "pipeline_run_metrics/events",
                *n as f64,
                vec![("format", format), ("outcome", outcome), ("instance", &self.instance)],
            ));
        }
        for (reason, n) in &self.rejected {
            out.push(g(
                "pipeline_run_metrics/points_rejected",
                *n as f64,
                vec![("reason", reason), ("instance", &self.instance)],
            ));
        }
        for (handler, (total, n)) in std::mem::take(&mut self.durations) {
            out.push(g(
                "pipeline_run_metrics/handler_duration_seconds",
                total / n.max(1) as f64,
                vec![("handler_class", &handler), ("instance", &self.instance)],
            ));
        }
        out
    }
}
