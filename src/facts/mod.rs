//! The fact memory: what makes every lifecycle fact count exactly once, whatever the order and
//! the number of deliveries, and however many instances receive them (lifecycle.md D.3).
//!
//! A fact (a run started, finished, was retried, missed its SLA) is identified by
//! [`FactKey`] = hash(source, table, primary key, fact, attempt). Before a fact's points are
//! written it is *reserved* (created if absent); a fact that exists is not written again. When the
//! metric sink then fails, the reservation is *released*, so the redelivery writes it. When the
//! store cannot be reached the record is answered as a transient failure and nothing is written.
//!
//! Two more things live here because every instance must see the same answer:
//! * row histories, for tables whose attempts the row alone cannot tell apart (a Mage run
//!   retried after FAILED keeps its `started_at` and gets no `completed_at`): each change is
//!   noted by its log position, and terminal episodes are counted in log order;
//! * dimensions: `(table, key) -> name`, so that a task row names its pipeline through its
//!   parent row (a Mage `block_run` through its `pipeline_run`).
//!
//! Backends: [`memory::Memory`] (in-process, bounded: the default), [`redis::Redis`]
//! (`SET NX EX`) and [`firestore::Firestore`] (create-if-absent documents) for many instances.

pub mod config;
pub mod firestore;
pub mod memory;
pub mod redis;

use serde::{Deserialize, Serialize};

/// A 128-bit identity (xxh3) of a fact, a row or a dimension entry; its text form is 32 hex
/// digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub u128);

impl Key {
    /// The key of the parts, separated so that `("ab", "c")` and `("a", "bc")` differ.
    pub fn of(parts: &[&str]) -> Key {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        Key(h.digest128())
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }

    /// The key of its text form (32 hex digits, [`Key::hex`]); `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Key> {
        (text.len() == 32).then(|| u128::from_str_radix(text, 16).ok().map(Key)).flatten()
    }
}

/// Serialised as its text form, 32 hex digits (JSON has no 128-bit integers).
impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Key::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a 128-bit key (32 hex digits): {text}")))
    }
}

/// Hashes a key that is already a uniform hash (a [`Key`], the de-duplication window's ids):
/// its low 64 bits.
#[derive(Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for u128 keys; any other key type is hashed byte by byte (FNV-1a).
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

/// The identity of one fact.
pub type FactKey = Key;
/// The identity of one row (source, table, primary key).
pub type RowKey = Key;

/// One change of a row as the history of its episodes needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeNote {
    /// Log position (LSN, or commit time in microseconds when the source gives no LSN).
    pub position: u128,
    /// The status after the change.
    pub status: String,
    /// Whether the status is terminal.
    pub terminal: bool,
    /// Start and end of the attempt, epoch microseconds, as the row (or the commit) says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_us: Option<i64>,
    /// The row's own duration column, seconds, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// The end came from the commit time, not from a column.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end_from_commit: bool,
    /// Records the attempt wrote, when the row says (`records` of the profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<f64>,
}

/// A fact of a row whose attempts are counted in log order, as the row's history records it
/// once it is written: which fact, and the change (the first terminal change of its episode at
/// the time) it was taken from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// `finished` or `retried`.
    pub fact: String,
    pub note: ChangeNote,
}

/// What the store keeps of a row counted in log order: its changes and the facts written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowState {
    pub changes: Vec<ChangeNote>,
    pub marks: Vec<Mark>,
}

/// A pure, deterministic update of a row's state returning the marks it added (a backend may
/// run it more than once on fresher states until its write wins).
pub type RowUpdate<'a> = &'a (dyn Fn(&mut RowState) -> Vec<Mark> + Send + Sync);

/// What one record holds in the store until its points are written.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    Fact(FactKey),
    /// Facts of a row counted in log order: the marks added to its history.
    Marks {
        row: RowKey,
        marks: Vec<Mark>,
    },
}

/// Gives a reservation back (its points could not be written), so that a redelivery writes
/// them.
///
/// Errors: the store cannot be reached (the fact stays reserved: logged by the caller).
pub async fn release(store: &dyn FactStore, r: &Reservation) -> Result<(), StoreError> {
    match r {
        Reservation::Fact(f) => store.release(*f).await,
        Reservation::Marks { row, marks } => {
            let remove = |s: &mut RowState| {
                s.marks.retain(|m| !marks.contains(m));
                Vec::new()
            };
            store.update_row(*row, &remove).await.map(|_| ())
        }
    }
}

/// Why the store could not answer. Always transient for the record: a retry may succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("fact store {store}: {message}")]
pub struct StoreError {
    pub store: &'static str,
    pub message: String,
}

#[async_trait::async_trait]
pub trait FactStore: Send + Sync {
    /// `memory`, `redis` or `firestore`.
    fn name(&self) -> &'static str;

    /// Creates the fact if it is absent. `Ok(true)`: reserved by this call, write its points;
    /// `Ok(false)`: it exists, write nothing.
    async fn reserve(&self, fact: FactKey) -> Result<bool, StoreError>;

    /// Forgets a reservation whose points could not be written, so that a redelivery writes
    /// them.
    async fn release(&self, fact: FactKey) -> Result<(), StoreError>;

    /// Applies `update` to the row's state atomically (no other update of the same row in
    /// between) and returns the marks it added.
    async fn update_row(&self, row: RowKey, update: RowUpdate<'_>) -> Result<Vec<Mark>, StoreError>;

    /// Remembers a dimension value (a row's pipeline name, a flow's name).
    async fn put_dimension(&self, key: Key, value: &str) -> Result<(), StoreError>;

    /// A dimension value, if it was seen.
    async fn get_dimension(&self, key: Key) -> Result<Option<String>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(Key::of(&["ab", "c"]), Key::of(&["a", "bc"]));
        assert_eq!(Key::of(&["a", "b"]), Key::of(&["a", "b"]));
        assert_eq!(Key::of(&["x"]).hex().len(), 32);
    }

    #[test]
    fn keys_round_trip_through_json_as_hex() {
        let k = Key(0x0123_4567_89ab_cdef_0000_0000_0000_0001);
        let text = serde_json::to_string(&k).unwrap();
        assert_eq!(text, "\"0123456789abcdef0000000000000001\"");
        assert_eq!(serde_json::from_str::<Key>(&text).unwrap(), k);
        for bad in ["\"123\"", "\"0123456789abcdef000000000000000g\"", "17"] {
            assert!(serde_json::from_str::<Key>(bad).is_err(), "{bad}");
        }
    }
}
