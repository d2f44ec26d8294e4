//! Whole-process benchmarks of the lifecycle and file paths (issue 10 item 8, issue 11 item 6):
//! the release binary, driven over HTTP, its memory read from /proc/<pid>/status.
//!
//! Run by `make bench` (scripts/bench.py), which builds `target/release/pipeline-run-metrics`,
//! installs the Cloud Storage emulator (scripts/install-gcs-emulator.sh) and calls this binary
//! with `--bench --out target/bench/lifecycle_process.json --bin <release binary> [--quick]`.
//! Without `--bench` (as under `cargo test --all-targets`) it only checks its record generators
//! in-process: every generated record decodes and derives new facts (no binary, no emulator).
//!
//! Measured:
//! * `http`: lifecycle-only events (a Datastream record of a run table that only lifecycle
//!   profiles read: no claim handler, no BigQuery query), one per POST as an unwrapped Pub/Sub
//!   push, at concurrency 16, in-process fact memory (the default): events/s and latency; every
//!   request is a new row (key columns and `uuid` rewritten), so every fact is derived. The
//!   templates rotate over the terminal run-table record of each recorded profile. Then the load
//!   goes on to 1,000,000 distinct records, with `VmRSS`/`VmHWM` at checkpoints.
//! * `files`: a 10,000-record Datastream JSONL.gz file in the Cloud Storage emulator, announced by
//!   a bucket notification (Pub/Sub push, `OBJECT_FINALIZE`): notification sent -> answer
//!   received, i.e. the object fetched, streamed, decoded, dispatched and written to the stdout
//!   sink; and the memory of the binary while it reads a 200 MB file (plain and gzip).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/raw_http.rs"]
mod raw_http;
#[path = "support/lifecycle.rs"]
mod support;

use std::net::TcpStream as StdStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::process::{Capture, Process, Running, free_port};
use common::push::Push;
use common::storage::{Gcs, emulator};
use pipeline_run_metrics::decode;
use pipeline_run_metrics::handlers::lifecycle::names;
use raw_http::{memory_of, roundtrip_sync};
use serde_json::{Value, json};
use support::{CASES, Case, now_of, prepare, renew, run_cases};

/// The allocator of the binary (src/main.rs), so that in-process figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Opts {
    quick: bool,
    out: PathBuf,
    bin: PathBuf,
    bq_emulator: String,
    work: PathBuf,
}

impl Opts {
    fn n(&self, full: u64, quick: u64) -> u64 {
        if self.quick { quick } else { full }
    }
}

/// One measurement step: its results as JSON.
type Step = fn(&Opts) -> Value;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        check_generators();
        return;
    }
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let root = support::root();
    let opts = Opts {
        quick: args.iter().any(|a| a == "--quick"),
        out: value("--out").map(PathBuf::from).unwrap_or_else(|| root.join("target/bench/lifecycle_process.json")),
        bin: value("--bin").map(PathBuf::from).unwrap_or_else(|| root.join("target/release/pipeline-run-metrics")),
        bq_emulator: value("--emulator")
            .or_else(|| std::env::var("BIGQUERY_EMULATOR_HOST").ok())
            .unwrap_or_else(|| "127.0.0.1:9050".into()),
        work: root.join("target/bench"),
    };
    std::fs::create_dir_all(&opts.work).expect("target/bench");
    assert!(opts.bin.exists(), "{} is missing: run `cargo build --release` first", opts.bin.display());
    let only = value("--only");
    let mut out = serde_json::Map::new();
    out.insert("quick".into(), opts.quick.into());
    let steps: [(&str, Step); 2] = [("http", http), ("files", files)];
    for (name, step) in steps {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let t0 = Instant::now();
        eprintln!("== {name}");
        let mut v = step(&opts);
        v["step_seconds"] = json!(t0.elapsed().as_secs_f64());
        eprintln!("   {name}: {:.1} s", t0.elapsed().as_secs_f64());
        out.insert(name.into(), v);
        std::fs::write(&opts.out, serde_json::to_string_pretty(&Value::Object(out.clone())).unwrap())
            .expect("write results");
    }
    eprintln!("results in {}", opts.out.display());
}

