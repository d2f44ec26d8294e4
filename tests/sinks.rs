//! The Cloud Monitoring and OTLP sinks against in-process fakes that enforce the real APIs'
//! rules, including the production credential path (service-account key -> token endpoint).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::fakes::gcm::FakeGcm;
use common::fakes::otlp::FakeCollector;
use common::fakes::token::FakeTokenServer;
use pipeline_run_metrics::error::ErrorClass;
use pipeline_run_metrics::google::credentials::{self, StaticToken, TokenSource};
use pipeline_run_metrics::sink::gcm::{CloudMonitoring, Resource, Retry};
use pipeline_run_metrics::sink::otlp::Otlp;
use pipeline_run_metrics::sink::{MetricSink, Point, Rejection};
use serde_json::json;

fn gauge(name: &str, labels: &[(&str, &str)], time: DateTime<Utc>, value: f64) -> Point {
    Point::gauge(name, value, time, labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), "my-proj")
}

fn fast_retry() -> Retry {
    Retry {
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        deadline: Duration::from_millis(600),
    }
}

fn gcm(fake: &FakeGcm, tokens: Arc<dyn TokenSource>, resource: Resource) -> CloudMonitoring {
    CloudMonitoring::new(reqwest::Client::new(), tokens, &fake.url, resource, fast_retry())
}

fn tok() -> Arc<dyn TokenSource> {
    Arc::new(StaticToken("tok".into()))
}

/// A recent time with whole milliseconds (the API's window is 25 h back).
fn recent(seconds_ago: i64) -> DateTime<Utc> {
    let now = Utc::now() - chrono::Duration::seconds(seconds_ago);
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap()
}

#[tokio::test]
async fn one_call_with_the_exact_body() {
    let fake = FakeGcm::start().await;
    let t = recent(60);
    let pts = vec![
        gauge(
            "claims/pipeline/filtered_pre/vl_pago/total",
            &[("approved", "false"), ("partner", "abertta")],
            t,
            1500.0,
        ),
        gauge(
            "claims/pipeline/filtered_pre/vl_pago/relative",
            &[("approved", "false"), ("partner", "abertta")],
            t,
            0.15789473684210525,
        ),
    ];
    let d = gcm(&fake, tok(), Resource::Global).emit(&pts).await.unwrap();
    assert_eq!(d.calls, 1);
    assert!(d.rejected.is_empty());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v3/projects/my-proj");
    assert_eq!(reqs[0].headers["authorization"], "Bearer tok");
    let end = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let series = |name: &str, value: f64| {
        json!({"metric": {"type": format!("custom.googleapis.com/{name}"), "labels": {"approved": "false", "partner": "abertta"}},
               "resource": {"type": "global", "labels": {"project_id": "my-proj"}},
               "metricKind": "GAUGE", "valueType": "DOUBLE",
               "points": [{"interval": {"endTime": end}, "value": {"doubleValue": value}}]})
    };
    assert_eq!(
        fake.bodies()[0],
        json!({"timeSeries": [series("claims/pipeline/filtered_pre/vl_pago/total", 1500.0),
                               series("claims/pipeline/filtered_pre/vl_pago/relative", 0.15789473684210525)]})
    );
    assert_eq!(fake.written_points(), 2);
}

