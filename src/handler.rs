//! Handlers: what matches an event and what it computes.
//!
//! A handler is prepared synchronously (inputs read and validated, nothing sent anywhere), then
//! its plan runs. Built-in handlers that need no query produce their points at preparation;
//! catalogue handlers (see [`crate::catalogue`]) produce a [`QueryPlan`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::bigquery::{Param, Row, TableRef, Warehouse};
use crate::catalogue::QueryPlan;
use crate::error::{HandlerError, WarehouseError};
use crate::record::ChangeEvent;
use crate::sink::Gauge;

/// What a prepared handler still has to do.
pub enum Plan {
    /// Points computed without any query.
    Points(Vec<Gauge>),
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
    /// Datasets handlers may read (`dataset` = in the data project, or `project.dataset`);
    /// `None`: any.
    pub allowed_datasets: Option<Vec<String>>,
}

impl Projects {
    pub fn new(metric: impl Into<String>, data: impl Into<String>) -> Self {
        Projects { metric: metric.into(), data: data.into(), allowed_datasets: None }
    }

    /// Whether a resolved table may be read.
    pub fn allows(&self, table: &TableRef) -> bool {
        match &self.allowed_datasets {
            None => true,
            Some(list) => list.iter().any(|entry| match entry.split_once('.') {
                Some((project, dataset)) => project == table.project && dataset == table.dataset,
                None => entry == &table.dataset && table.project == self.data,
            }),
        }
    }
}

pub trait Handler: Send + Sync {
    /// Unique name; the `handler_class` label of failure metrics.
    fn name(&self) -> &str;
    /// Whether this handler runs for the event.
    fn matches(&self, event: &ChangeEvent) -> bool;
    /// Reads and validates inputs; sends nothing.
    fn prepare(&self, event: &ChangeEvent, projects: &Projects) -> Result<Plan, HandlerError>;
}

/// Per-event state shared by the handlers of one event: each table's existence is asked once,
/// however many handlers check it.
/// A result computed once per event and shared by every handler that asks for it.
type Shared<K, T> = Mutex<HashMap<K, Arc<OnceCell<Result<T, WarehouseError>>>>>;

pub struct EventContext<'a> {
    pub warehouse: &'a dyn Warehouse,
    tables: Shared<TableRef, bool>,
    queries: Shared<String, Vec<Row>>,
}

impl<'a> EventContext<'a> {
    pub fn new(warehouse: &'a dyn Warehouse) -> Self {
        EventContext { warehouse, tables: Mutex::new(HashMap::new()), queries: Mutex::new(HashMap::new()) }
    }

    /// Runs a query once per event: `key` identifies it (the SQL file plus its tables and
    /// parameters), and `render` builds the SQL only when it has not run yet for this event, so
    /// that families sharing a SQL file share one job.
    pub async fn query_keyed(
        &self,
        key: String,
        render: impl FnOnce() -> (String, Vec<(String, Param)>),
    ) -> Result<Vec<Row>, WarehouseError> {
        let cell = {
            let mut map = self.queries.lock().expect("query cache lock");
            map.entry(key).or_default().clone()
        };
        cell.get_or_init(|| async move {
            let (sql, params) = render();
            self.warehouse.query(&sql, &params).await
        })
        .await
        .clone()
    }

    /// (distinct tables checked, distinct queries run) so far for this event.
    pub fn requests(&self) -> (usize, usize) {
        (self.tables.lock().map(|m| m.len()).unwrap_or(0), self.queries.lock().map(|m| m.len()).unwrap_or(0))
    }

    pub async fn table_exists(&self, table: &TableRef) -> Result<bool, WarehouseError> {
        let cell = {
            let mut map = self.tables.lock().expect("table cache lock");
            map.entry(table.clone()).or_default().clone()
        };
        cell.get_or_init(|| self.warehouse.table_exists(table)).await.clone()
    }
}

/// The reference's truthiness test: absent, null, "", 0, false, [] and {} are all missing.
pub fn is_missing(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
    }
}

