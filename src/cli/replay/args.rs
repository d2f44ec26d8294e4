//! The options of `replay`.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use clap::{Args, ValueEnum};

use crate::decode::files::RecordDecoder;

/// `pipeline-run-metrics replay [OPTIONS] <SOURCES>...`
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Files, directories (read recursively) or gs://bucket/prefix: JSON Lines, optionally gzip
    /// (of a directory or prefix, the files named *.jsonl, *.jsonl.gz, *.json, *.json.gz)
    #[arg(required = true, value_name = "SOURCES")]
    pub sources: Vec<String>,

    /// Record format of every line (auto: recognised per line by its shape)
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,

    /// Only records whose time is at or after this RFC 3339 time
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339)]
    pub since: Option<DateTime<FixedOffset>>,

    /// Only records whose time is before this RFC 3339 time
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339)]
    pub until: Option<DateTime<FixedOffset>>,

    /// Only records of these source tables (comma-separated, e.g. pipeline_run,block_run)
    #[arg(long, value_name = "TABLES", value_delimiter = ',', value_parser = table_name)]
    pub tables: Vec<String>,

    /// Skip the claim handlers (BigQuery queries): lifecycle profiles only, no BigQuery at all
    #[arg(long)]
    pub no_queries: bool,

    /// Compute and print the summary; write nothing to the metric backend, save no facts file
    #[arg(long)]
    pub dry_run: bool,

    /// Load the fact memory (and the records already replayed) from this file and save it back
    /// at the end, so that a second run writes nothing twice (FACT_STORE=memory only)
    #[arg(long, value_name = "PATH", env = "REPLAY_FACTS_FILE")]
    pub facts_file: Option<PathBuf>,

    /// How progress is shown on stderr (auto: a bar on a terminal, else lines)
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,

    /// Seconds between two progress lines (when progress is shown as lines)
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = interval)]
    pub progress_interval: f64,

    /// Form of the summary printed on stderr at the end
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    pub summary: SummaryFormat,
}

/// What `--help` of `replay` says after the options.
pub const AFTER_HELP: &str = "\
Every record goes through the same pipeline as live deliveries (de-duplication, the claim
handlers unless --no-queries, the lifecycle profiles, the fact memory); history records
(backfill files) are processed, timed by their row (HISTORY_TIME_COLUMNS). Points go to
METRICS_BACKEND: stdout (JSON lines, e.g. to load into BigQuery) and otlp take history; gcm
(Cloud Monitoring) takes no point older than 25 hours: those are counted as out of window per
metric and not sent. The record time for --since/--until is the point time: the commit time
(source_timestamp), or the row's time for history records.

Exit codes: 0 every record processed and every point written; 1 something was not (bad
lines, unreadable files, failed records, points out of window or refused): see the summary;
2 usage error, invalid configuration, a source or facts file that cannot be opened.

Examples:
  pipeline-run-metrics replay --no-queries --dry-run ./datastream/
  METRICS_BACKEND=otlp pipeline-run-metrics replay \\
      --facts-file state.json gs://bucket/ds/public_pipeline_run/";

/// The record format of the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Recognised per line: AWS DMS message, Debezium change event, else Datastream record
    Auto,
    /// Google Datastream JSON records
    Datastream,
    /// Debezium change events (envelope, with schema, or flattened)
    Debezium,
    /// AWS DMS messages (Kinesis/Kafka JSON)
    Dms,
}

impl Format {
    /// The decoder of one parsed line, behind the shape check that tells a file in another
    /// format ([`super::detect`]).
    pub fn decoder(self) -> RecordDecoder {
        super::detect::decoder(self)
    }

    /// Whether [`Format::decoder`] decodes a plain Datastream record (nothing but Datastream's
    /// keys) as a Datastream record, so that such a line may be read straight from its text.
    pub fn decodes_datastream(self) -> bool {
        matches!(self, Format::Auto | Format::Datastream)
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// A bar on a terminal, else lines
    Auto,
    /// A progress bar (records/s, bytes, ETA)
    Bar,
    /// One plain line every --progress-interval seconds
    Lines,
    /// Nothing but the summary
    Off,
}

/// The form of the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// A table per metric, for people
    Text,
    /// One JSON object, for scripts
    Json,
}

