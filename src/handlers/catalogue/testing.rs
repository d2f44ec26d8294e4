//! Test fixtures of the catalogue's unit tests: a small valid family and its SQL.

use super::CatalogueError;
use super::include::Files;
use super::load::load_files;

pub(super) fn files(list: &[(&str, &str)]) -> Files {
    list.iter().map(|(n, t)| (n.to_string(), (format!("test/{n}"), t.to_string()))).collect()
}

pub(super) const SQL: &str = "SELECT COALESCE(SUM(x), 0) AS total -- @ignored in comments\nFROM {{t}} WHERE p = @partner AND ts <= @source_timestamp";
pub(super) const TOML: &str = r#"sql = "f.sql"
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

pub(super) fn load_err(toml: &str, sql: &str) -> CatalogueError {
    match load_files(&files(&[("f.toml", toml), ("f.sql", sql)])) {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    }
}
