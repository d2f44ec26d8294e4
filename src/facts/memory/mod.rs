//! The in-process fact memory: exact within one instance, bounded in entries and in bytes.
//!
//! Facts, row histories and dimensions each live in a [`Generations`] map: when one is full,
//! the half of it used least recently is evicted. An evicted fact whose record is delivered
//! again is counted again, so the bounds should cover the redelivery horizon of the busiest
//! instance (`FACT_MEMORY_CAPACITY` entries of each kind, `FACT_MEMORY_MIB` for all three);
//! with many instances use a shared store. Evictions are counted ([`Memory::evictions`]).
//!
//! What an entry counts against the byte bound: a fact 19 bytes (its share of a table of
//! `u128` keys), a dimension about 66 (its value is shared between entries with the same name,
//! but counted whole), a row history a few hundred (every change of the row is kept:
//! `ChangeNote`, 112 bytes, plus its status; about 440 for three changes). The process's memory
//! after 1,000,000 records is measured by `benches/lifecycle_process.rs` (BENCHMARKS.md).
//!
//! A replay saves what the memory holds between runs ([`Memory::snapshot`],
//! [`Memory::restore`]), so that a second run finds every fact of the first.

mod generations;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use generations::{Bounds, Generations, Weigh};

use super::{ChangeNote, FactKey, FactStore, Key, Mark, RowKey, RowState, RowUpdate, StoreError};

/// Everything a [`Memory`] holds: its facts, row histories and dimensions (each in no
/// particular order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    pub facts: Vec<FactKey>,
    pub rows: Vec<(RowKey, RowState)>,
    pub dimensions: Vec<(Key, String)>,
}

/// Entries kept by default: facts, row histories and dimensions each (`FACT_MEMORY_CAPACITY`).
pub const DEFAULT_CAPACITY: u64 = 100_000;

/// Bytes kept by default for facts, row histories and dimensions together (`FACT_MEMORY_MIB`,
/// 8 MiB): half for facts, three eighths for row histories, one eighth for dimensions.
pub const DEFAULT_BYTES: u64 = 8 << 20;

/// The byte bound when only the entries are bounded: [`DEFAULT_BYTES`], or as much per entry of
/// `capacity` as the defaults give ([`DEFAULT_BYTES`] per [`DEFAULT_CAPACITY`], about 84 bytes)
/// when that is more.
pub fn default_bytes(capacity: u64) -> u64 {
    let scaled = u128::from(capacity) * u128::from(DEFAULT_BYTES) / u128::from(DEFAULT_CAPACITY);
    u64::try_from(scaled).unwrap_or(u64::MAX).max(DEFAULT_BYTES)
}

/// Distinct dimension values shared between entries (pipeline names repeat on every row);
/// past this many the set starts again.
const NAMES: usize = 4096;

impl Weigh for RowState {
    fn heap_bytes(&self) -> usize {
        let note = |n: &ChangeNote| n.status.capacity();
        self.changes.capacity() * size_of::<ChangeNote>()
            + self.changes.iter().map(note).sum::<usize>()
            + self.marks.capacity() * size_of::<Mark>()
            + self.marks.iter().map(|m| m.fact.capacity() + note(&m.note)).sum::<usize>()
    }
}

impl Weigh for Arc<str> {
    /// Counted whole even when shared with other entries: the bound holds either way.
    fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>() + self.len()
    }
}

pub struct Memory {
    facts: Generations<()>,
    rows: Generations<RowState>,
    dimensions: Generations<Arc<str>>,
    names: Mutex<HashSet<Arc<str>>>,
}

impl Memory {
    /// A memory of at most `capacity` facts (and as many row histories and dimensions), in at
    /// most [`default_bytes`]`(capacity)`.
    pub fn new(capacity: u64) -> Memory {
        Memory::with_bounds(capacity, default_bytes(capacity))
    }

