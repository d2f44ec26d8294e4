//! Datastream files in Cloud Storage, against a real Cloud Storage emulator
//! (gcp-storage-emulator): the bucket notification (Pub/Sub push) or Eventarc event names an
//! object; the function reads that object, line by line, and processes every record. The
//! records are a recorded Mage run (events/lifecycle/mage/success.datastream.jsonl) split into
//! the per-table files Datastream writes (`<prefix>/public_<table>/YYYY/MM/DD/HH/mm/<file>`).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::app::{Answer, TestApp};
use common::fakes::warehouse::ScriptedWarehouse;
use common::push::Push;
use common::storage::{Gcs, emulator};
use pipeline_run_metrics::config::{Delivery, FilesConfig};
use pipeline_run_metrics::facts::memory::Memory;
use pipeline_run_metrics::google::storage::Storage;
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, load};
use pipeline_run_metrics::ingress::http::Options;
use pipeline_run_metrics::pipeline::LifecycleParts;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const HANDLERS: &[&str] = &["PipelineRunHandler", "PreFilteredWranglingHandler", "ProcessableWranglingHandler"];

async fn app_with(wh: Arc<ScriptedWarehouse>, storage: Storage, files: FilesConfig) -> TestApp {
    let profiles = load(None, Some(&["mage".to_string()])).unwrap();
    let lifecycle = LifecycleParts {
        // a block run waits for its pipeline run much longer than the test takes
        lifecycle: Arc::new(Lifecycle::new(profiles, common::METRIC_PROJECT, std::time::Duration::from_secs(1 << 30))),
        facts: Arc::new(Memory::new(10_000)),
    };
    let options = Options {
        lifecycle: Some(lifecycle),
        storage: Some(Arc::new(storage)),
        delivery: Delivery { files, ..Default::default() },
        ..Default::default()
    };
    TestApp::with_options(Some(HANDLERS), None, wh, options, None).await
}

async fn app() -> (TestApp, Arc<ScriptedWarehouse>) {
    let wh = Arc::new(ScriptedWarehouse::default());
    let storage = Storage::emulator(reqwest::Client::new(), emulator());
    (app_with(wh.clone(), storage, FilesConfig::default()).await, wh)
}

fn recording() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/events/lifecycle/mage/success.datastream.jsonl");
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn jsonl(records: &[Value]) -> Vec<u8> {
    records.iter().map(|r| format!("{r}\n")).collect::<String>().into_bytes()
}

async fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    async_compression::tokio::bufread::GzipEncoder::new(data).read_to_end(&mut out).await.unwrap();
    out
}

fn table_rows(table: &str) -> Vec<Value> {
    recording().into_iter().filter(|r| r["source_metadata"]["table"] == table).collect()
}

/// A unique bucket per test.
async fn bucket(test: &str) -> (Gcs, String) {
    let gcs = Gcs::default();
    let name = format!("{test}-{}", std::process::id());
    gcs.bucket(&name).await;
    (gcs, name)
}

/// The bucket notification of an uploaded object, as a Pub/Sub push (JSON_API_V1 payload).
fn notification(resource: &Value, event: &str) -> String {
    let attr = |k: &str| resource[k].as_str().unwrap_or_default().to_string();
    Push::new(serde_json::to_vec(resource).unwrap())
        .message_id(&format!("n-{}-{event}", attr("generation")))
        .attribute("eventType", event)
        .attribute("payloadFormat", "JSON_API_V1")
        .attribute("bucketId", &attr("bucket"))
        .attribute("objectId", &attr("name"))
        .attribute("objectGeneration", &attr("generation"))
        .body()
}

async fn notify(app: &TestApp, resource: &Value) -> Answer {
    app.post(&[("content-type", "application/json")], notification(resource, "OBJECT_FINALIZE")).await
}

fn count(a: &Answer, name: &str) -> usize {
    a.points.iter().filter(|p| p.name == name).count()
}

