//! Which lifecycle metric each profile table writes, in which statuses: the lifecycle part of
//! `--check`'s table ([`crate::handlers::listing`]). Every pipeline of a profile's tables is
//! measured (there is no pipeline filter); the statuses are the profile's own words.

use super::names::*;
use super::spec::{Level, Order};
use super::{Profile, Table};

/// One lifecycle metric of one profile table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRule {
    /// `lifecycle <profile>` (`lifecycle mage`).
    pub source: String,
    pub table: String,
    /// Statuses (or event values) in which the metric is written, or a rule in words.
    pub statuses: Vec<String>,
    pub metric: &'static str,
}

/// The rules of every table of `profiles`, in profile, table and metric order.
pub fn rules(profiles: &[Profile]) -> Vec<MetricRule> {
    let mut out = Vec::new();
    for p in profiles {
        for t in &p.tables {
            for (metric, statuses) in table_rules(t) {
                out.push(MetricRule {
                    source: format!("lifecycle {}", p.name),
                    table: t.name.clone(),
                    statuses,
                    metric,
                });
            }
        }
    }
    out
}

fn table_rules(t: &Table) -> Vec<(&'static str, Vec<String>)> {
    let s = &t.spec;
    let run = s.level == Level::Run;
    let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
    if s.order == Order::Events {
        // each event value names its fact
        if let Some(e) = &s.events {
            for (value, fact) in &e.values {
                for metric in fact_metrics(fact, run) {
                    out.push((metric, vec![value.clone()]));
                }
            }
            if let Some(fact) = &e.fact {
                for metric in fact_metrics(fact, run) {
                    out.push((metric, vec!["every row".into()]));
                }
            }
        }
    } else {
        let terminal: Vec<String> = s.terminal.keys().cloned().collect();
        let ran: Vec<String> = terminal.iter().filter(|st| !s.not_run.contains(st)).cloned().collect();
        let started: Vec<String> = s.running.iter().chain(&ran).cloned().collect();
        let (queue_wait, finished, duration) = if run {
            (RUN_QUEUE_WAIT, RUN_FINISHED, RUN_DURATION)
        } else {
            (TASK_QUEUE_WAIT, TASK_FINISHED, TASK_DURATION)
        };
        if run {
            out.push((RUN_STARTED, started.clone()));
        }
        out.push((queue_wait, started.clone()));
        if run {
            out.push((RUN_SCHEDULE_DELAY, started));
        }
        out.push((finished, terminal.clone()));
        out.push((duration, ran));
        if s.records.is_some() {
            out.push((RUN_RECORDS, terminal));
        }
        if let Some(r) = &s.retried {
            let when = if r.statuses.is_empty() { vec!["on a retry".into()] } else { r.statuses.clone() };
            out.push((if run { RUN_RETRIED } else { TASK_RETRIED }, when));
        } else if s.order == Order::Log {
            // log order: a terminal status followed by a running one again is a retry
            out.push((
                if run { RUN_RETRIED } else { TASK_RETRIED },
                vec!["a terminal status, then a running one".into()],
            ));
        }
        if s.sla.is_some() {
            out.push((RUN_SLA_MISSED, vec!["when its SLA column says missed".into()]));
        }
    }
    out.push((CDC_LAG, vec!["every change".into()]));
    out
}

/// The metrics of one fact named by an events table (an event row carries one time: no
/// durations or waits, see `events` in the parent module).
fn fact_metrics(fact: &str, run: bool) -> Vec<&'static str> {
    match (fact, run) {
        ("started", true) => vec![RUN_STARTED],
        ("started", false) => vec![],
        ("sla_missed", _) => vec![RUN_SLA_MISSED],
        ("retried", true) => vec![RUN_RETRIED],
        ("retried", false) => vec![TASK_RETRIED],
        (_, true) => vec![RUN_FINISHED],
        (_, false) => vec![TASK_FINISHED],
    }
}
