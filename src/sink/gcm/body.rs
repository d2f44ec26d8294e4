//! The `projects.timeSeries.create` request: the monitored resource, the JSON body, and how an
//! event's points are cut into calls (protocols.md §5.1–§5.2).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::sink::Point;

/// The API's limit of series per request.
pub const MAX_SERIES_PER_CALL: usize = 200;

/// The monitored resource the series are written against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `global` with label `project_id` (one logical writer; the reference's choice).
    Global,
    /// `generic_task`. For gauges, `task_id` should be fixed (not per instance) so that one
    /// logical gauge stays one series however many instances write it; the cumulative series of
    /// counters and histograms name the instance instead ([`super::cumulative`]).
    GenericTask { location: String, namespace: String, job: String, task_id: String },
}

impl Resource {
    /// The `resource` object of a series written to `project`.
    pub(super) fn json(&self, project: &str) -> Value {
        match self {
            Resource::Global => json!({"type": "global", "labels": {"project_id": project}}),
            Resource::GenericTask { location, namespace, job, task_id } => json!({
                "type": "generic_task",
                "labels": {"project_id": project, "location": location, "namespace": namespace, "job": job, "task_id": task_id}
            }),
        }
    }
}
/// The prefix of every metric type this sink writes (custom metrics).
pub const METRIC_PREFIX: &str = "custom.googleapis.com/";

/// The request body for a set of points that are all of different series.
pub fn request_body(points: &[&Point], resource: &Resource) -> Value {
    let series: Vec<Value> = points
        .iter()
        .map(|g| {
            json!({
                "metric": {"type": format!("{METRIC_PREFIX}{}", g.name), "labels": g.labels},
                "resource": resource.json(&g.project),
                "metricKind": "GAUGE",
                "valueType": "DOUBLE",
                "points": [{
                    "interval": {"endTime": g.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)},
                    "value": {"doubleValue": double_json(g.value)}
                }]
            })
        })
        .collect();
    json!({ "timeSeries": series })
}

/// proto3 JSON: doubles that are not finite are the strings "NaN", "Infinity", "-Infinity".
pub(super) fn double_json(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("NaN")
    } else if v > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

type SeriesKey = (String, String, Vec<(String, String)>);

fn series_key(g: &Point) -> SeriesKey {
    (g.project.clone(), g.name.clone(), g.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Splits the points of one event into calls: per project, the k-th point (in time order) of
/// every series goes into round k, and each round is cut into chunks of 200 series. Calls are
/// sent in this order, so points of one series are written oldest first.
pub fn plan_calls<'a>(points: impl IntoIterator<Item = &'a Point>) -> Vec<(String, Vec<&'a Point>)> {
    let mut by_project: BTreeMap<&str, Vec<&Point>> = BTreeMap::new();
    for g in points {
        by_project.entry(g.project.as_str()).or_default().push(g);
    }
    let mut calls = Vec::new();
    for (project, mut pts) in by_project {
        pts.sort_by_key(|g| g.time); // stable: equal times keep emission order
        let mut rounds: Vec<Vec<&Point>> = Vec::new();
        let mut seen: HashMap<SeriesKey, usize> = HashMap::new();
        for g in pts {
            let n = seen.entry(series_key(g)).or_insert(0);
            if rounds.len() <= *n {
                rounds.push(Vec::new());
            }
            rounds[*n].push(g);
            *n += 1;
        }
        for round in rounds {
            for chunk in round.chunks(MAX_SERIES_PER_CALL) {
                calls.push((project.to_string(), chunk.to_vec()));
            }
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn g(name: &str, labels: &[(&str, &str)], secs: i64) -> Point {
        Point::gauge(
            name,
            1.5,
            chrono::Utc.timestamp_opt(1_767_323_045 + secs, 123_000_000).unwrap(),
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            "my-proj",
        )
    }

    #[test]
    fn body_is_the_documented_shape() {
        let p = g("pipeline_run/duration_seconds", &[("pipeline", "daily_load")], 0);
        let body = request_body(&[&p], &Resource::Global);
        assert_eq!(
            body,
            json!({"timeSeries":[{"metric":{"labels":{"pipeline":"daily_load"},"type":"custom.googleapis.com/pipeline_run/duration_seconds"},
                "metricKind":"GAUGE","points":[{"interval":{"endTime":"2026-01-02T03:04:05.123000Z"},"value":{"doubleValue":1.5}}],
                "resource":{"labels":{"project_id":"my-proj"},"type":"global"},"valueType":"DOUBLE"}]})
        );
        let task = Resource::GenericTask {
            location: "us-east1".into(),
            namespace: "ns".into(),
            job: "j".into(),
            task_id: "singleton".into(),
        };
        assert_eq!(
            request_body(&[&p], &task)["timeSeries"][0]["resource"],
            json!({"type":"generic_task","labels":{"project_id":"my-proj","location":"us-east1","namespace":"ns","job":"j","task_id":"singleton"}})
        );
        let mut nan = p.clone();
        nan.value = f64::NAN;
        assert_eq!(
            request_body(&[&nan], &Resource::Global)["timeSeries"][0]["points"][0]["value"]["doubleValue"],
            "NaN"
        );
    }

    #[test]
    fn plan_puts_one_point_per_series_per_call_and_at_most_200_series() {
        let mut pts: Vec<Point> = (0..450).map(|i| g("m", &[("i", &i.to_string())], 0)).collect();
        // a second and third point of series i=0, later in time
        pts.push(g("m", &[("i", "0")], 10));
        pts.push(g("m", &[("i", "0")], 20));
        let calls = plan_calls(&pts);
        let sizes: Vec<usize> = calls.iter().map(|(_, c)| c.len()).collect();
        assert_eq!(sizes, vec![200, 200, 50, 1, 1]);
        for (_, c) in &calls {
            let keys: std::collections::HashSet<_> = c.iter().map(|g| series_key(g)).collect();
            assert_eq!(keys.len(), c.len(), "no series twice in one call");
        }
        assert_eq!(calls[3].1[0].time, pts[450].time);
        assert_eq!(calls[4].1[0].time, pts[451].time);
        assert_eq!(plan_calls(&[] as &[Point]).len(), 0);
        assert_eq!(plan_calls(&pts[..200]).len(), 1, "200 series: exactly one call");
    }
}