const PIPELINE_RUN: &str = "ds/public_pipeline_run/2026/11/30/13/29/0a1b_postgresql-cdc_1_2_3.jsonl";
const BLOCK_RUN: &str = "ds/public_block_run/2026/11/30/13/30/0c1d_postgresql-cdc_1_2_4.jsonl.gz";

#[tokio::test]
async fn a_recorded_run_in_two_files_plain_and_gzip() {
    let (gcs, b) = bucket("files").await;
    let (app, _) = app().await;
    let runs = gcs.upload(&b, PIPELINE_RUN, jsonl(&table_rows("pipeline_run"))).await;
    let blocks = gcs.upload(&b, BLOCK_RUN, gzip(&jsonl(&table_rows("block_run"))).await).await;

    let a = notify(&app, &runs).await;
    assert_eq!(a.status, 204, "{}", a.body);
    // 3 changes of the run: the reference's count gauge for each; the run started and finished
    assert_eq!(count(&a, "mageai/pipeline_run/count"), 3);
    assert_eq!((count(&a, "pipeline.run.started"), count(&a, "pipeline.run.finished")), (1, 1));
    let duration = a.points.iter().find(|p| p.name == "pipeline.run.duration").unwrap();
    assert_eq!(duration.value, 29.246066, "completed_at - started_at of the recorded run");

    let a = notify(&app, &blocks).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(count(&a, "pipeline.task.finished"), 3, "three blocks, named through their run");
    assert!(
        a.points.iter().filter(|p| p.name == "pipeline.task.finished").all(|p| p.labels["pipeline"] == "fx_success")
    );
    assert_eq!(count(&a, "pipeline.cdc.lag"), 12, "one lag observation per change");

    // the same notifications again: nothing already written is written again
    for resource in [&runs, &blocks] {
        let again = notify(&app, resource).await;
        assert_eq!(again.status, 204, "{}", again.body);
        assert!(again.points.is_empty(), "{:?}", again.points.iter().map(|p| &p.name).collect::<Vec<_>>());
    }
}

/// Field case c06 end to end: the Eventarc forms of a storage event, binary and structured, are
/// read like the bucket notification.
#[tokio::test]
async fn eventarc_storage_events_are_read() {
    let (gcs, b) = bucket("eventarc").await;
    let (app, _) = app().await;
    let rows = table_rows("pipeline_run");
    let first = gcs.upload(&b, PIPELINE_RUN, jsonl(&rows[..1])).await;
    let binary = app
        .post(
            &[
                ("content-type", "application/json"),
                ("ce-specversion", "1.0"),
                ("ce-id", "e-1"),
                ("ce-source", &format!("//storage.googleapis.com/projects/_/buckets/{b}")),
                ("ce-type", "google.cloud.storage.object.v1.finalized"),
                ("ce-subject", &format!("objects/{PIPELINE_RUN}")),
            ],
            first.to_string(),
        )
        .await;
    assert_eq!(binary.status, 204, "{}", binary.body);
    assert_eq!(count(&binary, "mageai/pipeline_run/count"), 1);
    let second = gcs.upload(&b, PIPELINE_RUN.replace("0a1b", "0a1c").as_str(), jsonl(&rows[1..])).await;
    let ce = json!({"specversion": "1.0", "id": "e-2", "source": format!("//storage.googleapis.com/projects/_/buckets/{b}"),
        "type": "google.cloud.storage.object.v1.finalized", "datacontenttype": "application/json", "data": second});
    let structured = app.post(&[("content-type", "application/cloudevents+json")], ce.to_string()).await;
    assert_eq!(structured.status, 204, "{}", structured.body);
    assert_eq!(count(&structured, "mageai/pipeline_run/count"), 2);
    assert_eq!(count(&structured, "pipeline.run.finished"), 1);
}

