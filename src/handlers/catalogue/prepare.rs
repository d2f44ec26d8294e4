//! Preparing a catalogue handler for one event: its variables read and validated, its tables
//! resolved, nothing sent anywhere.

use chrono::Utc;
use serde_json::Value;

use super::QueryHandler;
use super::columns::{self, Problem};
use super::run::{ParamName, PlannedTable, QueryPlan};
use super::spec::{IfMissing, InputKind, InputSpec, ParameterType};
use crate::decode::ChangeEvent;
use crate::handlers::values::{is_missing, lookup, scalar_text};
use crate::handlers::{Handler, HandlerError, MatchSummary, MetricDef, Plan, Projects};
use crate::redact::Offending;
use crate::warehouse::{Param, TableRef};

impl Handler for QueryHandler {
    fn name(&self) -> &str {
        &self.name
    }

    fn tables(&self) -> Vec<&str> {
        self.family.rule.table_entries().iter().map(String::as_str).collect()
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

    fn summary(&self) -> MatchSummary {
        let rule = &self.family.rule;
        let named = |column: &str, default: &str, entries: &[String]| -> Vec<String> {
            match column == default {
                true => entries.to_vec(),
                false => entries.iter().map(|e| format!("{column}={e}")).collect(),
            }
        };
        MatchSummary {
            tables: rule.table_entries().to_vec(),
            pipelines: named(&rule.pipeline_column, "pipeline_uuid", self.pipelines.entries()),
            statuses: named(&rule.status_column, "status", rule.statuses.entries()),
        }
    }

    fn matches(&self, event: &ChangeEvent) -> bool {
        self.family.rule.matches(event, &self.pipelines)
    }

    fn prepare(&self, event: &ChangeEvent, projects: &Projects) -> Result<Plan, HandlerError> {
        let payload = event
            .payload
            .as_ref()
            .ok_or_else(|| HandlerError::invalid("payload", "No 'payload' found in event data."))?;
        let empty = serde_json::Map::new();
        let vars = payload.variables().unwrap_or(&empty);
        // sized once: every input may add a table or a parameter, and the event's two times
        let n = self.family.inputs.len();
        let mut tables = Vec::with_capacity(n);
        let mut params = Vec::with_capacity(n + 2);
        let mut values = vec![None; self.family.inputs.len()];
        for (spec, input) in self.family.inputs.iter().enumerate() {
            let path = &self.paths[spec];
            // a column of the run row: typed parameter and label text, or why not
            if input.kind == InputKind::Column {
                let ty = input.parameter_type.unwrap_or_default();
                match columns::read(&payload.row, path, ty) {
                    Ok((param, label)) => {
                        params.push((ParamName::Input(spec), param));
                        values[spec] = Some(label);
                        continue;
                    }
                    Err(Problem::Absent | Problem::Null) if input.if_missing == IfMissing::Skip => {
                        return Ok(Plan::Points(Vec::new()));
                    }
                    Err(problem) => return Err(column_error(event, input, path, ty, problem)),
                }
            }
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
                    values[spec] = Some(raw.clone());
                    tables.push(PlannedTable {
                        spec,
                        table,
                        if_missing: input.if_missing,
                        checked: self.family.checks(input),
                    });
                }
                // (column inputs were read above)
                InputKind::String | InputKind::Column => {
                    let text = scalar_text(value).ok_or_else(|| {
                        HandlerError::invalid(field(), format!("Variable '{path}' must be a string or a number."))
                    })?;
                    params.push((ParamName::Input(spec), Param::String(text.clone())));
                    values[spec] = Some(text);
                }
            }
        }
        params.push((ParamName::SourceTimestamp, Param::Timestamp(event.source_timestamp.with_timezone(&Utc))));
        params.push((ParamName::SourceDate, Param::Date(event.source_timestamp.date_naive())));
        Ok(Plan::Query(Box::new(QueryPlan {
            handler: self.name.clone(),
            family: self.family.clone(),
            metrics: self.metrics.clone(),
            paths: self.paths.clone(),
            tables,
            params,
            values,
            constants: self.constants.clone(),
            time: event.source_timestamp.with_timezone(&Utc),
            project: projects.metric.clone(),
        })))
    }
}

/// The 400 of a column input without a usable value: the field is `payload.<column>`; the
/// message is the input's `message` (`{column}` stands for the column) or says what is wrong,
/// never quoting the value.
fn column_error(
    event: &ChangeEvent,
    input: &InputSpec,
    path: &str,
    ty: ParameterType,
    problem: Problem,
) -> HandlerError {
    let row = event.table().unwrap_or("run");
    let message = match (&input.message, problem) {
        (Some(m), Problem::Absent | Problem::Null) => m.replace("{column}", path),
        (_, Problem::Absent) => format!("No column '{path}' in the {row} row (input '{}').", input.name),
        (_, Problem::Null) => format!("Column '{path}' is NULL in the {row} row (input '{}').", input.name),
        (_, Problem::Mismatch(got)) => format!(
            "Column '{path}' of the {row} row must be {} for @{}; it is {got}.",
            columns::expected(ty),
            input.name
        ),
    };
    HandlerError::invalid(format!("payload.{path}"), message)
}
