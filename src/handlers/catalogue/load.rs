//! Loading the catalogue: the built-in files overlaid with `HANDLERS_DIR`, each family file
//! parsed and validated, and its variants turned into handlers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::include::{FRAGMENT_SUFFIX, Files};
use super::matching::At;
use super::spec::{FamilyFile, InputKind, LabelSpec};
use super::validate::{is_ident, validate};
use super::{CatalogueError, QueryHandler, builtin_files, is_catalogue_file, line_of};
use crate::handlers::Handler;

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
pub(super) fn load_files(files: &Files) -> Result<Vec<Arc<dyn Handler>>, CatalogueError> {
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
            let name_line = line_of(text, &format!("\"{}\"", v.name));
            let pipelines = family.rule.variant_pipelines(v, &At { path, text }, name_line)?;
            for k in v.variables.keys() {
                match spec.inputs.iter().find(|i| &i.name == k) {
                    None => return Err(here(format!("handler '{}' maps variable for unknown input '{k}'", v.name))),
                    Some(i) if i.kind == InputKind::Column => {
                        return Err(here(format!(
                            "handler '{}' maps a variable for column input '{k}' (it reads the run row)",
                            v.name
                        )));
                    }
                    Some(_) => {}
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
                    let own = if i.kind == InputKind::Column { &i.column } else { &i.variable };
                    v.variables.get(&i.name).or(own.as_ref()).cloned().unwrap_or_else(|| i.name.clone())
                })
                .collect();
            handlers.push(Arc::new(QueryHandler {
                family: family.clone(),
                name: v.name.as_str().into(),
                pipelines,
                paths,
                constants: Arc::new(v.constants.clone()),
                metrics: selected.into(),
            }));
        }
    }
    Ok(handlers)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{SQL, TOML, files};
    use super::*;

    #[test]
    fn a_variant_cannot_map_a_variable_onto_a_column_input() {
        let toml = TOML
            .replace("[[metrics]]", "[[inputs]]\nname = \"c\"\ntype = \"column\"\n[[metrics]]")
            .replace("constants = ", "variables = { c = \"x\" }\nconstants = ");
        let e = match load_files(&files(&[("f.toml", &toml), ("f.sql", SQL)])) {
            Err(e) => e,
            Ok(_) => panic!("a variable for a column input"),
        };
        assert_eq!(e.line, 18, "{e}");
        assert!(e.message.contains("handler 'H1' maps a variable for column input 'c'"), "{e}");
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
    fn duplicate_handler_names_across_files() {
        let sql2 = SQL;
        let r = load_files(&files(&[("f.toml", TOML), ("f.sql", SQL), ("g.toml", TOML), ("g.sql", sql2)]));
        let e = r.err().expect("duplicate");
        assert_eq!(e.file, "test/g.toml");
        assert_eq!(e.line, 15);
        assert!(e.message.contains("duplicate handler name 'H1'"), "{e}");
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
}
