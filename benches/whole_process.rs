//! Whole-process benchmarks (issue 6, part 2): drives the real release binary over HTTP.
//!
//! Run by `make bench` (scripts/bench.py), which builds `target/release/pipeline-run-metrics`,
//! makes sure the BigQuery emulator runs and is seeded, then calls
//! `cargo bench --bench whole_process -- --out target/bench/whole_process.json [--quick]`.
//! Without `--bench` on the command line (as under `cargo test --all-targets`) it does nothing.
//!
//! Measured, each bounded in count and time, only on 127.0.0.1:
//! * cold start: exec of the binary -> first 204 for a real event, polled in a tight loop;
//! * RSS (`VmRSS`, `VmHWM` of /proc/<pid>/status) after start and after 10,000 events;
//! * events/s and latency percentiles at concurrency 1 and 16, with a load generator of its own
//!   (one thread, one keep-alive HTTP/1.1 connection per concurrent client, raw sockets);
//! * cases: (a) built-in handler only, (b) the seed pre-filtered event and the complete wrangling
//!   event against the emulator, (c) the complete approval event with all its handlers;
//! * BigQuery requests per event (from the binary's own event log line) and sink calls per event
//!   (write syscalls on stdout counted with strace, plus the sinks' call plans for 1..200 series);
//! * event latency against the slowest single query of the event (each query of the approval
//!   event re-run alone against the emulator), and against a warehouse with injected latencies.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/raw_http.rs"]
mod raw_http;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream as StdStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use chrono::{TimeZone, Utc};
use common::fixtures;
use common::process::{Capture, Process, Running, free_port};
use pipeline_run_metrics::decode as envelope;
use pipeline_run_metrics::decode::ChangeEvent;
use pipeline_run_metrics::handlers::Projects;
use pipeline_run_metrics::handlers::all as all_handlers;
use pipeline_run_metrics::handlers::dispatch::Dispatcher;
use pipeline_run_metrics::sink::{JsonLines, MetricSink, Point};
use pipeline_run_metrics::warehouse::WarehouseError;
use pipeline_run_metrics::warehouse::{BigQuery, Param, Row, TableRef, Warehouse};
use raw_http::{find, roundtrip_sync};
use serde_json::{Value, json};

const METRIC_PROJECT: &str = "local-project";
const DATA_PROJECT: &str = "test-project";

struct Opts {
    quick: bool,
    out: PathBuf,
    bin: PathBuf,
    emulator: String,
    work: PathBuf,
}

impl Opts {
    /// `full` normally, `quick` with `--quick` (harness check only).
    fn n(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

/// One measurement step: its results as JSON.
type Step = fn(&Opts) -> Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("whole_process: skipped (run it with `make bench` or `cargo bench --bench whole_process`)");
        return;
    }
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let opts = Opts {
        quick: args.iter().any(|a| a == "--quick"),
        out: value("--out").map(PathBuf::from).unwrap_or_else(|| root().join("target/bench/whole_process.json")),
        bin: value("--bin").map(PathBuf::from).unwrap_or_else(|| root().join("target/release/pipeline-run-metrics")),
        emulator: value("--emulator")
            .or_else(|| std::env::var("BIGQUERY_EMULATOR_HOST").ok())
            .unwrap_or_else(|| "127.0.0.1:9050".into()),
        work: root().join("target/bench"),
    };
    std::fs::create_dir_all(&opts.work).expect("target/bench");
    assert!(opts.bin.exists(), "{} is missing: run `cargo build --release` first", opts.bin.display());

    let mut out = serde_json::Map::new();
    out.insert("quick".into(), opts.quick.into());
    out.insert("binary".into(), opts.bin.display().to_string().into());
    out.insert("binary_bytes".into(), std::fs::metadata(&opts.bin).map(|m| m.len()).unwrap_or(0).into());
    let steps: [(&str, Step); 5] = [
        ("cold_start", cold_start),
        ("builtin_only", builtin_only),
        ("emulator_cases", emulator_cases),
        ("query_latency", query_latency),
        ("sink_calls", sink_calls),
    ];
    for (name, step) in steps {
        let t0 = Instant::now();
        eprintln!("== {name}");
        let v = step(&opts);
        eprintln!("   {name}: {:.1} s", t0.elapsed().as_secs_f64());
        out.insert(name.into(), v);
        // Written after every step, so that a failure late in the run keeps the earlier figures.
        std::fs::write(&opts.out, serde_json::to_string_pretty(&Value::Object(out.clone())).unwrap())
            .expect("write results");
    }
    eprintln!("results in {}", opts.out.display());
}

