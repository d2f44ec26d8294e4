//! The data warehouse stage: BigQuery through [`bigquery::BigQuery`], table references and the
//! one identifier validator ([`table`]), and the per-event request cache ([`cache`]).
//!
//! Payload values never enter SQL text: scalars are named query parameters, and table
//! variables are parsed into [`TableRef`]s whose parts must be valid identifiers before they are
//! backtick-quoted into the query.

pub mod bigquery;
pub mod cache;
pub mod probe;
pub mod table;

use std::collections::BTreeMap;

use crate::error::ErrorClass;

pub use bigquery::BigQuery;
pub use cache::EventContext;
pub use table::{TableRef, TableRefError};

/// A named query parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    String(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Rendered `YYYY-MM-DD HH:MM:SS.ffffff+00:00`.
    Timestamp(chrono::DateTime<chrono::Utc>),
    Date(chrono::NaiveDate),
}

impl Param {
    pub(crate) fn bq_type(&self) -> &'static str {
        match self {
            Param::String(_) => "STRING",
            Param::Bool(_) => "BOOL",
            Param::Int(_) => "INT64",
            Param::Float(_) => "FLOAT64",
            Param::Timestamp(_) => "TIMESTAMP",
            Param::Date(_) => "DATE",
        }
    }

    /// Feeds the value to `part` as bytes that tell apart exactly the values [`Param::bq_value`]
    /// renders differently (a timestamp by its microseconds, a date by its day number), without
    /// rendering text: a query's identity is hashed for every matching handler of every event.
    pub(crate) fn identity(&self, part: &mut impl FnMut(&[u8])) {
        match self {
            Param::String(s) => part(s.as_bytes()),
            Param::Bool(b) => part(&[u8::from(*b)]),
            Param::Int(i) => part(&i.to_le_bytes()),
            Param::Float(f) => part(&f.to_bits().to_le_bytes()),
            Param::Timestamp(t) => part(&t.timestamp_micros().to_le_bytes()),
            Param::Date(d) => part(&chrono::Datelike::num_days_from_ce(d).to_le_bytes()),
        }
    }

    pub(crate) fn bq_value(&self) -> String {
        match self {
            Param::String(s) => s.clone(),
            Param::Bool(b) => b.to_string(),
            Param::Int(i) => i.to_string(),
            Param::Float(f) => f.to_string(),
            Param::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
            Param::Date(d) => d.format("%Y-%m-%d").to_string(),
        }
    }
}

/// One result cell, typed from the result schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Float(f64),
    Int(i64),
    Bool(bool),
    Text(String),
}

impl Cell {
    /// The cell as a label value. NULL becomes `"None"`, the reference's rendering of a NULL
    /// `agent_id` (handlers.md §7.5), for every label taken from a column.
    pub fn label(&self) -> String {
        match self {
            Cell::Null => "None".into(),
            Cell::Float(f) => f.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Bool(b) => if *b { "True" } else { "False" }.into(),
            Cell::Text(s) => s.clone(),
        }
    }
}

/// Result rows: column name -> cell, in result order.
pub type Row = BTreeMap<String, Cell>;

#[async_trait::async_trait]
pub trait Warehouse: Send + Sync {
    /// Whether the table exists.
    async fn table_exists(&self, table: &TableRef) -> Result<bool, WarehouseError>;
    /// Runs a standard-SQL query with named parameters and returns all rows.
    async fn query(&self, sql: &str, params: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError>;
}

/// Errors from the data warehouse (BigQuery).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WarehouseError {
    /// The table (or dataset) does not exist.
    #[error("{}", crate::error::prefixed("not found", .0))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_rendering() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2024, 1, 15, 10, 10, 0).unwrap();
        assert_eq!(Param::Timestamp(t).bq_value(), "2024-01-15 10:10:00.000000+00:00");
        assert_eq!(Param::Date(t.date_naive()).bq_value(), "2024-01-15");
        assert_eq!(Param::Bool(true).bq_type(), "BOOL");
    }

    /// BigQuery's own texts start with what the variant says: said once.
    #[test]
    fn not_found_is_said_once() {
        let e = WarehouseError::NotFound("Not found: Table p:ds.t (HTTP 404)".into());
        assert_eq!(e.to_string(), "Not found: Table p:ds.t (HTTP 404)");
        let e = WarehouseError::NotFound("Not found".into());
        assert_eq!(e.to_string(), "Not found");
        assert_eq!(WarehouseError::NotFound("ds.t".into()).to_string(), "not found: ds.t");
    }

    #[test]
    fn null_label_is_none() {
        assert_eq!(Cell::Null.label(), "None");
        assert_eq!(Cell::Int(3).label(), "3");
    }
}
