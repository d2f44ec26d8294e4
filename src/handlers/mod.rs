//! Handlers: what matches a change event and what it computes.
//!
//! A handler is prepared synchronously (inputs read and validated, nothing sent anywhere), then
//! its plan runs. Built-in handlers that need no query ([`builtin`]) produce their points at
//! preparation; catalogue handlers ([`catalogue`]) produce a [`QueryPlan`]. [`dispatch`] runs
//! every matching handler of an event.

pub mod builtin;
pub mod catalogue;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod lifecycle;
pub mod listing;
pub mod pattern;
pub mod values;

use std::sync::Arc;

use crate::decode::ChangeEvent;
use crate::sink::{Point, PointKind};
use crate::warehouse::TableRef;

pub use catalogue::{CatalogueError, QueryPlan};
pub use dispatch::{Dispatcher, Report};
pub use error::HandlerError;

/// What a prepared handler still has to do.
pub enum Plan {
    /// Points computed without any query.
    Points(Vec<Point>),
    /// A query to run, and how its rows become points.
    Query(Box<QueryPlan>),
}

/// Process-wide settings a handler needs.
#[derive(Debug, Clone)]
pub struct Projects {
    /// Where metrics are written (`CLOUD_RUN_PROJECT_ID`).
    pub metric: String,
    /// Where unqualified tables live and jobs run (`BIGQUERY_PROJECT_ID`).
    pub data: String,
    /// Datasets handlers may read: `dataset` (in the data project) or `project.dataset`, where a
    /// dataset ending in `*` is a prefix (`tmp_*`). `None` (local mode only: outside it
    /// `ALLOWED_DATASETS` is required): any dataset of the data project, and no other project.
    pub allowed_datasets: Option<Vec<String>>,
}

impl Projects {
    pub fn new(metric: impl Into<String>, data: impl Into<String>) -> Self {
        Projects { metric: metric.into(), data: data.into(), allowed_datasets: None }
    }

    /// Whether a resolved table may be read (metadata views and meta-tables never resolve).
    pub fn allows(&self, table: &TableRef) -> bool {
        let dataset_matches = |pattern: &str| match pattern.strip_suffix('*') {
            Some(prefix) => table.dataset().starts_with(prefix),
            None => pattern == table.dataset(),
        };
        match &self.allowed_datasets {
            None => table.project() == self.data,
            Some(list) => list.iter().any(|entry| match entry.split_once('.') {
                Some((project, dataset)) => project == table.project() && dataset_matches(dataset),
                None => table.project() == self.data && dataset_matches(entry),
            }),
        }
    }
}

/// A metric a handler writes: what generated dashboards, alerts and metric definitions
/// ([`crate::ops`]) need to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDef {
    /// The metric name, without any backend prefix (`claims/pipeline/savings/count`).
    pub name: String,
    pub kind: PointKind,
    /// UCUM unit; empty when the metric declares none (the claim gauges).
    pub unit: &'static str,
    /// Every label key its points can carry, in name order.
    pub labels: Vec<String>,
    /// The keys of `labels` that a point may lack (the reference count's `partner`).
    pub optional: Vec<String>,
}

/// What a handler runs for, as `--check` lists it ([`listing`]): names or globs of
/// [`pattern`], `*` for any. A pipeline or status read from another column than
/// `pipeline_uuid` or `status` is written `column=entry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSummary {
    pub tables: Vec<String>,
    pub pipelines: Vec<String>,
    pub statuses: Vec<String>,
}

pub trait Handler: Send + Sync {
    /// Unique name; the `handler_class` label of failure metrics.
    fn name(&self) -> &str;
    /// Whether this handler runs for the event.
    fn matches(&self, event: &ChangeEvent) -> bool;
    /// Reads and validates inputs; sends nothing.
    fn prepare(&self, event: &ChangeEvent, projects: &Projects) -> Result<Plan, HandlerError>;
    /// The source tables this handler reads records of (names, or globs of
    /// [`pattern`]); empty when it does not say.
    fn tables(&self) -> Vec<&str> {
        Vec::new()
    }
    /// The metrics this handler writes (not the failure gauge, which dispatch adds for any
    /// handler). Default: none declared.
    fn metrics(&self) -> Vec<MetricDef> {
        Vec::new()
    }
    /// What it runs for. Default: its [`Handler::tables`], any pipeline, any status.
    fn summary(&self) -> MatchSummary {
        MatchSummary {
            tables: self.tables().into_iter().map(str::to_owned).collect(),
            pipelines: vec!["*".into()],
            statuses: vec!["*".into()],
        }
    }
}

/// Every handler in registration order: the built-in ones, then the catalogue (the built-in
/// files overlaid with `dir`).
///
/// Errors: the first invalid catalogue file, with its line.
pub fn all(dir: Option<&std::path::Path>) -> Result<Vec<Arc<dyn Handler>>, CatalogueError> {
    let mut handlers: Vec<Arc<dyn Handler>> = vec![Arc::new(builtin::PipelineRunCount)];
    handlers.extend(catalogue::load(dir)?);
    Ok(handlers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        let mut p = Projects::new("m", "data-proj");
        let t = |s: &str| TableRef::resolve(s, "data-proj").unwrap();
        assert!(p.allows(&t("any.table")), "by default, any dataset of the data project");
        assert!(!p.allows(&t("other-proj.any.table")), "and no other project");
        p.allowed_datasets = Some(vec!["tmp_cemig".into(), "other-proj.refined".into()]);
        assert!(p.allows(&t("tmp_cemig.x")));
        assert!(p.allows(&t("data-proj.tmp_cemig.x")));
        assert!(!p.allows(&t("evil-proj.tmp_cemig.x")), "a bare dataset means the data project's");
        assert!(p.allows(&t("other-proj.refined.y")));
        assert!(!p.allows(&t("refined.y")));
        assert!(!p.allows(&t("secrets.users")));
        p.allowed_datasets = Some(vec!["tmp_*".into(), "other-proj.refined_*".into()]);
        assert!(p.allows(&t("tmp_abertta.x")) && p.allows(&t("tmp_.x")));
        assert!(!p.allows(&t("evil-proj.tmp_abertta.x")));
        assert!(p.allows(&t("other-proj.refined_cemig.y")));
        assert!(!p.allows(&t("other-proj.raw.y")) && !p.allows(&t("temp.x")));
    }
}
