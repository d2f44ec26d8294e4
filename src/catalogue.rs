//! The handler catalogue: query handlers declared as data.
//!
//! A family file `handlers/<family>.toml` names a SQL file and declares:
//! * `[match]`: the source table and the run status it fires on;
//! * `[[inputs]]`, in check order: the payload variables it needs, each a `table` (resolved and
//!   validated, then written into the SQL as `{{name}}`) or a `string` (a named query parameter
//!   `@name`, also usable as a label `$name`);
//! * `[[metrics]]`: which result column becomes which metric, with which labels;
//! * `[[handler]]`: the variants (name, `pipeline_uuid`, which variable feeds which input, and
//!   constants such as `approved`).
//!
//! Built-in parameters every SQL file may use: `@source_timestamp` (TIMESTAMP, the record's
//! source time) and `@source_date` (DATE, its calendar date in its own offset). A table input
//! with `if_missing = "empty"` is replaced by an empty relation when the table does not exist,
//! and `@<name>_exists` (BOOL) tells the SQL which case it is in.
//!
//! The whole catalogue is validated when the process starts; an error names the file and line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

use crate::bigquery::{Cell, Param, TableRef};
use crate::error::HandlerError;
use crate::handler::{EventContext, Handler, Plan, Projects, is_missing, lookup, scalar_text};
use crate::record::{ChangeEvent, ChangeKind};
use crate::sink::Gauge;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_handlers.rs"));
}

