//! The Airflow profiles (profiles/airflow-3.toml, profiles/airflow-2.toml) against recorded runs
//! of apache-airflow 3.3.2 and 2.10.5 (events/lifecycle/airflow3, airflow2): every recording
//! replayed in order, reversed, shuffled and with every record delivered twice (the harness in
//! tests/common/lifecycle.rs), through every built-in profile at once, as the service loads them.
//!
//! Expected values are written from each scenario's oracle (`<scenario>.expected.json`: Airflow's
//! database and REST API read after the run, including `task_instance_history` and the `/tries`
//! view), and from the raw WAL capture (events/lifecycle/raw/<airflow3|airflow2>/<scenario>
//! .wal2json.jsonl, line numbers cited) where the oracle does not hold a value.

mod common;

use common::lifecycle::{Summary, all_profiles, check_with, expect, lifecycle, metric, recording, replay, summaries};
use pipeline_run_metrics::handlers::lifecycle::names;

fn run(name: &str, dag: &str, extra: &[&str]) -> String {
    let pipeline = format!("pipeline={dag}");
    let mut labels = vec!["orchestrator=airflow", pipeline.as_str()];
    labels.extend_from_slice(extra);
    metric(name, &labels)
}

fn task(name: &str, dag: &str, task: &str, extra: &[&str]) -> String {
    let (pipeline, task) = (format!("pipeline={dag}"), format!("task={task}"));
    let mut labels = vec!["orchestrator=airflow", pipeline.as_str(), task.as_str()];
    labels.extend_from_slice(extra);
    metric(name, &labels)
}

const MANUAL: &str = "run_kind=manual";
const SUCCESS: [&str; 2] = ["result=success", "status=success"];
const FAILED: [&str; 2] = ["result=failure", "status=failed"];

async fn check(orchestrator: &str, scenario: &str, expected: &Summary) {
    check_with(&all_profiles(), orchestrator, scenario, expected).await;
}

/// `airflow3/success`: three tasks succeed, the run succeeds (raw lines 8-100).
#[tokio::test]
async fn airflow3_success() {
    let d = "fx_success";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[MANUAL]), 1.0),
            (&run(names::RUN_FINISHED, d, &[MANUAL, SUCCESS[0], SUCCESS[1]]), 1.0),
            (&task(names::TASK_FINISHED, d, "extract", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "transform", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &SUCCESS), 1.0),
        ],
        &[
            // dag_runs[0]: end_date 13:36:58.276878 - start_date 13:36:53.168950
            (&run(names::RUN_DURATION, d, &["result=success"]), &[5.107928]),
            // start_date - queued_at 13:36:52.943097
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.225853]),
            // task_instances[].end_date - start_date (= their `duration`)
            (&task(names::TASK_DURATION, d, "extract", &["result=success"]), &[2.733647]),
            (&task(names::TASK_DURATION, d, "transform", &["result=success"]), &[0.147259]),
            (&task(names::TASK_DURATION, d, "load", &["result=success"]), &[0.12842]),
            // task_instances[].start_date - queued_dttm
            (&task(names::TASK_QUEUE_WAIT, d, "extract", &[]), &[0.143526]),
            (&task(names::TASK_QUEUE_WAIT, d, "transform", &[]), &[0.11081]),
            (&task(names::TASK_QUEUE_WAIT, d, "load", &[]), &[0.158706]),
        ],
    );
    check("airflow3", "success", &expected).await;
}

/// `airflow3/task_failure`: the second task fails (no retries), the third is upstream_failed
/// with start_date = end_date (raw line 86) and counts without a duration; the run fails.
#[tokio::test]
async fn airflow3_task_failure() {
    let d = "fx_task_failure";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[MANUAL]), 1.0),
            (&run(names::RUN_FINISHED, d, &[MANUAL, FAILED[0], FAILED[1]]), 1.0),
            (&task(names::TASK_FINISHED, d, "extract", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "transform_fails", &FAILED), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &["result=failure", "status=upstream_failed"]), 1.0),
        ],
        &[
            // 13:37:19.571455 - 13:37:12.098329
            (&run(names::RUN_DURATION, d, &["result=failure"]), &[7.473126]),
            // start_date - queued_at 13:37:11.580422
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.517907]),
            (&task(names::TASK_DURATION, d, "extract", &["result=success"]), &[0.13107]),
            (&task(names::TASK_DURATION, d, "transform_fails", &["result=failure"]), &[5.15083]),
            (&task(names::TASK_QUEUE_WAIT, d, "extract", &[]), &[0.113244]),
            (&task(names::TASK_QUEUE_WAIT, d, "transform_fails", &[]), &[0.020899]),
        ],
    );
    check("airflow3", "task_failure", &expected).await;
}

