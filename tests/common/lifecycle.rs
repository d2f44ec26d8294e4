//! The replay harness of the lifecycle tests: a recording of real orchestrator runs, in both its
//! Datastream and Debezium forms (events/lifecycle/<orchestrator>/<scenario>.{datastream,debezium}.jsonl),
//! delivered in order, reversed,
//! shuffled (five seeds) and with every record delivered twice, through one fact memory; the
//! points summed by metric and labels, to compare with expectations written by hand from each
//! scenario's oracle (`.expected.json`) and raw WAL capture.
//!
//! A record whose parent row (the pipeline name of a task) has not arrived yet is answered as a
//! transient failure: the replay delivers it again later, as Pub/Sub would.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use chrono::{Duration as ChronoDuration, Utc};
use pipeline_run_metrics::decode::{self, ChangeEvent};
use pipeline_run_metrics::facts::memory::Memory;
use pipeline_run_metrics::handlers::lifecycle::{Lifecycle, load, names};
use pipeline_run_metrics::sink::{Point, PointKind};
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// The change-record forms every recording exists in.
pub const FORMS: [&str; 2] = ["datastream", "debezium"];

/// The Datastream form of a recording.
pub fn recording(orchestrator: &str, scenario: &str) -> Vec<ChangeEvent> {
    recording_as(orchestrator, scenario, "datastream")
}

/// One form of a recording (`datastream` or `debezium`), each line decoded as the function
/// decodes a change record of unknown format.
pub fn recording_as(orchestrator: &str, scenario: &str, form: &str) -> Vec<ChangeEvent> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("events/lifecycle/{orchestrator}/{scenario}.{form}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| decode::record(serde_json::from_str(l).unwrap()).unwrap()).collect()
}

/// The built-in profile `profile` alone.
pub fn lifecycle(profile: &str) -> Lifecycle {
    let profiles = load(None, Some(&[profile.to_string()])).unwrap();
    Lifecycle::new(profiles, "metrics-project", std::time::Duration::from_secs(600))
}

/// Every built-in profile, as the service loads them by default.
pub fn all_profiles() -> Lifecycle {
    Lifecycle::new(load(None, None).unwrap(), "metrics-project", std::time::Duration::from_secs(600))
}

/// Delivers the records in the given order through one fact memory; a transient failure is
/// delivered again after the others. Returns every point written.
pub async fn replay(lc: &Lifecycle, records: Vec<ChangeEvent>) -> Vec<Point> {
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

fn label_text(p: &Point) -> String {
    p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Counters summed and histogram observations (microseconds) sorted, by metric and labels;
/// CDC lag aside (it is per record, not per fact).
pub type Summary = (BTreeMap<String, f64>, BTreeMap<String, Vec<i64>>);

pub fn summary(points: &[Point]) -> Summary {
    let mut counters = BTreeMap::new();
    let mut histograms: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.name != names::CDC_LAG) {
        let key = format!("{} {{{}}}", p.name, label_text(p));
        match p.kind {
            PointKind::Counter => *counters.entry(key).or_default() += p.value,
            PointKind::Histogram => histograms.entry(key).or_default().push((p.value * 1e6).round() as i64),
            PointKind::Gauge => panic!("lifecycle points are counters and histograms: {p:?}"),
        }
    }
    histograms.values_mut().for_each(|v| v.sort());
    (counters, histograms)
}

/// The orders a recording is replayed in: in order, reversed, shuffled (five seeds), and every
/// record twice, shuffled (five seeds).
pub fn orders(records: &[ChangeEvent]) -> Vec<(String, Vec<ChangeEvent>)> {
    let mut orders: Vec<(String, Vec<ChangeEvent>)> = vec![("in order".into(), records.to_vec())];
    orders.push(("reversed".into(), records.iter().rev().cloned().collect()));
    for seed in 0..5u64 {
        let mut shuffled = records.to_vec();
        shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        orders.push((format!("shuffled, seed {seed}"), shuffled));
        let mut twice: Vec<ChangeEvent> = records.iter().chain(records.iter()).cloned().collect();
        twice.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed + 100));
        orders.push((format!("every record twice, shuffled, seed {seed}"), twice));
    }
    orders
}

/// The summary of the recording in every form and every order of [`orders`], through `lc`.
pub async fn summaries(lc: &Lifecycle, orchestrator: &str, scenario: &str) -> Vec<(String, Summary)> {
    let mut out = Vec::new();
    for form in FORMS {
        for (name, order) in orders(&recording_as(orchestrator, scenario, form)) {
            out.push((format!("{form}, {name}"), summary(&replay(lc, order).await)));
        }
    }
    out
}

/// Replays a recording in every order of [`orders`] with the built-in profile `profile`, and
/// checks that every order gives `expected`.
pub async fn check(profile: &str, orchestrator: &str, scenario: &str, expected: &Summary) {
    check_with(&lifecycle(profile), orchestrator, scenario, expected).await;
}

/// [`check`] through the given profiles.
pub async fn check_with(lc: &Lifecycle, orchestrator: &str, scenario: &str, expected: &Summary) {
    for (name, got) in summaries(lc, orchestrator, scenario).await {
        assert_eq!(got.0, expected.0, "{orchestrator}/{scenario} {name}: counters");
        assert_eq!(got.1, expected.1, "{orchestrator}/{scenario} {name}: histograms (µs)");
    }
}

/// Expected facts, written from the scenario's oracle: `("metric {labels}", count)` and
/// `("metric {labels}", [seconds...])`.
pub fn expect(counters: &[(&str, f64)], histograms: &[(&str, &[f64])]) -> Summary {
    let c = counters.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    let h = histograms
        .iter()
        .map(|(k, v)| {
            let mut us: Vec<i64> = v.iter().map(|s| (s * 1e6).round() as i64).collect();
            us.sort();
            (k.to_string(), us)
        })
        .collect();
    (c, h)
}

/// A summary key: the metric and its labels (`"k=v"` each, in any order).
pub fn metric(name: &str, labels: &[&str]) -> String {
    let mut labels: Vec<&str> = labels.to_vec();
    labels.sort();
    format!("{name} {{{}}}", labels.join(","))
}
