//! Lifecycle metrics from recorded runs of real Mage.ai (events/lifecycle/mage/): every recording
//! replayed in both its forms, in order, reversed, shuffled and with every record delivered twice
//! gives exactly the facts and values the orchestrator's own view says (tests/common/mage_expected.rs,
//! written from each scenario's `.expected.json` and the commit times of its raw WAL capture
//! where a row has no end time).
//!
//! The replay harness is tests/common/lifecycle.rs.

mod common;

use common::lifecycle::{check, lifecycle, recording, replay};
use common::mage_expected;
use pipeline_run_metrics::handlers::lifecycle::names;
use pipeline_run_metrics::sink::Point;

/// `mage/success`: three blocks, the run COMPLETED (raw lines 2–44).
#[tokio::test]
async fn mage_success() {
    check("mage", "mage", "success", &mage_expected::success()).await;
}

/// `mage/block_failure`: the second block FAILED, the run FAILED without completed_at, the third
/// block CANCELLED before it started.
#[tokio::test]
async fn mage_block_failure() {
    check("mage", "mage", "block_failure", &mage_expected::block_failure()).await;
}

/// `mage/retry`: one pipeline_run row goes FAILED -> RUNNING -> FAILED -> RUNNING -> COMPLETED
/// with the same started_at: one start, two failures, one success, two retries.
#[tokio::test]
async fn mage_retry() {
    check("mage", "mage", "retry", &mage_expected::retry()).await;
}

/// `mage/cancel`: cancelled through the API while the second block ran.
#[tokio::test]
async fn mage_cancel() {
    check("mage", "mage", "cancel", &mage_expected::cancel()).await;
}

/// CDC lag is observed once per change: the recordings were read 1.5 s after each commit.
#[tokio::test]
async fn cdc_lag_per_change() {
    let lc = lifecycle("mage");
    let records = recording("mage", "success");
    let n = records.len();
    let points = replay(&lc, records).await;
    let lag: Vec<&Point> = points.iter().filter(|p| p.name == names::CDC_LAG).collect();
    assert_eq!(lag.len(), n);
    assert!(lag.iter().all(|p| p.value == 1.5 && p.unit == "s"), "{lag:?}");
    let tables: std::collections::BTreeSet<&str> = lag.iter().map(|p| p.labels["table"].as_str()).collect();
    assert_eq!(tables, ["block_run", "pipeline_run"].into_iter().collect());
}