/// `airflow3/retry`: `flaky` fails on try 1 (up_for_retry; the TI id changes in place, raw lines
/// 66-68; task_instance_history and /tries say try 1 failed) and succeeds on try 2, whose
/// scheduled and queued rows still carry try 1's dates (line 86): one failed try, one retry, one
/// success, a queue wait per try, and no start taken from try 1's dates for try 2.
#[tokio::test]
async fn airflow3_retry() {
    let d = "fx_retry";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[MANUAL]), 1.0),
            (&run(names::RUN_FINISHED, d, &[MANUAL, SUCCESS[0], SUCCESS[1]]), 1.0),
            (&task(names::TASK_FINISHED, d, "extract", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "flaky", &["result=failure", "status=up_for_retry"]), 1.0),
            (&task(names::TASK_FINISHED, d, "flaky", &SUCCESS), 1.0),
            (&task(names::TASK_RETRIED, d, "flaky", &[]), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &SUCCESS), 1.0),
        ],
        &[
            // 13:37:40.595390 - 13:37:33.217299
            (&run(names::RUN_DURATION, d, &["result=success"]), &[7.378091]),
            // start_date - queued_at 13:37:32.503280
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.714019]),
            (&task(names::TASK_DURATION, d, "extract", &["result=success"]), &[0.086095]),
            // task_instance_history try 1: 13:37:34.418684 - 13:37:34.320173
            (&task(names::TASK_DURATION, d, "flaky", &["result=failure"]), &[0.098511]),
            // try 2: 13:37:38.573036 - 13:37:38.469185
            (&task(names::TASK_DURATION, d, "flaky", &["result=success"]), &[0.103851]),
            (&task(names::TASK_DURATION, d, "load", &["result=success"]), &[0.102688]),
            (&task(names::TASK_QUEUE_WAIT, d, "extract", &[]), &[0.01921]),
            // try 1: 13:37:34.320173 - queued 13:37:34.305445; try 2: 13:37:38.469185 - 13:37:38.449182
            (&task(names::TASK_QUEUE_WAIT, d, "flaky", &[]), &[0.014728, 0.020003]),
            (&task(names::TASK_QUEUE_WAIT, d, "load", &[]), &[0.012917]),
        ],
    );
    check("airflow3", "retry", &expected).await;
}

/// `airflow3/mark_failed`: the DeadlineAlert is missed (`deadline.missed` false -> true, raw line
/// 170), then the run is marked failed while `slow` runs: `slow` failed, `load` skipped (start =
/// end, line 192), the run failed (line 193). There is no cancel state.
#[tokio::test]
async fn airflow3_mark_failed() {
    let d = "fx_mark_failed";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[MANUAL]), 1.0),
            (&run(names::RUN_FINISHED, d, &[MANUAL, FAILED[0], FAILED[1]]), 1.0),
            (&run(names::RUN_SLA_MISSED, d, &[]), 1.0),
            (&task(names::TASK_FINISHED, d, "extract", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "slow", &FAILED), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &["result=skip", "status=skipped"]), 1.0),
        ],
        &[
            // 13:38:15.520099 - 13:37:53.252456
            (&run(names::RUN_DURATION, d, &["result=failure"]), &[22.267643]),
            // start_date - queued_at 13:37:52.432113
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.820343]),
            (&task(names::TASK_DURATION, d, "extract", &["result=success"]), &[0.080239]),
            (&task(names::TASK_DURATION, d, "slow", &["result=failure"]), &[21.178888]),
            (&task(names::TASK_QUEUE_WAIT, d, "extract", &[]), &[0.015417]),
            (&task(names::TASK_QUEUE_WAIT, d, "slow", &[]), &[0.022353]),
        ],
    );
    check("airflow3", "mark_failed", &expected).await;
}

/// `airflow2/success`: three tasks succeed, the run succeeds; the task processes rewrite the
/// dag_run with stale values in their own transactions (raw lines 64, 111, 158): no fact.
#[tokio::test]
async fn airflow2_success() {
    let d = "etl_ok";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[MANUAL]), 1.0),
            (&run(names::RUN_FINISHED, d, &[MANUAL, SUCCESS[0], SUCCESS[1]]), 1.0),
            (&task(names::TASK_FINISHED, d, "extract", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "transform", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &SUCCESS), 1.0),
        ],
        &[
            // dag_runs[0] end_date - start_date; start_date - queued_at
            (&run(names::RUN_DURATION, d, &["result=success"]), &[6.268204]),
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.662164]),
            // task_instances[]: end_date - start_date (= duration); start_date - queued_when
            (&task(names::TASK_DURATION, d, "extract", &["result=success"]), &[1.154039]),
            (&task(names::TASK_DURATION, d, "transform", &["result=success"]), &[1.143391]),
            (&task(names::TASK_DURATION, d, "load", &["result=success"]), &[1.248986]),
            (&task(names::TASK_QUEUE_WAIT, d, "extract", &[]), &[0.235149]),
            (&task(names::TASK_QUEUE_WAIT, d, "transform", &[]), &[0.120574]),
            (&task(names::TASK_QUEUE_WAIT, d, "load", &[]), &[0.281577]),
        ],
    );
    check("airflow2", "success", &expected).await;
}