fn rfc3339(s: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s).map_err(|e| format!("not an RFC 3339 time such as 2026-11-01T00:00:00Z ({e})"))
}

/// A table name of `--tables`: not empty (`--tables ''` or `a,,b` would select nothing, silently).
fn table_name(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("an empty table name: give table names separated by commas, e.g. pipeline_run,block_run".into()),
        name => Ok(name.to_string()),
    }
}

fn interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.05..=3600.0).contains(&v) => Ok(v),
        _ => Err("seconds, from 0.05 to 3600".into()),
    }
}

impl ReplayArgs {
    /// Whether a record of `table` at `time` is replayed (`--tables`, `--since`, `--until`).
    pub fn selects(&self, event: &crate::decode::ChangeEvent, time: DateTime<FixedOffset>) -> bool {
        self.since.is_none_or(|s| time >= s)
            && self.until.is_none_or(|u| time < u)
            && (self.tables.is_empty() || self.tables.iter().any(|t| event.is_table(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn replay(args: &[&str]) -> Result<ReplayArgs, clap::Error> {
        let argv = ["pipeline-run-metrics", "replay"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.into_command() {
            Command::Replay(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_parse_and_bad_values_are_usage_errors() {
        let a = replay(&[
            "--since",
            "2026-11-01T00:00:00Z",
            "--until",
            "2026-11-02T00:00:00+01:00",
            "--tables",
            "pipeline_run,block_run",
            "--format",
            "debezium",
            "--no-queries",
            "--dry-run",
            "a.jsonl",
            "gs://b/p/",
        ])
        .unwrap();
        assert_eq!(a.sources, ["a.jsonl", "gs://b/p/"]);
        assert_eq!(a.tables, ["pipeline_run", "block_run"]);
        assert_eq!(a.format, Format::Debezium);
        assert!(a.no_queries && a.dry_run);
        assert_eq!(a.until.unwrap().to_rfc3339(), "2026-11-02T00:00:00+01:00");
        for bad in
            [&["--since", "yesterday", "a"][..], &["--format", "avro", "a"], &["--progress-interval", "0", "a"], &[]]
        {
            assert_eq!(replay(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    /// `--tables ''` would select nothing: a usage error naming the option.
    #[test]
    fn empty_table_names_are_usage_errors() {
        for bad in [&["--tables", "", "a"][..], &["--tables", "pipeline_run,,block_run", "a"], &["--tables", " ", "a"]]
        {
            let e = replay(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
            assert!(e.to_string().contains("--tables"), "{bad:?}: {e}");
        }
        assert_eq!(replay(&["--tables", "pipeline_run", "a"]).unwrap().tables, ["pipeline_run"]);
    }

    #[test]
    fn the_time_range_is_half_open_and_tables_match_like_handlers() {
        let event = crate::decode::datastream::decode(serde_json::json!({
            "source_timestamp": "2026-11-01T00:00:00Z", "object": "public_block_run",
            "source_metadata": {"schema": "public", "table": "block_run"}, "payload": {}}))
        .unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let a = replay(&["--since", "2026-11-01T00:00:00Z", "--until", "2026-11-01T01:00:00Z", "x"]).unwrap();
        assert!(a.selects(&event, t("2026-11-01T00:00:00Z")), "since is inclusive");
        assert!(!a.selects(&event, t("2026-11-01T01:00:00Z")), "until is exclusive");
        assert!(!a.selects(&event, t("2026-10-31T23:59:59Z")));
        let a = replay(&["--tables", "pipeline_run", "x"]).unwrap();
        assert!(!a.selects(&event, t("2026-11-01T00:00:00Z")));
        let a = replay(&["--tables", "pipeline_run,block_run", "x"]).unwrap();
        assert!(a.selects(&event, t("2026-11-01T00:00:00Z")));
    }
}