#[tokio::test]
async fn a_bad_line_fails_alone_and_is_named() {
    let (gcs, b) = bucket("badline").await;
    let (app, _) = app().await;
    let rows = table_rows("pipeline_run");
    let mut data = jsonl(&rows[..1]);
    data.extend_from_slice(b"{\"this is\": \"not a record\"\n");
    data.extend(jsonl(&rows[1..]));
    let resource = gcs.upload(&b, PIPELINE_RUN, data).await;
    let a = notify(&app, &resource).await;
    assert_eq!(a.status, 400, "a permanent failure: the dead-letter topic keeps the notification");
    assert_eq!(
        (a.body["records"].as_u64(), a.body["done"].as_u64(), a.body["permanent"].as_u64()),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(a.body["failures"][0]["item"], "line 2");
    assert_eq!(a.body["failures"][0]["field"], "line 2");
    assert_eq!(count(&a, "mageai/pipeline_run/count"), 3, "the other lines are processed");
}

/// A `.jsonl.gz` cut short: the lines before the cut are processed (done, their points
/// written) and the cut is reported as `unread`, named with the last line read. A trial got
/// `records: 0` and nothing written for a 20-line file missing its end.
#[tokio::test]
async fn a_truncated_gzip_processes_the_lines_before_the_cut() {
    let (gcs, b) = bucket("truncated").await;
    let (app, _) = app().await;
    let rows = table_rows("pipeline_run");
    let lines: Vec<Value> = (0..20)
        .map(|i| {
            let mut r = rows[i % rows.len()].clone();
            r["uuid"] = format!("trunc-{i}").into();
            r
        })
        .collect();
    // lines 1-18 in a whole gzip member; lines 19-20 in a second one cut after its header
    let mut data = gzip(&jsonl(&lines[..18])).await;
    data.extend_from_slice(&gzip(&jsonl(&lines[18..])).await[..10]);
    let resource = gcs.upload(&b, BLOCK_RUN.replace("block_run", "pipeline_run").as_str(), data).await;
    let a = notify(&app, &resource).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        (a.body["records"].as_u64(), a.body["done"].as_u64(), a.body["permanent"].as_u64()),
        (Some(18), Some(18), Some(0)),
        "{}",
        a.body
    );
    assert_eq!(a.body["unread"]["class"], "permanent", "{}", a.body);
    assert_eq!(a.body["unread"]["message"], "the file cannot be read after line 18: unexpected end of file");
    assert_eq!(count(&a, "mageai/pipeline_run/count"), 18, "one count point per line read");
}

