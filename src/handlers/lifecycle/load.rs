//! Loading and validating profiles: the built-in files (`profiles/*.toml`, embedded) overlaid
//! with `PROFILES_DIR`, every error naming its file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::spec::{EventsSpec, Level, Order, ProfileFile, RetrySpec, Source, Starts, TableSpec};
use super::{Lookup, Profile, Table};
use crate::handlers::catalogue::CatalogueError;

static BUILTIN: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/profiles");

/// The results a terminal status may map to (OpenTelemetry's `cicd.pipeline.result` values,
/// plus `other`).
pub const RESULTS: [&str; 6] = ["success", "failure", "cancellation", "timeout", "skip", "other"];

/// Labels every lifecycle metric may carry; an extra label may not reuse them.
const RESERVED_LABELS: [&str; 7] = ["orchestrator", "pipeline", "task", "result", "status", "run_kind", "table"];

const UNITS: [&str; 4] = ["iso", "epoch_s", "epoch_ms", "epoch_us"];

/// The facts an event row may be besides a result (a `finished` fact).
const EVENT_FACTS: [&str; 3] = ["started", "sla_missed", "retried"];

/// The built-in profiles overlaid with `dir` (same file name replaces, new names add); only
/// those named in `enabled` when it is given (file names without `.toml`).
///
/// Errors: the first invalid file, with its line; an unknown name in `enabled`.
pub fn load(dir: Option<&Path>, enabled: Option<&[String]>) -> Result<Vec<Profile>, CatalogueError> {
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
    for f in BUILTIN.files() {
        let name = f.path().to_string_lossy().to_string();
        if name.ends_with(".toml") {
            let text = f.contents_utf8().unwrap_or_default().to_string();
            files.insert(name.clone(), (format!("profiles/{name}"), text));
        }
    }
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| CatalogueError::new(dir.display().to_string(), 0, format!("cannot read PROFILES_DIR: {e}")))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            if !name.ends_with(".toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CatalogueError::new(path.display().to_string(), 0, format!("cannot read: {e}")))?;
            files.insert(name, (path.display().to_string(), text));
        }
    }
    if let Some(names) = enabled {
        for n in names {
            if !files.contains_key(&format!("{n}.toml")) {
                let known: Vec<&str> = files.keys().map(|k| k.trim_end_matches(".toml")).collect();
                // the variable is at fault, not a file: no line
                return Err(CatalogueError::new(
                    "PROFILES",
                    0,
                    format!(
                        "unknown profile '{n}': no {n}.toml among the built-in profiles{} (known: {})",
                        dir.map(|d| format!(" and PROFILES_DIR {}", d.display())).unwrap_or_default(),
                        known.join(", ")
                    ),
                ));
            }
        }
        files.retain(|k, _| names.iter().any(|n| format!("{n}.toml") == *k));
    }
    let mut out = Vec::new();
    for (name, (path, text)) in &files {
        out.push(parse(name.trim_end_matches(".toml"), path, text)?);
    }
    check_ambiguity(&out)?;
    Ok(out)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map(|i| text[..i].matches('\n').count() + 1).unwrap_or(1)
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A column or a dotted path into a JSON column (segments may hold `/`, `-`, `.`-free text).
fn is_path(s: &str) -> bool {
    let mut parts = s.split('.');
    parts.next().is_some_and(is_ident)
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c)))
}

