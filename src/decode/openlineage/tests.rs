use super::*;

/// As openlineage-python 1.54 serialises a COMPLETE of a task (parent run facet) with an
/// output's statistics and an error message facet.
fn complete() -> Value {
    json!({"eventTime": "2026-11-30T14:34:15.849400+00:00", "eventType": "COMPLETE", "inputs": [],
        "job": {"facets": {}, "name": "daily_load.extract", "namespace": "etl"},
        "outputs": [{"facets": {}, "name": "public.orders", "namespace": "postgres://db",
            "outputFacets": {"outputStatistics": {"rowCount": 1200, "size": 4096}}}],
        "producer": "https://example.com/my-orchestrator",
        "run": {"facets": {"errorMessage": {"message": "boom", "programmingLanguage": "python"},
            "parent": {"job": {"facets": {}, "name": "daily_load", "namespace": "etl"},
                       "run": {"facets": {}, "runId": "897b06bb-01b7-480b-b6a7-1a129f79ef70"}}},
            "runId": "1f78ff72-9d20-4266-bb69-ba7edeea7cd2"},
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"})
}

#[test]
fn a_task_run_of_its_parents_pipeline() {
    let e = decode(complete()).unwrap().unwrap();
    assert_eq!(e.table(), Some(TASK_TABLE));
    let row = &e.payload.as_ref().unwrap().row;
    assert_eq!(row["pipeline"], "etl/daily_load");
    assert_eq!(row["task"], "daily_load.extract");
    assert_eq!(row["state"], "COMPLETE");
    assert_eq!(row["end_time"], "2026-11-30T14:34:15.849400Z");
    assert_eq!(row["records"], 1200.0);
    assert!(!row.values().any(|v| v == "boom"), "the error message is not carried");
    assert_eq!(e.source_timestamp.timestamp_micros(), 1796049255849400);
}

#[test]
fn a_run_without_parent_and_events_without_run() {
    let mut v = complete();
    v["run"]["facets"].as_object_mut().unwrap().remove("parent");
    v["eventType"] = json!("START");
    let e = decode(v).unwrap().unwrap();
    let row = &e.payload.as_ref().unwrap().row;
    assert_eq!((e.table(), row["pipeline"].as_str()), (Some(RUN_TABLE), Some("etl/daily_load.extract")));
    assert_eq!(row["start_time"], "2026-11-30T14:34:15.849400Z");
    assert_eq!(row["records"], Value::Null);
    let dataset_event = json!({"eventTime": "2026-11-30T14:34:15Z", "dataset": {"namespace": "n", "name": "d"}});
    assert_eq!(decode(dataset_event).unwrap(), None);
}

#[test]
fn errors_name_the_field() {
    for (path, field) in [("/eventTime", "eventTime"), ("/run/runId", "run.runId"), ("/job/name", "job.name")] {
        let mut v = complete();
        *v.pointer_mut(path).unwrap() = Value::Null;
        assert_eq!(decode(v).unwrap_err().field.as_deref(), Some(field), "{path}");
    }
    let mut v = complete();
    v["eventTime"] = json!("yesterday");
    assert!(decode(v).unwrap_err().message.contains("ISO-8601"));
    // not OpenLineage at all, a run that is not an object, an unknown eventType
    for (body, field) in [
        (json!({"x": 1}), "run"),
        (json!({"message": {"data": "e30="}}), "run"),
        (
            {
                let mut v = complete();
                v["run"] = json!("x");
                v
            },
            "run",
        ),
        (
            {
                let mut v = complete();
                v["eventType"] = json!("EXPLODE");
                v
            },
            "eventType",
        ),
        (
            {
                let mut v = complete();
                v["eventType"] = json!(3);
                v
            },
            "eventType",
        ),
    ] {
        assert_eq!(decode(body.clone()).unwrap_err().field.as_deref(), Some(field), "{body}");
    }
    // a body that is not an object (an array of events, a string) names the whole body
    for body in [json!([complete()]), json!("x"), json!(null)] {
        let e = decode(body.clone()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(crate::decode::BODY), "{body}");
        assert_eq!(e.message, "an OpenLineage event must be a JSON object", "{body}");
    }
    // a JobEvent (job, no run) is not an error
    assert_eq!(
        decode(json!({"eventTime": "2026-11-30T14:34:15Z", "job": {"namespace": "n", "name": "j"}})).unwrap(),
        None
    );
    // eventType in lower case is the same event type
    let mut v = complete();
    v["eventType"] = json!("complete");
    assert!(decode(v).unwrap().is_some());
}

/// `rowCount` is the spec's integer count: the outputs' counts are summed; a negative, text
/// or fractional count is refused naming its output (a trial's `-5` became a negative
/// `records` observation, `"many"` was dropped silently).
#[test]
fn row_counts_are_counts() {
    let mut v = complete();
    let second = json!({"name": "public.items", "namespace": "postgres://db",
        "outputFacets": {"outputStatistics": {"rowCount": 3.0}}});
    v["outputs"].as_array_mut().unwrap().extend([second, json!({"name": "x", "namespace": "y"})]);
    let e = decode(v.clone()).unwrap().unwrap();
    assert_eq!(e.payload.unwrap().row["records"], 1203.0, "1200 + 3 (a whole float), no count for the third");
    // no output reports a count: no records at all, not 0 (openlineage-python sends
    // `"outputs": []` with every event)
    let uncounted = [
        json!([]),
        json!([{"name": "x", "namespace": "y"}]),
        json!([{"name": "x", "namespace": "y", "outputFacets": {"outputStatistics": {"rowCount": null}}}]),
    ];
    for outputs in uncounted {
        let mut v = complete();
        v["outputs"] = outputs.clone();
        assert_eq!(decode(v).unwrap().unwrap().payload.unwrap().row["records"], Value::Null, "{outputs}");
    }
    for (outputs, field) in [
        (json!([5]), "outputs[0]"),
        (json!([{"outputFacets": "x"}]), "outputs[0].outputFacets"),
        (json!([{"outputFacets": {"outputStatistics": "x"}}]), "outputs[0].outputFacets.outputStatistics"),
    ] {
        let mut v = complete();
        v["outputs"] = outputs.clone();
        let e = decode(v).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{outputs}: {e}");
        assert!(e.message.ends_with("must be an object"), "{e}");
    }
    for bad in [json!(-5), json!("many"), json!(1.5), json!(true), json!({"n": 1})] {
        let mut v = v.clone();
        v["outputs"][1]["outputFacets"]["outputStatistics"]["rowCount"] = bad.clone();
        let e = decode(v).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("outputs[1].outputFacets.outputStatistics.rowCount"), "{bad}");
        assert!(e.message.ends_with("must be a non-negative integer (a count of rows)"), "{e}");
    }
}

/// A parent run facet without its job or run (the spec's required members) is refused
/// naming the member: it was read as no parent, and the task counted as a pipeline run of
/// its own. Wrong types are "must be", not "is required".
#[test]
fn malformed_facets_and_wrong_types_name_the_member() {
    let cases: [(&str, Value, &str, &str); 11] = [
        ("/run/facets/parent", json!({"run": "x"}), "run.facets.parent.job", "is required"),
        (
            "/run/facets/parent",
            json!({"job": {"namespace": "etl", "name": "d"}}),
            "run.facets.parent.run",
            "is required",
        ),
        ("/run/facets/parent", json!("p"), "run.facets.parent", "must be an object"),
        ("/run/facets/parent/job", json!(5), "run.facets.parent.job", "must be an object"),
        ("/run/facets/parent/job/name", json!(5), "run.facets.parent.job.name", "must be a non-empty string"),
        ("/run/facets/parent/run/runId", json!(null), "run.facets.parent.run.runId", "is required"),
        ("/run/facets", json!([1]), "run.facets", "must be an object"),
        ("/eventTime", json!(1796040001000i64), "eventTime", "must be a non-empty string"),
        ("/run/runId", json!(5), "run.runId", "must be a non-empty string"),
        ("/job/name", json!(""), "job.name", "must be a non-empty string"),
        ("/outputs", json!({"a": 1}), "outputs", "must be an array"),
    ];
    for (at, value, field, words) in cases {
        let mut v = complete();
        *v.pointer_mut(at).unwrap_or_else(|| panic!("{at}")) = value.clone();
        let e = decode(v).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{at} = {value}: {e}");
        assert!(e.message.contains(words), "{at} = {value}: {e}");
    }
    let mut v = complete();
    v["run"]["facets"]["nominalTime"] = json!({"nominalStartTime": 5});
    assert_eq!(decode(v).unwrap_err().field.as_deref(), Some("run.facets.nominalTime.nominalStartTime"));
    // the parent's run id is carried; a null parent is no parent
    let e = decode(complete()).unwrap().unwrap();
    assert_eq!(e.payload.unwrap().row["parent_run_id"], "897b06bb-01b7-480b-b6a7-1a129f79ef70");
    let mut v = complete();
    v["run"]["facets"]["parent"] = Value::Null;
    assert_eq!(decode(v).unwrap().unwrap().table(), Some(RUN_TABLE));
}
