//! The Cloud Storage emulator (gcp-storage-emulator, PyPI; installed by
//! scripts/install-gcs-emulator.sh): started once per test process (or found at
//! `STORAGE_EMULATOR_HOST`), stopped when the process ends, and a small JSON API client to create
//! buckets and upload objects.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::free_port;

fn venv() -> String {
    std::env::var("GCS_EMULATOR_VENV").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-gcs").to_string())
}

fn ready(hostport: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(hostport) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /storage/v1/b HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

/// `host:port` of a ready Cloud Storage emulator.
pub fn emulator() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        if let Ok(h) = std::env::var("STORAGE_EMULATOR_HOST") {
            let h = h.trim_start_matches("http://").trim_end_matches('/').to_string();
            assert!(ready(&h), "STORAGE_EMULATOR_HOST={h} is set but no emulator answers there");
            return h;
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let bin = format!("{}/bin/gcp-storage-emulator", venv());
        assert!(
            std::path::Path::new(&bin).exists(),
            "gcp-storage-emulator is not installed at {bin}: run `make test` (or scripts/install-gcs-emulator.sh)"
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("gcs-emulator-test-{port}.log"));
        use std::os::unix::process::CommandExt;
        // Not waited for: the watchdog lives as long as this process and stops the emulator
        // when the process ends.
        #[allow(clippy::zombie_processes)]
        let _watchdog = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/watchdog.sh"))
            .arg(std::process::id().to_string())
            .arg(&log)
            .args([&bin, "start", "--host", "127.0.0.1", "--port", &port.to_string(), "--in-memory"])
            .process_group(0)
            .spawn()
            .expect("start gcp-storage-emulator");
        let host = format!("127.0.0.1:{port}");
        let t0 = Instant::now();
        while !ready(&host) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "gcp-storage-emulator not ready after 30 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        host
    })
}

/// A client of the emulator's JSON API.
pub struct Gcs {
    http: reqwest::Client,
    base: String,
}

impl Default for Gcs {
    fn default() -> Self {
        Gcs { http: reqwest::Client::new(), base: format!("http://{}", emulator()) }
    }
}

impl Gcs {
    /// Creates a bucket (a unique name per test keeps tests apart).
    pub async fn bucket(&self, name: &str) {
        let r = self
            .http
            .post(format!("{}/storage/v1/b?project=test-project", self.base))
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success() || r.status().as_u16() == 409, "create bucket {name}: {}", r.status());
    }

    /// Uploads an object; returns its resource (`generation`, `size`, ...).
    pub async fn upload(&self, bucket: &str, name: &str, data: Vec<u8>) -> Value {
        let r = self
            .http
            .post(format!("{}/upload/storage/v1/b/{bucket}/o", self.base))
            .query(&[("uploadType", "media"), ("name", name)])
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "upload {name}: {}", r.status());
        r.json().await.unwrap()
    }
}
