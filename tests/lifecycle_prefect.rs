//! The Prefect profile (profiles/prefect.toml) against recorded runs of prefect 3.9.1
//! (events/lifecycle/prefect): every recording replayed in order, reversed, shuffled and with
//! every record delivered twice (the harness in tests/common/lifecycle.rs), through every
//! built-in profile at once. Flow runs are named by their flow (`flow` table, a lookup), task
//! runs by their flow run.
//!
//! Expected values are written from each scenario's oracle (`<scenario>.expected.json`: the
//! Prefect server's REST API after the run, with every state of every flow and task run): run
//! durations end_time - start_time, queue waits start_time - created (flow runs) and
//! start_time - expected_start_time (task runs: their Pending state's time), schedule delays
//! start_time - expected_start_time.

mod common;

use common::lifecycle::{Summary, all_profiles, check_with, expect, metric};
use pipeline_run_metrics::handlers::lifecycle::names;

fn run(name: &str, flow: &str, extra: &[&str]) -> String {
    let pipeline = format!("pipeline={flow}");
    let mut labels = vec!["orchestrator=prefect", pipeline.as_str()];
    labels.extend_from_slice(extra);
    metric(name, &labels)
}

fn task(name: &str, flow: &str, task_key: &str, extra: &[&str]) -> String {
    let (pipeline, task) = (format!("pipeline={flow}"), format!("task={task_key}"));
    let mut labels = vec!["orchestrator=prefect", pipeline.as_str(), task.as_str()];
    labels.extend_from_slice(extra);
    metric(name, &labels)
}

const ADHOC: &str = "run_kind=adhoc";
const DEPLOYMENT: &str = "run_kind=deployment";
const COMPLETED: [&str; 2] = ["result=success", "status=COMPLETED"];
const OK: &str = "result=success";
const EXTRACT: &str = "extract-938c9fd8";
const TRANSFORM: &str = "transform-3c09aec5";
const LOAD: &str = "load-0e4d308b";

async fn check(scenario: &str, expected: &Summary) {
    check_with(&all_profiles(), "prefect", scenario, expected).await;
}

/// `success`: flow `etl-ok` called directly (no deployment); the first task run is inserted
/// already RUNNING (raw line 12).
#[tokio::test]
async fn success() {
    let f = "etl-ok";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, f, &[ADHOC]), 1.0),
            (&run(names::RUN_FINISHED, f, &[ADHOC, COMPLETED[0], COMPLETED[1]]), 1.0),
            (&task(names::TASK_FINISHED, f, EXTRACT, &COMPLETED), 1.0),
            (&task(names::TASK_FINISHED, f, TRANSFORM, &COMPLETED), 1.0),
            (&task(names::TASK_FINISHED, f, LOAD, &COMPLETED), 1.0),
        ],
        &[
            // 13:39:04.736997 - 13:39:01.665282
            (&run(names::RUN_DURATION, f, &[OK]), &[3.071715]),
            // start_time - created 13:39:01.626858
            (&run(names::RUN_QUEUE_WAIT, f, &[]), &[0.038424]),
            // start_time - expected_start_time 13:39:01.626632
            (&run(names::RUN_SCHEDULE_DELAY, f, &[]), &[0.03865]),
            (&task(names::TASK_DURATION, f, EXTRACT, &[OK]), &[1.001968]),
            (&task(names::TASK_DURATION, f, TRANSFORM, &[OK]), &[1.001191]),
            (&task(names::TASK_DURATION, f, LOAD, &[OK]), &[1.001311]),
            // Running - Pending state times
            (&task(names::TASK_QUEUE_WAIT, f, EXTRACT, &[]), &[0.010659]),
            (&task(names::TASK_QUEUE_WAIT, f, TRANSFORM, &[]), &[0.000473]),
            (&task(names::TASK_QUEUE_WAIT, f, LOAD, &[]), &[0.000466]),
        ],
    );
    check("success", &expected).await;
}

