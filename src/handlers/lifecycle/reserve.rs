//! Fact reservation: [`Lifecycle::derive`] turns one change into its facts, reserves each in the
//! fact store (so that a fact is written once whatever the order and number of deliveries), and
//! returns the points of the facts it reserved, with the CDC lag; the pipeline name of a task row
//! is looked up from its parent row.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::derive::{self, Candidate, Fact, Row};
use super::spec::{Order, Source, TableSpec};
use super::{Derived, Lifecycle, Profile, Table, names};
use crate::decode::{ChangeEvent, ChangeKind};
use crate::facts::{FactStore, Key, Reservation, StoreError};
use crate::handlers::HandlerError;
use crate::sink::{Labels, Point};

impl Lifecycle {
    /// The facts of one change, reserved in `store`, as points. Deletes carry no fact (a purged
    /// row is not a run that ended).
    ///
    /// Errors: the store cannot be reached, or the parent row that names the pipeline has not
    /// been seen yet and the change is younger than the lookup wait (both transient: nothing was
    /// reserved); a row without its key or pipeline column, whose status is no text
    /// ([`Row::mistyped_status`]), whose times are no times, lie where no run can have them
    /// (before 2000, more than a day ahead) or put a finished attempt's start after its end
    /// ([`Row::corrupt_time`]), or whose parent key can name no parent row (a fraction, a
    /// boolean, a structure), naming the column (permanent, nothing reserved).
    pub async fn derive(
        &self,
        event: &ChangeEvent,
        store: &dyn FactStore,
        now: DateTime<Utc>,
    ) -> Result<Derived, HandlerError> {
        let mut out = Derived::default();
        if event.change_kind() != ChangeKind::Upsert {
            return Ok(out);
        }
        let Some(payload) = &event.payload else { return Ok(out) };
        let row = &payload.row;
        let source = source_of(event);
        if let Some((p, l)) = self.lookup_of(event) {
            let key = key_text(row, &l.key, &l.table)?;
            if let Some(value) = row.get(&l.value).and_then(derive::text) {
                store
                    .put_dimension(dimension(&p.orchestrator, &source, &l.table, &key), &value)
                    .await
                    .map_err(store_err)?;
            }
            return Ok(out);
        }
        let Some((p, t)) = self.table_of(event) else { return Ok(out) };
        let commit = event.source_timestamp.with_timezone(&Utc);
        let r = Row { row, commit };
        if let Some(e) = r.mistyped_status(t) {
            return Err(e);
        }
        let candidates = match t.spec.order {
            Order::Events => events(t, &r),
            _ => derive::candidates(t, &r),
        };
        if t.spec.order == Order::Events && candidates.is_empty() {
            // most rows of an event table name no fact (Dagster's ENGINE_EVENT, LOGS_CAPTURED):
            // no key, no lookup, no parent to wait for; only the CDC lag
            self.lag(event, p, t, commit, &mut out);
            return Ok(out);
        }
        if let Some(e) = r.corrupt_time(t) {
            return Err(e);
        }
        let key = key_text(row, &t.spec.key, &t.name)?;
        let pipeline = self.pipeline(p, t, event, row, &source, store, now).await?;
        if t.publishes {
            store
                .put_dimension(dimension(&p.orchestrator, &source, &t.name, &key), &pipeline)
                .await
                .map_err(store_err)?;
        }
        let mut marked = Vec::new();
        if t.spec.order == Order::Log
            && let Some(note) = r.note(t, position(event))
        {
            let row_key = Key::of(&[&p.orchestrator, &source, &t.name, &key]);
            let marks = store.update_row(row_key, &|s| derive::decide(s, &note)).await.map_err(store_err)?;
            marked = marks.iter().map(|m| derive::from_mark(t, m)).collect();
            if !marks.is_empty() {
                out.reserved.push(Reservation::Marks { row: row_key, marks });
            }
        }
        let mut labels = Labels::new();
        labels.insert("orchestrator".into(), p.orchestrator.clone());
        labels.insert("pipeline".into(), pipeline);
        if let Some(task) = t.spec.task.as_deref() {
            let name =
                derive::lookup_path(row, task).and_then(|v| derive::text(&v)).unwrap_or_else(|| "unknown".into());
            labels.insert("task".into(), name);
        }
        for (label, path) in &t.spec.labels {
            if let Some(v) = derive::lookup_path(row, path).and_then(|v| derive::text(&v)).filter(|v| !v.is_empty()) {
                labels.insert(label.clone(), v);
            }
        }
        let run_kind = run_kind(&t.spec, row);
        for c in &marked {
            out.facts.push(c.fact.as_str());
            self.points(t, c, &labels, &run_kind, &mut out.points);
        }
        for c in candidates {
            let fact = Key::of(&[&p.orchestrator, &source, &t.name, &key, c.fact.as_str(), &c.attempt]);
            match store.reserve(fact).await {
                Ok(true) => {
                    out.reserved.push(Reservation::Fact(fact));
                    out.facts.push(c.fact.as_str());
                    self.points(t, &c, &labels, &run_kind, &mut out.points);
                }
                Ok(false) => {}
                Err(e) => {
                    for r in out.reserved.drain(..) {
                        let _ = crate::facts::release(store, &r).await;
                    }
                    return Err(store_err(e));
                }
            }
        }
        self.lag(event, p, t, commit, &mut out);
        Ok(out)
    }

