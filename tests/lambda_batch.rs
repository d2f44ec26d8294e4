//! Lambda batch triggers end to end: the real binary, with `AWS_LAMBDA_RUNTIME_API` pointing at the
//! fake Lambda Runtime API, is handed the recorded Kinesis, SQS and Amazon MSK events of
//! events/lambda/ (AWS DMS messages of real Mage `pipeline_run` changes, each batch with a DMS
//! control record, a full-load record and one bad item) and answers each with the exact
//! `batchItemFailures` Lambda reads; its stdout holds the metric lines of exactly the changes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fakes::lambda_runtime::LambdaRuntime;
use common::process::{Capture, Process, Running};
use serde_json::{Value, json};

const KINESIS: &str = "kinesis-dms-mage-success.json";
const SQS: &str = "sqs-dms-mage-block-failure.json";
const MSK: &str = "msk-dms-mage-retry.json";

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/lambda").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Kinesis sequence number of item `i` of the Kinesis fixture.
fn sequence_number(i: usize) -> String {
    fixture(KINESIS)["Records"][i]["kinesis"]["sequenceNumber"].as_str().unwrap().to_string()
}

/// The SQS message id of item `i` of the SQS fixture.
fn message_id(i: usize) -> String {
    fixture(SQS)["Records"][i]["messageId"].as_str().unwrap().to_string()
}

fn failures(ids: &[String]) -> Value {
    json!({"batchItemFailures": ids.iter().map(|i| json!({"itemIdentifier": i})).collect::<Vec<_>>()})
}

fn kafka_failures(partition_offsets: &[(&str, i64)]) -> Value {
    json!({"batchItemFailures": partition_offsets.iter()
        .map(|(p, o)| json!({"itemIdentifier": {"partition": p, "offset": o}})).collect::<Vec<_>>()})
}

/// The binary under Lambda, with `env` on top of the Lambda variables.
fn function(api: &str, env: &[(&str, &str)]) -> Running {
    Process::binary()
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "pipeline-run-metrics")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("BIGQUERY_EMULATOR_HOST", common::bigquery::emulator())
        .envs(env.iter().copied())
        .stderr(Capture::Null)
        .spawn()
}

/// Hands out the invocations (request id, payload) one after the other and returns the answers
/// by request id, with every line the function printed.
async fn invoke(env: &[(&str, &str)], invocations: Vec<(&str, Value)>) -> (Vec<(String, String, Value)>, Vec<String>) {
    let mock = LambdaRuntime::default();
    let n = invocations.len();
    mock.queue.lock().unwrap().extend(invocations.into_iter().map(|(id, v)| (id.to_string(), v)));
    let api = mock.start().await;
    let mut run = function(&api, env);
    let t0 = Instant::now();
    while mock.responses.lock().unwrap().len() < n {
        assert!(t0.elapsed() < Duration::from_secs(30), "responses: {:?}", mock.responses.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.stop();
    let lines = run.stdout.rest(Duration::from_secs(10));
    let responses = mock.responses.lock().unwrap().clone();
    (responses, lines)
}

fn answer<'a>(responses: &'a [(String, String, Value)], id: &str) -> &'a Value {
    let (_, kind, v) = responses.iter().find(|(i, _, _)| i == id).unwrap_or_else(|| panic!("no answer to {id}"));
    assert_eq!(kind, "response", "{id}: {v}");
    v
}

