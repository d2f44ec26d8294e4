//! AWS Lambda mode: the real binary, with `AWS_LAMBDA_RUNTIME_API` pointing at an in-process mock
//! of the Lambda Runtime API, serves the same Router through lambda_http (Function URL / HTTP API
//! v2 events, API Gateway REST v1 events, and raw invocations through `pass_through`).

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::fakes::lambda_runtime::LambdaRuntime;
use common::process::{Capture, Process};
use common::push::push_body;
use serde_json::{Value, json};

fn function_url_event(headers: Value, body: &str, base64: bool) -> Value {
    json!({"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "", "headers": headers,
        "requestContext": {"accountId": "anonymous", "apiId": "x", "domainName": "x.lambda-url.us-east-1.on.aws", "domainPrefix": "x",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "CloudPubSub-Google"},
            "requestId": "r-1", "routeKey": "$default", "stage": "$default", "time": "02/Jan/2026:03:04:05 +0000", "timeEpoch": 1767323045000u64},
        "body": body, "isBase64Encoded": base64})
}

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
    let ce_headers = json!({"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "e-1",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/t", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished"});
    let binary = base64::engine::general_purpose::STANDARD.encode(push_body(&rec(), "m-1"));
    let rest_v1 = json!({"resource": "/", "path": "/", "httpMethod": "POST", "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"content-type": ["application/json"]}, "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": null, "stageVariables": null,
        "requestContext": {"accountId": "123456789012", "resourceId": "r", "stage": "prod", "requestId": "q", "identity": {"sourceIp": "203.0.113.1"},
            "resourcePath": "/", "httpMethod": "POST", "apiId": "a", "path": "/prod/"},
        "body": push_body(&rec(), "m-1"), "isBase64Encoded": false});
    let structured = json!({"specversion": "1.0", "id": "raw-1", "source": "s", "type": "t", "data": rec()});
    mock.queue.lock().unwrap().extend([
        (
            "id-1".to_string(),
            function_url_event(json!({"content-type": "application/json"}), &push_body(&rec(), "m-1"), false),
        ),
        ("id-2".to_string(), function_url_event(ce_headers, &binary, true)),
        ("id-3".to_string(), function_url_event(json!({"content-type": "application/json"}), "{\"hello\":1}", false)),
        ("id-4".to_string(), rest_v1),
        ("id-5".to_string(), structured),
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