// ---------------------------------------------------------------------------------------------
// Events and raw HTTP/1.1

struct Event {
    file: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Event {
    fn load(file: &'static str) -> Event {
        let (headers, body) = fixtures::event_file(file);
        Event { file, headers, body }
    }

    /// The complete HTTP/1.1 request (keep-alive), and where the last 12 hex digits of its
    /// Datastream `uuid` are, so that every request can carry a distinct event.
    fn request(&self) -> Request {
        let mut r = format!("POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n", self.body.len());
        for (k, v) in &self.headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(&self.body);
        let uuid_at = find(&bytes, b"\"uuid\"").and_then(|k| {
            let open = k + 6 + find(&bytes[k + 6..], b"\"")? + 1;
            let v = bytes.get(open..open + 36)?;
            let dashes = [8, 13, 18, 23].iter().all(|&i| v[i] == b'-');
            (dashes && bytes.get(open + 36) == Some(&b'"')).then_some(open + 24)
        });
        Request { bytes, uuid_at }
    }

    fn header_map(&self) -> HeaderMap {
        fixtures::header_map(&self.headers)
    }

    fn decode(&self) -> ChangeEvent {
        let delivery = envelope::decode(&self.header_map(), &self.body).expect("delivery");
        delivery
            .into_delivery()
            .expect("records")
            .records
            .into_iter()
            .next()
            .expect("one record")
            .record
            .expect("record")
    }
}

/// A request template.
#[derive(Clone)]
struct Request {
    bytes: Vec<u8>,
    uuid_at: Option<usize>,
}

/// Distinct Datastream uuids for the whole run: the function's de-duplication window answers a
/// repeated uuid from memory, so repeating one event would not measure processing.
static NEXT_UUID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x00ab_0000_0000);

