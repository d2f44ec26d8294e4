use super::*;
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 13, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn counter(pipeline: &str) -> Point {
    let labels = [("pipeline".to_string(), pipeline.to_string())].into_iter().collect();
    Point::counter("pipeline.run.finished", 1.0, "{run}", t0(), labels, "p")
}

fn histogram(x: f64) -> Point {
    Point::histogram("pipeline.run.duration", x, "s", t0(), Default::default(), "p")
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn task_ids_per_platform() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    let table: Vec<(TaskId, &str)> = vec![
        (TaskId::from_env(env(&[("K_REVISION", "svc-00012-abc")])), "svc-00012-abc-0123"),
        (
            TaskId::from_env(env(&[("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/30/[$LATEST]5d1f")])),
            "2026/11/30/[$LATEST]5d1f",
        ),
        (TaskId::from_env(env(&[("K_REVISION", " ")])), "0123"),
        (TaskId::from_env(env(&[])), "0123"),
    ];
    for (task, want) in table {
        assert_eq!(task.resolve("0123"), want, "{task:?}");
    }
}

#[test]
fn totals_accumulate_and_are_written_at_most_once_per_interval() {
    let mut st = State::default();
    st.add(&counter("a"), t0());
    st.add(&counter("a"), t0());
    st.add(&counter("b"), t0());
    // the first write is due at once
    let w1 = st.take_due(t0() + secs(1), MINUTE, false);
    let values: Vec<(&str, Total)> = w1.iter().map(|s| (s.key.labels[0].1.as_str(), s.value.clone())).collect();
    assert_eq!(values, vec![("a", Total::Count(2.0)), ("b", Total::Count(1.0))]);
    assert!(w1.iter().all(|s| s.start == t0() && s.end == t0() + secs(1)));
    w1.iter().for_each(|s| st.accepted(s));
    assert_eq!(st.pending(), 0);
    // within the interval: accumulated, not due
    st.add(&counter("a"), t0());
    assert!(st.take_due(t0() + secs(30), MINUTE, false).is_empty());
    assert_eq!(st.pending(), 1);
    // after it: only the series with new increments, with its running total, same start
    let w2 = st.take_due(t0() + secs(61), MINUTE, false);
    assert_eq!(w2.len(), 1);
    assert_eq!((w2[0].value.clone(), w2[0].start, w2[0].end), (Total::Count(3.0), t0(), t0() + secs(61)));
    // not accepted: written again at the next write, still with everything
    st.add(&counter("a"), t0());
    assert!(st.take_due(t0() + secs(62), MINUTE, false).is_empty(), "interval counts from the last write");
    let w3 = st.take_due(t0() + secs(121), MINUTE, false);
    assert_eq!(w3[0].value, Total::Count(4.0));
}

#[test]
fn a_forced_write_is_spaced_from_the_last_accepted_point_and_after_the_start() {
    let mut st = State::default();
    st.add(&counter("a"), t0());
    let w = st.take_due(t0(), MINUTE, false);
    assert_eq!(w[0].end, t0() + chrono::Duration::milliseconds(1), "start < end even at the start");
    st.accepted(&w[0]);
    st.add(&counter("a"), t0());
    assert!(st.take_due(t0() + secs(2), MINUTE, false).is_empty());
    let forced = st.take_due(t0() + secs(2), MINUTE, true);
    assert_eq!(forced[0].end, w[0].end + secs(5), "5 s after the last point, a little ahead of now");
}