    /// A memory of at most `capacity` entries of each kind in at most `bytes` altogether
    /// (`u64::MAX`: no bound).
    pub fn with_bounds(capacity: u64, bytes: u64) -> Memory {
        let share = |eighths: u64| if bytes == u64::MAX { u64::MAX } else { bytes / 8 * eighths };
        let bounds = |eighths| Bounds { entries: capacity, bytes: share(eighths) };
        Memory {
            facts: Generations::new(bounds(4)),
            rows: Generations::new(bounds(3)),
            dimensions: Generations::new(bounds(1)),
            names: Mutex::new(HashSet::new()),
        }
    }

    /// Facts evicted because the memory was full.
    pub fn evictions(&self) -> u64 {
        self.facts.evicted()
    }

    /// Facts remembered now.
    pub fn len(&self) -> u64 {
        self.facts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of everything the memory holds now.
    pub fn snapshot(&self) -> Snapshot {
        let mut out = Snapshot::default();
        self.facts.for_each(|k, _| out.facts.push(Key(k)));
        self.rows.for_each(|k, state| out.rows.push((Key(k), state.clone())));
        self.dimensions.for_each(|k, v| out.dimensions.push((Key(k), v.to_string())));
        out
    }

    /// Adds everything of `snapshot` (within the bounds: beyond them, entries are evicted and
    /// counted as usual).
    pub fn restore(&self, snapshot: Snapshot) {
        for f in snapshot.facts {
            self.facts.insert(f.0, ());
        }
        for (k, state) in snapshot.rows {
            self.rows.insert(k.0, state);
        }
        for (k, v) in snapshot.dimensions {
            let v = self.name(&v);
            self.dimensions.insert(k.0, v);
        }
    }

    /// The shared copy of a dimension value.
    fn name(&self, value: &str) -> Arc<str> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = names.get(value) {
            return v.clone();
        }
        if names.len() >= NAMES {
            names.clear();
        }
        let v: Arc<str> = Arc::from(value);
        names.insert(v.clone());
        v
    }
}

