//! Error taxonomy and the acknowledgement decision.
//!
//! Every failure is classified once, here, as *permanent* (retrying the same message cannot
//! succeed: malformed input, a missing variable, an invalid table reference, a query the
//! warehouse rejects) or *transient* (a retry may succeed: BigQuery unreachable, 5xx, 429,
//! timeouts). [`ack_status`] turns the outcome of one delivery into the HTTP status that Pub/Sub
//! reads as ack (2xx) or nack (anything else).

use axum::http::StatusCode;
use serde::Serialize;

/// Whether retrying the same message can change the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Permanent,
    Transient,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Transient => "transient",
        }
    }
}

/// A request that could not be turned into a change event (envelope or record decoding).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    /// Dotted path of the offending field or header, e.g. `message.data` or `header ce-source`.
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeErrorKind {
    /// The body is not one of the accepted delivery formats, or a required field is missing/invalid.
    Malformed,
    /// Content type we do not accept (including CloudEvents batch mode).
    UnsupportedMediaType,
    /// The body exceeds the configured limit.
    TooLarge,
}

impl DecodeError {
    pub fn malformed(field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        DecodeError { kind: DecodeErrorKind::Malformed, field: field.into(), message: message.into() }
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        DecodeError {
            kind: DecodeErrorKind::UnsupportedMediaType,
            field: Some("header content-type".into()),
            message: message.into(),
        }
    }
}

/// Errors from the data warehouse (BigQuery).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WarehouseError {
    /// The table (or dataset) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The warehouse rejected the request; retrying it unchanged cannot succeed.
    #[error("rejected by BigQuery: {0}")]
    Rejected(String),
    /// Unreachable, 5xx, 429, timeout: a retry may succeed.
    #[error("BigQuery unavailable: {0}")]
    Unavailable(String),
}

impl WarehouseError {
    pub fn class(&self) -> ErrorClass {
        match self {
            WarehouseError::NotFound(_) | WarehouseError::Rejected(_) => ErrorClass::Permanent,
            WarehouseError::Unavailable(_) => ErrorClass::Transient,
        }
    }
}

/// Why one handler failed for one event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandlerError {
    /// The event lacks something the handler needs, or carries an invalid value.
    #[error("{message}")]
    InvalidInput { field: String, message: String },
    /// A table variable is not a valid BigQuery identifier. Stops every query of the event.
    #[error("{message}")]
    InvalidTableReference { field: String, message: String },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// The query ran but its result does not fit the handler's declaration (missing column, text
    /// where a number is expected). Permanent: the same query returns the same result.
    #[error("unexpected query result: {0}")]
    BadResult(String),
}

impl HandlerError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError::InvalidInput { field: field.into(), message: message.into() }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            HandlerError::InvalidInput { .. }
            | HandlerError::InvalidTableReference { .. }
            | HandlerError::BadResult(_) => ErrorClass::Permanent,
            HandlerError::Warehouse(e) => e.class(),
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            HandlerError::InvalidInput { field, .. } | HandlerError::InvalidTableReference { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Short machine-readable kind for error bodies and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerError::InvalidInput { .. } => "invalid_input",
            HandlerError::InvalidTableReference { .. } => "invalid_table_reference",
            HandlerError::Warehouse(WarehouseError::NotFound(_)) => "table_not_found",
            HandlerError::Warehouse(WarehouseError::Rejected(_)) => "query_rejected",
            HandlerError::Warehouse(WarehouseError::Unavailable(_)) => "bigquery_unavailable",
            HandlerError::BadResult(_) => "bad_query_result",
        }
    }
}

/// The metric sink could not write the points of an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("metric sink: {message}")]
pub struct SinkError {
    pub class: ErrorClass,
    pub message: String,
}

/// What happened to one delivery, reduced to what decides the HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The push was not authenticated (missing or invalid OIDC token).
    Unauthorized,
    /// Too many events in flight in this instance; Pub/Sub backs off and redelivers.
    Overloaded,
    /// The event did not finish within its deadline; its work was cancelled.
    DeadlineExceeded,
    /// Every matched handler succeeded (or none matched) and the points were written.
    Done,
    /// The request was not a decodable event.
    Rejected(DecodeErrorKind),
    /// At least one handler failed; `transient` says whether any failure can be fixed by a retry.
    HandlersFailed { transient: bool },
    /// The points could not be written.
    SinkFailed(ErrorClass),
}