// ---------------------------------------------------------------------------------------------
// Request templates: a record rendered once, its counter digits overwritten in place per request

/// The `n` rendered into templates, found again to know where to write each request's own.
const MAGIC: u64 = 0x0fed_cba9_8765;

/// A request (or file line) with the places of its counter: 12 hex digits, or 13 decimal ones.
#[derive(Clone)]
struct Template {
    bytes: Vec<u8>,
    hex_at: Vec<usize>,
    dec_at: Vec<usize>,
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect()
}

impl Template {
    fn new(bytes: Vec<u8>) -> Template {
        let hex_at = find_all(&bytes, format!("{MAGIC:012x}").as_bytes());
        let dec_at = find_all(&bytes, (9_000_000_000_000u64 + MAGIC).to_string().as_bytes());
        assert!(!hex_at.is_empty(), "template without a counter");
        Template { bytes, hex_at, dec_at }
    }

    /// Writes counter `n` (< 10^12) into every place.
    fn set(&mut self, n: u64) {
        let hex = format!("{n:012x}");
        for &at in &self.hex_at {
            self.bytes[at..at + 12].copy_from_slice(hex.as_bytes());
        }
        let dec = (9_000_000_000_000u64 + n).to_string();
        for &at in &self.dec_at {
            self.bytes[at..at + 13].copy_from_slice(dec.as_bytes());
        }
    }
}

/// The representative (terminal) record of every recorded profile's run table.
fn run_records() -> Vec<(&'static Case, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    run_cases().map(|c| (c, prepare(&rt, c.1, c.2, c.3, c.4).2)).collect()
}

/// An unwrapped Pub/Sub push of `record` (the body is the record; attributes in headers), its
/// message id and uuid carrying the counter.
fn push_template(case: &Case, record: &Value) -> Template {
    let mut r = record.clone();
    renew(&mut r, case.4, MAGIC);
    let body = serde_json::to_vec(&r).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-goog-pubsub-message-id: 77{MAGIC:012x}\r\n\
         x-goog-pubsub-subscription-name: projects/local-project/subscriptions/pipeline-run-metrics-unwrapped\r\n\
         x-goog-pubsub-publish-time: 2026-11-30T13:31:00.000Z\r\n\r\n",
        body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    Template::new(bytes)
}

