//! Replay throughput (issue 13): records/s of the release binary replaying lifecycle-only
//! records from a local JSONL.gz file to the stdout sink, with the progress display on.
//!
//! Run by `make bench` (scripts/bench.py; alone: `make bench-replay`, which runs
//! `scripts/bench.py --replay-only`), which builds the release binary and calls
//! `<this bench> --bench --out target/bench/replay.json --bin target/release/pipeline-run-metrics [--quick]`.
//! Without `--bench` on the command line (as under `cargo test --all-targets`) it does nothing.
//!
//! * Input: the recorded Datastream fixtures of Mage, Airflow 2 and Airflow 3
//!   (`events/lifecycle/{mage,airflow2,airflow3}/*.datastream.jsonl`, real runs), copied until
//!   there are `--records` records (500,000; 50,000 with `--quick`), every copy its own runs:
//!   the run and row ids (`id`, `run_id`, `dagrun_id`, `pipeline_run_id`) and the record's
//!   `uuid` get the copy's number, so that every copy's facts are new facts; gzip-compressed
//!   (flate2, default level), in `target/bench/replay-input.jsonl.gz`.
//! * Runs: `replay --no-queries` (the lifecycle profiles, all built in), `METRICS_BACKEND=stdout`
//!   with stdout into `/dev/null` (every metric line is still rendered and written), pinned to
//!   one core with `taskset -c 0` when taskset exists; once with `--progress lines` (stderr a
//!   pipe: a plain line every 5 s) and once with `--progress bar` under `script`, so that stderr
//!   is a terminal and the indicatif bar is drawn. Three runs of each; the median.
//! * Measured: wall time from spawn to exit (records/s = records / wall time) and the child's
//!   CPU time (user + system, `getrusage(RUSAGE_CHILDREN)`), whose records per CPU second are
//!   what one core gives when other processes share it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

const ORCHESTRATORS: [&str; 3] = ["mage", "airflow2", "airflow3"];
/// Row and run ids that make a copy's runs its own (references included).
const IDS: [&str; 4] = ["id", "run_id", "dagrun_id", "pipeline_run_id"];
const RUNS: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("replay: skipped (run it with `make bench` or `python3 scripts/bench.py --replay-only`)");
        return;
    }
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let quick = args.iter().any(|a| a == "--quick");
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"));
    let out = value("--out").map(PathBuf::from).unwrap_or_else(|| target.join("bench/replay.json"));
    let bin = value("--bin").map(PathBuf::from).unwrap_or_else(|| target.join("release/pipeline-run-metrics"));
    let records: usize =
        value("--records").map(|v| v.parse().expect("--records N")).unwrap_or(if quick { 50_000 } else { 500_000 });
    assert!(bin.exists(), "{} is missing: run `cargo build --release` first", bin.display());
    let work = target.join("bench");
    std::fs::create_dir_all(&work).expect("target/bench");

    let input = work.join("replay-input.jsonl.gz");
    let t0 = Instant::now();
    let (raw_bytes, sources) = generate(&input, records);
    let gz_bytes = std::fs::metadata(&input).unwrap().len();
    eprintln!(
        "== input: {records} records, {raw_bytes} bytes, {gz_bytes} gzip bytes ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );

    let pin = Path::new("/usr/bin/taskset").exists() || which("taskset");
    let mut runs = serde_json::Map::new();
    for mode in ["lines", "bar"] {
        if mode == "bar" && !which("script") {
            eprintln!("== {mode}: `script` not installed, skipped");
            continue;
        }
        let mut each = Vec::new();
        for i in 0..RUNS {
            let r = run_once(&bin, &input, mode, pin);
            eprintln!(
                "== {mode} run {}: {} records in {:.2} s = {:.0} records/s; CPU {:.2} s = {:.0} records per CPU second",
                i + 1,
                r["records"],
                r["seconds"].as_f64().unwrap(),
                r["records_per_s"].as_f64().unwrap(),
                r["cpu_seconds"].as_f64().unwrap(),
                r["records_per_cpu_s"].as_f64().unwrap()
            );
            assert_eq!(r["records"], records, "every record replayed");
            each.push(r);
        }
        let median = |key: &str| {
            let mut v: Vec<f64> = each.iter().map(|r| r[key].as_f64().unwrap()).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        runs.insert(
            mode.into(),
            json!({
                "runs": each,
                "median_records_per_s": median("records_per_s"),
                "median_records_per_cpu_s": median("records_per_cpu_s"),
                "median_seconds": median("seconds"),
            }),
        );
    }
    let result = json!({
        "quick": quick,
        "records": records,
        "input_bytes": raw_bytes,
        "input_gzip_bytes": gz_bytes,
        "sources": sources,
        "pinned_to_one_core": pin,
        "command": format!(
            "{}taskset -c 0 pipeline-run-metrics replay --no-queries --progress lines|bar {} > /dev/null",
            "METRICS_BACKEND=stdout ",
            input.display()
        ),
        "modes": runs,
        "load_average_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or(""),
    });
    std::fs::write(&out, serde_json::to_string_pretty(&result).unwrap()).expect("write results");
    eprintln!("results in {}", out.display());
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes `records` records (copies of the fixtures, each copy its own runs) gzip-compressed;
/// returns the uncompressed size and the fixture files used.
fn generate(path: &Path, records: usize) -> (u64, Vec<String>) {
    let mut fixtures: Vec<(String, Value)> = Vec::new();
    let mut files = Vec::new();
    for o in ORCHESTRATORS {
        let dir = root().join("events/lifecycle").join(o);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".datastream.jsonl"))
            .collect();
        names.sort();
        for p in names {
            files.push(p.strip_prefix(root()).unwrap().display().to_string());
            for line in std::io::BufReader::new(std::fs::File::open(&p).unwrap()).lines() {
                fixtures.push((o.to_string(), serde_json::from_str(&line.unwrap()).unwrap()));
            }
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::default());
    let mut raw = 0u64;
    let mut written = 0;
    'copies: for copy in 0.. {
        for (_, record) in &fixtures {
            if written == records {
                break 'copies;
            }
            let mut r = record.clone();
            own_run(&mut r, copy);
            let line = serde_json::to_string(&r).unwrap();
            raw += line.len() as u64 + 1;
            gz.write_all(line.as_bytes()).unwrap();
            gz.write_all(b"\n").unwrap();
            written += 1;
        }
    }
    gz.finish().unwrap().flush().unwrap();
    (raw, files)
}

