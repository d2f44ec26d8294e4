//! Lifecycle metrics from recorded runs of real orchestrators (events/lifecycle/): every
//! recording replayed in order, reversed, shuffled and with every record delivered twice gives
//! exactly the facts and values the orchestrator's own view says (each scenario's
//! `.expected.json`, and the commit times of its raw WAL capture where a row has no end time).
//!
//! A record whose parent row (the pipeline name of a task) has not arrived yet is answered as a
//! transient failure: the replay delivers it again later, as Pub/Sub would.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use chrono::{Duration as ChronoDuration, Utc};
use pipeline_run_metrics::decode::{ChangeEvent, datastream};
use pipeline_run_metrics::facts::memory::Memory;
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, load, names};
use pipeline_run_metrics::sink::{Point, PointKind};
use rand::SeedableRng;
use rand::seq::SliceRandom;

#[path = "common/mage_expected.rs"]
mod mage_expected;
use mage_expected::Summary;

fn recording(orchestrator: &str, scenario: &str) -> Vec<ChangeEvent> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("events/lifecycle/{orchestrator}/{scenario}.datastream.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| datastream::decode(serde_json::from_str(l).unwrap()).unwrap()).collect()
}

fn lifecycle(profile: &str) -> Lifecycle {
    let profiles = load(None, Some(&[profile.to_string()])).unwrap();
    Lifecycle::new(profiles, "metrics-project", std::time::Duration::from_secs(600))
}

/// Delivers the records in the given order through one fact memory; a transient failure is
/// delivered again after the others. Returns every point written.
async fn replay(lc: &Lifecycle, records: Vec<ChangeEvent>) -> Vec<Point> {
    let store = Memory::new(10_000);
    let mut queue: VecDeque<ChangeEvent> = records.into();
    let mut points = Vec::new();
    let mut redeliveries = 0;
    while let Some(e) = queue.pop_front() {
        // delivered one second after the change: young enough to wait for its parent row
        let now = e.source_timestamp.with_timezone(&Utc) + ChronoDuration::seconds(1);
        match lc.derive(&e, &store, now).await {
            Ok(d) => points.extend(d.points),
            Err(err) => {
                assert_eq!(err.kind(), "parent_not_seen", "{err}");
                redeliveries += 1;
                assert!(redeliveries < 10_000, "endless redelivery");
                queue.push_back(e);
            }
        }
    }
    points
}

fn summary(points: &[Point]) -> Summary {
    let mut counters = BTreeMap::new();
    let mut histograms: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.name != names::CDC_LAG) {
        let key = mage_expected::key(&p.name, &p.labels);
        match p.kind {
            PointKind::Counter => *counters.entry(key).or_default() += p.value,
            PointKind::Histogram => histograms.entry(key).or_default().push((p.value * 1e6).round() as i64),
            PointKind::Gauge => panic!("lifecycle points are counters and histograms: {p:?}"),
        }
    }
    histograms.values_mut().for_each(|v| v.sort());
    (counters, histograms)
}

/// Replays a recording in order, reversed, shuffled (five seeds) and duplicated-and-shuffled,
/// and checks that every order gives `expected`.
async fn check(profile: &str, orchestrator: &str, scenario: &str, expected: &Summary) {
    let lc = lifecycle(profile);
    let records = recording(orchestrator, scenario);
    let mut orders: Vec<(String, Vec<ChangeEvent>)> = vec![("in order".into(), records.clone())];
    orders.push(("reversed".into(), records.iter().rev().cloned().collect()));
    for seed in 0..5u64 {
        let mut shuffled = records.clone();
        shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        orders.push((format!("shuffled, seed {seed}"), shuffled));
        let mut twice: Vec<ChangeEvent> = records.iter().chain(records.iter()).cloned().collect();
        twice.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed + 100));
        orders.push((format!("every record twice, shuffled, seed {seed}"), twice));
    }
    for (name, order) in orders {
        let got = summary(&replay(&lc, order).await);
        assert_eq!(got.0, expected.0, "{orchestrator}/{scenario} {name}: counters");
        assert_eq!(got.1, expected.1, "{orchestrator}/{scenario} {name}: histograms (µs)");
    }
}

/// `mage/success`: the facts and values of `mage_expected::success`.
#[tokio::test]
async fn mage_success() {
    check("mage", "mage", "success", &mage_expected::success()).await;
}

/// `mage/block_failure`: the facts and values of `mage_expected::block_failure`.
#[tokio::test]
async fn mage_block_failure() {
    check("mage", "mage", "block_failure", &mage_expected::block_failure()).await;
}

/// `mage/retry`: the facts and values of `mage_expected::retry`.
#[tokio::test]
async fn mage_retry() {
    check("mage", "mage", "retry", &mage_expected::retry()).await;
}

/// `mage/cancel`: the facts and values of `mage_expected::cancel`.
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
