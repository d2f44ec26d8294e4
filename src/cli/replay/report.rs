//! What a replay did, printed on stderr at the end (text or JSON), and its exit code.
//!
//! Exit code 0: every record read was processed (or filtered, or answered before) and every
//! point was written (a dry run: could be written). 1: anything else: a bad line, an unreadable
//! file, a record whose handlers or sink failed, a point out of the backend's window, refused or
//! unwritten, cumulative totals not written at the end, a facts file not saved. 130: stopped by
//! Ctrl-C (the summary and the facts file cover what was done).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::tally::MetricCounts;
use crate::pipeline::{Outcome, RecordResult};

/// How many bad lines and failed records the summary names (all are counted).
pub const EXAMPLES: usize = 20;

/// The counts of one replay.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// `stdout`, `gcm` or `otlp`.
    pub backend: &'static str,
    pub files: usize,
    /// Files of directories and prefixes not read: their names do not end in `.jsonl`,
    /// `.jsonl.gz`, `.json` or `.json.gz`.
    pub skipped_files: usize,
    /// Files that could not be read to their end, or are in a format replay does not read:
    /// (file, why).
    pub unreadable: Vec<(String, String)>,
    /// Records read (lines that are not blank).
    pub records: u64,
    /// Left out by `--since`, `--until` or `--tables`.
    pub filtered: u64,
    /// Processed: every matching handler and profile ran and the points were written.
    pub processed: u64,
    /// Answered before (the same record earlier in this run, or in the run of the facts file).
    pub duplicates: u64,
    /// Valid records that report no row change (AWS DMS control records).
    pub ignored: u64,
    /// Lines that are not records.
    pub bad_lines: u64,
    /// Records whose handlers, fact store or sink failed, or that ran out of time.
    pub failed: u64,
    /// The first [`EXAMPLES`] bad lines and failed records: `file:line: why`.
    pub examples: Vec<String>,
    /// Points by metric.
    pub metrics: BTreeMap<String, MetricCounts>,
    /// The backend's last write (Cloud Monitoring's cumulative totals): series not written.
    pub flush_unwritten: Vec<String>,
    /// The facts file: where, and the records and facts it now holds (or why it was not saved).
    pub facts_file: Option<FactsFile>,
    /// Facts the memory evicted (FACT_MEMORY_CAPACITY too small: they may be counted again).
    pub evictions: u64,
    pub interrupted: bool,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

