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

fn label_text(p: &Point) -> String {
    p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Counters summed and histogram observations (microseconds) sorted, by metric and labels;
/// CDC lag aside (it is per record, not per fact).
type Summary = (BTreeMap<String, f64>, BTreeMap<String, Vec<i64>>);

fn summary(points: &[Point]) -> Summary {
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

/// Expected facts, written from the scenario's oracle: `("metric {labels}", count)` and
/// `("metric {labels}", [seconds...])`.
fn expect(counters: &[(&str, f64)], histograms: &[(&str, &[f64])]) -> Summary {
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

const RUN: &str = "orchestrator=mage,partner=acme";

fn run(metric: &str, pipeline: &str, extra: &str) -> String {
    let mut labels: Vec<String> = RUN.split(',').map(str::to_string).collect();
    labels.push(format!("pipeline={pipeline}"));
    labels.extend(extra.split(',').filter(|s| !s.is_empty()).map(str::to_string));
    labels.sort();
    format!("{metric} {{{}}}", labels.join(","))
}

fn task(metric: &str, pipeline: &str, task: &str, extra: &str) -> String {
    let mut labels = vec!["orchestrator=mage".to_string(), format!("pipeline={pipeline}"), format!("task={task}")];
    labels.extend(extra.split(',').filter(|s| !s.is_empty()).map(str::to_string));
    labels.sort();
    format!("{metric} {{{}}}", labels.join(","))
}

/// `mage/success`: three blocks, the run COMPLETED (raw lines 2–44).
#[tokio::test]
async fn mage_success() {
    let p = "fx_success";
    let ok = "result=success,status=COMPLETED";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, p, "run_kind=schedule"), 1.0),
            (&run(names::RUN_FINISHED, p, &format!("run_kind=schedule,{ok}")), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_load", ok), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_transform", ok), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_export", ok), 1.0),
        ],
        &[
            // completed_at 13:30:29.266496 - started_at 13:30:00.020430
            (&run(names::RUN_DURATION, p, "result=success"), &[29.246066]),
            // started_at - execution_date 13:29:58.331749 (later than created_at 13:29:57.198938)
            (&run(names::RUN_QUEUE_WAIT, p, ""), &[1.688681]),
            (&run(names::RUN_SCHEDULE_DELAY, p, ""), &[1.688681]),
            (&task(names::TASK_DURATION, p, "fx_load", "result=success"), &[0.031344]),
            (&task(names::TASK_DURATION, p, "fx_transform", "result=success"), &[0.031711]),
            (&task(names::TASK_DURATION, p, "fx_export", "result=success"), &[0.032406]),
            // block started_at - block created_at
            (&task(names::TASK_QUEUE_WAIT, p, "fx_load", ""), &[0.120293]),
            (&task(names::TASK_QUEUE_WAIT, p, "fx_transform", ""), &[9.174827]),
            (&task(names::TASK_QUEUE_WAIT, p, "fx_export", ""), &[19.251235]),
        ],
    );
    check("mage", "mage", "success", &expected).await;
}

/// `mage/block_failure`: the second block FAILED, the run FAILED without completed_at (its end
/// is the commit of raw line 47, 13:31:09.471729; the block's, line 44, 13:30:59.510427), the
/// third block CANCELLED before it started.
#[tokio::test]
async fn mage_block_failure() {
    let p = "fx_fail";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, p, "run_kind=schedule"), 1.0),
            (&run(names::RUN_FINISHED, p, "result=failure,run_kind=schedule,status=FAILED"), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_load", "result=success,status=COMPLETED"), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_transform_fails", "result=failure,status=FAILED"), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_export", "result=cancellation,status=CANCELLED"), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, p, "result=failure"), &[20.133958]),
            (&run(names::RUN_QUEUE_WAIT, p, ""), &[5.154445]),
            (&run(names::RUN_SCHEDULE_DELAY, p, ""), &[5.154445]),
            (&task(names::TASK_DURATION, p, "fx_load", "result=success"), &[0.030211]),
            (&task(names::TASK_DURATION, p, "fx_transform_fails", "result=failure"), &[0.031154]),
            (&task(names::TASK_QUEUE_WAIT, p, "fx_load", ""), &[0.116377]),
            (&task(names::TASK_QUEUE_WAIT, p, "fx_transform_fails", ""), &[10.144915]),
        ],
    );
    check("mage", "mage", "block_failure", &expected).await;
}

