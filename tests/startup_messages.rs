//! What the real binary tells a person at startup and per event when something around it is
//! missing: the BigQuery emulator (configured, not running), a busy port (a second `make
//! local-run`), production credentials (none on this machine). One structured line each, with
//! the cause and the fix.

mod common;

use std::time::Duration;

use common::process::{BIN, Process, free_port};
use serde_json::Value;

/// An empty directory for `HOME` (no gcloud configuration, no Application Default Credentials).
fn empty_home(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("prm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary with a clean environment, `HOME` empty, on 127.0.0.1:`port`.
fn binary(home: &std::path::Path, port: u16) -> Process {
    Process::new(BIN)
        .clean_env(&["PATH"])
        .env("HOME", home)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

fn json_lines<'a>(lines: impl IntoIterator<Item = &'a String>) -> Vec<Value> {
    lines.into_iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[tokio::test]
async fn an_unreachable_emulator_is_reported_once_at_startup_and_events_name_the_cause_once() {
    let home = empty_home("no-emulator");
    let port = free_port();
    // nothing listens on this port (bound and released)
    let emulator = format!("127.0.0.1:{}", free_port());
    let mut run = binary(&home, port).env("BIGQUERY_EMULATOR_HOST", &emulator).spawn();
    // the process starts all the same (the emulator may be started after it)
    run.wait_listening(Duration::from_secs(20)).await;
    let logs = json_lines(run.stderr.peeked());
    let warnings: Vec<&Value> =
        logs.iter().filter(|l| l["message"].as_str().unwrap_or("").contains("BigQuery emulator")).collect();
    assert_eq!(warnings.len(), 1, "one line: {logs:?}");
    let w = warnings[0];
    assert_eq!(w["severity"], "WARNING", "{w}");
    assert_eq!(w["bigquery_emulator_host"], emulator.as_str(), "{w}");
    assert!(w["cause"].as_str().unwrap().starts_with(&format!("connection refused at {emulator}")), "{w}");
    assert!(w["fix"].as_str().unwrap().contains("make local-up"), "{w}");

    // an event whose handlers query BigQuery: failed, retry expected, and its line says the
    // transport error once, with its cause, for all the handlers that hit it
    let url = format!("http://127.0.0.1:{port}");
    let (headers, body) = common::fixtures::event_file("wrangling_complete.json");
    let mut req = reqwest::Client::new().post(format!("{url}/")).body(body);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 503);
    let mut failed = None;
    for _ in 0..50 {
        run.stderr.pull();
        failed = json_lines(run.stderr.peeked()).into_iter().find(|l| l["message"] == "event failed, retry expected");
        if failed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = failed.expect("the event's log line");
    let failures = failed["failures"].as_str().unwrap();
    let lower = failures.to_lowercase();
    assert_eq!(lower.matches("connection refused").count(), 1, "{failures}");
    assert_eq!(failures.matches("error sending request").count(), 1, "{failures}");
    assert!(failures.contains("BigQuery unavailable"), "{failures}");
    assert!(failures.contains(&format!("to http://{emulator}: ")), "where it tried: {failures}");
    // the handlers that hit it are named together, before the one text
    assert!(failures.contains("NewProvidersWranglingHandler, "), "{failures}");
    // the request's path names the payload's tables (tmp_<partner>.…): not logged
    assert!(!failures.contains("abertta"), "{failures}");
}

#[tokio::test]
async fn a_second_instance_on_a_busy_port_fails_before_touching_the_metrics_file() {
    let home = empty_home("busy-port");
    let port = free_port();
    let file = home.join("metrics.jsonl");
    let env = [("METRICS_FILE", file.to_str().unwrap().to_owned()), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1".into())];
    let mut first = binary(&home, port).envs(env.clone()).spawn();
    first.wait_listening(Duration::from_secs(20)).await;
    // one metric line from the first instance (a RUNNING record: only the built-in count)
    let ts = (chrono::Utc::now() - chrono::Duration::seconds(30)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let rec = common::fixtures::record("pipesv2_wrangling", "RUNNING", &ts, serde_json::json!({"partner": "acme"}));
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/"))
        .header("content-type", "application/json")
        .body(common::push::push_body(&rec, "m-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let before = std::fs::read_to_string(&file).unwrap();
    assert!(before.contains("mageai/pipeline_run/count"), "the first instance's copy: {before:?}");

    let out = tokio::task::spawn_blocking(move || binary(&home, port).envs(env).output()).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line, before any other (no banner, no listening): {err}");
    let line: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["severity"], "ERROR");
    assert_eq!(line["message"], "cannot bind");
    let error = line["error"].as_str().unwrap();
    assert!(error.starts_with(&format!("127.0.0.1:{port}: address in use")), "{error}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "the running instance's file is left alone");
    // and the first one still serves
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

/// No credentials anywhere: an empty HOME (no `gcloud auth application-default login`), no
/// GOOGLE_APPLICATION_CREDENTIALS, no key, no metadata server (AWS's is off; Google's name does
/// not resolve off Google Cloud), no `gcloud` on PATH.
#[test]
fn missing_production_credentials_are_one_line_naming_the_options() {
    let home = empty_home("no-credentials");
    let out = Process::new(BIN)
        .clean_env(&[])
        .env("PATH", &home)
        .env("HOME", &home)
        .env("HOST", "127.0.0.1")
        .env("PORT", free_port().to_string())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("METRICS_BACKEND", "gcm")
        .env("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")
        .output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    let line: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["severity"], "ERROR");
    let message = line["message"].as_str().unwrap();
    assert!(message.starts_with("no usable Google credentials"), "{message}");
    assert!(message.contains("BIGQUERY_EMULATOR_HOST"), "and the way to work locally: {message}");
    let error = line["error"].as_str().unwrap();
    for option in [
        "gcloud auth application-default login",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GCP_SA_KEY_JSON",
        "GCP_SA_KEY_SECRET_ARN",
        "GCP_EXTERNAL_ACCOUNT_JSON",
    ] {
        assert!(error.contains(option), "names {option}: {error}");
    }
    // no internal dumps: no Debug structures, no nested library errors
    for dump in ["Error {", "NoAuthMethod", "Box(", "hyper", "os error"] {
        assert!(!error.contains(dump), "{dump}: {error}");
    }
}
