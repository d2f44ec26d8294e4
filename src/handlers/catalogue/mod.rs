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

mod load;
mod prepare;
mod run;
mod spec;
mod sql;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use load::{CatalogueError, is_valid_metric_name, load};
pub use run::QueryPlan;
use spec::{InputSpec, MetricSpec};
use sql::Segment;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_handlers.rs"));
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

#[cfg(test)]
pub(crate) mod tests_support {
    /// Contents of a built-in catalogue file.
    pub fn builtin_file(name: &str) -> String {
        super::builtin::BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_string()).expect("builtin file")
    }
}
