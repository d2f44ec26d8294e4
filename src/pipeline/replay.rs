//! Records read from files by `pipeline-run-metrics replay` (see `crate::cli::replay`): the same
//! per-record steps as every delivery ([`Pipeline::handle`]): de-duplication, the claim
//! handlers and lifecycle profiles in force, the fact memory, one sink call for the points of a
//! chunk, all within the event deadline. Only the delivery around them differs: there is no
//! message to answer, so the caller reads each record's [`RecordResult`].
//!
//! What a replay must set in the [`crate::config::Delivery`] it builds the pipeline with:
//! `process_history` (a backfill file is history: its records are what a replay is for), and
//! the de-duplication window it wants (a window that outlives the run makes a second run
//! answer every record it already processed from memory, [`Pipeline::answered`]).

use chrono::{DateTime, FixedOffset};

use super::dedup::Key as DedupKey;
use super::{Pipeline, RecordResult};
use crate::decode::{ChangeEvent, DeliveryFormat, DeliveryMeta, RecordInput};

impl Pipeline {
    /// Processes one chunk of records read from a file (format `replay`, no delivery metadata)
    /// within the event deadline (`EVENT_DEADLINE_SECS`), and returns each record's outcome in
    /// input order.
    pub async fn replay(&self, records: Vec<RecordInput>) -> Vec<RecordResult> {
        self.outcomes(DeliveryFormat::Replay, &DeliveryMeta::default(), records, self.config.event_deadline).await
    }

    /// The time the points of `event` get: its commit time (`source_timestamp`), or, for a
    /// history record when history is processed, the row's own time (the first non-null of
    /// `HISTORY_TIME_COLUMNS`), as [`Pipeline::handle`] sets it.
    pub fn point_time(&self, event: &ChangeEvent) -> DateTime<FixedOffset> {
        if event.is_history() && self.config.process_history {
            self.row_time(event).unwrap_or(event.source_timestamp)
        } else {
            event.source_timestamp
        }
    }

    /// The de-duplication keys of the records answered with a success and still in the window
    /// (to save with a replay's state).
    pub fn answered(&self) -> Vec<DedupKey> {
        self.dedup.answered()
    }

    /// Remembers records answered by an earlier run (a replay's saved state) as answered: they
    /// are not processed again while the window keeps them.
    pub fn remember_answered(&self, keys: impl IntoIterator<Item = DedupKey>) {
        self.dedup.remember(keys)
    }

    /// The tables whose rows name other rows' pipelines (a Mage `pipeline_run` for its
    /// `block_run`s, lookup tables): reading their files first lets a task find its pipeline.
    pub fn parent_tables(&self) -> Vec<String> {
        self.lifecycle.as_ref().map(|l| l.lifecycle.parent_tables()).unwrap_or_default()
    }
}
