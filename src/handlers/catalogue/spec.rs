//! The catalogue file format: a family TOML file, deserialised as written (validation is in
//! `load`).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FamilyFile {
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) description: String,
    pub(super) sql: String,
    #[serde(rename = "match")]
    pub(super) matcher: MatchSpec,
    /// Template of the 400 message for a missing variable; `{variable}` is its last path segment.
    #[serde(default = "default_missing_message")]
    pub(super) missing_message: String,
    #[serde(default)]
    pub(super) inputs: Vec<InputSpec>,
    pub(super) metrics: Vec<MetricSpec>,
    /// Results decided without a query when tables are missing, first that applies wins.
    #[serde(default)]
    pub(super) when_missing: Vec<Spanned<WhenMissingSpec>>,
    #[serde(rename = "handler")]
    pub(super) handlers: Vec<VariantSpec>,
}

pub(super) fn default_missing_message() -> String {
    "No variable '{variable}' found in payload.".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MatchSpec {
    #[serde(default = "default_table")]
    pub(super) table: String,
    pub(super) status: String,
}

pub(super) fn default_table() -> String {
    "pipeline_run".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum InputKind {
    Table,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(super) enum IfMissing {
    /// The query fails (BigQuery's "not found"): a permanent error.
    #[default]
    Error,
    /// The table is read as an empty relation with the declared `columns`.
    Empty,
    /// The event is rejected (400) with `missing_table_message`.
    Fail,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InputSpec {
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) kind: InputKind,
    /// Payload variable path (dots for nested objects); variants may override; default = name.
    #[serde(default)]
    pub(super) variable: Option<String>,
    /// 400 message when the variable is missing (overrides the family's `missing_message`).
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) if_missing: IfMissing,
    /// Columns (name -> BigQuery type) of the empty relation used for `if_missing = "empty"`.
    #[serde(default)]
    pub(super) columns: BTreeMap<String, String>,
    /// 400 message for `if_missing = "fail"`; `{input}` placeholders give raw variable values.
    #[serde(default)]
    pub(super) missing_table_message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(super) enum IfNull {
    /// A NULL value is written as 0.0 (the reference's `NULL -> 0.0`).
    #[default]
    Zero,
    /// A NULL value means "no point".
    Skip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum LabelSpec {
    /// A literal, or `$name` for an input value or a variant constant.
    Text(String),
    /// A result column.
    Column { column: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricSpec {
    pub(super) name: String,
    pub(super) value: String,
    #[serde(default)]
    pub(super) if_null: IfNull,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, LabelSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VariantSpec {
    pub(super) name: String,
    pub(super) pipeline_uuid: String,
    #[serde(default)]
    pub(super) variables: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) constants: BTreeMap<String, String>,
    /// Names of the family's metrics this variant emits (default: all of them).
    #[serde(default)]
    pub(super) metrics: Option<Vec<String>>,
}

/// `[[when_missing]]`: when table inputs do not exist, the result is decided without data: the
/// query does not run, and `rows` stand for its result (so `[]` means "no points").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WhenMissingSpec {
    /// Applies when any of these table inputs does not exist.
    #[serde(default)]
    pub(super) any_of: Option<Spanned<Vec<String>>>,
    /// Applies when none of these table inputs exists.
    #[serde(default)]
    pub(super) all_of: Option<Spanned<Vec<String>>>,
    /// The result instead of the query's: per row, column -> value (a number for a metric's
    /// value column, a string for a label column).
    pub(super) rows: Spanned<Vec<BTreeMap<String, toml::Value>>>,
}