#[tokio::test]
async fn batches_of_200_and_one_point_per_series_per_call() {
    let fake = FakeGcm::start().await;
    let t = recent(120);
    let mut pts: Vec<Point> = (0..450)
        .map(|i| gauge("claims/glosa/approved/vl_glosa_arvo", &[("agent_id", &format!("a{i}"))], t, i as f64))
        .collect();
    // the same series again, 10 s later: must go in a later call, after the first point
    pts.push(gauge(
        "claims/glosa/approved/vl_glosa_arvo",
        &[("agent_id", "a0")],
        t + chrono::Duration::seconds(10),
        7.0,
    ));
    let d = gcm(&fake, tok(), Resource::Global).emit(&pts).await.unwrap();
    let sizes: Vec<usize> = fake.bodies().iter().map(|b| b["timeSeries"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, vec![200, 200, 50, 1]);
    assert_eq!(d.calls, 4);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    assert_eq!(fake.written_points(), 451, "every point accepted by the fake's rules");
}

#[tokio::test]
async fn a_redelivered_event_is_already_written_not_retried() {
    let fake = FakeGcm::start().await;
    let sink = gcm(&fake, tok(), Resource::Global);
    let t = recent(30);
    let pts = vec![gauge("mageai/pipeline_run/count", &[("pipeline_uuid", "p")], t, 1.0)];
    sink.emit(&pts).await.unwrap();
    let d = sink.emit(&pts).await.unwrap();
    assert_eq!(d.calls, 1, "no retry of a point that is already there");
    assert_eq!(d.rejected, vec![("mageai/pipeline_run/count".to_string(), Rejection::AlreadyWritten)]);
    // a point 2 s after the last one of the series: too frequent, also counted as written
    let soon =
        vec![gauge("mageai/pipeline_run/count", &[("pipeline_uuid", "p")], t + chrono::Duration::seconds(2), 1.0)];
    let d = sink.emit(&soon).await.unwrap();
    assert_eq!(d.rejected, vec![("mageai/pipeline_run/count".to_string(), Rejection::AlreadyWritten)]);
    assert_eq!(fake.written_points(), 1);
}

#[tokio::test]
async fn points_older_than_25_hours_are_refused_and_counted_while_the_rest_is_written() {
    let fake = FakeGcm::start().await;
    let old = Utc::now() - chrono::Duration::hours(26);
    let pts = vec![gauge("a/old", &[], old, 1.0), gauge("a/new", &[], recent(10), 2.0)];
    let d = gcm(&fake, tok(), Resource::Global).emit(&pts).await.unwrap();
    assert_eq!(d.calls, 1);
    assert_eq!(d.rejected, vec![("a/old".to_string(), Rejection::OutOfWindow)]);
    assert_eq!(fake.written_points(), 1);
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let fake = FakeGcm::start().await;
    fake.fail_next(&[503, 429]);
    let d = gcm(&fake, tok(), Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.unwrap();
    assert_eq!(d.calls, 3);
    assert_eq!(fake.written_points(), 1);
}

#[tokio::test]
async fn persistent_unavailability_is_transient_after_the_deadline() {
    let fake = FakeGcm::start().await;
    fake.fail_next(&[503; 50]);
    let e = gcm(&fake, tok(), Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    let calls = fake.requests().len();
    assert!((2..50).contains(&calls), "retried, then gave up within the deadline ({calls} calls)");
}

#[tokio::test]
async fn an_invalid_series_is_permanent_and_names_the_reason() {
    let fake = FakeGcm::start().await;
    let long = "x".repeat(2000);
    let pts = vec![gauge("a/good", &[], recent(5), 1.0), gauge("a/bad", &[("partner", &long)], recent(5), 1.0)];
    let e = gcm(&fake, tok(), Resource::Global).emit(&pts).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("a/bad") && e.message.contains("too long"), "{}", e.message);
    assert_eq!(fake.written_points(), 1, "the valid series of the call was written");
}

#[tokio::test]
async fn generic_task_resource_carries_every_label() {
    let fake = FakeGcm::start().await;
    let task = Resource::GenericTask {
        location: "us-east1".into(),
        namespace: "data".into(),
        job: "metrics".into(),
        task_id: "singleton".into(),
    };
    gcm(&fake, tok(), task).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.unwrap();
    assert_eq!(
        fake.bodies()[0]["timeSeries"][0]["resource"],
        json!({"type": "generic_task", "labels": {"project_id": "my-proj", "location": "us-east1", "namespace": "data", "job": "metrics", "task_id": "singleton"}})
    );
}

#[tokio::test]
async fn production_credentials_from_a_service_account_key() {
    let tokens = FakeTokenServer::start().await;
    let source = credentials::from_env(Some(&tokens.service_account_json())).await.unwrap();
    let fake = FakeGcm::start().await;
    gcm(&fake, source, Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.unwrap();
    assert_eq!(fake.requests()[0].headers["authorization"], "Bearer ya29.fake-token");
    assert_eq!(tokens.grants.lock().unwrap().len(), 1, "one signed JWT grant");
    // unusable keys are refused before any request
    assert!(credentials::from_env(Some("{\"type\": \"service_account\"}")).await.is_err());
    let dead = credentials::from_env(Some(&common::fakes::token::service_account_json("http://127.0.0.1:1/token")))
        .await
        .unwrap();
    assert!(credentials::check(dead.as_ref(), &[credentials::MONITORING_SCOPE]).await.is_err());
}

#[tokio::test]
async fn otlp_sends_one_protobuf_request_with_event_times() {
    let fake = FakeCollector::start().await;
    let t = DateTime::parse_from_rfc3339("2025-11-05T18:23:31.393Z").unwrap().with_timezone(&Utc);
    let sink = Otlp::new(
        reqwest::Client::new(),
        &fake.url,
        vec![("x-api-key".into(), "k1".into())],
        "metrics-fn",
        fast_retry(),
    );
    let pts = vec![
        gauge(
            "claims/pipeline/filtered_pre/vl_pago/total",
            &[("partner", "abertta"), ("approved", "false")],
            t,
            1500.0,
        ),
        gauge("mageai/pipeline_run/count", &[("pipeline_uuid", "p")], t, 1.0),
    ];
    let d = sink.emit(&pts).await.unwrap();
    assert_eq!(d.calls, 1);
    let reqs = fake.requests.lock().unwrap().clone();
    assert_eq!(reqs[0].headers["x-api-key"], "k1");
    let decoded = fake.decoded();
    let rm = &decoded[0].resource_metrics[0];
    let attrs: BTreeMap<String, String> = rm
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), format!("{:?}", kv.value.as_ref().unwrap().value.as_ref().unwrap())))
        .collect();
    assert!(attrs["service.name"].contains("metrics-fn"), "{attrs:?}");
    let metrics = &rm.scope_metrics[0].metrics;
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["claims/pipeline/filtered_pre/vl_pago/total", "mageai/pipeline_run/count"]);
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let Some(Data::Gauge(g)) = &metrics[0].data else { panic!("a gauge") };
    assert_eq!(g.data_points[0].time_unix_nano, 1_762_367_011_393_000_000);
    assert_eq!(g.data_points[0].value, Some(Value::AsDouble(1500.0)));
    let labels: BTreeMap<&str, String> = g.data_points[0]
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), format!("{:?}", kv.value.as_ref().unwrap().value)))
        .collect();
    assert_eq!(labels.len(), 2);
    assert!(labels["partner"].contains("abertta"));
}

#[tokio::test]
async fn otlp_retries_503_and_fails_permanently_on_400() {
    let fake = FakeCollector::start().await;
    let sink = Otlp::new(reqwest::Client::new(), &fake.url, vec![], "svc", fast_retry());
    let pts = vec![gauge("a/b", &[], Utc::now(), 1.0)];
    fake.fail_next.lock().unwrap().extend([503, 502]);
    assert_eq!(sink.emit(&pts).await.unwrap().calls, 3);
    fake.fail_next.lock().unwrap().push_back(400);
    let e = sink.emit(&pts).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    fake.fail_next.lock().unwrap().extend([503; 50]);
    assert_eq!(sink.emit(&pts).await.unwrap_err().class, ErrorClass::Transient);
}
