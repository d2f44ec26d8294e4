//! The real binary, as `make local-run` runs it: exact metric lines on stdout, structured logs
//! on stderr, startup errors, graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::process::{BIN, Process, Running, free_port};

/// The binary serving on 127.0.0.1, and its base URL.
struct Served {
    run: Running,
    url: String,
}

/// POSTs a JSON delivery to the running binary.
async fn post_json(url: &str, body: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The binary with a clean environment (`PATH`, `HOME`), on 127.0.0.1, plus `extra`.
fn binary(extra: &[(&str, &str)]) -> Process {
    Process::new(BIN).clean_env(&["PATH", "HOME"]).env("HOST", "127.0.0.1").envs(extra.iter().copied())
}

async fn start() -> Served {
    start_with(&[]).await
}

/// Starts the binary on a free port against the emulator and waits until it listens.
async fn start_with(extra: &[(&str, &str)]) -> Served {
    let port = free_port().to_string();
    let mut run = binary(&[("PORT", port.as_str()), ("BIGQUERY_EMULATOR_HOST", common::bigquery::emulator())])
        .envs(extra.iter().copied())
        .spawn();
    let listening = run.wait_listening(Duration::from_secs(20)).await;
    assert_eq!(listening["address"], format!("127.0.0.1:{port}"), "{listening}");
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(reqwest::get(format!("{url}/healthz")).await.unwrap().status(), 200, "ready once listening");
    Served { run, url }
}

#[tokio::test]
async fn complete_wrangling_example_prints_exact_metric_lines() {
    common::fixtures::seed();
    let mut served = start().await;
    let (headers, body) = common::fixtures::event_file("wrangling_complete.json");
    let mut req = reqwest::Client::new().post(format!("{}/", served.url)).body(body);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let got = served.run.stdout.collect(9);
    let ts = r#""timestamp":"2025-11-05T18:23:31.393000+00:00""#;
    let head = r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"local-project","#;
    let wl = r#""labels":{"approved":"false","partner":"abertta"}"#;
    let line = |name: &str, value: &str| format!(r#"{head}"name":"{name}","value":{value},{wl},{ts}}}"#);
    let want = vec![
        format!(
            r#"{head}"name":"mageai/pipeline_run/count","value":1.0,"labels":{{"partner":"abertta","pipeline_status":"COMPLETED","pipeline_uuid":"pipesv2_wrangling"}},{ts}}}"#
        ),
        line("claims/pipeline/providers/new_pct_last_3_mo", "0.6"),
        line("claims/pipeline/beneficiaries/new_pct_last_3_mo", "0.6666666666666666"),
        line("claims/pipeline/providers/volume_ratio_last_1_mo", "3.0"),
        line("claims/pipeline/beneficiaries/volume_ratio_last_1_mo", "3.0"),
        line("claims/pipeline/filtered_pre/vl_pago/total", "1500.0"),
        line("claims/pipeline/filtered_pre/vl_pago/relative", "0.15789473684210525"),
        line("claims/pipeline/processable/vl_pago/total", "8000.0"),
        line("claims/pipeline/processable/vl_pago/relative", "0.8421052631578947"),
    ];
    assert_eq!(got, want);
    // one structured log line for the event, with ids but without payload variables
    let logs = served.run.stderr.collect(2);
    let event_line = logs.iter().find(|l| l.contains("event processed")).unwrap_or_else(|| panic!("{logs:?}"));
    let v: serde_json::Value = serde_json::from_str(event_line).unwrap();
    assert_eq!(v["severity"], "INFO");
    assert_eq!(v["status"], 204);
    assert_eq!(v["ce_id"], "local-wrangling-complete");
    assert_eq!(v["datastream_uuid"], "b2000000-0000-4000-8000-000000000001");
    assert_eq!(v["pipeline_uuid"], "pipesv2_wrangling");
    assert_eq!(v["queries"], 2, "claims_paid.sql and claims_entities.sql, each shared by its families");
    for secret in ["abertta", "tmp_abertta", "gcs_input_csv", "variables"] {
        assert!(!event_line.contains(secret), "log line leaks {secret}: {event_line}");
    }
}

#[tokio::test]
async fn sigterm_stops_the_process_cleanly() {
    let mut served = start().await;
    served.run.sigterm();
    served.run.assert_clean_exit_within(Duration::from_secs(10));
}

fn startup_failure(env: &[(&str, &str)]) -> (i32, String) {
    let out = binary(env).output();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn invalid_configuration_fails_at_startup_naming_the_variable() {
    let (code, err) = startup_failure(&[("PORT", "eighty"), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(err.lines().next().unwrap()).unwrap();
    assert_eq!(v["severity"], "ERROR");
    assert!(v["error"].as_str().unwrap().contains("PORT=\"eighty\""), "{err}");
}

#[test]
fn invalid_handler_catalogue_fails_at_startup_naming_file_and_line() {
    let dir = std::env::temp_dir().join(format!("bad-handlers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("broken.sql"), "SELECT 1 AS v FROM {{t}} WHERE x = @undeclared").unwrap();
    std::fs::write(
        dir.join("broken.toml"),
        "sql = \"broken.sql\"\n[match]\nstatus = \"COMPLETED\"\n[[inputs]]\nname = \"t\"\ntype = \"table\"\n\
         [[metrics]]\nname = \"x/y\"\nvalue = \"v\"\n[[handler]]\nname = \"Broken\"\npipeline_uuid = \"p\"\n",
    )
    .unwrap();
    let (code, err) =
        startup_failure(&[("HANDLERS_DIR", dir.to_str().unwrap()), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")]);
    assert_eq!(code, 2, "{err}");
    let want = format!("{}:1: undeclared SQL parameter @undeclared", dir.join("broken.sql").display());
    assert!(err.contains(&want), "{err}");
    // and --check accepts the built-in catalogue (in local mode: outside it the configuration
    // also needs ALLOWED_DATASETS)
    let out = Process::new(BIN).arg("--check").env("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1").output();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A recent time (whole milliseconds), so that Cloud Monitoring's 25-hour window accepts it.
fn recent_ts() -> String {
    let t = chrono::Utc::now() - chrono::Duration::seconds(30);
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A Pub/Sub push of a `pipeline_run` RUNNING record (only the built-in count matches: no
/// BigQuery work) at time `ts`.
fn running_push(ts: &str, message_id: &str) -> String {
    let rec = common::fixtures::record("pipesv2_wrangling", "RUNNING", ts, serde_json::json!({"partner": "abertta"}));
    common::push::push_body(&rec, message_id)
}

fn recent_running_push() -> (String, String) {
    let ts = recent_ts();
    (running_push(&ts, "m-1"), ts)
}

#[tokio::test]
async fn cloud_monitoring_backend_end_to_end_with_service_account_credentials() {
    let tokens = common::fakes::token::FakeTokenServer::start().await;
    let gcm = common::fakes::gcm::FakeGcm::start().await;
    let key = tokens.service_account_json();
    // DEDUP_WINDOW_SECS=0: every redelivery reaches the sink, as when it lands on another instance
    let mut served = start_with(&[
        ("METRICS_BACKEND", "gcm"),
        ("GCM_ENDPOINT", &gcm.url),
        ("GCP_SA_KEY_JSON", &key),
        ("CLOUD_RUN_PROJECT_ID", "my-proj"),
        ("DEDUP_WINDOW_SECS", "0"),
        ("SELF_METRICS", "false"),
    ])
    .await;
    let (body, ts) = recent_running_push();
    let resp = post_json(&served.url, body).await;
    assert_eq!(resp.status(), 204);
    let reqs = gcm.requests();
    assert_eq!(reqs.len(), 1, "one call for the event");
    assert_eq!(reqs[0].path, "/v3/projects/my-proj");
    assert_eq!(reqs[0].headers["authorization"], "Bearer ya29.fake-token");
    let sent: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    let series = &sent["timeSeries"][0];
    assert_eq!(series["metric"]["type"], "custom.googleapis.com/mageai/pipeline_run/count");
    assert_eq!(
        series["metric"]["labels"],
        serde_json::json!({"partner": "abertta", "pipeline_status": "RUNNING", "pipeline_uuid": "pipesv2_wrangling"})
    );
    assert_eq!(series["resource"], serde_json::json!({"type": "global", "labels": {"project_id": "my-proj"}}));
    let end =
        chrono::DateTime::parse_from_rfc3339(series["points"][0]["interval"]["endTime"].as_str().unwrap()).unwrap();
    assert_eq!(end, chrono::DateTime::parse_from_rfc3339(&ts).unwrap());
    // a redelivery of the same event: the point is already there; acknowledged, not retried
    let resp = post_json(&served.url, running_push(&ts, "m-2")).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(gcm.requests().len(), 2, "one call, no retry loop");
    assert_eq!(gcm.written_points(), 1);
    // stdout carries no metric lines with this backend
    assert!(served.run.stdout.try_next().is_none());
}

#[tokio::test]
async fn otlp_backend_end_to_end() {
    let collector = common::fakes::otlp::FakeCollector::start().await;
    let served = start_with(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url)]).await;
    let (body, _) = recent_running_push();
    let resp = post_json(&served.url, body).await;
    assert_eq!(resp.status(), 204);
    let decoded = collector.decoded();
    assert_eq!(decoded.len(), 1, "sent before the answer");
    let names: Vec<&str> =
        decoded[0].resource_metrics[0].scope_metrics[0].metrics.iter().map(|m| m.name.as_str()).collect();
    // the event's point, then the function's own metrics (on by default with a production backend)
    assert_eq!(
        names,
        ["mageai/pipeline_run/count", "pipeline_run_metrics/events", "pipeline_run_metrics/handler_duration_seconds"]
    );
}

#[test]
fn a_production_backend_without_usable_credentials_does_not_start() {
    let dead = common::fakes::token::service_account_json("http://127.0.0.1:1/token");
    for env in [
        vec![("METRICS_BACKEND", "gcm"), ("GCP_SA_KEY_JSON", dead.as_str()), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")],
        vec![("METRICS_BACKEND", "gcm"), ("GCP_SA_KEY_JSON", "not json"), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")],
        // the reference's production flag means Cloud Monitoring: same check
        vec![("LOCAL_MODE", "false"), ("GCP_SA_KEY_JSON", dead.as_str()), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")],
        // BigQuery itself without emulator needs credentials too
        vec![("GCP_SA_KEY_JSON", dead.as_str()), ("ALLOWED_DATASETS", "tmp_*")],
    ] {
        let (code, err) = startup_failure(&env);
        assert_eq!(code, 2, "{env:?}: {err}");
        assert!(err.contains("no usable Google credentials"), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "the key must not be logged: {err}");
    }
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_event_finish() {
    let tokens = common::fakes::token::FakeTokenServer::start().await;
    let gcm = common::fakes::gcm::FakeGcm::start().await;
    gcm.set_delay(Duration::from_millis(1500));
    let key = tokens.service_account_json();
    let mut served = start_with(&[
        ("METRICS_BACKEND", "gcm"),
        ("GCM_ENDPOINT", &gcm.url),
        ("GCP_SA_KEY_JSON", &key),
        ("SELF_METRICS", "false"),
    ])
    .await;
    let (body, _) = recent_running_push();
    let url = served.url.clone();
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    });
    // wait until the event has reached the (slow) sink, then stop the process
    let t0 = Instant::now();
    while gcm.requests().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    served.run.sigterm();
    let resp = in_flight.await.unwrap().expect("the in-flight request is answered");
    assert_eq!(resp.status(), 204);
    assert_eq!(gcm.written_points(), 1);
    // the child needs nothing from this process any more: a blocking wait is fine here
    served.run.assert_clean_exit_within(Duration::from_secs(10));
}
