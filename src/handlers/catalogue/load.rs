//! Loading and validating the catalogue: the built-in files overlaid with `HANDLERS_DIR`, every
//! error naming its file and line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::include::{FRAGMENT_SUFFIX, Files, expand};
use super::spec::{FamilyFile, IfMissing, IfNull, InputKind, LabelSpec};
use super::sql::{segments, sql_parameters, sql_placeholders};
use super::{BUILTIN_PARAMS, Family, QueryHandler, WhenMissing, builtin_files, is_catalogue_file};
use crate::handlers::Handler;
use crate::warehouse::Cell;

/// An invalid catalogue file: where (file and 1-based line; 0 when the file as a whole is at
/// fault) and why. For a line of an SQL fragment, `included_from` lists the include sites that
/// brought it into the family's query, innermost first.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {message}{}", include_chain(included_from))]
pub struct CatalogueError {
    /// The file at fault, as displayed (`handlers/x.toml`, or its path in `HANDLERS_DIR`).
    pub file: String,
    /// 1-based line in `file`; 0 when the file as a whole is at fault.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// For a line of a fragment: (file, line) of each include that brought it in, innermost first.
    pub included_from: Vec<(String, usize)>,
}

impl CatalogueError {
    /// An error at a line of a file that no include brought in.
    pub fn new(file: impl Into<String>, line: usize, message: impl Into<String>) -> Self {
        CatalogueError { file: file.into(), line, message: message.into(), included_from: Vec::new() }
    }
}

fn include_chain(sites: &[(String, usize)]) -> String {
    if sites.is_empty() {
        return String::new();
    }
    let sites: Vec<String> = sites.iter().map(|(f, l)| format!("{f}:{l}")).collect();
    format!(" (included from {})", sites.join(" <- "))
}

/// 1-based line of the first occurrence of `needle` (1 when absent).
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map(|i| text[..i].matches('\n').count() + 1).unwrap_or(1)
}

pub(super) fn is_ident(s: &str) -> bool {
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
/// The catalogue: the built-in files overlaid with `dir` (same file name replaces, new names add).
pub fn load(dir: Option<&Path>) -> Result<Vec<Arc<dyn Handler>>, CatalogueError> {
    let mut files: BTreeMap<String, (String, String)> =
        builtin_files()?.into_iter().map(|(name, text)| (name.clone(), (format!("handlers/{name}"), text))).collect();
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| CatalogueError::new(dir.display().to_string(), 0, format!("cannot read HANDLERS_DIR: {e}")))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            if !is_catalogue_file(&name) {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CatalogueError::new(path.display().to_string(), 0, format!("cannot read: {e}")))?;
            files.insert(name, (path.display().to_string(), text));
        }
    }
    load_files(&files)
}

/// Parses and validates catalogue files: file name -> (display path, contents).
fn load_files(files: &Files) -> Result<Vec<Arc<dyn Handler>>, CatalogueError> {
    let mut handlers: Vec<Arc<dyn Handler>> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (name, (path, text)) in files.iter().filter(|(n, _)| n.ends_with(".toml")) {
        let err = |needle: &str, message: String| CatalogueError::new(path.clone(), line_of(text, needle), message);
        let spec: FamilyFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(1);
            CatalogueError::new(path.clone(), line, e.message().trim())
        })?;
        if spec.sql.ends_with(FRAGMENT_SUFFIX) || !spec.sql.ends_with(".sql") {
            return Err(err(
                "sql",
                format!("sql = '{}': a family's query is a .sql file that is not a fragment", spec.sql),
            ));
        }
        if !files.contains_key(&spec.sql) {
            return Err(err("sql", format!("SQL file '{}' not found next to {name}", spec.sql)));
        }
        let family = validate(&spec, path, text, files)?;
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

fn validate(spec: &FamilyFile, path: &str, text: &str, files: &Files) -> Result<Family, CatalogueError> {
    let err = |needle: &str, message: String| CatalogueError::new(path, line_of(text, needle), message);
    let sql_path = &files[&spec.sql].0;
    let expanded = expand(&spec.sql, files)?;
    let sql_err = |needle: &str, message: String| expanded.error(needle, message);
    let code = &expanded.code;
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
        if i.kind == InputKind::Table && !sql_placeholders(code).contains(&i.name) {
            return Err(err(
                &at,
                format!("table input '{}' is not used in {sql_path} (as {{{{{}}}}})", i.name, i.name),
            ));
        }
    }
    for p in sql_placeholders(code) {
        if !spec.inputs.iter().any(|i| i.name == p && i.kind == InputKind::Table) {
            return Err(sql_err(&format!("{{{{{p}"), format!("{{{{{p}}}}} is not a declared table input")));
        }
    }
    let sql_params = sql_parameters(code);
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
        segments: segments(code),
        sql_params,
        status: spec.matcher.status.clone(),
        table: spec.matcher.table.clone(),
        inputs: spec.inputs.clone(),
        metrics: spec.metrics.clone(),
        missing_message: spec.missing_message.clone(),
        when_missing: when_missing(spec, path, text)?,
    })
}

