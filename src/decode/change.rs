//! The decoded change record: what every source format is turned into before handlers see it.
//! Only what the function branches on is typed; the row itself stays JSON (moved, not copied,
//! out of the decoded record).

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

/// How the source read the row: a live change from the log, or a read of existing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// A change read from the database log (Datastream `*-cdc*`, Debezium streaming, DMS CDC).
    Cdc,
    /// A read of rows that already existed: Datastream backfill and supplementation reads,
    /// Debezium snapshots, DMS full load. Such records are history, not transitions.
    Backfill,
    /// The source did not say (a record without `read_method`): treated as a live change, as
    /// the reference service did.
    Unknown,
}

/// Insert/update (the row exists after the change) or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Upsert,
    Delete,
}

/// Where the change happened (Datastream's PostgreSQL `source_metadata`, protocols.md §3.2).
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

/// The row after the change, with the Mage `pipeline_run` columns the claim handlers read typed.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    /// Where the row sits in the record, as error fields name it (`<path>.<column>`): `payload`
    /// (Datastream record; the default, and the name handlers write), `after` or `before`
    /// (Debezium envelope), `payload.after` or `payload.before` (the envelope inside the JSON
    /// converter's `{"schema", "payload"}`), `""` (Debezium flattened by ExtractNewRecordState:
    /// the columns are top-level), `data` (AWS DMS). An OpenLineage RunEvent's row is built by
    /// the decoder and keeps `payload`.
    pub path: &'static str,
    /// An integer `id` (Mage); `None` for a text key (an Airflow 3 or Prefect UUID), which the
    /// row keeps.
    pub id: Option<i64>,
    pub pipeline_uuid: Option<String>,
    pub status: Option<String>,
    pub execution_date: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// Every column of the row, as the source wrote it, except that a `variables` column that
    /// arrived as JSON text is stored parsed.
    pub row: Map<String, Value>,
}

impl Default for PipelineRun {
    fn default() -> Self {
        PipelineRun {
            path: PAYLOAD,
            id: None,
            pipeline_uuid: None,
            status: None,
            execution_date: None,
            started_at: None,
            completed_at: None,
            row: Map::new(),
        }
    }
}

/// The row's path in a Datastream record, and the one handlers name fields under.
pub const PAYLOAD: &str = "payload";

impl PipelineRun {
    /// `variables` (a JSON object); `None` when absent or null.
    pub fn variables(&self) -> Option<&Map<String, Value>> {
        self.row.get("variables").and_then(Value::as_object)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub uuid: Option<String>,
    /// The change stream the record came from (Datastream `stream_name`): tells databases apart
    /// in fact identities.
    pub stream: Option<String>,
    pub source_timestamp: DateTime<FixedOffset>,
    pub read_timestamp: Option<DateTime<FixedOffset>>,
    pub object: Option<String>,
    pub read_method: Option<String>,
    pub source_metadata: SourceMetadata,
    /// The row after the change; `None` for a delete without payload.
    pub payload: Option<PipelineRun>,
}

impl ChangeEvent {
    /// From `read_method` (protocols.md §3.2): `*backfill*` and `*supplementation*` reads (and
    /// the `debezium-snapshot` the Debezium decoder writes) are history; `*cdc*` reads are live;
    /// anything else is unknown.
    pub fn read_kind(&self) -> ReadKind {
        match self.read_method.as_deref() {
            Some(m) if m.contains("backfill") || m.contains("supplementation") || m.contains("snapshot") => {
                ReadKind::Backfill
            }
            Some(m) if m.contains("cdc") => ReadKind::Cdc,
            _ => ReadKind::Unknown,
        }
    }

    /// Whether the record re-reads an existing row instead of reporting a change.
    pub fn is_history(&self) -> bool {
        self.read_kind() == ReadKind::Backfill
    }

    pub fn change_kind(&self) -> ChangeKind {
        let ct = self.source_metadata.change_type.as_deref().unwrap_or("");
        if self.source_metadata.is_deleted
            || ct.eq_ignore_ascii_case("DELETE")
            || ct.eq_ignore_ascii_case("UPDATE-DELETE")
        {
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
            Some(t) => {
                t == table || (t.len() > table.len() && t.ends_with(table) && t[..t.len() - table.len()].ends_with('_'))
            }
            None => true,
        }
    }
}
