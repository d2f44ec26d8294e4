//! Run-lifecycle metrics from the orchestrator's own run table: profiles as data, each fact
//! counted exactly once.
//!
//! A profile (`profiles/<orchestrator>.toml`, see [`spec`]) says, for each run or task table,
//! which columns hold the key, the pipeline and task names, the status and its vocabulary, the
//! times, and what tells attempts apart. [`derive`] turns one change of one row into facts
//! (`started`, `finished`, `retried`, `sla_missed`); [`Lifecycle::derive`] reserves each fact
//! in the fact store ([`crate::facts`]) and returns the points of the facts it reserved, so that
//! a fact is written once whatever the order and number of deliveries. The metric set follows
//! OpenTelemetry's `cicd.pipeline.run.*` conventions ([`names`]).

pub mod config;
pub mod derive;
mod emit;
mod load;
pub mod rules;
pub mod spec;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use load::{RESULTS, load};

use crate::decode::{ChangeEvent, ChangeKind};
use crate::facts::{FactStore, Key, Reservation, StoreError};
use crate::handlers::HandlerError;
use crate::sink::{Labels, Point};
use derive::{Candidate, Fact, Row};
use spec::{Level, Order, Source, TableSpec};

/// Metric names (OpenTelemetry's `cicd.pipeline.run.*` model) and their units (UCUM).
pub mod names {
    pub const RUN_STARTED: &str = "pipeline.run.started";
    pub const RUN_FINISHED: &str = "pipeline.run.finished";
    pub const RUN_DURATION: &str = "pipeline.run.duration";
    pub const RUN_QUEUE_WAIT: &str = "pipeline.run.queue_wait";
    pub const RUN_SCHEDULE_DELAY: &str = "pipeline.run.schedule_delay";
    pub const RUN_SLA_MISSED: &str = "pipeline.run.sla_missed";
    pub const RUN_RETRIED: &str = "pipeline.run.retried";
    pub const TASK_FINISHED: &str = "pipeline.task.finished";
    pub const TASK_DURATION: &str = "pipeline.task.duration";
    pub const TASK_QUEUE_WAIT: &str = "pipeline.task.queue_wait";
    pub const TASK_RETRIED: &str = "pipeline.task.retried";
    pub const CDC_LAG: &str = "pipeline.cdc.lag";
    pub const RUN_RECORDS: &str = "pipeline.run.records";
    /// Every lifecycle metric: (name, kind, unit).
    pub const ALL: [(&str, &str, &str); 13] = [
        (RUN_STARTED, "counter", "{run}"),
        (RUN_FINISHED, "counter", "{run}"),
        (RUN_DURATION, "histogram", "s"),
        (RUN_QUEUE_WAIT, "histogram", "s"),
        (RUN_SCHEDULE_DELAY, "histogram", "s"),
        (RUN_SLA_MISSED, "counter", "{run}"),
        (RUN_RETRIED, "counter", "{run}"),
        (TASK_FINISHED, "counter", "{task}"),
        (TASK_DURATION, "histogram", "s"),
        (TASK_QUEUE_WAIT, "histogram", "s"),
        (TASK_RETRIED, "counter", "{task}"),
        (CDC_LAG, "histogram", "s"),
        (RUN_RECORDS, "counter", "{record}"),
    ];
}

/// One loaded profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The file name without `.toml` (`mage`, `airflow-3`).
    pub name: String,
    /// The `orchestrator` label (`mage`, `airflow`).
    pub orchestrator: String,
    pub tables: Vec<Table>,
    pub lookups: Vec<Lookup>,
}

/// The rules of one table.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub schema: Option<String>,
    spec: TableSpec,
    /// Other tables look this one up: it remembers `key -> pipeline`.
    publishes: bool,
    /// Statuses in which the start column is the attempt's own.
    started_states: Vec<String>,
}

/// A table read only to name things (`flow.id -> flow.name`).
#[derive(Debug, Clone)]
pub struct Lookup {
    pub table: String,
    pub key: Vec<String>,
    pub value: String,
}

