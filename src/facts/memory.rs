//! The in-process fact memory: exact within one instance, bounded in entries.
//!
//! When full, the least recently used entries are evicted (moka, LRU policy). An evicted fact
//! whose record is delivered again is counted again, so the capacity should cover the
//! redelivery horizon of the busiest instance (`FACT_MEMORY_CAPACITY`); with many instances use
//! a shared store. Evictions are counted ([`Memory::evictions`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::{FactKey, FactStore, Key, Mark, RowKey, RowState, RowUpdate, StoreError};

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
