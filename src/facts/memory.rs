//! The in-process fact memory: exact within one instance, bounded in entries.
//!
//! When full, the least recently used entries are evicted (moka, LRU policy). An evicted fact
//! whose record is delivered again is counted again, so the capacity should cover the
//! redelivery horizon of the busiest instance (`FACT_MEMORY_CAPACITY`); with many instances use
//! a shared store. Evictions are counted ([`Memory::evictions`]).
//!
//! A replay saves what the memory holds between runs ([`Memory::snapshot`],
//! [`Memory::restore`]), so that a second run finds every fact of the first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use serde::{Deserialize, Serialize};

use super::{FactKey, FactStore, Key, Mark, RowKey, RowState, RowUpdate, StoreError};

/// Everything a [`Memory`] holds: its facts, row histories and dimensions (each in no
/// particular order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    pub facts: Vec<FactKey>,
    pub rows: Vec<(RowKey, RowState)>,
    pub dimensions: Vec<(Key, String)>,
}

/// Entries kept by default: facts, row histories and dimensions each.
pub const DEFAULT_CAPACITY: u64 = 100_000;

pub struct Memory {
    facts: Cache<u128, ()>,
    rows: Cache<u128, Arc<std::sync::Mutex<RowState>>>,
    dimensions: Cache<u128, Arc<str>>,
    evictions: Arc<AtomicU64>,
}

impl Memory {
    /// A memory of at most `capacity` facts (and as many row histories and dimensions).
    pub fn new(capacity: u64) -> Memory {
        let evictions = Arc::new(AtomicU64::new(0));
        let counted = evictions.clone();
        let facts = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        let rows = Cache::builder().max_capacity(capacity).eviction_policy(EvictionPolicy::lru()).build();
        let dimensions = Cache::builder().max_capacity(capacity).eviction_policy(EvictionPolicy::lru()).build();
        Memory { facts, rows, dimensions, evictions }
    }

    /// Facts evicted because the memory was full.
    pub fn evictions(&self) -> u64 {
        self.facts.run_pending_tasks();
        self.evictions.load(Ordering::Relaxed)
    }

    /// Facts remembered now.
    pub fn len(&self) -> u64 {
        self.facts.run_pending_tasks();
        self.facts.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of everything the memory holds now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            facts: self.facts.iter().map(|(k, _)| Key(*k)).collect(),
            rows: self
                .rows
                .iter()
                .map(|(k, state)| (Key(*k), state.lock().unwrap_or_else(|p| p.into_inner()).clone()))
                .collect(),
            dimensions: self.dimensions.iter().map(|(k, v)| (Key(*k), v.to_string())).collect(),
        }
    }

    /// Adds everything of `snapshot` (within the capacity: beyond it, entries are evicted and
    /// counted as usual).
    pub fn restore(&self, snapshot: Snapshot) {
        for f in snapshot.facts {
            self.facts.insert(f.0, ());
        }
        for (k, state) in snapshot.rows {
            self.rows.insert(k.0, Arc::new(std::sync::Mutex::new(state)));
        }
        for (k, v) in snapshot.dimensions {
            self.dimensions.insert(k.0, Arc::from(v));
        }
    }
}

#[async_trait::async_trait]
impl FactStore for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn reserve(&self, fact: FactKey) -> Result<bool, StoreError> {
        Ok(self.facts.entry(fact.0).or_insert(()).is_fresh())
    }

    async fn release(&self, fact: FactKey) -> Result<(), StoreError> {
        self.facts.invalidate(&fact.0);
        Ok(())
    }

    async fn update_row(&self, row: RowKey, update: RowUpdate<'_>) -> Result<Vec<Mark>, StoreError> {
        let state = self.rows.get_with(row.0, Default::default);
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(update(&mut state))
    }

    async fn put_dimension(&self, key: Key, value: &str) -> Result<(), StoreError> {
        if self.dimensions.get(&key.0).as_deref() != Some(value) {
            self.dimensions.insert(key.0, Arc::from(value));
        }
        Ok(())
    }

    async fn get_dimension(&self, key: Key) -> Result<Option<String>, StoreError> {
        Ok(self.dimensions.get(&key.0).map(|v| v.to_string()))
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

    #[tokio::test]
    async fn a_restored_snapshot_knows_every_fact_row_and_dimension() {
        let m = Memory::new(100);
        let (fact, row, dim) = (Key::of(&["f"]), Key::of(&["r"]), Key::of(&["d"]));
        m.reserve(fact).await.unwrap();
        m.put_dimension(dim, "etl").await.unwrap();
        m.update_row(row, &|s: &mut RowState| {
            s.changes.push(crate::facts::ChangeNote {
                position: 7,
                status: "COMPLETED".into(),
                terminal: true,
                start_us: Some(1),
                end_us: Some(2),
                duration_s: None,
                end_from_commit: false,
                records: None,
            });
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
            s.changes.push(crate::facts::ChangeNote {
                position: s.changes.len() as u128,
                status: "X".into(),
                terminal: false,
                start_us: None,
                end_us: None,
                duration_s: None,
                end_from_commit: false,
                records: None,
            });
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
