//! Running a prepared query plan: missing-table rules, one query per distinct text and
//! parameters per event, rows mapped to points.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;

use super::Family;
use super::spec::{IfMissing, IfNull, LabelSpec};
use super::sql::Segment;
use crate::handlers::HandlerError;
use crate::redact::Fingerprint;
use crate::sink::Point;
use crate::warehouse::cache::query_key;
use crate::warehouse::{Cell, EventContext, Param, TableRef};

pub(super) struct PlannedTable {
    /// Its input: an index into the family's `inputs` (name, columns, missing-table message are
    /// read there rather than copied for every event), into the handler's paths (the variable)
    /// and into the plan's values (the raw reference).
    pub(super) spec: usize,
    pub(super) table: TableRef,
    pub(super) if_missing: IfMissing,
    /// Whether its existence is checked before the query (see `Family::checks`).
    pub(super) checked: bool,
}

/// The name of a plan's query parameter, without a copy of its text per event: an input's (an
/// index into the family's `inputs`), or one of the event's times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ParamName {
    Input(usize),
    SourceTimestamp,
    SourceDate,
}

/// A prepared query: the resolved tables, parameters and label values of one handler for one
/// event.
pub struct QueryPlan {
    pub(super) handler: Arc<str>,
    pub(super) family: Arc<Family>,
    pub(super) metrics: Arc<[usize]>,
    /// The handler's variable path of each input (shared, not copied per event).
    pub(super) paths: Arc<[String]>,
    pub(super) tables: Vec<PlannedTable>,
    pub(super) params: Vec<(ParamName, Param)>,
    /// The value of each input read for this event (label text, raw table reference), in the
    /// family's input order; the handler's constants are shared, not merged into a copy.
    pub(super) values: Vec<Option<String>>,
    pub(super) constants: Arc<BTreeMap<String, String>>,
    pub(super) time: chrono::DateTime<Utc>,
    pub(super) project: String,
}

fn empty_relation(columns: &BTreeMap<String, String>) -> String {
    let cols: Vec<String> = columns.iter().map(|(c, t)| format!("CAST(NULL AS {t}) AS {c}")).collect();
    format!("(SELECT {} LIMIT 0)", cols.join(", "))
}

impl QueryPlan {
    pub fn handler(&self) -> &str {
        &self.handler
    }

    fn param_name(&self, name: ParamName) -> &str {
        match name {
            ParamName::Input(i) => &self.family.inputs[i].name,
            ParamName::SourceTimestamp => "source_timestamp",
            ParamName::SourceDate => "source_date",
        }
    }

    /// The value of a variable (`$name` in labels, `{name}` in messages): the input's value for
    /// this event, else the handler's constant of that name.
    fn value(&self, name: &str) -> Option<&str> {
        let input = self.family.inputs.iter().zip(&self.values).rev().find(|(i, v)| i.name == name && v.is_some());
        match input {
            Some((_, v)) => v.as_deref(),
            None => self.constants.get(name).map(String::as_str),
        }
    }

    /// Every variable and its value, by name (inputs of this event over constants).
    fn all_values(&self) -> BTreeMap<&str, &str> {
        let mut all: BTreeMap<&str, &str> = self.constants.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for (input, v) in self.family.inputs.iter().zip(&self.values) {
            if let Some(v) = v {
                all.insert(input.name.as_str(), v.as_str());
            }
        }
        all
    }

