//! The shared fact stores against real servers that each test starts itself: `redis-server`
//! and the Firestore emulator (scripts/install-test-services.sh installs them).
//!
//! Per backend:
//! * the store's contract, seen from two clients (two instances): a fact is reserved once,
//!   a released fact can be reserved again, dimensions and row states are shared, marks are
//!   given back, every document or key expires (TTL);
//! * two concurrent `update_row`s of one row that both read the row before either writes: no
//!   update is lost (one of them is computed again from the other's state);
//! * the store stopped: the record is answered as a transient failure and nothing is written;
//!   once the store is back, its redelivery writes its facts once;
//! * end to end: two real function processes (the binary, stdout backend) sharing the store
//!   receive every recorded Mage record once each, shuffled and concurrently: together they
//!   print exactly the counters and histogram values that one process gives
//!   (tests/common/mage_expected.rs, shared with tests/lifecycle.rs).

mod common;

use common::mage_expected;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use common::services::{FirestoreEmulator, RedisServer, free_port};
use futures_util::StreamExt;
use pipeline_run_metrics::config::Delivery;
use pipeline_run_metrics::facts::firestore::{Firestore, Settings};
use pipeline_run_metrics::facts::redis::Redis;
use pipeline_run_metrics::facts::{self, ChangeNote, FactStore, Key, Mark, Reservation, RowState};
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, load, names};
use pipeline_run_metrics::ingress::http::Options;
use pipeline_run_metrics::pipeline::LifecycleParts;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

const TTL: Duration = Duration::from_secs(8 * 24 * 3600);
/// Redis answers at once or not at all.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// The emulator makes a transaction wait for another's lock for about 2 s before aborting it:
/// a request must be allowed longer (the production default, 5 s).
const FIRESTORE_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// The stores

async fn redis_client(url: &str, prefix: &str) -> Arc<dyn FactStore> {
    Arc::new(Redis::connect(url, prefix, TTL, REDIS_TIMEOUT).await.expect("connect to redis-server"))
}

fn firestore_settings(host: &str, prefix: &str) -> Settings {
    Settings {
        endpoint: format!("http://{host}"),
        project: "test-project".into(),
        database: "(default)".into(),
        collection_prefix: prefix.into(),
        ttl: TTL,
        timeout: FIRESTORE_TIMEOUT,
        tokens: None,
    }
}

async fn firestore_client(host: &str, prefix: &str) -> Arc<dyn FactStore> {
    let store = Firestore::new(reqwest::Client::new(), firestore_settings(host, prefix));
    store.check().await.expect("the emulator answers");
    Arc::new(store)
}

fn note(position: u128) -> ChangeNote {
    ChangeNote {
        position,
        status: "RUNNING".into(),
        terminal: false,
        start_us: None,
        end_us: None,
        duration_s: None,
        end_from_commit: false,
        records: None,
    }
}

/// The row's state as the store has it (an update that changes nothing).
async fn row_state(store: &dyn FactStore, row: Key) -> RowState {
    let seen = Mutex::new(RowState::default());
    store
        .update_row(row, &|s: &mut RowState| {
            *seen.lock().unwrap() = s.clone();
            Vec::new()
        })
        .await
        .unwrap();
    seen.into_inner().unwrap()
}