impl Table {
    fn applies(&self, event: &ChangeEvent, row: &Map<String, Value>) -> bool {
        self.schema.as_deref().is_none_or(|s| event.source_metadata.schema.as_deref() == Some(s))
            && self.spec.requires.iter().all(|c| match c.strip_prefix('!') {
                Some(absent) => !row.contains_key(absent),
                None => row.contains_key(c),
            })
    }

    fn schedule_delay_applies(&self, row: &Map<String, Value>) -> bool {
        self.spec.schedule_delay_when.iter().all(|(c, want)| row.get(c).is_some_and(|v| derive::same(v, want)))
    }

    /// Whether this is a run (not a task) table.
    pub fn is_run(&self) -> bool {
        self.spec.level == Level::Run
    }
}

/// What one change yielded: the points of the facts this call reserved (and the CDC lag), and
/// the reserved facts, to release if the points cannot be written.
#[derive(Debug, Default)]
pub struct Derived {
    pub points: Vec<Point>,
    pub reserved: Vec<Reservation>,
    /// `<fact>` names of the reserved facts, for the event's log line.
    pub facts: Vec<&'static str>,
}

/// The lifecycle engine: the profiles in force.
pub struct Lifecycle {
    profiles: Vec<Profile>,
    project: String,
    /// How long a task row waits for its parent row (the pipeline name) before it is counted
    /// with pipeline `unknown`.
    lookup_wait: Duration,
}