/// `airflow2/task_failure`: `transform` fails (no retries), `load` goes from NULL straight to
/// upstream_failed with start = end and duration 0 (raw line 112): counted, no duration.
#[tokio::test]
async fn airflow2_task_failure() {
    let d = "etl_task_failure";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[MANUAL]), 1.0),
            (&run(names::RUN_FINISHED, d, &[MANUAL, FAILED[0], FAILED[1]]), 1.0),
            (&task(names::TASK_FINISHED, d, "extract", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "transform", &FAILED), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &["result=failure", "status=upstream_failed"]), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, d, &["result=failure"]), &[3.992484]),
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.223455]),
            (&task(names::TASK_DURATION, d, "extract", &["result=success"]), &[1.219492]),
            (&task(names::TASK_DURATION, d, "transform", &["result=failure"]), &[1.207513]),
            (&task(names::TASK_QUEUE_WAIT, d, "extract", &[]), &[0.132389]),
            (&task(names::TASK_QUEUE_WAIT, d, "transform", &[]), &[0.176145]),
        ],
    );
    check("airflow2", "task_failure", &expected).await;
}

/// `airflow2/task_retry`: `transform` try 1 ends up_for_retry (raw line 111; /tries: failed),
/// try 2 succeeds on the same row; try 2's scheduled/queued/running rows carry try 1's dates or
/// duration (lines 134-150) and add nothing.
#[tokio::test]
async fn airflow2_task_retry() {
    let d = "etl_task_retry";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[MANUAL]), 1.0),
            (&run(names::RUN_FINISHED, d, &[MANUAL, SUCCESS[0], SUCCESS[1]]), 1.0),
            (&task(names::TASK_FINISHED, d, "extract", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "transform", &["result=failure", "status=up_for_retry"]), 1.0),
            (&task(names::TASK_FINISHED, d, "transform", &SUCCESS), 1.0),
            (&task(names::TASK_RETRIED, d, "transform", &[]), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &SUCCESS), 1.0),
        ],
        &[
            (&run(names::RUN_DURATION, d, &["result=success"]), &[11.096242]),
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.252383]),
            (&task(names::TASK_DURATION, d, "extract", &["result=success"]), &[1.270088]),
            // tries[0] (failed): 13:49:10.644571 - 13:49:09.329665; tries[1]: 1.260533
            (&task(names::TASK_DURATION, d, "transform", &["result=failure"]), &[1.314906]),
            (&task(names::TASK_DURATION, d, "transform", &["result=success"]), &[1.260533]),
            (&task(names::TASK_DURATION, d, "load", &["result=success"]), &[1.266748]),
            (&task(names::TASK_QUEUE_WAIT, d, "extract", &[]), &[0.187834]),
            // try 1 (the oracle keeps only the last try's queued_when): start 13:49:09.329665
            // (raw line 88) - queued_dttm 13:49:08.861464 (line 76); try 2: start 13:49:14.029144
            // - queued_when 13:49:13.657393
            (&task(names::TASK_QUEUE_WAIT, d, "transform", &[]), &[0.468201, 0.371751]),
            (&task(names::TASK_QUEUE_WAIT, d, "load", &[]), &[0.18618]),
        ],
    );
    check("airflow2", "task_retry", &expected).await;
}

/// `airflow2/sla_miss`: two scheduled runs of `etl_sla` and one `sla_miss` insert (raw line 318,
/// execution_date = the next logical date): schedule delays start_date - data_interval_end.
#[tokio::test]
async fn airflow2_sla_miss() {
    let d = "etl_sla";
    let scheduled = "run_kind=scheduled";
    let expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[scheduled]), 2.0),
            (&run(names::RUN_FINISHED, d, &[scheduled, SUCCESS[0], SUCCESS[1]]), 2.0),
            (&run(names::RUN_SLA_MISSED, d, &[]), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &SUCCESS), 2.0),
        ],
        &[
            // runs 5 and 6: end_date - start_date, start_date - queued_at,
            // start_date - data_interval_end
            (&run(names::RUN_DURATION, d, &["result=success"]), &[1.808656, 46.393767]),
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.020559, 0.012833]),
            (&run(names::RUN_SCHEDULE_DELAY, d, &[]), &[9.237917, 0.540645]),
            (&task(names::TASK_DURATION, d, "load", &["result=success"]), &[1.242672, 45.257668]),
            (&task(names::TASK_QUEUE_WAIT, d, "load", &[]), &[0.364029, 0.171026]),
        ],
    );
    check("airflow2", "sla_miss", &expected).await;
}

