//! The "Adding a metric" walkthroughs (README, docs/catalogue.md) as written: the handlers of
//! examples/handlers/ loaded through HANDLERS_DIR on top of the built-in catalogue (as
//! `HANDLERS_DIR=$PWD/examples/handlers make local-run` does), the local seed of
//! events/seed.json (`make local-seed`) in the BigQuery emulator, and the sample events of
//! events/ that `make local-test` posts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::app::{Answer, TestApp};
use common::bigquery::emulator_warehouse;
use common::fixtures::{event_file, seed};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn app() -> TestApp {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/handlers"));
    TestApp::with_catalogue(None, Some(dir), emulator_warehouse().await, 1 << 20).await
}

async fn post_file(app: &TestApp, name: &str) -> Answer {
    let (headers, body) = event_file(name);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(&headers, body).await
}

/// The points of metrics whose name starts with `prefix`: (name, labels, value).
fn points(ans: &Answer, prefix: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    ans.points
        .iter()
        .filter(|p| p.name.starts_with(prefix))
        .map(|p| (p.name.clone(), p.labels.clone(), p.value))
        .collect()
}

/// Enriched claims per category (events/approval_complete.json: the complete approval run of
/// cemig, whose variables also name tmp_cemig.enriched_claims_cemig_20251111_100000).
/// The seeded table: exam 100.0 and 50.5, surgery 2000.0 before the run's time
/// (2025-11-11 16:40:28), and surgery 999.0 on the next day, which the query leaves out.
#[tokio::test]
async fn enriched_claims_walkthrough() {
    seed();
    let app = app().await;
    let ans = post_file(&app, "approval_complete.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    let l = |category| labels(&[("category", category), ("partner", "cemig")]);
    assert_eq!(
        points(&ans, "claims/pipeline/enriched/"),
        [
            ("claims/pipeline/enriched/count".to_string(), l("exam"), 2.0),
            ("claims/pipeline/enriched/vl_pago".to_string(), l("exam"), 150.5),
            ("claims/pipeline/enriched/count".to_string(), l("surgery"), 1.0),
            ("claims/pipeline/enriched/vl_pago".to_string(), l("surgery"), 2000.0),
        ]
    );
    // the built-in approval metrics of the same run are still written
    assert!(!points(&ans, "claims/pipeline/savings/count").is_empty(), "{:?}", ans.points);
    assert_eq!(points(&ans, "mageai/pipeline_run/count").len(), 1);
}

/// Rows loaded per target table (events/rows_loaded_load_orders.json: run 30512 of
/// load_orders, started 2025-11-12 06:00:00.5, COMPLETED). The seeded ops_audit.load_audit
/// has for run 30512: orders 1200 and 800, order_items 5400; run 30511 (orders 999) and 30513
/// (orders 300) of the same pipeline, and other pipelines' rows, are not this run's.
#[tokio::test]
async fn rows_loaded_walkthrough() {
    seed();
    let app = app().await;
    let ans = post_file(&app, "rows_loaded_load_orders.json").await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    let l = |target| labels(&[("pipeline", "load_orders"), ("status", "COMPLETED"), ("target", target)]);
    assert_eq!(
        points(&ans, "etl/"),
        [
            ("etl/pipeline/rows_loaded".to_string(), l("order_items"), 5400.0),
            ("etl/pipeline/rows_loaded".to_string(), l("orders"), 2000.0),
        ]
    );
    // and the run is counted, like every run
    let count = points(&ans, "mageai/pipeline_run/count");
    assert_eq!(count.len(), 1);
    assert_eq!(count[0].1, labels(&[("pipeline_uuid", "load_orders"), ("pipeline_status", "COMPLETED")]));
}

/// `make local-test` passes with or without `HANDLERS_DIR=$PWD/examples/handlers`: every sample
/// event of events/ gets the same status from both catalogues (the examples add handlers, so
/// a sample event they match must carry what they need), and the example metrics are written
/// only with the examples.
#[tokio::test]
async fn every_sample_event_gets_the_same_answer_with_and_without_the_examples() {
    seed();
    let plain = TestApp::with_catalogue(None, None, emulator_warehouse().await, 1 << 20).await;
    let examples = app().await;
    let files = common::fixtures::sample_event_files();
    assert!(files.len() >= 20, "{files:?}");
    for file in &files {
        let without = post_file(&plain, file).await;
        let with = post_file(&examples, file).await;
        assert_eq!(with.status, without.status, "{file}: {} / {}", with.body, without.body);
        let example_points = |a: &Answer| points(a, "claims/pipeline/enriched/").len() + points(a, "etl/").len();
        assert_eq!(example_points(&without), 0, "{file}");
        let expected = match file.as_str() {
            "approval_complete.json" => 4,
            "rows_loaded_load_orders.json" => 2,
            _ => 0,
        };
        assert_eq!(example_points(&with), expected, "{file}");
    }
}
