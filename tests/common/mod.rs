//! Test harness shared by the integration tests: a real BigQuery emulator (bqemulator), a REST
//! helper to create uniquely named datasets and tables, and the real Router served on
//! 127.0.0.1 with the stdout sink writing into a buffer.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

pub mod fakes;
pub mod services;

use pipeline_run_metrics::handlers::Projects;
use pipeline_run_metrics::handlers::dispatch::Dispatcher;
use pipeline_run_metrics::ingress::http::{App, router};
use pipeline_run_metrics::sink::{JsonLines, SharedBuffer};
use pipeline_run_metrics::warehouse::BigQuery;

pub const DATA_PROJECT: &str = "test-project";
pub const METRIC_PROJECT: &str = "arvo-eng-prd";

fn ready(hostport: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(hostport) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `host:port` of a ready BigQuery emulator: the one at `BIGQUERY_EMULATOR_HOST`; else, with
/// `--features containers` and a reachable Docker engine, a container; else a local bqemulator
/// process this test process starts (and a watchdog stops when the process ends).
pub fn emulator() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        if let Ok(h) = std::env::var("BIGQUERY_EMULATOR_HOST") {
            let h = h.trim_start_matches("http://").trim_end_matches('/').to_string();
            assert!(ready(&h), "BIGQUERY_EMULATOR_HOST={h} is set but the emulator there is not ready");
            return h;
        }
        #[cfg(feature = "containers")]
        if let Some(h) = containers::bigquery() {
            return h;
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let venv = std::env::var("BQEMU_VENV").unwrap_or_else(|_| format!("{root}/.venv-bqemu"));
        assert!(
            std::path::Path::new(&format!("{venv}/bin/bqemulator")).exists(),
            "bqemulator is not installed in {venv}: run `make test` (or scripts/install-bqemulator.sh)"
        );
        let (port, grpc) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!("bqemulator-test-{port}.log"));
        use std::os::unix::process::CommandExt;
        // Not waited for: the watchdog lives as long as this process and stops the emulator
        // when the process ends (it is reaped by init then).
        #[allow(clippy::zombie_processes)]
        let _watchdog = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/bqemu-watchdog.sh"))
            .arg(std::process::id().to_string())
            .arg(port.to_string())
            .arg(grpc.to_string())
            .arg(&log)
            .process_group(0)
            .spawn()
            .expect("start bqemulator");
        let host = format!("127.0.0.1:{port}");
        let t0 = Instant::now();
        while !ready(&host) {
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "bqemulator not ready after 90 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("bqemulator started on {host} in {:?}", t0.elapsed());
        host
    })
}

/// REST helper for test data.
pub struct Bq {
    http: reqwest::Client,
    base: String,
}

impl Default for Bq {
    fn default() -> Self {
        Bq::at(emulator())
    }
}