/// `airflow2/mark_failed`: the run is marked failed (raw line 149: end_date 13:49:35.907138),
/// then the dying task process rewrites the failed row with end_date 13:49:45.195674 (line 213),
/// which the REST API reports (duration 17.518428 s). Both changes are one fact: exactly one
/// failure in every order. Its duration is taken from the terminal change delivered first: the
/// first one in log order (8.229892 s: 13:49:35.907138 - start 13:49:27.677246), the API's value
/// when line 213 arrives before line 149. A fact is written once, so the engine cannot prefer a
/// change that may still come (see profiles/airflow-2.toml).
#[tokio::test]
async fn airflow2_mark_failed() {
    let d = "etl_slow";
    let duration = run(names::RUN_DURATION, d, &["result=failure"]);
    let mut expected = expect(
        &[
            (&run(names::RUN_STARTED, d, &[MANUAL]), 1.0),
            (&run(names::RUN_FINISHED, d, &[MANUAL, FAILED[0], FAILED[1]]), 1.0),
            (&task(names::TASK_FINISHED, d, "extract", &SUCCESS), 1.0),
            (&task(names::TASK_FINISHED, d, "slow_step", &FAILED), 1.0),
            (&task(names::TASK_FINISHED, d, "load", &["result=skip", "status=skipped"]), 1.0),
        ],
        &[
            (&duration, &[8.229892]),
            // start_date 13:49:27.677246 - queued_at 13:49:27.419147
            (&run(names::RUN_QUEUE_WAIT, d, &[]), &[0.258099]),
            (&task(names::TASK_DURATION, d, "extract", &["result=success"]), &[1.174775]),
            // marked failed: 13:49:35.917159 - 13:49:30.018870 (tries[0].duration)
            (&task(names::TASK_DURATION, d, "slow_step", &["result=failure"]), &[5.898289]),
            (&task(names::TASK_QUEUE_WAIT, d, "extract", &[]), &[0.135909]),
            (&task(names::TASK_QUEUE_WAIT, d, "slow_step", &[]), &[0.191195]),
        ],
    );
    let api = 17_518_428;
    let lc = all_profiles();
    for (name, got) in summaries(&lc, "airflow2", "mark_failed").await {
        assert_eq!(got.0, expected.0, "airflow2/mark_failed {name}: counters");
        let observed = got.1[&duration].clone();
        assert!(observed == [8_229_892] || observed == [api], "airflow2/mark_failed {name}: {observed:?}");
        if name == "in order" {
            assert_eq!(observed, [8_229_892]);
        }
        expected.1.insert(duration.clone(), observed);
        assert_eq!(got.1, expected.1, "airflow2/mark_failed {name}: histograms (µs)");
    }
    // delivered in reverse, line 213 comes first: the API's duration
    let reversed: Vec<_> = recording("airflow2", "mark_failed").into_iter().rev().collect();
    let points = replay(&lc, reversed).await;
    let durations: Vec<f64> = points.iter().filter(|p| p.name == names::RUN_DURATION).map(|p| p.value).collect();
    assert_eq!(durations.len(), 1);
    assert_eq!((durations[0] * 1e6).round() as i64, api);
}

/// Airflow 2 and 3 describe tables of the same names; `requires` gives each row to one of them:
/// a recording of one version yields no fact through the other version's profile alone.
#[tokio::test]
async fn versions_tell_their_rows_apart() {
    for (profile, other) in [("airflow-3", "airflow2"), ("airflow-2", "airflow3")] {
        let lc = lifecycle(profile);
        for scenario in ["success", "mark_failed"] {
            let points = replay(&lc, recording(other, scenario)).await;
            assert!(points.is_empty(), "{other}/{scenario} through {profile}: {points:?}");
        }
    }
    let all = all_profiles();
    for (orchestrator, scenario) in [("airflow3", "retry"), ("airflow2", "task_retry")] {
        let want = if orchestrator == "airflow3" { "airflow-3" } else { "airflow-2" };
        for e in recording(orchestrator, scenario) {
            let read = all.table_of(&e).map(|(p, _)| p.name.clone());
            match e.table() {
                // read by no profile
                Some("task_instance_history" | "callback") => assert_eq!(read, None),
                table => assert_eq!(read.as_deref(), Some(want), "{orchestrator}/{scenario}: {table:?}"),
            }
        }
    }
}