/// The facts file after the run.
#[derive(Debug, Serialize)]
pub struct FactsFile {
    pub path: String,
    pub records: usize,
    pub facts: usize,
    /// Why it was not saved, if it was not.
    pub error: Option<String>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Report {
    /// Counts one record's outcome; `file` names it in examples.
    pub fn record(&mut self, file: &str, r: RecordResult) {
        let why = match r.outcome {
            Outcome::Done => {
                self.processed += 1;
                return;
            }
            Outcome::Ignored { .. } | Outcome::History => {
                self.ignored += 1;
                return;
            }
            Outcome::Duplicate(ref prev) if (200..300).contains(&prev.status) => {
                self.duplicates += 1;
                return;
            }
            Outcome::Rejected(e) => {
                self.bad_lines += 1;
                e.message
            }
            other => {
                self.failed += 1;
                describe(&other)
            }
        };
        if self.examples.len() < EXAMPLES {
            let line = r.item.as_deref().and_then(|i| i.strip_prefix("line ")).unwrap_or("?");
            self.examples.push(format!("{file}:{line}: {why}"));
        }
    }

    /// Whether anything was not processed or not written (exit code 1).
    pub fn incomplete(&self) -> bool {
        self.bad_lines > 0
            || self.failed > 0
            || !self.unreadable.is_empty()
            || !self.flush_unwritten.is_empty()
            || self.metrics.values().any(|m| m.not_taken() > 0)
            || self.facts_file.as_ref().is_some_and(|f| f.error.is_some())
    }

    pub fn exit_code(&self) -> ExitCode {
        if self.interrupted {
            ExitCode::from(130)
        } else if self.incomplete() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }

    /// The summary as one JSON object.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The summary for people.
    pub fn text(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let skipped = match self.skipped_files {
            0 => String::new(),
            1 => " (1 other file skipped: not .jsonl, .jsonl.gz, .json or .json.gz)".to_string(),
            n => format!(" ({n} other files skipped: not .jsonl, .jsonl.gz, .json or .json.gz)"),
        };
        let mut out = format!(
            "replay{}: {} records from {} files{skipped} in {:.1} s ({:.0} records/s), backend {}\n",
            if self.dry_run { " (dry run: nothing written)" } else { "" },
            self.records,
            self.files,
            secs,
            self.records as f64 / secs.max(1e-9),
            self.backend
        );
        out.push_str(&format!(
            "  processed {}, filtered out {}, already replayed {}, ignored {}, bad lines {}, failed {}\n",
            self.processed, self.filtered, self.duplicates, self.ignored, self.bad_lines, self.failed
        ));
        if !self.metrics.is_empty() {
            let width = self.metrics.keys().map(String::len).max().unwrap_or(6).max(6);
            let written = if self.dry_run { "to write" } else { "written" };
            out.push_str(&format!(
                "  {:<width$}  {:<9}  {:>9}  {:>9}  {:>13}  {:>15}  {:>8}  {:>9}\n",
                "metric", "kind", "points", written, "out of window", "already written", "refused", "unwritten"
            ));
            for (name, m) in &self.metrics {
                let taken = if self.dry_run { m.points - m.out_of_window } else { m.written };
                out.push_str(&format!(
                    "  {name:<width$}  {:<9}  {:>9}  {taken:>9}  {:>13}  {:>15}  {:>8}  {:>9}\n",
                    m.kind, m.points, m.out_of_window, m.already_written, m.refused, m.unwritten
                ));
            }
        }
        if self.metrics.values().any(|m| m.out_of_window > 0) {
            out.push_str(
                "  out of window: Cloud Monitoring takes no point older than 25 hours (or more than 5 minutes ahead): \
                 those points were not sent; replay history to stdout or OTLP, or limit --since to the last 25 hours\n",
            );
        }
        for (file, why) in &self.unreadable {
            out.push_str(&format!("  unreadable: {file}: {why}\n"));
        }
        if !self.examples.is_empty() {
            let n = self.bad_lines + self.failed;
            out.push_str(&format!("  bad lines and failed records ({} of {n} shown):\n", self.examples.len()));
            for e in &self.examples {
                out.push_str(&format!("    {e}\n"));
            }
        }
        if !self.flush_unwritten.is_empty() {
            out.push_str(&format!("  cumulative totals not written at the end: {}\n", self.flush_unwritten.join(", ")));
        }
        if self.evictions > 0 {
            out.push_str(&format!(
                "  warning: the fact memory evicted {} facts (FACT_MEMORY_CAPACITY): they may be counted again\n",
                self.evictions
            ));
        }
        match &self.facts_file {
            Some(FactsFile { path, error: Some(e), .. }) => {
                out.push_str(&format!("  facts file {path} NOT saved: {e}\n"))
            }
            Some(f) if self.dry_run => out.push_str(&format!("  facts file {}: not saved (dry run)\n", f.path)),
            Some(f) => out.push_str(&format!("  facts file {}: {} records, {} facts\n", f.path, f.records, f.facts)),
            None => {}
        }
        if self.interrupted {
            out.push_str("  interrupted: the rest of the sources was not read\n");
        }
        out
    }
}

/// Why a record failed, for the summary (handler and error texts, never payload values).
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::HandlersFailed { failures, .. } => failures
            .iter()
            .map(|f| match f.error.field() {
                // the field, as the HTTP answer names it (`file:3: lifecycle/mage: payload.started_at: ...`)
                Some(field) => {
                    format!("{}: {field}: {} ({})", f.handler, f.error.log_text(), f.error.class().as_str())
                }
                None => format!("{}: {} ({})", f.handler, f.error.log_text(), f.error.class().as_str()),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Outcome::SinkFailed(e) => e.to_string(),
        Outcome::DeadlineExceeded { deadline_secs } => {
            format!("not done within EVENT_DEADLINE_SECS ({deadline_secs} s)")
        }
        Outcome::InProgress => "still in progress when the chunk ended".into(),
        Outcome::Duplicate(prev) => format!("a duplicate of a record that failed (status {})", prev.status),
        other => other.label().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DecodeError;

    fn result(line: u64, outcome: Outcome) -> RecordResult {
        RecordResult { item: Some(format!("line {line}")), outcome }
    }

    #[test]
    fn outcomes_are_counted_and_bad_lines_named_by_file_and_line() {
        let mut r = Report::default();
        r.record("a.jsonl", result(1, Outcome::Done));
        r.record(
            "a.jsonl",
            result(2, Outcome::Rejected(DecodeError::malformed(Some("line 2".into()), "line 2 is not a JSON record"))),
        );
        r.record("a.jsonl", result(3, Outcome::Ignored { reason: "control".into() }));
        r.record("b.jsonl", result(9, Outcome::DeadlineExceeded { deadline_secs: 50.0 }));
        assert_eq!((r.processed, r.bad_lines, r.ignored, r.failed), (1, 1, 1, 1));
        assert_eq!(r.examples[0], "a.jsonl:2: line 2 is not a JSON record");
        assert!(r.examples[1].starts_with("b.jsonl:9: not done within"), "{:?}", r.examples);
        assert!(r.incomplete());
        assert_eq!(r.exit_code(), ExitCode::from(1));
        assert!(r.text().contains("a.jsonl:2:"), "{}", r.text());
    }

    /// A handler's failure is summed up in its log form: a payload variable's value (a table
    /// name that may hold an e-mail address) is named and fingerprinted, never shown.
    #[test]
    fn handler_failures_show_no_payload_values() {
        use crate::handlers::HandlerError;
        use crate::pipeline::answer::Failure;
        let error = HandlerError::invalid_quoting(
            "payload.variables.batch_processable",
            "Batch tables not found: tmp.table_of_ann_at_example_com",
            "Batch tables not found: <batch_processable #0123>".into(),
        );
        let failures = vec![Failure { handler: "H".into(), error }];
        let mut r = Report::default();
        r.record("a.jsonl", result(4, Outcome::HandlersFailed { transient: false, failures }));
        let shown = format!("{}{}", r.text(), r.json());
        assert!(shown.contains("<batch_processable #0123>"), "{shown}");
        assert!(shown.contains("H: payload.variables.batch_processable: Batch tables"), "the field: {shown}");
        assert!(!shown.contains("ann_at_example_com"), "{shown}");
    }

    #[test]
    fn files_skipped_by_name_are_said() {
        let r = Report { files: 2, skipped_files: 3, ..Default::default() };
        assert!(r.text().contains("from 2 files (3 other files skipped: not .jsonl"), "{}", r.text());
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["skipped_files"], 3);
        let one = Report { files: 2, skipped_files: 1, ..Default::default() };
        assert!(one.text().contains("(1 other file skipped: not .jsonl"), "{}", one.text());
        assert!(!Report { files: 2, ..Default::default() }.text().contains("skipped"));
        assert_eq!(r.exit_code(), ExitCode::SUCCESS, "skipping by name is no failure");
    }

    #[test]
    fn a_clean_run_exits_0_and_points_out_of_window_do_not() {
        let mut r = Report { records: 1, processed: 1, ..Default::default() };
        r.metrics.insert("m".into(), MetricCounts { kind: "gauge", points: 2, written: 2, ..Default::default() });
        assert_eq!(r.exit_code(), ExitCode::SUCCESS);
        r.metrics
            .insert("n".into(), MetricCounts { kind: "counter", points: 1, out_of_window: 1, ..Default::default() });
        assert_eq!(r.exit_code(), ExitCode::from(1));
        assert!(r.text().contains("older than 25 hours"));
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["metrics"]["n"]["out_of_window"], 1);
    }
}
