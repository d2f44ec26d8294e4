//! The Kinesis batch of events/lambda/ through a real Lambda client: Cargo Lambda (PyPI
//! `cargo-lambda`, installed into .venv-tools by scripts/install-cargo-lambda.sh, which `make
//! test` runs). `cargo lambda watch` is the local Lambda emulator: it builds the function with
//! cargo and serves it the Runtime API; `cargo lambda invoke --data-file` sends the event and
//! prints the function's answer.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::process::{Capture, Process, free_port};
use serde_json::{Value, json};

fn cargo_lambda() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-tools/bin/cargo-lambda");
    assert!(path.exists(), "{} is missing: run scripts/install-cargo-lambda.sh (make test does)", path.display());
    path
}

/// The target directory this test was built in (the binary is `<target>/debug/<name>`), so that
/// `cargo lambda watch` finds the function already built instead of building it anew.
fn target_dir() -> PathBuf {
    Path::new(common::process::BIN).parent().and_then(Path::parent).expect("<target>/debug/<bin>").to_path_buf()
}

#[test]
fn cargo_lambda_invokes_the_kinesis_batch() {
    let port = free_port();
    let manifest = env!("CARGO_MANIFEST_DIR");
    // the function's settings, as `watch` hands them to it
    let settings = format!("BIGQUERY_EMULATOR_HOST={},METRICS_BACKEND=stdout", common::bigquery::emulator());
    let mut watch = Process::new(cargo_lambda())
        .clean_env(&["PATH", "HOME", "CARGO", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN"])
        .env("CARGO_TARGET_DIR", target_dir())
        .args(["lambda", "watch", "--quiet", "--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .args(["--env-var", &settings])
        .stderr(Capture::Null)
        .spawn();
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(watch.child.try_wait().unwrap().is_none(), "cargo lambda watch exited");
        assert!(t0.elapsed() < Duration::from_secs(60), "cargo lambda watch is not listening on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The first invocation waits for `watch` to build and start the function.
    let fixture = Path::new(manifest).join("events/lambda/kinesis-dms-mage-success.json");
    let invoke = Process::new(cargo_lambda())
        .clean_env(&["PATH", "HOME"])
        .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(&fixture)
        .arg("pipeline-run-metrics")
        .output();
    let stdout = String::from_utf8_lossy(&invoke.stdout);
    assert!(invoke.status.success(), "cargo lambda invoke: {stdout}{}", String::from_utf8_lossy(&invoke.stderr));
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    // the bad item (record 3, a message cut short) is the first failure: its sequence number is
    // the answer
    let event: Value = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let bad = &event["Records"][3]["kinesis"]["sequenceNumber"];
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": bad}]}));

    // `watch` passes the function's stdout on: one count per change of the run, nothing for the
    // control record, the full-load read or the bad item
    watch.stop();
    let lines = watch.stdout.rest(Duration::from_secs(10));
    let mut counts: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["name"] == "mageai/pipeline_run/count")
        .map(|v| format!("{} {} {}", v["labels"]["pipeline_uuid"], v["labels"]["pipeline_status"], v["timestamp"]))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            r#""fx_success" "COMPLETED" "2026-11-30T13:30:29.268821+00:00""#,
            r#""fx_success" "INITIAL" "2026-11-30T13:29:58.334295+00:00""#,
            r#""fx_success" "RUNNING" "2026-11-30T13:30:00.022352+00:00""#,
        ],
        "{lines:#?}"
    );
}
