//! The Dagster profile (profiles/dagster.toml) against recorded runs of dagster 1.13.27
//! (events/lifecycle/dagster): every recording replayed in order, reversed, shuffled and with
//! every record delivered twice (the harness in tests/common/lifecycle.rs), through every
//! built-in profile at once.
//!
//! Expected values are written from each scenario's oracle (`<scenario>.expected.json`: run
//! records, tags and step stats read through DagsterInstance after the run): queue_wait_s,
//! duration_s, each step's status, parent_run_id.

mod common;

use common::lifecycle::{Summary, all_profiles, check_with, expect, metric};
use pipeline_run_metrics::handlers::lifecycle::names;

fn run(name: &str, job: &str, extra: &[&str]) -> String {
    let pipeline = format!("pipeline={job}");
    let mut labels = vec!["orchestrator=dagster", pipeline.as_str()];
    labels.extend_from_slice(extra);
    metric(name, &labels)
}

fn step(name: &str, job: &str, step: &str, extra: &[&str]) -> String {
    let (pipeline, task) = (format!("pipeline={job}"), format!("task={step}"));
    let mut labels = vec!["orchestrator=dagster", pipeline.as_str(), task.as_str()];
    labels.extend_from_slice(extra);
    metric(name, &labels)
}

/// Dagster runs carry no run kind the profile reads.
const KIND: &str = "run_kind=unknown";
const STEP_OK: [&str; 2] = ["result=success", "status=STEP_SUCCESS"];
const STEP_FAILED: [&str; 2] = ["result=failure", "status=STEP_FAILURE"];

async fn check(scenario: &str, expected: &Summary) {
    check_with(&all_profiles(), "dagster", scenario, expected).await;
}

/// `success`: job `etl_ok`, three steps, SUCCESS; the row goes NOT_STARTED -> QUEUED ->
/// STARTING (twice) -> STARTED -> SUCCESS (raw lines 6-154).
#[tokio::test]
async fn success() {
    let j = "etl_ok";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, j, &[KIND]), 1.0),
            (&run(names::RUN_FINISHED, j, &[KIND, "result=success", "status=SUCCESS"]), 1.0),
            (&step(names::TASK_FINISHED, j, "extract", &STEP_OK), 1.0),
            (&step(names::TASK_FINISHED, j, "transform", &STEP_OK), 1.0),
            (&step(names::TASK_FINISHED, j, "load", &STEP_OK), 1.0),
        ],
        &[
            // duration_s: end_time 13:53:57.548055 - start_time 13:53:47.329791
            (&run(names::RUN_DURATION, j, &["result=success"]), &[10.218264]),
            // queue_wait_s: start_time - create_timestamp 13:53:42.391389
            (&run(names::RUN_QUEUE_WAIT, j, &[]), &[4.938402]),
        ],
    );
    check("success", &expected).await;
}

/// `failure`: job `etl_flaky`; `flaky_transform` fails (STEP_FAILURE, raw line 100), `load` is
/// never reached and writes no event at all; the run is FAILURE (line 114).
#[tokio::test]
async fn failure() {
    let j = "etl_flaky";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, j, &[KIND]), 1.0),
            (&run(names::RUN_FINISHED, j, &[KIND, "result=failure", "status=FAILURE"]), 1.0),
            (&step(names::TASK_FINISHED, j, "extract", &STEP_OK), 1.0),
            (&step(names::TASK_FINISHED, j, "flaky_transform", &STEP_FAILED), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, j, &["result=failure"]), &[7.726789]),
            (&run(names::RUN_QUEUE_WAIT, j, &[]), &[3.535459]),
        ],
    );
    check("failure", &expected).await;
}

/// `reexecution`: the failed run re-executed FROM_FAILURE is a new run (new run_id, raw line 4)
/// tagged dagster/parent_run_id = the failed run: one retry, and its own start and success; the
/// parent's row is not touched.
#[tokio::test]
async fn reexecution() {
    let j = "etl_flaky";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, j, &[KIND]), 1.0),
            (&run(names::RUN_FINISHED, j, &[KIND, "result=success", "status=SUCCESS"]), 1.0),
            (&run(names::RUN_RETRIED, j, &[]), 1.0),
            (&step(names::TASK_FINISHED, j, "flaky_transform", &STEP_OK), 1.0),
            (&step(names::TASK_FINISHED, j, "load", &STEP_OK), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, j, &["result=success"]), &[12.462225]),
            (&run(names::RUN_QUEUE_WAIT, j, &[]), &[7.13319]),
        ],
    );
    check("reexecution", &expected).await;
}

/// `cancel`: run A (`etl_slow`) terminated while `slow_step` runs: CANCELED, and the step is
/// written as STEP_FAILURE (raw line 102), so it counts as a step failure. Run B (`etl_ok`)
/// cancelled while QUEUED: CANCELED with end_time and no start_time (line 90): finished, no
/// start, no duration, no queue wait.
#[tokio::test]
async fn cancel() {
    let cancelled = ["result=cancellation", "status=CANCELED"];
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, "etl_slow", &[KIND]), 1.0),
            (&run(names::RUN_FINISHED, "etl_slow", &[KIND, cancelled[0], cancelled[1]]), 1.0),
            (&step(names::TASK_FINISHED, "etl_slow", "slow_step", &STEP_FAILED), 1.0),
            (&run(names::RUN_FINISHED, "etl_ok", &[KIND, cancelled[0], cancelled[1]]), 1.0),
        ],
        &[
            // run A: duration_s 10.800477 (13:55:06.128096 - 13:54:55.327619), queue_wait_s 7.05106
            (&run(names::RUN_DURATION, "etl_slow", &["result=cancellation"]), &[10.800477]),
            (&run(names::RUN_QUEUE_WAIT, "etl_slow", &[]), &[7.05106]),
        ],
    );
    check("cancel", &expected).await;
}
