//! The decoded change record: what every source format (Datastream today) is turned into before
//! handlers see it. Only what the function uses is typed; the row's JSON columns stay JSON.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

/// CDC (log-based) or backfill (snapshot) read, from `read_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Cdc,
    Backfill,
    Unknown,
}

/// Insert/update (the row exists after the change) or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Upsert,
    Delete,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceMetadata {
    pub schema: Option<String>,
    pub table: Option<String>,
    pub change_type: Option<String>,
    pub is_deleted: bool,
    pub lsn: Option<String>,
    pub tx_id: Option<String>,
    pub primary_keys: Vec<String>,
}

/// The `pipeline_run` columns the function reads; `row` keeps the whole row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineRun {
    pub id: Option<i64>,
    pub pipeline_uuid: Option<String>,
    pub status: Option<String>,
    pub execution_date: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// `payload.variables` (JSON object); `None` when absent or null.
    pub variables: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub uuid: Option<String>,
    pub source_timestamp: DateTime<FixedOffset>,
    pub read_timestamp: Option<DateTime<FixedOffset>>,
    pub object: Option<String>,
    pub read_method: Option<String>,
    pub source_metadata: SourceMetadata,
    /// The row after the change; `None` for a delete without payload.
    pub payload: Option<PipelineRun>,
}

impl ChangeEvent {
    pub fn read_kind(&self) -> ReadKind {
        match self.read_method.as_deref() {
            Some(m) if m.contains("backfill") => ReadKind::Backfill,
            Some(m) if m.contains("cdc") => ReadKind::Cdc,
            _ => ReadKind::Unknown,
        }
    }

    pub fn change_kind(&self) -> ChangeKind {
        let ct = self.source_metadata.change_type.as_deref().unwrap_or("").to_ascii_uppercase();
        if self.source_metadata.is_deleted || ct == "DELETE" || ct == "UPDATE-DELETE" {
            ChangeKind::Delete
        } else {
            ChangeKind::Upsert
        }
    }

    /// The source table: `source_metadata.table`, else `object` without its schema prefix.
    pub fn table(&self) -> Option<&str> {
        if let Some(t) = self.source_metadata.table.as_deref() {
            return Some(t);
        }
        let object = self.object.as_deref()?;
        match self.source_metadata.schema.as_deref() {
            Some(schema) => object.strip_prefix(schema).and_then(|rest| rest.strip_prefix('_')).or(Some(object)),
            None => Some(object),
        }
    }

    /// True when the record is about `table` (a record without table information is accepted,
    /// like the reference implementation, which never looked at it).
    pub fn is_table(&self, table: &str) -> bool {
        match self.table() {
            Some(t) => t == table || t.ends_with(&format!("_{table}")),
            None => true,
        }
    }
}