/// `task_failure`: `broken_transform` fails; `load` never gets a task run row; the flow run
/// fails (raw line 34; line 35 only sets state_id).
#[tokio::test]
async fn task_failure() {
    let f = "etl-task-failure";
    let failed = ["result=failure", "status=FAILED"];
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, f, &[ADHOC]), 1.0),
            (&run(names::RUN_FINISHED, f, &[ADHOC, failed[0], failed[1]]), 1.0),
            (&task(names::TASK_FINISHED, f, EXTRACT, &COMPLETED), 1.0),
            (&task(names::TASK_FINISHED, f, "broken_transform-72cb1b3b", &failed), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, f, &["result=failure"]), &[3.030564]),
            (&run(names::RUN_QUEUE_WAIT, f, &[]), &[0.01758]),
            (&run(names::RUN_SCHEDULE_DELAY, f, &[]), &[0.017762]),
            (&task(names::TASK_DURATION, f, EXTRACT, &[OK]), &[1.001421]),
            (&task(names::TASK_DURATION, f, "broken_transform-72cb1b3b", &["result=failure"]), &[1.004122]),
            (&task(names::TASK_QUEUE_WAIT, f, EXTRACT, &[]), &[0.000442]),
            (&task(names::TASK_QUEUE_WAIT, f, "broken_transform-72cb1b3b", &[]), &[0.00045]),
        ],
    );
    check("task_failure", &expected).await;
}

/// `task_retry`: `flaky_transform` keeps its row across its retry: Running -> AwaitingRetry
/// (SCHEDULED, no Failed state) -> Retrying (run_count 2) -> Completed (raw lines 24-39): one
/// retry, one success, one start; its duration spans both attempts and the retry wait.
#[tokio::test]
async fn task_retry() {
    let f = "etl-task-retry";
    let flaky = "flaky_transform-8fb09b5e";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, f, &[ADHOC]), 1.0),
            (&run(names::RUN_FINISHED, f, &[ADHOC, COMPLETED[0], COMPLETED[1]]), 1.0),
            (&task(names::TASK_FINISHED, f, EXTRACT, &COMPLETED), 1.0),
            (&task(names::TASK_FINISHED, f, flaky, &COMPLETED), 1.0),
            (&task(names::TASK_RETRIED, f, flaky, &[]), 1.0),
            (&task(names::TASK_FINISHED, f, LOAD, &COMPLETED), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, f, &[OK]), &[6.051185]),
            (&run(names::RUN_QUEUE_WAIT, f, &[]), &[0.013078]),
            (&run(names::RUN_SCHEDULE_DELAY, f, &[]), &[0.013326]),
            (&task(names::TASK_DURATION, f, EXTRACT, &[OK]), &[1.001521]),
            // end_time 13:39:27.346276 - start_time 13:39:23.342179 (the first attempt's)
            (&task(names::TASK_DURATION, f, flaky, &[OK]), &[4.004097]),
            (&task(names::TASK_DURATION, f, LOAD, &[OK]), &[1.002]),
            (&task(names::TASK_QUEUE_WAIT, f, EXTRACT, &[]), &[0.001744]),
            (&task(names::TASK_QUEUE_WAIT, f, flaky, &[]), &[0.000485]),
            (&task(names::TASK_QUEUE_WAIT, f, LOAD, &[]), &[0.000537]),
        ],
    );
    check("task_retry", &expected).await;
}

/// `flow_retry`: the flow run retries in process on its row: RUNNING run_count 1 ->
/// SCHEDULED/AwaitingRetry -> RUNNING run_count 2, start_time unchanged (raw lines 9, 35, 41) ->
/// COMPLETED (line 77): one start, one retry, one success. The second attempt runs its tasks as
/// new task runs: extract and transform finish twice.
#[tokio::test]
async fn flow_retry() {
    let f = "etl-flow-retry";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, f, &[ADHOC]), 1.0),
            (&run(names::RUN_RETRIED, f, &[]), 1.0),
            (&run(names::RUN_FINISHED, f, &[ADHOC, COMPLETED[0], COMPLETED[1]]), 1.0),
            (&task(names::TASK_FINISHED, f, EXTRACT, &COMPLETED), 2.0),
            (&task(names::TASK_FINISHED, f, TRANSFORM, &COMPLETED), 2.0),
            (&task(names::TASK_FINISHED, f, LOAD, &COMPLETED), 1.0),
        ],
        &[
            // 13:39:44.501796 - 13:39:36.384807 (both attempts and the retry wait)
            (&run(names::RUN_DURATION, f, &[OK]), &[8.116989]),
            (&run(names::RUN_QUEUE_WAIT, f, &[]), &[0.016335]),
            (&run(names::RUN_SCHEDULE_DELAY, f, &[]), &[0.016592]),
            (&task(names::TASK_DURATION, f, EXTRACT, &[OK]), &[1.002679, 1.001432]),
            (&task(names::TASK_DURATION, f, TRANSFORM, &[OK]), &[1.001501, 1.001659]),
            (&task(names::TASK_DURATION, f, LOAD, &[OK]), &[1.00146]),
            (&task(names::TASK_QUEUE_WAIT, f, EXTRACT, &[]), &[0.000519, 0.000509]),
            (&task(names::TASK_QUEUE_WAIT, f, TRANSFORM, &[]), &[0.000476, 0.00046]),
            (&task(names::TASK_QUEUE_WAIT, f, LOAD, &[]), &[0.000451]),
        ],
    );
    check("flow_retry", &expected).await;
}

