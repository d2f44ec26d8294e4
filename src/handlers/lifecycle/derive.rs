//! From one change of one row to the facts it carries: pure functions, no I/O.
//!
//! Counting rules (docs/metrics.md, "How each is computed"):
//! * `started`: the status is a running one, or a terminal one of an attempt that ran, and the
//!   start column is set; one per attempt (the `attempt` columns, else the start time itself;
//!   with `starts = "start_time"` always the start time, for rows whose retry keeps the first
//!   attempt's start).
//! * `finished`: the status is terminal; one per attempt (`order = "attempt"`), or one per
//!   terminal episode in log order (`order = "log"`: a terminal change that follows a
//!   non-terminal one starts an episode; a later touch of a finished row adds nothing).
//! * `retried`: the change matches the table's `retried` rule (one per attempt), or, in log
//!   order, a terminal episode is followed by a non-terminal change.
//! * `sla_missed`: the SLA column has its missed value; once per row.
//! * `order = "events"`: each row is the fact its event column names (or the table's one
//!   `fact`), once per row; rows that name no fact are skipped before any lookup.
//!
//! Values come from the row's own times; when a terminal row has no end time (a Mage run that
//! failed or was cancelled), the commit time of the change is the end. The row passed the checks
//! of `check.rs` first (its times are times, in range, a start not after its end); a backfill's
//! logical date is neither a queue time nor a due time ([`Row::queued`], [`Row::logical_only`]).

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use super::Table;
use super::spec::{Order, Starts};
use crate::facts::{ChangeNote, Mark, RowState};

/// A fact a change carries, before it is reserved.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub fact: Fact,
    /// What tells this fact apart from the same fact of another attempt of the row.
    pub attempt: String,
    /// The point time: the start, the end, or the commit time of the change.
    pub time: DateTime<Utc>,
    pub status: Option<String>,
    pub result: Option<String>,
    /// Seconds: duration (finished), queue wait and schedule delay (started).
    pub duration: Option<f64>,
    pub queue_wait: Option<f64>,
    pub schedule_delay: Option<f64>,
    /// Records the run wrote (`records` of the profile), on a `finished` fact.
    pub records: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    Started,
    Finished,
    Retried,
    SlaMissed,
}

impl Fact {
    pub fn as_str(self) -> &'static str {
        match self {
            Fact::Started => "started",
            Fact::Finished => "finished",
            Fact::Retried => "retried",
            Fact::SlaMissed => "sla_missed",
        }
    }
}

/// A value at a column or a dotted path into a JSON column (a JSON column that arrived as text
/// is parsed).
pub fn lookup_path<'a>(row: &'a Map<String, Value>, path: &str) -> Option<std::borrow::Cow<'a, Value>> {
    // a plain column (the common case) is one map lookup, without gathering the path's parts
    let Some((head, tail)) = path.split_once('.') else {
        return row.get(path).map(std::borrow::Cow::Borrowed);
    };
    let first = row.get(head)?;
    let rest: Vec<&str> = tail.split('.').collect();
    let walk = |mut v: &Value| -> Option<Value> {
        for p in &rest {
            v = v.as_object()?.get(*p)?;
        }
        Some(v.clone())
    };
    match first {
        Value::String(text) => {
            serde_json::from_str::<Value>(text).ok().as_ref().and_then(walk).map(std::borrow::Cow::Owned)
        }
        v => {
            let mut cur = v;
            for p in &rest {
                cur = cur.as_object()?.get(*p)?;
            }
            Some(std::borrow::Cow::Borrowed(cur))
        }
    }
}

/// A value as label text: strings as they are, numbers and booleans as JSON writes them; null
/// and structures are no text.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A time column: an ISO-8601 text (without offset: UTC), or a number in the column's unit
/// (`epoch_s`, `epoch_ms`, `epoch_us`; without a hint the magnitude decides, so that Debezium's
/// microsecond timestamps and Dagster's epoch seconds both read right).
pub fn time(v: &Value, unit: Option<&str>) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => crate::decode::datastream::parse_timestamp(v, "time")
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| s.parse::<f64>().ok().and_then(|n| epoch(n, unit))),
        Value::Number(n) => epoch(n.as_f64()?, unit),
        _ => None,
    }
}

fn epoch(n: f64, unit: Option<&str>) -> Option<DateTime<Utc>> {
    let micros = match unit {
        Some("epoch_s") => n * 1e6,
        Some("epoch_ms") => n * 1e3,
        Some("epoch_us") => n,
        _ if n.abs() >= 1e17 => n / 1e3,
        _ if n.abs() >= 1e14 => n,
        _ if n.abs() >= 1e11 => n * 1e3,
        _ => n * 1e6,
    };
    micros.is_finite().then(|| Utc.timestamp_micros(micros.round() as i64).single()).flatten()
}

