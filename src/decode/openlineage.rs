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

/// The sum of the outputs' `outputFacets.outputStatistics.rowCount`; `None` when no output
/// reports one (no `outputs`, an empty list, outputs without the facet or with a null count).
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
    // `None` unless some output reports a count: openlineage-python sends `"outputs": []` with
    // every event, which was a run of 0 records
    let mut sum: Option<u64> = None;
    for (i, d) in outputs.iter().enumerate() {
        let at = |path: &str| format!("outputs[{i}]{path}");
        let not_object = |path: &str| {
            let f = at(path);
            DecodeError::malformed(Some(f.clone()), format!("{f} must be an object"))
        };
        let Value::Object(dataset) = d else { return Err(not_object("")) };
        let Some(facets) = object(dataset, "outputFacets", "").map_err(|_| not_object(".outputFacets"))? else {
            continue;
        };
        let Some(stats) =
            object(facets, "outputStatistics", "").map_err(|_| not_object(".outputFacets.outputStatistics"))?
        else {
            continue;
        };
        let Some(count) = stats.get("rowCount").filter(|v| !v.is_null()) else {
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
        sum = Some(sum.unwrap_or(0).saturating_add(n));
    }
    Ok(sum.map(|n| n as f64))
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
mod tests;