/// `late`: a deployment's run waits with no runner serving it; the server marks it Late (a
/// state name on a SCHEDULED run, raw line 13): one SLA miss; lateness 24.373028 s.
#[tokio::test]
async fn late() {
    let f = "etl-late";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, f, &[DEPLOYMENT]), 1.0),
            (&run(names::RUN_FINISHED, f, &[DEPLOYMENT, COMPLETED[0], COMPLETED[1]]), 1.0),
            (&run(names::RUN_SLA_MISSED, f, &[]), 1.0),
            (&task(names::TASK_FINISHED, f, EXTRACT, &COMPLETED), 1.0),
            (&task(names::TASK_FINISHED, f, TRANSFORM, &COMPLETED), 1.0),
            (&task(names::TASK_FINISHED, f, LOAD, &COMPLETED), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, f, &[OK]), &[3.09746]),
            // start_time 13:40:16.828253 - created 13:39:52.471969
            (&run(names::RUN_QUEUE_WAIT, f, &[]), &[24.356284]),
            // start_time - expected_start_time 13:39:52.455225
            (&run(names::RUN_SCHEDULE_DELAY, f, &[]), &[24.373028]),
            (&task(names::TASK_DURATION, f, EXTRACT, &[OK]), &[1.005677]),
            (&task(names::TASK_DURATION, f, TRANSFORM, &[OK]), &[1.001871]),
            (&task(names::TASK_DURATION, f, LOAD, &[OK]), &[1.001978]),
            (&task(names::TASK_QUEUE_WAIT, f, EXTRACT, &[]), &[0.00231]),
            (&task(names::TASK_QUEUE_WAIT, f, TRANSFORM, &[]), &[0.003495]),
            (&task(names::TASK_QUEUE_WAIT, f, LOAD, &[]), &[0.001246]),
        ],
    );
    check("late", &expected).await;
}

/// `cancel`: a deployment's run cancelled through the API while running: CANCELLING (end_time
/// still NULL, raw line 42) -> CANCELLED with end_time (line 51); the completed task is
/// untouched, `load` never gets a row.
#[tokio::test]
async fn cancel() {
    let f = "etl-slow";
    let cancelled = ["result=cancellation", "status=CANCELLED"];
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, f, &[DEPLOYMENT]), 1.0),
            (&run(names::RUN_FINISHED, f, &[DEPLOYMENT, cancelled[0], cancelled[1]]), 1.0),
            (&task(names::TASK_FINISHED, f, EXTRACT, &COMPLETED), 1.0),
        ],
        &[
            // 13:40:39.270228 - 13:40:31.972199
            (&run(names::RUN_DURATION, f, &["result=cancellation"]), &[7.298029]),
            (&run(names::RUN_QUEUE_WAIT, f, &[]), &[1.881839]),
            (&run(names::RUN_SCHEDULE_DELAY, f, &[]), &[1.91519]),
            (&task(names::TASK_DURATION, f, EXTRACT, &[OK]), &[1.001653]),
            (&task(names::TASK_QUEUE_WAIT, f, EXTRACT, &[]), &[0.008531]),
        ],
    );
    check("cancel", &expected).await;
}