    /// Checks the tables that have a missing-table rule, then: a `fail` table missing is a 400;
    /// a `[[when_missing]]` rule that applies decides the result without a query; otherwise
    /// the query runs and its rows are mapped.
    pub async fn run(&self, ctx: &EventContext<'_>) -> Result<Vec<Point>, HandlerError> {
        let checked: Vec<&PlannedTable> = self.tables.iter().filter(|t| t.checked).collect();
        let exists = futures_util::future::join_all(checked.iter().map(|t| ctx.table_exists(&t.table))).await;
        let mut present = BTreeMap::new();
        for (t, e) in checked.iter().zip(exists) {
            present.insert(self.family.inputs[t.spec].name.as_str(), e?);
        }
        for t in &checked {
            if t.if_missing == IfMissing::Fail && !present[self.family.inputs[t.spec].name.as_str()] {
                // The answer quotes the values, as the reference did; the log names them.
                let template = self.family.inputs[t.spec]
                    .missing_table_message
                    .clone()
                    .unwrap_or_else(|| "Table '{value}' not found.".into());
                let named = |name: &str, v: &str| format!("<{name} #{}>", Fingerprint::of(v));
                let (path, raw) = (&self.paths[t.spec], self.values[t.spec].as_deref().unwrap_or_default());
                let mut msg = template.replace("{value}", raw);
                let mut log = template.replace("{value}", &named(path, raw));
                for (k, v) in self.all_values() {
                    msg = msg.replace(&format!("{{{k}}}"), v);
                    log = log.replace(&format!("{{{k}}}"), &named(k, v));
                }
                return Err(HandlerError::invalid_quoting(format!("payload.variables.{path}"), msg, log));
            }
        }
        if let Some(rule) = self.family.when_missing.iter().find(|w| w.applies(&present)) {
            return self.gauges(&rule.rows);
        }
        // The relation each table input stands for, and the parameters the SQL uses: borrowed
        // for the query's key, copied only when this handler is the one that sends the query.
        let sql_params = &self.family.sql_params;
        let mut exists_params: Vec<(String, Param)> = Vec::new();
        let mut relations: BTreeMap<&str, String> = BTreeMap::new();
        for t in &self.tables {
            let input = &self.family.inputs[t.spec];
            let exists = present.get(input.name.as_str()).copied().unwrap_or(true);
            let rel = if exists { t.table.sql() } else { empty_relation(&input.columns) };
            relations.insert(input.name.as_str(), rel);
            if t.if_missing == IfMissing::Empty {
                let name = format!("{}_exists", input.name);
                if sql_params.contains(&name) {
                    exists_params.push((name, Param::Bool(exists)));
                }
            }
        }
        let params = || {
            let named = self.params.iter().map(|(n, p)| (self.param_name(*n), p));
            named.filter(|(n, _)| sql_params.contains(*n)).chain(exists_params.iter().map(|(n, p)| (n.as_str(), p)))
        };
        // Families sharing a SQL file with the same tables and parameters share one query.
        let key = query_key(&self.family.sql_file, relations.iter().map(|(k, v)| (*k, v.as_str())), params());
        let family = &self.family;
        let rows = ctx
            .query_keyed(key, || {
                let mut sql = String::with_capacity(
                    family
                        .segments
                        .iter()
                        .map(|s| match s {
                            Segment::Text(t) => t.len(),
                            Segment::Table(_) => 64,
                        })
                        .sum(),
                );
                for seg in &family.segments {
                    match seg {
                        Segment::Text(t) => sql.push_str(t),
                        Segment::Table(name) => {
                            sql.push_str(relations.get(name.as_str()).map(String::as_str).unwrap_or(""))
                        }
                    }
                }
                (sql, params().map(|(n, p)| (n.to_string(), p.clone())).collect())
            })
            .await?;
        self.gauges(&rows)
    }

    fn gauges(&self, rows: &[crate::warehouse::Row]) -> Result<Vec<Point>, HandlerError> {
        let mut out = Vec::with_capacity(rows.len() * self.metrics.len());
        for row in rows {
            for m in self.metrics.iter().map(|&i| &self.family.metrics[i]) {
                let cell = row.get(&m.value).ok_or_else(|| {
                    HandlerError::BadResult(format!(
                        "{}: column '{}' missing from the result",
                        self.family.file, m.value
                    ))
                })?;
                let value = match cell {
                    Cell::Float(f) => *f,
                    Cell::Int(i) => *i as f64,
                    Cell::Null => match m.if_null {
                        IfNull::Zero => 0.0,
                        IfNull::Skip => continue,
                    },
                    other => {
                        return Err(HandlerError::BadResult(format!(
                            "{}: column '{}' is not numeric ({other:?})",
                            self.family.file, m.value
                        )));
                    }
                };
                let mut labels = BTreeMap::new();
                for (k, l) in &m.labels {
                    let v = match l {
                        LabelSpec::Text(t) => match t.strip_prefix('$') {
                            Some(var) => self.value(var).unwrap_or_default().to_string(),
                            None => t.clone(),
                        },
                        LabelSpec::Column { column } => row
                            .get(column)
                            .ok_or_else(|| {
                                HandlerError::BadResult(format!(
                                    "{}: label column '{column}' missing from the result",
                                    self.family.file
                                ))
                            })?
                            .label(),
                    };
                    labels.insert(k.clone(), v);
                }
                out.push(Point::gauge(m.name.clone(), value, self.time, labels, self.project.clone()));
            }
        }
        Ok(out)
    }
}