#[tokio::test]
async fn what_is_not_read_and_why() {
    let (gcs, b) = bucket("notread").await;
    let (app, _) = app().await;
    // a deleted object (never uploaded): permanent, says so
    let gone = json!({"kind": "storage#object", "bucket": b, "name": PIPELINE_RUN, "generation": "1"});
    let a = notify(&app, &gone).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body["message"].as_str().unwrap().contains("does not exist"), "{}", a.body);
    // an Avro file: permanent, says what is expected
    let avro = gcs
        .upload(&b, "ds/public_pipeline_run/2026/11/30/13/29/x_postgresql-backfill_1_0_1.avro", b"Obj\x01".to_vec())
        .await;
    let a = notify(&app, &avro).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["field"], "name");
    // the function's own sentence whole (a trial saw it cut at "Datastream's … stream's")
    let why = "is an Avro file: this function reads Datastream's JSON output (JSON Lines, optionally GZIP); \
               configure the stream's Cloud Storage destination with json_file_format";
    let name = avro["name"].as_str().unwrap();
    assert_eq!(a.body["message"], format!("{name} {why}"));
    // a long object name is cut (a value of the notification), never the sentence after it
    let long = format!("ds/public_pipeline_run/2026/11/30/13/29/{}.avro", "x".repeat(400));
    let resource = json!({"kind": "storage#object", "bucket": b, "name": long, "generation": "1"});
    let a = notify(&app, &resource).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["message"], format!("{}… ({} bytes) {why}", &long[..256], long.len()));
    // a table no handler or profile reads, and another event type: 204, nothing read
    let users = gcs.upload(&b, "ds/public_users/2026/11/30/13/29/u_postgresql-cdc_1_2_3.jsonl", b"{}\n".to_vec()).await;
    let a = notify(&app, &users).await;
    assert_eq!((a.status, a.points.len()), (204, 0));
    let runs = gcs.upload(&b, PIPELINE_RUN, jsonl(&table_rows("pipeline_run"))).await;
    let deleted = app.post(&[("content-type", "application/json")], notification(&runs, "OBJECT_DELETE")).await;
    assert_eq!((deleted.status, deleted.points.len()), (204, 0));
    // FILES_TABLES / FILES_PREFIXES narrow it
    let storage = Storage::emulator(reqwest::Client::new(), emulator());
    let files = FilesConfig { tables: Some(vec!["block_run".into()]), ..Default::default() };
    let narrow = app_with(Arc::new(ScriptedWarehouse::default()), storage, files).await;
    let a = notify(&narrow, &runs).await;
    assert_eq!((a.status, a.points.len()), (204, 0));
    // a table glob, as the catalogue's [match] table takes them
    let storage = Storage::emulator(reqwest::Client::new(), emulator());
    let files = FilesConfig { tables: Some(vec!["block_run".into(), "pipeline_*".into()]), ..Default::default() };
    let globbed = app_with(Arc::new(ScriptedWarehouse::default()), storage, files).await;
    let a = notify(&globbed, &runs).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(!a.points.is_empty(), "the pipeline_run file is read");
}

/// A Cloud Storage client whose API cannot be reached, retrying for 300 ms at most.
fn unreachable() -> Storage {
    let quick = pipeline_run_metrics::retry::Policy {
        first_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(50),
        deadline: std::time::Duration::from_millis(300),
    };
    Storage::emulator(reqwest::Client::new(), "127.0.0.1:1").with_retry(quick)
}

#[tokio::test]
async fn an_unreachable_bucket_and_a_transient_record_answer_503() {
    let (gcs, b) = bucket("transient").await;
    // the storage API unreachable: 503, the notification comes back
    let app_dead = app_with(Arc::new(ScriptedWarehouse::default()), unreachable(), FilesConfig::default()).await;
    let runs = gcs.upload(&b, PIPELINE_RUN, jsonl(&table_rows("pipeline_run"))).await;
    let a = notify(&app_dead, &runs).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["error"], "source_unavailable");

    // one record's query fails transiently: 503; the redelivery processes only that record
    let (app, wh) = app().await;
    let mut wrangling = common::fixtures::wrangling_record();
    wrangling["source_timestamp"] = json!("2026-11-30T13:30:30Z");
    let mut rows = table_rows("pipeline_run");
    rows.insert(1, wrangling);
    let file = gcs.upload(&b, PIPELINE_RUN.replace("0a1b", "0a1e").as_str(), jsonl(&rows)).await;
    wh.fail_queries.store(1, Ordering::SeqCst);
    let first = notify(&app, &file).await;
    assert_eq!(first.status, 503, "{}", first.body);
    assert_eq!(first.body["transient"], 1);
    assert_eq!(first.body["failures"][0]["item"], "line 2");
    let done_first = count(&first, "mageai/pipeline_run/count");
    assert_eq!(done_first, 3, "the three other records are written");
    let queries = wh.queries.load(Ordering::SeqCst);
    let second = notify(&app, &file).await;
    assert_eq!(second.status, 204, "{}", second.body);
    assert_eq!(count(&second, "mageai/pipeline_run/count"), 1, "only the unfinished record");
    assert_eq!(wh.queries.load(Ordering::SeqCst), queries + 1, "one query: the retried record's");
}

