//! `pipeline-run-metrics replay`, the real binary, on recorded orchestrator runs
//! (events/lifecycle/): the points it writes are exactly those live delivery of the same
//! records writes; a second run with the same facts file writes nothing; `--dry-run` writes
//! nothing; `--since`/`--until` and `--tables` select records; bad lines and unreadable files
//! are named and counted while the rest goes on; progress lines on a stderr that is no terminal.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::app::TestApp;
use common::fakes::warehouse::ScriptedWarehouse;
use common::replay::{fixture, gzip, jsonl, records, replay, sorted, workdir};
use pipeline_run_metrics::facts::memory::Memory;
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, load};
use pipeline_run_metrics::ingress::http::Options;
use pipeline_run_metrics::pipeline::LifecycleParts;
use serde_json::Value;

/// Recorded runs of three orchestrators, one of them in its Debezium form, in this order.
const RECORDINGS: [(&str, &str, &str); 7] = [
    ("mage", "success", "datastream"),
    ("mage", "block_failure", "datastream"),
    ("mage", "retry", "datastream"),
    ("mage", "cancel", "datastream"),
    ("airflow3", "retry", "datastream"),
    ("airflow3", "mark_failed", "debezium"),
    ("airflow2", "task_retry", "datastream"),
];

fn paths() -> Vec<String> {
    RECORDINGS.iter().map(|(o, s, f)| fixture(o, s, f).display().to_string()).collect()
}

fn count(points: &[common::app::Point], name: &str) -> usize {
    points.iter().filter(|p| p.name == name).count()
}

/// The same records pushed one by one to the live HTTP route (`POST /`, wrapped Pub/Sub push),
/// through every handler and every built-in profile with an in-process fact memory, as `serve`
/// runs by default: every point written.
async fn live(paths: &[String]) -> Vec<common::app::Point> {
    let lifecycle = LifecycleParts {
        lifecycle: Arc::new(Lifecycle::new(
            load(None, None).unwrap(),
            common::METRIC_PROJECT,
            Duration::from_secs(600),
        )),
        facts: Arc::new(Memory::new(100_000)),
    };
    let options = Options { lifecycle: Some(lifecycle), ..Default::default() };
    let app = TestApp::with_options(None, None, Arc::new(ScriptedWarehouse::default()), options, None).await;
    let mut points = Vec::new();
    for path in paths {
        for record in records(std::path::Path::new(path)) {
            let a = app.push(&record).await;
            assert_eq!(a.status, 204, "{path}: {}", a.body);
            points.extend(a.points);
        }
    }
    points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_writes_exactly_the_points_live_delivery_writes() {
    let paths = paths();
    let want = live(&paths).await;
    let args = paths.clone();
    let got = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        replay(&[], &args)
    })
    .await
    .unwrap();
    assert_eq!(got.code, 0, "{:?} {:?}", got.summary, got.stderr);
    // the comparison means something: claim gauges, run and task facts, histograms
    for name in
        ["mageai/pipeline_run/count", "pipeline.run.finished", "pipeline.task.finished", "pipeline.run.duration"]
    {
        assert!(count(&want, name) > 0, "{name}");
    }
    assert_eq!(sorted(&got.points), sorted(&want), "same values, labels, kinds, units and times");
    let total: usize = paths.iter().map(|p| records(std::path::Path::new(p)).len()).sum();
    assert_eq!(got.summary["records"], total);
    assert_eq!(got.summary["processed"], total);
    let written: u64 =
        got.summary["metrics"].as_object().unwrap().values().map(|m| m["written"].as_u64().unwrap()).sum();
    assert_eq!(written as usize, want.len(), "the summary counts every point written");
}

