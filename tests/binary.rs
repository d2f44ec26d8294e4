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

/// The binary with a clean environment (`PATH`, `HOME`), on 127.0.0.1 and a free port (the
/// port is bound first: a busy default 8080 would hide the startup error a test is after),
/// plus `extra`.
fn binary(extra: &[(&str, &str)]) -> Process {
    Process::new(BIN)
        .clean_env(&["PATH", "HOME"])
        .env("HOST", "127.0.0.1")
        .env("PORT", free_port().to_string())
        .envs(extra.iter().copied())
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

/// The startup line says whether `/api/v1/lineage` needs a key: a blank OPENLINEAGE_API_KEY
/// is unset (as every blank variable) and leaves it open, which an operator could not see.
#[tokio::test]
async fn the_listening_line_says_whether_the_lineage_endpoint_needs_a_key() {
    for (key, protected) in [(Some("k3y"), true), (Some("  "), false), (None, false)] {
        let port = free_port().to_string();
        let mut env = vec![("PORT", port.as_str()), ("BIGQUERY_EMULATOR_HOST", common::bigquery::emulator())];
        env.extend(key.map(|k| ("OPENLINEAGE_API_KEY", k)));
        let mut run = binary(&env).spawn();
        let listening = run.wait_listening(Duration::from_secs(20)).await;
        assert_eq!(listening["lineage_api_key"], protected, "{key:?}: {listening}");
        assert!(!listening.to_string().contains("k3y"), "the key itself is never logged: {listening}");
    }
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

/// The process environment under the prefixed-name rule (figment's `Env` provider): the
/// reference's `MAGEAI_MONITORING_` form wins, and the error names the variable that was read.
#[test]
fn the_prefixed_variable_wins_in_the_process_environment() {
    let local = ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1");
    // (--check: a process that read the plain name would exit 0 instead of serving forever)
    let out = binary(&[
        local,
        ("CLOUD_RUN_PROJECT_ID", "good-project"),
        ("MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID", "bad project"),
    ])
    .arg("--check")
    .output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let v: serde_json::Value = serde_json::from_str(err.lines().next().unwrap()).unwrap();
    assert_eq!(v["message"], "invalid configuration");
    assert_eq!(
        v["error"],
        "invalid configuration: MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID=\"bad project\": a Google Cloud project id (letters, digits, hyphens)"
    );
    // a bad plain value is not read when the prefixed one is set
    let out = binary(&[
        local,
        ("CLOUD_RUN_PROJECT_ID", "bad project"),
        ("MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID", "good-project"),
    ])
    .arg("--check")
    .output();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
    // as a deployment (and CI's last step) runs it: no emulator, the datasets named
    let out = Process::binary().arg("--check").env("ALLOWED_DATASETS", "tmp_*").output();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // and without them the check fails, naming the variable
    let out = Process::binary().arg("--check").output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ALLOWED_DATASETS"), "{err}");
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
        // gauges only (the lifecycle's counters and histograms: the tests below)
        ("PROFILES", "none"),
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
    let served = start_with(&[
        ("METRICS_BACKEND", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url),
        ("PROFILES", "none"),
    ])
    .await;
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
        ("PROFILES", "none"),
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

/// The Mage `pipeline_run` COMPLETED record of the recorded success scenario
/// (events/lifecycle/mage/success.datastream.jsonl), every time in it moved by the same whole
/// number of seconds so that its change happened a minute ago (Cloud Monitoring's window is 25
/// hours): durations and waits are the recorded ones. Built once per test: a redelivery must be
/// the same record (its `started_at` names the attempt, so a record moved by another second
/// would be another attempt's start, counted again).
fn mage_completed_record() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/events/lifecycle/mage/success.datastream.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let mut record: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["object"] == "public_pipeline_run" && r["payload"]["status"] == "COMPLETED")
        .expect("the COMPLETED pipeline_run record");
    let source = chrono::DateTime::parse_from_rfc3339(record["source_timestamp"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let shift = chrono::Duration::seconds((chrono::Utc::now() - chrono::Duration::seconds(60) - source).num_seconds());
    fn moved(v: &mut serde_json::Value, by: chrono::Duration) {
        match v {
            serde_json::Value::String(s) => {
                if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                    *s = (t.with_timezone(&chrono::Utc) + by).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| moved(x, by)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| moved(x, by)),
            _ => {}
        }
    }
    moved(&mut record, shift);
    record
}

/// The recorded run's waits and duration, and the change's CDC lag.
// started_at 13:30:00.020430 − the later of created_at (13:29:57.198938) and execution_date
// (13:29:58.331749), profiles/mage.toml
const QUEUE_WAIT: f64 = 1.688681;
const DURATION: f64 = 29.246066; // completed_at 13:30:29.266496 − started_at
const SCHEDULE_DELAY: f64 = 1.688681; // started_at − execution_date
const CDC_LAG: f64 = 1.5; // read_timestamp − source_timestamp

#[tokio::test]
async fn a_mage_run_completed_reaches_the_otlp_collector_as_delta_sums_and_histograms() {
    let collector = common::fakes::otlp::FakeCollector::start().await;
    let served = start_with(&[
        ("METRICS_BACKEND", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url),
        ("OTEL_SERVICE_NAME", "metrics-fn"),
        ("SELF_METRICS", "false"),
    ])
    .await;
    let resp = post_json(&served.url, common::push::push_body(&mage_completed_record(), "m-1")).await;
    assert_eq!(resp.status(), 204);
    let decoded = collector.decoded();
    assert_eq!(decoded.len(), 1, "one request, sent before the answer");
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric::Data, number_data_point::Value};
    let rm = &decoded[0].resource_metrics[0];
    let attrs: std::collections::BTreeMap<String, Any> = rm
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap().value.unwrap()))
        .collect();
    assert_eq!(attrs["service.name"], Any::StringValue("metrics-fn".into()));
    let Any::StringValue(instance) = &attrs["service.instance.id"] else { panic!("{attrs:?}") };
    assert_eq!(instance.len(), 32, "a random per-process id: {instance}");
    let metrics = &rm.scope_metrics[0].metrics;
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mageai/pipeline_run/count",
            "pipeline.run.finished",
            "pipeline.run.duration",
            "pipeline.run.started",
            "pipeline.run.queue_wait",
            "pipeline.run.schedule_delay",
            "pipeline.cdc.lag"
        ]
    );
    let labels = |attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]| -> Vec<(String, String)> {
        attributes
            .iter()
            .map(|kv| match kv.value.clone().unwrap().value.unwrap() {
                Any::StringValue(v) => (kv.key.clone(), v),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let Some(Data::Sum(finished)) = &metrics[1].data else { panic!("a sum: {:?}", metrics[1]) };
    assert_eq!(metrics[1].unit, "{run}");
    assert!(finished.is_monotonic);
    assert_eq!(finished.aggregation_temporality, AggregationTemporality::Delta as i32);
    let p = &finished.data_points[0];
    assert_eq!(p.value, Some(Value::AsInt(1)));
    assert!(p.start_time_unix_nano < p.time_unix_nano, "{p:?}");
    assert_eq!(
        labels(&p.attributes),
        vec![
            pair("orchestrator", "mage"),
            pair("partner", "acme"),
            pair("pipeline", "fx_success"),
            pair("result", "success"),
            pair("run_kind", "schedule"),
            pair("status", "COMPLETED"),
        ]
    );
    for (i, seconds) in [(2, DURATION), (4, QUEUE_WAIT), (5, SCHEDULE_DELAY), (6, CDC_LAG)] {
        let Some(Data::Histogram(h)) = &metrics[i].data else { panic!("a histogram: {:?}", metrics[i]) };
        assert_eq!(h.aggregation_temporality, AggregationTemporality::Delta as i32);
        let p = &h.data_points[0];
        assert_eq!((p.count, p.min, p.max), (1, Some(seconds), Some(seconds)), "{}", metrics[i].name);
        assert!((p.sum.unwrap() - seconds).abs() < 1e-9, "{}: {p:?}", metrics[i].name);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 1);
        assert!(p.start_time_unix_nano < p.time_unix_nano);
    }
}

// multi-threaded: the fake keeps answering the child's flush while this test waits for its exit
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mage_run_completed_reaches_cloud_monitoring_as_cumulative_series_flushed_at_shutdown() {
    let tokens = common::fakes::token::FakeTokenServer::start().await;
    let gcm = common::fakes::gcm::FakeGcm::start().await;
    let key = tokens.service_account_json();
    let mut served = start_with(&[
        ("METRICS_BACKEND", "gcm"),
        ("GCM_ENDPOINT", &gcm.url),
        ("GCP_SA_KEY_JSON", &key),
        ("CLOUD_RUN_PROJECT_ID", "my-proj"),
        ("K_SERVICE", "metrics-fn"),
        ("K_REVISION", "metrics-fn-00001-abc"),
        ("DEDUP_WINDOW_SECS", "0"),
        ("SELF_METRICS", "false"),
        // an interval no loaded machine outlasts between the two events: the second event's
        // totals wait for the shutdown write whatever the test's pace
        ("GCM_CUMULATIVE_INTERVAL_SECS", "3600"),
    ])
    .await;
    let record = mage_completed_record();
    let resp = post_json(&served.url, common::push::push_body(&record, "m-1")).await;
    assert_eq!(resp.status(), 204);
    // the gauge's call, then the first write of the totals, both before the answer
    let bodies: Vec<serde_json::Value> = gcm.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["timeSeries"][0]["metricKind"], "GAUGE");
    assert_eq!(bodies[0]["timeSeries"][0]["resource"]["type"], "global");
    let series = bodies[1]["timeSeries"].as_array().unwrap();
    let task_id = series[0]["resource"]["labels"]["task_id"].as_str().unwrap().to_string();
    let instance = task_id.strip_prefix("metrics-fn-00001-abc-").expect("the revision and the process id");
    assert_eq!(instance.len(), 32, "{task_id}");
    let by_name: std::collections::BTreeMap<&str, &serde_json::Value> =
        series.iter().map(|ts| (ts["metric"]["type"].as_str().unwrap(), ts)).collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        [
            "custom.googleapis.com/pipeline.cdc.lag",
            "custom.googleapis.com/pipeline.run.duration",
            "custom.googleapis.com/pipeline.run.finished",
            "custom.googleapis.com/pipeline.run.queue_wait",
            "custom.googleapis.com/pipeline.run.schedule_delay",
            "custom.googleapis.com/pipeline.run.started",
        ]
    );
    let finished = by_name["custom.googleapis.com/pipeline.run.finished"];
    assert_eq!(
        finished["resource"],
        serde_json::json!({"type": "generic_task", "labels": {"project_id": "my-proj", "location": "global",
            "namespace": "pipeline-run-metrics", "job": "metrics-fn", "task_id": task_id}})
    );
    assert_eq!((&finished["metricKind"], &finished["valueType"]), (&"CUMULATIVE".into(), &"INT64".into()));
    assert_eq!(finished["points"][0]["value"], serde_json::json!({"int64Value": "1"}));
    assert_eq!(finished["metric"]["labels"]["result"], "success");
    let duration = &by_name["custom.googleapis.com/pipeline.run.duration"]["points"][0];
    assert_eq!(duration["value"]["distributionValue"]["count"], "1");
    assert!((duration["value"]["distributionValue"]["mean"].as_f64().unwrap() - DURATION).abs() < 1e-9);
    assert!(
        duration["value"]["distributionValue"]["bucketOptions"]["explicitBuckets"]["bounds"].is_array(),
        "{duration}"
    );
    let start = duration["interval"]["startTime"].as_str().unwrap();
    assert!(start < duration["interval"]["endTime"].as_str().unwrap());
    assert_eq!(gcm.written_points(), 7, "the fake accepts the gauge and the six cumulative series");
    // the record again (another instance would count nothing more: the fact is known; here the
    // change's CDC lag is observed again): accumulated, not written within the interval. The
    // same record, not one built again: that one was moved by a whole number of seconds
    // computed from the clock, so when the clock crossed a second between the two it carried
    // another started_at, which is another attempt's start (profiles/mage.toml names no attempt
    // column): started, queue_wait and schedule_delay counted again, and 4 series at shutdown.
    let resp = post_json(&served.url, common::push::push_body(&record, "m-2")).await;
    assert_eq!(resp.status(), 204);
    let calls = gcm.requests().len();
    assert_eq!(calls, 3, "only the gauge's call (already written)");
    // SIGTERM: the unwritten total goes out before the process exits
    served.run.sigterm();
    served.run.assert_clean_exit_within(Duration::from_secs(10));
    let bodies = gcm.bodies();
    assert_eq!(bodies.len(), 4, "one write at shutdown");
    let last = &bodies[3]["timeSeries"];
    assert_eq!(last.as_array().unwrap().len(), 1, "{last}");
    assert_eq!(last[0]["metric"]["type"], "custom.googleapis.com/pipeline.cdc.lag");
    assert_eq!(last[0]["points"][0]["value"]["distributionValue"]["count"], "2");
    assert_eq!(last[0]["points"][0]["interval"]["startTime"], start, "the same series, the same start");
    assert_eq!(gcm.written_points(), 8);
}
