//! The Cloud Monitoring and OTLP sinks against in-process fakes that enforce the real APIs'
//! rules, including the production credential path (service-account key -> token endpoint).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::fakes::gcm::{FakeGcm, GcmLayout};
use common::fakes::otlp::FakeCollector;
use common::fakes::token::FakeTokenServer;
use pipeline_run_metrics::error::ErrorClass;
use pipeline_run_metrics::google::credentials::{self, StaticToken, TokenSource};
use pipeline_run_metrics::sink::gcm::{CloudMonitoring, Resource, Retry};
use pipeline_run_metrics::sink::otlp::Otlp;
use pipeline_run_metrics::sink::{Delivered, MetricSink, Point, Rejection, SinkError};
use serde_json::json;

/// The sink's report, read as a test expects it.
trait Report {
    /// The report of an emit that wrote (or rejected) every point; panics on a failure.
    fn written(self) -> Delivered;
    /// The failure of an emit that failed; panics when it did not.
    fn failure(self) -> SinkError;
}

impl Report for Delivered {
    fn written(self) -> Delivered {
        assert_eq!(self.result(), Ok(()), "{self:?}");
        assert!(self.unwritten.is_empty(), "{self:?}");
        self
    }
    fn failure(self) -> SinkError {
        assert!(!self.unwritten.is_empty(), "{self:?}");
        self.failed.unwrap_or_else(|| panic!("the emit did not fail"))
    }
}

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
    let d = gcm(&fake, tok(), Resource::Global).emit(&pts).await.written();
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
    let d = gcm(&fake, tok(), Resource::Global).emit(&pts).await.written();
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
    sink.emit(&pts).await.written();
    let d = sink.emit(&pts).await.written();
    assert_eq!(d.calls, 1, "no retry of a point that is already there");
    assert_eq!(d.rejected, vec![("mageai/pipeline_run/count".to_string(), Rejection::AlreadyWritten)]);
    // a point 2 s after the last one of the series: too frequent, also counted as written
    let soon =
        vec![gauge("mageai/pipeline_run/count", &[("pipeline_uuid", "p")], t + chrono::Duration::seconds(2), 1.0)];
    let d = sink.emit(&soon).await.written();
    assert_eq!(d.rejected, vec![("mageai/pipeline_run/count".to_string(), Rejection::AlreadyWritten)]);
    assert_eq!(fake.written_points(), 1);
}

