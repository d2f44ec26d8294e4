//! The panels of both dashboards, independent of any backend: what each shows, from which
//! metric, filtered and grouped by which labels. [`super::gcm_dashboard`] renders them as Cloud
//! Monitoring widgets, [`super::grafana`] as Grafana panels with PromQL, so the two dashboards
//! show the same things.

use super::model::{Metric, Model};
use crate::handlers::builtin::FAILURE_METRIC;
use crate::handlers::lifecycle::names;

/// Which series of a metric, and how it is aggregated across series.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// The increments of a counter in each interval (the number of runs, tasks, misses...),
    /// summed across series (instances) by `by`.
    Increase { metric: String, matchers: Vec<(String, String)>, by: Vec<String> },
    /// `num` increments over `den` increments, both summed by `by`.
    Ratio { metric: String, num: Vec<(String, String)>, den: Vec<(String, String)>, by: Vec<String> },
    /// A quantile of a histogram's observations in each interval, across series, by `by`.
    Quantile { metric: String, q: f64, by: Vec<String> },
    /// A gauge's value in each interval (its mean, or latest), by `by`.
    Gauge { metric: String, by: Vec<String> },
    /// How many points a gauge wrote in each interval (the failure gauge: one per failure).
    Points { metric: String, by: Vec<String> },
}

impl Query {
    pub fn metric(&self) -> &str {
        match self {
            Query::Increase { metric, .. }
            | Query::Ratio { metric, .. }
            | Query::Quantile { metric, .. }
            | Query::Gauge { metric, .. }
            | Query::Points { metric, .. } => metric,
        }
    }

    pub fn by(&self) -> &[String] {
        match self {
            Query::Increase { by, .. }
            | Query::Ratio { by, .. }
            | Query::Quantile { by, .. }
            | Query::Gauge { by, .. }
            | Query::Points { by, .. } => by,
        }
    }
}

/// One line (or number) of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub query: Query,
    /// A prefix that tells the lines of a panel apart (`p95`), or empty.
    pub legend: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viz {
    /// One number over the dashboard's time range (Cloud Monitoring: a scorecard over 24 h).
    Stat,
    /// Lines over time.
    TimeSeries,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Ratio,
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub description: String,
    pub viz: Viz,
    pub unit: Unit,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: String,
    pub panels: Vec<Panel>,
}

fn eq(label: &str, value: &str) -> Vec<(String, String)> {
    vec![(label.to_string(), value.to_string())]
}

/// The label keys of `want` that the metric has, in order.
fn present(m: &Metric, want: &[&str]) -> Vec<String> {
    want.iter().filter(|k| m.has(k)).map(|k| k.to_string()).collect()
}

struct Builder<'a> {
    model: &'a Model,
    panels: Vec<Panel>,
}

impl Builder<'_> {
    fn panel(&mut self, title: &str, description: &str, viz: Viz, unit: Unit, targets: Vec<Target>) {
        // a panel only for metrics the inputs can write
        if targets.iter().all(|t| self.model.get(t.query.metric()).is_some()) && !targets.is_empty() {
            self.panels.push(Panel { title: title.into(), description: description.into(), viz, unit, targets });
        }
    }

    fn increase(
        &mut self,
        title: &str,
        description: &str,
        viz: Viz,
        metric: &str,
        filter: &[(&str, &str)],
        by: &[&str],
    ) {
        let Some(m) = self.model.get(metric) else { return };
        let by = present(m, by);
        let matchers = filter.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let q = Query::Increase { metric: metric.into(), matchers, by };
        self.panel(title, description, viz, Unit::Count, vec![Target { query: q, legend: String::new() }]);
    }

    fn quantiles(&mut self, title: &str, description: &str, metric: &str, qs: &[f64], by: &[&str]) {
        let Some(m) = self.model.get(metric) else { return };
        let by = present(m, by);
        let targets = qs
            .iter()
            .map(|q| Target {
                query: Query::Quantile { metric: metric.into(), q: *q, by: by.clone() },
                legend: format!("p{}", (q * 100.0).round()),
            })
            .collect();
        self.panel(title, description, Viz::TimeSeries, Unit::Seconds, targets);
    }

    fn take(&mut self, title: &str) -> Option<Section> {
        let panels = std::mem::take(&mut self.panels);
        (!panels.is_empty()).then(|| Section { title: title.into(), panels })
    }
}