/// The `mageai/pipeline_run/count` points printed: (pipeline, status, partner, time).
fn run_counts(lines: &[String]) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["name"] == "mageai/pipeline_run/count")
        .map(|v| {
            let label = |k: &str| v["labels"][k].as_str().unwrap_or("").to_string();
            assert_eq!(v["value"], 1.0, "{v}");
            (
                label("pipeline_uuid"),
                label("pipeline_status"),
                label("partner"),
                v["timestamp"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn count(pipeline: &str, status: &str, time: &str) -> (String, String, String, String) {
    (pipeline.into(), status.into(), "acme".into(), time.replace('Z', "+00:00"))
}

/// The points of one metric printed: (labels as `k=v,...`, value, time), sorted.
fn points(lines: &[String], metric: &str) -> Vec<(String, f64, String)> {
    let mut out: Vec<_> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["name"] == metric)
        .map(|v| {
            let labels = v["labels"].as_object().unwrap();
            let text = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap())).collect::<Vec<_>>().join(",");
            (text, v["value"].as_f64().unwrap(), v["timestamp"].as_str().unwrap().to_string())
        })
        .collect();
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn point(labels: &str, value: f64, time: &str) -> (String, f64, String) {
    (labels.to_string(), value, time.to_string())
}

#[tokio::test]
async fn batches_are_answered_item_by_item() {
    // What Lambda delivers again after the Kinesis answer: the first failed record and every
    // record after it (the bad item, the COMPLETED update, the full-load record).
    let mut redelivery = fixture(KINESIS);
    redelivery["Records"].as_array_mut().unwrap().drain(..3);
    let (responses, lines) = invoke(
        &[],
        vec![
            ("kinesis", fixture(KINESIS)),
            ("kinesis-retry", redelivery),
            ("sqs", fixture(SQS)),
            ("msk", fixture(MSK)),
        ],
    )
    .await;

    // Kinesis: the control record (item 0) and the full-load record (item 5) are done; the bad
    // item 3 (a message cut short) is the first and only failure, and its sequence number is the
    // whole answer.
    assert_eq!(answer(&responses, "kinesis"), &failures(&[sequence_number(3)]));
    // the redelivered records after it were done: answered from the de-duplication window
    assert_eq!(answer(&responses, "kinesis-retry"), &failures(&[sequence_number(3)]));
    // SQS: only the DMS message without table-name (item 4) is delivered again
    assert_eq!(answer(&responses, "sqs"), &failures(&[message_id(4)]));
    // MSK: only the record whose value is not base64 (partition 0, offset 121)
    assert_eq!(answer(&responses, "msk"), &kafka_failures(&[("mage-dms.public.pipeline_run-0", 121)]));

    // One count per change of a run, at its commit time; nothing for the control records, the
    // full-load reads, the bad items or the Kinesis redelivery.
    assert_eq!(
        run_counts(&lines),
        vec![
            count("fx_cancel", "INITIAL", "2026-11-30T13:33:14.139115Z"),
            count("fx_fail", "FAILED", "2026-11-30T13:31:09.471729Z"),
            count("fx_fail", "INITIAL", "2026-11-30T13:30:44.184687Z"),
            count("fx_fail", "RUNNING", "2026-11-30T13:30:49.339298Z"),
            count("fx_retry", "COMPLETED", "2026-11-30T13:32:59.114519Z"),
            count("fx_retry", "FAILED", "2026-11-30T13:31:49.736662Z"),
            count("fx_retry", "FAILED", "2026-11-30T13:32:19.875112Z"),
            count("fx_retry", "INITIAL", "2026-11-30T13:31:25.214136Z"),
            count("fx_retry", "RUNNING", "2026-11-30T13:31:29.555391Z"),
            count("fx_retry", "RUNNING", "2026-11-30T13:32:01.813593Z"),
            count("fx_retry", "RUNNING", "2026-11-30T13:32:31.961410Z"),
            count("fx_success", "COMPLETED", "2026-11-30T13:30:29.268821Z"),
            count("fx_success", "INITIAL", "2026-11-30T13:29:58.334295Z"),
            count("fx_success", "RUNNING", "2026-11-30T13:30:00.022352Z"),
        ],
        "{lines:#?}"
    );
    // The lifecycle profile saw the same runs, as the orchestrator's own view has them
    // (events/lifecycle/mage/*.expected.json): fx_success completed, fx_fail failed, fx_retry
    // failed twice, was retried twice and completed.
    let l = "orchestrator=mage,partner=acme,pipeline=";
    assert_eq!(
        points(&lines, "pipeline.run.finished"),
        vec![
            point(
                &format!("{l}fx_fail,result=failure,run_kind=schedule,status=FAILED"),
                1.0,
                "2026-11-30T13:31:09.471729+00:00"
            ),
            point(
                &format!("{l}fx_retry,result=failure,run_kind=schedule,status=FAILED"),
                1.0,
                "2026-11-30T13:31:49.736662+00:00"
            ),
            point(
                &format!("{l}fx_retry,result=failure,run_kind=schedule,status=FAILED"),
                1.0,
                "2026-11-30T13:32:19.875112+00:00"
            ),
            point(
                &format!("{l}fx_retry,result=success,run_kind=schedule,status=COMPLETED"),
                1.0,
                "2026-11-30T13:32:59.113481+00:00"
            ),
            point(
                &format!("{l}fx_success,result=success,run_kind=schedule,status=COMPLETED"),
                1.0,
                "2026-11-30T13:30:29.266496+00:00"
            ),
        ],
        "{lines:#?}"
    );
    assert_eq!(points(&lines, "pipeline.run.retried").len(), 2, "{lines:#?}");
    assert_eq!(points(&lines, "pipeline.run.started").len(), 3, "{lines:#?}");
    let durations = points(&lines, "pipeline.run.duration");
    assert!(
        durations.contains(&point(
            &format!("{l}fx_success,result=success"),
            29.246066,
            "2026-11-30T13:30:29.266496+00:00"
        )),
        "{durations:?}"
    );
    // every change read 1.5 s after its commit (the recordings' read times)
    let lag = points(&lines, "pipeline.cdc.lag");
    assert_eq!(lag.len(), 14);
    assert!(lag.iter().all(|(labels, v, _)| labels == "orchestrator=mage,table=pipeline_run" && *v == 1.5), "{lag:?}");
}

#[tokio::test]
async fn acknowledged_permanent_failures_are_not_retried() {
    let (responses, lines) = invoke(
        &[("ACK_PERMANENT_ERRORS", "true")],
        vec![("kinesis", fixture(KINESIS)), ("sqs", fixture(SQS)), ("msk", fixture(MSK))],
    )
    .await;
    for id in ["kinesis", "sqs", "msk"] {
        assert_eq!(answer(&responses, id), &json!({"batchItemFailures": []}), "{id}");
    }
    assert_eq!(run_counts(&lines).len(), 14, "{lines:#?}");
}

#[tokio::test]
async fn transient_failures_are_retried_from_the_first_failed_item() {
    // The metric backend cannot be reached: every record that ran fails transiently. The bad
    // items are acknowledged (ACK_PERMANENT_ERRORS), the control and full-load records are done.
    let closed = format!("http://127.0.0.1:{}", common::process::free_port());
    let (responses, lines) = invoke(
        &[
            ("ACK_PERMANENT_ERRORS", "true"),
            ("METRICS_BACKEND", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &closed),
            ("SINK_DEADLINE_SECS", "1"),
        ],
        vec![("kinesis", fixture(KINESIS)), ("sqs", fixture(SQS)), ("msk", fixture(MSK))],
    )
    .await;
    // Kinesis: the INITIAL insert (item 1) is the first failure; Lambda redelivers it and every
    // later item
    assert_eq!(answer(&responses, "kinesis"), &failures(&[sequence_number(1)]));
    // SQS: every change (DMS and Datastream), not the control record, the full load or the bad item
    assert_eq!(answer(&responses, "sqs"), &failures(&[2, 3, 5, 6].map(message_id)));
    // MSK: every change of partition 0 but the bad record (offset 121); nothing of partition 1
    let p0 = "mage-dms.public.pipeline_run-0";
    assert_eq!(answer(&responses, "msk"), &kafka_failures(&[118, 119, 120, 122, 123, 124, 125].map(|o| (p0, o))));
    assert!(run_counts(&lines).is_empty(), "{lines:#?}");
}
