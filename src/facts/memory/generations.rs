//! A bounded map of 128-bit keys in two generations: the store behind [`super::Memory`].
//!
//! Entries go into the *young* generation; an entry found in the *old* one moves to the young
//! one (so what is in use stays). When the young generation reaches half the bound (entries or
//! bytes), the old generation is dropped (its entries are evicted, and counted) and the young
//! one becomes the old. So the map always holds at least the half of the bound that was used
//! most recently, and never more than the bound. Bytes are counted as each entry's share of its
//! table (see `table_bytes`) plus the heap its value owns ([`Weigh`]).
//!
//! Why not a cache crate: keys are already uniform hashes (xxh3), so a map needs no hashing and
//! a plain hash table costs about 20 to 40 bytes per fact. Measured on this machine (2026-11-30,
//! 100,000 facts of `u128 -> ()` with mimalloc, RSS growth per entry): moka 0.12 (LRU) 269 B,
//! quick_cache 0.6 140 B, lru 0.16 55 B, this map about 30 B. The fact memory is what keeps a
//! small instance exact, so its cost per fact decides how long a redelivery horizon fits in the
//! memory an instance pays for (docs/architecture.md, "What stays hand-written and why").
//!
//! Sharded (16 shards, each behind its own mutex, chosen by the key's top bits), so that
//! concurrent requests rarely wait for each other; an operation holds one shard's lock for a few
//! hundred nanoseconds and never across an `.await`.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::facts::KeyHasher;

const SHARDS: usize = 16;

/// The cost of an entry's value outside the table (heap bytes it owns), for the byte bound.
pub trait Weigh {
    fn heap_bytes(&self) -> usize;
}

impl Weigh for () {
    fn heap_bytes(&self) -> usize {
        0
    }
}

type Table<V> = HashMap<u128, V, BuildHasherDefault<KeyHasher>>;

struct Shard<V> {
    young: Table<V>,
    old: Table<V>,
    /// Heap bytes of the young generation's values.
    young_heap: usize,
    /// Heap bytes of the old generation's values.
    old_heap: usize,
}

/// The bounds of a [`Generations`] map: entries and bytes (table plus values' heap), both for
/// the whole map. `u64::MAX` is no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub entries: u64,
    pub bytes: u64,
}

pub struct Generations<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    /// Per shard and generation: half the bound, divided among the shards.
    generation_entries: usize,
    generation_bytes: usize,
    evicted: AtomicU64,
}

/// Bytes of `entries` entries in a table: their buckets (one key-value pair and one control byte
/// each; hashbrown keeps at most 7 of 8 buckets full). A table has a power of two of buckets,
/// so the one of a generation can take up to twice this while it is not full.
fn table_bytes<V>(entries: usize) -> usize {
    entries.saturating_mul(8) / 7 * (size_of::<(u128, V)>() + 1)
}

impl<V> Generations<V> {
    pub fn new(bounds: Bounds) -> Generations<V> {
        let per = |total: u64| usize::try_from(total / 2 / SHARDS as u64).unwrap_or(usize::MAX).max(1);
        Generations {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard { young: Table::default(), old: Table::default(), young_heap: 0, old_heap: 0 })
                })
                .collect(),
            generation_entries: per(bounds.entries),
            generation_bytes: per(bounds.bytes),
            evicted: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: u128) -> std::sync::MutexGuard<'_, Shard<V>> {
        let i = (key >> 124) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries evicted because the map was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Entries held now.
    pub fn len(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|p| p.into_inner());
                (s.young.len() + s.old.len()) as u64
            })
            .sum()
    }
}

impl<V: Weigh> Generations<V> {
    /// Inserts `key` with `make()` unless present. `true`: inserted by this call.
    pub fn insert_if_absent(&self, key: u128, make: impl FnOnce() -> V) -> bool {
        let mut s = self.shard(key);
        if s.young.contains_key(&key) {
            return false;
        }
        if let Some(v) = s.old.remove(&key) {
            s.old_heap -= v.heap_bytes();
            self.put(&mut s, key, v);
            return false;
        }
        self.put(&mut s, key, make());
        true
    }

    /// Inserts or replaces the value of `key`.
    pub fn insert(&self, key: u128, value: V) {
        let mut s = self.shard(key);
        if let Some(v) = s.old.remove(&key) {
            s.old_heap -= v.heap_bytes();
        }
        if let Some(v) = s.young.remove(&key) {
            s.young_heap -= v.heap_bytes();
        }
        self.put(&mut s, key, value);
    }

    /// Applies `f` to the value of `key` (made by `make` when absent) and returns its result.
    pub fn update<R>(&self, key: u128, make: impl FnOnce() -> V, f: impl FnOnce(&mut V) -> R) -> R {
        let mut s = self.shard(key);
        let mut value = match s.young.remove(&key) {
            Some(v) => {
                s.young_heap -= v.heap_bytes();
                v
            }
            None => match s.old.remove(&key) {
                Some(v) => {
                    s.old_heap -= v.heap_bytes();
                    v
                }
                None => make(),
            },
        };
        let out = f(&mut value);
        self.put(&mut s, key, value);
        out
    }

