//! Match rules: which change records a family's handlers run for (`[match]` and each variant's
//! `pipeline`), compiled when the catalogue loads.
//!
//! A record matches a variant when it is an insert or update (not a delete), its table matches
//! one of `table`, the row's `status_column` (default `status`) matches one of `status`, and the
//! row's `pipeline_column` (default `pipeline_uuid`) matches one of the variant's pipelines.
//! Each entry is a name or a glob ([`crate::handlers::pattern`]). A record without table
//! information is taken as the family's table (as the reference service did); a row without the
//! status or pipeline column matches no handler.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::Value;

use super::CatalogueError;
use super::spec::{MatchSpec, Names, VariantSpec};
use crate::decode::{ChangeEvent, ChangeKind};
use crate::handlers::lifecycle::derive::{lookup_path, text};
use crate::handlers::pattern::Patterns;

/// A family's `[match]`, compiled.
#[derive(Debug)]
pub(super) struct MatchRule {
    pub(super) tables: Patterns,
    pub(super) statuses: Patterns,
    /// The column (or dotted path into a JSON column) naming the pipeline.
    pub(super) pipeline_column: String,
    /// The column (or dotted path) holding the run status.
    pub(super) status_column: String,
    /// `[match] pipeline`: the pipelines of variants that name none.
    pub(super) pipelines: Option<Patterns>,
}

/// Where a catalogue file's errors point: its display path and text.
pub(super) struct At<'a> {
    pub(super) path: &'a str,
    pub(super) text: &'a str,
}

impl At<'_> {
    /// An error at the line where `span` starts.
    pub(super) fn error(&self, span: Range<usize>, message: String) -> CatalogueError {
        let start = span.start.min(self.text.len());
        CatalogueError::new(self.path, self.text[..start].matches('\n').count() + 1, message)
    }
}

/// Compiles a list of names and globs of `field`; an empty list or an invalid glob is an error
/// at its line naming the field.
fn patterns(names: &toml::Spanned<Names>, field: &str, at: &At) -> Result<Patterns, CatalogueError> {
    let list = &names.get_ref().0;
    if list.is_empty() {
        return Err(at.error(names.span(), format!("{field}: an empty list matches nothing")));
    }
    if let Some(blank) = list.iter().find(|n| n.trim().is_empty()) {
        return Err(at.error(names.span(), format!("{field}: '{blank}' is not a name or a pattern")));
    }
    Patterns::new(list).map_err(|e| at.error(names.span(), format!("{field}: {e}")))
}

/// A column name, or a dotted path into a JSON column: segments that are not empty.
fn is_column_path(s: &str) -> bool {
    s.split('.').all(|seg| !seg.trim().is_empty())
}

impl MatchRule {
    /// Compiles `[match]`.
    pub(super) fn compile(spec: &MatchSpec, at: &At) -> Result<MatchRule, CatalogueError> {
        for (field, column) in [("pipeline_column", &spec.pipeline_column), ("status_column", &spec.status_column)] {
            if !is_column_path(column.get_ref()) {
                return Err(
                    at.error(column.span(), format!("[match] {field} = '{}' is not a column name", column.get_ref()))
                );
            }
        }
        Ok(MatchRule {
            tables: patterns(&spec.table, "[match] table", at)?,
            statuses: patterns(&spec.status, "[match] status", at)?,
            pipeline_column: spec.pipeline_column.get_ref().clone(),
            status_column: spec.status_column.get_ref().clone(),
            pipelines: spec.pipeline.as_ref().map(|p| patterns(p, "[match] pipeline", at)).transpose()?,
        })
    }

    /// The pipelines of a variant: its own `pipeline` (or `pipeline_uuid`), else `[match]
    /// pipeline`; `name_line` is where the variant is named (the error when it has none).
    pub(super) fn variant_pipelines(
        &self,
        v: &VariantSpec,
        at: &At,
        name_line: usize,
    ) -> Result<Patterns, CatalogueError> {
        match (&v.pipeline, &v.pipeline_uuid) {
            (Some(p), Some(_)) => Err(at.error(
                p.span(),
                format!("handler '{}': give `pipeline` or `pipeline_uuid`, not both (they are the same key)", v.name),
            )),
            (Some(p), None) => patterns(p, &format!("handler '{}': pipeline", v.name), at),
            (None, Some(p)) => patterns(p, &format!("handler '{}': pipeline_uuid", v.name), at),
            (None, None) => self.pipelines.clone().ok_or_else(|| {
                CatalogueError::new(
                    at.path,
                    name_line,
                    format!(
                        "handler '{}' names no pipeline: set `pipeline` in [match] (for every handler) or in the [[handler]]",
                        v.name
                    ),
                )
            }),
        }
    }