fn seconds(later: DateTime<Utc>, earlier: DateTime<Utc>) -> Option<f64> {
    let us = (later - earlier).num_microseconds()?;
    (us >= 0).then(|| us as f64 / 1e6)
}

/// What derivation reads of one change.
pub struct Row<'a> {
    pub row: &'a Map<String, Value>,
    /// The commit time of the change.
    pub commit: DateTime<Utc>,
}

impl Row<'_> {
    /// The time in `column` (none when the column is absent, null or no time: the row's times
    /// were checked before, [`Row::corrupt_time`]).
    pub(super) fn time(&self, t: &Table, column: &Option<String>) -> Option<DateTime<Utc>> {
        let c = column.as_deref()?;
        time(self.row.get(c)?, t.spec.units.get(c).map(String::as_str))
    }

    fn attempt(&self, t: &Table) -> Option<String> {
        if t.spec.attempt.is_empty() {
            return None;
        }
        Some(
            t.spec
                .attempt
                .iter()
                .map(|c| self.row.get(c).and_then(text).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("|"),
        )
    }

    pub fn status(&self, t: &Table) -> Option<String> {
        self.row.get(t.spec.status.as_deref()?).and_then(text)
    }

    /// The note of this change for the row's history (`order = "log"`).
    pub fn note(&self, t: &Table, position: u128) -> Option<ChangeNote> {
        let status = self.status(t)?;
        let terminal = t.spec.terminal.contains_key(&status);
        let ended = self.time(t, &t.spec.times.ended);
        Some(ChangeNote {
            position,
            terminal,
            start_us: self.time(t, &t.spec.times.started).map(|s| s.timestamp_micros()),
            end_us: terminal.then(|| ended.unwrap_or(self.commit).timestamp_micros()),
            duration_s: t.spec.duration.as_ref().and_then(|c| self.row.get(c)).and_then(Value::as_f64),
            end_from_commit: terminal && ended.is_none(),
            records: t.spec.records.as_deref().and_then(|p| lookup_path(self.row, p)).and_then(|v| v.as_f64()),
            status,
        })
    }
}

/// The facts of one change that the row alone decides (every fact in `attempt` order; only
/// `started` and `sla_missed` in `log` order, whose `finished` and `retried` come from
/// [`episodes`]).
pub fn candidates(t: &Table, r: &Row) -> Vec<Candidate> {
    let mut out = Vec::new();
    let status = r.status(t);
    let attempt = r.attempt(t);
    let started = r.time(t, &t.spec.times.started);
    if let (Some(s), Some(start)) = (&status, started)
        && t.started_states.contains(s)
    {
        let queued = [r.queued(t), r.time(t, &t.spec.times.created)].into_iter().flatten().max();
        // a backfill's expected time is the logical date it fills in, never a due time
        let due = t.schedule_delay_applies(r.row) && !r.logical_only(t);
        // nor is a logical date no run can be due at (before 2000, more than a day ahead: a 1970
        // date gave a 57-year schedule delay)
        let scheduled = due
            .then(|| r.time(t, &t.spec.times.expected))
            .flatten()
            .filter(|at| crate::decode::time::outside(at).is_none());
        let by_attempt = attempt.clone().filter(|_| t.spec.starts == Starts::Attempt);
        out.push(Candidate {
            fact: Fact::Started,
            attempt: by_attempt.unwrap_or_else(|| start.timestamp_micros().to_string()),
            time: start,
            status: Some(s.clone()),
            result: None,
            duration: None,
            queue_wait: queued.and_then(|q| seconds(start, q)),
            schedule_delay: scheduled.and_then(|e| seconds(start, e)),
            records: None,
        });
    }
    if t.spec.order == Order::Attempt
        && let Some(s) = &status
        && let Some(result) = t.spec.terminal.get(s)
    {
        let note = r.note(t, 0).expect("a status");
        out.push(finished(t, note, attempt.clone().unwrap_or_default(), result));
    }
    if t.spec.order == Order::Attempt
        && let Some(rule) = &t.spec.retried
    {
        let by_status = rule.statuses.is_empty() || status.as_ref().is_some_and(|s| rule.statuses.contains(s));
        let value = rule.column.as_deref().and_then(|c| lookup_path(r.row, c)).filter(|v| !v.is_null());
        let by_column = match (&rule.column, rule.above, rule.present) {
            (None, _, _) => true,
            (Some(_), Some(min), _) => value.as_ref().and_then(|v| v.as_f64()).is_some_and(|n| n > min),
            (Some(_), None, true) => value.is_some(),
            (Some(_), None, false) => true,
        };
        if by_status && by_column && (!rule.statuses.is_empty() || rule.column.is_some()) {
            out.push(Candidate {
                fact: Fact::Retried,
                attempt: attempt.clone().or_else(|| value.as_deref().and_then(text)).unwrap_or_default(),
                time: r.commit,
                status: status.clone(),
                result: None,
                duration: None,
                queue_wait: None,
                schedule_delay: None,
                records: None,
            });
        }
    }
    if let Some(sla) = &t.spec.sla
        && r.row.get(&sla.column).is_some_and(|v| same(v, &sla.equals))
    {
        out.push(Candidate {
            fact: Fact::SlaMissed,
            attempt: String::new(),
            time: r.commit,
            status: status.clone(),
            result: None,
            duration: None,
            queue_wait: None,
            schedule_delay: None,
            records: None,
        });
    }
    out
}

