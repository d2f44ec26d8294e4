//! The acknowledgement decision, in one place: what happened to each record of a delivery ->
//! the [`Answer`] its transport reads as ack or retry.
//!
//! * A record is *done* (processed, including "no handler matched", or a replay of a final
//!   answer), failed *permanently* (retrying the same record cannot succeed: malformed input, an
//!   invalid variable, a query the warehouse rejects) or failed *transiently* (a retry may
//!   succeed: the warehouse or the metric backend unavailable, the deadline exceeded, the same
//!   record still being processed).
//! * Push transports (Pub/Sub push, CloudEvents) read the HTTP status: 204 when every record is
//!   done; 503 when any record failed transiently (a transient failure wins over a permanent one,
//!   because a redelivery can still fix part of it); otherwise 400 / 413 / 415 for permanent
//!   failures, so that Pub/Sub nacks and, after the subscription's maximum delivery attempts,
//!   moves the message to its dead-letter topic. With `ack_permanent` (subscriptions without a
//!   dead-letter topic) permanent failures are answered 200 with the same JSON body, logged and
//!   counted, so that they do not loop until retention ends (protocols.md §1.3, §1.5).
//! * Refusals before any record is read: 401 (not authenticated; never acknowledged, it is not
//!   the message's fault), 429 (overloaded; Pub/Sub backs off), and the undecodable request
//!   (a permanent failure of the whole delivery).
//! * Batch transports read [`Answer::retry`]: the items to deliver again (transient failures,
//!   and permanent ones unless `ack_permanent`, so that a dead-letter queue keeps them).
//!
//! The answer to several records (the [`Tally`] of their outcomes) is in `answer/tally.rs`.

mod tally;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::decode::{DecodeError, DecodeErrorKind};
use crate::error::ErrorClass;
use crate::handlers::HandlerError;
use crate::sink::SinkError;

pub use tally::{MAX_LISTED_FAILURES, Tally, answer};

/// A final answer remembered for a record, replayed to its duplicates: its status and a short
/// body (at most [`MAX_REMEMBERED_BODY`] bytes; see [`Answer::remembered`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Remembered {
    pub status: u16,
    pub body: Bytes,
}

/// The longest answer body the de-duplication window keeps; a longer one is replaced by its
/// headline (error, class, handler, field and a shortened message).
pub const MAX_REMEMBERED_BODY: usize = 1024;

/// One failed handler of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub handler: String,
    pub error: HandlerError,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every matched handler succeeded (or none matched) and the points were written.
    Done,
    /// The record re-reads an existing row (a backfill, snapshot or full-load read): history,
    /// not a change. Nothing runs and nothing is written unless `PROCESS_HISTORY` is set.
    History,
    /// The record is valid but reports no row change (an AWS DMS control record): nothing runs,
    /// nothing is written, and it is done (never retried).
    Ignored { reason: String },
    /// The record was answered before with a final status: that answer again, nothing redone.
    Duplicate(Remembered),
    /// The record could not be decoded.
    Rejected(DecodeError),
    /// At least one handler failed (in handler order); `transient` when any failure is.
    HandlersFailed { transient: bool, failures: Vec<Failure> },
    /// The points could not be written.
    SinkFailed(SinkError),
    /// The same record is being processed by another request whose outcome is not final.
    InProgress,
    /// The delivery did not finish within its deadline; its work was cancelled.
    DeadlineExceeded { deadline_secs: f64 },
}

impl Outcome {
    /// The outcome of a record that did not decode: ignored when it is valid but reports no row
    /// change ([`DecodeErrorKind::NotAChange`]), rejected otherwise.
    pub fn of_decode_error(e: DecodeError) -> Outcome {
        match e.kind {
            DecodeErrorKind::NotAChange => Outcome::Ignored { reason: e.message },
            _ => Outcome::Rejected(e),
        }
    }

    /// `None` when the record is done; otherwise whether its failure is permanent or transient.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            Outcome::Done | Outcome::History | Outcome::Ignored { .. } => None,
            Outcome::Duplicate(r) => match r.status {
                200..=299 => None,
                400..=499 if r.status != 401 && r.status != 429 => Some(ErrorClass::Permanent),
                _ => Some(ErrorClass::Transient),
            },
            Outcome::Rejected(_) => Some(ErrorClass::Permanent),
            Outcome::HandlersFailed { transient: true, .. } => Some(ErrorClass::Transient),
            Outcome::HandlersFailed { transient: false, .. } => Some(ErrorClass::Permanent),
            Outcome::SinkFailed(e) => Some(e.class()),
            Outcome::InProgress | Outcome::DeadlineExceeded { .. } => Some(ErrorClass::Transient),
        }
    }

    /// Whether a redelivery of the record would get the same answer (so it may be remembered).
    pub fn is_final(&self) -> bool {
        self.class() != Some(ErrorClass::Transient)
    }

    /// The counter label of the function's own `events` metric.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "ok",
            Outcome::History => "history",
            Outcome::Ignored { .. } => "ignored",
            Outcome::Duplicate(_) | Outcome::InProgress => "duplicate",
            Outcome::Rejected(_) => "rejected",
            Outcome::DeadlineExceeded { .. } => "deadline_exceeded",
            other => match other.class() {
                Some(ErrorClass::Transient) => "transient",
                _ => "permanent",
            },
        }
    }
}

