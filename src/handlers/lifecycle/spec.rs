//! The profile file format: one TOML file per orchestrator (and major version where schemas
//! differ), deserialised as written; `load` validates it.
//!
//! ```toml
//! orchestrator = "mage"
//! description = "Mage.ai pipeline runs and block runs"
//!
//! [tables.pipeline_run]
//! level = "run"                      # run | task
//! key = ["id"]                       # primary key columns
//! pipeline = "pipeline_uuid"         # a column, a path into a JSON column, or a lookup
//! status = "status"
//! terminal = { COMPLETED = "success", FAILED = "failure", CANCELLED = "cancellation" }
//! running = ["RUNNING"]
//! order = "log"                      # episodes in log order (docs/metrics.md) | "attempt"
//! times = { created = "created_at", expected = "execution_date", started = "started_at", ended = "completed_at" }
//! run_kind = { column = "backfill_id", null = "schedule", otherwise = "backfill" }
//! sla = { column = "passed_sla", equals = true }
//! labels = { partner = "variables.partner" }
//! ```
//!
//! Every field of a `[tables.<name>]` (a `<schema>.<table>` name matches that schema only):
//!
//! | field | meaning |
//! |---|---|
//! | `level` | `run` (a pipeline run) or `task` (a task, block or step of a run) |
//! | `key` | the columns that identify a row (the primary key, or any unique key the row carries: Dagster `runs.run_id`, Airflow's `(dag_id, task_id, run_id, map_index)`) |
//! | `pipeline` | the pipeline name: a column, a dotted path into a JSON column, or `{ lookup = "<table>", via = "<column>" }`: the pipeline of the row of `<table>` (another table, or a `[lookups.<table>]`) whose key is this row's `<column>` |
//! | `task` | task tables: the task name column (or path) |
//! | `requires` | columns the row must have (`!col`: must not have) for this rule to apply; tells schema versions of one table apart (Airflow 2 and 3); required when two profiles describe the same table |
//! | `status` | the status column |
//! | `terminal` | terminal status -> result (`success`, `failure`, `cancellation`, `timeout`, `skip`, `other`) |
//! | `running` | non-terminal statuses in which the attempt executes (its start time is its own) |
//! | `not_run` | terminal statuses of attempts that never ran: no start, no duration |
//! | `order` | `attempt` (default: the `attempt` columns tell attempts apart, stateless), `log` (terminal episodes in log order, kept in the fact store), `events` (each row is a fact: append-only tables, see `events`) |
//! | `attempt` | columns whose values tell attempts of one row apart (`try_number`, `run_count`, `clear_number`) |
//! | `starts` | what tells the `started` facts of a row apart: `attempt` (default: the `attempt` columns, else the start time) or `start_time` (the start column's value: for rows whose retry keeps the first attempt's start time, like Prefect's `start_time`, a retry is not a new start) |
//! | `times` | columns: `created`, `queued` (queue wait = start - the later of the two), `expected` (schedule delay = start - expected; a logical date, never range-checked), `started`, `ended` (else the commit time of the terminal change) |
//! | `units` | column -> `iso` (default; a text without offset is UTC), `epoch_s`, `epoch_ms`, `epoch_us` |
//! | `duration` | the row's own duration column, seconds (instead of end - start) |
//! | `retried` | when a change is a retry: `{ statuses = [...], column = "...", above = 1 }` or `{ column = "...", present = true }` (one `retried` fact per attempt, or per value of the column when there are no attempt columns) |
//! | `sla` | `{ column = "...", equals = <value> }`: the SLA was missed (once per row) |
//! | `run_kind` | `{ column = "..." }` (the lower-cased value), or with `null = "..."`, `otherwise = "..."` |
//! | `schedule_delay_when` | column -> value: conditions for measuring the schedule delay |
//! | `backfill_kinds` | run kinds (values of `run_kind`) whose `expected` time is the logical date the run fills in (Mage `backfill`): no schedule delay, and no queue wait from it (a `queued` column that is also `expected` then counts for nothing; the queue wait runs from `created`) |
//! | `events` | `order = "events"`: `{ column = "...", values = { VALUE = "<result or fact>" }, time = "..." }`, each row whose column has one of the values is that fact (`STEP_SUCCESS = "success"`, `STEP_START = "started"`), other rows are skipped before any lookup; or `{ fact = "<result or fact>", time = "..." }`: every row of the table is that fact (Airflow 2 `sla_miss`: each insert is an SLA miss). Facts: `started`, `retried`, `sla_missed`, or a result (a `finished` fact) |
//! | `labels` | extra label -> column or JSON path; bounded values only |
//! | `records` | a column (or path) holding the number of records the run wrote: added to `pipeline.run.records` when the run finishes |
//!
//! `[lookups.<table>]`: `key = [...]`, `value = "..."`: a table read only to name things
//! (Prefect `flow.id -> flow.name`).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProfileFile {
    pub(super) orchestrator: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) description: String,
    /// Where the schema and vocabulary come from (a repository and file), for readers.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) source: String,
    #[serde(default)]
    pub(super) tables: BTreeMap<String, TableSpec>,
    /// Tables read only to name things (`flow.id -> flow.name`).
    #[serde(default)]
    pub(super) lookups: BTreeMap<String, LookupSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Level {
    Run,
    Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(super) enum Order {
    /// Attempts are told apart by the row (`attempt` columns): stateless.
    #[default]
    Attempt,
    /// Terminal episodes of a row are counted in log order (the row alone cannot tell them
    /// apart): needs the row's history in the fact store.
    Log,
    /// Each insert is a fact (append-only event tables).
    Events,
}

/// What tells the `started` facts of a row apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(super) enum Starts {
    /// The `attempt` columns (else the start time).
    #[default]
    Attempt,
    /// The start column's value: a retry that keeps the first attempt's start time is not a new
    /// start (Prefect `start_time`).
    StartTime,
}

