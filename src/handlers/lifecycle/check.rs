//! What a row must be before any of its facts is counted, and which of its times the facts may
//! use (docs/metrics.md, "Rows refused, and times left out"). A row that fails a check is corrupt:
//! its change fails for good (400, `invalid_input`, `field` `payload.<column>`, renamed to the
//! delivered record's row path by [`HandlerError::name_row`]) before anything is reserved, so
//! that it never loops as a transient failure and no fact of it is counted from a half-read row.
//!
//! * the row's own times (`created`, `queued`, `started`, `ended`, an event's `time`) lie from
//!   2000-01-01 to a day ahead ([`crate::decode::time::outside`]); the `expected` column is a
//!   logical date (lifecycle.md B.1 "execution_date: scheduled time", B.5 "expected start") and
//!   may have any age, whichever other role it plays.

use chrono::{DateTime, Utc};

use super::Table;
use super::derive::Row;
use crate::handlers::HandlerError;

fn corrupt(t: &Table, column: &str, why: String) -> HandlerError {
    HandlerError::invalid(
        format!("payload.{column}"),
        format!("The {} row's {column} {why}: the row is corrupt, none of its facts is counted.", t.name),
    )
}

impl Row<'_> {
    /// The first time the row's facts cannot be taken from: one of the row's own times out of
    /// range (not `expected`, a logical date).
    pub fn corrupt_time(&self, t: &Table) -> Option<HandlerError> {
        let times = &t.spec.times;
        let event = t.spec.events.as_ref().map(|e| &e.time);
        let columns = [&times.created, &times.queued, &times.expected, &times.started, &times.ended];
        for c in columns.into_iter().flatten().chain(event) {
            let Some(v) = self.row.get(c).filter(|v| !v.is_null()) else { continue };
            let unit = t.spec.units.get(c).map(String::as_str);
            let Some(at) = super::derive::time(v, unit) else { continue };
            if times.expected.as_ref() == Some(c) {
                continue;
            }
            if let Some(why) = crate::decode::time::outside(&at) {
                return Some(corrupt(t, c, format!("is {}, {why}", at.to_rfc3339())));
            }
        }
        None
    }

    /// Whether the row's `expected` time is only the logical date the run processes, not a time
    /// it was due or queued at: its run kind is one of the table's `backfill_kinds` (Mage: a
    /// backfill run's `execution_date` is the date it fills in, lifecycle.md B.1).
    pub fn logical_only(&self, t: &Table) -> bool {
        !t.spec.backfill_kinds.is_empty()
            && super::reserve::run_kind(&t.spec, self.row).is_some_and(|k| t.spec.backfill_kinds.contains(&k))
    }

    /// The queue time of the row: its `queued` column, unless that column is also the `expected`
    /// one (a logical date: Mage's `execution_date`) and its date is no queue time here (a
    /// backfill's logical date, [`Row::logical_only`], or a date out of the range of the row's
    /// own times). The queue wait then runs from `created` alone (lifecycle.md B.1: "started_at -
    /// created_at (or - execution_date for scheduled runs)").
    pub fn queued(&self, t: &Table) -> Option<DateTime<Utc>> {
        let times = &t.spec.times;
        let at = self.time(t, &times.queued)?;
        let logical = times.queued.is_some() && times.queued == times.expected;
        let usable = !logical || !(self.logical_only(t) || crate::decode::time::outside(&at).is_some());
        usable.then_some(at)
    }
}
