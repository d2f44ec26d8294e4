//! Why a request or a record could not be decoded: the kind decides the answer (400, 413, 415),
//! the field names what is wrong.

use serde::Serialize;

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
    /// Not a fault of the sender: a valid record that reports no row change (an AWS DMS control
    /// record: `create-table`, `drop-table`, ...). The pipeline answers it as done and counts it
    /// as `ignored` ([`crate::pipeline::Outcome::Ignored`]).
    NotAChange,
}

impl DecodeError {
    pub fn malformed(field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        DecodeError { kind: DecodeErrorKind::Malformed, field: field.into(), message: message.into() }
    }
    /// A valid record that reports no row change (see [`DecodeErrorKind::NotAChange`]).
    pub fn not_a_change(field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        DecodeError { kind: DecodeErrorKind::NotAChange, field: field.into(), message: message.into() }
    }
    /// The same error for a record nested at `path` of what was delivered: its field becomes
    /// `<path>.<field>` (or `path` when it named none), and so does the field where the message
    /// begins with it ("after.variables must be ..." -> "payload.after.variables must be ...").
    pub fn under(mut self, path: &str) -> Self {
        self.field = Some(match self.field {
            Some(f) => {
                if self.message.strip_prefix(f.as_str()).is_some_and(|rest| rest.starts_with([' ', ',', ':'])) {
                    self.message = format!("{path}.{}", self.message);
                }
                format!("{path}.{f}")
            }
            None => path.to_string(),
        });
        self
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        DecodeError {
            kind: DecodeErrorKind::UnsupportedMediaType,
            field: Some("header content-type".into()),
            message: message.into(),
        }
    }
}