/// Why a delivery was refused before any of its records was read.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The push was not authenticated (missing or invalid OIDC token).
    Unauthorized(String),
    /// More than `limit` deliveries in flight in this instance.
    Overloaded { limit: usize },
    /// The request bodies held in memory would pass `BODY_BUFFER_BYTES`: 429, like
    /// [`Refusal::Overloaded`].
    BodiesBuffered { limit: usize },
    /// The request body did not arrive within `BODY_READ_TIMEOUT_SECS`: 408, never acknowledged
    /// (the message is not at fault).
    BodyTimeout { timeout_secs: f64 },
    /// The request is not a delivery this function can decode (413, 415 or 400), or names a
    /// file that cannot be read for good (deleted, not JSON Lines).
    Undecodable(DecodeError),
    /// What the delivery names cannot be read now (a Cloud Storage object: credentials,
    /// network, 5xx): 503, so that it is delivered again.
    Unavailable(String),
    /// Nothing to do: a notification this function does not read (another event type, an object
    /// outside the configured prefixes and tables). 204, counted.
    Ignored(String),
    /// No route takes the request: a method other than POST on a path the function does not
    /// serve (a POST to any path is a delivery). 404, naming the path.
    NoRoute { method: String, path: String },
    /// The path is served, but not with this method (`PUT /`, `GET /api/v1/lineage`). 405,
    /// naming the method and the methods the path takes (`allowed`, as in the `Allow` header).
    MethodNotAllowed { method: String, path: String, allowed: &'static str },
}

/// How permanent failures are acknowledged (`ACK_PERMANENT_ERRORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckPolicy {
    pub ack_permanent: bool,
}

/// The answer to one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status (push transports).
    pub status: StatusCode,
    /// A JSON body, or empty.
    pub body: Bytes,
    /// The items to deliver again (batch transports), in delivery order.
    pub retry: Vec<String>,
}

impl Answer {
    fn json(status: StatusCode, body: &Value) -> Answer {
        Answer { status, body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()), retry: Vec::new() }
    }

    /// What a duplicate of this (single-record) answer replays: the status, and the body when
    /// it is at most [`MAX_REMEMBERED_BODY`] bytes, else its headline. Copied, so that the
    /// window never keeps a larger buffer alive.
    pub fn remembered(&self) -> Remembered {
        let body = if self.body.len() <= MAX_REMEMBERED_BODY {
            Bytes::copy_from_slice(&self.body)
        } else {
            let full: Value = serde_json::from_slice(&self.body).unwrap_or_else(|_| json!({}));
            let mut short = serde_json::Map::new();
            for key in ["error", "class", "handler", "field"] {
                if let Some(v) = full.get(key).filter(|v| !v.is_null()) {
                    short.insert(key.into(), v.clone());
                }
            }
            if let Some(m) = full.get("message").and_then(Value::as_str) {
                short.insert("message".into(), crate::redact::excerpt(m, 256).into());
            }
            short.insert("replayed".into(), "the first answer, shortened".into());
            let mut bytes = serde_json::to_vec(&Value::Object(short)).unwrap_or_default();
            if bytes.len() > MAX_REMEMBERED_BODY {
                bytes = serde_json::to_vec(&json!({"error": full.get("error"), "class": full.get("class")}))
                    .unwrap_or_default();
            }
            Bytes::from(bytes)
        };
        Remembered { status: self.status.as_u16(), body }
    }
}

fn permanent(status: StatusCode, policy: AckPolicy) -> StatusCode {
    if policy.ack_permanent { StatusCode::OK } else { status }
}

fn decode_kind(kind: DecodeErrorKind) -> (&'static str, StatusCode) {
    match kind {
        DecodeErrorKind::Malformed => ("malformed_event", StatusCode::BAD_REQUEST),
        DecodeErrorKind::UnsupportedMediaType => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        DecodeErrorKind::TooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
        // not a failure: answered by `record_answer(&Outcome::Ignored ..)` before this is read
        DecodeErrorKind::NotAChange => ("not_a_change", StatusCode::NO_CONTENT),
    }
}

/// The body of an undecodable request or record. Its message may quote the input (a JSON
/// parser's error): quoted parts are shortened.
fn rejected_body(e: &DecodeError) -> Value {
    json!({"error": decode_kind(e.kind).0, "class": "permanent", "message": crate::redact::quoted(&e.message),
           "field": e.field})
}