/// `mage/retry`: one pipeline_run row goes FAILED -> RUNNING -> FAILED -> RUNNING -> COMPLETED
/// with the same started_at (raw lines 14, 35, 53, 65, 83, 104): one start, two failures (ends:
/// the commits of lines 35 and 65), one success, two retries. The flaky block fails twice and
/// succeeds; the export block is cancelled twice before it succeeds.
#[tokio::test]
async fn mage_retry() {
    let p = "fx_retry";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, p, "run_kind=schedule"), 1.0),
            (&run(names::RUN_FINISHED, p, "result=failure,run_kind=schedule,status=FAILED"), 2.0),
            (&run(names::RUN_FINISHED, p, "result=success,run_kind=schedule,status=COMPLETED"), 1.0),
            (&run(names::RUN_RETRIED, p, ""), 2.0),
            (&task(names::TASK_FINISHED, p, "fx_load", "result=success,status=COMPLETED"), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_flaky", "result=failure,status=FAILED"), 2.0),
            (&task(names::TASK_FINISHED, p, "fx_flaky", "result=success,status=COMPLETED"), 1.0),
            (&task(names::TASK_RETRIED, p, "fx_flaky", ""), 2.0),
            (&task(names::TASK_FINISHED, p, "fx_export", "result=cancellation,status=CANCELLED"), 2.0),
            (&task(names::TASK_FINISHED, p, "fx_export", "result=success,status=COMPLETED"), 1.0),
            (&task(names::TASK_RETRIED, p, "fx_export", ""), 2.0),
        ],
        &[
            (&run(names::RUN_DURATION, p, "result=failure"), &[20.1821, 50.32055]),
            (&run(names::RUN_DURATION, p, "result=success"), &[89.558919]),
            (&run(names::RUN_QUEUE_WAIT, p, ""), &[4.34176]),
            (&run(names::RUN_SCHEDULE_DELAY, p, ""), &[4.34176]),
            (&task(names::TASK_DURATION, p, "fx_load", "result=success"), &[0.100073]),
            (&task(names::TASK_DURATION, p, "fx_flaky", "result=failure"), &[0.059267, 0.043378]),
            (&task(names::TASK_DURATION, p, "fx_flaky", "result=success"), &[0.063414]),
            (&task(names::TASK_DURATION, p, "fx_export", "result=success"), &[0.02859]),
            (&task(names::TASK_QUEUE_WAIT, p, "fx_load", ""), &[0.135881]),
            // every attempt's start minus the block's created_at (kept across retries)
            (&task(names::TASK_QUEUE_WAIT, p, "fx_flaky", ""), &[10.209533, 40.328112, 70.571331]),
            (&task(names::TASK_QUEUE_WAIT, p, "fx_export", ""), &[79.591519]),
        ],
    );
    check("mage", "mage", "retry", &expected).await;
}

/// `mage/cancel`: cancelled through the API while the second block ran; no completed_at
/// anywhere: the run ends at the commit of raw line 32 (13:33:32.651119), the running block at
/// line 36's (13:33:32.667328); the third block never started.
#[tokio::test]
async fn mage_cancel() {
    let p = "fx_cancel";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, p, "run_kind=schedule"), 1.0),
            (&run(names::RUN_FINISHED, p, "result=cancellation,run_kind=schedule,status=CANCELLED"), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_load", "result=success,status=COMPLETED"), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_slow", "result=cancellation,status=CANCELLED"), 1.0),
            (&task(names::TASK_FINISHED, p, "fx_export", "result=cancellation,status=CANCELLED"), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, p, "result=cancellation"), &[13.40745]),
            (&run(names::RUN_QUEUE_WAIT, p, ""), &[5.106138]),
            (&run(names::RUN_SCHEDULE_DELAY, p, ""), &[5.106138]),
            (&task(names::TASK_DURATION, p, "fx_load", "result=success"), &[0.029627]),
            (&task(names::TASK_DURATION, p, "fx_slow", "result=cancellation"), &[3.196777]),
            (&task(names::TASK_QUEUE_WAIT, p, "fx_load", ""), &[0.122505]),
            (&task(names::TASK_QUEUE_WAIT, p, "fx_slow", ""), &[10.230735]),
        ],
    );
    check("mage", "mage", "cancel", &expected).await;
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