/// Validates the `[[when_missing]]` rules of a family (its inputs and metrics already valid).
fn when_missing(spec: &FamilyFile, path: &str, text: &str) -> Result<Vec<WhenMissing>, CatalogueError> {
    let at = |span: std::ops::Range<usize>, message: String| {
        CatalogueError::new(path, text[..span.start.min(text.len())].matches('\n').count() + 1, message)
    };
    // column -> whether a point needs it (a value column of an `if_null = "zero"` metric, or a
    // label column: omitted, it would silently be 0.0 or "None")
    let mut values: BTreeMap<&str, bool> = BTreeMap::new();
    let mut labels: BTreeSet<&str> = BTreeSet::new();
    for m in &spec.metrics {
        *values.entry(m.value.as_str()).or_default() |= m.if_null == IfNull::Zero;
        for l in m.labels.values() {
            if let LabelSpec::Column { column } = l {
                labels.insert(column.as_str());
            }
        }
    }
    let mut out = Vec::new();
    for rule in &spec.when_missing {
        let (all, list) = match (&rule.get_ref().any_of, &rule.get_ref().all_of) {
            (Some(list), None) => (false, list),
            (None, Some(list)) => (true, list),
            _ => {
                return Err(at(
                    rule.span(),
                    "[[when_missing]] needs exactly one of any_of and all_of (the table inputs whose absence decides the result)".into(),
                ));
            }
        };
        if list.get_ref().is_empty() {
            return Err(at(list.span(), "[[when_missing]] names no table input".into()));
        }
        let mut seen = BTreeSet::new();
        for name in list.get_ref() {
            let Some(input) = spec.inputs.iter().find(|i| &i.name == name && i.kind == InputKind::Table) else {
                return Err(at(list.span(), format!("[[when_missing]]: '{name}' is not a table input of this family")));
            };
            if !seen.insert(name) {
                return Err(at(list.span(), format!("[[when_missing]]: '{name}' is named twice")));
            }
            if input.if_missing == IfMissing::Fail {
                return Err(at(
                    list.span(),
                    format!("[[when_missing]]: input '{name}' has if_missing = \"fail\": its absence is a 400 first"),
                ));
            }
        }
        let mut rows = Vec::new();
        for given in rule.get_ref().rows.get_ref() {
            let here = |m: String| at(rule.get_ref().rows.span(), format!("[[when_missing]] rows: {m}"));
            let mut row = crate::warehouse::Row::new();
            for (column, value) in given {
                let cell = if values.contains_key(column.as_str()) {
                    match value {
                        toml::Value::Float(f) => Cell::Float(*f),
                        toml::Value::Integer(i) => Cell::Int(*i),
                        other => {
                            return Err(here(format!(
                                "'{column}' is a metric value: a number (got a TOML {})",
                                other.type_str()
                            )));
                        }
                    }
                } else if labels.contains(column.as_str()) {
                    match value {
                        toml::Value::String(t) => Cell::Text(t.clone()),
                        other => {
                            return Err(here(format!(
                                "'{column}' is a label column: a string (got a TOML {})",
                                other.type_str()
                            )));
                        }
                    }
                } else {
                    return Err(here(format!("'{column}' is not a column any metric of this family reads")));
                };
                row.insert(column.clone(), cell);
            }
            for (column, needed) in &values {
                if !row.contains_key(*column) {
                    if *needed {
                        return Err(here(format!(
                            "'{column}' is missing: a NULL would be written as 0.0 (give the value, or use if_null = \"skip\")"
                        )));
                    }
                    row.insert(column.to_string(), Cell::Null);
                }
            }
            if let Some(column) = labels.iter().find(|c| !row.contains_key(**c)) {
                return Err(here(format!("label column '{column}' is missing")));
            }
            rows.push(row);
        }
        out.push(WhenMissing { inputs: list.get_ref().clone(), all, rows });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Files {
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
    fn fragment_errors_name_the_fragment_line_and_the_include_site() {
        let sql = "SELECT total\nFROM (\n  {{> sums}}\n)";
        let fragment =
            "-- the sums\nSELECT COALESCE(SUM(x), 0) AS total\n  FROM {{t}} WHERE p = @partner AND d = @nope";
        let r = load_files(&files(&[("f.toml", TOML), ("f.sql", sql), ("sums.fragment.sql", fragment)]));
        let e = r.err().expect("undeclared parameter");
        assert_eq!((e.file.as_str(), e.line), ("test/sums.fragment.sql", 3), "{e}");
        assert_eq!(e.included_from, vec![("test/f.sql".to_string(), 3)]);
        assert_eq!(
            e.to_string(),
            "test/sums.fragment.sql:3: undeclared SQL parameter @nope (included from test/f.sql:3)"
        );
        // a placeholder in a fragment is checked against the including family
        let r = load_files(&files(&[
            ("f.toml", TOML),
            ("f.sql", "SELECT 1 AS total FROM {{t}}\nWHERE p = @partner\n{{> more}}"),
            ("more.fragment.sql", "AND EXISTS (SELECT 1 FROM {{other}})"),
        ]));
        let e = r.err().expect("unknown placeholder");
        assert_eq!((e.file.as_str(), e.line, e.included_from.len()), ("test/more.fragment.sql", 1, 1), "{e}");
        assert!(e.message.contains("{{other}} is not a declared table input"), "{e}");
        // and a table input used only inside a fragment counts as used
        let ok = load_files(&files(&[
            ("f.toml", TOML),
            ("f.sql", "SELECT total FROM (\n  {{> sums}}\n)"),
            ("sums.fragment.sql", "SELECT SUM(x) AS total FROM {{t}} WHERE p = @partner"),
        ]));
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn unknown_fragment_names_the_family_sql_line() {
        let e = load_err(TOML, "SELECT 1 AS total\nFROM {{t}}\nWHERE {{> filters}} AND p = @partner");
        assert_eq!((e.file.as_str(), e.line), ("test/f.sql", 3), "{e}");
        assert!(e.message.contains("unknown fragment 'filters' (no filters.fragment.sql in the catalogue)"), "{e}");
    }

    #[test]
    fn a_family_query_cannot_be_a_fragment() {
        let toml = TOML.replace("sql = \"f.sql\"", "sql = \"f.fragment.sql\"");
        let r = load_files(&files(&[("f.toml", &toml), ("f.fragment.sql", SQL)]));
        let e = r.err().expect("fragment as query");
        assert_eq!((e.file.as_str(), e.line), ("test/f.toml", 1), "{e}");
        assert!(e.message.contains("not a fragment"), "{e}");
    }

    #[test]
    fn a_handlers_dir_fragment_replaces_the_builtin_one() {
        for f in [
            "unsent_claims.sql",
            "unsent_savings.sql",
            "sent_validation_savings.sql",
            "shared_id_fatura_completeness.sql",
        ] {
            let sql = super::super::tests_support::builtin_file(f);
            assert!(sql.contains("WITH {{> submission_window}},"), "{f}");
        }
        let dir = std::env::temp_dir().join(format!("fragment-override-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let window = super::super::tests_support::builtin_file("submission_window.fragment.sql");
        // a HANDLERS_DIR fragment replaces the built-in one for every family that includes it
        let broken = window.replace("@submission_run_id", "@submission_run");
        std::fs::write(dir.join("submission_window.fragment.sql"), &broken).unwrap();
        let e = load(Some(&dir)).err().expect("the overriding fragment is validated against its includers");
        let fragment_path = dir.join("submission_window.fragment.sql").display().to_string();
        assert_eq!(e.file, fragment_path, "{e}");
        assert_eq!(e.line, line_of(&broken, "@submission_run)"), "{e}");
        assert!(e.message.contains("undeclared SQL parameter @submission_run"), "{e}");
        let (includer, line) = &e.included_from[0];
        assert!(includer.starts_with("handlers/") && includer.ends_with(".sql"), "{e}");
        let including = super::super::tests_support::builtin_file(includer.trim_start_matches("handlers/"));
        assert_eq!(*line, line_of(&including, "{{> submission_window}}"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// TOML plus a `[[when_missing]]` block (it starts on line 18).
    fn with_rule(rule: &str) -> String {
        format!("{TOML}[[when_missing]]\n{rule}\n")
    }

    #[test]
    fn when_missing_loads_and_fills_omitted_skip_columns_with_null() {
        let toml = with_rule("any_of = [\"t\"]\nrows = [{ total = 1.0 }]").replace(
            "value = \"total\"",
            "value = \"total\"\n[[metrics]]\nname = \"a/c\"\nvalue = \"rel\"\nif_null = \"skip\"",
        );
        let hs = load_files(&files(&[("f.toml", &toml), ("f.sql", &SQL.replace("AS total", "AS total, 1 AS rel"))]));
        assert!(hs.is_ok(), "{:?}", hs.err());
        let toml = with_rule("all_of = [\"t\"]\nrows = []");
        assert!(load_files(&files(&[("f.toml", &toml), ("f.sql", SQL)])).is_ok());
    }

    #[test]
    fn when_missing_errors_name_the_line() {
        let cases = [
            ("rows = []", 18, "exactly one of any_of and all_of"),
            ("any_of = [\"t\"]\nall_of = [\"t\"]\nrows = []", 18, "exactly one of any_of and all_of"),
            ("any_of = []\nrows = []", 19, "names no table input"),
            ("any_of = [\"u\"]\nrows = []", 19, "'u' is not a table input"),
            ("all_of = [\"partner\"]\nrows = []", 19, "'partner' is not a table input"),
            ("any_of = [\"t\", \"t\"]\nrows = []", 19, "named twice"),
            ("any_of = [\"t\"]\nrows = [{ totl = 1.0 }]", 20, "'totl' is not a column any metric of this family reads"),
            (
                "any_of = [\"t\"]\nrows = [{ total = \"1\" }]",
                20,
                "'total' is a metric value: a number (got a TOML string)",
            ),
            ("any_of = [\"t\"]\n\nrows = [{}]", 21, "'total' is missing: a NULL would be written as 0.0"),
            ("any_of = [\"t\"]\nrows = []\nvalue = 1.0", 21, "unknown field"),
        ];
        for (rule, line, message) in cases {
            let e = load_err(&with_rule(rule), SQL);
            assert_eq!((e.file.as_str(), e.line), ("test/f.toml", line), "{rule}: {e}");
            assert!(e.message.contains(message), "{rule}: {e}");
        }
        // a table whose absence is a 400 cannot decide a value
        let toml = with_rule("any_of = [\"t\"]\nrows = []")
            .replace("type = \"table\"", "type = \"table\"\nif_missing = \"fail\"");
        let e = load_err(&toml, SQL);
        assert_eq!(e.line, 20, "{e}"); // the any_of line (the added if_missing line shifts it)
        assert!(e.message.contains("if_missing = \"fail\""), "{e}");
        // label columns must be given, as strings
        let labelled = TOML.replace("approved = \"$approved\"", "agent = { column = \"agent_id\" }");
        let sql = SQL.replace("AS total", "AS total, 'a' AS agent_id");
        for (rows, message) in [
            ("rows = [{ total = 1.0 }]", "label column 'agent_id' is missing"),
            ("rows = [{ total = 1.0, agent_id = 7 }]", "'agent_id' is a label column: a string (got a TOML integer)"),
        ] {
            let toml = format!("{labelled}[[when_missing]]\nany_of = [\"t\"]\n{rows}\n");
            let e = load_err(&toml, &sql);
            assert_eq!(e.line, 20, "{e}");
            assert!(e.message.contains(message), "{e}");
        }
    }

    #[test]
    fn handlers_dir_overrides_a_builtin_file_and_adds_new_ones() {
        let dir = std::env::temp_dir().join(format!("override-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let builtin = super::super::tests_support::builtin_file("post_filtered.toml");
        std::fs::write(dir.join("post_filtered.toml"), builtin.replace("pipesv2_selection", "custom_selection"))
            .unwrap();
        std::fs::write(dir.join("f.toml"), TOML).unwrap();
        std::fs::write(dir.join("f.sql"), SQL).unwrap();
        let hs = load(Some(&dir)).unwrap();
        let ev = |p: &str| {
            crate::decode::datastream::decode_ref(&serde_json::json!({"source_timestamp": "2024-01-15T10:30:00Z",
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
    fn metric_name_rules() {
        assert!(is_valid_metric_name("claims/pipeline/filtered_pre/vl_pago/total"));
        assert!(is_valid_metric_name("mageai/pipeline_run/count"));
        for bad in ["", "/a", "a/", "a//b", "a b", "a/é"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }

    #[test]
    fn line_numbers() {
        assert_eq!(line_of("a\nb\nc", "c"), 3);
    }
}