    /// The CDC lag of the change (read time - commit time), once per change.
    fn lag(&self, event: &ChangeEvent, p: &Profile, t: &Table, commit: DateTime<Utc>, out: &mut Derived) {
        if let Some(read) = event.read_timestamp {
            let lag = (read.with_timezone(&Utc) - commit).num_microseconds().unwrap_or(0) as f64 / 1e6;
            let labels = Labels::from([
                ("orchestrator".to_string(), p.orchestrator.clone()),
                ("table".to_string(), t.name.clone()),
            ]);
            out.points.push(Point::histogram(names::CDC_LAG, lag.max(0.0), "s", commit, labels, self.project.clone()));
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn pipeline(
        &self,
        p: &Profile,
        t: &Table,
        event: &ChangeEvent,
        row: &Map<String, Value>,
        source: &str,
        store: &dyn FactStore,
        now: DateTime<Utc>,
    ) -> Result<String, HandlerError> {
        match &t.spec.pipeline {
            Source::Path(path) => derive::lookup_path(row, path)
                .and_then(|v| derive::text(&v))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    HandlerError::invalid(
                        format!("payload.{path}"),
                        format!("The {} row has no pipeline name in '{path}'.", t.name),
                    )
                }),
            Source::Lookup { lookup, via } => {
                let Some(parent) = parent_key(t, lookup, via, row)? else {
                    return Ok("unknown".into());
                };
                if let Some(name) =
                    store.get_dimension(dimension(&p.orchestrator, source, lookup, &parent)).await.map_err(store_err)?
                {
                    return Ok(name);
                }
                let age = (now - event.source_timestamp.with_timezone(&Utc)).to_std().unwrap_or_default();
                if age < self.lookup_wait {
                    return Err(HandlerError::ParentNotSeen {
                        field: format!("payload.{via}"),
                        message: format!(
                            "The {lookup} row {parent} that names this {} row's pipeline has not been seen yet; retry later (counted as pipeline 'unknown' once the change is {} s old).",
                            t.name,
                            self.lookup_wait.as_secs()
                        ),
                    });
                }
                Ok("unknown".into())
            }
        }
    }
}

/// Events mode: each insert of an append-only table is a fact of the kind its event column
/// names (its status label is that value), or the table's one `fact` (no status label).
fn events(t: &Table, r: &Row) -> Vec<Candidate> {
    let Some(spec) = &t.spec.events else { return Vec::new() };
    let (kind, meaning) = match (&spec.column, &spec.fact) {
        (Some(column), _) => {
            let Some(kind) = r.row.get(column).and_then(derive::text) else { return Vec::new() };
            let Some(meaning) = spec.values.get(&kind) else { return Vec::new() };
            (Some(kind), meaning)
        }
        (None, Some(fact)) => (None, fact),
        (None, None) => return Vec::new(),
    };
    let time = r.row.get(&spec.time).and_then(|v| derive::time(v, t.spec.units.get(&spec.time).map(String::as_str)));
    let time = time.unwrap_or(r.commit);
    let (fact, result) = match meaning.as_str() {
        "started" => (Fact::Started, None),
        "sla_missed" => (Fact::SlaMissed, None),
        "retried" => (Fact::Retried, None),
        result => (Fact::Finished, Some(result.to_string())),
    };
    vec![Candidate {
        records: None,
        fact,
        attempt: String::new(),
        time,
        status: kind,
        result,
        duration: None,
        queue_wait: None,
        schedule_delay: None,
    }]
}

