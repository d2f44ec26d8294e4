//! Datastream files in Cloud Storage: a notification names an object; its lines are the
//! records.
//!
//! Per notification: only `OBJECT_FINALIZE` / `…object.v1.finalized` events of objects under
//! `FILES_PREFIXES` or of the tables read (`FILES_TABLES`, by default those of the handlers and
//! profiles in force; Datastream writes `<prefix>/<schema>_<table>/YYYY/MM/DD/HH/mm/<file>`) are
//! read; others get 204 and are counted. That generation of the object is streamed, decoded line
//! by line ([`crate::decode::files`]) and processed in chunks through the same per-record steps
//! as any delivery, so a redelivered notification re-emits nothing already written (the
//! de-duplication window, keyed on each record's Datastream `uuid`, and the fact memory). The
//! answer counts the records ([`super::answer::Tally`]): 503 when any record (or the reading)
//! failed transiently, so that the notification comes back and only the unfinished records are
//! processed again; a bad line is counted and reported with its number without blocking the
//! rest. A deleted object or an Avro file is a permanent error that says what was expected.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::answer::{Answer, Refusal, Tally};
use super::{Pipeline, events};
use crate::decode::files::{FileKind, Lines, avro_error};
use crate::decode::{DecodeError, DeliveryFormat, DeliveryMeta, ObjectEvent, StorageObject};
use crate::error::ErrorClass;
use crate::google::storage::Storage;
use crate::handlers::pattern::table_matches;

/// Records processed together (one sink call, one de-duplication pass).
pub const CHUNK: usize = 256;

/// The `<schema>_<table>` folder of a Datastream object name: the path segment before the
/// `YYYY/MM/DD/HH/mm` folders.
pub fn object_folder(name: &str) -> Option<&str> {
    let parts: Vec<&str> = name.split('/').collect();
    let year = parts.iter().position(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_digit()))?;
    parts.get(year.checked_sub(1)?).copied()
}

impl Pipeline {
    /// Reads announced objects with this client (`None`: notifications answer 503 and say why).
    pub fn with_storage(mut self, storage: Option<Arc<Storage>>) -> Pipeline {
        self.storage = storage;
        self
    }

    /// The tables whose files are read when `FILES_TABLES` is not set.
    pub fn file_tables(&self) -> BTreeSet<String> {
        let mut tables: BTreeSet<String> =
            self.dispatcher.handlers().iter().flat_map(|h| h.tables()).map(str::to_string).collect();
        if let Some(parts) = &self.lifecycle {
            for p in parts.lifecycle.profiles() {
                tables.extend(p.tables.iter().map(|t| t.name.clone()));
                tables.extend(p.lookups.iter().map(|l| l.table.clone()));
            }
        }
        tables
    }