/// Parses and validates one profile file.
pub(super) fn parse(name: &str, path: &str, text: &str) -> Result<Profile, CatalogueError> {
    let err = |needle: &str, message: String| CatalogueError::new(path, line_of(text, needle), message);
    let spec: ProfileFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(1);
        CatalogueError::new(path, line, e.message().trim())
    })?;
    if spec.orchestrator.is_empty() || !spec.orchestrator.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    {
        return Err(err(
            "orchestrator",
            format!("orchestrator '{}' must be a short name ([A-Za-z0-9_-])", spec.orchestrator),
        ));
    }
    if spec.tables.is_empty() {
        return Err(err("orchestrator", "a profile needs at least one [tables.<name>]".into()));
    }
    let known: BTreeSet<&str> = spec.tables.keys().chain(spec.lookups.keys()).map(String::as_str).collect();
    let mut tables = Vec::new();
    for (table, t) in &spec.tables {
        let header = format!("[tables.{table}]");
        tables.push(table_rules(table, t, &known, &|m: String| err(&header, m))?);
    }
    let mut lookups = Vec::new();
    for (table, l) in &spec.lookups {
        let here = |m: String| err(&format!("[lookups.{table}]"), m);
        if l.key.is_empty() || !l.key.iter().all(|k| is_ident(k)) || !is_path(&l.value) {
            return Err(here(format!("lookup '{table}' needs key columns and a value column")));
        }
        lookups.push(Lookup { table: table.clone(), key: l.key.clone(), value: l.value.clone() });
    }
    // a table that others look up publishes its pipeline name
    let looked_up: BTreeSet<String> = tables
        .iter()
        .filter_map(|t: &Table| match &t.spec.pipeline {
            Source::Lookup { lookup, .. } => Some(lookup.clone()),
            _ => None,
        })
        .collect();
    for t in &mut tables {
        t.publishes = looked_up.contains(&t.name);
    }
    Ok(Profile { name: name.to_string(), orchestrator: spec.orchestrator, tables, lookups })
}

