//! Why one handler failed for one event, and whether a retry can help.

use crate::error::ErrorClass;
use crate::warehouse::WarehouseError;

/// Why one handler failed for one event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandlerError {
    /// The event lacks something the handler needs, or carries an invalid value. When the
    /// message quotes payload values (the reference's "Batch tables not found: <a> or <b>"),
    /// `log_message` is the same text with each value replaced by its name and fingerprint.
    #[error("{message}")]
    InvalidInput { field: String, message: String, log_message: Option<String> },
    /// A table variable is not a valid BigQuery identifier, or names a table that may not be
    /// read. Stops every query of the event. The message does not contain the value: `value`
    /// holds what an answer may show of it (once) and its fingerprint for logs.
    #[error("{message}")]
    InvalidTableReference { field: String, message: String, value: Option<crate::redact::Offending> },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// The fact store could not be reached: nothing was reserved or written; a retry may
    /// succeed.
    #[error(transparent)]
    Store(#[from] crate::facts::StoreError),
    /// A task row names its pipeline through a parent row not seen yet (it may still arrive).
    #[error("{message}")]
    ParentNotSeen { field: String, message: String },
    /// The query ran but its result does not fit the handler's declaration (missing column, text
    /// where a number is expected). Permanent: the same query returns the same result.
    #[error("unexpected query result: {0}")]
    BadResult(String),
}

