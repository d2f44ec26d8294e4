//! Micro-benchmarks: decode plus dispatch of one event, per delivery format (issue 6, part 1).
//!
//! Each iteration does what the HTTP handler does between reading the body and answering:
//! `envelope::decode` (delivery format), `record::decode` (Datastream record) and
//! `Dispatcher::dispatch` with every handler of the catalogue. BigQuery is replaced by an
//! in-memory warehouse that answers every existence check with "present" and every query with one
//! canned row holding every column the catalogue reads, so the figures exclude network I/O. The
//! `+emit` variants also render the points through the stdout sink into `std::io::sink()`.
//!
//! Run with `cargo bench --bench decode_dispatch` (or `make bench`, which also publishes the
//! figures in BENCHMARKS.md). `cargo test --all-targets` runs each benchmark once, untimed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::HeaderMap;
use common::fixtures;
use criterion::{Criterion, criterion_group, criterion_main};
use pipeline_run_metrics::decode as envelope;
use pipeline_run_metrics::handlers::Projects;
use pipeline_run_metrics::handlers::all as all_handlers;
use pipeline_run_metrics::handlers::dispatch::Dispatcher;
use pipeline_run_metrics::sink::{JsonLines, MetricSink};
use pipeline_run_metrics::warehouse::WarehouseError;
use pipeline_run_metrics::warehouse::{Cell, Param, Row, TableRef, Warehouse};

/// The allocator of the binary (src/main.rs), so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The events measured: (benchmark id, file in events/).
const CASES: &[(&str, &str)] = &[
    ("pubsub_push_wrapped", "pubsub_push_wrapped.json"),
    ("pubsub_push_unwrapped", "pubsub_push_unwrapped.json"),
    ("cloudevent_binary", "cloudevent_binary.json"),
    ("cloudevent_structured", "cloudevent_structured.json"),
    ("builtin_only_running", "nonmatching_running.json"),
    ("approval_all_handlers", "approval_complete.json"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The body of an event file and its headers (`<name>.headers`; default
/// `content-type: application/json`).
fn load_event(file: &str) -> (HeaderMap, Vec<u8>) {
    let (headers, body) = fixtures::event_file(file);
    (fixtures::header_map(&headers), body)
}

/// Every column a catalogue metric reads (values and column labels), from `handlers/*.toml`.
fn catalogue_columns(dir: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut values = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("handler file");
        let spec: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for m in spec.get("metrics").and_then(|m| m.as_array()).into_iter().flatten() {
            if let Some(v) = m.get("value").and_then(|v| v.as_str()) {
                values.insert(v.to_string());
            }
            for l in m.get("labels").and_then(|l| l.as_table()).into_iter().flat_map(|t| t.values()) {
                if let Some(c) = l.get("column").and_then(|c| c.as_str()) {
                    labels.insert(c.to_string());
                }
            }
        }
    }
    (values, labels)
}

/// A warehouse without I/O: every table exists, every query answers the same single row.
struct Canned {
    row: Row,
}

impl Canned {
    fn new() -> Canned {
        let (values, labels) = catalogue_columns(&root().join("handlers"));
        let mut row = Row::new();
        for v in values {
            row.insert(v, Cell::Float(0.5));
        }
        for l in labels {
            row.insert(l, Cell::Text("SUBMITTED_SUCCESS".into()));
        }
        Canned { row }
    }
}

#[async_trait::async_trait]
impl Warehouse for Canned {
    async fn table_exists(&self, _: &TableRef) -> Result<bool, WarehouseError> {
        Ok(true)
    }
    async fn query(&self, _: &str, _: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
        Ok(vec![self.row.clone()])
    }
}

fn dispatcher() -> Dispatcher {
    let handlers = all_handlers(None).expect("built-in catalogue");
    Dispatcher::new(handlers, Projects::new("local-project", "test-project"))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let warehouse = Canned::new();
    let dispatcher = dispatcher();
    let sink = JsonLines::new(std::io::sink());

    // Sanity check outside the timing: every case decodes and dispatches without failure.
    for (id, file) in CASES {
        let (headers, body) = load_event(file);
        let delivery = envelope::decode(&headers, &body).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let delivery = delivery.into_delivery().expect("records");
        let format = delivery.format;
        let event = delivery.records.into_iter().next().expect("one record").record;
        let event = event.unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let report = rt.block_on(dispatcher.dispatch(&event, &warehouse));
        assert!(report.failures().next().is_none(), "{id}: {:?}", report.results);
        eprintln!(
            "{id}: format {}, {} handlers, {} points, {} checks + {} queries (canned)",
            format.as_str(),
            report.results.len(),
            report.points.len(),
            report.tables_checked,
            report.queries_run
        );
    }

    let mut group = c.benchmark_group("decode_dispatch");
    for (id, file) in CASES {
        let (headers, body) = load_event(file);
        group.bench_function(*id, |b| {
            b.to_async(&rt).iter(|| async {
                let delivery = envelope::decode(black_box(&headers), black_box(&body)).expect("delivery");
                let event = delivery
                    .into_delivery()
                    .expect("records")
                    .records
                    .into_iter()
                    .next()
                    .expect("one record")
                    .record
                    .expect("record");
                black_box(dispatcher.dispatch(&event, &warehouse).await)
            })
        });
    }
    group.finish();

    // Breakdown: decode alone, and plan preparation alone (matching handlers' `prepare`: inputs
    // read and validated, SQL text and parameters built; nothing run).
    let mut group = c.benchmark_group("decode_only");
    for (id, file) in CASES {
        let (headers, body) = load_event(file);
        group.bench_function(*id, |b| {
            b.iter(|| {
                let delivery = envelope::decode(black_box(&headers), black_box(&body)).expect("delivery");
                black_box(
                    delivery
                        .into_delivery()
                        .expect("records")
                        .records
                        .into_iter()
                        .next()
                        .expect("one record")
                        .record
                        .expect("record"),
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("prepare_only");
    for (id, file) in [
        ("wrangling_complete", "wrangling_complete.json"),
        ("builtin_only_running", "nonmatching_running.json"),
        ("approval_all_handlers", "approval_complete.json"),
    ] {
        let (headers, body) = load_event(file);
        let delivery = envelope::decode(&headers, &body).expect("delivery");
        let event = delivery
            .into_delivery()
            .expect("records")
            .records
            .into_iter()
            .next()
            .expect("one record")
            .record
            .expect("record");
        let projects = dispatcher.projects().clone();
        group.bench_function(id, |b| {
            b.iter(|| {
                for h in dispatcher.handlers().iter().filter(|h| h.matches(black_box(&event))) {
                    black_box(h.prepare(&event, &projects).is_ok());
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode_dispatch_emit");
    for (id, file) in CASES {
        let (headers, body) = load_event(file);
        group.bench_function(*id, |b| {
            b.to_async(&rt).iter(|| async {
                let delivery = envelope::decode(black_box(&headers), black_box(&body)).expect("delivery");
                let event = delivery
                    .into_delivery()
                    .expect("records")
                    .records
                    .into_iter()
                    .next()
                    .expect("one record")
                    .record
                    .expect("record");
                let report = dispatcher.dispatch(&event, &warehouse).await;
                black_box(sink.emit(&report.points).await)
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
