//! The metrics the generators may name: the lifecycle metrics the profiles in force can write
//! (with their label keys), the catalogue handlers' gauges and the failure gauge. Nothing else
//! reaches a generated file.

use std::collections::{BTreeMap, BTreeSet};

use super::Inputs;
use crate::handlers::builtin::{FAILURE_LABELS, FAILURE_METRIC};
use crate::handlers::lifecycle::{self, names};
use crate::sink::PointKind;

/// Where a metric comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A run-lifecycle metric ([`names`]): a counter or a histogram.
    Lifecycle,
    /// A handler's gauge ([`crate::handlers::Handler::metrics`]).
    Handler,
    /// `handler_execution_failure`, written for any handler that fails.
    Failure,
}

/// One metric as every backend writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub name: String,
    pub kind: PointKind,
    /// UCUM (`s`, `{run}`); empty for the gauges.
    pub unit: String,
    /// Every label key its points can carry.
    pub labels: BTreeSet<String>,
    /// The keys every point carries with a non-empty value (what a CloudWatch dimension needs).
    pub always: BTreeSet<String>,
    pub origin: Origin,
}

impl Metric {
    pub fn has(&self, label: &str) -> bool {
        self.labels.contains(label)
    }

    /// Whether each stdout line of this metric stands for exactly one occurrence (value 1): the
    /// lifecycle counters but `pipeline.run.records` (a number of records), the reference count
    /// and the failure gauge. A logs-based counter (which counts lines) is exact only for these.
    pub fn one_per_line(&self) -> bool {
        match self.origin {
            Origin::Lifecycle => self.kind == PointKind::Counter && self.name != names::RUN_RECORDS,
            Origin::Failure => true,
            Origin::Handler => self.name == crate::handlers::builtin::PIPELINE_RUN_COUNT,
        }
    }
}

/// The metrics of the inputs, by name.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub metrics: BTreeMap<String, Metric>,
}

impl Model {
    pub fn new(inputs: &Inputs) -> Model {
        let mut metrics = BTreeMap::new();
        let keys = lifecycle::label_keys(inputs.profiles);
        for (name, kind, unit) in names::ALL {
            let Some(keys) = keys.get(name) else { continue };
            let kind = if kind == "counter" { PointKind::Counter } else { PointKind::Histogram };
            metrics.insert(
                name.to_string(),
                Metric {
                    name: name.to_string(),
                    kind,
                    unit: unit.to_string(),
                    labels: keys.all.clone(),
                    always: keys.always.clone(),
                    origin: Origin::Lifecycle,
                },
            );
        }
        for h in inputs.handlers {
            for m in h.metrics() {
                let always: BTreeSet<String> = m.labels.iter().filter(|k| !m.optional.contains(k)).cloned().collect();
                let entry = metrics.entry(m.name.clone()).or_insert_with(|| Metric {
                    name: m.name.clone(),
                    kind: m.kind,
                    unit: m.unit.to_string(),
                    labels: BTreeSet::new(),
                    always: always.clone(),
                    origin: Origin::Handler,
                });
                entry.labels.extend(m.labels);
                entry.always = entry.always.intersection(&always).cloned().collect();
            }
        }
        if !inputs.handlers.is_empty() {
            metrics.insert(
                FAILURE_METRIC.to_string(),
                Metric {
                    name: FAILURE_METRIC.to_string(),
                    kind: PointKind::Gauge,
                    unit: String::new(),
                    labels: FAILURE_LABELS.iter().map(|s| s.to_string()).collect(),
                    always: FAILURE_LABELS.iter().map(|s| s.to_string()).collect(),
                    origin: Origin::Failure,
                },
            );
        }
        Model { metrics }
    }

    pub fn get(&self, name: &str) -> Option<&Metric> {
        self.metrics.get(name)
    }

    /// The catalogue gauges (the claim metrics), in name order; not the reference count, which
    /// counts CDC records (`pipeline.run.finished` counts runs).
    pub fn claim_gauges(&self) -> impl Iterator<Item = &Metric> {
        self.metrics
            .values()
            .filter(|m| m.origin == Origin::Handler && m.name != crate::handlers::builtin::PIPELINE_RUN_COUNT)
    }

    /// The extra labels of lifecycle metrics (`partner`): any key but the ones every profile
    /// shares, in name order.
    pub fn extra_lifecycle_labels(&self) -> BTreeSet<String> {
        const SHARED: [&str; 7] = ["orchestrator", "pipeline", "task", "result", "status", "run_kind", "table"];
        self.metrics
            .values()
            .filter(|m| m.origin == Origin::Lifecycle)
            .flat_map(|m| m.labels.iter())
            .filter(|k| !SHARED.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}