    /// Whether the object is one this function reads (see the module documentation).
    pub fn reads_object(&self, name: &str) -> bool {
        let files = &self.config.files;
        if files.prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            return true;
        }
        let tables = match &files.tables {
            Some(t) => t.iter().cloned().collect(),
            None if files.prefixes.is_empty() => self.file_tables(),
            None => return false,
        };
        object_folder(name).is_some_and(|folder| tables.iter().any(|t| table_matches(t, folder)))
    }

    /// Processes the records of an announced object and answers the notification.
    pub async fn handle_object(&self, format: DeliveryFormat, meta: DeliveryMeta, object: StorageObject) -> Answer {
        let span = tracing::info_span!(
            "file",
            message_id = meta.message_id.as_deref().unwrap_or(""),
            ce_id = meta.ce_id.as_deref().unwrap_or(""),
            bucket = object.bucket.as_str(),
            object = object.name.as_str(),
            generation = object.generation.as_deref().unwrap_or(""),
        );
        self.read_object(format, meta, object).instrument(span).await
    }

    async fn read_object(&self, format: DeliveryFormat, meta: DeliveryMeta, object: StorageObject) -> Answer {
        let name = object.name.as_str();
        if object.event != ObjectEvent::Finalized {
            return self.refuse(&Refusal::Ignored(format!("{} event of {name}", object.event.as_str())));
        }
        if !self.reads_object(name) {
            return self.refuse(&Refusal::Ignored(format!("{name} is not under FILES_PREFIXES nor of FILES_TABLES")));
        }
        if FileKind::of(name) == FileKind::Avro {
            return self.refuse_object(avro_error(name), format, &meta);
        }
        let Some(storage) = &self.storage else {
            return self.refuse(&Refusal::Unavailable(
                "Cloud Storage notifications need STORAGE_EMULATOR_HOST or Google credentials to read the object"
                    .into(),
            ));
        };
        let started = Instant::now();
        let deadline = self.config.event_deadline;
        let left = || deadline.saturating_sub(started.elapsed());
        let read = tokio::time::timeout(left(), storage.read(&object.bucket, name, object.generation.as_deref()));
        let stream = match read.await {
            Err(_) => {
                return self.refuse(&Refusal::Unavailable(format!("reading gs://{}/{name} timed out", object.bucket)));
            }
            Ok(Err(e)) if e.is_not_found() => {
                return self.refuse_object(DecodeError::malformed(Some("name".into()), e.message), format, &meta);
            }
            Ok(Err(e)) => return self.refuse(&Refusal::Unavailable(e.message)),
            Ok(Ok(s)) => s,
        };
        let reader = tokio_util::io::StreamReader::new(stream);
        let mut lines = match Lines::new(reader, name, self.config.files.max_line_bytes).await {
            Ok(l) => l,
            Err(e) => return self.refuse(&Refusal::Unavailable(format!("reading gs://{}/{name}: {e}", object.bucket))),
        };
        let policy = self.policy();
        let mut tally = Tally::default();
        loop {
            let chunk = match tokio::time::timeout(left(), lines.next_chunk(CHUNK)).await {
                Err(_) => {
                    tally.broken =
                        Some((ErrorClass::Transient, format!("deadline reached after line {}", lines.line())));
                    break;
                }
                Ok(Err(e)) => {
                    // a decompression error is in the data; anything else is the connection
                    let class = match e.kind() {
                        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => ErrorClass::Permanent,
                        _ => ErrorClass::Transient,
                    };
                    tally.broken = Some((class, format!("the file cannot be read after line {}: {e}", lines.line())));
                    break;
                }
                Ok(Ok(c)) if c.is_empty() => break,
                Ok(Ok(c)) => c,
            };
            for r in self.outcomes(format, &meta, chunk, left()).await {
                tally.add(r, policy);
            }
            if left().is_zero() {
                tally.broken = Some((ErrorClass::Transient, format!("deadline reached after line {}", lines.line())));
                break;
            }
        }
        let answer = tally.answer(policy);
        events::FileRead {
            status: answer.status.as_u16(),
            object: name,
            records: tally.records,
            done: tally.done,
            transient: tally.transient,
            permanent: tally.permanent,
            unread: tally.broken.as_ref().map(|(_, m)| m.as_str()),
            started,
        }
        .emit(self.stats());
        answer
    }

    /// The permanent refusal of an announced object (deleted, Avro), logged with the format and
    /// the message id of the notification that announced it ([`Pipeline::refuse`] knows
    /// neither: its log line said `"format":"unknown","message_id":""`).
    fn refuse_object(&self, error: DecodeError, format: DeliveryFormat, meta: &DeliveryMeta) -> Answer {
        let answer = super::answer::refuse(&Refusal::Undecodable(error.clone()), self.policy());
        let status = answer.status.as_u16();
        events::Rejected { status, error: &error, format: Some(format), meta: Some(meta), item: None }
            .emit(self.stats());
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_folder_of_datastream_object_names() {
        let cases = [
            (
                "ds/public_pipeline_run/2025/11/05/18/23/6d6d_postgresql-cdc_881162559_7_35668.jsonl.gz",
                Some("public_pipeline_run"),
            ),
            ("public_motoristas/2023/09/21/18/50/8860e0_postgresql-cdc_465564840_5_0.jsonl", Some("public_motoristas")),
            ("a/b/c.jsonl", None),
            ("2025/11/05/x.jsonl", None),
        ];
        for (name, folder) in cases {
            assert_eq!(object_folder(name), folder, "{name}");
        }
    }
}
