//! The generated dashboards, alert policies and metric definitions (src/ops), every file:
//!
//! * parsed (JSON, the rules file as YAML), and every metric and label key it names found in
//!   the inputs (the catalogue's `Handler::metrics`, `lifecycle::label_keys` of the profiles,
//!   the failure gauge): PromQL through a real parser (`promql-parser`), Cloud Monitoring
//!   filters, aggregations and legends clause by clause, Logging filters and extractors,
//!   CloudWatch patterns and dimensions; `a_generator_that_invents_a_name_is_caught` shows that
//!   these checks fail on an invented name;
//! * checked by the tool of its target: `promtool check rules` (and `promtool test rules` on
//!   series that exercise each alert), `cfn-lint` for the CloudWatch template, and the Cloud
//!   Monitoring / Cloud Logging API messages of Google's client libraries
//!   (scripts/check_gcp_resources.py) for the Dashboard, AlertPolicy and LogMetric JSON;
//! * the Grafana dashboard against the structure of Grafana's published dashboard types
//!   (`@grafana/schema` 13.2.3, `raw/dashboard/x/types.gen.d.ts`: `Dashboard`, `Panel`,
//!   `RowPanel`, `GridPos`, `VariableModel`);
//! * the logs-based metrics and CloudWatch filters against the lines the function really prints
//!   for the recorded runs of every orchestrator: each line is counted by exactly one
//!   definition, with all its labels (nothing lost);
//! * the scripts run with stand-ins of `gcloud` and `aws` that record their calls.
//!
//! The tools come from `scripts/install-tools.sh` (`make test` runs it): nothing is skipped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pipeline_run_metrics::handlers::builtin::{FAILURE_LABELS, FAILURE_METRIC, PIPELINE_RUN_COUNT};
use pipeline_run_metrics::handlers::lifecycle::{self, Profile, names};
use pipeline_run_metrics::handlers::{self, Handler};
use pipeline_run_metrics::ops::naming::prometheus_name;
use pipeline_run_metrics::ops::{
    self, AlertFormat, Artifact, DashboardFormat, GcmSource, Inputs, LogMetricFormat, OpsError, Thresholds,
};
use pipeline_run_metrics::sink::stdout::{emf_line, metric_line};
use pipeline_run_metrics::sink::{Labels, Point, PointKind};
use promql_parser::parser::{self as promql, Expr};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// inputs and what the checks accept

struct Fixture {
    handlers: Vec<Arc<dyn Handler>>,
    profiles: Vec<Profile>,
}

fn fixture() -> Fixture {
    Fixture { handlers: handlers::all(None).unwrap(), profiles: lifecycle::load(None, None).unwrap() }
}

impl Fixture {
    fn inputs(&self) -> Inputs<'_> {
        Inputs::new(&self.handlers, &self.profiles)
    }
}

/// A metric the inputs have: kind, unit, label keys.
#[derive(Debug, Clone)]
struct Known {
    kind: PointKind,
    unit: String,
    labels: BTreeSet<String>,
}

/// Every metric of the inputs, from the public sources (not from `ops`' own model).
fn known(handlers: &[Arc<dyn Handler>], profiles: &[Profile]) -> BTreeMap<String, Known> {
    let mut out = BTreeMap::new();
    let keys = lifecycle::label_keys(profiles);
    for (name, kind, unit) in names::ALL {
        if let Some(keys) = keys.get(name) {
            let kind = if kind == "counter" { PointKind::Counter } else { PointKind::Histogram };
            out.insert(name.to_string(), Known { kind, unit: unit.to_string(), labels: keys.all.clone() });
        }
    }
    for h in handlers {
        for m in h.metrics() {
            let e = out.entry(m.name.clone()).or_insert_with(|| Known {
                kind: m.kind,
                unit: m.unit.to_string(),
                labels: BTreeSet::new(),
            });
            e.labels.extend(m.labels);
        }
    }
    if !handlers.is_empty() {
        out.insert(
            FAILURE_METRIC.to_string(),
            Known {
                kind: PointKind::Gauge,
                unit: String::new(),
                labels: FAILURE_LABELS.iter().map(|s| s.to_string()).collect(),
            },
        );
    }
    out
}

/// Prometheus series name -> (metric, the label keys a selector of it may use).
fn prometheus_series(known: &BTreeMap<String, Known>) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for (name, k) in known {
        let base = prometheus_name(name, k.kind, &k.unit);
        if k.kind == PointKind::Histogram {
            let mut with_le = k.labels.clone();
            with_le.insert("le".into());
            out.insert(format!("{base}_bucket"), (name.clone(), with_le));
            out.insert(format!("{base}_sum"), (name.clone(), k.labels.clone()));
            out.insert(format!("{base}_count"), (name.clone(), k.labels.clone()));
        } else {
            out.insert(base, (name.clone(), k.labels.clone()));
        }
    }
    out
}

