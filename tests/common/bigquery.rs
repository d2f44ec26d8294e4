//! The BigQuery emulator (bqemulator): started once per test process (or found at
//! `BIGQUERY_EMULATOR_HOST`, or a container with `--features containers`), its readiness probe,
//! and a REST helper to create uniquely named datasets and tables.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pipeline_run_metrics::warehouse::BigQuery;
use serde_json::{Value, json};

use super::DATA_PROJECT;
use super::process::{Process, Running, free_port};

/// Whether the emulator at `host:port` answers `GET /readyz` with 200.
pub fn ready(hostport: &str) -> bool {
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

/// The virtualenv bqemulator is installed in: `BQEMU_VENV`, by default `.venv-bqemu`.
fn venv() -> String {
    std::env::var("BQEMU_VENV").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-bqemu").to_string())
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
        if let Some(h) = super::containers::bigquery() {
            return h;
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let venv = venv();
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

/// A bqemulator of its own on 127.0.0.1:`port`, keeping its data in `data_dir` (so that it can
/// be stopped and started again with the same tables), logging to `log`; ready when returned.
/// Stopped (its whole process group) when the returned process is dropped.
pub fn start_persistent(port: u16, data_dir: &std::path::Path, log: &std::path::Path) -> Running {
    let grpc = free_port();
    let g = Process::new(format!("{}/bin/bqemulator", venv()))
        .args([
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            &port.to_string(),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            &grpc.to_string(),
            "--project",
            "test-project",
            "--persistent",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--log-level",
            "warning",
        ])
        .log_file(log)
        .own_group()
        .spawn();
    let t0 = Instant::now();
    while !ready(&format!("127.0.0.1:{port}")) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "bqemulator: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    g
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

    /// Deletes `ds` and its tables.
    pub async fn drop_dataset(&self, ds: &str) {
        self.call(reqwest::Method::DELETE, &format!("/datasets/{ds}?deleteContents=true"), None).await;
    }
}

/// The real BigQuery client against the emulator.
pub async fn emulator_warehouse() -> Arc<dyn pipeline_run_metrics::warehouse::Warehouse> {
    Arc::new(
        BigQuery::emulator(emulator(), DATA_PROJECT, Duration::from_secs(30), reqwest::Client::new()).await.unwrap(),
    )
}
