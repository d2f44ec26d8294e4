//! OpenLineage run events (`RunEvent`, spec `OpenLineage/OpenLineage@0254c4d2 spec/OpenLineage.json`),
//! as the OpenLineage HTTP transport posts them to `/api/v1/lineage`, decoded into a
//! [`ChangeEvent`] of a virtual table that the built-in `openlineage` profile reads:
//! * `openlineage_run` for a run without a `parent` run facet (pipeline = `job.namespace` + `/`
//!   + `job.name`);
//! * `openlineage_task` for a run with one (a task of its parent's pipeline: pipeline = the
//!   parent job's namespace and name, task = the job's name).
//!
//! The row: `run_id`, `pipeline`, `task`, `state` (`eventType`: START, RUNNING, COMPLETE, FAIL,
//! ABORT, OTHER), `start_time` (the event time of a START), `end_time` (the event time of a
//! COMPLETE, FAIL or ABORT), `nominal_start_time` (the `nominalTime` facet), `records` (the sum
//! of the outputs' `outputStatistics.rowCount`). Facets such as `errorMessage` are read by
//! nobody: an error text is never a label. Times come from `eventTime`. Dataset and job events
//! (no `run`) are not run changes: `Ok(None)`.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value, json};

use super::DecodeError;
use super::change::{ChangeEvent, SourceMetadata};

/// The virtual tables of OpenLineage runs.
pub const RUN_TABLE: &str = "openlineage_run";
pub const TASK_TABLE: &str = "openlineage_task";

/// The non-empty string `key` of `o` (`path` names `o` in errors): "is required" when absent or
/// null, "must be a non-empty string" when of another type or empty.
fn field<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, DecodeError> {
    match o.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(DecodeError::malformed(
            Some(format!("{path}{key}")),
            format!("{path}{key} is required (a non-empty string)"),
        )),
        Some(_) => {
            Err(DecodeError::malformed(Some(format!("{path}{key}")), format!("{path}{key} must be a non-empty string")))
        }
    }
}

/// The object `key` of `o` (`path` names `o`), `None` when absent or null.
///
/// Errors: a value that is not an object, naming `<path><key>`.
fn object<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a Map<String, Value>>, DecodeError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(DecodeError::malformed(Some(format!("{path}{key}")), format!("{path}{key} must be an object"))),
    }
}

/// The parent run facet (spec `ParentRunFacet`: `run.runId` and `job.namespace`, `job.name`
/// are required): the parent's pipeline (`namespace/name`) and run id. A parent facet without
/// them is refused naming the member (it was taken for no parent: the task became a pipeline
/// run of its own).
fn parent(facets: &Map<String, Value>) -> Result<Option<(String, String)>, DecodeError> {
    const AT: &str = "run.facets.parent.";
    let Some(parent) = object(facets, "parent", "run.facets.")? else { return Ok(None) };
    let job = object(parent, "job", AT)?.ok_or_else(|| {
        DecodeError::malformed(
            Some(format!("{AT}job")),
            format!("{AT}job is required ({{\"namespace\": ..., \"name\": ...}})"),
        )
    })?;
    let run = object(parent, "run", AT)?.ok_or_else(|| {
        DecodeError::malformed(Some(format!("{AT}run")), format!("{AT}run is required ({{\"runId\": ...}})"))
    })?;
    let pipeline = format!(
        "{}/{}",
        field(job, "namespace", "run.facets.parent.job.")?,
        field(job, "name", "run.facets.parent.job.")?
    );
    let run_id = field(run, "runId", "run.facets.parent.run.")?;
    super::bounded_id("run.facets.parent.run.runId", Some(run_id))?;
    Ok(Some((pipeline, run_id.to_string())))
}

fn time(s: &str, path: &str) -> Result<DateTime<FixedOffset>, DecodeError> {
    DateTime::parse_from_rfc3339(s).map_err(|e| {
        DecodeError::malformed(Some(path.into()), format!("{path} is not an ISO-8601 time with offset ({e})"))
    })
}

/// The `eventType` values of a RunEvent (OpenLineage spec 2-0-2, `RunEvent.eventType` enum).
const EVENT_TYPES: [&str; 6] = ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"];

/// The sum of the outputs' `outputFacets.outputStatistics.rowCount`; `None` without outputs.
///
/// Errors: a `rowCount` that is not a non-negative integer (the spec's
/// `OutputStatisticsOutputDatasetFacet`: `"rowCount": {"type": "integer"}`, a count of rows),
/// named `outputs[<i>].outputFacets.outputStatistics.rowCount`: a negative or textual count
/// would have become a negative or missing `records` observation.
fn row_counts(o: &Map<String, Value>) -> Result<Option<f64>, DecodeError> {
    let outputs = match o.get("outputs") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(outputs)) => outputs,
        Some(_) => {
            return Err(DecodeError::malformed(Some("outputs".into()), "outputs must be an array (of datasets)"));
        }
    };
    let mut sum = 0u64;
    for (i, d) in outputs.iter().enumerate() {
        let Some(count) = d.pointer("/outputFacets/outputStatistics/rowCount").filter(|v| !v.is_null()) else {
            continue;
        };
        let n = count
            .as_u64()
            .or_else(|| count.as_number().and_then(super::time::integral).and_then(|i| u64::try_from(i).ok()));
        let Some(n) = n else {
            let path = format!("outputs[{i}].outputFacets.outputStatistics.rowCount");
            return Err(DecodeError::malformed(
                Some(path.clone()),
                format!("{path} must be a non-negative integer (a count of rows)"),
            ));
        };
        sum = sum.saturating_add(n);
    }
    Ok(Some(sum as f64))
}