impl Bq {
    /// For the emulator at `host:port`.
    pub fn at(host: &str) -> Bq {
        Bq { http: reqwest::Client::new(), base: format!("http://{host}/bigquery/v2/projects/{DATA_PROJECT}") }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("emulator request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success() || status.as_u16() == 404, "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A new dataset with a unique name.
    pub async fn dataset(&self, hint: &str) -> String {
        let suffix: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let clean: String = hint.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(40).collect();
        let ds = format!("t_{clean}_{:x}", suffix ^ (std::process::id() as u64) << 20);
        self.call(
            reqwest::Method::POST,
            "/datasets",
            Some(json!({"datasetReference": {"projectId": DATA_PROJECT, "datasetId": ds}, "location": "US"})),
        )
        .await;
        ds
    }

    /// Creates `ds.table` with `columns` (name -> type) and inserts `rows`.
    pub async fn table(&self, ds: &str, table: &str, columns: &BTreeMap<String, String>, rows: &[Value]) {
        let fields: Vec<Value> =
            columns.iter().map(|(n, t)| json!({"name": n, "type": t, "mode": "NULLABLE"})).collect();
        self.call(
            reqwest::Method::POST,
            &format!("/datasets/{ds}/tables"),
            Some(json!({"tableReference": {"projectId": DATA_PROJECT, "datasetId": ds, "tableId": table},
                        "schema": {"fields": fields}})),
        )
        .await;
        if !rows.is_empty() {
            let rows: Vec<Value> = rows.iter().map(|r| json!({"json": r})).collect();
            let r = self
                .call(
                    reqwest::Method::POST,
                    &format!("/datasets/{ds}/tables/{table}/insertAll"),
                    Some(json!({"rows": rows})),
                )
                .await;
            let errs = r.get("insertErrors").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
            assert_eq!(errs, 0, "insert into {ds}.{table}: {r}");
        }
    }

    pub async fn drop_dataset(&self, ds: &str) {
        self.call(reqwest::Method::DELETE, &format!("/datasets/{ds}?deleteContents=true"), None).await;
    }
}

/// One metric line as printed by the stdout sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub value: f64,
    pub labels: BTreeMap<String, String>,
    pub project: String,
    pub timestamp: String,
}

pub fn parse_point(line: &str) -> Point {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("metric line is not JSON ({e}): {line}"));
    assert_eq!(v["metric_type"], "gauge", "{line}");
    assert_eq!(v["severity"], "INFO", "{line}");
    Point {
        name: v["name"].as_str().expect("name").to_string(),
        value: v["value"].as_f64().expect("value"),
        labels: serde_json::from_value(v["labels"].clone()).expect("labels are strings"),
        project: v["project_id"].as_str().expect("project_id").to_string(),
        timestamp: v["timestamp"].as_str().expect("timestamp").to_string(),
    }
}

/// The real Router on 127.0.0.1 with the real BigQuery client against the emulator.
pub struct TestApp {
    pub url: String,
    pub metrics: SharedBuffer,
    pub app: Arc<App>,
    http: reqwest::Client,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub points: Vec<Point>,
}

impl TestApp {
    /// With every handler, or only those named (like the reference's `dispatch_event`).
    pub async fn start(only: Option<&[&str]>) -> TestApp {
        let warehouse = BigQuery::emulator(emulator(), DATA_PROJECT, Duration::from_secs(30), reqwest::Client::new())
            .await
            .unwrap();
        TestApp::with_warehouse(only, Arc::new(warehouse), pipeline_run_metrics::config::DEFAULT_MAX_BODY_BYTES).await
    }

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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = app.clone();
        tokio::spawn(async move { axum::serve(listener, router(served)).await.unwrap() });
        TestApp { url, metrics, app, http }
    }

    pub async fn post(&self, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Answer {
        let mut req = self.http.post(format!("{}/", self.url)).body(body.into());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("POST");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("error bodies are JSON") };
        let points = self.metrics.take_lines().iter().map(|l| parse_point(l)).collect();
        Answer { status, body, points }
    }

    /// Sends a Datastream record as a wrapped Pub/Sub push message (the production path).
    pub async fn push(&self, record: &Value) -> Answer {
        let data = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(record).unwrap());
        let body = json!({"message": {"data": data, "messageId": "1", "publishTime": "2024-01-15T10:30:01Z"},
                          "subscription": "projects/p/subscriptions/s"});
        self.post(&[("content-type", "application/json")], body.to_string()).await
    }
}

/// A `pipeline_run` CDC record like Datastream writes it, with a fresh `uuid` each time.
pub fn record(pipeline_uuid: &str, status: &str, source_timestamp: &str, variables: Value) -> Value {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let uuid = format!("0c5d3a4e-0000-4000-8000-{:06x}{n:06x}", std::process::id() & 0xffffff);
    json!({
        "uuid": uuid, "read_timestamp": source_timestamp,
        "source_timestamp": source_timestamp, "object": "public_pipeline_run", "read_method": "postgresql-cdc",
        "stream_name": "projects/1/locations/us-east1/streams/mageai-cdc-stream",
        "source_metadata": {"schema": "public", "table": "pipeline_run", "is_deleted": false, "change_type": "UPDATE",
            "tx_id": 1, "lsn": "BD/A0007310", "primary_keys": ["id"]},
        "payload": {"id": 1, "pipeline_uuid": pipeline_uuid, "status": status, "variables": variables}
    })
}

