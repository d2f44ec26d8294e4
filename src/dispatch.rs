//! Dispatch: every handler whose match rule fits the event runs; their plans run concurrently;
//! their outcomes combine into one report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::bigquery::Warehouse;
use crate::error::{ErrorClass, HandlerError, Outcome};
use crate::handler::{EventContext, Handler, Plan, Projects, failure_gauge};
use crate::record::ChangeEvent;
use crate::sink::Gauge;

/// The result of one handler for one event.
#[derive(Debug)]
pub struct HandlerResult {
    pub handler: String,
    /// Number of points, or why it failed.
    pub result: Result<usize, HandlerError>,
    pub elapsed: Duration,
}

/// What dispatching one event produced.
#[derive(Debug, Default)]
pub struct Report {
    /// Results in registration order of the matched handlers.
    pub results: Vec<HandlerResult>,
    /// Points of the successful handlers (registration order, then row order), then one
    /// `handler_execution_failure` point per failed handler.
    pub points: Vec<Gauge>,
    /// Distinct table-existence checks and queries sent for the event.
    pub tables_checked: usize,
    pub queries_run: usize,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = (&str, &HandlerError)> {
        self.results.iter().filter_map(|r| r.result.as_ref().err().map(|e| (r.handler.as_str(), e)))
    }

    /// The outcome that decides the HTTP answer (see [`crate::error::ack_status`]).
    pub fn outcome(&self) -> Outcome {
        let mut failed = false;
        let mut transient = false;
        for (_, e) in self.failures() {
            failed = true;
            transient |= e.class() == ErrorClass::Transient;
        }
        if failed { Outcome::HandlersFailed { transient } } else { Outcome::Done }
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
        let prepared: Vec<(String, Instant, Result<Plan, HandlerError>)> =
            matched.iter().map(|h| (h.name().to_string(), Instant::now(), h.prepare(event, &self.projects))).collect();
        // An invalid table reference anywhere stops every query of the event.
        let unsafe_input =
            prepared.iter().any(|(_, _, p)| matches!(p, Err(HandlerError::InvalidTableReference { .. })));
        let ctx = EventContext::new(warehouse);
        let runs = prepared.into_iter().map(|(name, t0, plan)| {
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
