//! `[[when_missing]]` rules: results decided without data when table inputs do not exist.

use std::collections::{BTreeMap, BTreeSet};

use super::spec::{FamilyFile, IfMissing, IfNull, InputKind, LabelSpec};
use super::{CatalogueError, WhenMissing};
use crate::warehouse::Cell;

/// Validates the `[[when_missing]]` rules of a family (its inputs and metrics already valid).
pub(super) fn when_missing(spec: &FamilyFile, path: &str, text: &str) -> Result<Vec<WhenMissing>, CatalogueError> {
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
    use super::super::load::load_files;
    use super::super::testing::{SQL, TOML, files, load_err};

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
}