#[test]
fn a_second_run_with_the_facts_file_writes_nothing() {
    let dir = workdir("facts");
    let state = dir.join("state.json");
    let state_arg = state.display().to_string();
    let paths = paths();
    let mut args = vec!["--facts-file", state_arg.as_str()];
    args.extend(paths.iter().map(String::as_str));
    let first = replay(&[], &args);
    assert_eq!(first.code, 0, "{:?} {:?}", first.summary, first.stderr);
    assert!(!first.points.is_empty());
    assert!(state.exists());
    let second = replay(&[], &args);
    assert_eq!(second.code, 0, "{:?}", second.summary);
    assert_eq!(second.points.len(), 0, "nothing written twice: {:?}", second.points.first());
    assert_eq!(second.summary["duplicates"], first.summary["records"]);
    assert_eq!(second.summary["processed"], 0);
    // a record never replayed that re-reads a run already counted (a backfill of the
    // completed Mage run): processed, but none of that run's facts again
    let mut backfill = records(&fixture("mage", "success", "datastream"))
        .into_iter()
        .find(|r| r["object"] == "public_pipeline_run" && r["payload"]["status"] == "COMPLETED")
        .unwrap();
    backfill["uuid"] = "backfill-of-a-known-run".into();
    backfill["read_method"] = "postgresql-backfill".into();
    let file = dir.join("backfill.jsonl");
    std::fs::write(&file, jsonl(&[backfill])).unwrap();
    let third = replay(&[], &["--facts-file", state_arg.as_str(), file.to_str().unwrap()]);
    assert_eq!((third.code, &third.summary["processed"]), (0, &Value::from(1)), "{:?}", third.summary);
    let facts: Vec<&str> =
        third.points.iter().map(|p| p.name.as_str()).filter(|n| n.starts_with("pipeline.run.")).collect();
    assert!(facts.is_empty(), "{facts:?}");
}

