//! AWS Lambda mode: the real binary, with `AWS_LAMBDA_RUNTIME_API` pointing at an in-process mock
//! of the Lambda Runtime API, serves the same Router through lambda_http (Function URL / HTTP API
//! v2 events, API Gateway REST v1 events, and raw invocations through `pass_through`; the payloads
//! are the files of tests/fixtures/lambda/).

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::fakes::lambda_runtime::LambdaRuntime;
use common::fixtures::lambda_event;
use common::process::{Capture, Process};
use common::push::push_body;
use serde_json::{Value, json};

#[tokio::test]
async fn the_same_router_serves_lambda_invocations() {
    let mock = LambdaRuntime::default();
    // a distinct record per invocation (the same one would be de-duplicated, rightly)
    let rec = || {
        common::fixtures::record(
            "pipesv2_wrangling",
            "RUNNING",
            "2025-11-05T18:23:31.393Z",
            json!({"partner": "abertta"}),
        )
    };
    // the invocation payloads of tests/fixtures/lambda/, each carrying a fresh record
    let function_url = |body: &str| lambda_event("example-functionurl-request.json", "body", body.into());
    let binary = base64::engine::general_purpose::STANDARD.encode(push_body(&rec(), "m-1"));
    mock.queue.lock().unwrap().extend([
        ("id-1".to_string(), function_url(&push_body(&rec(), "m-1"))),
        ("id-2".to_string(), lambda_event("example-functionurl-request-cloudevent-binary.json", "body", binary.into())),
        ("id-3".to_string(), function_url("{\"hello\":1}")),
        ("id-4".to_string(), lambda_event("example-apigw-request.json", "body", push_body(&rec(), "m-1").into())),
        ("id-5".to_string(), lambda_event("example-pass-through-cloudevent.json", "data", rec())),
    ]);
    let api = mock.start().await;

    let mut run = Process::binary()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "f")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("BIGQUERY_EMULATOR_HOST", common::bigquery::emulator())
        .stderr(Capture::Null)
        .spawn();
    let t0 = Instant::now();
    while mock.responses.lock().unwrap().len() < 5 {
        assert!(t0.elapsed() < Duration::from_secs(20), "responses: {:?}", mock.responses.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.stop();
    let responses = mock.responses.lock().unwrap().clone();
    let by_id = |id: &str| responses.iter().find(|(i, _, _)| i == id).cloned().unwrap();
    for id in ["id-1", "id-2", "id-4"] {
        let (_, kind, v) = by_id(id);
        assert_eq!(kind, "response", "{id}: {v}");
        assert_eq!(v["statusCode"], 204, "{id}: {v}");
    }
    let (_, kind, v) = by_id("id-3");
    assert_eq!(kind, "response");
    assert_eq!(v["statusCode"], 400, "{v}");
    let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "malformed_event");
    // pass_through: a raw (non-HTTP) invocation reaches POST /events; the answer is the raw body
    let (_, kind, _) = by_id("id-5");
    assert_eq!(kind, "response");
    // every accepted invocation counted the run once
    let lines = run.stdout.rest(Duration::from_secs(10));
    let counts = lines.iter().filter(|l| l.contains(r#""name":"mageai/pipeline_run/count""#)).count();
    assert_eq!(counts, 4, "{lines:?}");
}