#[test]
fn a_series_older_than_a_day_starts_again_from_its_last_point() {
    let mut st = State::default();
    st.add(&counter("a"), t0());
    let w = st.take_due(t0() + secs(10), MINUTE, false);
    st.accepted(&w[0]);
    // busy: written every minute for a day, then a new start at the last point
    for m in 1..24 * 60 {
        st.add(&counter("a"), t0());
        let w = st.take_due(t0() + secs(10 + 60 * m), MINUTE, false);
        assert_eq!(w[0].start, t0(), "minute {m}");
        st.accepted(&w[0]);
    }
    st.add(&counter("a"), t0());
    let day = t0() + secs(10 + 60 * (24 * 60 - 1));
    let w = st.take_due(day + secs(60), MINUTE, false);
    assert_eq!((w[0].start, w[0].end), (day, day + secs(60)));
    assert_eq!(w[0].value, Total::Count(1.0), "only what the new start has not seen");
    st.accepted(&w[0]);
    // idle for a day: the new start is one interval back
    st.add(&counter("a"), t0());
    st.add(&counter("a"), t0());
    let later = day + chrono::Duration::hours(25);
    let w = st.take_due(later, MINUTE, false);
    assert_eq!((w[0].start, w[0].value.clone()), (later - secs(60), Total::Count(2.0)));
    st.accepted(&w[0]);
    st.add(&counter("a"), t0());
    let w = st.take_due(later + secs(60), MINUTE, false);
    assert_eq!(
        (w[0].start, w[0].value.clone()),
        (later - secs(60), Total::Count(3.0)),
        "same start until the next day"
    );
    // never written and older than a day: starts one interval back with everything
    let mut st = State::default();
    st.add(&counter("b"), t0());
    let w = st.take_due(later, MINUTE, false);
    assert_eq!((w[0].start, w[0].value.clone()), (later - secs(60), Total::Count(1.0)));
}

/// (points, the one series of the body): every value type.
#[test]
fn series_bodies_per_kind() {
    let task = Resource::GenericTask {
        location: "global".into(),
        namespace: "ns".into(),
        job: "job".into(),
        task_id: "svc-1-abc".into(),
    };
    let resource = json!({"type": "generic_task", "labels": {"project_id": "p", "location": "global", "namespace": "ns", "job": "job", "task_id": "svc-1-abc"}});
    let interval = json!({"startTime": "2026-11-30T13:00:00.000000Z", "endTime": "2026-11-30T13:01:00.000000Z"});
    let mut bucket_counts = vec!["0".to_string(); SECONDS_BOUNDS.len() + 1];
    bucket_counts[5] = "1".into(); // 0.5 in [0.5, 1)
    bucket_counts[7] = "1".into(); // 2.5 in [2.5, 5)
    let table: Vec<(Vec<Point>, Value)> = vec![
        (
            vec![counter("a"), counter("a")],
            json!({"metric": {"type": "custom.googleapis.com/pipeline.run.finished", "labels": {"pipeline": "a"}},
                   "resource": resource, "metricKind": "CUMULATIVE", "valueType": "INT64", "unit": "{run}",
                   "points": [{"interval": interval, "value": {"int64Value": "2"}}]}),
        ),
        (
            vec![Point::counter("bytes.sent", 1.25, "By", t0(), Default::default(), "p")],
            json!({"metric": {"type": "custom.googleapis.com/bytes.sent", "labels": {}},
                   "resource": resource, "metricKind": "CUMULATIVE", "valueType": "DOUBLE", "unit": "By",
                   "points": [{"interval": interval, "value": {"doubleValue": 1.25}}]}),
        ),
        (
            vec![histogram(0.5), histogram(2.5)],
            json!({"metric": {"type": "custom.googleapis.com/pipeline.run.duration", "labels": {}},
                   "resource": resource, "metricKind": "CUMULATIVE", "valueType": "DISTRIBUTION", "unit": "s",
                   "points": [{"interval": interval, "value": {"distributionValue": {
                       "count": "2", "mean": 1.5, "sumOfSquaredDeviation": 2.0,
                       "bucketOptions": {"explicitBuckets": {"bounds": SECONDS_BOUNDS}},
                       "bucketCounts": bucket_counts}}}]}),
        ),
    ];
    for (points, want) in table {
        let mut st = State::default();
        points.iter().for_each(|p| st.add(p, t0()));
        let due = st.take_due(t0() + secs(60), MINUTE, false);
        assert_eq!(due.len(), 1);
        assert_eq!(series_json(&due[0], &task), want);
    }
}

#[test]
fn settings_name_the_instance() {
    let instance = Instance { id: "abc".into(), started: t0() };
    let c = Cumulative { task: TaskId::CloudRun { revision: "svc-00001-xyz".into() }, ..Cumulative::default() };
    let s = c.settings(&instance);
    assert_eq!(s.start, t0());
    assert_eq!(
        s.resource,
        Resource::GenericTask {
            location: "global".into(),
            namespace: "pipeline-run-metrics".into(),
            job: "pipeline-run-metrics".into(),
            task_id: "svc-00001-xyz-abc".into(),
        }
    );
    let short = Cumulative { interval: Duration::from_secs(1), ..Cumulative::default() };
    assert_eq!(short.settings(&instance).interval, MIN_SPACING);
}