/// A facts file that could not be saved is refused before anything is written: otherwise the
/// points would be written now and again by the next run.
#[test]
fn an_unsavable_facts_file_is_refused_before_any_point_is_written() {
    let dir = workdir("unsavable");
    let state = dir.join("no-such-dir").join("state.json");
    let path = fixture("mage", "success", "datastream");
    let r = replay(&[], &["--facts-file", state.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{:?}", r.stderr);
    assert!(r.points.is_empty(), "{:?}", r.points.first());
    assert!(
        r.stderr.iter().any(|l| l.contains("--facts-file cannot be saved") && l.contains("no-such-dir")),
        "{:?}",
        r.stderr
    );
}

/// An empty time window is a usage error, not a replay that silently selects nothing.
#[test]
fn since_after_until_is_refused() {
    let path = fixture("mage", "success", "datastream");
    let r =
        replay(&[], &["--since", "2026-01-02T00:00:00Z", "--until", "2020-01-01T00:00:00Z", path.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{:?}", r.stderr);
    assert!(r.points.is_empty());
    assert!(r.stderr.iter().any(|l| l.contains("--since must be before --until")), "{:?}", r.stderr);
}

#[test]
fn a_dry_run_writes_nothing_and_saves_no_facts_file() {
    let dir = workdir("dry");
    let state = dir.join("state.json");
    let path = fixture("mage", "success", "datastream");
    let r = replay(&[], &["--dry-run", "--facts-file", state.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{:?}", r.summary);
    assert!(r.points.is_empty(), "{:?}", r.points.first());
    assert!(!state.exists());
    assert_eq!(r.summary["dry_run"], true);
    let finished = &r.summary["metrics"]["pipeline.run.finished"];
    assert_eq!((&finished["points"], &finished["written"]), (&Value::from(1), &Value::from(0)));
}

#[test]
fn since_until_and_tables_select_records() {
    let path = fixture("mage", "retry", "datastream");
    let all = records(&path);
    let time = |r: &Value| chrono::DateTime::parse_from_rfc3339(r["source_timestamp"].as_str().unwrap()).unwrap();
    let (since, until) = (time(&all[5]), time(&all[20]));
    let inside = all.iter().filter(|r| time(r) >= since && time(r) < until).count();
    assert!(inside > 0 && inside < all.len());
    let r = replay(&[], &["--since", &since.to_rfc3339(), "--until", &until.to_rfc3339(), path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{:?}", r.summary);
    assert_eq!(r.summary["processed"], inside);
    assert_eq!(r.summary["filtered"], all.len() - inside);
    assert_eq!(count(&r.points, "pipeline.cdc.lag"), inside, "one lag per change replayed");

    let blocks = all.iter().filter(|r| r["source_metadata"]["table"] == "block_run").count();
    let r = replay(&[], &["--tables", "block_run", path.to_str().unwrap()]);
    assert_eq!((r.code, &r.summary["processed"]), (0, &Value::from(blocks)), "{:?}", r.summary);
    assert!(r.points.iter().all(|p| p.name.starts_with("pipeline.task.") || p.name == "pipeline.cdc.lag"));
    assert!(r.points.iter().filter(|p| p.name == "pipeline.cdc.lag").all(|p| p.labels["table"] == "block_run"));
    assert!(count(&r.points, "pipeline.task.finished") > 0);
}

#[test]
fn bad_lines_and_unreadable_files_are_named_and_the_rest_is_replayed() {
    let dir = workdir("bad");
    let recs = records(&fixture("mage", "success", "datastream"));
    let good = dir.join("good-and-bad.jsonl");
    let mut text = jsonl(&recs[..2]);
    text.extend_from_slice(b"not json at all\n");
    text.extend(jsonl(&recs[2..4]));
    text.extend_from_slice(b"{\"source_timestamp\": true}\n");
    text.extend(jsonl(&recs[4..]));
    std::fs::write(&good, text).unwrap();
    // a gzip file cut short and followed by garbage
    let broken = dir.join("broken.jsonl.gz");
    let mut gz = gzip(&jsonl(&recs));
    gz.truncate(gz.len() / 2);
    gz.extend_from_slice(b"garbage garbage garbage");
    std::fs::write(&broken, gz).unwrap();
    let (good_arg, broken_arg) = (good.display().to_string(), broken.display().to_string());
    let r = replay(&[], &[good_arg.as_str(), broken_arg.as_str()]);
    assert_eq!(r.code, 1, "{:?}", r.summary);
    assert_eq!(r.summary["bad_lines"], 2);
    let examples: Vec<&str> = r.summary["examples"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(examples[0].starts_with(&format!("{good_arg}:3: ")), "{examples:?}");
    assert!(
        examples[1].starts_with(&format!("{good_arg}:6: ")) && examples[1].contains("source_timestamp"),
        "{examples:?}"
    );
    let unreadable = &r.summary["unreadable"][0];
    assert_eq!(unreadable[0], broken_arg.as_str());
    assert!(unreadable[1].as_str().unwrap().contains("cannot be read after line"), "{unreadable}");
    let processed = r.summary["processed"].as_u64().unwrap() as usize;
    assert!(processed >= recs.len() && processed < 2 * recs.len(), "{processed}: every good line of both files");
    // the text summary names them too
    let text = common::replay::finish(common::replay::command(&[]).args([good_arg.as_str(), "--summary", "text"]));
    let stderr = text.stderr.join("\n");
    assert!(stderr.contains(&format!("{good_arg}:3: line 3 is not a JSON record")), "{stderr}");
    // a source that does not exist: nothing is replayed, exit code 2, the path named
    let missing = dir.join("missing.jsonl").display().to_string();
    let r = replay(&[], &[good_arg.as_str(), missing.as_str()]);
    assert_eq!(r.code, 2);
    assert!(r.points.is_empty());
    assert!(r.stderr.iter().any(|l| l.contains(&missing)), "{:?}", r.stderr);
}

/// A gzip file cut inside its last chunk: every line before the cut is replayed and counted,
/// and the file is named unreadable after its last line. A trial lost the chunk being filled
/// ("512 records … cannot be read after line 598").
#[test]
fn a_truncated_gzip_replays_every_line_before_the_cut() {
    let dir = workdir("truncated");
    let recs = records(&fixture("mage", "success", "datastream"));
    let copies: Vec<serde_json::Value> = (0..)
        .flat_map(|copy| {
            recs.iter().map(move |r| {
                let mut r = r.clone();
                r["uuid"] = format!("{}-{copy}", r["uuid"].as_str().unwrap()).into();
                r
            })
        })
        .take(300)
        .collect();
    // 298 lines in a whole gzip member (one chunk of 256 and 42 of the next), the last two in
    // a second member cut after its 10-byte header
    let mut gz = gzip(&jsonl(&copies[..298]));
    gz.extend_from_slice(&gzip(&jsonl(&copies[298..]))[..10]);
    let path = dir.join("trunc300.jsonl.gz");
    std::fs::write(&path, gz).unwrap();
    let r = replay(&[], &["--no-queries", "--dry-run", path.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{:?}", r.summary);
    assert_eq!(r.summary["records"], 298, "{:?}", r.summary);
    assert_eq!(r.summary["processed"], 298, "{:?}", r.summary);
    let unreadable = &r.summary["unreadable"][0];
    assert_eq!(unreadable[0], path.to_str().unwrap());
    assert_eq!(unreadable[1], "cannot be read after line 298: unexpected end of file", "{unreadable}");
}

/// A directory is read for its record files only (the others are counted as skipped); a file
/// in a format replay does not read (a raw wal2json recording, a pretty-printed oracle) is one
/// "unsupported format" error naming it, not one error per line; the records beside them are
/// replayed.
#[test]
fn other_files_are_skipped_and_other_formats_reported_once_per_file() {
    let dir = workdir("formats");
    let recs = records(&fixture("mage", "success", "datastream"));
    std::fs::write(dir.join("success.datastream.jsonl"), jsonl(&recs)).unwrap();
    let lifecycle = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/lifecycle");
    let wal = dir.join("success.wal2json.jsonl");
    std::fs::copy(lifecycle.join("raw/mage/success.wal2json.jsonl"), &wal).unwrap();
    let oracle = dir.join("success.expected.json");
    std::fs::copy(lifecycle.join("mage/success.expected.json"), &oracle).unwrap();
    std::fs::copy(lifecycle.join("mage/success.scenario.md"), dir.join("success.scenario.md")).unwrap();
    std::fs::write(dir.join("SHA256SUMS"), "x\n").unwrap();
    let r = replay(&[], &[dir.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{:?}", r.summary);
    assert_eq!(r.summary["files"], 3, "{:?}", r.summary);
    assert_eq!(r.summary["skipped_files"], 2, "{:?}", r.summary);
    assert_eq!(r.summary["bad_lines"], 0, "no error per line: {:?}", r.summary["examples"]);
    assert_eq!(r.summary["processed"], recs.len());
    let unreadable: Vec<(&str, &str)> = r.summary["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u[0].as_str().unwrap(), u[1].as_str().unwrap()))
        .collect();
    assert_eq!(unreadable.len(), 2, "{unreadable:?}");
    for (file, why) in &unreadable {
        assert!(why.starts_with("unsupported format") && !why.contains("required"), "{file}: {why}");
    }
    let (_, why) = unreadable.iter().find(|(f, _)| *f == wal.to_str().unwrap()).expect("the wal2json file named");
    assert!(why.contains("wal2json"), "{why}");
    assert!(unreadable.iter().any(|(f, _)| *f == oracle.to_str().unwrap()), "{unreadable:?}");
    let text = common::replay::finish(common::replay::command(&[]).args([dir.to_str().unwrap(), "--summary", "text"]));
    let stderr = text.stderr.join("\n");
    assert!(stderr.contains("(2 other files skipped"), "{stderr}");
    assert!(stderr.contains(&format!("unreadable: {}: unsupported format", wal.display())), "{stderr}");
}

/// `--tables ''` would select nothing: a usage error naming the option, nothing replayed.
#[test]
fn an_empty_table_list_is_a_usage_error() {
    let path = fixture("mage", "success", "datastream");
    let r = replay(&[], &["--tables", "", path.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{:?}", r.stderr);
    assert!(r.points.is_empty());
    assert!(r.stderr.iter().any(|l| l.contains("--tables")), "{:?}", r.stderr);
}

/// 1,500 copies of the recorded Mage run (each record its own `uuid`) in `dir/many.jsonl.gz`:
/// its path and the records.
fn many_records(dir: &Path) -> (std::path::PathBuf, Vec<serde_json::Value>) {
    let recs = records(&fixture("mage", "success", "datastream"));
    let mut many = Vec::new();
    for copy in 0..1500 {
        for r in &recs {
            let mut r = r.clone();
            r["uuid"] = format!("{}-{copy}", r["uuid"].as_str().unwrap()).into();
            many.push(r);
        }
    }
    let path = dir.join("many.jsonl.gz");
    std::fs::write(&path, gzip(&jsonl(&many))).unwrap();
    (path, many)
}

#[test]
fn progress_lines_go_to_stderr_when_it_is_not_a_terminal() {
    let dir = workdir("progress");
    let (path, many) = many_records(&dir);
    let r = replay(&[], &["--dry-run", "--no-queries", "--progress-interval", "0.05", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{:?}", r.summary);
    let lines: Vec<&String> = r.stderr.iter().filter(|l| l.starts_with("replay: ")).collect();
    assert!(lines.len() >= 2, "periodic lines and the last one: {:?}", r.stderr);
    let last = lines.last().unwrap();
    assert!(last.starts_with(&format!("replay: {} records (", many.len())), "{last}");
    assert!(last.contains("(100%)") && last.ends_with("file 1 of 1"), "{last}");
    assert!(r.stderr.iter().all(|l| !l.contains('\u{1b}')), "no terminal escapes when stderr is a pipe");
}

#[test]
fn without_queries_no_bigquery_setting_is_needed() {
    // as a user on a laptop (and the benchmark) runs it: nothing but PATH
    let path = fixture("mage", "success", "datastream");
    let run = |args: &[&str]| {
        common::replay::finish(common::process::Process::binary().arg("replay").args(args).args(["--summary", "json"]))
    };
    let r = run(&["--no-queries", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{:?} {:?}", r.summary, r.stderr);
    assert!(count(&r.points, "pipeline.run.finished") == 1, "{:?}", r.points.len());
    // with the claim handlers, BigQuery is read: outside local mode its datasets must be named
    let r = run(&[path.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.iter().any(|l| l.contains("ALLOWED_DATASETS")), "{:?}", r.stderr);
}

#[test]
fn on_a_terminal_a_bar_shows_records_per_second_and_the_eta() {
    // stderr a pseudo-terminal: the binary under script(1), as a user at a terminal runs it
    let dir = workdir("bar");
    let (path, many) = many_records(&dir);
    let replay = format!("{} replay --no-queries --dry-run --summary json {}", common::process::BIN, path.display());
    let out = common::process::Process::new("script")
        .clean_env(&["PATH"])
        .env("TERM", "xterm")
        .args(["-qefc", replay.as_str(), "/dev/null"])
        .output();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\u{1b}[2K"), "drawn and redrawn in place: {text}");
    assert!(text.contains(" records (") && text.contains("/s)") && text.contains("ETA "), "{text}");
    assert!(!text.contains("replay: "), "no plain progress lines on a terminal");
    let summary =
        text.lines().rev().find_map(|l| l.find('{').and_then(|i| serde_json::from_str::<Value>(&l[i..]).ok()));
    assert_eq!(summary.expect("the summary")["records"], many.len());
}
