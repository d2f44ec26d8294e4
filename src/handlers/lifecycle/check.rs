//! What a row must be before any of its facts is counted, and which of its times the facts may
//! use (docs/metrics.md, "Rows refused, and times left out"). A row that fails a check is corrupt:
//! its change fails for good (400, `invalid_input`, `field` `payload.<column>`, renamed to the
//! delivered record's row path by [`HandlerError::name_row`]) before anything is reserved, so
//! that it never loops as a transient failure and no fact of it is counted from a half-read row.
//!
//! * the status column (and an events table's event column) is a text when present: every
//!   profile's vocabulary is words (lifecycle.md B.5, "status column"); a number or a boolean
//!   can match no status, and the run would never be counted;
//! * each time column the profile reads (`times`, an event's `time`) is a time when present:
//!   an ISO-8601 text or an epoch number (lifecycle.md D.1 #3: values come from the row's own
//!   times; a text that is no time would silently drop the facts measured from it);
//! * the row's own times (`created`, `queued`, `started`, `ended`, an event's `time`) lie from
//!   2000-01-01 to a day ahead ([`crate::decode::time::outside`]); the `expected` column is a
//!   logical date (lifecycle.md B.1 "execution_date: scheduled time", B.5 "expected start") and
//!   may have any age, whichever other role it plays;
//! * in a terminal status of an attempt that ran, the start is not after the end: the end column
//!   is that attempt's own there, and every value measured from the two (duration, and the
//!   start itself as the point time of `started`) would be wrong.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Table;
use super::derive::Row;
use crate::handlers::HandlerError;

/// What a JSON value is, for an error message (the value itself is never quoted).
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn corrupt(t: &Table, column: &str, why: String) -> HandlerError {
    HandlerError::invalid(
        format!("payload.{column}"),
        format!("The {} row's {column} {why}: the row is corrupt, none of its facts is counted.", t.name),
    )
}

impl Row<'_> {
    /// The status column, or an events table's event column, holding something other than a
    /// text (a number, a boolean, a structure): no status of any profile, so the row's run
    /// would never be counted. Null or absent is no status (nothing to count yet).
    pub fn mistyped_status(&self, t: &Table) -> Option<HandlerError> {
        let event = t.spec.events.as_ref().and_then(|e| e.column.as_ref());
        t.spec.status.iter().chain(event).find_map(|c| match self.row.get(c) {
            None | Some(Value::Null | Value::String(_)) => None,
            Some(v) => Some(corrupt(t, c, format!("must be a text (a status word); it is {}", kind(v)))),
        })
    }

    /// The first time the row's facts cannot be taken from: a time column that is present but
    /// no time, one of the row's own times out of range (not `expected`), or, in a terminal
    /// status of an attempt that ran, a start after the end.
    pub fn corrupt_time(&self, t: &Table) -> Option<HandlerError> {
        let times = &t.spec.times;
        let event = t.spec.events.as_ref().map(|e| &e.time);
        let columns = [&times.created, &times.queued, &times.expected, &times.started, &times.ended];
        for c in columns.into_iter().flatten().chain(event) {
            let Some(v) = self.row.get(c).filter(|v| !v.is_null()) else { continue };
            let unit = t.spec.units.get(c).map(String::as_str);
            let Some(at) = super::derive::time(v, unit) else {
                let what = format!("is not a time (an ISO-8601 text or an epoch number); it is {}", kind(v));
                return Some(corrupt(t, c, what));
            };
            if times.expected.as_ref() == Some(c) {
                continue;
            }
            if let Some(why) = crate::decode::time::outside(&at) {
                return Some(corrupt(t, c, format!("is {}, {why}", at.to_rfc3339())));
            }
        }
        let status = self.status(t)?;
        if !t.spec.terminal.contains_key(&status) || t.spec.not_run.contains(&status) {
            return None;
        }
        let (start, end) = (self.time(t, &times.started)?, self.time(t, &times.ended)?);
        let (s, e) = (times.started.as_deref()?, times.ended.as_deref()?);
        (start > end).then(|| {
            let why = format!("({}) is after its {e} ({}) in status {status}", start.to_rfc3339(), end.to_rfc3339());
            corrupt(t, s, why)
        })
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
