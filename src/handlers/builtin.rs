//! Built-in handlers, and the failure gauge every failed handler adds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::values::{is_missing, scalar_text};
use super::{Handler, HandlerError, Plan, Projects};
use crate::decode::ChangeEvent;
use crate::sink::Point;

/// Built-in `mageai/pipeline_run/count` (handlers.md §7.1): 1.0 per pipeline_run record whose
/// payload has `pipeline_uuid` and `status`, labelled with both and with the partner when set.
pub struct PipelineRunCount;

pub const PIPELINE_RUN_COUNT: &str = "mageai/pipeline_run/count";

impl Handler for PipelineRunCount {
    fn name(&self) -> &str {
        "PipelineRunHandler"
    }

    fn tables(&self) -> Vec<&str> {
        vec!["pipeline_run"]
    }

    fn metrics(&self) -> Vec<super::MetricDef> {
        vec![super::MetricDef {
            name: PIPELINE_RUN_COUNT.into(),
            kind: crate::sink::PointKind::Gauge,
            unit: "",
            labels: vec!["partner".into(), "pipeline_status".into(), "pipeline_uuid".into()],
            optional: vec!["partner".into()],
        }]
    }

    fn matches(&self, event: &ChangeEvent) -> bool {
        event.is_table("pipeline_run")
            && event.change_kind() == crate::decode::ChangeKind::Upsert
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
        if let Some(partner) = payload.variables().and_then(|v| v.get("partner"))
            && !is_missing(Some(partner))
        {
            let text = scalar_text(partner).ok_or_else(|| {
                HandlerError::invalid("payload.variables.partner", "Variable 'partner' must be a string or a number.")
            })?;
            labels.insert("partner".to_string(), text);
        }
        Ok(Plan::Points(vec![Point::gauge(
            PIPELINE_RUN_COUNT,
            1.0,
            event.source_timestamp.with_timezone(&Utc),
            labels,
            projects.metric.clone(),
        )]))
    }
}

/// The metric a failed handler adds (value 1.0, labels `handler_class`, `error_class`).
pub const FAILURE_METRIC: &str = "handler_execution_failure";

/// The label keys of [`FAILURE_METRIC`].
pub const FAILURE_LABELS: [&str; 2] = ["error_class", "handler_class"];

/// The failure gauge of one failed handler.
pub fn failure_gauge(handler: &str, class: crate::error::ErrorClass, time: DateTime<Utc>, project: &str) -> Point {
    Point::gauge(
        FAILURE_METRIC,
        1.0,
        time,
        BTreeMap::from([
            (FAILURE_LABELS[1].to_string(), handler.to_string()),
            (FAILURE_LABELS[0].to_string(), class.as_str().to_string()),
        ]),
        project,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event(v: Value) -> ChangeEvent {
        crate::decode::datastream::decode_ref(&v).unwrap()
    }

    fn projects() -> Projects {
        Projects::new("arvo-eng-prd", "test-project")
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
