//! The opt-in Docker backend (`cargo test --features containers`): the same emulators as
//! containers, for laptops with Docker. Used only when a Docker engine looks reachable
//! (`DOCKER_HOST` set or the default socket present); otherwise the process backend is used.

use std::sync::OnceLock;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// goccy's BigQuery emulator, pinned (the reference used `:latest`, a known defect).
pub const BIGQUERY_IMAGE: (&str, &str) = ("ghcr.io/goccy/bigquery-emulator", "0.6.6");
/// Google Cloud CLI with the Pub/Sub emulator, pinned.
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