const BUILTIN_PARAMS: [&str; 2] = ["source_timestamp", "source_date"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyFile {
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    sql: String,
    #[serde(rename = "match")]
    matcher: MatchSpec,
    /// Template of the 400 message for a missing variable; `{variable}` is its last path segment.
    #[serde(default = "default_missing_message")]
    missing_message: String,
    #[serde(default)]
    inputs: Vec<InputSpec>,
    metrics: Vec<MetricSpec>,
    #[serde(rename = "handler")]
    handlers: Vec<VariantSpec>,
}

fn default_missing_message() -> String {
    "No variable '{variable}' found in payload.".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchSpec {
    #[serde(default = "default_table")]
    table: String,
    status: String,
}

fn default_table() -> String {
    "pipeline_run".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum InputKind {
    Table,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum IfMissing {
    /// The query fails (BigQuery's "not found"): a permanent error.
    #[default]
    Error,
    /// The table is read as an empty relation with the declared `columns`.
    Empty,
    /// The event is rejected (400) with `missing_table_message`.
    Fail,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSpec {
    name: String,
    #[serde(rename = "type")]
    kind: InputKind,
    /// Payload variable path (dots for nested objects); variants may override; default = name.
    #[serde(default)]
    variable: Option<String>,
    /// 400 message when the variable is missing (overrides the family's `missing_message`).
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    if_missing: IfMissing,
    /// Columns (name -> BigQuery type) of the empty relation used for `if_missing = "empty"`.
    #[serde(default)]
    columns: BTreeMap<String, String>,
    /// 400 message for `if_missing = "fail"`; `{input}` placeholders give raw variable values.
    #[serde(default)]
    missing_table_message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum IfNull {
    /// A NULL value is written as 0.0 (the reference's `NULL -> 0.0`).
    #[default]
    Zero,
    /// A NULL value means "no point".
    Skip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum LabelSpec {
    /// A literal, or `$name` for an input value or a variant constant.
    Text(String),
    /// A result column.
    Column { column: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricSpec {
    name: String,
    value: String,
    #[serde(default)]
    if_null: IfNull,
    #[serde(default)]
    labels: BTreeMap<String, LabelSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantSpec {
    name: String,
    pipeline_uuid: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    constants: BTreeMap<String, String>,
    /// Names of the family's metrics this variant emits (default: all of them).
    #[serde(default)]
    metrics: Option<Vec<String>>,
}

/// A piece of a SQL text: literal text, or the slot of a table input.
#[derive(Debug)]
enum Segment {
    Text(String),
    Table(String),
}

/// Splits SQL text at its `{{name}}` placeholders, once, when the catalogue is loaded.
fn segments(sql: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        out.push(Segment::Text(rest[..i].to_string()));
        out.push(Segment::Table(after[..j].trim().to_string()));
        rest = &after[j + 2..];
    }
    out.push(Segment::Text(rest.to_string()));
    out
}

/// A validated family, shared by its variants.
#[derive(Debug)]
struct Family {
    file: String,
    /// The SQL file's name: families that use the same file send the same query.
    sql_file: String,
    segments: Vec<Segment>,
    /// Named parameters the SQL uses.
    sql_params: BTreeSet<String>,
    status: String,
    table: String,
    inputs: Vec<InputSpec>,
    metrics: Vec<MetricSpec>,
    missing_message: String,
}

/// One query handler of the catalogue (a family variant).
pub struct QueryHandler {
    family: Arc<Family>,
    name: String,
    pipeline_uuid: String,
    /// input name -> variable path
    paths: BTreeMap<String, String>,
    constants: BTreeMap<String, String>,
    /// Indices into the family's metrics that this variant emits.
    metrics: Vec<usize>,
}

/// A catalogue loading error: file, line and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct CatalogueError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// 1-based line of the first occurrence of `needle` (1 when absent).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map(|i| text[..i].matches('\n').count() + 1).unwrap_or(1)
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Cloud Monitoring custom metric names: path segments of `[A-Za-z0-9_.-]`, at most 200 chars.
pub fn is_valid_metric_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
}

/// Label keys: `[a-z_][a-z0-9_]*`, at most 100 chars (Cloud Monitoring's limit).
fn is_valid_label_key(s: &str) -> bool {
    s.len() <= 100
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

const COLUMN_TYPES: [&str; 9] =
    ["FLOAT64", "INT64", "STRING", "BOOL", "TIMESTAMP", "DATE", "DATETIME", "NUMERIC", "BYTES"];

/// Strips `-- comments` and blank lines. The stripped text is what is validated and sent:
/// comments cost bytes, and bqemulator miscounts parameters mentioned in comments. (So `--`
/// must not appear inside a string literal of a catalogue query.)
fn sql_code(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or("").trim_end())
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `{{name}}` placeholders of a SQL text.
fn sql_placeholders(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                out.push(after[..j].trim().to_string());
                rest = &after[j + 2..];
            }
            None => {
                out.push(after.to_string());
                break;
            }
        }
    }
    out
}

/// `@name` parameters of a SQL text.
fn sql_parameters(sql: &str) -> BTreeSet<String> {
    let bytes = sql.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'@')) {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            if end > start {
                out.insert(sql[start..end].to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// The catalogue: the built-in files overlaid with `dir` (same file name replaces, new names add).
pub fn load(dir: Option<&Path>) -> Result<Vec<Arc<dyn Handler>>, CatalogueError> {
    let mut files: BTreeMap<String, (String, String)> = builtin::BUILTIN
        .iter()
        .map(|(name, text)| (name.to_string(), (format!("handlers/{name}"), text.to_string())))
        .collect();
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir).map_err(|e| CatalogueError {
            file: dir.display().to_string(),
            line: 0,
            message: format!("cannot read HANDLERS_DIR: {e}"),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            if !(name.ends_with(".toml") || name.ends_with(".sql")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| CatalogueError {
                file: path.display().to_string(),
                line: 0,
                message: format!("cannot read: {e}"),
            })?;
            files.insert(name, (path.display().to_string(), text));
        }
    }
    load_files(&files)
}

/// Parses and validates catalogue files: file name -> (display path, contents).
fn load_files(files: &BTreeMap<String, (String, String)>) -> Result<Vec<Arc<dyn Handler>>, CatalogueError> {
    let mut handlers: Vec<Arc<dyn Handler>> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (name, (path, text)) in files.iter().filter(|(n, _)| n.ends_with(".toml")) {
        let err =
            |needle: &str, message: String| CatalogueError { file: path.clone(), line: line_of(text, needle), message };
        let spec: FamilyFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(1);
            CatalogueError { file: path.clone(), line, message: e.message().trim().to_string() }
        })?;
        let Some((sql_path, sql)) = files.get(&spec.sql) else {
            return Err(err("sql", format!("SQL file '{}' not found next to {name}", spec.sql)));
        };
        let family = validate(&spec, path, text, sql_path, sql)?;
        let family = Arc::new(family);
        if spec.handlers.is_empty() {
            return Err(err("[[handler]]", "a family needs at least one [[handler]]".into()));
        }
        for v in &spec.handlers {
            let here = |m: String| err(&format!("\"{}\"", v.name), m);
            if !is_ident(&v.name) {
                return Err(here(format!("handler name '{}' must be an identifier", v.name)));
            }
            if let Some(other) = names.insert(v.name.clone(), path.clone()) {
                return Err(here(format!("duplicate handler name '{}' (also in {other})", v.name)));
            }
            if v.pipeline_uuid.is_empty() {
                return Err(here(format!("handler '{}' needs a pipeline_uuid", v.name)));
            }
            for k in v.variables.keys() {
                if !spec.inputs.iter().any(|i| &i.name == k) {
                    return Err(here(format!("handler '{}' maps variable for unknown input '{k}'", v.name)));
                }
            }
            let selected: Vec<usize> = match &v.metrics {
                None => (0..spec.metrics.len()).collect(),
                Some(names) => {
                    let mut idx = Vec::new();
                    for n in names {
                        let i = spec
                            .metrics
                            .iter()
                            .position(|m| &m.name == n)
                            .ok_or_else(|| here(format!("handler '{}' selects unknown metric '{n}'", v.name)))?;
                        idx.push(i);
                    }
                    if idx.is_empty() {
                        return Err(here(format!("handler '{}' selects no metric", v.name)));
                    }
                    idx
                }
            };
            for m in selected.iter().map(|&i| &spec.metrics[i]) {
                for (key, label) in &m.labels {
                    if let LabelSpec::Text(t) = label
                        && let Some(var) = t.strip_prefix('$')
                        && !spec.inputs.iter().any(|i| i.name == var)
                        && !v.constants.contains_key(var)
                    {
                        return Err(err(
                            t,
                            format!(
                                "label '{key}' of metric '{}' uses unknown variable '${var}' (handler '{}')",
                                m.name, v.name
                            ),
                        ));
                    }
                }
            }
            let paths = spec
                .inputs
                .iter()
                .map(|i| {
                    let p = v.variables.get(&i.name).or(i.variable.as_ref()).cloned().unwrap_or_else(|| i.name.clone());
                    (i.name.clone(), p)
                })
                .collect();
            handlers.push(Arc::new(QueryHandler {
                family: family.clone(),
                name: v.name.clone(),
                pipeline_uuid: v.pipeline_uuid.clone(),
                paths,
                constants: v.constants.clone(),
                metrics: selected,
            }));
        }
    }
    Ok(handlers)
}

fn validate(spec: &FamilyFile, path: &str, text: &str, sql_path: &str, sql: &str) -> Result<Family, CatalogueError> {
    let err =
        |needle: &str, message: String| CatalogueError { file: path.to_string(), line: line_of(text, needle), message };
    let sql_err = |needle: &str, message: String| CatalogueError {
        file: sql_path.to_string(),
        line: line_of(sql, needle),
        message,
    };
    let code = sql_code(sql);
    let mut seen = BTreeSet::new();
    for i in &spec.inputs {
        let at = format!("\"{}\"", i.name);
        if !is_ident(&i.name) {
            return Err(err(&at, format!("input name '{}' must be an identifier", i.name)));
        }
        if BUILTIN_PARAMS.contains(&i.name.as_str()) {
            return Err(err(&at, format!("input name '{}' is reserved for a built-in parameter", i.name)));
        }
        if !seen.insert(i.name.clone()) {
            return Err(err(&at, format!("duplicate input '{}'", i.name)));
        }
        match (i.kind, i.if_missing) {
            (InputKind::String, IfMissing::Error) => {}
            (InputKind::String, _) => {
                return Err(err(&at, format!("input '{}': if_missing applies to tables only", i.name)));
            }
            (InputKind::Table, IfMissing::Empty) => {
                if i.columns.is_empty() {
                    return Err(err(&at, format!("input '{}': if_missing = \"empty\" needs `columns`", i.name)));
                }
                for (c, t) in &i.columns {
                    if !is_ident(c) || !COLUMN_TYPES.contains(&t.as_str()) {
                        return Err(err(
                            c,
                            format!("input '{}': column {c} = {t:?} (types: {})", i.name, COLUMN_TYPES.join(", ")),
                        ));
                    }
                }
            }
            _ => {}
        }
        if i.kind == InputKind::Table && !sql_placeholders(&code).contains(&i.name) {
            return Err(err(
                &at,
                format!("table input '{}' is not used in {sql_path} (as {{{{{}}}}})", i.name, i.name),
            ));
        }
    }
    for p in sql_placeholders(&code) {
        if !spec.inputs.iter().any(|i| i.name == p && i.kind == InputKind::Table) {
            return Err(sql_err(&format!("{{{{{p}"), format!("{{{{{p}}}}} is not a declared table input")));
        }
    }
    let sql_params = sql_parameters(&code);
    for p in &sql_params {
        let declared = BUILTIN_PARAMS.contains(&p.as_str())
            || spec.inputs.iter().any(|i| &i.name == p && i.kind == InputKind::String)
            || spec.inputs.iter().any(|i| i.if_missing == IfMissing::Empty && format!("{}_exists", i.name) == *p);
        if !declared {
            return Err(sql_err(&format!("@{p}"), format!("undeclared SQL parameter @{p}")));
        }
    }
    if spec.metrics.is_empty() {
        return Err(err("sql", "a family needs at least one [[metrics]]".into()));
    }
    for m in &spec.metrics {
        if !is_valid_metric_name(&m.name) {
            return Err(err(&m.name, format!("invalid metric name '{}' (path segments of [A-Za-z0-9_.-])", m.name)));
        }
        if !is_ident(&m.value) {
            return Err(err(&m.name, format!("metric '{}': value column '{}' is not an identifier", m.name, m.value)));
        }
        for (k, l) in &m.labels {
            if !is_valid_label_key(k) {
                return Err(err(k, format!("metric '{}': invalid label key '{k}'", m.name)));
            }
            if let LabelSpec::Column { column } = l
                && !is_ident(column)
            {
                return Err(err(column, format!("metric '{}': label column '{column}' is not an identifier", m.name)));
            }
        }
    }
    Ok(Family {
        file: path.to_string(),
        sql_file: spec.sql.clone(),
        segments: segments(&code),
        sql_params,
        status: spec.matcher.status.clone(),
        table: spec.matcher.table.clone(),
        inputs: spec.inputs.clone(),
        metrics: spec.metrics.clone(),
        missing_message: spec.missing_message.clone(),
    })
}

struct PlannedTable {
    input: String,
    path: String,
    raw: String,
    table: TableRef,
    if_missing: IfMissing,
    columns: BTreeMap<String, String>,
    missing_table_message: Option<String>,
}

/// A prepared query: the resolved tables, parameters and label values of one handler for one
/// event.
pub struct QueryPlan {
    handler: String,
    family: Arc<Family>,
    metrics: Vec<usize>,
    tables: Vec<PlannedTable>,
    params: Vec<(String, Param)>,
    values: BTreeMap<String, String>,
    time: chrono::DateTime<Utc>,
    project: String,
}

impl Handler for QueryHandler {
    fn name(&self) -> &str {
        &self.name
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
        let vars = payload.variables.as_ref().unwrap_or(&empty);
        let mut tables = Vec::new();
        let mut params = Vec::new();
        let mut values = self.constants.clone();
        for input in &self.family.inputs {
            let path = &self.paths[&input.name];
            let field = format!("payload.variables.{path}");
            let value = lookup(vars, path);
            if is_missing(value) {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                let template = input.message.as_deref().unwrap_or(&self.family.missing_message);
                return Err(HandlerError::invalid(field, template.replace("{variable}", leaf)));
            }
            let value = value.unwrap_or(&Value::Null);
            match input.kind {
                InputKind::Table => {
                    let Value::String(raw) = value else {
                        return Err(HandlerError::invalid(
                            field,
                            format!("Variable '{path}' must be a table reference string."),
                        ));
                    };
                    let table =
                        TableRef::resolve(raw, &projects.data).map_err(|why| HandlerError::InvalidTableReference {
                            field: field.clone(),
                            message: format!("Invalid table reference in variable '{path}': {why}"),
                        })?;
                    if !projects.allows(&table) {
                        return Err(HandlerError::InvalidTableReference {
                            field,
                            message: format!(
                                "Table '{table}' of variable '{path}' is outside the datasets this function may read (ALLOWED_DATASETS)"
                            ),
                        });
                    }
                    values.insert(input.name.clone(), raw.clone());
                    tables.push(PlannedTable {
                        input: input.name.clone(),
                        path: path.clone(),
                        raw: raw.clone(),
                        table,
                        if_missing: input.if_missing,
                        columns: input.columns.clone(),
                        missing_table_message: input.missing_table_message.clone(),
                    });
                }
                InputKind::String => {
                    let text = scalar_text(value).ok_or_else(|| {
                        HandlerError::invalid(field, format!("Variable '{path}' must be a string or a number."))
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

fn empty_relation(columns: &BTreeMap<String, String>) -> String {
    let cols: Vec<String> = columns.iter().map(|(c, t)| format!("CAST(NULL AS {t}) AS {c}")).collect();
    format!("(SELECT {} LIMIT 0)", cols.join(", "))
}

impl QueryPlan {
    pub fn handler(&self) -> &str {
        &self.handler
    }

    /// Checks the tables that have a missing-table rule, runs the query and maps its rows.
    pub async fn run(&self, ctx: &EventContext<'_>) -> Result<Vec<Gauge>, HandlerError> {
        let checked: Vec<&PlannedTable> = self.tables.iter().filter(|t| t.if_missing != IfMissing::Error).collect();
        let exists = futures_util::future::join_all(checked.iter().map(|t| ctx.table_exists(&t.table))).await;
        let mut present = BTreeMap::new();
        for (t, e) in checked.iter().zip(exists) {
            present.insert(t.input.clone(), e?);
        }
        for t in &checked {
            if t.if_missing == IfMissing::Fail && !present[&t.input] {
                let mut msg = t.missing_table_message.clone().unwrap_or_else(|| "Table '{value}' not found.".into());
                msg = msg.replace("{value}", &t.raw);
                for (k, v) in &self.values {
                    msg = msg.replace(&format!("{{{k}}}"), v);
                }
                return Err(HandlerError::invalid(format!("payload.variables.{}", t.path), msg));
            }
        }
        // The relation each table input stands for, and the parameters the SQL uses.
        let mut params = self.params.clone();
        let mut relations: BTreeMap<&str, String> = BTreeMap::new();
        for t in &self.tables {
            let exists = present.get(&t.input).copied().unwrap_or(true);
            let rel = if exists { t.table.sql() } else { empty_relation(&t.columns) };
            relations.insert(t.input.as_str(), rel);
            if t.if_missing == IfMissing::Empty {
                params.push((format!("{}_exists", t.input), Param::Bool(exists)));
            }
        }
        params.retain(|(n, _)| self.family.sql_params.contains(n));
        // Families sharing a SQL file with the same tables and parameters share one query.
        let key = format!("{}|{relations:?}|{params:?}", self.family.sql_file);
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
                (sql, params)
            })
            .await?;
        self.gauges(&rows)
    }

    fn gauges(&self, rows: &[crate::bigquery::Row]) -> Result<Vec<Gauge>, HandlerError> {
        let mut out = Vec::new();
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
                            Some(var) => self.values.get(var).cloned().unwrap_or_default(),
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
                out.push(Gauge { name: m.name.clone(), value, time: self.time, labels, project: self.project.clone() });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, (String, String)> {
        list.iter().map(|(n, t)| (n.to_string(), (format!("test/{n}"), t.to_string()))).collect()
    }

    const SQL: &str = "SELECT COALESCE(SUM(x), 0) AS total -- @ignored in comments\nFROM {{t}} WHERE p = @partner AND ts <= @source_timestamp";
    const TOML: &str = r#"sql = "f.sql"
[match]
status = "COMPLETED"
[[inputs]]
name = "t"
type = "table"
[[inputs]]
name = "partner"
type = "string"
[[metrics]]
name = "a/b"
value = "total"
labels = { partner = "$partner", approved = "$approved" }
[[handler]]
name = "H1"
pipeline_uuid = "p1"
constants = { approved = "true" }
"#;

    fn load_err(toml: &str, sql: &str) -> CatalogueError {
        match load_files(&files(&[("f.toml", toml), ("f.sql", sql)])) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn a_valid_family_loads() {
        let hs = load_files(&files(&[("f.toml", TOML), ("f.sql", SQL)])).unwrap();
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].name(), "H1");
    }

    #[test]
    fn the_builtin_catalogue_is_valid() {
        let hs = load(None).unwrap();
        let mut names: Vec<_> = hs.iter().map(|h| h.name().to_string()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "unique names");
        assert!(n >= 4, "{names:?}");
    }

    #[test]
    fn undeclared_sql_parameter_names_the_sql_file_and_line() {
        let e = load_err(TOML, "SELECT 1 AS total\nFROM {{t}}\nWHERE a = @nope");
        assert_eq!((e.file.as_str(), e.line), ("test/f.sql", 3), "{e}");
        assert!(e.message.contains("@nope"), "{e}");
    }

    #[test]
    fn unknown_label_variable_names_the_line() {
        let toml = TOML.replace("$approved", "$approvd");
        let e = load_err(&toml, SQL);
        assert_eq!(e.line, 13, "{e}");
        assert!(e.message.contains("$approvd"), "{e}");
    }

    #[test]
    fn invalid_metric_name() {
        let e = load_err(&TOML.replace("name = \"a/b\"", "name = \"a//b c\""), SQL);
        assert_eq!(e.line, 11, "{e}");
        assert!(e.message.contains("invalid metric name"), "{e}");
    }

    #[test]
    fn duplicate_handler_names_across_files() {
        let sql2 = SQL;
        let r = load_files(&files(&[("f.toml", TOML), ("f.sql", SQL), ("g.toml", TOML), ("g.sql", sql2)]));
        let e = r.err().expect("duplicate");
        assert_eq!(e.file, "test/g.toml");
        assert_eq!(e.line, 15);
        assert!(e.message.contains("duplicate handler name 'H1'"), "{e}");
    }

    #[test]
    fn unknown_keys_and_syntax_errors_name_the_line() {
        let e = load_err(&TOML.replace("[[metrics]]\n", "[[metrics]]\nunits = \"x\"\n"), SQL);
        assert_eq!(e.line, 11, "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
        let e = load_err(&TOML.replace("type = \"string\"", "type = string"), SQL);
        assert_eq!(e.line, 9, "{e}");
    }

    #[test]
    fn unused_table_input_and_unknown_placeholder() {
        let e = load_err(TOML, "SELECT 1 AS total WHERE p = @partner");
        assert!(e.message.contains("not used"), "{e}");
        let e = load_err(TOML, "SELECT 1 AS total FROM {{t}} JOIN {{u}} ON TRUE");
        assert_eq!(e.file, "test/f.sql");
        assert!(e.message.contains("{{u}}"), "{e}");
    }

    #[test]
    fn empty_tables_need_columns() {
        let toml = TOML.replace("type = \"table\"", "type = \"table\"\nif_missing = \"empty\"");
        let e = load_err(&toml, SQL);
        assert!(e.message.contains("needs `columns`"), "{e}");
    }

    #[test]
    fn handlers_dir_overrides_a_builtin_file_and_adds_new_ones() {
        let dir = std::env::temp_dir().join(format!("override-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let builtin = tests_support::builtin_file("post_filtered.toml");
        std::fs::write(dir.join("post_filtered.toml"), builtin.replace("pipesv2_selection", "custom_selection"))
            .unwrap();
        std::fs::write(dir.join("f.toml"), TOML).unwrap();
        std::fs::write(dir.join("f.sql"), SQL).unwrap();
        let hs = load(Some(&dir)).unwrap();
        let ev = |p: &str| {
            crate::record::decode(&serde_json::json!({"source_timestamp": "2024-01-15T10:30:00Z",
                "payload": {"pipeline_uuid": p, "status": "COMPLETED"}}))
            .unwrap()
        };
        let sel = hs.iter().find(|h| h.name() == "PostFilteredSelectionHandler").unwrap();
        assert!(sel.matches(&ev("custom_selection")));
        assert!(!sel.matches(&ev("pipesv2_selection")));
        assert!(hs.iter().any(|h| h.name() == "H1"), "new handler added");
        assert_eq!(hs.len(), load(None).unwrap().len() + 1);
    }

    #[test]
    fn sql_scanning() {
        assert_eq!(sql_placeholders("a {{x}} b {{ y }}"), vec!["x", "y"]);
        let p = sql_parameters("x = @a AND y=@b_2 AND z = @@c");
        assert_eq!(p, BTreeSet::from(["a".to_string(), "b_2".to_string()]));
        assert_eq!(line_of("a\nb\nc", "c"), 3);
    }

    #[test]
    fn metric_name_rules() {
        assert!(is_valid_metric_name("claims/pipeline/filtered_pre/vl_pago/total"));
        assert!(is_valid_metric_name("mageai/pipeline_run/count"));
        for bad in ["", "/a", "a/", "a//b", "a b", "a/é"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// Contents of a built-in catalogue file.
    pub fn builtin_file(name: &str) -> String {
        super::builtin::BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_string()).expect("builtin file")
    }
}