fn tool(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-tools/bin").join(name);
    assert!(p.exists(), "{} is missing: run scripts/install-tools.sh (make test and make lint do)", p.display());
    p
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, artifacts: &[Artifact]) -> Vec<PathBuf> {
    artifacts
        .iter()
        .map(|a| {
            assert!(!a.file_name.contains('/'), "{}", a.file_name);
            let p = dir.join(&a.file_name);
            std::fs::write(&p, &a.content).unwrap();
            p
        })
        .collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Google's client-library messages of the API resources (scripts/check_gcp_resources.py).
fn check_gcp(kind: &str, files: &[PathBuf]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_gcp_resources.py");
    let out = run(Command::new(tool("python")).arg(script).arg(kind).args(files));
    assert_eq!(out.matches(": valid ").count(), files.len(), "{out}");
}

// ---------------------------------------------------------------------------------------------
// PromQL: every selector names a known series, every label key is one of its labels

/// Labels a sub-expression's series can carry (for `by`, `on` and matchers).
fn walk_promql(
    e: &Expr,
    series: &BTreeMap<String, (String, BTreeSet<String>)>,
    used: &mut BTreeSet<String>,
) -> Result<BTreeSet<String>, String> {
    let labels_of = |modifier_labels: &[String], available: &BTreeSet<String>, what: &str| -> Result<(), String> {
        for l in modifier_labels {
            if !available.contains(l) {
                return Err(format!("{what} label '{l}' is not a label of the series it applies to ({available:?})"));
            }
        }
        Ok(())
    };
    match e {
        Expr::VectorSelector(vs) => {
            let name = vs.name.as_deref().ok_or("a selector without a metric name")?;
            let (metric, labels) = series.get(name).ok_or_else(|| format!("unknown metric '{name}'"))?;
            for m in &vs.matchers.matchers {
                if !labels.contains(&m.name) {
                    return Err(format!("'{name}' has no label '{}'", m.name));
                }
            }
            if !vs.matchers.or_matchers.is_empty() {
                return Err("or-matchers are not generated".into());
            }
            used.insert(metric.clone());
            Ok(labels.clone())
        }
        Expr::MatrixSelector(ms) => walk_promql(&Expr::VectorSelector(ms.vs.clone()), series, used),
        Expr::Aggregate(a) => {
            let inner = walk_promql(&a.expr, series, used)?;
            if let Some(p) = &a.param {
                walk_promql(p, series, used)?;
            }
            match &a.modifier {
                Some(m) => {
                    labels_of(&m.labels().labels, &inner, "aggregation")?;
                    Ok(if m.is_include() { m.labels().labels.iter().cloned().collect() } else { inner })
                }
                None => Ok(BTreeSet::new()),
            }
        }
        Expr::Binary(b) => {
            let l = walk_promql(&b.lhs, series, used)?;
            let r = walk_promql(&b.rhs, series, used)?;
            let both: BTreeSet<String> = l.union(&r).cloned().collect();
            if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                labels_of(&m.labels().labels, &both, "vector matching")?;
            }
            Ok(both)
        }
        Expr::Paren(p) => walk_promql(&p.expr, series, used),
        Expr::Unary(u) => walk_promql(&u.expr, series, used),
        Expr::Subquery(s) => walk_promql(&s.expr, series, used),
        Expr::Call(c) => {
            let mut all = BTreeSet::new();
            for a in &c.args.args {
                all.extend(walk_promql(a, series, used)?);
            }
            // histogram_quantile drops `le`
            all.remove("le");
            Ok(all)
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(BTreeSet::new()),
        Expr::Extension(_) => Err("extension".into()),
    }
}

/// Parses a PromQL expression and checks its names; returns the metrics it reads.
fn check_promql(expr: &str, known: &BTreeMap<String, Known>) -> Result<BTreeSet<String>, String> {
    let ast = promql::parse(expr).map_err(|e| format!("{expr}: {e}"))?;
    let mut used = BTreeSet::new();
    walk_promql(&ast, &prometheus_series(known), &mut used).map_err(|e| format!("{expr}: {e}"))?;
    Ok(used)
}

/// A Grafana expression with its variables replaced (`$__rate_interval` by a duration, a
/// dashboard variable by `.*`, as its "All" value); errors on an undeclared variable.
fn substitute(expr: &str, variables: &BTreeSet<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        out.push_str(match name {
            "__rate_interval" => "5m",
            "__interval" => "1m",
            "__range" => "1d",
            v if variables.contains(v) => ".*",
            v => return Err(format!("undeclared variable ${v} in {expr}")),
        });
        rest = &tail[end..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Grafana

/// Keys of `@grafana/schema`'s `Dashboard`, `Panel`, `RowPanel`, `VariableModel`.
const DASHBOARD_KEYS: [&str; 24] = [
    "annotations",
    "description",
    "editable",
    "fiscalYearStartMonth",
    "gnetId",
    "graphTooltip",
    "id",
    "links",
    "liveNow",
    "panels",
    "preload",
    "refresh",
    "revision",
    "schemaVersion",
    "snapshot",
    "tags",
    "templating",
    "time",
    "timepicker",
    "timezone",
    "title",
    "uid",
    "version",
    "weekStart",
];
const PANEL_KEYS: [&str; 26] = [
    "autoMigrateFrom",
    "cacheTimeout",
    "datasource",
    "description",
    "fieldConfig",
    "gridPos",
    "hideTimeOverride",
    "id",
    "interval",
    "libraryPanel",
    "links",
    "maxDataPoints",
    "maxPerRow",
    "options",
    "pluginVersion",
    "queryCachingTTL",
    "repeat",
    "repeatDirection",
    "targets",
    "timeCompare",
    "timeFrom",
    "timeShift",
    "title",
    "transformations",
    "transparent",
    "type",
];
const ROW_KEYS: [&str; 8] = ["collapsed", "datasource", "gridPos", "id", "panels", "repeat", "title", "type"];
const VARIABLE_KEYS: [&str; 22] = [
    "allValue",
    "allowCustomValue",
    "current",
    "datasource",
    "description",
    "enableGroupBy",
    "hide",
    "includeAll",
    "label",
    "multi",
    "name",
    "options",
    "query",
    "refresh",
    "regex",
    "regexApplyTo",
    "skipUrlSync",
    "sort",
    "staticOptions",
    "staticOptionsOrder",
    "type",
    "valuesFormat",
];
const VARIABLE_TYPES: [&str; 11] = [
    "query",
    "adhoc",
    "groupby",
    "constant",
    "datasource",
    "interval",
    "textbox",
    "custom",
    "system",
    "snapshot",
    "switch",
];

fn keys_in(v: &Value, allowed: &[&str], what: &str) -> Result<(), String> {
    let o = v.as_object().ok_or_else(|| format!("{what} is not an object"))?;
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("{what}: '{k}' is not a field of Grafana's type"));
        }
    }
    Ok(())
}

fn grid(v: &Value, what: &str) -> Result<(u64, u64, u64, u64), String> {
    keys_in(&v["gridPos"], &["h", "w", "x", "y", "static"], &format!("{what}: gridPos"))?;
    if let Some(ds) = v.get("datasource") {
        keys_in(ds, &["type", "uid"], &format!("{what}: datasource"))?;
    }
    let g = |k: &str| v["gridPos"][k].as_u64().ok_or_else(|| format!("{what}: gridPos.{k} must be a number"));
    let (h, w, x, y) = (g("h")?, g("w")?, g("x")?, g("y")?);
    if x + w > 24 || h == 0 || w == 0 {
        return Err(format!("{what}: gridPos outside the 24 columns"));
    }
    Ok((h, w, x, y))
}