/// The contract of a shared store, through two clients `a` and `b` (two instances).
async fn contract(a: Arc<dyn FactStore>, b: Arc<dyn FactStore>) {
    // a fact is reserved once, by whichever instance comes first
    let f = Key::of(&["fact", "one"]);
    assert!(a.reserve(f).await.unwrap(), "absent: reserved");
    assert!(!b.reserve(f).await.unwrap(), "reserved by the other instance");
    assert!(!a.reserve(f).await.unwrap(), "reserved by this instance");
    b.release(f).await.unwrap();
    assert!(a.reserve(f).await.unwrap(), "released by one instance: the redelivery to another writes it");
    b.release(Key::of(&["never", "reserved"])).await.unwrap();

    // 20 concurrent reservations of one fact through both clients: exactly one wins
    let g = Key::of(&["fact", "raced"]);
    let tries = (0..20).map(|i| {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { s.reserve(g).await.unwrap() }
    });
    let won = futures_util::future::join_all(tries).await.into_iter().filter(|w| *w).count();
    assert_eq!(won, 1, "one winner among concurrent reservations");

    // dimensions are shared and can change
    let d = Key::of(&["dimension", "mage", "", "pipeline_run", "7"]);
    assert_eq!(b.get_dimension(d).await.unwrap(), None);
    a.put_dimension(d, "fx_success").await.unwrap();
    assert_eq!(b.get_dimension(d).await.unwrap().as_deref(), Some("fx_success"));
    b.put_dimension(d, "fx_renamed").await.unwrap();
    assert_eq!(a.get_dimension(d).await.unwrap().as_deref(), Some("fx_renamed"));

    // every update of a row sees every earlier one, whichever instance made it
    let row = Key::of(&["row", "sequential"]);
    for i in 0..4u128 {
        let s = if i % 2 == 0 { &a } else { &b };
        let before = std::sync::atomic::AtomicUsize::new(usize::MAX);
        let marks = s
            .update_row(row, &|st: &mut RowState| {
                before.store(st.changes.len(), SeqCst);
                st.changes.push(note(i));
                Vec::new()
            })
            .await
            .unwrap();
        assert!(marks.is_empty());
        assert_eq!(before.load(SeqCst), i as usize, "update {i} saw the {i} before it");
    }
    let positions: Vec<u128> = row_state(b.as_ref(), row).await.changes.iter().map(|c| c.position).collect();
    assert_eq!(positions, [0, 1, 2, 3]);

    // marks added by an update come back, and releasing them (the sink failed) removes them
    let mark = Mark { fact: "finished".into(), note: note(3) };
    let added = a
        .update_row(row, &|st: &mut RowState| {
            st.marks.push(mark.clone());
            vec![mark.clone()]
        })
        .await
        .unwrap();
    assert_eq!(added, vec![mark.clone()]);
    assert_eq!(row_state(b.as_ref(), row).await.marks, vec![mark.clone()]);
    facts::release(b.as_ref(), &Reservation::Marks { row, marks: added }).await.unwrap();
    let after = row_state(a.as_ref(), row).await;
    assert!(after.marks.is_empty() && after.changes.len() == 4, "{after:?}");
}

/// Two `update_row`s of one row from two instances, each holding its first computation until
/// the other has read the row too: both compute from the same state, so one write must lose
/// and be computed again from the other's result. Returns how many times the updates ran.
async fn two_concurrent_updates(a: Arc<dyn FactStore>, b: Arc<dyn FactStore>, row: Key) -> usize {
    let (a_read, wait_a) = mpsc::channel::<()>();
    let (b_read, wait_b) = mpsc::channel::<()>();
    let calls = Arc::new(AtomicUsize::new(0));
    let update = |position: u128, tell: mpsc::Sender<()>, wait: mpsc::Receiver<()>| {
        let (tell, wait, first, calls) = (Mutex::new(tell), Mutex::new(wait), AtomicUsize::new(0), calls.clone());
        move |s: &mut RowState| -> Vec<Mark> {
            calls.fetch_add(1, SeqCst);
            if first.fetch_add(1, SeqCst) == 0 {
                let _ = tell.lock().unwrap().send(());
                // block_in_place: the other update's task may sit in this worker's queue (its
                // LIFO slot is not stolen by other workers); hand them to another thread
                tokio::task::block_in_place(|| {
                    wait.lock().unwrap().recv_timeout(Duration::from_secs(30)).expect("the other update read the row")
                });
            }
            s.changes.push(note(position));
            Vec::new()
        }
    };
    let ua = update(1, a_read, wait_b);
    let ub = update(2, b_read, wait_a);
    let ta = tokio::spawn(async move { a.update_row(row, &ua).await.map(|_| a) });
    let tb = tokio::spawn(async move { b.update_row(row, &ub).await.map(|_| ()) });
    let a = ta.await.unwrap().unwrap();
    tb.await.unwrap().unwrap();
    let mut positions: Vec<u128> = row_state(a.as_ref(), row).await.changes.iter().map(|c| c.position).collect();
    positions.sort();
    assert_eq!(positions, [1, 2], "no update lost");
    calls.load(SeqCst)
}