/// The acknowledgement policy in one function (see the README's table).
///
/// * 204: processed (including "no handler matched"), so Pub/Sub acks.
/// * 400 / 413 / 415: permanent errors; Pub/Sub nacks and, after the subscription's maximum
///   delivery attempts, moves the message to its dead-letter topic, where it is kept. With
///   `ack_permanent` (subscriptions without a dead-letter topic) they are answered 200 instead,
///   with the same JSON body, logged and counted, so that they do not loop until retention ends.
/// * 401: not authenticated (never acknowledged: it is not the message's fault).
/// * 429: overloaded; 503: transient errors or deadline exceeded. Pub/Sub redelivers with
///   backoff. A transient failure wins over a permanent one in the same event, because a
///   redelivery can still fix part of it.
pub fn ack_status(outcome: Outcome, ack_permanent: bool) -> StatusCode {
    let permanent = |status: StatusCode| if ack_permanent { StatusCode::OK } else { status };
    match outcome {
        Outcome::Unauthorized => StatusCode::UNAUTHORIZED,
        Outcome::Overloaded => StatusCode::TOO_MANY_REQUESTS,
        Outcome::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::Done => StatusCode::NO_CONTENT,
        Outcome::Rejected(DecodeErrorKind::Malformed) => permanent(StatusCode::BAD_REQUEST),
        Outcome::Rejected(DecodeErrorKind::UnsupportedMediaType) => permanent(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        Outcome::Rejected(DecodeErrorKind::TooLarge) => permanent(StatusCode::PAYLOAD_TOO_LARGE),
        Outcome::HandlersFailed { transient: true } => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::HandlersFailed { transient: false } => permanent(StatusCode::BAD_REQUEST),
        Outcome::SinkFailed(ErrorClass::Transient) => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::SinkFailed(ErrorClass::Permanent) => permanent(StatusCode::BAD_REQUEST),
    }
}

impl Outcome {
    /// Whether this answer is final for the message (a redelivery would get the same answer).
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Outcome::Unauthorized
                | Outcome::Overloaded
                | Outcome::DeadlineExceeded
                | Outcome::HandlersFailed { transient: true }
                | Outcome::SinkFailed(ErrorClass::Transient)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_status_table() {
        // (outcome, status by default, status with ack_permanent, final)
        let table = [
            (Outcome::Done, 204, 204, true),
            (Outcome::Rejected(DecodeErrorKind::Malformed), 400, 200, true),
            (Outcome::Rejected(DecodeErrorKind::UnsupportedMediaType), 415, 200, true),
            (Outcome::Rejected(DecodeErrorKind::TooLarge), 413, 200, true),
            (Outcome::HandlersFailed { transient: false }, 400, 200, true),
            (Outcome::HandlersFailed { transient: true }, 503, 503, false),
            (Outcome::SinkFailed(ErrorClass::Transient), 503, 503, false),
            (Outcome::SinkFailed(ErrorClass::Permanent), 400, 200, true),
            (Outcome::Unauthorized, 401, 401, false),
            (Outcome::Overloaded, 429, 429, false),
            (Outcome::DeadlineExceeded, 503, 503, false),
        ];
        for (outcome, status, acked, is_final) in table {
            assert_eq!(ack_status(outcome, false).as_u16(), status, "{outcome:?}");
            assert_eq!(ack_status(outcome, true).as_u16(), acked, "{outcome:?} with ack_permanent");
            assert_eq!(outcome.is_final(), is_final, "{outcome:?}");
        }
    }

    #[test]
    fn handler_error_classes() {
        let table = [
            (HandlerError::invalid("payload.variables.partner", "x"), ErrorClass::Permanent),
            (WarehouseError::NotFound("t".into()).into(), ErrorClass::Permanent),
            (WarehouseError::Rejected("syntax".into()).into(), ErrorClass::Permanent),
            (WarehouseError::Unavailable("503".into()).into(), ErrorClass::Transient),
            (HandlerError::BadResult("no column".into()), ErrorClass::Permanent),
        ];
        for (err, class) in table {
            assert_eq!(err.class(), class, "{err:?}");
        }
    }
}