#[tokio::test]
async fn points_older_than_25_hours_are_refused_and_counted_while_the_rest_is_written() {
    let fake = FakeGcm::start().await;
    let old = Utc::now() - chrono::Duration::hours(26);
    let pts = vec![gauge("a/old", &[], old, 1.0), gauge("a/new", &[], recent(10), 2.0)];
    let d = gcm(&fake, tok(), Resource::Global).emit(&pts).await.written();
    assert_eq!(d.calls, 1);
    assert_eq!(d.rejected, vec![("a/old".to_string(), Rejection::OutOfWindow)]);
    assert_eq!(fake.written_points(), 1);
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let fake = FakeGcm::start().await;
    fake.fail_next(&[503, 429]);
    let d = gcm(&fake, tok(), Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.written();
    assert_eq!(d.calls, 3);
    assert_eq!(fake.written_points(), 1);
}

#[tokio::test]
async fn persistent_unavailability_is_transient_after_the_deadline() {
    let fake = FakeGcm::start().await;
    fake.fail_next(&[503; 50]);
    let e = gcm(&fake, tok(), Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.failure();
    assert_eq!(e.class(), ErrorClass::Transient);
    let calls = fake.requests().len();
    assert!((2..50).contains(&calls), "retried, then gave up within the deadline ({calls} calls)");
}

#[tokio::test]
async fn an_invalid_series_is_permanent_and_names_the_reason() {
    let fake = FakeGcm::start().await;
    // A label key with a dot: the API's real text (opentelemetry-operations-go#98). (The
    // wording for a too long label value, which this test used before, is not publicly known.)
    let pts = vec![gauge("a/good", &[], recent(5), 1.0), gauge("a/bad", &[("http.scheme", "https")], recent(5), 1.0)];
    let e = gcm(&fake, tok(), Resource::Global).emit(&pts).await.failure();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.is_refused() && e.status() == Some(400), "{e:?}");
    assert!(
        e.message().contains("a/bad") && e.message().contains("Label key contains invalid characters"),
        "{}",
        e.message()
    );
    assert_eq!(fake.written_points(), 1, "the valid series of the call was written");
}

const LAYOUTS: [GcmLayout; 4] =
    [GcmLayout::ReasonFirst, GcmLayout::IndexFirst, GcmLayout::Example, GcmLayout::ExampleWithResource];

#[tokio::test]
async fn already_written_points_are_acknowledged_in_every_layout() {
    for layout in LAYOUTS {
        let fake = FakeGcm::start().await;
        fake.set_layout(layout);
        let sink = gcm(&fake, tok(), Resource::Global);
        let t = recent(60);
        let first = vec![gauge("m/a", &[("k", "1")], t, 1.0), gauge("m/b", &[], t, 2.0)];
        sink.emit(&first).await.written();
        // a redelivery (same times: sampling period), one series out of order, one new series
        let again = vec![
            gauge("m/a", &[("k", "1")], t, 1.0),
            gauge("m/b", &[], t - chrono::Duration::seconds(30), 2.0),
            gauge("m/c", &[], t, 3.0),
        ];
        let d = sink.emit(&again).await.written();
        assert_eq!(d.calls, 1, "{layout:?}: never retried");
        let mut rejected: Vec<(&str, Rejection)> = d.rejected.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        rejected.sort();
        let want: Vec<(&str, Rejection)> = match layout {
            // the older layouts name only the failed series
            GcmLayout::ReasonFirst | GcmLayout::IndexFirst => {
                vec![("m/a", Rejection::AlreadyWritten), ("m/b", Rejection::AlreadyWritten)]
            }
            // the newer ones name the whole write group (one resource), written series
            // included: counted as the group's reason says
            GcmLayout::Example | GcmLayout::ExampleWithResource => vec![
                ("m/a", Rejection::AlreadyWritten),
                ("m/b", Rejection::AlreadyWritten),
                ("m/c", Rejection::AlreadyWritten),
            ],
        };
        assert_eq!(rejected, want, "{layout:?}");
        assert_eq!(fake.written_points(), 3, "{layout:?}");
    }
}

#[tokio::test]
async fn a_partial_failure_with_status_500_retries_the_group_in_every_layout() {
    for layout in LAYOUTS {
        let fake = FakeGcm::start().await;
        fake.set_layout(layout);
        fake.internal_error_next("custom.googleapis.com/m/a", 1);
        let t = recent(60);
        let d = gcm(&fake, tok(), Resource::Global)
            .emit(&[gauge("m/a", &[], t, 1.0), gauge("m/b", &[], t, 2.0)])
            .await
            .written();
        assert_eq!(d.calls, 2, "{layout:?}: the internal error is retried once");
        assert_eq!(fake.written_points(), 2, "{layout:?}");
        let retried: Vec<usize> = fake.bodies().iter().map(|b| b["timeSeries"].as_array().unwrap().len()).collect();
        match layout {
            GcmLayout::ReasonFirst | GcmLayout::IndexFirst => {
                assert_eq!(retried, [2, 1], "{layout:?}: only the failed series again");
                assert!(d.rejected.is_empty(), "{layout:?}: {:?}", d.rejected);
            }
            GcmLayout::Example | GcmLayout::ExampleWithResource => {
                // the group named both: both are retried, and the one written by the first
                // call comes back as already written; the answer's group again names both, so
                // both are counted so (the newer layouts do not say which series failed)
                assert_eq!(retried, [2, 2], "{layout:?}");
                assert_eq!(
                    d.rejected,
                    vec![
                        ("m/a".to_string(), Rejection::AlreadyWritten),
                        ("m/b".to_string(), Rejection::AlreadyWritten)
                    ],
                    "{layout:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn unauthorized_and_permission_denied_are_never_retried() {
    for status in [401, 403] {
        let fake = FakeGcm::start().await;
        fake.fail_next(&[status, status, status]);
        let t0 = std::time::Instant::now();
        let d = gcm(&fake, tok(), Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await;
        assert_eq!(d.calls, 1, "HTTP {status}");
        let e = d.failure();
        assert!(e.is_unauthorized() && e.status() == Some(status), "{e:?}");
        assert_eq!(e.class(), ErrorClass::Transient, "not the event's fault: redelivered");
        assert!(t0.elapsed() < fast_retry().deadline, "no wait: {:?}", t0.elapsed());
    }
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_wait_past_the_deadline_is_not_made() {
    let fake = FakeGcm::start().await;
    let sink = CloudMonitoring::new(
        reqwest::Client::new(),
        tok(),
        &fake.url,
        Resource::Global,
        Retry { deadline: Duration::from_secs(3), ..fast_retry() },
    );
    fake.fail_next_with_retry_after(503, 1);
    let t0 = std::time::Instant::now();
    let d = sink.emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.written();
    assert_eq!(d.calls, 2);
    assert!(t0.elapsed() >= Duration::from_secs(1), "waited for Retry-After: {:?}", t0.elapsed());
    // Retry-After beyond the deadline: reported at once instead of retried early
    fake.fail_next_with_retry_after(429, 30);
    let t0 = std::time::Instant::now();
    let d = sink.emit(&[gauge("a/b", &[], recent(4), 1.0)]).await;
    assert_eq!(d.calls, 1);
    let e = d.failure();
    assert!(e.is_unavailable() && e.status() == Some(429), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn a_refused_call_does_not_stop_the_events_other_calls() {
    let fake = FakeGcm::start().await;
    // the first call gets an answer the sink cannot classify
    fake.answer_next(
        400,
        json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "One or more TimeSeries could not be written: timeSeries[0]: Metric kind for metric custom.googleapis.com/a/b must be CUMULATIVE, but is GAUGE."}}),
    );
    // two projects: two calls
    let mut other = gauge("a/c", &[], recent(5), 2.0);
    other.project = "other-proj".into();
    let pts = vec![gauge("a/b", &[], recent(5), 1.0), other];
    let d = gcm(&fake, tok(), Resource::Global).emit(&pts).await;
    assert_eq!(d.calls, 2, "every call that can be made is made");
    assert_eq!(fake.written_points(), 1);
    assert_eq!(d.unwritten, vec!["a/b".to_string()]);
    let e = d.failure();
    assert!(e.is_refused() && e.status() == Some(400) && e.message().contains("must be CUMULATIVE"), "{e:?}");
    // a transient failure decides the event's answer over a permanent one
    let fake = FakeGcm::start().await;
    fake.answer_next(400, json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Request was missing field timeSeries."}}));
    fake.fail_next(&[503; 50]);
    let mut other = gauge("a/c", &[], recent(5), 2.0);
    other.project = "other-proj".into();
    let d = gcm(&fake, tok(), Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0), other]).await;
    assert!(d.calls >= 3, "the second call is made and retried: {}", d.calls);
    assert_eq!(d.unwritten.len(), 2);
    assert_eq!(d.failure().class(), ErrorClass::Transient);
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
    gcm(&fake, tok(), task).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.written();
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
    gcm(&fake, source, Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0)]).await.written();
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
async fn token_endpoint_refusals_keep_their_status_and_are_not_retried() {
    let tokens = FakeTokenServer::start().await;
    // a deleted or rotated key: "Invalid JWT Signature." (400 invalid_grant)
    let rotated = credentials::from_env(Some(&tokens.rotated_key_json())).await.unwrap();
    let e = rotated.token(&[credentials::MONITORING_SCOPE]).await.unwrap_err();
    assert!(e.is_refused() && e.status() == Some(400) && e.oauth_error() == Some("invalid_grant"), "{e:?}");
    assert!(e.to_string().contains("Invalid JWT Signature."), "{e}");
    assert_eq!(*tokens.requests.lock().unwrap(), 1, "not retried");
    // a client clock two hours behind: the short-lived-token text
    tokens.set_clock_skew(chrono::Duration::hours(2));
    let source = credentials::from_env(Some(&tokens.service_account_json())).await.unwrap();
    let e = source.token(&[credentials::MONITORING_SCOPE]).await.unwrap_err();
    assert!(e.is_refused() && e.status() == Some(400), "{e:?}");
    assert!(e.to_string().contains("Token must be a short-lived token (60 minutes)"), "{e}");
    assert_eq!(*tokens.requests.lock().unwrap(), 2, "not retried");
    // the sink makes no call without a token, for any of the event's calls
    let fake = FakeGcm::start().await;
    let mut other = gauge("a/c", &[], recent(5), 2.0);
    other.project = "other-proj".into();
    let d = gcm(&fake, source, Resource::Global).emit(&[gauge("a/b", &[], recent(5), 1.0), other]).await;
    assert_eq!(d.calls, 0);
    assert!(fake.requests().is_empty());
    assert_eq!(d.unwritten.len(), 2);
    let e = d.failure();
    assert!(e.is_credentials() && e.status() == Some(400), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(*tokens.requests.lock().unwrap(), 3, "one token request for the whole event");
    // a 503 of the token endpoint is retried
    tokens.set_clock_skew(chrono::Duration::zero());
    tokens.fail_next.lock().unwrap().push_back(503);
    let source = credentials::from_env(Some(&tokens.service_account_json())).await.unwrap();
    assert_eq!(source.token(&[credentials::MONITORING_SCOPE]).await.unwrap(), "ya29.fake-token");
    assert_eq!(*tokens.requests.lock().unwrap(), 5);
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
    let d = sink.emit(&pts).await.written();
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

/// (status the collector answers, calls made, what the failure is). OTLP spec: only 429, 502,
/// 503, 504 are retried.
#[tokio::test]
async fn otlp_failures_follow_the_spec_and_report_the_collectors_status_message() {
    let fake = FakeCollector::start().await;
    let sink = Otlp::new(reqwest::Client::new(), &fake.url, vec![], "svc", fast_retry());
    let pts = vec![gauge("a/b", &[], Utc::now(), 1.0)];
    type Check = fn(&SinkError) -> bool;
    let table: &[(u16, usize, Check, &str)] = &[
        (400, 1, SinkError::is_refused, "unexpected EOF"),
        (401, 1, SinkError::is_unauthorized, ""),
        (403, 1, SinkError::is_unauthorized, ""),
        (404, 1, SinkError::is_refused, ""),
        (408, 1, SinkError::is_refused, ""),
        (500, 1, SinkError::is_refused, "Permanent error"),
        (429, 2, SinkError::is_unavailable, ""),
        (502, 2, SinkError::is_unavailable, ""),
        (503, 2, SinkError::is_unavailable, "data refused due to high memory usage"),
        (504, 2, SinkError::is_unavailable, ""),
    ];
    for &(status, calls, check, text) in table {
        // a retryable status keeps failing until the deadline
        fake.fail_next.lock().unwrap().clear();
        fake.fail_next.lock().unwrap().extend(std::iter::repeat_n(status, if calls == 1 { 1 } else { 50 }));
        let d = sink.emit(&pts).await;
        if calls == 1 {
            assert_eq!(d.calls, 1, "HTTP {status}: not retried");
        } else {
            assert!(d.calls >= calls, "HTTP {status}: retried ({} calls)", d.calls);
        }
        let e = d.failure();
        assert!(check(&e) && e.status() == Some(status), "HTTP {status}: {e:?}");
        assert!(e.message().contains(text), "HTTP {status}: {}", e.message());
    }
    // Retry-After of a 503 is honoured
    fake.fail_next.lock().unwrap().clear();
    let sink = Otlp::new(
        reqwest::Client::new(),
        &fake.url,
        vec![],
        "svc",
        Retry { deadline: Duration::from_secs(3), ..fast_retry() },
    );
    fake.fail_next.lock().unwrap().push_back(503);
    fake.retry_after.lock().unwrap().push_back(1);
    let t0 = std::time::Instant::now();
    assert_eq!(sink.emit(&pts).await.written().calls, 2);
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    // a content type with parameters is accepted, as the collector parses the media type
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/metrics", fake.url))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(
        resp.text().await.unwrap(),
        "415 unsupported media type, supported: [application/json, application/x-protobuf]"
    );
}

#[tokio::test]
async fn otlp_retries_503_and_fails_permanently_on_400() {
    let fake = FakeCollector::start().await;
    let sink = Otlp::new(reqwest::Client::new(), &fake.url, vec![], "svc", fast_retry());
    let pts = vec![gauge("a/b", &[], Utc::now(), 1.0)];
    fake.fail_next.lock().unwrap().extend([503, 502]);
    assert_eq!(sink.emit(&pts).await.written().calls, 3);
    fake.fail_next.lock().unwrap().push_back(400);
    let e = sink.emit(&pts).await.failure();
    assert_eq!(e.class(), ErrorClass::Permanent);
    fake.fail_next.lock().unwrap().extend([503; 50]);
    assert_eq!(sink.emit(&pts).await.failure().class(), ErrorClass::Transient);
}

// ---- counters and histograms ----

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1 as otlp_v1;
use pipeline_run_metrics::sink::aggregate::SECONDS_BOUNDS;
use pipeline_run_metrics::sink::gcm::Settings;
use pipeline_run_metrics::sink::instance::{Clock, Instance};

/// A clock the test moves.
#[derive(Clone)]
struct ManualClock(Arc<std::sync::Mutex<DateTime<Utc>>>);

impl ManualClock {
    fn at(t: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(std::sync::Mutex::new(t)))
    }
    fn clock(&self) -> Clock {
        let now = self.0.clone();
        Arc::new(move || *now.lock().unwrap())
    }
    fn advance(&self, secs: i64) -> DateTime<Utc> {
        let mut now = self.0.lock().unwrap();
        *now += chrono::Duration::seconds(secs);
        *now
    }
}

fn counter(name: &str, labels: &[(&str, &str)], t: DateTime<Utc>) -> Point {
    Point::counter(
        name,
        1.0,
        "{run}",
        t,
        labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        "my-proj",
    )
}

fn histogram(name: &str, labels: &[(&str, &str)], t: DateTime<Utc>, x: f64) -> Point {
    Point::histogram(name, x, "s", t, labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), "my-proj")
}

fn nanos(t: DateTime<Utc>) -> u64 {
    t.timestamp_nanos_opt().unwrap() as u64
}

fn attr(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

/// The export request the test expects, written out field by field (not with the sink's own
/// encoder): one resource for `my-proj` with `metrics`.
fn export(instance: &str, metrics: Vec<otlp_v1::Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![otlp_v1::ResourceMetrics {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![
                    attr("service.name", "metrics-fn"),
                    attr("service.instance.id", instance),
                    attr("gcp.project_id", "my-proj"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![otlp_v1::ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "pipeline-run-metrics".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn finished_sum(points: Vec<(&str, u64, u64, i64)>) -> otlp_v1::Metric {
    otlp_v1::Metric {
        name: "pipeline.run.finished".into(),
        unit: "{run}".into(),
        data: Some(otlp_v1::metric::Data::Sum(otlp_v1::Sum {
            data_points: points
                .into_iter()
                .map(|(pipeline, start, time, n)| otlp_v1::NumberDataPoint {
                    attributes: vec![attr("pipeline", pipeline)],
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    value: Some(otlp_v1::number_data_point::Value::AsInt(n)),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: otlp_v1::AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

/// Upper-inclusive bucket counts (OpenTelemetry) of `xs` over the sink's bounds.
fn otel_buckets(xs: &[f64]) -> Vec<u64> {
    let mut b = vec![0; SECONDS_BOUNDS.len() + 1];
    for x in xs {
        b[SECONDS_BOUNDS.iter().filter(|bound| **bound < *x).count()] += 1;
    }
    b
}

#[tokio::test]
async fn otlp_counters_and_histograms_are_delta_points_of_one_unbroken_sequence_per_series() {
    let fake = FakeCollector::start().await;
    let t0 = DateTime::parse_from_rfc3339("2026-11-30T13:00:00Z").unwrap().with_timezone(&Utc);
    let clock = ManualClock::at(t0 + chrono::Duration::seconds(30));
    let instance = Instance { id: "4f1c".into(), started: t0 };
    let sink = Otlp::new(reqwest::Client::new(), &fake.url, vec![], "metrics-fn", fast_retry())
        .with_instance(&instance, clock.clock());
    let event_time = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").unwrap().with_timezone(&Utc);
    // event 1: two runs of `a` and one of `b` finished, two durations of `a`, a gauge
    let e1 = vec![
        counter("pipeline.run.finished", &[("pipeline", "a")], event_time),
        histogram("pipeline.run.duration", &[("pipeline", "a")], event_time, 29.246066),
        counter("pipeline.run.finished", &[("pipeline", "b")], event_time),
        gauge("mageai/pipeline_run/count", &[("pipeline_uuid", "a")], event_time, 1.0),
        counter("pipeline.run.finished", &[("pipeline", "a")], event_time),
        histogram("pipeline.run.duration", &[("pipeline", "a")], event_time, 0.5),
    ];
    assert_eq!(sink.emit(&e1).await.written().calls, 1);
    let t1 = nanos(t0 + chrono::Duration::seconds(30));
    let want1 = export(
        "4f1c",
        vec![
            finished_sum(vec![("a", nanos(t0), t1, 2), ("b", nanos(t0), t1, 1)]),
            otlp_v1::Metric {
                name: "pipeline.run.duration".into(),
                unit: "s".into(),
                data: Some(otlp_v1::metric::Data::Histogram(otlp_v1::Histogram {
                    data_points: vec![otlp_v1::HistogramDataPoint {
                        attributes: vec![attr("pipeline", "a")],
                        start_time_unix_nano: nanos(t0),
                        time_unix_nano: t1,
                        count: 2,
                        sum: Some(29.746066),
                        bucket_counts: otel_buckets(&[29.246066, 0.5]),
                        explicit_bounds: SECONDS_BOUNDS.to_vec(),
                        min: Some(0.5),
                        max: Some(29.246066),
                        ..Default::default()
                    }],
                    aggregation_temporality: otlp_v1::AggregationTemporality::Delta as i32,
                })),
                ..Default::default()
            },
            otlp_v1::Metric {
                name: "mageai/pipeline_run/count".into(),
                data: Some(otlp_v1::metric::Data::Gauge(otlp_v1::Gauge {
                    data_points: vec![otlp_v1::NumberDataPoint {
                        attributes: vec![attr("pipeline_uuid", "a")],
                        time_unix_nano: nanos(event_time),
                        value: Some(otlp_v1::number_data_point::Value::AsDouble(1.0)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            },
        ],
    );
    use prost::Message;
    let bodies = || fake.requests.lock().unwrap().iter().map(|r| r.body.to_vec()).collect::<Vec<_>>();
    assert_eq!(bodies()[0], want1.encode_to_vec(), "the exact protobuf bytes");
    assert_eq!(fake.decoded()[0], want1);
    // event 2, 10 s later: `a` continues from event 1's time, `c` starts at the process start
    clock.advance(10);
    let e2 = vec![
        counter("pipeline.run.finished", &[("pipeline", "a")], event_time),
        counter("pipeline.run.finished", &[("pipeline", "c")], event_time),
    ];
    sink.emit(&e2).await.written();
    let t2 = nanos(t0 + chrono::Duration::seconds(40));
    let want2 = export("4f1c", vec![finished_sum(vec![("a", t1, t2, 1), ("c", nanos(t0), t2, 1)])]);
    assert_eq!(bodies()[1], want2.encode_to_vec());
    // event 3 fails (the collector stays unavailable): its points are not part of the sequence
    clock.advance(10);
    fake.fail_next.lock().unwrap().extend([503; 50]);
    let e3 = vec![counter("pipeline.run.finished", &[("pipeline", "a")], event_time)];
    assert_eq!(sink.emit(&e3).await.failure().class(), ErrorClass::Transient);
    fake.fail_next.lock().unwrap().clear();
    // its redelivery, later, starts where the last accepted point of `a` ended
    clock.advance(10);
    let sent_before = bodies().len();
    sink.emit(&e3).await.written();
    let t4 = nanos(t0 + chrono::Duration::seconds(60));
    assert_eq!(bodies()[sent_before], export("4f1c", vec![finished_sum(vec![("a", t2, t4, 1)])]).encode_to_vec());
    // a clock that steps back still gives increasing times
    clock.advance(-30);
    sink.emit(&e3).await.written();
    let last = fake.decoded().pop().unwrap();
    let Some(otlp_v1::metric::Data::Sum(sum)) = &last.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!("a sum")
    };
    assert_eq!((sum.data_points[0].start_time_unix_nano, sum.data_points[0].time_unix_nano), (t4, t4 + 1));
}

#[tokio::test]
async fn otlp_points_that_cannot_be_summed_are_refused_and_the_rest_is_sent() {
    let fake = FakeCollector::start().await;
    let sink = Otlp::new(reqwest::Client::new(), &fake.url, vec![], "svc", fast_retry());
    let t = Utc::now();
    let bad = vec![
        Point::counter("pipeline.run.finished", -1.0, "{run}", t, Default::default(), "p"),
        Point::histogram("pipeline.run.duration", f64::NAN, "s", t, Default::default(), "p"),
    ];
    let d = sink.emit(&bad).await.written();
    assert_eq!(d.calls, 0, "nothing left to send");
    assert_eq!(d.rejected.len(), 2);
    let mixed = vec![bad[0].clone(), counter("pipeline.run.started", &[], t)];
    let d = sink.emit(&mixed).await.written();
    assert_eq!((d.calls, d.rejected.len()), (1, 1));
    let names: Vec<String> =
        fake.decoded()[0].resource_metrics[0].scope_metrics[0].metrics.iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, ["pipeline.run.started"]);
}

/// The cumulative settings of the tests: instance `fn-00001-abc-4f1c`, started at `start`,
/// writing at most once a minute.
fn instance_task(start: DateTime<Utc>) -> Settings {
    Settings {
        resource: Resource::GenericTask {
            location: "global".into(),
            namespace: "pipeline-run-metrics".into(),
            job: "fn".into(),
            task_id: "fn-00001-abc-4f1c".into(),
        },
        start,
        interval: Duration::from_secs(60),
    }
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Lower-inclusive bucket counts (Cloud Monitoring) of `xs`, as the API's int64 strings.
fn gcm_buckets(xs: &[f64]) -> Vec<String> {
    let mut b = vec![0u64; SECONDS_BOUNDS.len() + 1];
    for x in xs {
        b[SECONDS_BOUNDS.iter().filter(|bound| **bound <= *x).count()] += 1;
    }
    b.iter().map(u64::to_string).collect()
}

#[tokio::test]
async fn gcm_counters_and_histograms_are_cumulative_series_of_the_instance() {
    let fake = FakeGcm::start().await;
    let start = recent(600);
    let clock = ManualClock::at(start + chrono::Duration::seconds(60));
    let sink = gcm(&fake, tok(), Resource::Global).with_cumulative(instance_task(start)).with_clock(clock.clock());
    // the event time of counters and histograms plays no part (a day-old record still counts)
    let old = Utc::now() - chrono::Duration::hours(30);
    let e1 = vec![
        gauge("mageai/pipeline_run/count", &[("pipeline_uuid", "a")], recent(60), 1.0),
        counter("pipeline.run.finished", &[("pipeline", "a")], old),
        counter("pipeline.run.finished", &[("pipeline", "a")], old),
        counter("pipeline.run.finished", &[("pipeline", "b")], old),
        histogram("pipeline.run.duration", &[("pipeline", "a")], old, 29.246066),
        histogram("pipeline.run.duration", &[("pipeline", "a")], old, 0.5),
    ];
    let d = sink.emit(&e1).await.written();
    assert_eq!(d.calls, 2, "the gauge's call, then the first write of the totals");
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let bodies = fake.bodies();
    assert_eq!(bodies[0]["timeSeries"][0]["metricKind"], "GAUGE", "gauges as before");
    assert_eq!(bodies[0]["timeSeries"][0]["resource"]["type"], "global");
    let task = json!({"type": "generic_task", "labels": {"project_id": "my-proj", "location": "global",
        "namespace": "pipeline-run-metrics", "job": "fn", "task_id": "fn-00001-abc-4f1c"}});
    let interval = |end: DateTime<Utc>| json!({"startTime": rfc(start), "endTime": rfc(end)});
    let t1 = start + chrono::Duration::seconds(60);
    let finished = |pipeline: &str, n: &str, end| {
        json!({"metric": {"type": "custom.googleapis.com/pipeline.run.finished", "labels": {"pipeline": pipeline}},
               "resource": task, "metricKind": "CUMULATIVE", "valueType": "INT64", "unit": "{run}",
               "points": [{"interval": interval(end), "value": {"int64Value": n}}]})
    };
    let duration = |xs: &[f64], end| {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let ssd = xs.iter().map(|x| x * x).sum::<f64>() - xs.iter().sum::<f64>().powi(2) / n;
        json!({"metric": {"type": "custom.googleapis.com/pipeline.run.duration", "labels": {"pipeline": "a"}},
               "resource": task, "metricKind": "CUMULATIVE", "valueType": "DISTRIBUTION", "unit": "s",
               "points": [{"interval": interval(end), "value": {"distributionValue": {
                   "count": xs.len().to_string(), "mean": mean, "sumOfSquaredDeviation": ssd,
                   "bucketOptions": {"explicitBuckets": {"bounds": SECONDS_BOUNDS}},
                   "bucketCounts": gcm_buckets(xs)}}}]})
    };
    assert_eq!(
        bodies[1],
        json!({"timeSeries": [duration(&[29.246066, 0.5], t1), finished("a", "2", t1), finished("b", "1", t1)]})
    );
    assert_eq!(fake.written_points(), 4, "the fake accepts the gauge and the three cumulative series");
    // 10 s later: accumulated, not written (at most one write per interval)
    clock.advance(10);
    let d = sink.emit(&[counter("pipeline.run.finished", &[("pipeline", "a")], old)]).await.written();
    assert_eq!((d.calls, sink.pending()), (0, 1));
    // once the interval has passed, the next event's call writes the totals that changed
    let t3 = clock.advance(51);
    let d = sink.emit(&[]).await.written();
    assert_eq!(d.calls, 1);
    assert_eq!(fake.bodies()[2], json!({"timeSeries": [finished("a", "3", t3)]}), "same start, later end, the total");
    assert_eq!(sink.pending(), 0);
    // at shutdown, what is left is written whatever the interval; a series written less than
    // 5 s ago (the API's sampling period) is dated 5 s after its last point
    let t4 = clock.advance(1);
    let e4 = vec![
        histogram("pipeline.run.duration", &[("pipeline", "a")], old, 7.0),
        counter("pipeline.run.finished", &[("pipeline", "a")], old),
    ];
    assert_eq!(sink.emit(&e4).await.written().calls, 0);
    assert_eq!(sink.pending(), 2);
    let d = sink.flush().await.written();
    assert_eq!(d.calls, 1);
    assert_eq!(
        fake.bodies()[3],
        json!({"timeSeries": [duration(&[29.246066, 0.5, 7.0], t4), finished("a", "4", t3 + chrono::Duration::seconds(5))]})
    );
    assert_eq!(sink.pending(), 0);
    assert_eq!(sink.flush().await.calls, 0, "nothing left");
    assert_eq!(fake.written_points(), 7, "every write accepted");
    // every cumulative point of a series keeps its start and has end > start
    for ts in fake.series_of_kind("CUMULATIVE") {
        let i = &ts["points"][0]["interval"];
        assert_eq!(i["startTime"], rfc(start));
        assert!(i["startTime"].as_str().unwrap() < i["endTime"].as_str().unwrap());
    }
}

#[tokio::test]
async fn gcm_a_failed_write_of_totals_keeps_them_and_a_failed_event_adds_nothing() {
    let fake = FakeGcm::start().await;
    let start = recent(600);
    let clock = ManualClock::at(start + chrono::Duration::seconds(60));
    let sink = gcm(&fake, tok(), Resource::Global).with_cumulative(instance_task(start)).with_clock(clock.clock());
    // the write of the totals fails: the event is not at fault and succeeds
    fake.fail_next(&[503]);
    let d = sink.emit(&[counter("pipeline.run.finished", &[("pipeline", "a")], recent(1))]).await.written();
    assert_eq!((d.calls, sink.pending()), (1, 1), "one attempt inside the request, kept for the next write");
    // the event's gauge cannot be written: the event fails and its increment is not added
    fake.fail_next(&[503; 20]);
    let failed = vec![
        gauge("mageai/pipeline_run/count", &[("pipeline_uuid", "a")], recent(1), 1.0),
        counter("pipeline.run.finished", &[("pipeline", "a")], recent(1)),
    ];
    let e = sink.emit(&failed).await.failure();
    assert!(e.is_transient(), "{e}");
    fake.state.lock().unwrap().fail_next.clear();
    // the next write carries the first increment only (the failed event's comes with its redelivery)
    clock.advance(61);
    let d = sink.emit(&[]).await.written();
    assert_eq!(d.calls, 1);
    let last = fake.bodies().pop().unwrap();
    assert_eq!(last["timeSeries"][0]["points"][0]["value"], json!({"int64Value": "1"}));
    assert_eq!(sink.pending(), 0);
    // a series the API refuses for good is counted as refused, kept, and does not fail the event;
    // in a layout naming failed series one by one, the others of the call are written
    fake.set_layout(GcmLayout::IndexFirst);
    clock.advance(61);
    let bad = Point::counter(
        "pipeline.run.finished",
        1.0,
        "{run}",
        recent(1),
        [("bad-key".to_string(), "x".to_string())].into(),
        "my-proj",
    );
    let d = sink.emit(&[bad.clone(), counter("pipeline.run.started", &[], recent(1))]).await.written();
    assert_eq!(d.rejected, vec![("pipeline.run.finished".to_string(), Rejection::Refused)]);
    assert_eq!(sink.pending(), 1, "the refused series stays; the valid one was written");
    // in the newest layout a group names every series of the resource: all are kept and
    // written again with the next write (a repeated cumulative point doubles nothing)
    fake.set_layout(GcmLayout::ExampleWithResource);
    clock.advance(61);
    let d = sink.emit(&[counter("pipeline.run.started", &[], recent(1))]).await.written();
    assert_eq!(d.rejected.len(), 2, "{:?}", d.rejected);
    assert_eq!(sink.pending(), 2);
    let started: Vec<serde_json::Value> = fake
        .series_of_kind("CUMULATIVE")
        .into_iter()
        .filter(|ts| ts["metric"]["type"] == "custom.googleapis.com/pipeline.run.started")
        .map(|ts| ts["points"][0]["value"].clone())
        .collect();
    assert_eq!(started, vec![json!({"int64Value": "1"}), json!({"int64Value": "2"})]);
}

/// The fake refuses what the API documents as invalid (texts §1.6): a CUMULATIVE point whose
/// start is not before its end, a GAUGE whose start differs from its end, a DISTRIBUTION whose
/// count is not the sum of its buckets, an INT64 series with a double value.
#[tokio::test]
async fn the_fake_refuses_what_the_api_documents_as_invalid() {
    let fake = FakeGcm::start().await;
    let end = rfc(recent(5));
    let earlier = rfc(recent(65));
    let resource = json!({"type": "global", "labels": {"project_id": "my-proj"}});
    let series = |name: &str, kind: &str, value_type: &str, interval: serde_json::Value, value: serde_json::Value| {
        json!({"timeSeries": [{"metric": {"type": format!("custom.googleapis.com/{name}"), "labels": {}}, "resource": resource,
               "metricKind": kind, "valueType": value_type, "points": [{"interval": interval, "value": value}]}]})
    };
    let table = vec![
        (
            series("c1", "CUMULATIVE", "INT64", json!({"startTime": end, "endTime": end}), json!({"int64Value": "1"})),
            "The start time must be before the end time",
        ),
        (
            series("c2", "CUMULATIVE", "INT64", json!({"endTime": end}), json!({"int64Value": "1"})),
            "The start time must be before the end time",
        ),
        (
            series("g1", "GAUGE", "DOUBLE", json!({"startTime": earlier, "endTime": end}), json!({"doubleValue": 1.0})),
            "The start time must be equal to the end time",
        ),
        (
            series(
                "d1",
                "CUMULATIVE",
                "DISTRIBUTION",
                json!({"startTime": earlier, "endTime": end}),
                json!({"distributionValue": {"count": "2", "mean": 1.0, "sumOfSquaredDeviation": 0.0,
                    "bucketOptions": {"explicitBuckets": {"bounds": [1.0]}}, "bucketCounts": ["1", "0"]}}),
            ),
            "count is not the sum of bucketCounts",
        ),
        (
            series(
                "i1",
                "CUMULATIVE",
                "INT64",
                json!({"startTime": earlier, "endTime": end}),
                json!({"doubleValue": 1.0}),
            ),
            "a doubleValue point for a INT64 series",
        ),
        (
            series(
                "v1",
                "CUMULATIVE",
                "INT64",
                json!({"startTime": earlier, "endTime": end}),
                json!({"moneyValue": 1}),
            ),
            "A point has an unrecognized value type.",
        ),
    ];
    let http = reqwest::Client::new();
    for (body, text) in table {
        let resp = http
            .post(format!("{}/v3/projects/my-proj/timeSeries", fake.url))
            .bearer_auth("tok")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert!(answer["error"]["message"].as_str().unwrap().contains(text), "{answer}");
    }
    assert_eq!(fake.written_points(), 0);
}
