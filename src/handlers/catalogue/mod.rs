//! The handler catalogue: query handlers declared as data.
//!
//! A family file `handlers/<family>.toml` names a SQL file and declares:
//! * `[match]`: the source tables, run statuses and pipelines it fires on, each a name or glob
//!   or a list of them, and which row columns name the pipeline and the status (`matching`);
//! * `[[inputs]]`, in check order: what it reads, each a payload variable that is a `table`
//!   (resolved and validated, then written into the SQL as `{{name}}`) or a `string` (a named
//!   query parameter `@name`, also usable as a label `$name`), or a `column` of the run row (a
//!   typed parameter `@name` and a label `$name`; `columns`);
//! * `[[metrics]]`: which result column becomes which metric, with which labels;
//! * `[[handler]]`: the variants (name, `pipeline` unless `[match]` gives it, which variable
//!   feeds which input, and constants such as `approved`).
//!
//! Built-in parameters every SQL file may use: `@source_timestamp` (TIMESTAMP, the record's
//! source time) and `@source_date` (DATE, its calendar date in its own offset). A table input
//! with `if_missing = "empty"` is replaced by an empty relation when the table does not exist,
//! and `@<name>_exists` (BOOL) tells the SQL which case it is in. A `[[when_missing]]` rule
//! decides the result without data instead: when its tables do not exist (`any_of` / `all_of`),
//! no query runs and its `rows` stand for the query's result.
//!
//! A SQL file may include a fragment with `{{> name}}` (the file `name.fragment.sql`; see
//! `include`), so that SQL several families share is written once.
//!
//! The whole catalogue is validated when the process starts; an error names the file and line
//! (for a line of a fragment, also the include sites).

mod columns;
mod error;
mod include;
mod load;
mod matching;
mod prepare;
mod run;
mod spec;
mod sql;
#[cfg(test)]
mod testing;
mod validate;
mod when_missing;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use error::CatalogueError;
use error::line_of;
pub use load::load;
pub use run::QueryPlan;
use spec::{InputSpec, MetricSpec};
use sql::Segment;
pub use validate::is_valid_metric_name;

/// The built-in catalogue: every file of `handlers/`, embedded at compile time.
///
/// Cargo rebuilds the crate when an embedded file changes, but not when a file is added to
/// `handlers/` (include_dir cannot tell it to watch a directory on stable Rust): after adding
/// one, touch this file or run `cargo clean -p pipeline-run-metrics`. The test
/// `the_embedded_catalogue_matches_handlers_dir` fails while the embedded copy is stale.
static BUILTIN: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/handlers");

/// (file name, contents) of the built-in catalogue files (`.toml` and `.sql`), by name.
fn builtin_files() -> Result<Vec<(String, String)>, CatalogueError> {
    let mut out = Vec::new();
    for f in BUILTIN.files() {
        let name = f.path().to_string_lossy().to_string();
        if !is_catalogue_file(&name) {
            continue;
        }
        let text =
            f.contents_utf8().ok_or_else(|| CatalogueError::new(format!("handlers/{name}"), 0, "not UTF-8 text"))?;
        out.push((name, text.to_string()));
    }
    out.sort();
    Ok(out)
}

/// Whether a file name belongs to the catalogue (`.toml` family files and `.sql` files).
fn is_catalogue_file(name: &str) -> bool {
    name.ends_with(".toml") || name.ends_with(".sql")
}

const BUILTIN_PARAMS: [&str; 2] = ["source_timestamp", "source_date"];

#[derive(Debug)]
struct Family {
    file: String,
    /// The SQL file's name: families that use the same file send the same query.
    sql_file: String,
    segments: Vec<Segment>,
    /// Named parameters the SQL uses.
    sql_params: BTreeSet<String>,
    /// `[match]`: tables, statuses, and the columns naming pipeline and status.
    rule: matching::MatchRule,
    inputs: Vec<InputSpec>,
    metrics: Vec<MetricSpec>,
    missing_message: String,
    /// `[[when_missing]]` rules, in file order.
    when_missing: Vec<WhenMissing>,
}

impl Family {
    /// Whether a table input's existence is checked before the query: it has a missing-table
    /// rule of its own, or a `[[when_missing]]` rule looks at it.
    fn checks(&self, input: &InputSpec) -> bool {
        input.if_missing != spec::IfMissing::Error || self.when_missing.iter().any(|w| w.inputs.contains(&input.name))
    }
}

/// A result decided without data (`[[when_missing]]`): when its tables are missing, no query
/// runs and `rows` stand for the query's result.
#[derive(Debug)]
struct WhenMissing {
    /// The table inputs it looks at.
    inputs: Vec<String>,
    /// `true` (`all_of`): applies when none of them exists; `false` (`any_of`): when any is
    /// missing.
    all: bool,
    /// Every value column of the family's metrics is present (NULL where the file omits it).
    rows: Vec<crate::warehouse::Row>,
}

impl WhenMissing {
    /// Whether it applies, given input name -> whether the table exists.
    fn applies(&self, present: &BTreeMap<&str, bool>) -> bool {
        let missing = |i: &String| present.get(i.as_str()) == Some(&false);
        if self.all { self.inputs.iter().all(missing) } else { self.inputs.iter().any(missing) }
    }
}

/// One query handler of the catalogue (a family variant).
pub struct QueryHandler {
    family: Arc<Family>,
    /// Shared with its plans (an `Arc` clone per event, not a copy).
    name: Arc<str>,
    /// The pipelines it runs for (its own, or the family's `[match] pipeline`).
    pipelines: crate::handlers::pattern::Patterns,
    /// The variable path of each of the family's inputs, in input order (for a column input:
    /// the column); shared with the plans, which read it only for error messages.
    paths: Arc<[String]>,
    /// Shared with every plan (an `Arc` clone per event, instead of a copy of the map).
    constants: Arc<BTreeMap<String, String>>,
    /// Indices into the family's metrics that this variant emits.
    metrics: Arc<[usize]>,
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// Contents of a built-in catalogue file.
    pub fn builtin_file(name: &str) -> String {
        super::BUILTIN.get_file(name).and_then(|f| f.contents_utf8()).expect("builtin file").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cargo does not rebuild when a file is added to `handlers/` (see [`BUILTIN`]): this fails
    /// until the embedded copy is rebuilt, instead of a new handler silently missing.
    #[test]
    fn the_embedded_catalogue_matches_handlers_dir() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers");
        let mut on_disk = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_file() && is_catalogue_file(&name) {
                on_disk.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
        on_disk.sort();
        let embedded = builtin_files().unwrap();
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&embedded),
            names(&on_disk),
            "the embedded catalogue is stale: touch src/handlers/catalogue/mod.rs (Cargo does not watch handlers/ for new files)"
        );
        assert!(embedded == on_disk, "embedded contents differ from handlers/");
        assert!(embedded.iter().any(|(n, _)| n == "claims_paid.sql"), "{:?}", names(&embedded));
    }
}