/// The structural check of the Grafana dashboard, and every expression's names; returns the
/// metrics the panels read.
fn check_grafana(text: &str, known: &BTreeMap<String, Known>) -> Result<BTreeSet<String>, String> {
    let d: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    keys_in(&d, &DASHBOARD_KEYS, "dashboard")?;
    if !d["schemaVersion"].is_u64() || !d["title"].is_string() || !d["panels"].is_array() {
        return Err("dashboard: schemaVersion (number), title and panels are required".into());
    }
    if !(d["time"]["from"].is_string() && d["time"]["to"].is_string()) {
        return Err("dashboard: time.from and time.to".into());
    }
    // variables
    let mut variables = BTreeSet::new();
    let mut used = BTreeSet::new();
    for v in d["templating"]["list"].as_array().ok_or("templating.list")? {
        keys_in(v, &VARIABLE_KEYS, "variable")?;
        let name = v["name"].as_str().ok_or("variable without name")?;
        // VariableOption: text and value are required
        if let Some(c) = v.get("current")
            && (c.get("text").is_none() || c.get("value").is_none())
        {
            return Err(format!("variable {name}: current needs text and value"));
        }
        let ty = v["type"].as_str().ok_or("variable without type")?;
        if !VARIABLE_TYPES.contains(&ty) {
            return Err(format!("variable {name}: type {ty}"));
        }
        if ty == "query" {
            if v["datasource"]["uid"] != "${datasource}" {
                return Err(format!("variable {name}: datasource"));
            }
            let q = v["query"].as_str().ok_or("query variable without query")?;
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("variable {name}: {q}"))?;
            let (selector, label) = inner.rsplit_once(", ").ok_or_else(|| format!("variable {name}: {q}"))?;
            if label != name {
                return Err(format!("variable {name} lists {label}"));
            }
            let m = check_promql(&substitute(selector, &variables)?, known)?;
            let metric = m.iter().next().ok_or("no metric")?;
            if !known[metric].labels.contains(label) {
                return Err(format!("variable {name}: {metric} has no label {label}"));
            }
            used.extend(m);
        } else if ty == "datasource" && (name != "datasource" || v["query"] != "prometheus") {
            return Err("the datasource variable must list Prometheus data sources".into());
        }
        variables.insert(name.to_string());
    }
    if !variables.contains("datasource") {
        return Err("no datasource variable".into());
    }
    // panels
    let mut ids = BTreeSet::new();
    let mut areas: Vec<(u64, u64, u64, u64)> = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        let id = p["id"].as_u64().ok_or("panel without numeric id")?;
        if !ids.insert(id) {
            return Err(format!("panel id {id} twice"));
        }
        let ty = p["type"].as_str().ok_or("panel without type")?;
        let (h, w, x, y) = grid(p, &format!("panel {id}"))?;
        for (ah, aw, ax, ay) in &areas {
            if x < ax + aw && ax < &(x + w) && y < ay + ah && ay < &(y + h) {
                return Err(format!("panel {id} overlaps another"));
            }
        }
        areas.push((h, w, x, y));
        if ty == "row" {
            keys_in(p, &ROW_KEYS, "row")?;
            if !p["collapsed"].is_boolean() || !p["panels"].is_array() {
                return Err(format!("row {id}: collapsed and panels are required"));
            }
            continue;
        }
        keys_in(p, &PANEL_KEYS, &format!("panel {id}"))?;
        if !["timeseries", "stat"].contains(&ty) {
            return Err(format!("panel {id}: type {ty}"));
        }
        if !(p["fieldConfig"]["defaults"].is_object() && p["fieldConfig"]["overrides"].is_array()) {
            return Err(format!("panel {id}: fieldConfig needs defaults and overrides"));
        }
        if p["datasource"]["uid"] != "${datasource}" || p["datasource"]["type"] != "prometheus" {
            return Err(format!("panel {id}: datasource"));
        }
        let targets = p["targets"].as_array().filter(|t| !t.is_empty()).ok_or(format!("panel {id}: no targets"))?;
        let mut refs = BTreeSet::new();
        for t in targets {
            let r = t["refId"].as_str().ok_or(format!("panel {id}: target without refId"))?;
            if !refs.insert(r) {
                return Err(format!("panel {id}: refId {r} twice"));
            }
            let expr =
                t["expr"].as_str().filter(|e| !e.is_empty()).ok_or(format!("panel {id}: target without expr"))?;
            used.extend(check_promql(&substitute(expr, &variables)?, known)?);
            // a legend names only labels the query keeps
            let legend = t["legendFormat"].as_str().unwrap_or("");
            let grouped: BTreeSet<&str> =
                expr.split("by (").skip(1).flat_map(|g| g.split(')').next().unwrap().split(", ")).collect();
            for part in legend.split("{{").skip(1) {
                let label = part.split("}}").next().unwrap().trim();
                if !grouped.contains(label) {
                    return Err(format!("panel {id}: legend {{{{{label}}}}} is not a grouping of {expr}"));
                }
            }
        }
    }
    Ok(used)
}

// ---------------------------------------------------------------------------------------------
// Cloud Monitoring

/// Checks a Monitoring filter clause by clause; returns its metric.
fn check_gcm_filter(filter: &str, source: GcmSource, known: &BTreeMap<String, Known>) -> Result<String, String> {
    let prefix = match source {
        GcmSource::Custom => "custom.googleapis.com/",
        GcmSource::LogsBased => "logging.googleapis.com/user/",
    };
    let mut metric = None;
    let mut labels = Vec::new();
    for clause in filter.split(" AND ") {
        let (key, value) = clause.split_once('=').ok_or_else(|| format!("clause '{clause}'"))?;
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or(format!("clause '{clause}'"))?;
        match key {
            "metric.type" => {
                let name = value.strip_prefix(prefix).ok_or_else(|| format!("metric type {value} is not {prefix}"))?;
                metric = Some(name.to_string());
            }
            "resource.type" if source == GcmSource::Custom && value == "generic_task" => {}
            k => match k.strip_prefix("metric.labels.") {
                Some(l) => labels.push(l.to_string()),
                None => return Err(format!("clause '{clause}'")),
            },
        }
    }
    let name = metric.ok_or_else(|| format!("no metric.type in {filter}"))?;
    let k = known.get(&name).ok_or_else(|| format!("unknown metric {name}"))?;
    for l in labels {
        if !k.labels.contains(&l) {
            return Err(format!("{name} has no label {l}"));
        }
    }
    Ok(name)
}

fn check_group_by(agg: &Value, metric: &str, known: &BTreeMap<String, Known>) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    for f in agg["groupByFields"].as_array().into_iter().flatten() {
        let f = f.as_str().ok_or("groupByFields")?;
        let l = f.strip_prefix("metric.label.").ok_or_else(|| format!("group by {f}"))?;
        if !known[metric].labels.contains(l) {
            return Err(format!("{metric} has no label {l} to group by"));
        }
        keys.push(l.to_string());
    }
    Ok(keys)
}

