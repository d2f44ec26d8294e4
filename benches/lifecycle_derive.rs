//! Micro-benchmarks of the lifecycle engine (issue 10, item 8): decode plus fact derivation of
//! one change record, per built-in profile, through the in-process fact memory.
//!
//! Each iteration takes the bytes of one Datastream record (a JSONL line, as in a Datastream file
//! or an unwrapped Pub/Sub push) and does what the function does with it: `serde_json` parse,
//! `decode::record`, then `Lifecycle::derive` against `facts::memory::Memory` at the binary's
//! default capacity (`FACT_MEMORY_CAPACITY`, 100,000 entries). Every iteration gets a record of
//! a **new row** (its key columns rewritten with a counter, outside the timing), so every fact is
//! really reserved and its points built; a repeated record would only find its facts taken.
//! Once the memory is full, the least recently used half is evicted, as in a long-running
//! instance.
//!
//! The representative record of a table is, in the recorded `success` scenario of its
//! orchestrator (events/lifecycle/<orchestrator>/success.datastream.jsonl), the change that
//! yields the most points when the recording is replayed in order (the terminal change: started,
//! finished, durations, CDC lag). The recording is replayed into the memory first, so rows that
//! name their pipeline through a parent row (Mage blocks, Prefect runs, Dagster steps) find it.
//! OpenLineage has no recording: its record is a COMPLETE run event built from the spec.
//!
//! Run by `make bench` (scripts/bench.py); `cargo test --all-targets` runs each benchmark once,
//! untimed.

#[path = "support/lifecycle.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pipeline_run_metrics::decode;
use pipeline_run_metrics::facts::memory::{DEFAULT_CAPACITY, Memory};
use pipeline_run_metrics::handlers::lifecycle::names;
use support::{CASES, lifecycle, now_of, openlineage_event, prepare, renew};

/// The allocator of the binary (src/main.rs), so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Points of one derivation, and how many of them are facts (not the CDC lag).
fn derive_once(
    rt: &tokio::runtime::Runtime,
    lc: &pipeline_run_metrics::handlers::lifecycle::Lifecycle,
    store: &Memory,
    bytes: &[u8],
) -> (usize, usize) {
    let event = decode::record(serde_json::from_slice(bytes).expect("json")).expect("record");
    let d = rt.block_on(lc.derive(&event, store, now_of(&event))).expect("derive");
    let facts = d.points.iter().filter(|p| p.name != names::CDC_LAG).count();
    (d.points.len(), facts)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut prepared = Vec::new();
    for (id, profile, dir, table, keys) in CASES {
        let (lc, store, record) = prepare(&rt, profile, dir, table, keys);
        // Sanity check outside the timing: a renewed record derives facts.
        let mut r = record.clone();
        renew(&mut r, keys, 0);
        let (points, facts) = derive_once(&rt, &lc, &store, &serde_json::to_vec(&r).unwrap());
        assert!(facts > 0, "{id}: a new row derives no fact");
        let p = &record["payload"];
        let state = ["status", "state", "state_type", "dagster_event_type"].iter().find_map(|c| p.get(*c)).cloned();
        eprintln!("{id}: {points} points per new row ({facts} from facts, the rest CDC lag); status {state:?}");
        prepared.push((*id, *keys, lc, store, record));
    }

    let mut group = c.benchmark_group("lifecycle_derive");
    for (id, keys, lc, store, record) in &prepared {
        let mut n = 1u64;
        group.bench_function(*id, |b| {
            b.to_async(&rt).iter_batched(
                || {
                    let mut r = record.clone();
                    renew(&mut r, keys, n);
                    n += 1;
                    serde_json::to_vec(&r).unwrap()
                },
                |bytes| async move {
                    let event = decode::record(serde_json::from_slice(black_box(&bytes)).unwrap()).unwrap();
                    let now = now_of(&event);
                    black_box(lc.derive(&event, store, now).await.unwrap())
                },
                BatchSize::SmallInput,
            )
        });
    }
    // OpenLineage: no recording; the COMPLETE event of a new run each iteration.
    let ol = lifecycle("openlineage");
    let ol_store = Memory::new(DEFAULT_CAPACITY);
    let mut n = 1u64;
    group.bench_function("openlineage_run", |b| {
        b.to_async(&rt).iter_batched(
            || {
                n += 1;
                openlineage_event(n)
            },
            |bytes| {
                let (ol, ol_store) = (&ol, &ol_store);
                async move {
                    let event = decode::openlineage::decode(serde_json::from_slice(black_box(&bytes)).unwrap())
                        .unwrap()
                        .unwrap();
                    let now = now_of(&event);
                    black_box(ol.derive(&event, ol_store, now).await.unwrap())
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // Breakdown: decode alone (JSON parse + `decode::record`), same records.
    let mut group = c.benchmark_group("lifecycle_decode");
    for (id, keys, _, _, record) in &prepared {
        let mut r = record.clone();
        renew(&mut r, keys, 7);
        let bytes = serde_json::to_vec(&r).unwrap();
        group.bench_function(*id, |b| {
            b.iter(|| black_box(decode::record(serde_json::from_slice(black_box(&bytes)).unwrap()).unwrap()))
        });
    }
    let bytes = openlineage_event(7);
    group.bench_function("openlineage_run", |b| {
        b.iter(|| black_box(decode::openlineage::decode(serde_json::from_slice(black_box(&bytes)).unwrap()).unwrap()))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