/// Looks up a dotted path (`internal_validation.internal_validation_claims_input_table`) in the
/// payload variables.
pub fn lookup<'v>(variables: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let mut cur = variables.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// A scalar variable as a label/parameter string, like Python's `str()`: strings as they are,
/// integers as digits, floats in shortest form with a `.0` when integral, booleans
/// `True`/`False`. Objects and arrays are not scalars.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.into()),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64()?;
            Some(if f.fract() == 0.0 && f.is_finite() { format!("{f:.1}") } else { f.to_string() })
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Built-in `mageai/pipeline_run/count` (handlers.md §7.1): 1.0 per pipeline_run record whose
/// payload has `pipeline_uuid` and `status`, labelled with both and with the partner when set.
pub struct PipelineRunCount;

pub const PIPELINE_RUN_COUNT: &str = "mageai/pipeline_run/count";

impl Handler for PipelineRunCount {
    fn name(&self) -> &str {
        "PipelineRunHandler"
    }

    fn matches(&self, event: &ChangeEvent) -> bool {
        event.is_table("pipeline_run")
            && event.change_kind() == crate::record::ChangeKind::Upsert
            && event.payload.as_ref().is_some_and(|p| p.pipeline_uuid.is_some() && p.status.is_some())
    }

    fn prepare(&self, event: &ChangeEvent, projects: &Projects) -> Result<Plan, HandlerError> {
        let payload = event
            .payload
            .as_ref()
            .ok_or_else(|| HandlerError::invalid("payload", "No 'payload' found in event data."))?;
        let mut labels = BTreeMap::new();
        labels.insert("pipeline_uuid".to_string(), payload.pipeline_uuid.clone().unwrap_or_default());
        labels.insert("pipeline_status".to_string(), payload.status.clone().unwrap_or_default());
        if let Some(partner) = payload.variables.as_ref().and_then(|v| v.get("partner"))
            && !is_missing(Some(partner))
        {
            let text = scalar_text(partner).ok_or_else(|| {
                HandlerError::invalid("payload.variables.partner", "Variable 'partner' must be a string or a number.")
            })?;
            labels.insert("partner".to_string(), text);
        }
        Ok(Plan::Points(vec![Gauge {
            name: PIPELINE_RUN_COUNT.into(),
            value: 1.0,
            time: event.source_timestamp.with_timezone(&Utc),
            labels,
            project: projects.metric.clone(),
        }]))
    }
}

/// The metric a failed handler adds (value 1.0, labels `handler_class`, `error_class`).
pub const FAILURE_METRIC: &str = "handler_execution_failure";