impl HandlerError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError::InvalidInput { field: field.into(), message: message.into(), log_message: None }
    }

    /// An invalid input whose message quotes payload values; `log_message` is what logs carry
    /// instead.
    pub fn invalid_quoting(field: impl Into<String>, message: impl Into<String>, log_message: String) -> Self {
        HandlerError::InvalidInput { field: field.into(), message: message.into(), log_message: Some(log_message) }
    }

    /// The text a log line carries: never a payload variable's value, its name and fingerprint
    /// instead. BigQuery's own message is kept (it is logged, not answered).
    pub fn log_text(&self) -> String {
        match self {
            HandlerError::InvalidInput { log_message: Some(l), .. } => l.clone(),
            HandlerError::InvalidTableReference { message, value: Some(v), .. } => {
                format!("{message} (value fingerprint {})", v.fingerprint)
            }
            other => other.to_string(),
        }
    }

    /// Names the row's fields as the delivered record does: handlers name a row column
    /// `payload.<column>` (a Datastream record's row, [`crate::decode::PipelineRun::path`]);
    /// for a row at `path` (`after`, `data`, `""` for top-level columns) the field and the
    /// messages that quote it are renamed. Other fields are kept.
    pub fn name_row(&mut self, path: &str) {
        const PAYLOAD: &str = "payload.";
        if path == "payload" {
            return;
        }
        let to = if path.is_empty() { String::new() } else { format!("{path}.") };
        // only where `payload.` begins a path (a column follows): the reference's "No variable
        // 'x' found in payload." ends a sentence with it and keeps its words
        let rename = |text: &mut String| {
            if !text.contains(PAYLOAD) {
                return;
            }
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(i) = rest.find(PAYLOAD) {
                let after = &rest[i + PAYLOAD.len()..];
                let path = after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                out.push_str(&rest[..i]);
                out.push_str(if path { &to } else { PAYLOAD });
                rest = after;
            }
            out.push_str(rest);
            *text = out;
        };
        match self {
            HandlerError::InvalidInput { field, message, log_message } if field.starts_with(PAYLOAD) => {
                rename(field);
                rename(message);
                if let Some(l) = log_message {
                    rename(l);
                }
            }
            HandlerError::InvalidTableReference { field, message, .. }
            | HandlerError::ParentNotSeen { field, message }
                if field.starts_with(PAYLOAD) =>
            {
                rename(field);
                rename(message);
            }
            _ => {}
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            HandlerError::InvalidInput { .. }
            | HandlerError::InvalidTableReference { .. }
            | HandlerError::BadResult(_) => ErrorClass::Permanent,
            HandlerError::Warehouse(e) => e.class(),
            HandlerError::Store(_) | HandlerError::ParentNotSeen { .. } => ErrorClass::Transient,
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            HandlerError::InvalidInput { field, .. }
            | HandlerError::InvalidTableReference { field, .. }
            | HandlerError::ParentNotSeen { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The payload value at fault, as an answer may show it (an excerpt) and a log may name it
    /// (a fingerprint).
    pub fn offending(&self) -> Option<&crate::redact::Offending> {
        match self {
            HandlerError::InvalidTableReference { value, .. } => value.as_ref(),
            _ => None,
        }
    }

    /// The text an answer body carries. BigQuery's and the fact store's own texts stay in the
    /// log (they may name datasets, tables and columns the sender has no business seeing): the
    /// answer says which kind of failure it was; the handler is named beside it.
    pub fn public_message(&self) -> String {
        match self {
            HandlerError::Warehouse(WarehouseError::NotFound(_)) => {
                "a table the query reads does not exist (BigQuery's message is in the function's log)".into()
            }
            HandlerError::Warehouse(WarehouseError::Rejected(_)) => {
                "BigQuery rejected the query (its message is in the function's log)".into()
            }
            HandlerError::Warehouse(WarehouseError::Unavailable(_)) => {
                "BigQuery is unavailable or did not answer in time; retry later".into()
            }
            HandlerError::Store(_) => "the fact store is unavailable; retry later".into(),
            other => other.to_string(),
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
            HandlerError::Store(_) => "fact_store_unavailable",
            HandlerError::ParentNotSeen { .. } => "parent_not_seen",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_never_carry_bigquery_text() {
        for e in [
            WarehouseError::NotFound("Not found: Table p:secret.people".into()),
            WarehouseError::Rejected("Syntax error near secret.people".into()),
            WarehouseError::Unavailable("HTTP 503 for secret.people".into()),
        ] {
            let e = HandlerError::from(e);
            assert!(!e.public_message().contains("secret"), "{}", e.public_message());
            assert!(e.to_string().contains("secret"), "the log keeps it");
        }
        assert_eq!(HandlerError::invalid("f", "No 'x' found.").public_message(), "No 'x' found.");
    }

    #[test]
    fn logs_carry_fingerprints_not_values() {
        let e = HandlerError::InvalidTableReference {
            field: "payload.variables.t".into(),
            message: "Invalid table reference in variable 't': the dataset part is not a valid identifier".into(),
            value: Some(crate::redact::Offending::of("ops.lead@example.com")),
        };
        let log = e.log_text();
        assert!(!log.contains("example") && log.contains("variable 't'"), "{log}");
        assert!(log.contains(&crate::redact::Fingerprint::of("ops.lead@example.com").to_string()), "{log}");
        let e = HandlerError::invalid_quoting(
            "f",
            "Batch tables not found: ds.a or ds.b",
            "Batch tables not found: <a #1> or <b #2>".into(),
        );
        assert_eq!(e.to_string(), "Batch tables not found: ds.a or ds.b");
        assert!(!e.log_text().contains("ds.a"));
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

    /// A row column's field follows the row's path; other fields and other errors are kept.
    #[test]
    fn row_fields_follow_the_row() {
        let invalid = || {
            HandlerError::invalid_quoting(
                "payload.variables.t",
                "payload.variables.t is 'x'",
                "payload.variables.t (fingerprint 1)".into(),
            )
        };
        for (path, field) in [
            ("payload", "payload.variables.t"),
            ("after", "after.variables.t"),
            ("data", "data.variables.t"),
            ("", "variables.t"),
        ] {
            let mut e = invalid();
            e.name_row(path);
            let HandlerError::InvalidInput { field: f, message, log_message } = e else { unreachable!() };
            assert_eq!(f, field);
            assert_eq!(message, format!("{field} is 'x'"));
            assert_eq!(log_message.unwrap(), format!("{field} (fingerprint 1)"));
        }
        let mut parent = HandlerError::ParentNotSeen { field: "payload.dag_id".into(), message: "m".into() };
        parent.name_row("payload.after");
        assert_eq!(parent.field(), Some("payload.after.dag_id"));
        // the reference's sentence keeps its words; only the path is renamed
        let mut missing =
            HandlerError::invalid("payload.variables.t", "No variable 't' found in payload. (payload.variables.t)");
        missing.name_row("after");
        assert_eq!(
            missing,
            HandlerError::invalid("after.variables.t", "No variable 't' found in payload. (after.variables.t)")
        );
        // a field outside the row (a table variable's own name, say) is not the row's
        let mut other = HandlerError::invalid("variables", "payload. in a message");
        other.name_row("after");
        assert_eq!(other, HandlerError::invalid("variables", "payload. in a message"));
    }
}
