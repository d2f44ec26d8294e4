//! The vocabulary of failure shared by every stage: whether retrying can change the result.
//! Each stage owns its error type (`decode::DecodeError`, `warehouse::WarehouseError`,
//! `handlers::HandlerError`, `sink::SinkError`); the acknowledgement decision is
//! `pipeline::answer`.

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
