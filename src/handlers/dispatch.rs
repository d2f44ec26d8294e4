//! Dispatch: every handler whose match rule fits the event runs; their plans run concurrently;
//! their outcomes combine into one report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::decode::ChangeEvent;
use crate::error::ErrorClass;
use crate::handlers::HandlerError;
use crate::handlers::builtin::failure_gauge;
use crate::handlers::{Handler, Plan, Projects};
use crate::sink::Point;
use crate::warehouse::EventContext;
use crate::warehouse::Warehouse;

/// The result of one handler for one event.
#[derive(Debug)]
pub struct HandlerResult {
    pub handler: String,
    /// Number of points, or why it failed.
    pub result: Result<usize, HandlerError>,
    /// From the start of the dispatch (its handlers are prepared one after another, in
    /// microseconds) to the end of this handler.
    pub elapsed: Duration,
}

/// What dispatching one event produced.
#[derive(Debug, Default)]
pub struct Report {
    /// Results in registration order of the matched handlers.
    pub results: Vec<HandlerResult>,
    /// Points of the successful handlers (registration order, then row order), then one
    /// `handler_execution_failure` point per failed handler.
    pub points: Vec<Point>,
    /// Distinct table-existence checks and queries sent for the event.
    pub tables_checked: usize,
    pub queries_run: usize,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = (&str, &HandlerError)> {
        self.results.iter().filter_map(|r| r.result.as_ref().err().map(|e| (r.handler.as_str(), e)))
    }

    /// `None` when every matched handler succeeded; otherwise whether any failure is transient
    /// (a retry may fix it).
    pub fn failed(&self) -> Option<bool> {
        let mut failed = None;
        for (_, e) in self.failures() {
            *failed.get_or_insert(false) |= e.class() == ErrorClass::Transient;
        }
        failed
    }
}

pub struct Dispatcher {
    handlers: Vec<Arc<dyn Handler>>,
    projects: Projects,
}

impl Dispatcher {
    pub fn new(handlers: Vec<Arc<dyn Handler>>, projects: Projects) -> Self {
        Dispatcher { handlers, projects }
    }

    pub fn handlers(&self) -> &[Arc<dyn Handler>] {
        &self.handlers
    }

    pub fn projects(&self) -> &Projects {
        &self.projects
    }

    /// Names of the handlers that match the event, in registration order.
    pub fn matching(&self, event: &ChangeEvent) -> Vec<&str> {
        self.handlers.iter().filter(|h| h.matches(event)).map(|h| h.name()).collect()
    }