/// Walks a Dashboard or AlertPolicy: every filter with its aggregations, every legend. Returns
/// the metrics read.
fn check_gcm_json(
    v: &Value,
    source: GcmSource,
    known: &BTreeMap<String, Known>,
    used: &mut Vec<String>,
) -> Result<(), String> {
    match v {
        Value::Object(o) => {
            for (filter_key, agg_keys) in [
                ("filter", &["aggregation", "aggregations"][..]),
                ("denominatorFilter", &["denominatorAggregations"][..]),
            ] {
                if let Some(f) = o.get(filter_key).and_then(Value::as_str) {
                    let metric = check_gcm_filter(f, source, known)?;
                    for k in agg_keys {
                        for agg in
                            o.get(*k).into_iter().flat_map(|a| a.as_array().cloned().unwrap_or_else(|| vec![a.clone()]))
                        {
                            check_group_by(&agg, &metric, known)?;
                        }
                    }
                    used.push(metric);
                }
            }
            if let (Some(legend), Some(q)) = (o.get("legendTemplate").and_then(Value::as_str), o.get("timeSeriesQuery"))
            {
                let agg = &q["timeSeriesFilter"]["aggregation"];
                let agg = if agg.is_null() { &q["timeSeriesFilterRatio"]["numerator"]["aggregation"] } else { agg };
                let grouped: Vec<&str> =
                    agg["groupByFields"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                for part in legend.split("${").skip(1) {
                    let label = part.split('}').next().unwrap();
                    let l = label.strip_prefix("metric.labels.").ok_or(format!("legend {label}"))?;
                    if !grouped.contains(&format!("metric.label.{l}").as_str()) {
                        return Err(format!("legend names {l}, which the query does not keep"));
                    }
                }
            }
            for x in o.values() {
                check_gcm_json(x, source, known, used)?;
            }
        }
        Value::Array(a) => {
            for x in a {
                check_gcm_json(x, source, known, used)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The mosaic layout: tiles inside the columns, widgets not overlapping, each widget inside one
/// collapsible group (but the text tile above them).
fn check_mosaic(d: &Value) -> Result<usize, String> {
    let columns = d["mosaicLayout"]["columns"].as_u64().ok_or("mosaicLayout.columns")?;
    if !(1..=48).contains(&columns) {
        return Err("columns must be 1..48".into());
    }
    let mut groups = Vec::new();
    let mut widgets = Vec::new();
    for t in d["mosaicLayout"]["tiles"].as_array().ok_or("tiles")? {
        let n = |k: &str| t[k].as_u64().unwrap_or(0);
        let area = (n("xPos"), n("yPos"), n("width"), n("height"));
        if area.0 + area.2 > columns || area.2 == 0 || area.3 == 0 {
            return Err(format!("tile outside the grid: {t}"));
        }
        if t["widget"]["collapsibleGroup"].is_object() {
            groups.push(area);
        } else {
            widgets.push((area, t["widget"]["text"].is_object()));
        }
    }
    let inside = |(x, y, w, h): (u64, u64, u64, u64), (gx, gy, gw, gh): (u64, u64, u64, u64)| {
        x >= gx && y >= gy && x + w <= gx + gw && y + h <= gy + gh
    };
    for (i, (a, text)) in widgets.iter().enumerate() {
        for (b, _) in &widgets[i + 1..] {
            if a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3 {
                return Err(format!("tiles {a:?} and {b:?} overlap"));
            }
        }
        let n = groups.iter().filter(|g| inside(*a, **g)).count();
        if n != usize::from(!text) {
            return Err(format!("tile {a:?} is in {n} groups"));
        }
    }
    Ok(widgets.len())
}

// ---------------------------------------------------------------------------------------------
// the lines the function prints

/// Every point of every recorded run of every orchestrator, through all built-in profiles.
async fn recorded_points() -> Vec<Point> {
    let lc = common::lifecycle::all_profiles();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/lifecycle");
    let mut points = Vec::new();
    for dir in ["mage", "airflow2", "airflow3", "dagster", "prefect"] {
        let mut scenarios: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".datastream.jsonl").map(str::to_string))
            .collect();
        scenarios.sort();
        assert!(!scenarios.is_empty(), "{dir}");
        for s in scenarios {
            points.extend(common::lifecycle::replay(&lc, common::lifecycle::recording(dir, &s)).await);
        }
    }
    points
}

/// One gauge point per catalogue metric (every label set), the failure gauge, and the reference
/// count with and without a partner.
fn gauge_points(handlers: &[Arc<dyn Handler>]) -> Vec<Point> {
    let t = chrono::Utc::now();
    let mut out = Vec::new();
    for h in handlers {
        for m in h.metrics() {
            let labels: Labels = m.labels.iter().map(|k| (k.clone(), format!("{k}-value"))).collect();
            // the reference count is 1.0 per record; the claim values anything
            let value = if m.name == PIPELINE_RUN_COUNT { 1.0 } else { 0.25 };
            out.push(Point::gauge(m.name.clone(), value, t, labels.clone(), "p"));
            if m.name == PIPELINE_RUN_COUNT {
                let mut without = labels;
                without.remove("partner");
                out.push(Point::gauge(m.name.clone(), 1.0, t, without, "p"));
            }
        }
    }
    out.push(pipeline_run_metrics::handlers::builtin::failure_gauge(
        "SavingsApprovalHandler",
        pipeline_run_metrics::error::ErrorClass::Transient,
        t,
        "p",
    ));
    out
}

/// A field of a JSON line by a dotted path (`labels.pipeline`).
fn field<'a>(line: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(line, |v, k| v.get(k))
}

/// Whether a Logging filter of the generated form (`(scope) AND a.b="v" AND ...`) selects a
/// line printed to stdout (its `jsonPayload`): the clauses on `jsonPayload` evaluated, the
/// scope checked to be the inputs'.
fn logging_filter_matches(filter: &str, scope: &str, payload: &Value) -> bool {
    let own = filter.strip_prefix(&format!("({scope}) AND ")).unwrap_or_else(|| panic!("scope of {filter}"));
    own.split(" AND ").all(|clause| {
        let (key, value) = clause.split_once('=').unwrap();
        let path = key.strip_prefix("jsonPayload.").unwrap_or_else(|| panic!("clause {clause}"));
        let want: String = serde_json::from_str(value).unwrap();
        field(payload, path).and_then(Value::as_str) == Some(want.as_str())
    })
}

/// Whether a CloudWatch JSON filter pattern of the generated form
/// (`{ ($.a = "v") && ($.b = "w") }`) matches a line.
fn cloudwatch_pattern_matches(pattern: &str, line: &Value) -> bool {
    let inner = pattern.strip_prefix("{ ").and_then(|p| p.strip_suffix(" }")).unwrap_or_else(|| panic!("{pattern}"));
    inner.split(" && ").all(|clause| {
        let c = clause.strip_prefix("($.").and_then(|c| c.strip_suffix(')')).unwrap_or_else(|| panic!("{clause}"));
        let (path, value) = c.split_once(" = ").unwrap();
        let want: String = serde_json::from_str(value).unwrap();
        field(line, path).and_then(Value::as_str) == Some(want.as_str())
    })
}

// ---------------------------------------------------------------------------------------------
// the tests

#[tokio::test]
async fn label_keys_cover_every_point_of_the_recorded_runs() {
    let f = fixture();
    let known = known(&f.handlers, &f.profiles);
    let points = recorded_points().await;
    assert!(points.len() > 100, "{}", points.len());
    let keys = lifecycle::label_keys(&f.profiles);
    let mut seen = BTreeSet::new();
    for p in &points {
        for l in &keys[p.name.as_str()].always {
            assert!(
                p.labels.get(l).is_some_and(|v| !v.is_empty()),
                "{} lacks '{l}' (declared always): {:?}",
                p.name,
                p.labels
            );
        }
        let k = known.get(&p.name).unwrap_or_else(|| panic!("{} is not declared", p.name));
        assert_eq!(k.kind, p.kind, "{}", p.name);
        assert_eq!(k.unit, p.unit, "{}", p.name);
        for l in p.labels.keys() {
            assert!(k.labels.contains(l), "{} carries '{l}', not declared by label_keys: {:?}", p.name, k.labels);
        }
        seen.insert(p.name.clone());
    }
    // the recordings exercise every lifecycle metric but those no recording has data for
    let lifecycle: BTreeSet<String> = names::ALL.iter().map(|(n, _, _)| n.to_string()).collect();
    let missing: Vec<&String> = lifecycle.difference(&seen).collect();
    assert!(
        missing.iter().all(|m| [names::RUN_RECORDS, names::RUN_SCHEDULE_DELAY].contains(&m.as_str())),
        "{missing:?}"
    );
}

#[test]
fn grafana_dashboard_has_grafanas_structure_and_names_only_known_metrics() {
    let f = fixture();
    let known = known(&f.handlers, &f.profiles);
    let text = ops::dashboard(DashboardFormat::Grafana, &f.inputs()).unwrap();
    let used = check_grafana(&text, &known).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let titles: Vec<&str> = d["panels"].as_array().unwrap().iter().filter_map(|p| p["title"].as_str()).collect();
    for want in [
        "Runs started",
        "Runs finished by result",
        "Run success rate by pipeline",
        "Run duration p50 / p95",
        "Queue wait p50 / p95",
        "Schedule delay p50 / p95",
        "SLA misses by pipeline",
        "Run retries by pipeline",
        "Task failures",
        "CDC lag p50 / p95",
        "Claim metrics",
        "claims/pipeline/filtered_pre/vl_pago/total",
        "Handler failures",
    ] {
        assert!(titles.contains(&want), "{want} missing from {titles:?}");
    }
    // every lifecycle metric but the records and every claim gauge is on a panel
    for name in known.keys() {
        if name != names::RUN_RECORDS && name != PIPELINE_RUN_COUNT {
            assert!(used.contains(name), "{name} is on no panel");
        }
    }
    // the extra label of the Mage profile is a variable
    let vars: Vec<&str> =
        d["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(vars, ["datasource", "orchestrator", "pipeline", "partner"]);
}

#[test]
fn every_grafana_and_rule_expression_passes_promtool() {
    // promtool parses PromQL with Prometheus' own parser: the expressions as recording rules
    let f = fixture();
    let text = ops::dashboard(DashboardFormat::Grafana, &f.inputs()).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let vars: BTreeSet<String> =
        d["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
    let mut rules = String::from("groups:\n  - name: dashboard-expressions\n    rules:\n");
    let mut n = 0;
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let e = substitute(t["expr"].as_str().unwrap(), &vars).unwrap();
            rules.push_str(&format!(
                "      - record: dashboard:expr{n}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
            n += 1;
        }
    }
    let dir = scratch("promtool-expressions");
    std::fs::write(dir.join("exprs.yml"), rules).unwrap();
    let out = run(Command::new(tool("promtool")).args(["check", "rules"]).arg(dir.join("exprs.yml")));
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

#[test]
fn gcm_dashboards_are_dashboard_resources_naming_only_known_metrics() {
    let f = fixture();
    let known = known(&f.handlers, &f.profiles);
    let dir = scratch("gcm-dashboard");
    let mut files = Vec::new();
    for source in [GcmSource::Custom, GcmSource::LogsBased] {
        let mut inputs = f.inputs();
        inputs.gcm_source = source;
        let text = ops::dashboard(DashboardFormat::Gcm, &inputs).unwrap();
        let d: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(d["displayName"], "pipeline-run-metrics");
        let widgets = check_mosaic(&d).unwrap();
        let mut used = Vec::new();
        check_gcm_json(&d, source, &known, &mut used).unwrap();
        // every chart and scorecard reads something
        let charts = text.matches("\"xyChart\"").count() + text.matches("\"scorecard\"").count();
        assert_eq!(charts + 1, widgets, "every widget but the text is a chart");
        assert!(used.len() >= charts, "{} filters for {charts} charts", used.len());
        for filter in d["dashboardFilters"].as_array().unwrap() {
            let key = filter["labelKey"].as_str().unwrap();
            assert!(known.values().any(|k| k.labels.contains(key)), "{key}");
        }
        // counts sum across instances: no grouping by the instance, cumulative series of the instances
        assert!(!text.contains("resource.label"), "charts must sum over the instances (task_id), not keep them");
        let file = dir.join(format!("{source:?}.json"));
        std::fs::write(&file, &text).unwrap();
        files.push(file);
    }
    check_gcp("dashboard", &files);
}

#[test]
fn gcm_alert_policies_are_alert_policy_resources_naming_only_known_metrics() {
    let f = fixture();
    let known = known(&f.handlers, &f.profiles);
    let dir = scratch("gcm-alerts");
    let mut files = Vec::new();
    for source in [GcmSource::Custom, GcmSource::LogsBased] {
        let mut inputs = f.inputs();
        inputs.gcm_source = source;
        let policies = ops::alerts(AlertFormat::Gcm, &inputs, &Thresholds::default()).unwrap();
        let names: Vec<&str> = policies.iter().map(|a| a.file_name.as_str()).collect();
        assert_eq!(
            names,
            ["alert-failure-rate.json", "alert-sla-missed.json", "alert-duration-p95.json", "alert-no-success.json"]
        );
        let sub = dir.join(format!("{source:?}"));
        std::fs::create_dir_all(&sub).unwrap();
        for (a, path) in policies.iter().zip(write(&sub, &policies)) {
            let p: Value = serde_json::from_str(&a.content).unwrap();
            let mut used = Vec::new();
            check_gcm_json(&p, source, &known, &mut used).unwrap();
            assert!(!used.is_empty());
            assert!(
                used.iter().all(|m| m == names::RUN_FINISHED || m == names::RUN_SLA_MISSED || m == names::RUN_DURATION)
            );
            let c = &p["conditions"][0]["conditionThreshold"];
            let by = &c["aggregations"][0]["groupByFields"];
            assert_eq!(by, &json!(["metric.label.orchestrator", "metric.label.pipeline"]), "{}", a.file_name);
            files.push(path);
        }
        let by_name = |n: &str| -> Value {
            serde_json::from_str(&policies.iter().find(|a| a.file_name == n).unwrap().content).unwrap()
        };
        let failure = by_name("alert-failure-rate.json");
        assert_eq!(failure["conditions"][0]["conditionThreshold"]["thresholdValue"], 0.2);
        assert!(failure["conditions"][0]["conditionThreshold"]["denominatorFilter"].is_string());
        let none = by_name("alert-no-success.json");
        let c = &none["conditions"][0]["conditionThreshold"];
        assert_eq!(
            (c["comparison"].as_str(), c["evaluationMissingData"].as_str()),
            (Some("COMPARISON_LT"), Some("EVALUATION_MISSING_DATA_ACTIVE"))
        );
        assert_eq!(c["aggregations"][0]["alignmentPeriod"], "86400s");
    }
    check_gcp("alert-policy", &files);
}

#[test]
fn thresholds_are_parameters_and_checked() {
    let f = fixture();
    let t = Thresholds {
        failure_rate: 0.5,
        duration_p95: std::time::Duration::from_secs(600),
        no_success: std::time::Duration::from_secs(48 * 3600),
        notification_channels: vec!["projects/p/notificationChannels/1".into()],
        ..Thresholds::default()
    };
    let gcm = ops::alerts(AlertFormat::Gcm, &f.inputs(), &t).unwrap();
    let get =
        |n: &str| -> Value { serde_json::from_str(&gcm.iter().find(|a| a.file_name == n).unwrap().content).unwrap() };
    assert_eq!(get("alert-failure-rate.json")["conditions"][0]["conditionThreshold"]["thresholdValue"], 0.5);
    assert_eq!(get("alert-duration-p95.json")["conditions"][0]["conditionThreshold"]["thresholdValue"], 600.0);
    // 48 h: a 24 h window that must stay without success for another 24 h
    let c = get("alert-no-success.json")["conditions"][0]["conditionThreshold"].clone();
    assert_eq!(
        (c["aggregations"][0]["alignmentPeriod"].as_str(), c["duration"].as_str()),
        (Some("86400s"), Some("86400s"))
    );
    assert_eq!(get("alert-sla-missed.json")["notificationChannels"], json!(["projects/p/notificationChannels/1"]));
    let rules = &ops::alerts(AlertFormat::Prometheus, &f.inputs(), &t).unwrap()[0].content;
    assert!(rules.contains("> 0.5\""), "{rules}");
    assert!(rules.contains("[2d]"), "{rules}");
    for bad in [
        Thresholds { failure_rate: 0.0, ..Thresholds::default() },
        Thresholds { failure_rate: 1.5, ..Thresholds::default() },
        Thresholds { sla_window: std::time::Duration::from_secs(90), ..Thresholds::default() },
        Thresholds { no_success_lookback: std::time::Duration::from_secs(3600), ..Thresholds::default() },
    ] {
        assert!(
            matches!(ops::alerts(AlertFormat::Prometheus, &f.inputs(), &bad), Err(OpsError::Threshold(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn prometheus_rules_are_yaml_pass_promtool_and_name_only_known_metrics() {
    let f = fixture();
    let known = known(&f.handlers, &f.profiles);
    let files = ops::alerts(AlertFormat::Prometheus, &f.inputs(), &Thresholds::default()).unwrap();
    assert_eq!(files.len(), 1);
    let doc: serde_norway::Value = serde_norway::from_str(&files[0].content).unwrap();
    let rules = doc["groups"][0]["rules"].as_sequence().unwrap();
    let alerts: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(
        alerts,
        ["PipelineRunFailureRateHigh", "PipelineRunSlaMissed", "PipelineRunDurationP95High", "PipelineNoSuccessfulRun"]
    );
    for r in rules {
        check_promql(r["expr"].as_str().unwrap(), &known).unwrap();
        for l in ["summary", "description"] {
            assert!(r["annotations"][l].as_str().unwrap().contains("{{ $labels.pipeline }}"));
        }
    }
    let dir = scratch("prometheus-rules");
    let paths = write(&dir, &files);
    let out = run(Command::new(tool("promtool")).args(["check", "rules"]).args(&paths));
    assert!(out.contains("SUCCESS: 4 rules found"), "{out}");
}

/// The alerts on series as the collector's deltatocumulative and Prometheus make them (one
/// series per instance, starting at its first count), through `promtool test rules`.
#[test]
fn prometheus_rules_fire_on_the_series_instances_write() {
    let f = fixture();
    let files = ops::alerts(AlertFormat::Prometheus, &f.inputs(), &Thresholds::default()).unwrap();
    let dir = scratch("prometheus-rule-tests");
    let paths = write(&dir, &files);
    let rule_file = paths[0].file_name().unwrap().to_str().unwrap();
    let fin = |pipeline: &str, result: &str, instance: &str| {
        format!(
            "pipeline_run_finished_total{{orchestrator=\"mage\",pipeline=\"{pipeline}\",result=\"{result}\",run_kind=\"schedule\",status=\"X\",instance=\"{instance}\"}}"
        )
    };
    let tests = format!(
        r#"rule_files: [{rule_file}]
evaluation_interval: 1m
tests:
  # an instance that appears with one SLA miss (its series starts at 1) alerts
  - interval: 1m
    input_series:
      - series: 'pipeline_run_sla_missed_total{{orchestrator="mage",pipeline="etl",instance="i1"}}'
        values: '_x10 1x30'
    alert_rule_test:
      - eval_time: 15m
        alertname: PipelineRunSlaMissed
        exp_alerts:
          - exp_labels: {{orchestrator: mage, pipeline: etl, severity: warning, service: pipeline-run-metrics}}
            exp_annotations:
              summary: "Pipeline run missed its SLA: etl"
              description: "A run of a pipeline missed its SLA or deadline in the last 15 min. Orchestrator mage, pipeline etl, value 1."
      - eval_time: 50m
        alertname: PipelineRunSlaMissed
        exp_alerts: []
  # three failures and one success in an hour, on two instances: 75 % failed
  - interval: 1m
    input_series:
      - series: '{f1}'
        values: '1+0x20 2+0x20 3+0x30'
      - series: '{s2}'
        values: '_x30 1+0x40'
    alert_rule_test:
      - eval_time: 50m
        alertname: PipelineRunFailureRateHigh
        exp_alerts:
          - exp_labels: {{orchestrator: mage, pipeline: etl, severity: critical, service: pipeline-run-metrics}}
            exp_annotations:
              summary: "Pipeline failure rate above 20%: etl"
              description: "More than 20% of the finished runs of a pipeline failed in the last 1 h. Orchestrator mage, pipeline etl, value 0.75."
  # failures only for two days: no success in 24 h; the other pipeline succeeds every 12 h
  - interval: 1h
    input_series:
      - series: '{f3}'
        values: '1+1x48'
      - series: '{s4}'
        values: '1+0x11 2+0x11 3+0x11 4+0x11 5'
    alert_rule_test:
      - eval_time: 30h
        alertname: PipelineNoSuccessfulRun
        exp_alerts:
          - exp_labels: {{orchestrator: mage, pipeline: broken, severity: critical, service: pipeline-run-metrics}}
            exp_annotations:
              summary: "No successful pipeline run for 1 d: broken"
              description: "A pipeline has not finished a run with result success in the last 1 d. Orchestrator mage, pipeline broken, value 31."
  # p95 of runs of about two hours, above the 1 h threshold
  - interval: 1m
    input_series:
      - series: 'pipeline_run_duration_seconds_bucket{{orchestrator="mage",pipeline="slow",result="success",le="3600",instance="i1"}}'
        values: '0+0x60'
      - series: 'pipeline_run_duration_seconds_bucket{{orchestrator="mage",pipeline="slow",result="success",le="7200",instance="i1"}}'
        values: '0+1x60'
      - series: 'pipeline_run_duration_seconds_bucket{{orchestrator="mage",pipeline="slow",result="success",le="+Inf",instance="i1"}}'
        values: '0+1x60'
    alert_rule_test:
      - eval_time: 60m
        alertname: PipelineRunDurationP95High
        exp_alerts:
          - exp_labels: {{orchestrator: mage, pipeline: slow, severity: warning, service: pipeline-run-metrics}}
            exp_annotations:
              summary: "Pipeline p95 run duration above 1 h: slow"
              description: "The 95th percentile of the run durations of a pipeline in the last 1 h is above 1 h. Orchestrator mage, pipeline slow, value 7020."
"#,
        f1 = fin("etl", "failure", "i1"),
        s2 = fin("etl", "success", "i2"),
        f3 = fin("broken", "failure", "i1"),
        s4 = fin("fine", "success", "i1"),
    );
    std::fs::write(dir.join("tests.yml"), tests).unwrap();
    let out = run(Command::new(tool("promtool")).current_dir(&dir).args(["test", "rules", "tests.yml"]));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn log_metrics_are_log_metric_resources_and_the_script_creates_each() {
    let f = fixture();
    let inputs = f.inputs();
    let known = known(&f.handlers, &f.profiles);
    let files = ops::log_metrics(LogMetricFormat::GcloudJson, &inputs).unwrap();
    assert_eq!(files.len(), known.len(), "one definition per metric");
    let dir = scratch("log-metrics");
    let paths = write(&dir, &files);
    check_gcp("log-metric", &paths);
    for a in &files {
        let m: Value = serde_json::from_str(&a.content).unwrap();
        let name = m["name"].as_str().unwrap();
        let k = &known[name];
        // descriptor labels = extractors = the metric's label keys
        let descriptor: BTreeSet<&str> =
            m["metricDescriptor"]["labels"].as_array().unwrap().iter().map(|l| l["key"].as_str().unwrap()).collect();
        let extractors: BTreeSet<&str> = m["labelExtractors"].as_object().unwrap().keys().map(String::as_str).collect();
        let keys: BTreeSet<&str> = k.labels.iter().map(String::as_str).collect();
        assert_eq!((&descriptor, &extractors), (&keys, &keys), "{name}");
        for (key, e) in m["labelExtractors"].as_object().unwrap() {
            assert_eq!(e, &format!("EXTRACT(jsonPayload.labels.{key})"));
        }
        assert_eq!(m["metricDescriptor"]["metricKind"], "DELTA");
        match m["metricDescriptor"]["valueType"].as_str().unwrap() {
            "INT64" => assert!(m.get("valueExtractor").is_none()),
            "DISTRIBUTION" => {
                assert_eq!(m["valueExtractor"], "EXTRACT(jsonPayload.value)");
                assert!(m["bucketOptions"].is_object());
            }
            other => panic!("{other}"),
        }
    }
    // the script, with a gcloud that records its calls: each metric created from the same JSON
    let script = &ops::log_metrics(LogMetricFormat::GcloudScript, &inputs).unwrap()[0];
    let sdir = scratch("log-metrics-script");
    let bin = sdir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = "#!/usr/bin/env bash\n\
        echo \"$*\" >> \"$CALLS\"\n\
        case \"$1 $2 $3\" in\n\
          'logging metrics describe') exit 1 ;;\n\
          'logging metrics create') cp \"${6#--config-from-file=}\" \"$OUT/$(echo \"$4\" | tr / _).json\" ;;\n\
        esac\n";
    std::fs::write(bin.join("gcloud"), fake).unwrap();
    run(Command::new("chmod").arg("+x").arg(bin.join("gcloud")));
    let script_path = write(&sdir, std::slice::from_ref(script)).remove(0);
    let out_dir = sdir.join("created");
    std::fs::create_dir_all(&out_dir).unwrap();
    run(Command::new("bash")
        .arg(&script_path)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
        .env("PROJECT", "my-project")
        .env("CALLS", sdir.join("calls"))
        .env("OUT", &out_dir));
    let calls = std::fs::read_to_string(sdir.join("calls")).unwrap();
    assert_eq!(calls.lines().filter(|l| l.starts_with("logging metrics create ")).count(), files.len(), "{calls}");
    assert!(calls.lines().all(|l| l.contains("--project=my-project")), "{calls}");
    for a in &files {
        let m: Value = serde_json::from_str(&a.content).unwrap();
        let name = m["name"].as_str().unwrap().replace('/', "_");
        let created: Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join(format!("{name}.json"))).unwrap()).unwrap();
        assert_eq!(created, m, "{name}");
    }
}

/// Nothing lost: every line the function prints for the recorded runs (and a gauge line per
/// catalogue metric) is counted by exactly one logs-based metric, with every label it carries.
#[tokio::test]
async fn logs_based_metrics_count_every_line_once_with_its_labels() {
    let f = fixture();
    let inputs = f.inputs();
    let scope = inputs.log_scope.clone().unwrap();
    let defs: Vec<Value> = ops::log_metrics(LogMetricFormat::GcloudJson, &inputs)
        .unwrap()
        .iter()
        .map(|a| serde_json::from_str(&a.content).unwrap())
        .collect();
    let mut points = recorded_points().await;
    points.extend(gauge_points(&f.handlers));
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for p in &points {
        let payload: Value = serde_json::from_str(&metric_line(p)).unwrap();
        let matched: Vec<&Value> =
            defs.iter().filter(|d| logging_filter_matches(d["filter"].as_str().unwrap(), &scope, &payload)).collect();
        assert_eq!(matched.len(), 1, "{} matched by {} definitions", payload, matched.len());
        let d = matched[0];
        match d["metricDescriptor"]["valueType"].as_str().unwrap() {
            // a counter counts the line: exact only if the line is one occurrence
            "INT64" => assert_eq!(p.value, 1.0, "{payload}"),
            _ => assert!(field(&payload, "value").unwrap().is_f64(), "{payload}"),
        }
        for key in p.labels.keys() {
            assert!(d["labelExtractors"].get(key).is_some(), "{}: label {key} would be lost", p.name);
        }
        *counted.entry(d["name"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert!(counted.contains_key(names::RUN_FINISHED) && counted.contains_key(names::TASK_FINISHED), "{counted:?}");
}

#[tokio::test]
async fn cloudwatch_filters_take_every_line_once_and_not_the_emf_lines() {
    let f = fixture();
    let inputs = f.inputs();
    let known = known(&f.handlers, &f.profiles);
    let template = &ops::log_metrics(LogMetricFormat::CloudWatchTemplate, &inputs).unwrap()[0];
    let dir = scratch("cloudwatch");
    let paths = write(&dir, std::slice::from_ref(template));
    run(Command::new(tool("cfn-lint")).args(&paths));
    let doc: Value = serde_json::from_str(&template.content).unwrap();
    assert_eq!(doc["Parameters"]["LogGroupName"]["Default"], "/aws/lambda/pipeline-run-metrics");
    let filters: Vec<&Value> = doc["Resources"].as_object().unwrap().values().map(|r| &r["Properties"]).collect();
    assert_eq!(filters.len(), known.len());
    for fl in &filters {
        let t = &fl["MetricTransformations"][0];
        let name = t["MetricName"].as_str().unwrap();
        let k = known.get(name).unwrap_or_else(|| panic!("unknown metric {name}"));
        for d in t["Dimensions"].as_array().into_iter().flatten() {
            let key = d["Key"].as_str().unwrap();
            assert!(k.labels.contains(key), "{name} has no label {key}");
            assert_eq!(d["Value"], format!("$.labels.{key}"));
        }
        assert_eq!(t["MetricValue"], "$.value");
    }
    let mut points = recorded_points().await;
    points.extend(gauge_points(&f.handlers));
    for p in &points {
        let line: Value = serde_json::from_str(&metric_line(p)).unwrap();
        let matched: Vec<&&Value> = filters
            .iter()
            .filter(|fl| cloudwatch_pattern_matches(fl["FilterPattern"].as_str().unwrap(), &line))
            .collect();
        assert_eq!(matched.len(), 1, "{line}");
        let t = &matched[0]["MetricTransformations"][0];
        assert_eq!(t["MetricName"], p.name.as_str());
        for d in t["Dimensions"].as_array().into_iter().flatten() {
            let v = field(&line, d["Value"].as_str().unwrap().strip_prefix("$.").unwrap());
            assert!(v.and_then(Value::as_str).is_some_and(|s| !s.is_empty()), "{line}: no {}", d["Key"]);
        }
        // with METRICS_FORMAT=emf no filter is needed, and none takes those lines
        let emf: Value = serde_json::from_str(&emf_line(p, "pipeline-run-metrics")).unwrap();
        assert!(filters.iter().all(|fl| !cloudwatch_pattern_matches(fl["FilterPattern"].as_str().unwrap(), &emf)));
    }
    // the script: one put-metric-filter per metric, with the same pattern and transformation
    let script = &ops::log_metrics(LogMetricFormat::CloudWatchScript, &inputs).unwrap()[0];
    let sdir = scratch("cloudwatch-script");
    let bin = sdir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("aws"),
        "#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > \"$(mktemp \"$CALLS/call.XXXXXX\")\"\n",
    )
    .unwrap();
    run(Command::new("chmod").arg("+x").arg(bin.join("aws")));
    let calls = sdir.join("calls");
    std::fs::create_dir_all(&calls).unwrap();
    let script_path = write(&sdir, std::slice::from_ref(script)).remove(0);
    run(Command::new("bash")
        .arg(&script_path)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
        .env("LOG_GROUP", "/aws/lambda/fn")
        .env("CALLS", &calls));
    let mut n = 0;
    for e in std::fs::read_dir(&calls).unwrap() {
        let args: Vec<String> =
            std::fs::read_to_string(e.unwrap().path()).unwrap().lines().map(str::to_string).collect();
        let arg = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(args[..2], ["logs", "put-metric-filter"]);
        assert_eq!(arg("--log-group-name"), "/aws/lambda/fn");
        let t: Value = serde_json::from_str(&arg("--metric-transformations")).unwrap();
        let name = t[0]["metricName"].as_str().unwrap();
        let same = filters.iter().find(|fl| fl["MetricTransformations"][0]["MetricName"] == name).unwrap();
        assert_eq!(arg("--filter-pattern"), same["FilterPattern"].as_str().unwrap());
        assert_eq!(t[0]["metricNamespace"], "pipeline-run-metrics");
        n += 1;
    }
    assert_eq!(n, known.len());
}

/// The checks above fail on a name the inputs do not have: they would catch a generator that
/// invents one.
#[test]
fn a_generator_that_invents_a_name_is_caught() {
    let f = fixture();
    let known = known(&f.handlers, &f.profiles);
    let grafana = ops::dashboard(DashboardFormat::Grafana, &f.inputs()).unwrap();
    check_grafana(&grafana, &known).unwrap();
    for (from, to) in [
        ("pipeline_run_finished_total{", "pipeline_run_finishd_total{"),
        ("sum by (result)", "sum by (outcome)"),
        ("result=\\\"failure\\\"", "outcome=\\\"failure\\\""),
        ("\"timeseries\"", "\"graph\""),
        ("\"gridPos\"", "\"gridPosition\""),
    ] {
        assert!(grafana.contains(from), "{from}");
        let err = check_grafana(&grafana.replacen(from, to, 1), &known).unwrap_err();
        assert!(!err.is_empty());
    }
    let mut inputs = f.inputs();
    inputs.gcm_source = GcmSource::Custom;
    let gcm: Value = serde_json::from_str(&ops::dashboard(DashboardFormat::Gcm, &inputs).unwrap()).unwrap();
    for (from, to) in [
        ("custom.googleapis.com/pipeline.run.finished", "custom.googleapis.com/pipeline.run.finishd"),
        ("metric.label.pipeline", "metric.label.pipelin"),
        ("metric.labels.result", "metric.labels.outcome"),
        ("custom.googleapis.com/pipeline.run.started", "logging.googleapis.com/user/pipeline.run.started"),
    ] {
        let text = gcm.to_string();
        assert!(text.contains(from), "{from}");
        let bad: Value = serde_json::from_str(&text.replacen(from, to, 1)).unwrap();
        assert!(check_gcm_json(&bad, GcmSource::Custom, &known, &mut Vec::new()).is_err(), "{to}");
    }
    let rules = &ops::alerts(AlertFormat::Prometheus, &f.inputs(), &Thresholds::default()).unwrap()[0].content;
    let doc: serde_norway::Value = serde_norway::from_str(rules).unwrap();
    let expr = doc["groups"][0]["rules"][0]["expr"].as_str().unwrap();
    assert!(
        check_promql(&expr.replace("pipeline_run_finished_total", "pipeline_runs_finished_total"), &known).is_err()
    );
    assert!(check_promql(&expr.replace("by (orchestrator, pipeline)", "by (orchestrator, dag)"), &known).is_err());
}

/// Without lifecycle profiles (`PROFILES=none`): the claim metrics only, and no alerts.
#[test]
fn without_profiles_only_the_catalogue() {
    let handlers = handlers::all(None).unwrap();
    let inputs = Inputs::new(&handlers, &[]);
    let known = known(&handlers, &[]);
    let grafana = ops::dashboard(DashboardFormat::Grafana, &inputs).unwrap();
    let used = check_grafana(&grafana, &known).unwrap();
    assert!(used.iter().all(|m| !m.starts_with("pipeline.")), "{used:?}");
    assert!(ops::alerts(AlertFormat::Gcm, &inputs, &Thresholds::default()).unwrap().is_empty());
    let rules = ops::alerts(AlertFormat::Prometheus, &inputs, &Thresholds::default()).unwrap();
    let dir = scratch("no-profiles");
    let paths = write(&dir, &rules);
    let out = run(Command::new(tool("promtool")).args(["check", "rules"]).args(&paths));
    assert!(out.contains("SUCCESS: 0 rules found"), "{out}");
    // no handlers and no profiles: nothing to generate
    assert_eq!(ops::dashboard(DashboardFormat::Gcm, &Inputs::new(&[], &[])), Err(OpsError::Empty));
}

#[test]
fn formats_parse_from_their_command_line_names() {
    assert_eq!("grafana".parse::<DashboardFormat>(), Ok(DashboardFormat::Grafana));
    assert_eq!("gcm".parse::<AlertFormat>(), Ok(AlertFormat::Gcm));
    assert_eq!("prometheus".parse::<AlertFormat>(), Ok(AlertFormat::Prometheus));
    for (text, f) in LogMetricFormat::ALL {
        assert_eq!(text.parse::<LogMetricFormat>(), Ok(*f));
        assert_eq!(f.as_str(), *text);
    }
    assert_eq!("mql".parse::<DashboardFormat>(), Err(OpsError::Format("mql".into())));
}