impl Lifecycle {
    pub fn new(profiles: Vec<Profile>, project: impl Into<String>, lookup_wait: Duration) -> Lifecycle {
        Lifecycle { profiles, project: project.into(), lookup_wait }
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The tables whose rows name other rows' pipelines: run tables that task tables look up
    /// (`pipeline = { lookup = ... }`) and lookup tables, without duplicates, in profile order.
    pub fn parent_tables(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.profiles {
            let names =
                p.tables.iter().filter(|t| t.publishes).map(|t| &t.name).chain(p.lookups.iter().map(|l| &l.table));
            for name in names {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
        }
        out
    }

    /// The profile and table rules of an event's table, if a profile describes it.
    pub fn table_of(&self, event: &ChangeEvent) -> Option<(&Profile, &Table)> {
        let name = event.table()?;
        let row = &event.payload.as_ref()?.row;
        self.profiles
            .iter()
            .find_map(|p| p.tables.iter().find(|t| t.name == name && t.applies(event, row)).map(|t| (p, t)))
    }

    fn lookup_of(&self, event: &ChangeEvent) -> Option<(&Profile, &Lookup)> {
        let name = event.table()?;
        self.profiles.iter().find_map(|p| p.lookups.iter().find(|l| l.table == name).map(|l| (p, l)))
    }

    /// Whether any profile reads this event (for dispatch reports).
    pub fn matches(&self, event: &ChangeEvent) -> bool {
        event.change_kind() == ChangeKind::Upsert && (self.table_of(event).is_some() || self.lookup_of(event).is_some())
    }

    /// The facts of one change, reserved in `store`, as points. Deletes carry no fact (a purged
    /// row is not a run that ended).
    ///
    /// Errors: the store cannot be reached, or the parent row that names the pipeline has not
    /// been seen yet and the change is younger than the lookup wait (both transient: nothing was
    /// reserved); a row without its key or pipeline column (permanent).
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
                let Some(parent) = row.get(via).and_then(derive::text) else {
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

fn run_kind(t: &TableSpec, row: &Map<String, Value>) -> Option<String> {
    let rk = t.run_kind.as_ref()?;
    let v = row.get(&rk.column).filter(|v| !v.is_null());
    match (&rk.null, &rk.otherwise, v) {
        (Some(null), _, None) => Some(null.clone()),
        (_, Some(otherwise), Some(_)) => Some(otherwise.clone()),
        (_, _, Some(v)) => derive::text(v).map(|s| s.to_ascii_lowercase()),
        _ => None,
    }
}

fn key_text(row: &Map<String, Value>, key: &[String], table: &str) -> Result<String, HandlerError> {
    let mut parts = Vec::with_capacity(key.len());
    for c in key {
        match row.get(c).and_then(derive::text) {
            Some(v) => parts.push(v),
            None => {
                return Err(HandlerError::invalid(
                    format!("payload.{c}"),
                    format!("The {table} row has no key column '{c}'."),
                ));
            }
        }
    }
    Ok(parts.join("\u{1f}"))
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

/// Names of the metrics and their labels, for docs and generated dashboards.
pub fn catalogue() -> BTreeMap<&'static str, (&'static str, &'static str)> {
    names::ALL.iter().map(|(n, k, u)| (*n, (*k, *u))).collect()
}

/// The label keys of one lifecycle metric with the profiles in force ([`label_keys`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelKeys {
    /// Every key a point of the metric can carry.
    pub all: std::collections::BTreeSet<String>,
    /// The keys every point carries, with a value that is never empty: `orchestrator`,
    /// `pipeline`, and per metric `task`, `table`, `result`, `run_kind` (not an extra label,
    /// left out when empty, nor `status`, empty when a fact has none).
    pub always: std::collections::BTreeSet<String>,
}

/// The label keys each lifecycle metric can carry with these profiles: what [`Lifecycle::derive`]
/// writes (`points` and `lag` above), per table level, with each table's extra labels
/// (`labels = { partner = ... }`). Every table is taken to write every metric of its level (a
/// superset: `all` may list a key no point carries, `always` never lists one that a point
/// lacks). A metric that no table of these profiles can write is absent. For generated
/// dashboards, alerts and metric definitions ([`crate::ops`]); `tests/ops.rs` checks it against
/// every point of the recorded runs.
pub fn label_keys(profiles: &[Profile]) -> BTreeMap<&'static str, LabelKeys> {
    use names::*;
    let mut out: BTreeMap<&'static str, LabelKeys> = BTreeMap::new();
    let mut add = |metric: &'static str, base: &[&str], extra_labels: &[&str], specific: &[&str]| {
        let this: std::collections::BTreeSet<String> =
            base.iter().chain(specific).filter(|k| **k != "status").map(|k| k.to_string()).collect();
        let e = out.entry(metric).or_insert_with(|| LabelKeys { all: Default::default(), always: this.clone() });
        e.all.extend(base.iter().chain(extra_labels).chain(specific).map(|k| k.to_string()));
        e.always = e.always.intersection(&this).cloned().collect();
    };
    for p in profiles {
        for t in &p.tables {
            let mut base: Vec<&str> = vec!["orchestrator", "pipeline"];
            if t.spec.task.is_some() {
                base.push("task");
            }
            let extra: Vec<&str> = t.spec.labels.keys().map(String::as_str).collect();
            let without_task: Vec<&str> = base.iter().copied().filter(|k| *k != "task").collect();
            add(CDC_LAG, &["orchestrator", "table"], &[], &[]);
            if t.is_run() {
                add(RUN_STARTED, &base, &extra, &["run_kind"]);
                add(RUN_QUEUE_WAIT, &base, &extra, &[]);
                add(RUN_SCHEDULE_DELAY, &base, &extra, &[]);
                add(RUN_FINISHED, &base, &extra, &["run_kind", "result", "status"]);
                add(RUN_DURATION, &base, &extra, &["result"]);
                add(RUN_RECORDS, &base, &extra, &[]);
                add(RUN_RETRIED, &base, &extra, &[]);
            } else {
                add(TASK_QUEUE_WAIT, &base, &extra, &[]);
                add(TASK_FINISHED, &base, &extra, &["result", "status"]);
                add(TASK_DURATION, &base, &extra, &["result"]);
                add(RUN_RECORDS, &without_task, &extra, &[]);
                add(TASK_RETRIED, &base, &extra, &[]);
            }
            add(RUN_SLA_MISSED, &base, &extra, &[]);
        }
    }
    out
}

#[cfg(test)]
mod tests;
