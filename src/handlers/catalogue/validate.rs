//! Validating one family file: its inputs, its SQL (placeholders and parameters) and its
//! metrics; every error names the file and line.

use std::collections::BTreeSet;

use super::include::{Files, expand};
use super::matching::{At, MatchRule};
use super::spec::{FamilyFile, IfMissing, InputKind, InputSpec, LabelSpec};
use super::sql::{segments, sql_parameters, sql_placeholders};
use super::when_missing::when_missing;
use super::{BUILTIN_PARAMS, CatalogueError, Family, line_of};

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

/// One input on its own: its name, and the keys that its kind takes (`err` places an error at
/// the line of a text).
fn input(i: &InputSpec, err: &impl Fn(&str, String) -> CatalogueError) -> Result<(), CatalogueError> {
    let at = format!("\"{}\"", i.name);
    let here = |m: String| err(&at, format!("input '{}': {m}", i.name));
    if !is_ident(&i.name) {
        return Err(err(&at, format!("input name '{}' must be an identifier", i.name)));
    }
    if BUILTIN_PARAMS.contains(&i.name.as_str()) {
        return Err(err(&at, format!("input name '{}' is reserved for a built-in parameter", i.name)));
    }
    let table_only = !i.columns.is_empty() || i.missing_table_message.is_some();
    if i.kind != InputKind::Table && table_only {
        return Err(here("`columns` and `missing_table_message` apply to table inputs only".into()));
    }
    if i.kind != InputKind::Column && (i.column.is_some() || i.parameter_type.is_some()) {
        return Err(here("`column` and `parameter_type` apply to column inputs (type = \"column\") only".into()));
    }
    match (i.kind, i.if_missing) {
        (InputKind::String, IfMissing::Error) | (InputKind::Table, IfMissing::Error | IfMissing::Fail) => {}
        (InputKind::String, _) => return Err(here("if_missing applies to table and column inputs only".into())),
        (InputKind::Table, IfMissing::Skip) => {
            return Err(here("if_missing = \"skip\" applies to column inputs only".into()));
        }
        (InputKind::Table, IfMissing::Empty) => {
            if i.columns.is_empty() {
                return Err(here("if_missing = \"empty\" needs `columns`".into()));
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
        (InputKind::Column, IfMissing::Error | IfMissing::Skip) => {}
        (InputKind::Column, _) => {
            return Err(here("a column input's if_missing is \"error\" (a 400, the default) or \"skip\"".into()));
        }
    }
    if i.kind == InputKind::Column {
        if i.variable.is_some() {
            return Err(here("a column input reads the run row, not a variable: name it with `column`".into()));
        }
        let column = i.column.as_deref().unwrap_or(&i.name);
        if column.split('.').any(|seg| seg.trim().is_empty()) {
            return Err(here(format!("column = '{column}' is not a column name (dots for a path into a JSON column)")));
        }
    }
    Ok(())
}

/// A family file validated against the catalogue's SQL files.
pub(super) fn validate(spec: &FamilyFile, path: &str, text: &str, files: &Files) -> Result<Family, CatalogueError> {
    let err = |needle: &str, message: String| CatalogueError::new(path, line_of(text, needle), message);
    let sql_path = &files[&spec.sql].0;
    let expanded = expand(&spec.sql, files)?;
    let sql_err = |needle: &str, message: String| expanded.error(needle, message);
    let code = &expanded.code;
    let mut seen = BTreeSet::new();
    for i in &spec.inputs {
        let at = format!("\"{}\"", i.name);
        if !seen.insert(i.name.clone()) {
            return Err(err(&at, format!("duplicate input '{}'", i.name)));
        }
        input(i, &err)?;
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
            || spec.inputs.iter().any(|i| &i.name == p && i.kind != InputKind::Table)
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
        rule: MatchRule::compile(&spec.matcher, &At { path, text })?,
        inputs: spec.inputs.clone(),
        metrics: spec.metrics.clone(),
        missing_message: spec.missing_message.clone(),
        when_missing: when_missing(spec, path, text)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::load::load_files;
    use super::super::testing::{SQL, TOML, files, load_err};
    use super::*;

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
    fn each_input_kind_takes_its_own_keys() {
        // TOML + a column input `c` (lines 18-20) that the SQL uses as @c
        let with = |extra: &str| {
            let toml = TOML
                .replace("[[metrics]]", &format!("[[inputs]]\nname = \"c\"\ntype = \"column\"\n{extra}\n[[metrics]]"));
            load_err(&toml, &SQL.replace("@partner", "@partner AND q = @c"))
        };
        let cases = [
            ("variable = \"c\"", "a column input reads the run row, not a variable: name it with `column`"),
            ("if_missing = \"empty\"", "a column input's if_missing is \"error\" (a 400, the default) or \"skip\""),
            ("columns = { a = \"STRING\" }", "`columns` and `missing_table_message` apply to table inputs only"),
            ("column = \"variables..x\"", "column = 'variables..x' is not a column name"),
            ("parameter_type = \"DATE\"", "unknown variant `DATE`"),
        ];
        for (extra, message) in cases {
            let e = with(extra);
            assert!(e.message.contains(message), "{extra}: {e}");
            assert_eq!(e.file, "test/f.toml", "{extra}: {e}");
        }
        // the other kinds refuse the column keys, and tables refuse `skip`
        let e = load_err(&TOML.replace("type = \"string\"", "type = \"string\"\ncolumn = \"x\""), SQL);
        assert!(e.message.contains("input 'partner': `column` and `parameter_type` apply to column inputs"), "{e}");
        assert_eq!(e.line, 8, "{e}");
        let e = load_err(&TOML.replace("type = \"table\"", "type = \"table\"\nif_missing = \"skip\""), SQL);
        assert!(e.message.contains("input 't': if_missing = \"skip\" applies to column inputs only"), "{e}");
        // a column input is a declared SQL parameter (and label variable)
        let toml = TOML.replace("[[metrics]]", "[[inputs]]\nname = \"c\"\ntype = \"column\"\n[[metrics]]");
        let ok = load_files(&files(&[("f.toml", &toml), ("f.sql", &SQL.replace("@partner", "@partner AND q = @c"))]));
        assert!(ok.is_ok(), "{:?}", ok.err());
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
    fn metric_name_rules() {
        assert!(is_valid_metric_name("claims/pipeline/filtered_pre/vl_pago/total"));
        assert!(is_valid_metric_name("mageai/pipeline_run/count"));
        for bad in ["", "/a", "a/", "a//b", "a b", "a/é"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }
}