/// Loads the local seed (events/seed.json) into the emulator, once per test process.
pub fn seed() {
    static SEEDED: OnceLock<()> = OnceLock::new();
    SEEDED.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed.py"))
            .env("BIGQUERY_EMULATOR_HOST", emulator())
            .env("BIGQUERY_PROJECT_ID", DATA_PROJECT)
            .output()
            .expect("run scripts/seed.py");
        assert!(out.status.success(), "seed failed: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// An event file of events/ and its headers (events/<name>.headers, or JSON by default).
pub fn event_file(name: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let body = std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("events/{name}: {e}"));
    let side = format!("{dir}/{}.headers", name.trim_end_matches(".json"));
    let headers = match std::fs::read_to_string(&side) {
        Ok(text) => text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
        Err(_) => vec![("content-type".to_string(), "application/json".to_string())],
    };
    (headers, body)
}

pub async fn emulator_warehouse() -> Arc<dyn pipeline_run_metrics::warehouse::Warehouse> {
    Arc::new(
        BigQuery::emulator(emulator(), DATA_PROJECT, Duration::from_secs(30), reqwest::Client::new()).await.unwrap(),
    )
}

/// A warehouse for delivery tests: every table exists; each query waits `delay`, fails with
/// "unavailable" while `fail_queries` > 0 (counting down), and returns one row with the columns
/// of `claims_paid.sql` (U = 1000, P = 3000). Counts calls and cancelled (dropped) queries.
#[derive(Default)]
pub struct ScriptedWarehouse {
    pub delay: Duration,
    pub fail_queries: std::sync::atomic::AtomicUsize,
    pub queries: std::sync::atomic::AtomicUsize,
    pub cancelled: Arc<std::sync::atomic::AtomicUsize>,
}

struct CancelGuard(Arc<std::sync::atomic::AtomicUsize>, bool);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[async_trait::async_trait]
impl pipeline_run_metrics::warehouse::Warehouse for ScriptedWarehouse {
    async fn table_exists(
        &self,
        _: &pipeline_run_metrics::warehouse::TableRef,
    ) -> Result<bool, pipeline_run_metrics::warehouse::WarehouseError> {
        Ok(true)
    }
    async fn query(
        &self,
        _: &str,
        _: &[(String, pipeline_run_metrics::warehouse::Param)],
    ) -> Result<Vec<pipeline_run_metrics::warehouse::Row>, pipeline_run_metrics::warehouse::WarehouseError> {
        use pipeline_run_metrics::warehouse::Cell;
        use std::sync::atomic::Ordering::SeqCst;
        self.queries.fetch_add(1, SeqCst);
        let mut guard = CancelGuard(self.cancelled.clone(), false);
        tokio::time::sleep(self.delay).await;
        guard.1 = true;
        if self.fail_queries.load(SeqCst) > 0 {
            self.fail_queries.fetch_sub(1, SeqCst);
            return Err(pipeline_run_metrics::warehouse::WarehouseError::Unavailable("HTTP 503: backend error".into()));
        }
        let row: pipeline_run_metrics::warehouse::Row = [
            ("unprocessable_total", Cell::Float(1000.0)),
            ("processable_total", Cell::Float(3000.0)),
            ("unprocessable_relative", Cell::Float(0.25)),
            ("processable_relative", Cell::Float(0.75)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(vec![row])
    }
}

/// A wrangling record that only the pre-filtered and processable handlers need (use with
/// `only = PRE_AND_PROCESSABLE`).
pub fn wrangling_record() -> Value {
    record(
        "pipesv2_wrangling",
        "COMPLETED",
        "2025-11-05T18:23:31.393Z",
        json!({"partner": "abertta", "refined_unprocessable_claims_output_table": "tmp_abertta.u",
               "refined_processable_claims_output_table": "tmp_abertta.p"}),
    )
}

pub const PRE_AND_PROCESSABLE: &[&str] = &["PreFilteredWranglingHandler", "ProcessableWranglingHandler"];

/// The opt-in Docker backend (`cargo test --features containers`): the same emulators as
/// containers, for laptops with Docker. Used only when a Docker engine looks reachable
/// (`DOCKER_HOST` set or the default socket present); otherwise the process backend is used.
#[cfg(feature = "containers")]
pub mod containers {
    use std::sync::OnceLock;
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{ContainerAsync, GenericImage, ImageExt};

    /// goccy's BigQuery emulator, pinned (the reference used `:latest`, a known defect).
    pub const BIGQUERY_IMAGE: (&str, &str) = ("ghcr.io/goccy/bigquery-emulator", "0.6.6");
    pub const PUBSUB_IMAGE: (&str, &str) = ("gcr.io/google.com/cloudsdktool/google-cloud-cli", "528.0.0-emulators");

    fn docker_reachable() -> bool {
        std::env::var_os("DOCKER_HOST").is_some() || std::path::Path::new("/var/run/docker.sock").exists()
    }

    /// Containers live as long as the test process: kept in a static, on their own runtime.
    fn runtime() -> &'static tokio::runtime::Runtime {
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap())
    }

    static KEEP: OnceLock<std::sync::Mutex<Vec<ContainerAsync<GenericImage>>>> = OnceLock::new();

    fn keep(c: ContainerAsync<GenericImage>) {
        KEEP.get_or_init(Default::default).lock().unwrap().push(c);
    }

    /// `host:port` of a BigQuery emulator container, or `None` (no Docker, or it failed).
    pub fn bigquery() -> Option<String> {
        if !docker_reachable() {
            return None;
        }
        let started = std::thread::scope(|s| {
            s.spawn(|| {
                runtime().block_on(async {
                    let c = GenericImage::new(BIGQUERY_IMAGE.0, BIGQUERY_IMAGE.1)
                        .with_exposed_port(9050.tcp())
                        .with_wait_for(WaitFor::seconds(3))
                        .with_cmd(["--project=test-project", "--port=9050"])
                        .start()
                        .await
                        .ok()?;
                    let port = c.get_host_port_ipv4(9050.tcp()).await.ok()?;
                    keep(c);
                    Some(format!("127.0.0.1:{port}"))
                })
            })
            .join()
            .ok()
            .flatten()
        });
        if started.is_none() {
            eprintln!("containers: no BigQuery emulator container, falling back to the local process");
        }
        started
    }

    /// Base URL (`http://127.0.0.1:PORT/v1/projects/test`) of a Pub/Sub emulator container.
    pub fn pubsub() -> Option<String> {
        if !docker_reachable() {
            return None;
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                runtime().block_on(async {
                    let c = GenericImage::new(PUBSUB_IMAGE.0, PUBSUB_IMAGE.1)
                        .with_exposed_port(8085.tcp())
                        .with_wait_for(WaitFor::message_on_stderr("Server started"))
                        .with_cmd([
                            "gcloud",
                            "beta",
                            "emulators",
                            "pubsub",
                            "start",
                            "--host-port=0.0.0.0:8085",
                            "--project=test",
                        ])
                        .start()
                        .await
                        .ok()?;
                    let port = c.get_host_port_ipv4(8085.tcp()).await.ok()?;
                    keep(c);
                    Some(format!("http://127.0.0.1:{port}/v1/projects/test"))
                })
            })
            .join()
            .ok()
            .flatten()
        })
    }
}