/// The failure gauge of one failed handler.
pub fn failure_gauge(handler: &str, class: crate::error::ErrorClass, time: DateTime<Utc>, project: &str) -> Gauge {
    Gauge {
        name: FAILURE_METRIC.into(),
        value: 1.0,
        time,
        labels: BTreeMap::from([
            ("handler_class".to_string(), handler.to_string()),
            ("error_class".to_string(), class.as_str().to_string()),
        ]),
        project: project.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> ChangeEvent {
        crate::record::decode(&v).unwrap()
    }

    fn projects() -> Projects {
        Projects::new("arvo-eng-prd", "test-project")
    }

    #[test]
    fn allow_list() {
        let mut p = Projects::new("m", "data-proj");
        let t = |s: &str| TableRef::resolve(s, "data-proj").unwrap();
        assert!(p.allows(&t("any.table")));
        p.allowed_datasets = Some(vec!["tmp_cemig".into(), "other-proj.refined".into()]);
        assert!(p.allows(&t("tmp_cemig.x")));
        assert!(p.allows(&t("data-proj.tmp_cemig.x")));
        assert!(!p.allows(&t("evil-proj.tmp_cemig.x")), "a bare dataset means the data project's");
        assert!(p.allows(&t("other-proj.refined.y")));
        assert!(!p.allows(&t("refined.y")));
        assert!(!p.allows(&t("secrets.users")));
    }

    #[test]
    fn truthiness_like_the_reference() {
        for v in [json!(null), json!(""), json!(0), json!(0.0), json!(false), json!([]), json!({})] {
            assert!(is_missing(Some(&v)), "{v}");
        }
        assert!(is_missing(None));
        for v in [json!("x"), json!(1), json!(true), json!([0]), json!({"a": null})] {
            assert!(!is_missing(Some(&v)), "{v}");
        }
    }

    #[test]
    fn nested_lookup() {
        let vars = json!({"internal_validation": {"t": "ds.x"}, "flat": "y"});
        let vars = vars.as_object().unwrap();
        assert_eq!(lookup(vars, "internal_validation.t"), Some(&json!("ds.x")));
        assert_eq!(lookup(vars, "flat"), Some(&json!("y")));
        assert_eq!(lookup(vars, "flat.z"), None);
        assert_eq!(lookup(vars, "missing.t"), None);
    }

    #[test]
    fn scalar_text_like_python_str() {
        assert_eq!(scalar_text(&json!("porto")).as_deref(), Some("porto"));
        assert_eq!(scalar_text(&json!(12)).as_deref(), Some("12"));
        assert_eq!(scalar_text(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(scalar_text(&json!(2.0)).as_deref(), Some("2.0"));
        assert_eq!(scalar_text(&json!(true)).as_deref(), Some("True"));
        assert_eq!(scalar_text(&json!({"a": 1})), None);
    }

    #[test]
    fn count_matches_any_status_and_pipeline() {
        let h = PipelineRunCount;
        for status in ["COMPLETED", "RUNNING", "FAILED", "whatever"] {
            let e = event(
                json!({"source_timestamp": "2024-01-15T10:30:00Z", "payload": {"pipeline_uuid": "x", "status": status}}),
            );
            assert!(h.matches(&e), "{status}");
        }
        let no_status = event(json!({"source_timestamp": "2024-01-15T10:30:00Z", "payload": {"pipeline_uuid": "x"}}));
        assert!(!h.matches(&no_status));
        let no_payload = event(json!({"source_timestamp": "2024-01-15T10:30:00Z"}));
        assert!(!h.matches(&no_payload));
        let other_table =
            event(json!({"source_timestamp": "2024-01-15T10:30:00Z", "source_metadata": {"table": "block_run"},
            "payload": {"pipeline_uuid": "x", "status": "COMPLETED"}}));
        assert!(!h.matches(&other_table));
        let delete =
            event(json!({"source_timestamp": "2024-01-15T10:30:00Z", "source_metadata": {"table": "pipeline_run",
            "is_deleted": true}, "payload": {"pipeline_uuid": "x", "status": "COMPLETED"}}));
        assert!(!h.matches(&delete));
    }

    #[test]
    fn count_labels_with_and_without_partner() {
        let h = PipelineRunCount;
        let e = event(json!({"source_timestamp": "2025-11-11T17:40:50.201000Z",
            "payload": {"pipeline_uuid": "pipesv2_selection", "status": "COMPLETED", "variables": {"partner": "athena"}}}));
        let Plan::Points(points) = h.prepare(&e, &projects()).unwrap() else { panic!("expected points") };
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].name, "mageai/pipeline_run/count");
        assert_eq!(points[0].value, 1.0);
        assert_eq!(points[0].project, "arvo-eng-prd");
        assert_eq!(
            points[0].labels,
            BTreeMap::from([
                ("pipeline_uuid".into(), "pipesv2_selection".into()),
                ("pipeline_status".into(), "COMPLETED".into()),
                ("partner".into(), "athena".into()),
            ])
        );
        assert_eq!(crate::sink::python_isoformat(&points[0].time), "2025-11-11T17:40:50.201000+00:00");
        for vars in [json!({}), json!({"partner": ""}), json!({"partner": null})] {
            let e = event(json!({"source_timestamp": "2024-01-15T10:30:00Z",
                "payload": {"pipeline_uuid": "p", "status": "RUNNING", "variables": vars}}));
            let Plan::Points(points) = h.prepare(&e, &projects()).unwrap() else { panic!() };
            assert!(!points[0].labels.contains_key("partner"), "{vars}");
        }
    }
}
