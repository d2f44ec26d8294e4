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
//!
//! This file holds the profiles and the tables they describe; the reservation of facts is in
//! `reserve.rs`, the points of a fact in `emit.rs`.

mod check;
pub mod config;
pub mod derive;
mod emit;
mod load;
mod reserve;
pub mod rules;
pub mod spec;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

pub use load::{RESULTS, load};
pub use reserve::position;

use crate::decode::{ChangeEvent, ChangeKind};
use crate::facts::Reservation;
use crate::sink::Point;
use spec::{Level, TableSpec};

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
