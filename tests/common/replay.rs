//! `pipeline-run-metrics replay` as a user runs it: the real binary with a clean environment,
//! its metric lines (stdout) parsed back, its JSON summary and its other stderr lines; and the
//! recorded change records it reads, as files (plain or gzip) in a directory of the test's own.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::METRIC_PROJECT;
use super::app::{Point, parse_point};
use super::process::Process;

/// What one replay printed and returned.
#[derive(Debug)]
pub struct Replayed {
    /// The exit code.
    pub code: i32,
    /// Its stdout metric lines, parsed.
    pub points: Vec<Point>,
    /// The summary (`--summary json`, the last stderr line).
    pub summary: Value,
    /// Every other stderr line (progress, logs).
    pub stderr: Vec<String>,
}

/// The binary with only `PATH`, the metric project the in-process tests use, a BigQuery client
/// pointed nowhere (no recorded run matches a claim handler that queries), plus `env`.
pub fn command(env: &[(&str, &str)]) -> Process {
    Process::binary()
        .env("CLOUD_RUN_PROJECT_ID", METRIC_PROJECT)
        .env("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")
        .envs(env.iter().copied())
        .arg("replay")
}

/// Runs `replay <args> --summary json` to its end.
pub fn replay(env: &[(&str, &str)], args: &[&str]) -> Replayed {
    finish(command(env).args(args).args(["--summary", "json"]))
}

/// Runs a prepared replay command (with `--summary json`) to its end.
pub fn finish(p: Process) -> Replayed {
    let out = p.output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines: Vec<String> = stderr.lines().map(str::to_string).collect();
    let summary = match lines.last().map(|l| serde_json::from_str::<Value>(l)) {
        Some(Ok(v)) if v.get("records").is_some() => {
            lines.pop();
            v
        }
        _ => Value::Null,
    };
    Replayed {
        code: out.status.code().unwrap_or(-1),
        points: stdout.lines().map(parse_point).collect(),
        summary,
        stderr: lines,
    }
}

/// A recording (`events/lifecycle/<orchestrator>/<scenario>.<form>.jsonl`).
pub fn fixture(orchestrator: &str, scenario: &str, form: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("events/lifecycle/{orchestrator}/{scenario}.{form}.jsonl"))
}

/// The records of a JSON Lines file.
pub fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A fresh directory for one test (removed first if a previous run left it).
pub fn workdir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prm-replay-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of JSON Lines: one record per line.
pub fn jsonl(records: &[Value]) -> Vec<u8> {
    records.iter().map(|r| format!("{r}\n")).collect::<String>().into_bytes()
}

/// Gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Points as comparable lines, sorted: kind, name, value, unit, labels, time, project.
pub fn sorted(points: &[Point]) -> Vec<String> {
    let mut v: Vec<String> = points
        .iter()
        .map(|p| format!("{} {} {:?} {} {:?} {} {}", p.kind, p.name, p.value, p.unit, p.labels, p.timestamp, p.project))
        .collect();
    v.sort();
    v
}

/// Moves every RFC 3339 time in `v` by `by` (durations and waits stay as recorded).
pub fn shift(v: &mut Value, by: chrono::Duration) {
    match v {
        Value::String(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                *s = (t.with_timezone(&chrono::Utc) + by).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| shift(x, by)),
        Value::Object(o) => o.values_mut().for_each(|x| shift(x, by)),
        _ => {}
    }
}
