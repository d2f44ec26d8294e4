//! The real Router served on 127.0.0.1 with the stdout sink writing into a buffer, and the
//! metric lines it prints parsed back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pipeline_run_metrics::handlers::Projects;
use pipeline_run_metrics::handlers::dispatch::Dispatcher;
use pipeline_run_metrics::ingress::http::{App, router};
use pipeline_run_metrics::sink::{JsonLines, SharedBuffer};
use pipeline_run_metrics::warehouse::BigQuery;
use serde_json::Value;

use super::bigquery::emulator;
use super::push::Push;
use super::{DATA_PROJECT, METRIC_PROJECT};

/// One metric line as printed by the stdout sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// metric name (without the `custom.googleapis.com/` prefix)
    pub name: String,
    /// the gauge's value
    pub value: f64,
    /// metric labels
    pub labels: BTreeMap<String, String>,
    /// `project_id` the point is written to
    pub project: String,
    /// event time as printed (RFC 3339)
    pub timestamp: String,
    /// `gauge`, `counter` or `histogram`
    pub kind: String,
    /// UCUM unit (counters and histograms; empty for gauges)
    pub unit: String,
}

/// Parses a metric line of the stdout sink: an INFO line of a gauge (the reference's fields
/// exactly: no `unit`), or of a counter or histogram (with its `unit`).
pub fn parse_point(line: &str) -> Point {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("metric line is not JSON ({e}): {line}"));
    let kind = v["metric_type"].as_str().unwrap_or_default().to_string();
    assert!(["gauge", "counter", "histogram"].contains(&kind.as_str()), "{line}");
    assert_eq!(v.get("unit").is_some(), kind != "gauge", "a unit on counters and histograms only: {line}");
    assert_eq!(v["severity"], "INFO", "{line}");
    Point {
        kind,
        unit: v["unit"].as_str().unwrap_or_default().to_string(),
        name: v["name"].as_str().expect("name").to_string(),
        value: v["value"].as_f64().expect("value"),
        labels: serde_json::from_value(v["labels"].clone()).expect("labels are strings"),
        project: v["project_id"].as_str().expect("project_id").to_string(),
        timestamp: v["timestamp"].as_str().expect("timestamp").to_string(),
    }
}

/// The real Router on 127.0.0.1 with the real BigQuery client against the emulator.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// what the stdout sink wrote (metric lines)
    pub metrics: SharedBuffer,
    /// the application behind the Router (event counts)
    pub app: Arc<App>,
    http: reqwest::Client,
}

/// What the Router answered to one POST, and the points written meanwhile.
pub struct Answer {
    /// HTTP status
    pub status: u16,
    /// JSON body (`Null` when empty)
    pub body: Value,
    /// metric lines written since the previous request
    pub points: Vec<Point>,
    /// the response headers
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    /// With every handler, or only those named (like the reference's `dispatch_event`).
    pub async fn start(only: Option<&[&str]>) -> TestApp {
        let warehouse = BigQuery::emulator(emulator(), DATA_PROJECT, Duration::from_secs(30), reqwest::Client::new())
            .await
            .unwrap();
        TestApp::with_warehouse(only, Arc::new(warehouse), pipeline_run_metrics::config::DEFAULT_MAX_BODY_BYTES).await
    }

    /// With `warehouse` instead of the emulator, and a body size limit.
    pub async fn with_warehouse(
        only: Option<&[&str]>,
        warehouse: Arc<dyn pipeline_run_metrics::warehouse::Warehouse>,
        max_body_bytes: usize,
    ) -> TestApp {
        TestApp::with_catalogue(only, None, warehouse, max_body_bytes).await
    }

    /// With the built-in catalogue overlaid by `handlers_dir` (like `HANDLERS_DIR`).
    pub async fn with_catalogue(
        only: Option<&[&str]>,
        handlers_dir: Option<&std::path::Path>,
        warehouse: Arc<dyn pipeline_run_metrics::warehouse::Warehouse>,
        max_body_bytes: usize,
    ) -> TestApp {
        let options = pipeline_run_metrics::ingress::http::Options { max_body_bytes, ..Default::default() };
        TestApp::with_options(only, handlers_dir, warehouse, options, None).await
    }

    /// Full control: transport options and the allowed datasets.
    pub async fn with_options(
        only: Option<&[&str]>,
        handlers_dir: Option<&std::path::Path>,
        warehouse: Arc<dyn pipeline_run_metrics::warehouse::Warehouse>,
        options: pipeline_run_metrics::ingress::http::Options,
        allowed_datasets: Option<Vec<String>>,
    ) -> TestApp {
        let mut handlers = pipeline_run_metrics::handlers::all(handlers_dir).expect("catalogue");
        if let Some(names) = only {
            for n in names {
                assert!(handlers.iter().any(|h| h.name() == *n), "no handler named {n}");
            }
            handlers.retain(|h| names.contains(&h.name()));
        }
        let http = reqwest::Client::new();
        let metrics = SharedBuffer::default();
        let mut projects = Projects::new(METRIC_PROJECT, DATA_PROJECT);
        projects.allowed_datasets = allowed_datasets;
        let app = Arc::new(App::new(
            Dispatcher::new(handlers, projects),
            warehouse,
            Arc::new(JsonLines::new(metrics.clone())),
            options,
        ));
        let url = super::fakes::serve(router(app.clone())).await;
        TestApp { url, metrics, app, http }
    }

    /// POSTs `body` to `/` with `headers`; the answer and the points written meanwhile.
    pub async fn post(&self, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Answer {
        self.request("POST", "/", headers, body).await
    }

    /// Sends `body` with `method` to `path` (from `/`) with `headers`; the answer and the points
    /// written meanwhile.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self.http.request(method, format!("{}{path}", self.url)).body(body.into());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("error bodies are JSON") };
        let points = self.metrics.take_lines().iter().map(|l| parse_point(l)).collect();
        Answer { status, body, points, headers }
    }

    /// Sends a Datastream record as a wrapped Pub/Sub push message (the production path).
    pub async fn push(&self, record: &Value) -> Answer {
        let body = Push::record(record).message_id("1").publish_time("2024-01-15T10:30:01Z").body();
        self.post(&[("content-type", "application/json")], body).await
    }
}