/// Where a name comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Source {
    /// A column, or a dotted path into a JSON column (`variables.partner`).
    Path(String),
    /// The name of the parent row: `{ lookup = "pipeline_run", via = "pipeline_run_id" }`.
    Lookup { lookup: String, via: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TableSpec {
    pub(super) level: Level,
    pub(super) key: Vec<String>,
    pub(super) pipeline: Source,
    /// The task (block, step) name; task tables only.
    #[serde(default)]
    pub(super) task: Option<String>,
    /// Columns the row must have for this table rule to apply (tells schema versions apart).
    #[serde(default)]
    pub(super) requires: Vec<String>,
    #[serde(default)]
    pub(super) status: Option<String>,
    /// Terminal status -> result (`success`, `failure`, `cancellation`, `timeout`, `skip`,
    /// `other`).
    #[serde(default)]
    pub(super) terminal: BTreeMap<String, String>,
    /// Non-terminal statuses in which the attempt is executing (its start time is its own).
    #[serde(default)]
    pub(super) running: Vec<String>,
    /// Terminal statuses of attempts that never ran: no start, no duration.
    #[serde(default)]
    pub(super) not_run: Vec<String>,
    #[serde(default)]
    pub(super) order: Order,
    /// Columns whose values tell attempts of one row apart (`try_number`, `run_count`).
    #[serde(default)]
    pub(super) attempt: Vec<String>,
    /// What tells the `started` facts apart (the attempt, or the start time itself).
    #[serde(default)]
    pub(super) starts: Starts,
    #[serde(default)]
    pub(super) times: Times,
    /// Time unit hints: column -> `epoch_s`, `epoch_ms`, `epoch_us`, `iso` (the default; a text
    /// without offset is UTC).
    #[serde(default)]
    pub(super) units: BTreeMap<String, String>,
    /// The row's own duration column, in seconds (Airflow `duration`).
    #[serde(default)]
    pub(super) duration: Option<String>,
    #[serde(default)]
    pub(super) retried: Option<RetrySpec>,
    #[serde(default)]
    pub(super) sla: Option<Condition>,
    #[serde(default)]
    pub(super) run_kind: Option<RunKindSpec>,
    /// Run kinds (values of `run_kind`) whose `expected` time is the logical date the run fills
    /// in, not a time it was due or queued at (Mage `backfill`): no schedule delay, and no queue
    /// wait from it.
    #[serde(default)]
    pub(super) backfill_kinds: Vec<String>,
    /// Conditions under which a scheduled start is measured (`pipeline.run.schedule_delay`).
    #[serde(default)]
    pub(super) schedule_delay_when: BTreeMap<String, toml::Value>,
    /// Events mode: the column whose value names the fact, and what each value means
    /// (`STEP_SUCCESS = "success"`, `STEP_START = "started"`, `x = "sla_missed"`).
    #[serde(default)]
    pub(super) events: Option<EventsSpec>,
    /// Allow-listed extra labels: label -> column or JSON path. Bounded values only.
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    /// The number of records the run wrote (`pipeline.run.records`, on its `finished` fact).
    #[serde(default)]
    pub(super) records: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Times {
    #[serde(default)]
    pub(super) created: Option<String>,
    #[serde(default)]
    pub(super) queued: Option<String>,
    #[serde(default)]
    pub(super) expected: Option<String>,
    #[serde(default)]
    pub(super) started: Option<String>,
    #[serde(default)]
    pub(super) ended: Option<String>,
}

/// When a change is a retry: statuses, and/or a column condition.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetrySpec {
    #[serde(default)]
    pub(super) statuses: Vec<String>,
    #[serde(default)]
    pub(super) column: Option<String>,
    /// The column's number is above this (`run_count > 1`).
    #[serde(default)]
    pub(super) above: Option<f64>,
    /// The column (or path) is present and not null.
    #[serde(default)]
    pub(super) present: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Condition {
    pub(super) column: String,
    pub(super) equals: toml::Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunKindSpec {
    pub(super) column: String,
    /// With `null`/`otherwise`: the kind when the column is null, and when it is not.
    #[serde(default)]
    pub(super) null: Option<String>,
    #[serde(default)]
    pub(super) otherwise: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsSpec {
    /// The column whose value names the fact (with `values`)...
    #[serde(default)]
    pub(super) column: Option<String>,
    #[serde(default)]
    pub(super) values: BTreeMap<String, String>,
    /// ...or the one fact every row of the table is (Airflow 2 `sla_miss`).
    #[serde(default)]
    pub(super) fact: Option<String>,
    /// The event's time column.
    pub(super) time: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LookupSpec {
    pub(super) key: Vec<String>,
    pub(super) value: String,
}
