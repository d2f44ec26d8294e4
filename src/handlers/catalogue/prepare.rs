//! Preparing a catalogue handler for one event: its variables read and validated, its tables
//! resolved, nothing sent anywhere.

use chrono::Utc;
use serde_json::Value;

use super::QueryHandler;
use super::run::{PlannedTable, QueryPlan};
use super::spec::InputKind;
use crate::decode::{ChangeEvent, ChangeKind};
use crate::handlers::values::{is_missing, lookup, scalar_text};
use crate::handlers::{Handler, HandlerError, MetricDef, Plan, Projects};
use crate::redact::Offending;
use crate::warehouse::{Param, TableRef};

impl Handler for QueryHandler {
    fn name(&self) -> &str {
        &self.name
    }

    fn table(&self) -> Option<&str> {
        Some(&self.family.table)
    }

    /// The family's metrics this variant emits: gauges, labelled as the family file says.
    fn metrics(&self) -> Vec<MetricDef> {
        self.metrics
            .iter()
            .map(|&i| {
                let m = &self.family.metrics[i];
                MetricDef {
                    name: m.name.clone(),
                    kind: crate::sink::PointKind::Gauge,
                    unit: "",
                    labels: m.labels.keys().cloned().collect(),
                    optional: Vec::new(),
                }
            })
            .collect()
    }

    fn matches(&self, event: &ChangeEvent) -> bool {
        event.is_table(&self.family.table)
            && event.change_kind() == ChangeKind::Upsert
            && event.payload.as_ref().is_some_and(|p| {
                p.pipeline_uuid.as_deref() == Some(self.pipeline_uuid.as_str())
                    && p.status.as_deref() == Some(self.family.status.as_str())
            })
    }

    fn prepare(&self, event: &ChangeEvent, projects: &Projects) -> Result<Plan, HandlerError> {
        let payload = event
            .payload
            .as_ref()
            .ok_or_else(|| HandlerError::invalid("payload", "No 'payload' found in event data."))?;
        let empty = serde_json::Map::new();
        let vars = payload.variables().unwrap_or(&empty);
        let mut tables = Vec::new();
        let mut params = Vec::new();
        let mut values = self.constants.clone();
        for input in &self.family.inputs {
            let path = &self.paths[&input.name];
            // the field of an error, built only when there is one
            let field = || format!("payload.variables.{path}");
            let value = lookup(vars, path);
            if is_missing(value) {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                let template = input.message.as_deref().unwrap_or(&self.family.missing_message);
                return Err(HandlerError::invalid(field(), template.replace("{variable}", leaf)));
            }
            let value = value.unwrap_or(&Value::Null);
            match input.kind {
                InputKind::Table => {
                    let Value::String(raw) = value else {
                        return Err(HandlerError::invalid(
                            field(),
                            format!("Variable '{path}' must be a table reference string."),
                        ));
                    };
                    // The messages name the variable, not its value: the value is shown once, in
                    // the answer's headline, and only as a fingerprint in logs.
                    let table =
                        TableRef::resolve(raw, &projects.data).map_err(|why| HandlerError::InvalidTableReference {
                            field: field(),
                            message: format!("Invalid table reference in variable '{path}': {why}"),
                            value: Some(Offending::of(raw)),
                        })?;
                    if !projects.allows(&table) {
                        return Err(HandlerError::InvalidTableReference {
                            field: field(),
                            message: format!(
                                "The table of variable '{path}' is outside the datasets this function may read (ALLOWED_DATASETS)"
                            ),
                            value: Some(Offending::of(raw)),
                        });
                    }
                    values.insert(input.name.clone(), raw.clone());
                    tables.push(PlannedTable {
                        input: input.name.clone(),
                        path: path.clone(),
                        raw: raw.clone(),
                        table,
                        if_missing: input.if_missing,
                        checked: self.family.checks(input),
                        columns: input.columns.clone(),
                        missing_table_message: input.missing_table_message.clone(),
                    });
                }
                InputKind::String => {
                    let text = scalar_text(value).ok_or_else(|| {
                        HandlerError::invalid(field(), format!("Variable '{path}' must be a string or a number."))
                    })?;
                    params.push((input.name.clone(), Param::String(text.clone())));
                    values.insert(input.name.clone(), text);
                }
            }
        }
        params.push(("source_timestamp".into(), Param::Timestamp(event.source_timestamp.with_timezone(&Utc))));
        params.push(("source_date".into(), Param::Date(event.source_timestamp.date_naive())));
        Ok(Plan::Query(Box::new(QueryPlan {
            handler: self.name.clone(),
            family: self.family.clone(),
            metrics: self.metrics.clone(),
            tables,
            params,
            values,
            time: event.source_timestamp.with_timezone(&Utc),
            project: projects.metric.clone(),
        })))
    }
}