    pub async fn dispatch(&self, event: &ChangeEvent, warehouse: &dyn Warehouse) -> Report {
        let started = Utc::now();
        let matched: Vec<&Arc<dyn Handler>> = self.handlers.iter().filter(|h| h.matches(event)).collect();
        // One clock reading for all: preparing is microseconds, a handler's time is its query's.
        let t0 = Instant::now();
        let prepared: Vec<(String, Result<Plan, HandlerError>)> =
            matched.iter().map(|h| (h.name().to_string(), h.prepare(event, &self.projects))).collect();
        // An invalid table reference anywhere stops every query of the event.
        let unsafe_input = prepared.iter().any(|(_, p)| matches!(p, Err(HandlerError::InvalidTableReference { .. })));
        let ctx = EventContext::new(warehouse);
        let runs = prepared.into_iter().map(|(name, plan)| {
            let ctx = &ctx;
            async move {
                let result = match plan {
                    Err(e) => Err(e),
                    Ok(Plan::Points(p)) => Ok(p),
                    Ok(Plan::Query(_)) if unsafe_input => Err(HandlerError::invalid(
                        "payload.variables",
                        "Not run: another variable of this event holds an invalid table reference.",
                    )),
                    Ok(Plan::Query(q)) => q.run(ctx).await,
                };
                (name, t0.elapsed(), result)
            }
        });
        let done = futures_util::future::join_all(runs).await;
        let mut report = Report::default();
        let mut failures = Vec::new();
        for (handler, elapsed, result) in done {
            let result = match result {
                Ok(points) => {
                    let n = points.len();
                    report.points.extend(points);
                    Ok(n)
                }
                Err(e) => {
                    failures.push(failure_gauge(&handler, e.class(), started, &self.projects.metric));
                    Err(e)
                }
            };
            report.results.push(HandlerResult { handler, result, elapsed });
        }
        report.points.extend(failures);
        (report.tables_checked, report.queries_run) = ctx.requests();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::WarehouseError;
    use crate::warehouse::{Cell, Param, Row, TableRef};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers every query with one row; each query waits until `parties` queries are in
    /// flight at once, so sequential execution would never finish.
    struct Rendezvous {
        barrier: tokio::sync::Barrier,
        queries: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Warehouse for Rendezvous {
        async fn table_exists(&self, _: &TableRef) -> Result<bool, WarehouseError> {
            Ok(true)
        }
        async fn query(&self, _: &str, _: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            self.barrier.wait().await;
            let row: Row = [
                ("unprocessable_total", Cell::Float(1.0)),
                ("processable_total", Cell::Float(3.0)),
                ("unprocessable_relative", Cell::Float(0.25)),
                ("processable_relative", Cell::Float(0.75)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            Ok(vec![row])
        }
    }

    fn approval_event(unprocessable: &str) -> ChangeEvent {
        crate::decode::datastream::decode_ref(&json!({"source_timestamp": "2024-01-15T10:30:00Z", "payload": {
            "pipeline_uuid": "pipesv2_approval", "status": "COMPLETED", "variables": {"partner": "porto",
            "unprocessable_claims_input_table": unprocessable, "processable_claims_input_table": "ds.p"}}}))
        .unwrap()
    }

    fn dispatcher() -> Dispatcher {
        let handlers = crate::handlers::all(None)
            .unwrap()
            .into_iter()
            .filter(|h| ["PreFilteredApprovalHandler", "ProcessableApprovalHandler"].contains(&h.name()))
            .collect();
        Dispatcher::new(handlers, Projects::new("m", "d"))
    }

    #[tokio::test]
    async fn identical_queries_of_one_event_run_once() {
        // Both families share claims_paid.sql: one query serves both (a barrier of 1 never waits).
        let wh = Rendezvous { barrier: tokio::sync::Barrier::new(1), queries: AtomicUsize::new(0) };
        let report = dispatcher().dispatch(&approval_event("ds.u"), &wh).await;
        assert_eq!(report.failed(), None, "{:?}", report.results);
        assert_eq!(wh.queries.load(Ordering::SeqCst), 1);
        assert_eq!(report.points.len(), 4);
    }

    #[tokio::test]
    async fn matched_handlers_run_concurrently() {
        // Two handlers with different SQL (a copy of the processable family over another SQL
        // file, added through HANDLERS_DIR): each query waits at a barrier of 2, so the event
        // completes only if both queries are in flight at the same time.
        let dir = std::env::temp_dir().join(format!("concurrency-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sql = crate::handlers::catalogue::tests_support::builtin_file("claims_paid.sql");
        std::fs::write(dir.join("claims_paid_copy.sql"), format!("{sql}\nLIMIT 1")).unwrap();
        let toml = crate::handlers::catalogue::tests_support::builtin_file("processable.toml")
            .replace("claims_paid.sql", "claims_paid_copy.sql")
            .replace("ProcessableApprovalHandler", "CopyApprovalHandler")
            .replace("ProcessableWranglingHandler", "CopyWranglingHandler");
        std::fs::write(dir.join("processable_copy.toml"), toml).unwrap();
        let handlers = crate::handlers::all(Some(&dir))
            .unwrap()
            .into_iter()
            .filter(|h| ["PreFilteredApprovalHandler", "CopyApprovalHandler"].contains(&h.name()))
            .collect();
        let d = Dispatcher::new(handlers, Projects::new("m", "d"));
        let wh = Rendezvous { barrier: tokio::sync::Barrier::new(2), queries: AtomicUsize::new(0) };
        let report = tokio::time::timeout(Duration::from_secs(10), d.dispatch(&approval_event("ds.u"), &wh))
            .await
            .expect("the two queries must be in flight at the same time");
        assert_eq!(report.failed(), None);
        assert_eq!(wh.queries.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn invalid_table_reference_fails_every_query_handler_of_the_event() {
        let wh = Rendezvous { barrier: tokio::sync::Barrier::new(1), queries: AtomicUsize::new(0) };
        let report = dispatcher().dispatch(&approval_event("ds.u; DROP TABLE x"), &wh).await;
        assert_eq!(wh.queries.load(Ordering::SeqCst), 0);
        assert_eq!(report.failed(), Some(false));
        let kinds: Vec<&str> = report.failures().map(|(_, e)| e.kind()).collect();
        assert_eq!(kinds, ["invalid_table_reference", "invalid_table_reference"]);
        assert_eq!(report.points.iter().filter(|p| p.name == "handler_execution_failure").count(), 2);
    }
}
