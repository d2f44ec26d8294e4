//! `replay` against remote services: Cloud Monitoring (an in-process fake that enforces the
//! API's 25-hour window) gets no point it cannot take, each counted per metric; `gs://` sources
//! read through the Cloud Storage JSON API of a real emulator (gcp-storage-emulator).

mod common;

use common::fakes::gcm::FakeGcm;
use common::fakes::token::FakeTokenServer;
use common::replay::{fixture, gzip, jsonl, records, replay, shift, sorted, workdir};
use common::storage::{Gcs, emulator};
use serde_json::Value;

/// A recording with every time moved so that its last change happened `ago` before now.
fn recent(orchestrator: &str, scenario: &str, ago: chrono::Duration) -> Vec<Value> {
    let mut recs = records(&fixture(orchestrator, scenario, "datastream"));
    let last = recs
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(r["source_timestamp"].as_str().unwrap()).unwrap())
        .max()
        .unwrap()
        .with_timezone(&chrono::Utc);
    let by = chrono::Duration::seconds((chrono::Utc::now() - ago - last).num_seconds());
    for r in &mut recs {
        shift(r, by);
    }
    recs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_monitoring_gets_no_point_older_than_25_hours_and_each_is_counted() {
    let tokens = FakeTokenServer::start().await;
    let gcm = FakeGcm::start().await;
    let dir = workdir("gcm");
    // a run that ended an hour ago, and another (other rows) that ended two days ago
    let new = recent("mage", "success", chrono::Duration::hours(1));
    let old = recent("mage", "cancel", chrono::Duration::hours(48));
    let new_runs = new.iter().filter(|r| r["object"] == "public_pipeline_run").count();
    let old_runs = old.iter().filter(|r| r["object"] == "public_pipeline_run").count();
    let (new_path, old_path) = (dir.join("new.jsonl"), dir.join("old.jsonl.gz"));
    std::fs::write(&new_path, jsonl(&new)).unwrap();
    std::fs::write(&old_path, gzip(&jsonl(&old))).unwrap();
    let key = tokens.service_account_json();
    let url = gcm.url.clone();
    let args = [old_path.display().to_string(), new_path.display().to_string()];
    let r = tokio::task::spawn_blocking(move || {
        let env = [
            ("METRICS_BACKEND", "gcm"),
            ("GCM_ENDPOINT", url.as_str()),
            ("GCP_SA_KEY_JSON", key.as_str()),
            ("DEDUP_WINDOW_SECS", "0"),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        replay(&env, &args)
    })
    .await
    .unwrap();
    assert_eq!(r.code, 1, "points not written: exit code 1; {:?} {:?}", r.summary, r.stderr);
    let count = &r.summary["metrics"]["mageai/pipeline_run/count"];
    assert_eq!(count["points"], new_runs + old_runs);
    assert_eq!((&count["written"], &count["out_of_window"]), (&Value::from(new_runs), &Value::from(old_runs)));
    let finished = &r.summary["metrics"]["pipeline.run.finished"];
    assert_eq!((&finished["written"], &finished["out_of_window"]), (&Value::from(1), &Value::from(1)));
    // what reached the API: gauges of the last 25 hours only, and the cumulative total of the
    // recent run alone (written at the end)
    let limit = chrono::Utc::now() - chrono::Duration::hours(25);
    let gauges = gcm.series_of_kind("GAUGE");
    assert_eq!(gauges.len(), new_runs);
    for g in &gauges {
        let end =
            chrono::DateTime::parse_from_rfc3339(g["points"][0]["interval"]["endTime"].as_str().unwrap()).unwrap();
        assert!(end > limit, "{g}");
    }
    let runs: Vec<Value> = gcm
        .series_of_kind("CUMULATIVE")
        .into_iter()
        .filter(|s| s["metric"]["type"] == "custom.googleapis.com/pipeline.run.finished")
        .collect();
    assert!(!runs.is_empty());
    assert!(runs.iter().all(|s| s["points"][0]["value"]["int64Value"] == "1"), "{runs:?}");
    let text = r.summary.to_string();
    assert!(!text.contains("acme"), "no payload variable in the summary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gs_sources_are_listed_and_read_like_local_files() {
    let gcs = Gcs::default();
    let bucket = format!("replay-{}", std::process::id());
    gcs.bucket(&bucket).await;
    let recs = records(&fixture("mage", "retry", "datastream"));
    let of = |table: &str| recs.iter().filter(|r| r["source_metadata"]["table"] == table).cloned().collect::<Vec<_>>();
    // Datastream's layout; the block runs' file sorts first by name, yet is read after the
    // parent table's file of the same minute
    let blocks = "ds/public_block_run/2026/11/30/13/30/0c1d_postgresql-cdc_1_2_4.jsonl.gz";
    let runs = "ds/public_pipeline_run/2026/11/30/13/30/0a1b_postgresql-cdc_1_2_3.jsonl";
    gcs.upload(&bucket, blocks, gzip(&jsonl(&of("block_run")))).await;
    gcs.upload(&bucket, runs, jsonl(&of("pipeline_run"))).await;
    gcs.upload(&bucket, "elsewhere/x.jsonl", b"not listed under the prefix\n".to_vec()).await;
    let dir = workdir("gs");
    let local = dir.join("retry.jsonl");
    // the same records, the parent's first
    let mut ordered = of("pipeline_run");
    ordered.extend(of("block_run"));
    std::fs::write(&local, jsonl(&ordered)).unwrap();
    let source = format!("gs://{bucket}/ds/");
    let (from_gs, from_disk) = tokio::task::spawn_blocking(move || {
        let env = [("STORAGE_EMULATOR_HOST", emulator())];
        (replay(&env, &[&source]), replay(&[], &[local.to_str().unwrap()]))
    })
    .await
    .unwrap();
    assert_eq!(from_gs.code, 0, "{:?} {:?}", from_gs.summary, from_gs.stderr);
    assert_eq!((&from_gs.summary["files"], &from_gs.summary["records"]), (&Value::from(2), &Value::from(recs.len())));
    assert_eq!(sorted(&from_gs.points), sorted(&from_disk.points));
    let tasks: Vec<&str> = from_gs
        .points
        .iter()
        .filter(|p| p.name == "pipeline.task.finished")
        .map(|p| p.labels["pipeline"].as_str())
        .collect();
    assert!(!tasks.is_empty() && tasks.iter().all(|p| *p == "fx_retry"), "tasks named through their run: {tasks:?}");
    // a bucket that does not exist: exit code 2, named
    let missing = tokio::task::spawn_blocking(|| {
        replay(&[("STORAGE_EMULATOR_HOST", emulator())], &["gs://no-such-bucket-for-replay/ds/"])
    })
    .await
    .unwrap();
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.iter().any(|l| l.contains("no-such-bucket-for-replay")), "{:?}", missing.stderr);
}