/// `n` concurrent updates of one row, alternating between the clients: every one is kept.
async fn many_concurrent_updates(a: Arc<dyn FactStore>, b: Arc<dyn FactStore>, row: Key, n: u128) {
    let updates = (0..n).map(|i| {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            s.update_row(row, &|st: &mut RowState| {
                st.changes.push(note(100 + i));
                Vec::new()
            })
            .await
            .unwrap()
        })
    });
    for u in futures_util::future::join_all(updates).await {
        u.unwrap();
    }
    let mut positions: Vec<u128> = row_state(a.as_ref(), row).await.changes.iter().map(|c| c.position).collect();
    positions.sort();
    assert_eq!(positions, (100..100 + n).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_against_redis_server() {
    let server = RedisServer::start();
    let t0 = Instant::now();
    let (a, b) = (redis_client(&server.url(), "prm:").await, redis_client(&server.url(), "prm:").await);
    contract(a.clone(), b.clone()).await;
    let calls = two_concurrent_updates(a.clone(), b.clone(), Key::of(&["row", "contended"])).await;
    assert_eq!(calls, 3, "the losing update was computed once more");
    // one client is one multiplexed connection: concurrent updates through it are safe too
    many_concurrent_updates(a.clone(), a.clone(), Key::of(&["row", "one client"]), 20).await;
    many_concurrent_updates(a.clone(), b.clone(), Key::of(&["row", "two clients"]), 40).await;

    // keys carry the prefix and expire after the TTL
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut raw).await.unwrap();
    assert!(!keys.is_empty());
    for k in &keys {
        assert!(k.starts_with("prm:fact:") || k.starts_with("prm:row:") || k.starts_with("prm:dim:"), "{k}");
        let ttl: i64 = redis::cmd("TTL").arg(k).query_async(&mut raw).await.unwrap();
        assert!((TTL.as_secs() as i64 - 60..=TTL.as_secs() as i64).contains(&ttl), "{k}: TTL {ttl}");
    }
    // another prefix is another store
    let other = redis_client(&server.url(), "other:").await;
    assert!(other.reserve(Key::of(&["fact", "one"])).await.unwrap());
    eprintln!("redis store tests: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firestore_store_against_the_emulator() {
    let emulator = FirestoreEmulator::start();
    let t0 = Instant::now();
    let (a, b) = (firestore_client(&emulator.host(), "prm_").await, firestore_client(&emulator.host(), "prm_").await);
    contract(a.clone(), b.clone()).await;
    let calls = two_concurrent_updates(a.clone(), b.clone(), Key::of(&["row", "contended"])).await;
    assert!(calls >= 3, "a losing transaction was computed again ({calls} computations)");
    many_concurrent_updates(a.clone(), b.clone(), Key::of(&["row", "many"]), 6).await;

    // every document carries expire_at = about now + TTL (for the TTL policy)
    let http = reqwest::Client::new();
    let base = format!("http://{}/v1/projects/test-project/databases/(default)/documents", emulator.host());
    let want = Utc::now() + chrono::Duration::from_std(TTL).unwrap();
    for collection in ["prm_facts", "prm_rows", "prm_dimensions"] {
        let page: Value = http.get(format!("{base}/{collection}")).send().await.unwrap().json().await.unwrap();
        let docs = page["documents"].as_array().unwrap_or_else(|| panic!("{collection}: {page}"));
        assert!(!docs.is_empty(), "{collection}");
        for d in docs {
            let at = d["fields"]["expire_at"]["timestampValue"].as_str().unwrap_or_else(|| panic!("{d}"));
            let at: DateTime<Utc> = at.parse().unwrap();
            assert!((at - want).num_seconds().abs() < 120, "{collection}: expire_at {at}, want about {want}");
        }
    }
    // another prefix is another store
    let other = firestore_client(&emulator.host(), "other_").await;
    assert!(other.reserve(Key::of(&["fact", "one"])).await.unwrap());
    eprintln!("firestore store tests: {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------------------------
// The store stopped: transient, nothing written

fn recording(scenario: &str) -> Vec<Value> {
    let path = format!("{}/events/lifecycle/mage/{scenario}.datastream.jsonl", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The same records as if they had just happened: every timestamp moved by one offset, so that
/// a task row whose parent row is not seen yet is young enough to be retried (not counted with
/// pipeline `unknown`). Differences of times, which are the values, do not change.
fn fresh(records: &[Value]) -> Vec<Value> {
    let commit = |r: &Value| r["source_timestamp"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    let latest = records.iter().map(commit).max().unwrap();
    let offset = chrono::Duration::seconds((Utc::now() - latest).num_seconds() - 1);
    fn shift(v: &mut Value, offset: chrono::Duration) {
        match v {
            Value::String(s) => {
                if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                    let t = t.with_timezone(&Utc) + offset;
                    *s = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| shift(x, offset)),
            Value::Object(o) => o.values_mut().for_each(|x| shift(x, offset)),
            _ => {}
        }
    }
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            shift(&mut r, offset);
            if let Some(ms) = r["sort_keys"][0].as_i64() {
                r["sort_keys"][0] = json!(ms + offset.num_milliseconds());
            }
            r
        })
        .collect()
}

/// Lifecycle metric lines (CDC lag aside) in summary form.
fn summary(lines: &[String]) -> mage_expected::Summary {
    let mut out = mage_expected::Summary::default();
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let name = v["name"].as_str().unwrap();
        if !name.starts_with("pipeline.") || name == names::CDC_LAG {
            continue;
        }
        let labels: BTreeMap<String, String> = serde_json::from_value(v["labels"].clone()).unwrap();
        let key = mage_expected::key(name, &labels);
        let value = v["value"].as_f64().unwrap();
        match v["metric_type"].as_str().unwrap() {
            "counter" => *out.0.entry(key).or_default() += value,
            "histogram" => out.1.entry(key).or_default().push((value * 1e6).round() as i64),
            other => panic!("a lifecycle line of kind {other}: {l}"),
        }
    }
    out.1.values_mut().for_each(|v| v.sort());
    out
}

fn lifecycle_lines(lines: &[String]) -> Vec<String> {
    lines.iter().filter(|l| l.contains("\"name\":\"pipeline.")).cloned().collect()
}

/// The real Router with the Mage profile and `store`, no claim handler, metrics into a buffer.
async fn lifecycle_app(store: Arc<dyn FactStore>) -> common::app::TestApp {
    let profiles = load(None, Some(&["mage".to_string()])).unwrap();
    let lifecycle = Lifecycle::new(profiles, common::METRIC_PROJECT, Duration::from_secs(600));
    let options = Options {
        lifecycle: Some(LifecycleParts { lifecycle: Arc::new(lifecycle), facts: store }),
        delivery: Delivery { event_deadline: Duration::from_secs(20), ..Default::default() },
        ..Default::default()
    };
    let warehouse = Arc::new(common::fakes::warehouse::ScriptedWarehouse::default());
    common::app::TestApp::with_options(Some(&[]), None, warehouse, options, None).await
}

/// POSTs a push body to the app; its status and body (the metric lines stay in the buffer).
async fn post(app: &common::app::TestApp, body: &Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/", app.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// With the store stopped, the run's start record is answered 503 within the store timeout and
/// nothing of it is written; once the store is back, its redelivery writes the start once, and
/// a later redelivery writes it no more.
async fn outage(app: &common::app::TestApp, stop: impl FnOnce(), restart: impl FnOnce()) {
    let records = fresh(&recording("success"));
    // the run row once it is RUNNING with started_at: fact `started`
    let started = records
        .iter()
        .find(|r| r["object"] == "public_pipeline_run" && r["payload"]["status"] == "RUNNING")
        .expect("a RUNNING pipeline_run record");
    let body = push_body(started, "outage-1");
    stop();
    for attempt in 0..3 {
        let t0 = Instant::now();
        let (status, text) = post(app, &body).await;
        assert_eq!(status, 503, "attempt {attempt} with the store down: {text}");
        assert!(t0.elapsed() < Duration::from_secs(10), "answered within the store timeout: {:?}", t0.elapsed());
        let written = lifecycle_lines(&app.metrics.take_lines());
        assert!(written.is_empty(), "nothing written while the store is down: {written:?}");
    }
    restart();
    // a client may need one failed request to notice that its connection is gone: the
    // transport redelivers until the answer is final
    let t0 = Instant::now();
    let mut failed = 0;
    loop {
        let (status, text) = post(app, &body).await;
        if status < 300 {
            break;
        }
        assert_eq!(status, 503, "{text}");
        failed += 1;
        assert!(t0.elapsed() < Duration::from_secs(30), "the store is back but the record still fails ({failed}x)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = summary(&lifecycle_lines(&app.metrics.take_lines()));
    let key = |m: &str, extra: &[(&str, &str)]| {
        let base = [("orchestrator", "mage"), ("partner", "acme"), ("pipeline", "fx_success")];
        let labels: BTreeMap<String, String> =
            base.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        mage_expected::key(m, &labels)
    };
    let want: BTreeMap<String, f64> = [(key(names::RUN_STARTED, &[("run_kind", "schedule")]), 1.0)].into();
    assert_eq!(got.0, want, "the start, once, after the store came back ({failed} redeliveries failed first)");
    // with the values of the one-process replay
    let expected = mage_expected::success();
    for h in [names::RUN_QUEUE_WAIT, names::RUN_SCHEDULE_DELAY] {
        let k = key(h, &[]);
        assert!(expected.1.contains_key(&k), "{k}");
        assert_eq!(got.1.get(&k), expected.1.get(&k), "{k}");
    }
    // a redelivery under a new message id and uuid (not caught by the in-process dedup, like
    // one to another instance) writes no fact again
    let mut copy = started.clone();
    copy["uuid"] = json!("00000000-0000-4000-8000-00000000abcd");
    let (status, text) = post(app, &push_body(&copy, "outage-2")).await;
    assert!(status < 300, "{text}");
    let again = summary(&lifecycle_lines(&app.metrics.take_lines()));
    assert!(again.0.is_empty() && again.1.is_empty(), "no second start: {again:?}");
}

/// A Pub/Sub push of one record (the message id is the record's, as Pub/Sub keeps it across
/// redeliveries).
fn push_body(record: &Value, message_id: &str) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(record).unwrap());
    json!({"message": {"data": data, "messageId": message_id, "publishTime": "2026-11-30T13:30:00Z",
                       "attributes": {}},
           "subscription": "projects/p/subscriptions/mage-cdc"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_transient_and_nothing_written() {
    let server = Arc::new(Mutex::new(RedisServer::start()));
    let url = server.lock().unwrap().url();
    let store = redis_client(&url, "prm:").await;
    let app = lifecycle_app(store).await;
    let (s1, s2) = (server.clone(), server.clone());
    outage(&app, move || s1.lock().unwrap().stop(), move || s2.lock().unwrap().restart()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_down_means_transient_and_nothing_written() {
    let emulator = Arc::new(Mutex::new(FirestoreEmulator::start()));
    let host = emulator.lock().unwrap().host();
    let store = firestore_client(&host, "prm_").await;
    let app = lifecycle_app(store).await;
    let (e1, e2) = (emulator.clone(), emulator.clone());
    outage(&app, move || e1.lock().unwrap().stop(), move || e2.lock().unwrap().restart()).await;
}

// ---------------------------------------------------------------------------------------------
// End to end: two function processes, one shared store

/// A running function process (the binary) whose stdout lines are collected.
struct Function {
    child: Child,
    url: String,
    stdout: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Function {
    async fn start(store_env: &[(&str, String)], log: &std::path::Path) -> Function {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipeline-run-metrics"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            // no claim handler queries BigQuery for these records: nothing listens there
            .env("BIGQUERY_EMULATOR_HOST", format!("127.0.0.1:{}", free_port()))
            .env("METRICS_BACKEND", "stdout")
            .env("PROFILES", "mage")
            .env("LOG_LEVEL", std::env::var("FACT_STORES_LOG_LEVEL").unwrap_or_else(|_| "warn".into()))
            .env("FACT_STORE_TIMEOUT_SECS", "5")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
        for (k, v) in store_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the binary");
        let out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).collect());
        let url = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        while reqwest::get(format!("{url}/healthz")).await.map(|r| r.status() != 200).unwrap_or(true) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the function exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "the function did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Function { child, url, stdout: Some(stdout) }
    }

    /// SIGTERM (its own positive pid), a clean exit, and every line it printed.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id() as i32;
        assert!(pid > 1);
        // SAFETY: kill(2) on the child's own pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let t0 = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stdout.take().unwrap().join().unwrap()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every recorded Mage record, delivered once to each of two functions sharing a store,
/// shuffled, eight at a time; a 503 (a task row whose parent is not seen yet, or the store
/// contended) is delivered again later, as Pub/Sub would. The two processes' metric lines
/// together give exactly the one-process expectations.
async fn two_instances(store_env: Vec<(&str, String)>, what: &str) {
    let t0 = Instant::now();
    let dir = std::env::temp_dir().join(format!("two-instances-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let functions = [
        Function::start(&store_env, &dir.join("function-0.log")).await,
        Function::start(&store_env, &dir.join("function-1.log")).await,
    ];
    let mut records = Vec::new();
    for scenario in ["success", "block_failure", "retry", "cancel"] {
        records.extend(fresh(&recording(scenario)));
    }
    let n = records.len();
    let bodies: Vec<String> =
        records.iter().enumerate().map(|(i, r)| push_body(r, &format!("mage-{i}")).to_string()).collect();
    // every record to both functions, in one shuffled order
    let mut queue: Vec<(usize, usize)> = (0..n).flat_map(|i| [(i, 0), (i, 1)]).collect();
    queue.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    let mut queue: VecDeque<(usize, usize)> = queue.into();
    let http = reqwest::Client::new();
    let (mut deliveries, mut redeliveries, mut rounds) = (0, 0, 0);
    while !queue.is_empty() {
        rounds += 1;
        assert!(rounds <= 60, "still {} deliveries failing after {rounds} rounds", queue.len());
        let round: Vec<(usize, usize)> = queue.drain(..).collect();
        let answers: Vec<((usize, usize), u16)> = futures_util::stream::iter(round)
            .map(|(i, f)| {
                let (http, url, body) = (&http, &functions[f].url, bodies[i].clone());
                async move {
                    let r = http
                        .post(format!("{url}/"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("POST");
                    ((i, f), r.status().as_u16())
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (d, status) in answers {
            deliveries += 1;
            match status {
                200..=299 => {}
                503 => {
                    redeliveries += 1;
                    queue.push_back(d);
                }
                other => panic!("record {} to function {}: HTTP {other}", d.0, d.1),
            }
        }
        // redelivered after a backoff, in another order
        let mut again: Vec<_> = queue.drain(..).collect();
        again.shuffle(&mut rand::rngs::StdRng::seed_from_u64(rounds));
        queue.extend(again);
        if !queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let [f0, f1] = functions;
    let (l0, l1) = (f0.stop(), f1.stop());
    let lines: Vec<String> = l0.iter().chain(l1.iter()).cloned().collect();
    let got = summary(&lines);
    let want = mage_expected::all();
    assert_eq!(got.0, want.0, "{what}: counters of both processes together");
    assert_eq!(got.1, want.1, "{what}: histogram values (µs) of both processes together");
    // both processes wrote facts (the work was really shared), and each processed every record
    // once: one CDC lag observation per record and process
    let facts = |l: &[String]| summary(l).0.values().sum::<f64>();
    assert!(facts(&l0) > 0.0 && facts(&l1) > 0.0, "facts by process: {} and {}", facts(&l0), facts(&l1));
    let lag = lines.iter().filter(|l| l.contains(&format!("\"name\":\"{}\"", names::CDC_LAG))).count();
    assert_eq!(lag, 2 * n, "one CDC lag per record and process");
    eprintln!(
        "{what}: {n} records, {deliveries} deliveries ({redeliveries} answered 503 and delivered again) in {rounds} rounds; facts written by the processes: {} and {}; {:?}",
        facts(&l0),
        facts(&l1),
        t0.elapsed()
    );
    if std::env::var_os("FACT_STORES_LOG_LEVEL").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_count_each_fact_once() {
    let server = RedisServer::start();
    two_instances(vec![("FACT_STORE", "redis".into()), ("REDIS_URL", server.url())], "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_firestore_count_each_fact_once() {
    let emulator = FirestoreEmulator::start();
    two_instances(vec![("FACT_STORE", "firestore".into()), ("FIRESTORE_EMULATOR_HOST", emulator.host())], "firestore")
        .await;
}

/// A store that cannot be reached stops the function at startup, with a message that names the
/// setting, instead of failing every record later.
#[test]
fn an_unreachable_store_stops_the_function_at_startup() {
    let closed = free_port();
    for (store, env) in [
        ("REDIS_URL", [("FACT_STORE", "redis".to_string()), ("REDIS_URL", format!("redis://127.0.0.1:{closed}/0"))]),
        (
            "FIRESTORE_PROJECT",
            [("FACT_STORE", "firestore".to_string()), ("FIRESTORE_EMULATOR_HOST", format!("127.0.0.1:{closed}"))],
        ),
    ] {
        let t0 = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_pipeline-run-metrics"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", free_port().to_string())
            .env("BIGQUERY_EMULATOR_HOST", format!("127.0.0.1:{closed}"))
            .env("FACT_STORE_TIMEOUT_SECS", "2")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{store}: {stderr}");
        let line: Value =
            serde_json::from_str(stderr.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        assert_eq!(line["severity"], "ERROR");
        let message = line["message"].as_str().unwrap();
        assert!(message.starts_with("cannot reach the fact store") && message.contains(store), "{line}");
        assert!(line["error"].as_str().unwrap().contains(&closed.to_string()), "{line}");
        assert!(t0.elapsed() < Duration::from_secs(15), "{store}: {:?}", t0.elapsed());
    }
}