    /// Removes `key`.
    pub fn remove(&self, key: u128) {
        let mut s = self.shard(key);
        if let Some(v) = s.young.remove(&key) {
            s.young_heap -= v.heap_bytes();
        }
        if let Some(v) = s.old.remove(&key) {
            s.old_heap -= v.heap_bytes();
        }
    }

    /// The value of `key` through `f`, if present (an entry found in the old generation moves
    /// to the young one).
    pub fn get<R>(&self, key: u128, f: impl FnOnce(&V) -> R) -> Option<R> {
        let mut s = self.shard(key);
        if let Some(v) = s.young.get(&key) {
            return Some(f(v));
        }
        let v = s.old.remove(&key)?;
        s.old_heap -= v.heap_bytes();
        let out = f(&v);
        self.put(&mut s, key, v);
        Some(out)
    }

    /// Whether `key` is held, without moving it.
    #[cfg(test)]
    fn contains(&self, key: u128) -> bool {
        let s = self.shard(key);
        s.young.contains_key(&key) || s.old.contains_key(&key)
    }

    /// Every entry, through `f` (no particular order).
    pub fn for_each(&self, mut f: impl FnMut(u128, &V)) {
        for s in self.shards.iter() {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            for (k, v) in s.young.iter().chain(s.old.iter()) {
                f(*k, v);
            }
        }
    }

    /// Puts a value that is in neither generation into the young one, first making room.
    fn put(&self, s: &mut Shard<V>, key: u128, value: V) {
        let heap = value.heap_bytes();
        let full = s.young.len() >= self.generation_entries
            || table_bytes::<V>(s.young.len() + 1) + s.young_heap + heap > self.generation_bytes;
        if full && !s.young.is_empty() {
            // the old generation goes; the young one becomes old, and the next young table
            // starts at the size the last one reached (no growth by doubling on the way)
            let capacity = s.young.len();
            self.evicted.fetch_add(s.old.len() as u64, Ordering::Relaxed);
            s.old = std::mem::replace(&mut s.young, Table::with_capacity_and_hasher(capacity, Default::default()));
            s.old_heap = std::mem::take(&mut s.young_heap);
        }
        s.young_heap += heap;
        s.young.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for Vec<u8> {
        fn heap_bytes(&self) -> usize {
            self.capacity()
        }
    }

    fn key(i: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())
    }

    #[test]
    fn holds_at_most_its_bound_and_at_least_the_recent_half() {
        let m: Generations<()> = Generations::new(Bounds { entries: 3200, bytes: u64::MAX });
        for i in 0..20_000 {
            assert!(m.insert_if_absent(key(i), || ()));
        }
        assert!(m.len() <= 3200, "{}", m.len());
        assert_eq!(m.evicted() + m.len(), 20_000, "every entry not held was evicted and counted");
        // the most recent half of the bound is always there (1,000 keys: about 63 per shard,
        // where each shard keeps its last 100)
        for i in 20_000 - 1_000..20_000 {
            assert!(m.contains(key(i)), "{i} was forgotten");
        }
        assert!(!m.insert_if_absent(key(19_999), || ()));
    }

    #[test]
    fn an_entry_in_use_survives_rotations() {
        let m: Generations<()> = Generations::new(Bounds { entries: 320, bytes: u64::MAX });
        m.insert_if_absent(key(0), || ());
        for i in 1..10_000 {
            m.insert_if_absent(key(i), || ());
            if i % 50 == 0 {
                assert!(m.get(key(0), |_| ()).is_some(), "lost after {i}");
            }
        }
    }

    #[test]
    fn the_byte_bound_counts_values_heap() {
        // 16 shards x 2 generations of at most 4 KiB each
        let m: Generations<Vec<u8>> = Generations::new(Bounds { entries: u64::MAX, bytes: 16 * 2 * 4096 });
        for i in 0..10_000 {
            m.insert(key(i), vec![0u8; 100]);
        }
        let mut heap = 0;
        m.for_each(|_, v| heap += v.capacity());
        assert!(heap <= 16 * 2 * 4096, "{heap}");
        assert!(m.len() >= 16 * 10, "{}", m.len());
        assert_eq!(m.evicted() + m.len(), 10_000);
    }

    #[test]
    fn update_remove_and_get_see_one_value_per_key() {
        let m: Generations<Vec<u8>> = Generations::new(Bounds { entries: 64, bytes: u64::MAX });
        let k = key(7);
        assert_eq!(m.update(k, Vec::new, |v| v.push(1)), ());
        m.update(k, Vec::new, |v| v.push(2));
        assert_eq!(m.get(k, |v| v.clone()), Some(vec![1, 2]));
        m.insert(k, vec![9]);
        assert_eq!(m.get(k, |v| v.clone()), Some(vec![9]));
        m.remove(k);
        assert_eq!(m.get(k, |v| v.clone()), None);
        assert_eq!(m.len(), 0);
    }
}