/// The run kind of a row (`run_kind` of the profile): the `run_kind` label, and what
/// `backfill_kinds` is matched against.
pub(super) fn run_kind(t: &TableSpec, row: &Map<String, Value>) -> Option<String> {
    let rk = t.run_kind.as_ref()?;
    let v = row.get(&rk.column).filter(|v| !v.is_null());
    match (&rk.null, &rk.otherwise, v) {
        (Some(null), _, None) => Some(null.clone()),
        (_, Some(otherwise), Some(_)) => Some(otherwise.clone()),
        (_, _, Some(v)) => derive::text(v).map(|s| s.to_ascii_lowercase()),
        _ => None,
    }
}

/// A task row's parent key (`pipeline = { lookup, via }`) as the parent's key text: a text, or
/// a number that is an integer (as [`key_text`] writes the parent's key; a whole number written
/// as a float, `7.0`, is that integer, as the decoders read such numbers); null or absent: no
/// parent (pipeline `unknown`). A fraction, a boolean or a structure can never be a parent row's
/// key (lifecycle.md B.1, B.5: `pipeline_run_id` int FK, Prefect `flow_run_id` uuid): waiting
/// for that parent would only retry the change until `LOOKUP_WAIT_SECS`, so it is refused for
/// good, naming the column.
fn parent_key(t: &Table, lookup: &str, via: &str, row: &Map<String, Value>) -> Result<Option<String>, HandlerError> {
    match row.get(via) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(Value::Number(n)) if let Some(whole) = crate::decode::time::integral(n) => Ok(Some(whole.to_string())),
        Some(v) => {
            let what = match v {
                Value::Number(_) => "a number that is no integer key (a fraction, or beyond 64 bits)",
                other => super::check::kind(other),
            };
            Err(HandlerError::invalid(
                format!("payload.{via}"),
                format!(
                    "The {} row's {via} must be the key of a {lookup} row (an integer or a text); it is {what}: it names no {lookup} row, none of its facts is counted.",
                    t.name
                ),
            ))
        }
    }
}

fn key_text(row: &Map<String, Value>, key: &[String], table: &str) -> Result<String, HandlerError> {
    let part = |c: &String| {
        row.get(c).and_then(derive::text).ok_or_else(|| {
            HandlerError::invalid(format!("payload.{c}"), format!("The {table} row has no key column '{c}'."))
        })
    };
    // one key column (most tables): its text is the key, without gathering and joining parts
    let mut parts = key.iter();
    let mut text = match parts.next() {
        Some(c) => part(c)?,
        None => String::new(),
    };
    for c in parts {
        text.push('\u{1f}');
        text.push_str(&part(c)?);
    }
    Ok(text)
}

fn dimension(orchestrator: &str, source: &str, table: &str, key: &str) -> Key {
    Key::of(&["dimension", orchestrator, source, table, key])
}

/// What tells databases apart: the change stream (Datastream `stream_name`), else nothing.
fn source_of(event: &ChangeEvent) -> String {
    event.stream.clone().unwrap_or_default()
}

/// The change's log position: its LSN (`X/Y` hex halves, or a number), else its commit time in
/// microseconds.
pub fn position(event: &ChangeEvent) -> u128 {
    let lsn = event.source_metadata.lsn.as_deref().and_then(|l| match l.split_once('/') {
        Some((hi, lo)) => Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?),
        None => l.parse::<u64>().ok(),
    });
    match lsn {
        Some(l) => (1u128 << 64) | l as u128,
        None => event.source_timestamp.timestamp_micros().max(0) as u128,
    }
}

fn store_err(e: StoreError) -> HandlerError {
    HandlerError::Store(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    #[test]
    fn a_key_is_its_columns_texts_joined_by_unit_separators() {
        let r = row(serde_json::json!({"dag_id": "etl", "task_id": "load", "map_index": -1, "run_id": "r1"}));
        let cols = |c: &[&str]| c.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(key_text(&r, &cols(&["run_id"]), "t").unwrap(), "r1");
        assert_eq!(
            key_text(&r, &cols(&["dag_id", "task_id", "run_id", "map_index"]), "t").unwrap(),
            "etl\u{1f}load\u{1f}r1\u{1f}-1"
        );
        assert_eq!(key_text(&r, &[], "t").unwrap(), "");
    }

    #[test]
    fn a_missing_key_column_is_named_first_in_key_order() {
        let r = row(serde_json::json!({"dag_id": "etl", "task_id": null}));
        let key = ["dag_id", "task_id", "run_id"].map(String::from);
        match key_text(&r, &key, "task_instance") {
            Err(HandlerError::InvalidInput { field, message, .. }) => {
                assert_eq!(field, "payload.task_id");
                assert_eq!(message, "The task_instance row has no key column 'task_id'.");
            }
            other => panic!("{other:?}"),
        }
    }
}