/// Under `cargo test --all-targets`: the generators make records that decode and derive new
/// facts, request after request and line after line.
fn check_generators() {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    for case in CASES {
        let (lc, store, record) = prepare(&rt, case.1, case.2, case.3, case.4);
        let mut t = push_template(case, &record);
        let body_at = t.bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        for n in 0..3 {
            t.set(n);
            let event = decode::record(serde_json::from_slice(&t.bytes[body_at..]).unwrap()).unwrap();
            let d = rt.block_on(lc.derive(&event, &store, now_of(&event))).unwrap();
            assert!(d.points.iter().any(|p| p.name != names::CDC_LAG), "{}: request {n} derived no fact", case.0);
        }
    }
    let lines = 12 * dag_run_changes().len() as u64;
    let file = datastream_file(0, lines);
    assert_eq!(file.lines().count() as u64, lines);
    let uuids: std::collections::BTreeSet<&str> =
        file.lines().map(|l| l.split("\"uuid\":\"").nth(1).unwrap().split('"').next().unwrap()).collect();
    assert_eq!(uuids.len() as u64, lines, "every line its own uuid");
    let lc = support::lifecycle(FILE_CASE.1);
    let store = pipeline_run_metrics::facts::memory::Memory::new(1000);
    let mut finished = 0;
    for l in file.lines() {
        let event = decode::record(serde_json::from_str(l).unwrap()).unwrap();
        let d = rt.block_on(lc.derive(&event, &store, now_of(&event))).unwrap();
        finished += d.points.iter().filter(|p| p.name == names::RUN_FINISHED).count();
    }
    assert_eq!(finished as u64, runs_in(lines), "one finished run per replicated run");
    eprintln!("lifecycle_process: generators checked (run it with `make bench` for figures)");
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1

// ---------------------------------------------------------------------------------------------
// The process under test

struct Server {
    run: Running,
    port: u16,
}

fn spawn(opts: &Opts, env: &[(&str, &str)], stdout: Capture) -> Server {
    let port = free_port();
    let run = Process::new(&opts.bin)
        .clean_env(&["PATH"])
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("BIGQUERY_EMULATOR_HOST", &opts.bq_emulator)
        .env("CLOUD_RUN_PROJECT_ID", "local-project")
        .env("BIGQUERY_PROJECT_ID", "test-project")
        .env("METRICS_BACKEND", "stdout")
        .envs(env.iter().copied())
        .stdout(stdout)
        .stderr(Capture::File(opts.work.join("lifecycle_process.stderr.jsonl")))
        .spawn();
    let mut s = Server { run, port };
    s.wait_ready();
    s
}

impl Server {
    fn wait_ready(&mut self) {
        let req = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
        loop {
            assert!(self.run.started.elapsed() < Duration::from_secs(30), "the binary is not ready after 30 s");
            if let Ok(Some(status)) = self.run.child.try_wait() {
                panic!("the binary exited with {status}");
            }
            if let Ok(mut s) = StdStream::connect(("127.0.0.1", self.port))
                && matches!(roundtrip_sync(&mut s, req, &mut Vec::new()), Ok((200, _)))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `VmRSS` and `VmHWM` in KiB.
    fn memory(&self) -> Value {
        memory_of(self.run.id())
    }

    /// Delivers every record of the recorded `success` runs once, in log order, so that the rows
    /// naming their pipeline through another row (a Prefect flow run through its flow) find it.
    fn warm(&self) {
        for (i, case) in run_cases().enumerate() {
            for (j, r) in support::recording(case.2).iter().enumerate() {
                let body = serde_json::to_vec(r).unwrap();
                let mut req = format!(
                    "POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     x-goog-pubsub-message-id: warm-{i}-{j}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                req.extend_from_slice(&body);
                self.post(&req, Duration::from_secs(30));
            }
        }
    }

    fn post(&self, req: &[u8], timeout: Duration) -> (u16, String) {
        let mut s = StdStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(timeout)).unwrap();
        {
            let mut buf = Vec::new();
            let (status, len) = roundtrip_sync(&mut s, req, &mut buf).expect("answer");
            (status, raw_http::body(&buf, len))
        }
    }
}

/// The counter of every request of the run: never the same row twice.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Sends `total` requests over `concurrency` keep-alive connections ([`raw_http::load`]),
/// rotating over the templates, each with a new counter.
fn load(port: u16, templates: &[Template], concurrency: usize, total: u64, limit: Duration) -> Value {
    let next: fn(&mut Vec<Template>) -> &[u8] = |templates| {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let k = templates.len() as u64;
        let t = &mut templates[(n % k) as usize];
        t.set(n);
        &t.bytes
    };
    raw_http::load(port, &templates.to_vec(), next, concurrency, total as usize, limit)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------------------------
// Step 1: lifecycle-only events over HTTP, and memory after 1,000,000 distinct records

fn http(opts: &Opts) -> Value {
    let records = run_records();
    let templates: Vec<Template> = records.iter().map(|(c, r)| push_template(c, r)).collect();
    let limit = Duration::from_secs(900);

    // Check first: every request is a new run whose facts are written (stdout captured).
    let check_out = opts.work.join("lifecycle_http_check.stdout.jsonl");
    let s = spawn(opts, &[("LOG_LEVEL", "info")], Capture::File(check_out.clone()));
    s.warm();
    let before = std::fs::read_to_string(&check_out).map(|t| t.lines().count()).unwrap_or(0);
    let check_n = 10 * templates.len() as u64;
    let check = load(s.port, &templates, 4, check_n, limit);
    drop(s);
    let text = std::fs::read_to_string(&check_out).unwrap_or_default();
    let lines: String = text.lines().skip(before).map(|l| format!("{l}\n")).collect();
    let finished = lines.lines().filter(|l| l.contains(names::RUN_FINISHED)).count() as u64;
    let started = lines.lines().filter(|l| l.contains(names::RUN_STARTED)).count() as u64;
    let log = std::fs::read_to_string(opts.work.join("lifecycle_process.stderr.jsonl")).unwrap_or_default();
    let queries: u64 = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("queries").and_then(Value::as_u64).map(|q| q + v["tables_checked"].as_u64().unwrap_or(0)))
        .sum();
    eprintln!("   check: {check_n} requests -> {finished} finished, {started} started, {queries} BigQuery requests");

    // Throughput at concurrency 16 (LOG_LEVEL=warn, then the default info), stdout into /dev/null.
    let s = spawn(opts, &[("LOG_LEVEL", "warn")], Capture::Null);
    let at_start = s.memory();
    s.warm();
    let mut total = 0u64;
    let warm = load(s.port, &templates, 16, 2_000, limit);
    total += warm["events"].as_u64().unwrap();
    let c16 = load(s.port, &templates, 16, opts.n(200_000, 5_000), limit);
    total += c16["events"].as_u64().unwrap();
    let mut checkpoints = vec![json!({"records": total, "memory": s.memory()})];
    // On to 1,000,000 distinct records, memory at checkpoints.
    let goal = opts.n(1_000_000, 20_000);
    for mark in [250_000, 500_000, 750_000, 1_000_000].map(|m| m * goal / 1_000_000) {
        if mark > total {
            let r = load(s.port, &templates, 16, mark - total, limit);
            total += r["events"].as_u64().unwrap();
            checkpoints.push(json!({"records": total, "memory": s.memory(), "events_per_s": r["events_per_s"]}));
            eprintln!("   {total} records: {}", s.memory());
        }
    }
    let at_end = s.memory();
    drop(s);
    let s = spawn(opts, &[("LOG_LEVEL", "info")], Capture::Null);
    s.warm();
    load(s.port, &templates, 16, 2_000, limit);
    let c16_info = load(s.port, &templates, 16, opts.n(60_000, 3_000), limit);
    drop(s);
    // Where the memory goes: the same load to half the records (past the point where every
    // bounded memory is full) with the de-duplication window off, then also with a fact memory
    // of 1,000 entries.
    let half = goal / 2;
    let mut breakdown = Vec::new();
    for env in [
        vec![("LOG_LEVEL", "warn"), ("DEDUP_WINDOW_SECS", "0")],
        vec![("LOG_LEVEL", "warn"), ("DEDUP_WINDOW_SECS", "0"), ("FACT_MEMORY_CAPACITY", "1000")],
    ] {
        let s = spawn(opts, &env, Capture::Null);
        s.warm();
        let start = s.memory();
        let r = load(s.port, &templates, 16, half, limit);
        eprintln!("   {env:?}: {} records: {}", r["events"], s.memory());
        breakdown.push(json!({
            "env": env.iter().skip(1).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
            "records": r["events"], "memory_at_start": start, "memory_at_end": s.memory(),
        }));
    }
    json!({
        "events": records.iter().map(|(c, _)| format!("{}/success {}", c.2, c.3)).collect::<Vec<_>>(),
        "check": {"requests": check_n, "statuses": check["statuses"], "finished_points": finished,
                  "started_points": started, "bigquery_requests": queries},
        "memory_at_start": at_start,
        "c16": c16,
        "c16_info": c16_info,
        "records_at_end": total,
        "checkpoints": checkpoints,
        "memory_at_end": at_end,
        "breakdown": breakdown,
        "load_after": loadavg(),
    })
}

// ---------------------------------------------------------------------------------------------
// Step 2: Datastream files in Cloud Storage

/// The table of the files: Airflow 3 `dag_run`, read by the lifecycle profile alone.
const FILE_CASE: &Case = &CASES[4];

/// How many complete replicated runs `records` lines hold (every run has the recording's
/// changes; the last run may be cut short).
fn runs_in(records: u64) -> u64 {
    records / dag_run_changes().len() as u64
}

fn dag_run_changes() -> Vec<Value> {
    support::recording(FILE_CASE.2).into_iter().filter(|r| r["source_metadata"]["table"] == FILE_CASE.3).collect()
}

/// `records` lines of a Datastream file of the `dag_run` table: the recorded run's changes, in
/// order, for run after run, every run a new row (keys rewritten with `series * 10^8 + run`),
/// every line its own `uuid`. Deterministic.
fn datastream_file(series: u64, records: u64) -> String {
    let changes = dag_run_changes();
    let mut out = String::new();
    let mut templates: Vec<Template> = changes
        .iter()
        .map(|c| {
            let mut r = c.clone();
            renew(&mut r, FILE_CASE.4, MAGIC);
            Template::new(serde_json::to_vec(&r).unwrap())
        })
        .collect();
    let mut n = 0u64;
    'runs: for run in 0.. {
        for (j, t) in templates.iter_mut().enumerate() {
            if n == records {
                break 'runs;
            }
            // the keys carry the run; the uuid (same digits) must differ per line: a line's
            // own number replaces the run's in the uuid after rendering
            t.set(series * 100_000_000 + run);
            let mut line = String::from_utf8(t.bytes.clone()).unwrap();
            let uuid_run = format!("8000-{:012x}\"", series * 100_000_000 + run);
            let uuid_line = format!("8000-{:012x}\"", (1 << 40) + series * 100_000_000 + run * 16 + j as u64);
            line = line.replacen(&uuid_run, &uuid_line, 1);
            out.push_str(&line);
            out.push('\n');
            n += 1;
        }
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let mut out = Vec::new();
        async_compression::tokio::bufread::GzipEncoder::new(data).read_to_end(&mut out).await.unwrap();
        out
    })
}

/// The bucket notification of an uploaded object: a Pub/Sub push (JSON_API_V1 payload).
fn notification(resource: &Value) -> Vec<u8> {
    let attr = |k: &str| resource[k].as_str().unwrap_or_default().to_string();
    let body = Push::new(serde_json::to_vec(resource).unwrap())
        .message_id(&format!("n-{}-{}", attr("name"), attr("generation")))
        .attribute("eventType", "OBJECT_FINALIZE")
        .attribute("payloadFormat", "JSON_API_V1")
        .attribute("bucketId", &attr("bucket"))
        .attribute("objectId", &attr("name"))
        .attribute("objectGeneration", &attr("generation"))
        .body();
    let mut req = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    req
}

fn object_name(series: u64, ext: &str) -> String {
    format!("ds/public_dag_run/2026/11/30/13/31/{series:04x}_postgresql-cdc_1_2_{series}.{ext}")
}

fn files(opts: &Opts) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let host = emulator().to_string();
    let gcs = Gcs::default();
    let bucket = format!("bench-{}", std::process::id());
    rt.block_on(gcs.bucket(&bucket));
    let upload = |name: &str, data: Vec<u8>| -> Value { rt.block_on(gcs.upload(&bucket, name, data)) };
    let env = [("STORAGE_EMULATOR_HOST", host.as_str()), ("LOG_LEVEL", "info")];

    // 10,000 records, gzip, through one warm binary: each repetition a new file of new runs.
    let records = 10_000u64;
    let out_file = opts.work.join("lifecycle_files.stdout.jsonl");
    let s = spawn(opts, &env, Capture::File(out_file.clone()));
    let mut runs = Vec::new();
    for series in 1..=opts.n(7, 2) {
        let plain = datastream_file(series, records);
        let gz = gzip(plain.as_bytes());
        let resource = upload(&object_name(series, "jsonl.gz"), gz.clone());
        let before = std::fs::read_to_string(&out_file).map(|t| t.lines().count()).unwrap_or(0);
        let t0 = Instant::now();
        let (status, body) = s.post(&notification(&resource), Duration::from_secs(600));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        std::thread::sleep(Duration::from_millis(200));
        let text = std::fs::read_to_string(&out_file).unwrap_or_default();
        let new: Vec<&str> = text.lines().skip(before).collect();
        let finished = new.iter().filter(|l| l.contains(names::RUN_FINISHED)).count();
        eprintln!(
            "   file {series}: {records} records, {} bytes gz: {status} in {ms:.0} ms, {finished} finished",
            gz.len()
        );
        runs.push(json!({
            "series": series, "records": records, "plain_bytes": plain.len(), "gzip_bytes": gz.len(),
            "status": status, "answer": body, "ms": ms, "metric_lines": new.len(),
            "finished_points": finished, "runs_in_file": runs_in(records),
            "memory_after": s.memory(),
        }));
    }
    drop(s);
    let file_log = std::fs::read_to_string(opts.work.join("lifecycle_process.stderr.jsonl")).unwrap_or_default();
    let file_lines: Vec<Value> = file_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("object").is_some() && v.get("records").is_some())
        .collect();

    // A 200 MB file (plain JSONL, then the same lines gzip-compressed), a fresh binary each,
    // its memory sampled every 10 ms while it reads.
    let target_bytes = opts.n(200_000_000, 20_000_000);
    let line_bytes = datastream_file(0, 1).len() as u64;
    let big_records = target_bytes.div_ceil(line_bytes);
    let big = datastream_file(1000, big_records);
    let mut big_runs = Vec::new();
    for ext in ["jsonl", "jsonl.gz"] {
        let data = if ext == "jsonl" { big.clone().into_bytes() } else { gzip(big.as_bytes()) };
        let size = data.len();
        let t_up = Instant::now();
        let resource = upload(&object_name(1000, ext), data);
        let upload_s = t_up.elapsed().as_secs_f64();
        let s = spawn(opts, &[env[0], ("LOG_LEVEL", "info"), ("EVENT_DEADLINE_SECS", "900")], Capture::Null);
        let at_start = s.memory();
        let pid = s.run.id();
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut max = 0u64;
                while !done.load(Ordering::Relaxed) {
                    max = max.max(memory_of(pid)["rss_kib"].as_u64().unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(10));
                }
                max
            })
        };
        let t0 = Instant::now();
        let (status, body) = s.post(&notification(&resource), Duration::from_secs(1800));
        let seconds = t0.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let max_sampled = sampler.join().unwrap();
        let at_end = s.memory();
        drop(s);
        eprintln!(
            "   {size} bytes {ext}, {big_records} records: {status} in {seconds:.1} s; RSS max sampled {} KiB, \
             VmHWM {} KiB",
            max_sampled, at_end["hwm_kib"]
        );
        big_runs.push(json!({
            "ext": ext, "object_bytes": size, "plain_bytes": big.len(), "records": big_records,
            "upload_seconds": upload_s, "status": status, "answer": body, "seconds": seconds,
            "records_per_s": big_records as f64 / seconds,
            "memory_at_start": at_start, "rss_max_sampled_kib": max_sampled, "memory_at_end": at_end,
        }));
    }
    let version = std::process::Command::new(support::root().join(".venv-gcs/bin/python"))
        .args(["-c", "import importlib.metadata as m; print(m.version('gcp-storage-emulator'))"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({
        "emulator": host,
        "emulator_version": version,
        "table": FILE_CASE.3,
        "profile": FILE_CASE.1,
        "changes_per_run": dag_run_changes().len(),
        "ten_thousand": runs,
        "file_read_log": file_lines,
        "big": big_runs,
        "load_after": loadavg(),
    })
}