impl Request {
    /// Gives the request a new, never used uuid (no-op for events without one).
    fn renew(&mut self) {
        if let Some(at) = self.uuid_at {
            let id = NEXT_UUID.fetch_add(1, Ordering::Relaxed);
            self.bytes[at..at + 12].copy_from_slice(format!("{id:012x}").as_bytes());
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// The process under test

struct Server {
    run: Running,
    port: u16,
}

/// Starts the binary (optionally under `strace`); the clock starts just before exec.
fn spawn(opts: &Opts, log_level: &str, stdout: Capture, stderr: Capture, strace: Option<&Path>) -> Server {
    spawn_with(opts, log_level, stdout, stderr, strace, &[])
}

fn spawn_with(
    opts: &Opts,
    log_level: &str,
    stdout: Capture,
    stderr: Capture,
    strace: Option<&Path>,
    extra_env: &[(&str, &str)],
) -> Server {
    let port = free_port();
    let process = match strace {
        // strace ignores SIGTERM while it runs a command: the group gets it, so that the binary
        // stops and strace with it (killing strace alone would leave the binary running).
        Some(trace) => Process::new("strace")
            .args(["-f", "-qq", "-e", "trace=write,writev", "-o"])
            .arg(trace)
            .arg(&opts.bin)
            .own_group(),
        None => Process::new(&opts.bin),
    };
    // A clean environment: every setting not named here keeps its default.
    let run = process
        .clean_env(&["PATH"])
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("BIGQUERY_EMULATOR_HOST", &opts.emulator)
        .env("CLOUD_RUN_PROJECT_ID", METRIC_PROJECT)
        .env("BIGQUERY_PROJECT_ID", DATA_PROJECT)
        .env("METRICS_BACKEND", "stdout")
        .env("LOG_LEVEL", log_level)
        .envs(extra_env.iter().copied())
        .stdout(stdout)
        .stderr(stderr)
        .spawn();
    Server { run, port }
}

impl Server {
    /// Sends `req` in a tight loop (new connection after each refusal) until it gets `want`;
    /// returns the time since exec.
    fn first(&mut self, req: &[u8], want: u16, limit: Duration) -> Duration {
        let mut buf = Vec::new();
        loop {
            assert!(self.run.started.elapsed() < limit, "no {want} from the binary within {limit:?}");
            if let Ok(Some(status)) = self.run.child.try_wait() {
                panic!("the binary exited with {status}");
            }
            if let Ok(mut s) = StdStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_nodelay(true);
                if let Ok((status, _)) = roundtrip_sync(&mut s, req, &mut buf) {
                    if status == want {
                        return self.run.started.elapsed();
                    }
                    panic!("expected {want}, got {status}");
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn wait_ready(&mut self) -> Duration {
        self.first(HEALTHZ, 200, Duration::from_secs(30))
    }

    /// `VmRSS` and `VmHWM` in KiB.
    fn memory(&self) -> Value {
        raw_http::memory_of(self.run.id())
    }
}

// ---------------------------------------------------------------------------------------------
// Load generator

/// Sends `total` requests (stops early after `limit`) over `concurrency` keep-alive connections
/// ([`raw_http::load`]), each a copy of `template` with its own identity.
fn load(port: u16, template: &Request, concurrency: usize, total: usize, limit: Duration) -> Value {
    let next: fn(&mut Request) -> &[u8] = |req| {
        req.renew();
        &req.bytes
    };
    let mut r = raw_http::load(port, template, next, concurrency, total, limit);
    r["distinct_events"] = json!(template.uuid_at.is_some());
    r
}

// ---------------------------------------------------------------------------------------------
// Steps

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Exec -> first 204 for `nonmatching_running.json`, and the memory right after it.
fn cold_start(opts: &Opts) -> Value {
    let req = Event::load("nonmatching_running.json").request();
    let runs = opts.n(21, 3);
    let mut ms = Vec::new();
    let mut rss = Vec::new();
    let mut ready_ms = Vec::new();
    for _ in 0..runs {
        let mut s = spawn(opts, "warn", Capture::Null, Capture::Null, None);
        ms.push(s.first(&req.bytes, 204, Duration::from_secs(10)).as_secs_f64() * 1e3);
        rss.push(s.memory()["rss_kib"].as_f64().unwrap());
        drop(s);
        // The same for /healthz (ready to serve), in a separate process.
        let mut s = spawn(opts, "warn", Capture::Null, Capture::Null, None);
        ready_ms.push(s.wait_ready().as_secs_f64() * 1e3);
    }
    let runs_ms = ms.clone();
    let r = json!({
        "runs": runs,
        "event": "nonmatching_running.json",
        "first_204_ms_runs": runs_ms,
        "first_204_ms_median": median(&mut ms),
        "first_204_ms_min": ms.first().copied().unwrap_or(0.0),
        "first_204_ms_max": ms.last().copied().unwrap_or(0.0),
        "healthz_ms_median": median(&mut ready_ms),
        "rss_after_first_event_kib_median": median(&mut rss),
    });
    eprintln!("   cold start median {:.2} ms", r["first_204_ms_median"].as_f64().unwrap());
    r
}

/// Case (a): only the built-in count handler matches; stdout sink into /dev/null.
fn builtin_only(opts: &Opts) -> Value {
    let req = Event::load("nonmatching_running.json").request();
    let limit = Duration::from_secs(60);
    let mut s = spawn(opts, "warn", Capture::Null, Capture::Null, None);
    s.wait_ready();
    let at_start = s.memory();
    let first_10k = load(s.port, &req, 16, 10_000, limit);
    let after_10k = s.memory();
    let c1 = load(s.port, &req, 1, opts.n(30_000, 2_000), limit);
    let c16 = load(s.port, &req, 16, opts.n(150_000, 5_000), limit);
    let at_end = s.memory();
    let total = [&first_10k, &c1, &c16].iter().map(|r| r["events"].as_u64().unwrap()).sum::<u64>();
    drop(s);
    // The same at the default log level (one JSON log line per event on stderr, into /dev/null).
    let mut s = spawn(opts, "info", Capture::Null, Capture::Null, None);
    s.wait_ready();
    load(s.port, &req, 16, 2_000, limit);
    let c1_info = load(s.port, &req, 1, opts.n(20_000, 1_000), limit);
    let c16_info = load(s.port, &req, 16, opts.n(60_000, 3_000), limit);
    drop(s);
    // Memory with the de-duplication window off (it remembers answered events), same event count.
    let no_dedup = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = spawn_with(opts, "warn", Capture::Null, Capture::Null, None, &[("DEDUP_WINDOW_SECS", "0")]);
        s.wait_ready();
        let at_start = s.memory();
        load(s.port, &req, 16, 10_000, limit);
        let after_10k = s.memory();
        let rest = total.saturating_sub(10_000) as usize;
        let r = load(s.port, &req, 16, rest, limit);
        json!({
            "env": "DEDUP_WINDOW_SECS=0",
            "memory_at_start": at_start,
            "memory_after_10000": after_10k,
            "memory_at_end": s.memory(),
            "events_at_end": 10_000 + r["events"].as_u64().unwrap_or(0),
        })
    }))
    .unwrap_or(Value::Null);
    json!({
        "no_dedup": no_dedup,
        "event": "nonmatching_running.json",
        "log_level": "warn",
        "memory_at_start": at_start,
        "memory_after_10000": after_10k,
        "first_10000_c16": first_10k,
        "c1": c1,
        "c16": c16,
        "memory_at_end": at_end,
        "events_at_end": total,
        "info_c1": c1_info,
        "info_c16": c16_info,
    })
}

/// New lines of a log file since `offset`, parsed as JSON.
fn log_lines(path: &Path, offset: &mut usize) -> Vec<Value> {
    let text = std::fs::read(path).unwrap_or_default();
    let new = String::from_utf8_lossy(&text[(*offset).min(text.len())..]).into_owned();
    *offset = text.len();
    new.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Cases (b) and (c) against the emulator, at the default log level so that every event's log
/// line gives its BigQuery requests and sink calls.
fn emulator_cases(opts: &Opts) -> Value {
    let stderr = opts.work.join("emulator_cases.stderr.jsonl");
    let stdout = opts.work.join("emulator_cases.stdout.jsonl");
    let mut s = spawn(opts, "info", Capture::File(stdout.clone()), Capture::File(stderr.clone()), None);
    s.wait_ready();
    let memory_at_start = s.memory();
    let mut offset = 0usize;
    let mut cases = serde_json::Map::new();
    let limit = Duration::from_secs(120);
    for (case, file) in [
        ("b_pre_filtered_seed", "pre_filtered_payload.json"),
        ("b_wrangling_complete", "wrangling_complete.json"),
        ("c_approval_complete", "approval_complete.json"),
    ] {
        let req = Event::load(file).request();
        load(s.port, &req, 1, 2, limit); // warm-up (connections, emulator caches)
        log_lines(&stderr, &mut offset);
        let c1 = load(s.port, &req, 1, opts.n(30, 3), limit);
        let per_event = log_lines(&stderr, &mut offset);
        let c16 = load(s.port, &req, 16, opts.n(96, 16), limit);
        let per_event_c16 = log_lines(&stderr, &mut offset);
        let summary = |lines: &[Value]| -> Value {
            let events: Vec<&Value> = lines.iter().filter(|l| l.get("queries").is_some()).collect();
            let field = |name: &str| -> Vec<u64> {
                let mut v: Vec<u64> = events.iter().filter_map(|l| l[name].as_u64()).collect();
                v.sort();
                v.dedup();
                v
            };
            json!({
                "events_logged": events.len(),
                "status": field("status"),
                "tables_checked": field("tables_checked"),
                "queries": field("queries"),
                "points": field("points"),
                "sink_calls": field("sink_calls"),
                "handlers": events.first().and_then(|l| l["handlers"].as_str()).unwrap_or(""),
                "failures": events.first().and_then(|l| l["failures"].as_str()).unwrap_or(""),
                "message": events.first().and_then(|l| l["message"].as_str()).unwrap_or(""),
            })
        };
        cases.insert(
            case.into(),
            json!({
                "event": file,
                "c1": c1,
                "c16": c16,
                "log_c1": summary(&per_event),
                "log_c16": summary(&per_event_c16),
            }),
        );
    }
    let memory_at_end = s.memory();
    drop(s);
    let stdout_lines = std::fs::read_to_string(&stdout).map(|t| t.lines().count()).unwrap_or(0);
    json!({
        "emulator": opts.emulator,
        "cases": cases,
        "memory_at_start": memory_at_start,
        "memory_at_end": memory_at_end,
        "metric_lines": stdout_lines,
    })
}

/// A call the warehouse received, how long it took, and when it started within the event.
#[derive(Clone)]
enum Call {
    Check(TableRef),
    Query(String, Vec<(String, Param)>),
}

struct Recorder<'a> {
    inner: &'a dyn Warehouse,
    origin: Instant,
    calls: Mutex<Vec<(Call, f64, f64)>>,
}

#[async_trait::async_trait]
impl Warehouse for Recorder<'_> {
    async fn table_exists(&self, table: &TableRef) -> Result<bool, WarehouseError> {
        let t0 = Instant::now();
        let r = self.inner.table_exists(table).await;
        let at = (t0 - self.origin).as_secs_f64() * 1e3;
        self.calls.lock().unwrap().push((Call::Check(table.clone()), at, t0.elapsed().as_secs_f64() * 1e3));
        r
    }
    async fn query(&self, sql: &str, params: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
        let t0 = Instant::now();
        let r = self.inner.query(sql, params).await;
        let at = (t0 - self.origin).as_secs_f64() * 1e3;
        self.calls.lock().unwrap().push((
            Call::Query(sql.to_string(), params.to_vec()),
            at,
            t0.elapsed().as_secs_f64() * 1e3,
        ));
        r
    }
}

/// A warehouse whose calls only wait: checks 5 ms, each distinct query 20-80 ms.
struct Delays;

fn query_delay_ms(sql: &str) -> u64 {
    let h = sql.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    20 + h % 61
}

#[async_trait::async_trait]
impl Warehouse for Delays {
    async fn table_exists(&self, _: &TableRef) -> Result<bool, WarehouseError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(true)
    }
    async fn query(&self, sql: &str, _: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
        tokio::time::sleep(Duration::from_millis(query_delay_ms(sql))).await;
        Ok(Vec::new())
    }
}

/// Case (c): the approval event's latency against the slowest of its queries run alone.
fn query_latency(opts: &Opts) -> Value {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let event = Event::load("approval_complete.json");
    let change = event.decode();
    let dispatcher =
        Dispatcher::new(all_handlers(None).expect("catalogue"), Projects::new(METRIC_PROJECT, DATA_PROJECT));
    let bq = rt
        .block_on(BigQuery::emulator(&opts.emulator, DATA_PROJECT, Duration::from_secs(30), reqwest::Client::new()))
        .expect("emulator client");
    let runs = opts.n(15, 3);

    // The event in-process, every warehouse call recorded (the first run warms up).
    let mut event_ms = Vec::new();
    let mut calls = Vec::new();
    let mut timeline = Vec::new();
    for i in 0..=runs {
        let rec = Recorder { inner: &bq, origin: Instant::now(), calls: Mutex::new(Vec::new()) };
        let t0 = Instant::now();
        let report = rt.block_on(dispatcher.dispatch(&change, &rec));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        assert!(report.failures().next().is_none(), "approval event failed: {:?}", report.results);
        if i > 0 {
            event_ms.push(ms);
        }
        let recorded = rec.calls.into_inner().unwrap();
        if i == runs {
            timeline = recorded
                .iter()
                .map(|(c, at, dur)| {
                    let kind = if matches!(c, Call::Check(_)) { "check" } else { "query" };
                    json!({"kind": kind, "start_ms": at, "ms": dur})
                })
                .collect();
        }
        calls = recorded.into_iter().map(|(c, _, _)| c).collect();
    }

    // Each call alone, sequentially: median of `runs`.
    let mut checks_ms = Vec::new();
    let mut queries_ms = Vec::new();
    for call in &calls {
        let mut t = Vec::new();
        for _ in 0..runs {
            let t0 = Instant::now();
            match call {
                Call::Check(table) => {
                    rt.block_on(bq.table_exists(table)).expect("check");
                }
                Call::Query(sql, params) => {
                    rt.block_on(bq.query(sql, params)).expect("query");
                }
            }
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let m = median(&mut t);
        match call {
            Call::Check(_) => checks_ms.push(m),
            Call::Query(..) => queries_ms.push(m),
        }
    }
    // All the event's queries sent at once straight to the warehouse client (no dispatch): shows
    // whether the warehouse itself runs concurrent queries in parallel.
    let mut together_ms = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        rt.block_on(futures_util::future::join_all(calls.iter().filter_map(|c| match c {
            Call::Query(sql, params) => Some(bq.query(sql, params)),
            Call::Check(_) => None,
        })));
        together_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let slowest_query = max(&queries_ms);
    let slowest_check = max(&checks_ms);
    let event_median = median(&mut event_ms);

    // The same event against injected latencies (no emulator): concurrency of the function alone.
    let mut delayed_ms = Vec::new();
    let mut max_delay = 0u64;
    for _ in 0..opts.n(10, 2) {
        let rec = Recorder { inner: &Delays, origin: Instant::now(), calls: Mutex::new(Vec::new()) };
        let t0 = Instant::now();
        rt.block_on(dispatcher.dispatch(&change, &rec));
        delayed_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        for (c, _, _) in rec.calls.into_inner().unwrap() {
            if let Call::Query(sql, _) = c {
                max_delay = max_delay.max(query_delay_ms(&sql));
            }
        }
    }
    let delayed_median = median(&mut delayed_ms);
    json!({
        "event": event.file,
        "runs": runs,
        "checks": checks_ms.len(),
        "queries": queries_ms.len(),
        "check_alone_ms": checks_ms,
        "query_alone_ms": queries_ms,
        "slowest_query_alone_ms": slowest_query,
        "slowest_check_alone_ms": slowest_check,
        "sum_queries_alone_ms": queries_ms.iter().sum::<f64>(),
        "sum_checks_alone_ms": checks_ms.iter().sum::<f64>(),
        "queries_together_direct_median_ms": median(&mut together_ms),
        "event_inprocess_median_ms": event_median,
        "event_inprocess_over_slowest_query": event_median / slowest_query,
        "event_timeline_last_run": timeline,
        "injected": {
            "check_ms": 5,
            "slowest_query_ms": max_delay,
            "event_median_ms": delayed_median,
            "event_over_slowest_query": delayed_median / max_delay as f64,
            "event_over_check_plus_slowest_query": delayed_median / (max_delay as f64 + 5.0),
        },
    })
}

/// A writer that counts write calls.
#[derive(Clone, Default)]
struct CountingWriter(Arc<AtomicUsize>);

impl Write for CountingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sink calls per event: write syscalls on fd 1 of the real binary (strace), and the sinks'
/// own call counts for 1..200 series.
fn sink_calls(opts: &Opts) -> Value {
    let mut traced = serde_json::Map::new();
    let have_strace = Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success());
    if have_strace {
        for (case, file) in
            [("a", "nonmatching_running.json"), ("b", "wrangling_complete.json"), ("c", "approval_complete.json")]
        {
            let trace = opts.work.join(format!("strace_{case}.txt"));
            let stdout = opts.work.join(format!("strace_{case}.stdout"));
            let events = 5usize;
            let mut s = spawn(opts, "warn", Capture::File(stdout.clone()), Capture::Null, Some(&trace));
            s.wait_ready();
            let req = Event::load(file).request();
            let r = load(s.port, &req, 1, events, Duration::from_secs(60));
            drop(s);
            let text = std::fs::read_to_string(&trace).unwrap_or_default();
            let writes = text.lines().filter(|l| l.contains("write(1,") || l.contains("writev(1,")).count();
            let lines = std::fs::read_to_string(&stdout).map(|t| t.lines().count()).unwrap_or(0);
            traced.insert(
                case.into(),
                json!({
                    "event": file,
                    "events": events,
                    "statuses": r["statuses"],
                    "stdout_writes": writes,
                    "stdout_writes_per_event": writes as f64 / events as f64,
                    "points_per_event": lines as f64 / events as f64,
                }),
            );
        }
    }
    // In-process: one event with N distinct series through the stdout sink (write calls counted)
    // and through the Cloud Monitoring sink's call plan.
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut series = Vec::new();
    for n in [1usize, 9, 50, 100, 200, 201, 400] {
        let time = Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap();
        let points: Vec<Point> = (0..n)
            .map(|i| {
                let labels =
                    BTreeMap::from([("agent_id".into(), format!("agent-{i}")), ("partner".into(), "p".into())]);
                Point::gauge("claims/pipeline/savings/count", i as f64, time, labels, METRIC_PROJECT)
            })
            .collect();
        let counter = CountingWriter::default();
        let sink = JsonLines::new(counter.clone());
        let delivered = rt.block_on(sink.emit(&points));
        assert_eq!(delivered.result(), Ok(()), "emit");
        let gcm_calls = pipeline_run_metrics::sink::gcm::plan_calls(&points).len();
        series.push(json!({
            "series": n,
            "stdout_write_calls": counter.0.load(Ordering::SeqCst),
            "stdout_delivered_calls": delivered.calls,
            "gcm_calls": gcm_calls,
        }));
    }
    json!({"strace": have_strace, "traced": traced, "series": series})
}
