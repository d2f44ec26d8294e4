//! Test toolkit shared by the integration tests and the benchmarks (a bench includes it with
//! `#[path = "../tests/common/mod.rs"] mod common;`), one module per job:
//!
//! * `bigquery`: the BigQuery emulator (start, readiness, the `Bq` REST helper);
//! * `app`: the real Router on 127.0.0.1 with the stdout sink into a buffer (`TestApp`);
//! * `process`: child processes (the real binary, the emulators): environment, output lines,
//!   readiness, SIGTERM;
//! * `fixtures`: events/*.json with their headers files, `record(..)` builders, the seed, the
//!   Lambda payloads of tests/fixtures/lambda/;
//! * `push`: Pub/Sub push bodies;
//! * `storage`: the Cloud Storage emulator and a client to create buckets and objects;
//! * `lifecycle`: replaying recorded orchestrator runs through the lifecycle engine;
//! * `replay`: the `replay` command of the real binary, its output parsed, and record files;
//! * `fakes`: in-process fakes of the services that have no emulator, one file each (Cloud
//!   Monitoring, OTLP collector, OAuth token endpoint, JWKS, Lambda Runtime API, BigQuery REST
//!   API, and a scripted warehouse);
//! * `services`: real servers a test starts and stops itself (redis-server, the Firestore
//!   emulator);
//! * `mage_expected`: the facts of the recorded Mage runs, written from their oracles;
//! * `containers`: the opt-in Docker backend of the emulators.
#![allow(dead_code)]

pub mod app;
pub mod bigquery;
#[cfg(feature = "containers")]
pub mod containers;
pub mod fakes;
pub mod fixtures;
pub mod lifecycle;
pub mod mage_expected;
pub mod process;
pub mod push;
pub mod replay;
pub mod services;
pub mod storage;

/// The project the test tables live in (the emulator's project).
pub const DATA_PROJECT: &str = "test-project";
/// The project the metrics are written to.
pub const METRIC_PROJECT: &str = "arvo-eng-prd";