/// The answer to a refused delivery.
pub fn refuse(refusal: &Refusal, policy: AckPolicy) -> Answer {
    match refusal {
        Refusal::Unauthorized(message) => {
            Answer::json(StatusCode::UNAUTHORIZED, &json!({"error": "unauthorized", "message": message}))
        }
        // the request is not at fault: no field
        Refusal::Overloaded { limit } => Answer::json(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "overloaded", "class": "transient",
                    "message": format!("more than {limit} events in flight; retry later"), "field": null}),
        ),
        Refusal::BodiesBuffered { limit } => Answer::json(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "overloaded", "class": "transient",
                    "message": format!("request bodies in memory would pass {limit} bytes; retry later"),
                    "field": null}),
        ),
        Refusal::BodyTimeout { timeout_secs } => Answer::json(
            StatusCode::REQUEST_TIMEOUT,
            &json!({"error": "request_timeout", "class": "transient",
                    "message": format!("the request body did not arrive within {timeout_secs} s")}),
        ),
        Refusal::Undecodable(e) => match Outcome::of_decode_error(e.clone()) {
            ignored @ Outcome::Ignored { .. } => record_answer(&ignored, policy),
            _ => Answer::json(permanent(decode_kind(e.kind).1, policy), &rejected_body(e)),
        },
        Refusal::Unavailable(message) => Answer::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "source_unavailable", "class": "transient", "message": message}),
        ),
        Refusal::Ignored(_) => Answer { status: StatusCode::NO_CONTENT, body: Bytes::new(), retry: Vec::new() },
        // not a delivery (a POST to any path is one): never acknowledged as one
        Refusal::NoRoute { method, path } => Answer::json(
            StatusCode::NOT_FOUND,
            &json!({"error": "not_found", "class": "permanent", "field": "path",
                    "message": format!("no route for {} {}: deliveries are POSTed to / (OpenLineage events to \
                                        /api/v1/lineage), readiness is GET /healthz",
                                       shown(method), shown(path))}),
        ),
        Refusal::MethodNotAllowed { method, path, allowed } => Answer::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "method_not_allowed", "class": "permanent", "field": "method",
                    "message": format!("{} is not accepted on {}: it takes {allowed}", shown(method), shown(path))}),
        ),
    }
}

/// A method or path as an answer repeats it: at most [`crate::redact::EXCERPT_CHARS`] characters.
fn shown(s: &str) -> String {
    crate::redact::excerpt(s, crate::redact::EXCERPT_CHARS)
}

/// One failed handler in an answer body. Only the headline (`offending`) shows the value at
/// fault, once and shortened, with its fingerprint (the one the event's log line carries).
fn failure_json(f: &Failure, offending: bool) -> Value {
    let mut v = json!({"handler": f.handler, "error": f.error.kind(), "class": f.error.class(),
                       "message": f.error.public_message(), "field": f.error.field()});
    if offending && let Some(value) = f.error.offending() {
        v["value"] = value.excerpt.clone().into();
        v["value_fingerprint"] = value.fingerprint.to_string().into();
    }
    v
}

/// The answer to a delivery of one record (the HTTP answer today's push transports read).
pub fn record_answer(outcome: &Outcome, policy: AckPolicy) -> Answer {
    match outcome {
        Outcome::Done | Outcome::History | Outcome::Ignored { .. } => {
            Answer { status: StatusCode::NO_CONTENT, body: Bytes::new(), retry: Vec::new() }
        }
        Outcome::Duplicate(r) => Answer {
            status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
            body: r.body.clone(),
            retry: Vec::new(),
        },
        Outcome::Rejected(e) => Answer::json(permanent(decode_kind(e.kind).1, policy), &rejected_body(e)),
        Outcome::HandlersFailed { transient, failures } => {
            // The headline is the first failure of the class that decided the status; every
            // failure is listed.
            let deciding = if *transient { ErrorClass::Transient } else { ErrorClass::Permanent };
            let status =
                if *transient { StatusCode::SERVICE_UNAVAILABLE } else { permanent(StatusCode::BAD_REQUEST, policy) };
            let mut body = failures
                .iter()
                .find(|f| f.error.class() == deciding)
                .or(failures.first())
                .map(|f| failure_json(f, true))
                .unwrap_or_else(|| json!({}));
            body["failures"] = failures.iter().map(|f| failure_json(f, false)).collect();
            Answer::json(status, &body)
        }
        Outcome::SinkFailed(e) => {
            let status = match e.class() {
                ErrorClass::Transient => StatusCode::SERVICE_UNAVAILABLE,
                ErrorClass::Permanent => permanent(StatusCode::BAD_REQUEST, policy),
            };
            Answer::json(status, &json!({"error": "metric_sink_failed", "class": e.class(), "message": e.message()}))
        }
        Outcome::InProgress => Answer::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "in_progress", "class": "transient",
                    "message": "the same event is being processed; retry later"}),
        ),
        Outcome::DeadlineExceeded { deadline_secs } => Answer::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "deadline_exceeded", "class": "transient",
                    "message": format!("the event did not finish within {deadline_secs} s")}),
        ),
    }
}

/// One record of a delivery: the transport's item id (batch transports; a line number for
/// files) and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordResult {
    pub item: Option<String>,
    pub outcome: Outcome,
}

#[cfg(test)]
mod tests;