/// Every section of the dashboards, for the metrics of `model`; sections without any metric of
/// the inputs are left out.
pub fn sections(model: &Model) -> Vec<Section> {
    use names::*;
    let mut b = Builder { model, panels: Vec::new() };
    let mut out = Vec::new();
    let success = eq("result", "success");

    // overview: one number each
    b.increase("Runs finished", "Runs that reached a terminal status (any result).", Viz::Stat, RUN_FINISHED, &[], &[]);
    if model.get(RUN_FINISHED).is_some() {
        b.panel(
            "Run success rate",
            "Finished runs with result success over all finished runs.",
            Viz::Stat,
            Unit::Ratio,
            vec![Target {
                query: Query::Ratio { metric: RUN_FINISHED.into(), num: success.clone(), den: vec![], by: vec![] },
                legend: String::new(),
            }],
        );
    }
    b.increase(
        "Failed runs",
        "Finished runs with result failure.",
        Viz::Stat,
        RUN_FINISHED,
        &[("result", "failure")],
        &[],
    );
    b.increase("SLA misses", "Runs that missed their SLA or deadline.", Viz::Stat, RUN_SLA_MISSED, &[], &[]);
    if let Some(s) = b.take("Overview") {
        out.push(s);
    }

    // runs
    b.increase(
        "Runs started",
        "Runs that started, per pipeline (each attempt that ran once).",
        Viz::TimeSeries,
        RUN_STARTED,
        &[],
        &["orchestrator", "pipeline"],
    );
    b.increase(
        "Runs finished by result",
        "Finished runs per result: success, failure, cancellation, timeout, skip, other.",
        Viz::TimeSeries,
        RUN_FINISHED,
        &[],
        &["result"],
    );
    if let Some(m) = model.get(RUN_FINISHED) {
        let by = present(m, &["orchestrator", "pipeline"]);
        b.panel(
            "Run success rate by pipeline",
            "Finished runs with result success over all finished runs, per pipeline.",
            Viz::TimeSeries,
            Unit::Ratio,
            vec![Target {
                query: Query::Ratio { metric: RUN_FINISHED.into(), num: success, den: vec![], by },
                legend: String::new(),
            }],
        );
    }
    b.quantiles(
        "Run duration p50 / p95",
        "Run duration (end - start) of the runs that finished in each interval, per pipeline.",
        RUN_DURATION,
        &[0.5, 0.95],
        &["pipeline"],
    );
    b.quantiles(
        "Queue wait p50 / p95",
        "Time from queued (or created) to start, per pipeline.",
        RUN_QUEUE_WAIT,
        &[0.5, 0.95],
        &["pipeline"],
    );
    b.quantiles(
        "Schedule delay p50 / p95",
        "Start minus the scheduled time, for scheduled first attempts, per pipeline.",
        RUN_SCHEDULE_DELAY,
        &[0.5, 0.95],
        &["pipeline"],
    );
    b.increase(
        "SLA misses by pipeline",
        "Runs that missed their SLA (Mage passed_sla, Airflow sla_miss and deadline rows, ...).",
        Viz::TimeSeries,
        RUN_SLA_MISSED,
        &[],
        &["orchestrator", "pipeline"],
    );
    b.increase(
        "Run retries by pipeline",
        "Runs retried (a new attempt of the same run).",
        Viz::TimeSeries,
        RUN_RETRIED,
        &[],
        &["orchestrator", "pipeline"],
    );
    if let Some(s) = b.take("Runs") {
        out.push(s);
    }

    // tasks
    b.increase(
        "Task failures",
        "Tasks (blocks, steps) that finished with result failure, per pipeline and task.",
        Viz::TimeSeries,
        TASK_FINISHED,
        &[("result", "failure")],
        &["pipeline", "task"],
    );
    b.increase(
        "Task retries",
        "Task attempts retried, per pipeline and task.",
        Viz::TimeSeries,
        TASK_RETRIED,
        &[],
        &["pipeline", "task"],
    );
    b.quantiles(
        "Task duration p95",
        "Task duration, per pipeline and task.",
        TASK_DURATION,
        &[0.95],
        &["pipeline", "task"],
    );
    b.quantiles(
        "Task queue wait p95",
        "Time from queued to start of each task attempt, per pipeline and task.",
        TASK_QUEUE_WAIT,
        &[0.95],
        &["pipeline", "task"],
    );
    if let Some(s) = b.take("Tasks") {
        out.push(s);
    }

    // change data capture
    b.quantiles(
        "CDC lag p50 / p95",
        "Time from the source commit to the change record's read time, per table.",
        CDC_LAG,
        &[0.5, 0.95],
        &["orchestrator", "table"],
    );
    if let Some(s) = b.take("Change data capture") {
        out.push(s);
    }

    // the claim gauges of the handler catalogue
    for g in model.claim_gauges() {
        let by: Vec<String> = g.labels.iter().cloned().collect();
        b.panel(
            &g.name,
            "Gauge written by the catalogue handlers once per matching run (handlers/*.toml).",
            Viz::TimeSeries,
            Unit::None,
            vec![Target { query: Query::Gauge { metric: g.name.clone(), by }, legend: String::new() }],
        );
    }
    if let Some(m) = model.get(FAILURE_METRIC) {
        b.panel(
            "Handler failures",
            "Failed handlers (one point per failure), by handler and error class.",
            Viz::TimeSeries,
            Unit::Count,
            vec![Target {
                query: Query::Points { metric: FAILURE_METRIC.into(), by: m.labels.iter().cloned().collect() },
                legend: String::new(),
            }],
        );
    }
    if let Some(s) = b.take("Claim metrics") {
        out.push(s);
    }
    out
}
