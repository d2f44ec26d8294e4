//! End to end through the real Pub/Sub emulator (`gcloud beta emulators pubsub start`): a topic
//! and a push subscription to the running function, 1,000 published messages (matching,
//! non-matching, malformed and duplicated), then BigQuery taken down and brought back while 30
//! more flow. Every valid event's points must appear exactly once; malformed messages are
//! rejected (acknowledged with ACK_PERMANENT_ERRORS, as for a subscription without dead-letter
//! topic) and counted.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::services::{Group, free_port, spawn_group};
use common::{Bq, TestApp};
use pipeline_run_metrics::config::Delivery;
use pipeline_run_metrics::ingress::http::Options;
use pipeline_run_metrics::warehouse::BigQuery;
use serde_json::{Value, json};

async fn wait_until(what: &str, limit: Duration, app: &TestApp, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < limit,
            "{what}: not after {limit:?}; events by (format, outcome): {:?}",
            app.app.event_counts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_pubsub(dir: &std::path::Path) -> (Group, String) {
    let port = free_port();
    let log = dir.join("pubsub.log");
    let g = spawn_group(
        "gcloud",
        &["beta", "emulators", "pubsub", "start", &format!("--host-port=127.0.0.1:{port}"), "--project=test"],
        &log,
    );
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("Server started") {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "Pub/Sub emulator: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (g, format!("http://127.0.0.1:{port}/v1/projects/test"))
}

fn start_bigquery(port: u16, data_dir: &std::path::Path, log: &std::path::Path) -> Group {
    let venv =
        std::env::var("BQEMU_VENV").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-bqemu").to_string());
    let grpc = free_port();
    let g = spawn_group(
        &format!("{venv}/bin/bqemulator"),
        &[
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            &port.to_string(),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            &grpc.to_string(),
            "--project",
            "test-project",
            "--persistent",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--log-level",
            "warning",
        ],
        log,
    );
    let t0 = Instant::now();
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && reqwest::blocking_get_ok(&format!("http://127.0.0.1:{port}/readyz"));
        if ok {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "bqemulator: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    g
}

mod reqwest {
    /// A blocking readiness probe without reqwest's blocking feature.
    pub fn blocking_get_ok(url: &str) -> bool {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(mut s) = std::net::TcpStream::connect(host) else { return false };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let _ = s.write_all(format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes());
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.1 200")
    }
}

fn wrangling(uuid: &str, status: &str, tables: &(String, String)) -> Value {
    json!({"uuid": uuid, "source_timestamp": "2025-11-05T18:23:31.393Z", "read_method": "postgresql-cdc",
           "object": "public_pipeline_run",
           "source_metadata": {"schema": "public", "table": "pipeline_run", "change_type": "UPDATE", "is_deleted": false},
           "payload": {"id": 1, "pipeline_uuid": "pipesv2_wrangling", "status": status,
                       "variables": {"partner": "abertta", "refined_unprocessable_claims_output_table": tables.0,
                                     "refined_processable_claims_output_table": tables.1}}})
}

async fn publish(http: &::reqwest::Client, base: &str, messages: &[Vec<u8>]) {
    for chunk in messages.chunks(100) {
        let msgs: Vec<Value> =
            chunk.iter().map(|m| json!({"data": base64::engine::general_purpose::STANDARD.encode(m)})).collect();
        let r = http
            .post(format!("{base}/topics/pipeline-runs:publish"))
            .json(&json!({"messages": msgs}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "publish: {}", r.text().await.unwrap_or_default());
    }
}

/// uuid -> number of points with that uuid's marker (the `partner` label carries no uuid, so the
/// records use one `pipeline_run` id per uuid and the count metric's labels... instead, count
/// the points per event through the per-event structure: each valid event emits its points in
/// one sink call, in a fixed order). Here: points by (name, labels) are identical across events,
/// so exactly-once is checked by totals per name.
fn totals(lines: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in lines {
        let p = common::parse_point(l);
        *out.entry(format!(
            "{}{}",
            p.name,
            if p.name == "mageai/pipeline_run/count" {
                format!("/{}", p.labels["pipeline_status"])
            } else {
                String::new()
            }
        ))
        .or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_messages_through_the_pubsub_emulator_exactly_once_with_a_bigquery_outage() {
    // the function's own log lines (failures only) on stderr: they explain any failure below
    pipeline_run_metrics::logging::init(tracing::level_filters::LevelFilter::WARN);
    let dir = std::env::temp_dir().join(format!("e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bq")).unwrap();
    #[cfg(feature = "containers")]
    let container = common::containers::pubsub();
    #[cfg(not(feature = "containers"))]
    let container: Option<String> = None;
    let (_pubsub, ps) = match container {
        Some(url) => (None, url),
        None => {
            let (g, url) = start_pubsub(&dir);
            (Some(g), url)
        }
    };
    let bq_port = free_port();
    let bq_host = format!("127.0.0.1:{bq_port}");
    let mut bigquery = start_bigquery(bq_port, &dir.join("bq"), &dir.join("bq1.log"));

    // data: U = 1000, P = 3000 -> relative 0.25 / 0.75
    let bq = Bq::at(&bq_host);
    let ds = bq.dataset("e2e").await;
    let col: BTreeMap<String, String> = [("vl_pago".to_string(), "FLOAT".to_string())].into_iter().collect();
    bq.table(&ds, "u", &col, &[json!({"vl_pago": 1000.0})]).await;
    bq.table(&ds, "p", &col, &[json!({"vl_pago": 3000.0})]).await;
    let tables = (format!("{ds}.u"), format!("{ds}.p"));

    // the function: real BigQuery client, stdout sink into a buffer, permanent errors acknowledged
    let warehouse = Arc::new(
        BigQuery::emulator(&bq_host, "test-project", Duration::from_secs(5), ::reqwest::Client::new()).await.unwrap(),
    );
    let delivery = Delivery { ack_permanent: true, event_deadline: Duration::from_secs(8), ..Default::default() };
    let options = Options { delivery, ..Default::default() };
    let only = ["PipelineRunHandler", "PreFilteredWranglingHandler", "ProcessableWranglingHandler"];
    let app = TestApp::with_options(Some(&only), None, warehouse, options, None).await;

    let http = ::reqwest::Client::new();
    assert!(http.put(format!("{ps}/topics/pipeline-runs")).send().await.unwrap().status().is_success());
    let sub = json!({"topic": "projects/test/topics/pipeline-runs", "pushConfig": {"pushEndpoint": format!("{}/", app.url)},
                     "ackDeadlineSeconds": 20, "retryPolicy": {"minimumBackoff": "0.1s", "maximumBackoff": "2s"}});
    let r = http.put(format!("{ps}/subscriptions/pipeline-runs-push")).json(&sub).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());

    // ---- phase 1: 600 matching, 200 non-matching, 100 malformed, 100 duplicates of matching
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    for i in 0..600 {
        msgs.push(wrangling(&format!("ok-{i}"), "COMPLETED", &tables).to_string().into_bytes());
    }
    for i in 0..200 {
        msgs.push(wrangling(&format!("running-{i}"), "RUNNING", &tables).to_string().into_bytes());
    }
    for i in 0..100 {
        msgs.push(if i % 2 == 0 {
            format!("not json {i}").into_bytes()
        } else {
            json!({"hello": i}).to_string().into_bytes()
        });
    }
    for i in 0..100 {
        msgs.push(wrangling(&format!("ok-{}", i * 6), "COMPLETED", &tables).to_string().into_bytes());
    }
    // interleave the kinds
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by_key(|i| (i * 7919) % msgs.len());
    let shuffled: Vec<Vec<u8>> = order.into_iter().map(|i| msgs[i].clone()).collect();
    let t0 = Instant::now();
    publish(&http, &ps, &shuffled).await;
    let counts = |app: &TestApp, outcome: &str| -> u64 {
        app.app.event_counts().iter().filter(|((_, o), _)| o == outcome).map(|(_, n)| *n).sum()
    };
    wait_until("phase 1 processed", Duration::from_secs(240), &app, || {
        counts(&app, "ok") >= 800 && counts(&app, "rejected") >= 100 && counts(&app, "duplicate") >= 100
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // anything left would show up now
    let lines = app.metrics.take_lines();
    let t = totals(&lines);
    let want: BTreeMap<String, usize> = [
        ("mageai/pipeline_run/count/COMPLETED", 600),
        ("mageai/pipeline_run/count/RUNNING", 200),
        ("claims/pipeline/filtered_pre/vl_pago/total", 600),
        ("claims/pipeline/filtered_pre/vl_pago/relative", 600),
        ("claims/pipeline/processable/vl_pago/total", 600),
        ("claims/pipeline/processable/vl_pago/relative", 600),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(t, want, "phase 1: every valid event's points exactly once");
    assert_eq!(counts(&app, "rejected"), 100, "malformed messages rejected and counted once each (acknowledged)");
    assert_eq!(counts(&app, "ok"), 800);
    assert!(lines.iter().all(|l| !l.contains("handler_execution_failure")));
    eprintln!("phase 1: 1000 messages in {:?}", t0.elapsed());

    // ---- phase 2: BigQuery goes down while 30 matching events flow, then comes back. (The
    // emulator redelivers NACKed pushes one by one with at least 1 s of backoff each, so a few
    // dozen events keep this phase short.)
    bigquery.stop();
    let phase2: Vec<Vec<u8>> =
        (0..30).map(|i| wrangling(&format!("outage-{i}"), "COMPLETED", &tables).to_string().into_bytes()).collect();
    publish(&http, &ps, &phase2).await;
    // 503s, and Pub/Sub redelivering the NACKed messages while BigQuery is still down: more
    // attempts than messages
    wait_until("503s and redeliveries while BigQuery is down", Duration::from_secs(120), &app, || {
        counts(&app, "transient") >= 45
    })
    .await;
    let transient_during_outage = counts(&app, "transient");
    bigquery = start_bigquery(bq_port, &dir.join("bq"), &dir.join("bq2.log"));
    // Pub/Sub keeps redelivering them; the emulator's timing after NACKs is erratic (from 1 s to
    // minutes; it even strands some: with a trivial receiver, 2 of 30 messages NACKed twice did
    // not come back within minutes). So give redeliveries a moment, then publish the records
    // again, as a publisher retry or a dead-letter replay would: the events not redelivered yet
    // complete, the others are recognised as duplicates.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (ok_before, duplicates_before) = (counts(&app, "ok"), counts(&app, "duplicate"));
    publish(&http, &ps, &phase2).await;
    // every republished message answered: as a duplicate, or processed (a stranded one)
    wait_until("phase 2 complete", Duration::from_secs(120), &app, || {
        counts(&app, "ok") >= 830
            && (counts(&app, "ok") - ok_before) + (counts(&app, "duplicate") - duplicates_before) >= 30
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lines = app.metrics.take_lines();
    let good: Vec<&String> = lines.iter().filter(|l| !l.contains("handler_execution_failure")).collect();
    let t = totals(&good.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let want: BTreeMap<String, usize> = [
        ("mageai/pipeline_run/count/COMPLETED", 30),
        ("claims/pipeline/filtered_pre/vl_pago/total", 30),
        ("claims/pipeline/filtered_pre/vl_pago/relative", 30),
        ("claims/pipeline/processable/vl_pago/total", 30),
        ("claims/pipeline/processable/vl_pago/relative", 30),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // the count handler needs no BigQuery: it may have succeeded in a failed attempt, but a
    // transiently failed event writes only failure gauges, so even its point is written once
    assert_eq!(t, want, "phase 2: nothing lost, nothing doubled");
    let failures = lines.len() - good.len();
    assert!(failures >= 45 && transient_during_outage >= 45, "the outage was observed ({failures} failure gauges)");
    assert_eq!(counts(&app, "ok"), 830);
    let values: HashMap<String, f64> = good.iter().map(|l| common::parse_point(l)).map(|p| (p.name, p.value)).collect();
    assert_eq!(values["claims/pipeline/filtered_pre/vl_pago/relative"], 0.25);
    assert_eq!(values["claims/pipeline/processable/vl_pago/total"], 3000.0);
    drop(bigquery);
    let _ = std::fs::remove_dir_all(&dir);
}