#[async_trait::async_trait]
impl FactStore for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn reserve(&self, fact: FactKey) -> Result<bool, StoreError> {
        Ok(self.facts.insert_if_absent(fact.0, || ()))
    }

    async fn release(&self, fact: FactKey) -> Result<(), StoreError> {
        self.facts.remove(fact.0);
        Ok(())
    }

    async fn update_row(&self, row: RowKey, update: RowUpdate<'_>) -> Result<Vec<Mark>, StoreError> {
        Ok(self.rows.update(row.0, RowState::default, |state| {
            let marks = update(state);
            // a history grows by one change at a time: keep it at its length
            state.changes.shrink_to_fit();
            state.marks.shrink_to_fit();
            marks
        }))
    }

    async fn put_dimension(&self, key: Key, value: &str) -> Result<(), StoreError> {
        if self.dimensions.get(key.0, |v| &**v == value) != Some(true) {
            let v = self.name(value);
            self.dimensions.insert(key.0, v);
        }
        Ok(())
    }

    async fn get_dimension(&self, key: Key) -> Result<Option<String>, StoreError> {
        Ok(self.dimensions.get(key.0, |v| v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fact_is_reserved_once_until_released() {
        let m = Memory::new(100);
        let k = Key::of(&["f"]);
        assert!(m.reserve(k).await.unwrap());
        assert!(!m.reserve(k).await.unwrap());
        m.release(k).await.unwrap();
        assert!(m.reserve(k).await.unwrap(), "released: the redelivery writes it");
    }

    #[tokio::test]
    async fn the_memory_is_bounded_and_counts_evictions() {
        let m = Memory::new(1000);
        for i in 0..5000 {
            m.reserve(Key::of(&[&i.to_string()])).await.unwrap();
        }
        assert!(m.len() <= 1000, "{}", m.len());
        assert!(m.evictions() >= 4000, "{}", m.evictions());
        assert!(!m.reserve(Key::of(&["4999"])).await.unwrap(), "the most recent facts are kept");
    }

    fn note(position: u128, status: &str) -> ChangeNote {
        ChangeNote {
            position,
            status: status.into(),
            terminal: status != "RUNNING",
            start_us: Some(1),
            end_us: None,
            duration_s: None,
            end_from_commit: false,
            records: None,
        }
    }

    #[tokio::test]
    async fn rows_and_dimensions_stay_within_the_byte_bound() {
        let bytes = 1 << 20;
        let m = Memory::with_bounds(u64::MAX, bytes);
        for i in 0..20_000u64 {
            let row = Key::of(&["row", &i.to_string()]);
            for (p, status) in [(1, "RUNNING"), (2, "FAILED"), (3, "RUNNING")] {
                m.update_row(row, &|s: &mut RowState| {
                    s.changes.push(note(p, status));
                    Vec::new()
                })
                .await
                .unwrap();
            }
            m.put_dimension(Key::of(&["dim", &i.to_string()]), &format!("pipeline_{}", i % 40)).await.unwrap();
        }
        let snapshot = m.snapshot();
        let table = |n: usize, entry: usize| n * 8 / 7 * (entry + 1);
        let rows: usize = snapshot.rows.iter().map(|(_, s)| s.heap_bytes()).sum::<usize>()
            + table(snapshot.rows.len(), size_of::<(u128, RowState)>());
        let dims = table(snapshot.dimensions.len(), size_of::<(u128, Arc<str>)>());
        assert!(rows as u64 <= bytes / 8 * 3, "row histories take {rows} bytes");
        assert!(dims as u64 <= bytes / 8, "dimensions take {dims} bytes");
        assert!(
            snapshot.rows.len() > 500 && snapshot.dimensions.len() > 1000,
            "{} {}",
            snapshot.rows.len(),
            snapshot.dimensions.len()
        );
        assert!(snapshot.rows.iter().all(|(_, s)| s.changes.len() == 3), "a kept row keeps its whole history");
        let last = Key::of(&["dim", "19999"]);
        assert_eq!(m.get_dimension(last).await.unwrap().as_deref(), Some("pipeline_39"), "the newest is kept");
        // values are shared: 40 names, one allocation each
        let names = m.names.lock().unwrap();
        assert_eq!(names.len(), 40);
        assert!(names.iter().all(|n| Arc::strong_count(n) > 2));
    }

    #[tokio::test]
    async fn a_restored_snapshot_knows_every_fact_row_and_dimension() {
        let m = Memory::new(100);
        let (fact, row, dim) = (Key::of(&["f"]), Key::of(&["r"]), Key::of(&["d"]));
        m.reserve(fact).await.unwrap();
        m.put_dimension(dim, "etl").await.unwrap();
        m.update_row(row, &|s: &mut RowState| {
            s.changes.push(ChangeNote { end_us: Some(2), ..note(7, "COMPLETED") });
            Vec::new()
        })
        .await
        .unwrap();
        let text = serde_json::to_string(&m.snapshot()).unwrap();
        let next = Memory::new(100);
        next.restore(serde_json::from_str(&text).unwrap());
        assert!(!next.reserve(fact).await.unwrap(), "the fact is known: not written again");
        assert!(next.reserve(Key::of(&["other"])).await.unwrap());
        assert_eq!(next.get_dimension(dim).await.unwrap().as_deref(), Some("etl"));
        let seen = std::sync::Mutex::new(Vec::new());
        next.update_row(row, &|s: &mut RowState| {
            seen.lock().unwrap().extend(s.changes.iter().map(|c| c.position));
            Vec::new()
        })
        .await
        .unwrap();
        assert_eq!(seen.into_inner().unwrap(), vec![7]);
    }

    #[tokio::test]
    async fn row_updates_see_every_earlier_update() {
        let m = Memory::new(10);
        let row = Key::of(&["r"]);
        let add = |s: &mut RowState| {
            s.changes.push(ChangeNote { terminal: false, start_us: None, ..note(s.changes.len() as u128, "X") });
            Vec::new()
        };
        for _ in 0..3 {
            m.update_row(row, &add).await.unwrap();
        }
        let count = std::sync::atomic::AtomicUsize::new(0);
        m.update_row(row, &|s: &mut RowState| {
            count.store(s.changes.len(), std::sync::atomic::Ordering::SeqCst);
            Vec::new()
        })
        .await
        .unwrap();
        assert_eq!(count.into_inner(), 3);
    }
}
