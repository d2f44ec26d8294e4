//! What the recorded Mage runs (events/lifecycle/mage/) must give, written from each scenario's
//! oracle (its `.expected.json` and raw WAL capture), not from the implementation. Shared by
//! tests/lifecycle.rs (one process, every order) and tests/fact_stores.rs (two processes and a
//! shared store).
#![allow(dead_code)]

use std::collections::BTreeMap;

use pipeline_run_metrics::handlers::lifecycle::names;

/// Counters summed and histogram observations (microseconds) sorted, by `"metric {labels}"`
/// (labels `k=v`, sorted, comma-separated); CDC lag aside (it is per record, not per fact).
pub type Summary = (BTreeMap<String, f64>, BTreeMap<String, Vec<i64>>);

/// The summary key of a point: `"metric {k=v,...}"`.
pub fn key(metric: &str, labels: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{metric} {{{}}}", labels.join(","))
}

/// Every scenario's expectations in one summary (their pipelines differ, so no key is shared).
pub fn all() -> Summary {
    let mut out = Summary::default();
    for (counters, histograms) in [success(), block_failure(), retry(), cancel()] {
        for (k, v) in counters {
            assert!(out.0.insert(k.clone(), v).is_none(), "{k} in two scenarios");
        }
        for (k, v) in histograms {
            assert!(out.1.insert(k.clone(), v).is_none(), "{k} in two scenarios");
        }
    }
    out
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
pub fn success() -> Summary {
    let p = "fx_success";
    let ok = "result=success,status=COMPLETED";
    expect(
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
    )
}

/// `mage/block_failure`: the second block FAILED, the run FAILED without completed_at (its end
/// is the commit of raw line 47, 13:31:09.471729; the block's, line 44, 13:30:59.510427), the
/// third block CANCELLED before it started.
pub fn block_failure() -> Summary {
    let p = "fx_fail";
    expect(
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
    )
}

/// `mage/retry`: one pipeline_run row goes FAILED -> RUNNING -> FAILED -> RUNNING -> COMPLETED
/// with the same started_at (raw lines 14, 35, 53, 65, 83, 104): one start, two failures (ends:
/// the commits of lines 35 and 65), one success, two retries. The flaky block fails twice and
/// succeeds; the export block is cancelled twice before it succeeds.
pub fn retry() -> Summary {
    let p = "fx_retry";
    expect(
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
    )
}

/// `mage/cancel`: cancelled through the API while the second block ran; no completed_at
/// anywhere: the run ends at the commit of raw line 32 (13:33:32.651119), the running block at
/// line 36's (13:33:32.667328); the third block never started.
pub fn cancel() -> Summary {
    let p = "fx_cancel";
    expect(
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
    )
}
