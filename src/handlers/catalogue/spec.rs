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

/// `[match]`: which change records a family's handlers run for. Each of `table`, `status` and
/// `pipeline` is a name or glob, or a list of them (any entry may match).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MatchSpec {
    #[serde(default = "default_table")]
    pub(super) table: Spanned<Names>,
    pub(super) status: Spanned<Names>,
    /// The pipelines of every variant that names none of its own.
    #[serde(default)]
    pub(super) pipeline: Option<Spanned<Names>>,
    /// The row's column that names the pipeline (default `pipeline_uuid`, Mage's).
    #[serde(default = "default_pipeline_column")]
    pub(super) pipeline_column: Spanned<String>,
    /// The row's column that holds the run status (default `status`, Mage's).
    #[serde(default = "default_status_column")]
    pub(super) status_column: Spanned<String>,
}

pub(super) fn default_table() -> Spanned<Names> {
    Spanned::new(0..0, Names(vec!["pipeline_run".into()]))
}

fn default_pipeline_column() -> Spanned<String> {
    Spanned::new(0..0, "pipeline_uuid".into())
}

fn default_status_column() -> Spanned<String> {
    Spanned::new(0..0, "status".into())
}

/// A name or glob, or a list of them, as written (`"x"` is `["x"]`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Names(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Names(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum InputKind {
    /// A payload variable naming a table, written into the SQL as `{{name}}`.
    Table,
    /// A payload variable, the query parameter `@name` (STRING) and the label value `$name`.
    String,
    /// A column of the run row, the query parameter `@name` (typed by `parameter_type`) and the
    /// label value `$name`.
    Column,
}

/// The BigQuery type of a column input's query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub(super) enum ParameterType {
    /// The value as text (strings as they are, numbers and booleans as JSON writes them).
    #[default]
    String,
    /// An integer, or a text of one.
    Int64,
    /// A number, or a text of one.
    Float64,
    /// `true`/`false`.
    Bool,
    /// An ISO-8601 text (without offset: UTC) or epoch seconds, milliseconds or microseconds.
    Timestamp,
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
    /// Column inputs: the handler emits no point for the record (and sends no query).
    Skip,
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
    /// Column inputs: the row's column (dots for a path into a JSON column); default = name.
    #[serde(default)]
    pub(super) column: Option<String>,
    /// Column inputs: the type of the query parameter (default STRING).
    #[serde(default)]
    pub(super) parameter_type: Option<ParameterType>,
    /// 400 message when the variable (or column) is missing (overrides the family's
    /// `missing_message`).
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
    /// The pipelines it runs for (names or globs); default: `[match] pipeline`.
    #[serde(default)]
    pub(super) pipeline: Option<Spanned<Names>>,
    /// The same as `pipeline` (the name the first catalogue used).
    #[serde(default)]
    pub(super) pipeline_uuid: Option<Spanned<Names>>,
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