/// Notifications are checked before anything is fetched: with no Cloud Storage reachable, a
/// malformed one is a 400 naming the attribute (a trial got 503 `source_unavailable`, so Pub/Sub
/// retried it for ever) and another event type a 204; only a well-formed `OBJECT_FINALIZE`
/// reaches the read, and its 503.
#[tokio::test]
async fn a_malformed_notification_is_refused_before_any_fetch() {
    let app = app_with(Arc::new(ScriptedWarehouse::default()), unreachable(), FilesConfig::default()).await;
    let resource = json!({"kind": "storage#object", "bucket": "b", "name": PIPELINE_RUN, "generation": "7"});
    let post = |attrs: Vec<(&'static str, &'static str)>| {
        let mut push = Push::new(serde_json::to_vec(&resource).unwrap()).message_id("m-1");
        for (k, v) in attrs {
            push = push.attribute(k, v);
        }
        app.post(&[("content-type", "application/json")], push.body())
    };
    let base = [("payloadFormat", "JSON_API_V1"), ("bucketId", "b"), ("objectId", PIPELINE_RUN)];
    let with = |extra: &[(&'static str, &'static str)]| base.iter().chain(extra).copied().collect::<Vec<_>>();
    let cases: [(Vec<(&str, &str)>, &str); 4] = [
        (with(&[("objectGeneration", "7")]), "message.attributes.eventType"),
        (with(&[("eventType", "XYZ"), ("objectGeneration", "7")]), "message.attributes.eventType"),
        (with(&[("eventType", "OBJECT_FINALIZE"), ("objectGeneration", "abc")]), "message.attributes.objectGeneration"),
        (
            vec![("eventType", "OBJECT_FINALIZE"), ("objectId", PIPELINE_RUN), ("objectGeneration", "7")],
            "message.attributes.bucketId",
        ),
    ];
    for (attrs, field) in cases {
        let a = post(attrs).await;
        assert_eq!(a.status, 400, "{field}: {}", a.body);
        assert_eq!((a.body["error"].as_str(), a.body["field"].as_str()), (Some("malformed_event"), Some(field)));
    }
    let a = post(with(&[("eventType", "OBJECT_DELETE"), ("objectGeneration", "7")])).await;
    assert_eq!((a.status, a.points.len()), (204, 0), "{}", a.body);
    let a = post(with(&[("eventType", "OBJECT_FINALIZE"), ("objectGeneration", "7")])).await;
    assert_eq!(a.status, 503, "well-formed: read, and the bucket is unreachable: {}", a.body);
}

/// The log line of a refused object (here deleted: a 404 of Cloud Storage) carries the
/// delivery's format and message id; a trial saw `"format":"unknown","message_id":""`.
#[tokio::test]
async fn the_log_line_of_a_deleted_object_names_its_delivery() {
    static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let out: pipeline_run_metrics::logging::Out =
        Arc::new(|l: &str| LINES.lock().unwrap_or_else(|e| e.into_inner()).push(l.to_string()));
    pipeline_run_metrics::logging::init_with(tracing::level_filters::LevelFilter::WARN, out);
    let (_, b) = bucket("logged").await;
    let (app, _) = app().await;
    let gone = json!({"kind": "storage#object", "bucket": b, "name": PIPELINE_RUN, "generation": "4040"});
    let a = notify(&app, &gone).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let lines = LINES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // at WARN the `file` span is off: the line is found by its reason, which names the bucket
    let line: Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "event rejected" && v["reason"].as_str().is_some_and(|r| r.contains(&b)))
        .unwrap_or_else(|| panic!("no rejection logged: {lines:?}"));
    assert_eq!(
        (line["format"].as_str(), line["message_id"].as_str()),
        (Some("pubsub_push"), Some("n-4040-OBJECT_FINALIZE"))
    );
    assert_eq!((line["status"].as_u64(), line["field"].as_str()), (Some(400), Some("name")));
}
