//! From reserved facts to points: which metric, which labels, which value (the metric set of
//! [`super::names`], labels bounded: never run ids, try numbers, hosts or error texts).

use super::derive::{Candidate, Fact};
use super::{Lifecycle, Table};
use crate::sink::{Labels, Point};

impl Lifecycle {
    pub(super) fn points(
        &self,
        t: &Table,
        c: &Candidate,
        base: &Labels,
        run_kind: &Option<String>,
        out: &mut Vec<Point>,
    ) {
        use super::names::*;
        let run = t.is_run();
        let with = |extra: &[(&str, &str)]| -> Labels {
            let mut l = base.clone();
            for (k, v) in extra {
                l.insert(k.to_string(), v.to_string());
            }
            l
        };
        let project = self.project.clone();
        let kind = run_kind.as_deref().unwrap_or("unknown");
        let status = c.status.as_deref().unwrap_or("");
        let result = c.result.as_deref().unwrap_or("other");
        match (c.fact, run) {
            (Fact::Started, true) => {
                out.push(Point::counter(
                    RUN_STARTED,
                    1.0,
                    "{run}",
                    c.time,
                    with(&[("run_kind", kind)]),
                    project.clone(),
                ));
                if let Some(q) = c.queue_wait {
                    out.push(Point::histogram(RUN_QUEUE_WAIT, q, "s", c.time, with(&[]), project.clone()));
                }
                if let Some(d) = c.schedule_delay {
                    out.push(Point::histogram(RUN_SCHEDULE_DELAY, d, "s", c.time, with(&[]), project));
                }
            }
            (Fact::Started, false) => {
                if let Some(q) = c.queue_wait {
                    out.push(Point::histogram(TASK_QUEUE_WAIT, q, "s", c.time, with(&[]), project));
                }
            }
            (Fact::Finished, true) => {
                let labels = with(&[("run_kind", kind), ("result", result), ("status", status)]);
                out.push(Point::counter(RUN_FINISHED, 1.0, "{run}", c.time, labels, project.clone()));
                if let Some(d) = c.duration {
                    out.push(Point::histogram(
                        RUN_DURATION,
                        d,
                        "s",
                        c.time,
                        with(&[("result", result)]),
                        project.clone(),
                    ));
                }
                if let Some(n) = c.records.filter(|n| n.is_finite() && *n >= 0.0) {
                    out.push(Point::counter(RUN_RECORDS, n, "{record}", c.time, with(&[]), project));
                }
            }
            (Fact::Finished, false) => {
                let labels = with(&[("result", result), ("status", status)]);
                out.push(Point::counter(TASK_FINISHED, 1.0, "{task}", c.time, labels, project.clone()));
                if let Some(d) = c.duration {
                    out.push(Point::histogram(
                        TASK_DURATION,
                        d,
                        "s",
                        c.time,
                        with(&[("result", result)]),
                        project.clone(),
                    ));
                }
                // the records a task wrote count for its pipeline run
                if let Some(n) = c.records.filter(|n| n.is_finite() && *n >= 0.0) {
                    let mut labels = with(&[]);
                    labels.remove("task");
                    out.push(Point::counter(RUN_RECORDS, n, "{record}", c.time, labels, project));
                }
            }
            (Fact::Retried, true) => out.push(Point::counter(RUN_RETRIED, 1.0, "{run}", c.time, with(&[]), project)),
            (Fact::Retried, false) => out.push(Point::counter(TASK_RETRIED, 1.0, "{task}", c.time, with(&[]), project)),
            (Fact::SlaMissed, _) => out.push(Point::counter(RUN_SLA_MISSED, 1.0, "{run}", c.time, with(&[]), project)),
        }
    }
}