/// Decodes one OpenLineage event; `Ok(None)` for an event without a run (a `DatasetEvent` or
/// `JobEvent`).
///
/// Errors: not a JSON object, neither a run, a dataset nor a job (`run`), an `eventType`
/// outside the spec's enum, or a missing `eventTime`, `run.runId`, `job.namespace` or
/// `job.name`, naming the field.
pub fn decode(value: Value) -> Result<Option<ChangeEvent>, DecodeError> {
    let Value::Object(o) = value else {
        // the whole body is the event: named as other whole-body errors are
        return Err(DecodeError::malformed(super::BODY.to_string(), "an OpenLineage event must be a JSON object"));
    };
    let run = match o.get("run") {
        Some(Value::Object(run)) => run,
        Some(_) => return Err(DecodeError::malformed(Some("run".into()), "run must be an object ({\"runId\": ...})")),
        // A DatasetEvent has a `dataset`, a JobEvent a `job` (OpenLineage 2-0-2: both without
        // `run`); a body with neither is not an OpenLineage event at all.
        None if o.get("dataset").is_some_and(Value::is_object) || o.get("job").is_some_and(Value::is_object) => {
            return Ok(None);
        }
        None => {
            return Err(DecodeError::malformed(
                Some("run".into()),
                "not an OpenLineage event: a RunEvent has run and job, a DatasetEvent dataset, a JobEvent job",
            ));
        }
    };
    let event_time = super::time::in_range("eventTime", time(field(&o, "eventTime", "")?, "eventTime")?)?;
    let state = match o.get("eventType") {
        None | Some(Value::Null) => "OTHER".to_string(),
        Some(Value::String(t)) if EVENT_TYPES.contains(&t.to_ascii_uppercase().as_str()) => t.to_ascii_uppercase(),
        Some(_) => {
            return Err(DecodeError::malformed(
                Some("eventType".into()),
                format!("eventType must be one of {}", EVENT_TYPES.join(", ")),
            ));
        }
    };
    let run_id = field(run, "runId", "run.")?;
    // both become the record's identity, which the de-duplication window keeps (hashed)
    super::bounded_id("run.runId", Some(run_id))?;
    super::bounded_id("eventType", Some(&state))?;
    let job = o.get("job").and_then(Value::as_object).ok_or_else(|| {
        DecodeError::malformed(Some("job".into()), "job is required ({\"namespace\": ..., \"name\": ...})")
    })?;
    let (namespace, name) = (field(job, "namespace", "job.")?, field(job, "name", "job.")?);
    let facets = object(run, "facets", "run.")?;
    let parent = facets.map(parent).transpose()?.flatten();
    let (table, pipeline, task, parent_run_id) = match parent {
        Some((pipeline, run_id)) => (TASK_TABLE, pipeline, Some(name.to_string()), Some(run_id)),
        None => (RUN_TABLE, format!("{namespace}/{name}"), None, None),
    };
    let nominal = match facets.map(|f| object(f, "nominalTime", "run.facets.")).transpose()?.flatten() {
        None => None,
        Some(n) => match n.get("nominalStartTime") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(time(s, "run.facets.nominalTime.nominalStartTime")?),
            Some(_) => {
                return Err(DecodeError::malformed(
                    Some("run.facets.nominalTime.nominalStartTime".into()),
                    "run.facets.nominalTime.nominalStartTime must be an ISO-8601 time (a string)",
                ));
            }
        },
    };
    let records = row_counts(&o)?;
    let at = event_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let row = json!({
        "run_id": run_id,
        "pipeline": pipeline,
        "task": task,
        "state": state,
        "start_time": (state == "START").then(|| at.clone()),
        "end_time": matches!(state.as_str(), "COMPLETE" | "FAIL" | "ABORT").then(|| at.clone()),
        "nominal_start_time": nominal.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        "records": records.filter(|_| state == "COMPLETE"),
        "parent_run_id": parent_run_id,
    });
    let Value::Object(row) = row else { unreachable!("a JSON object literal") };
    Ok(Some(ChangeEvent {
        uuid: Some(format!("openlineage:{run_id}:{state}:{at}")),
        stream: Some("openlineage".into()),
        source_timestamp: event_time,
        read_timestamp: None,
        object: None,
        read_method: Some("openlineage".into()),
        source_metadata: SourceMetadata {
            table: Some(table.into()),
            change_type: Some("UPDATE".into()),
            ..Default::default()
        },
        payload: Some(super::datastream::row_payload(row, super::change::PAYLOAD)?),
    }))
}

#[cfg(test)]
mod tests {
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
}