    /// The table entries (names or globs).
    pub(super) fn table_entries(&self) -> &[String] {
        self.tables.entries()
    }

    /// Whether the record is one a variant with `pipelines` runs for (see the module
    /// documentation).
    pub(super) fn matches(&self, event: &ChangeEvent, pipelines: &Patterns) -> bool {
        if event.change_kind() != ChangeKind::Upsert {
            return false;
        }
        if let Some(table) = event.table()
            && !self.tables.matches_table(table)
        {
            return false;
        }
        let Some(payload) = &event.payload else { return false };
        let column = |name: &str| -> Option<Cow<'_, str>> {
            match name {
                "pipeline_uuid" => payload.pipeline_uuid.as_deref().map(Cow::Borrowed),
                "status" => payload.status.as_deref().map(Cow::Borrowed),
                path => match lookup_path(&payload.row, path)? {
                    Cow::Borrowed(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
                    v => text(&v).map(Cow::Owned),
                },
            }
        };
        column(&self.status_column).is_some_and(|s| self.statuses.matches(&s))
            && column(&self.pipeline_column).is_some_and(|p| pipelines.matches(&p))
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::load_files;
    use super::super::testing::{SQL, TOML, files, load_err};
    use serde_json::json;

    use crate::decode::ChangeEvent;
    use crate::handlers::Handler;

    fn event(table: Option<&str>, change: &str, payload: serde_json::Value) -> ChangeEvent {
        let mut record = json!({"source_timestamp": "2025-11-05T18:23:31Z", "payload": payload,
            "source_metadata": {"change_type": change}});
        if let Some(t) = table {
            record["source_metadata"]["table"] = json!(t);
        }
        crate::decode::datastream::decode_ref(&record).unwrap()
    }

    fn run(pipeline: &str, status: &str) -> ChangeEvent {
        event(Some("pipeline_run"), "UPDATE", json!({"pipeline_uuid": pipeline, "status": status}))
    }

    /// The handler H1 of TOML with its `[match]` and `pipeline_uuid` lines replaced.
    fn h1(matcher: &str, variant_pipeline: &str) -> std::sync::Arc<dyn Handler> {
        let toml = TOML
            .replace("[match]\nstatus = \"COMPLETED\"\n", &format!("[match]\n{matcher}\n"))
            .replace("pipeline_uuid = \"p1\"\n", &format!("{variant_pipeline}\n"));
        let mut hs = load_files(&files(&[("f.toml", &toml), ("f.sql", SQL)])).unwrap_or_else(|e| panic!("{e}"));
        hs.pop().unwrap()
    }

    #[test]
    fn pipeline_and_status_lists_and_globs() {
        let h = h1("pipeline = [\"load_*\", \"daily_export\"]\nstatus = [\"COMPLETED\", \"FAILED\"]", "");
        for (pipeline, status) in [
            ("load_orders", "COMPLETED"),
            ("load_", "FAILED"),
            ("daily_export", "COMPLETED"),
            ("daily_export", "FAILED"),
        ] {
            assert!(h.matches(&run(pipeline, status)), "{pipeline} {status}");
        }
        for (pipeline, status) in [
            ("load_orders", "RUNNING"),
            ("load_orders", "completed"),
            ("reload_orders", "COMPLETED"),
            ("daily_export_v2", "COMPLETED"),
            ("LOAD_orders", "COMPLETED"),
        ] {
            assert!(!h.matches(&run(pipeline, status)), "{pipeline} {status}");
        }
        let no_pipeline = event(Some("pipeline_run"), "UPDATE", json!({"status": "COMPLETED"}));
        assert!(!h.matches(&no_pipeline), "a row without the pipeline column");
        let deleted = event(Some("pipeline_run"), "DELETE", json!({"pipeline_uuid": "load_x", "status": "COMPLETED"}));
        assert!(!h.matches(&deleted), "a delete");
        // a status glob
        let h = h1("pipeline = \"*\"\nstatus = \"CANCEL*\"", "");
        assert!(h.matches(&run("anything", "CANCELLED")));
        assert!(!h.matches(&run("anything", "COMPLETED")));
    }

    #[test]
    fn a_variant_pipeline_replaces_the_family_one() {
        let h = h1("pipeline = \"load_*\"\nstatus = \"COMPLETED\"", "pipeline = [\"export_*\"]");
        assert!(h.matches(&run("export_daily", "COMPLETED")));
        assert!(!h.matches(&run("load_orders", "COMPLETED")));
        // the first catalogue's key takes lists and globs too
        let h = h1("status = \"COMPLETED\"", "pipeline_uuid = [\"a\", \"b?\"]");
        assert!(h.matches(&run("a", "COMPLETED")) && h.matches(&run("b2", "COMPLETED")));
        assert!(!h.matches(&run("b", "COMPLETED")));
    }

    #[test]
    fn tables_and_columns_of_other_orchestrators() {
        let h = h1(
            "table = [\"dag_run\", \"flow_*\"]\npipeline_column = \"dag_id\"\nstatus_column = \"state\"\nstatus = \"success\"\npipeline = \"*\"",
            "",
        );
        let dag_run = |table: &str, state: &str| {
            event(Some(table), "UPDATE", json!({"dag_id": "etl", "state": state, "status": "COMPLETED"}))
        };
        assert!(h.matches(&dag_run("dag_run", "success")));
        assert!(h.matches(&dag_run("public_dag_run", "success")), "schema prefix");
        assert!(h.matches(&dag_run("flow_run", "success")), "table glob");
        assert!(!h.matches(&dag_run("dag_run", "failed")), "status from status_column");
        assert!(!h.matches(&dag_run("task_instance", "success")), "another table");
        assert!(!h.matches(&run("etl", "COMPLETED")), "no dag_id column");
        let no_table = event(None, "UPDATE", json!({"dag_id": "etl", "state": "success"}));
        assert!(h.matches(&no_table), "a record without table information");
        // a column holding a number is compared as its text
        let h = h1("pipeline_column = \"variables.team\"\nstatus = \"COMPLETED\"\npipeline = \"7\"", "");
        let numbered =
            |team| event(Some("pipeline_run"), "UPDATE", json!({"status": "COMPLETED", "variables": {"team": team}}));
        assert!(h.matches(&numbered(json!(7))));
        assert!(!h.matches(&numbered(json!(8))));
    }

    #[test]
    fn invalid_match_rules_name_the_file_line_and_field() {
        let with = |matcher: &str, variant: &str| {
            TOML.replace("[match]\nstatus = \"COMPLETED\"\n", &format!("[match]\n{matcher}\n"))
                .replace("pipeline_uuid = \"p1\"\n", &format!("{variant}\n"))
        };
        let cases = [
            (
                with("status = \"COMPLETED\"\npipeline = [\"ok\", \"load_[\"]", ""),
                4,
                "[match] pipeline: invalid pattern 'load_[': unclosed character class",
            ),
            (
                with("status = [\"COMPLETED\", \"{A,B\"]", "pipeline = \"p1\""),
                3,
                "[match] status: invalid pattern '{A,B': unclosed alternate group",
            ),
            (
                with("table = \"run[\"\nstatus = \"COMPLETED\"", "pipeline = \"p1\""),
                3,
                "[match] table: invalid pattern 'run['",
            ),
            (with("status = \"COMPLETED\"", "pipeline = \"p[\""), 16, "handler 'H1': pipeline: invalid pattern 'p['"),
            (with("status = []", "pipeline = \"p1\""), 3, "[match] status: an empty list matches nothing"),
            (with("status = \"COMPLETED\"", ""), 15, "handler 'H1' names no pipeline"),
            (with("status = \"COMPLETED\"", "pipeline = \"a\"\npipeline_uuid = \"a\""), 16, "not both"),
            (
                with("status = \"COMPLETED\"\npipeline_column = \"a..b\"", "pipeline = \"p1\""),
                4,
                "[match] pipeline_column = 'a..b' is not a column name",
            ),
            (with("status = 7", "pipeline = \"p1\""), 3, "a string or a list of strings"),
        ];
        for (toml, line, message) in cases {
            let e = load_err(&toml, SQL);
            assert_eq!((e.file.as_str(), e.line), ("test/f.toml", line), "{toml}\n{e}");
            assert!(e.message.contains(message), "{toml}\n{e}");
        }
    }
}