/// Makes a fixture record one of copy `copy`'s runs: numeric ids offset, text ids and the uuid
/// suffixed.
fn own_run(record: &mut Value, copy: usize) {
    if copy == 0 {
        return;
    }
    if let Some(Value::String(u)) = record.get_mut("uuid") {
        u.push_str(&format!("-{copy}"));
    }
    if let Some(Value::Object(row)) = record.get_mut("payload") {
        for key in IDS {
            match row.get_mut(key) {
                Some(Value::Number(n)) if n.is_i64() => *n = (n.as_i64().unwrap() + copy as i64 * 10_000_000).into(),
                Some(Value::String(s)) => s.push_str(&format!("-{copy}")),
                _ => {}
            }
        }
    }
}

/// One replay of `input`; its records, wall and CPU seconds.
fn run_once(bin: &Path, input: &Path, mode: &str, pin: bool) -> Value {
    let replay = format!(
        "{}{} replay --no-queries --progress {mode} --summary json {} > /dev/null",
        if pin { "taskset -c 0 " } else { "" },
        bin.display(),
        input.display()
    );
    // under `script`, stderr is a pseudo-terminal (the bar is drawn); its typescript is dropped
    let shell = if mode == "bar" { format!("script -qefc '{replay}' /dev/null") } else { replay };
    let before = cpu_of_children();
    let t0 = Instant::now();
    let out = Command::new("sh")
        .args(["-c", &shell])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("METRICS_BACKEND", "stdout")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run the replay");
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = cpu_of_children() - before;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{shell}: {}\n{text}", out.status);
    // the last line holding a JSON object (under `script`, after the bar's escape sequences)
    let summary: Value = text
        .lines()
        .rev()
        .find_map(|l| l.find('{').and_then(|i| serde_json::from_str(l[i..].trim()).ok()))
        .unwrap_or_else(|| panic!("no JSON summary in: {text}"));
    let records = summary["records"].as_u64().unwrap();
    json!({
        "records": records,
        "seconds": seconds,
        "records_per_s": records as f64 / seconds,
        "cpu_seconds": cpu,
        "records_per_cpu_s": records as f64 / cpu.max(1e-9),
        "replay_elapsed": summary["elapsed"],
    })
}

/// User + system seconds of the waited-for children so far.
fn cpu_of_children() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