fn table_rules(
    name: &str,
    t: &TableSpec,
    known: &BTreeSet<&str>,
    here: &dyn Fn(String) -> CatalogueError,
) -> Result<Table, CatalogueError> {
    if t.key.is_empty() || !t.key.iter().all(|k| is_ident(k)) {
        return Err(here(format!("table '{name}': `key` must list its primary key columns")));
    }
    match &t.pipeline {
        Source::Path(p) if !is_path(p) => {
            return Err(here(format!("table '{name}': pipeline '{p}' is not a column or path")));
        }
        Source::Lookup { lookup, via } => {
            if !known.contains(lookup.as_str()) || lookup == name {
                return Err(here(format!(
                    "table '{name}': pipeline lookup '{lookup}' is not another table of this profile"
                )));
            }
            if !is_ident(via) {
                return Err(here(format!("table '{name}': lookup column '{via}' is not a column")));
            }
        }
        _ => {}
    }
    match (t.level, &t.task) {
        (Level::Task, None) => {
            return Err(here(format!("table '{name}': a task table needs `task` (its task name column)")));
        }
        (Level::Run, Some(_)) => {
            return Err(here(format!("table '{name}': `task` is for task tables (level = \"task\")")));
        }
        (_, Some(c)) if !is_path(c) => return Err(here(format!("table '{name}': task '{c}' is not a column"))),
        _ => {}
    }
    for (status, result) in &t.terminal {
        if !RESULTS.contains(&result.as_str()) {
            return Err(here(format!(
                "table '{name}': terminal status {status} maps to '{result}' (results: {})",
                RESULTS.join(", ")
            )));
        }
    }
    if t.order == Order::Events {
        let meaning = |m: &str| RESULTS.contains(&m) || EVENT_FACTS.contains(&m);
        match &t.events {
            None => return Err(here(format!("table '{name}': order = \"events\" needs `events`"))),
            Some(EventsSpec { column, values, fact, time }) => {
                match (column, fact) {
                    (Some(_), Some(_)) | (None, None) => {
                        return Err(here(format!(
                            "table '{name}': `events` needs either `column` and `values` (the column names the fact) or `fact` (every row is that fact)"
                        )));
                    }
                    (Some(c), None) if !is_ident(c) || values.is_empty() => {
                        return Err(here(format!(
                            "table '{name}': events column '{c}' must be a column, with `values` naming what each value means"
                        )));
                    }
                    (None, Some(_)) if !values.is_empty() => {
                        return Err(here(format!("table '{name}': events `values` needs `column`, not `fact`")));
                    }
                    (None, Some(f)) if !meaning(f) => {
                        return Err(here(format!(
                            "table '{name}': events fact '{f}' is not a result ({}) or a fact ({})",
                            RESULTS.join(", "),
                            EVENT_FACTS.join(", ")
                        )));
                    }
                    _ => {}
                }
                for (v, fact) in values {
                    if !meaning(fact) {
                        return Err(here(format!("table '{name}': event {v} = '{fact}' is not a result or a fact")));
                    }
                }
                if !is_ident(time) {
                    return Err(here(format!("table '{name}': events time '{time}' is not a column")));
                }
            }
        }
    } else if t.events.is_some() {
        return Err(here(format!("table '{name}': `events` needs order = \"events\"")));
    }
    let has_status = t.status.is_some();
    if !has_status && t.order != Order::Events && t.sla.is_none() {
        return Err(here(format!("table '{name}': needs `status` (or `sla`, or order = \"events\")")));
    }
    if has_status && t.terminal.is_empty() {
        return Err(here(format!("table '{name}': `terminal` must map its terminal statuses to results")));
    }
    if t.order == Order::Log && !has_status {
        return Err(here(format!("table '{name}': order = \"log\" needs `status`")));
    }
    for s in &t.not_run {
        if !t.terminal.contains_key(s) {
            return Err(here(format!("table '{name}': not_run status {s} is not a terminal status")));
        }
    }
    for s in &t.running {
        if t.terminal.contains_key(s) {
            return Err(here(format!("table '{name}': running status {s} is also terminal")));
        }
    }
    if !t.backfill_kinds.is_empty() && (t.run_kind.is_none() || t.times.expected.is_none()) {
        return Err(here(format!("table '{name}': backfill_kinds needs `run_kind` and times.expected")));
    }
    if t.starts == Starts::StartTime && t.times.started.is_none() {
        return Err(here(format!("table '{name}': starts = \"start_time\" needs times.started")));
    }
    let columns = t.times.created.iter().chain(&t.times.queued).chain(&t.times.expected).chain(&t.times.started);
    for c in columns.chain(&t.times.ended).chain(&t.duration).chain(&t.attempt) {
        if !is_ident(c) {
            return Err(here(format!("table '{name}': '{c}' is not a column name")));
        }
    }
    for (c, u) in &t.units {
        if !UNITS.contains(&u.as_str()) {
            return Err(here(format!("table '{name}': unit of {c} is '{u}' (units: {})", UNITS.join(", "))));
        }
    }
    for (label, p) in &t.labels {
        let valid_key = label.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_key || RESERVED_LABELS.contains(&label.as_str()) {
            return Err(here(format!(
                "table '{name}': extra label '{label}' must be [a-z][a-z0-9_]* and not one of {}",
                RESERVED_LABELS.join(", ")
            )));
        }
        if !is_path(p) {
            return Err(here(format!("table '{name}': label {label} = '{p}' is not a column or path")));
        }
    }
    if let Some(RetrySpec { column: Some(c), .. }) = &t.retried
        && !is_path(c)
    {
        return Err(here(format!("table '{name}': retried column '{c}' is not a column or path")));
    }
    let (table, schema) = match name.split_once('.') {
        Some((s, t)) => (t.to_string(), Some(s.to_string())),
        None => (name.to_string(), None),
    };
    Ok(Table {
        name: table,
        schema,
        spec: t.clone(),
        publishes: false,
        started_states: t
            .running
            .iter()
            .chain(t.terminal.keys().filter(|s| !t.not_run.contains(s)))
            .chain(t.retried.iter().flat_map(|r| r.statuses.iter()))
            .cloned()
            .collect(),
    })
}

/// Two profiles may describe tables of the same name (Airflow 2 and 3): each must then say
/// which rows are its own with `requires`, and no two may require the same.
fn check_ambiguity(profiles: &[Profile]) -> Result<(), CatalogueError> {
    // (schema, table) -> [(profile, requires)]
    type Owners = Vec<(String, Vec<String>)>;
    let mut seen: BTreeMap<(Option<String>, String), Owners> = BTreeMap::new();
    for p in profiles {
        for t in &p.tables {
            seen.entry((t.schema.clone(), t.name.clone())).or_default().push((p.name.clone(), t.spec.requires.clone()));
        }
    }
    for ((_, table), owners) in seen {
        if owners.len() < 2 {
            continue;
        }
        let mut sets = BTreeSet::new();
        for (profile, requires) in &owners {
            if requires.is_empty() || !sets.insert(requires.clone()) {
                let names: Vec<&str> = owners.iter().map(|(p, _)| p.as_str()).collect();
                return Err(CatalogueError::new(
                    format!("profiles/{profile}.toml"),
                    0,
                    format!(
                        "table '{table}' is described by several profiles ({}); each needs a distinct `requires`",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