/// A JSON value equal to a TOML value (booleans, numbers, strings).
pub fn same(v: &Value, t: &toml::Value) -> bool {
    match (v, t) {
        (Value::Bool(a), toml::Value::Boolean(b)) => a == b,
        (Value::String(a), toml::Value::String(b)) => a == b,
        (Value::Number(a), toml::Value::Integer(b)) => a.as_f64() == Some(*b as f64),
        (Value::Number(a), toml::Value::Float(b)) => a.as_f64() == Some(*b),
        _ => false,
    }
}

fn finished(t: &Table, note: ChangeNote, attempt: String, result: &str) -> Candidate {
    let end = Utc.timestamp_micros(note.end_us.unwrap_or_default()).single().unwrap_or_default();
    let ran = !t.spec.not_run.contains(&note.status);
    let duration = if ran {
        note.duration_s.or_else(|| {
            let start = Utc.timestamp_micros(note.start_us?).single()?;
            seconds(end, start)
        })
    } else {
        None
    };
    Candidate {
        fact: Fact::Finished,
        attempt,
        time: end,
        status: Some(note.status),
        result: Some(result.to_string()),
        duration,
        queue_wait: None,
        schedule_delay: None,
        records: note.records,
    }
}

/// The `finished` and `retried` facts of a row counted in log order, decided on the row's
/// state in the store (run atomically there: no other change of the row in between).
///
/// The change joins the row's history (the same position twice is one change), ordered by log
/// position. A terminal change that follows a non-terminal one (or opens the history) starts an
/// episode; every later terminal change before the next non-terminal one belongs to it (a touch
/// of a finished row). Each episode is one `finished` fact, and one `retried` fact when a
/// non-terminal change follows it. A fact already written is recorded as a mark at the position
/// of the change it was taken from; an episode holding a mark of a fact is not written again.
/// Changes arriving in any order only ever split episodes (never merge them), so every fact is
/// written once, and the counts are those of the complete history. The status of a fact is that
/// of its episode's first terminal change when it was written.
pub fn decide(state: &mut RowState, note: &ChangeNote) -> Vec<Mark> {
    if !state.changes.iter().any(|c| c.position == note.position) {
        state.changes.push(note.clone());
        state.changes.sort_by_key(|c| c.position);
    }
    struct Episode<'a> {
        first: &'a ChangeNote,
        start: Option<i64>,
        last: u128,
        followed: bool,
    }
    let mut episodes: Vec<Episode> = Vec::new();
    let mut previous_terminal = false;
    // the start of the attempt, when the terminal change does not carry it (an OpenLineage
    // COMPLETE event): the latest start noted before it
    let mut last_start = None;
    for c in &state.changes {
        match (c.terminal, previous_terminal, episodes.last_mut()) {
            (true, true, Some(e)) => e.last = c.position,
            (true, _, _) => {
                episodes.push(Episode { first: c, start: c.start_us.or(last_start), last: c.position, followed: false })
            }
            (false, true, Some(e)) => e.followed = true,
            _ => {}
        }
        if c.start_us.is_some() {
            last_start = c.start_us;
        }
        previous_terminal = c.terminal;
    }
    let mut added = Vec::new();
    for fact in [Fact::Finished, Fact::Retried] {
        for e in &episodes {
            if fact == Fact::Retried && !e.followed {
                continue;
            }
            let inside = |m: &Mark| m.fact == fact.as_str() && (e.first.position..=e.last).contains(&m.note.position);
            if !state.marks.iter().any(inside) && !added.iter().any(inside) {
                let note = ChangeNote { start_us: e.start, ..e.first.clone() };
                added.push(Mark { fact: fact.as_str().to_string(), note });
            }
        }
    }
    state.marks.extend(added.iter().cloned());
    added
}

/// The candidate of a mark written by [`decide`].
pub fn from_mark(t: &Table, mark: &Mark) -> Candidate {
    let result = t.spec.terminal.get(&mark.note.status).cloned().unwrap_or_else(|| "other".into());
    let done = finished(t, mark.note.clone(), String::new(), &result);
    if mark.fact == Fact::Retried.as_str() {
        return Candidate { fact: Fact::Retried, result: None, duration: None, ..done };
    }
    done
}
