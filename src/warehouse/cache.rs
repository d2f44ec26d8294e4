//! The per-event request cache: within one event, each table's existence is asked once and each
//! distinct query runs once, however many handlers need them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::{Param, Row, TableRef, Warehouse, WarehouseError};

/// A result computed once per event and shared by every handler that asks for it.
type Shared<K, T> = Mutex<HashMap<K, Arc<OnceCell<Result<T, WarehouseError>>>, BuildHasherDefault<Prehashed>>>;

/// The hasher of maps keyed by [`table_key`] and [`query_key`]: the keys are xxh3 digests
/// already, so their bits are the hash (SipHash over them again cost more than the lookup).
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // only `write_u128` is used by the keys; any other input is still hashed correctly
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 ^= (key as u64) ^ ((key >> 64) as u64);
    }
}

/// The length-prefixed parts of a key, hashed in one call (the streaming `Xxh3` state costs more
/// to set up than the few dozen bytes of a key take to hash); the same digest as streaming them.
#[derive(Default)]
struct KeyBytes(Vec<u8>);

impl KeyBytes {
    fn part(&mut self, s: &[u8]) {
        self.0.extend_from_slice(&(s.len() as u64).to_le_bytes());
        self.0.extend_from_slice(s);
    }

    fn digest(&self) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&self.0)
    }
}

pub struct EventContext<'a> {
    pub warehouse: &'a dyn Warehouse,
    /// Keyed by [`table_key`]: hashing the parts costs less than cloning three strings per
    /// lookup (every matching handler of every event asks).
    tables: Shared<u128, bool>,
    queries: Shared<u128, Arc<Vec<Row>>>,
}

/// The identity of a table within an event: a 128-bit hash (xxh3) of `project.dataset.table`
/// (unambiguous: no part contains a dot).
pub fn table_key(table: &TableRef) -> u128 {
    xxhash_rust::xxh3::xxh3_128(table.as_str().as_bytes())
}

/// The identity of a query within an event: a 128-bit hash (xxh3) of its SQL file, the relation
/// each table placeholder stands for, and its parameters (names, types and values).
pub fn query_key<'a>(
    sql_file: &str,
    relations: impl IntoIterator<Item = (&'a str, &'a str)>,
    params: impl IntoIterator<Item = (&'a str, &'a Param)>,
) -> u128 {
    let mut k = KeyBytes(Vec::with_capacity(256));
    k.part(sql_file.as_bytes());
    for (name, relation) in relations {
        k.part(name.as_bytes());
        k.part(relation.as_bytes());
    }
    for (name, p) in params {
        k.part(name.as_bytes());
        k.part(p.bq_type().as_bytes());
        p.identity(&mut |s| k.part(s));
    }
    k.digest()
}

impl<'a> EventContext<'a> {
    pub fn new(warehouse: &'a dyn Warehouse) -> Self {
        EventContext { warehouse, tables: Mutex::default(), queries: Mutex::default() }
    }

    /// Runs a query once per event: `key` identifies it ([`query_key`]), and `render` builds the
    /// SQL only when it has not run yet for this event, so that families sharing a SQL file share
    /// one job (and its rows, without copies).
    pub async fn query_keyed(
        &self,
        key: u128,
        render: impl FnOnce() -> (String, Vec<(String, Param)>),
    ) -> Result<Arc<Vec<Row>>, WarehouseError> {
        let cell = {
            let mut map = self.queries.lock().expect("query cache lock");
            map.entry(key).or_default().clone()
        };
        cell.get_or_init(|| async move {
            let (sql, params) = render();
            self.warehouse.query(&sql, &params).await.map(Arc::new)
        })
        .await
        .clone()
    }

    /// (distinct tables checked, distinct queries run) so far for this event.
    pub fn requests(&self) -> (usize, usize) {
        (self.tables.lock().map(|m| m.len()).unwrap_or(0), self.queries.lock().map(|m| m.len()).unwrap_or(0))
    }

    pub async fn table_exists(&self, table: &TableRef) -> Result<bool, WarehouseError> {
        let cell = {
            let mut map = self.tables.lock().expect("table cache lock");
            map.entry(table_key(table)).or_default().clone()
        };
        cell.get_or_init(|| self.warehouse.table_exists(table)).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::{KeyBytes, query_key};
    use crate::warehouse::Param;

    /// The one-shot digest is the streaming one over the same length-prefixed parts.
    #[test]
    fn a_key_is_the_xxh3_of_its_length_prefixed_parts() {
        let parts: [&[u8]; 3] = [b"q.sql", b"", b"`p.d.t`"];
        let mut k = KeyBytes::default();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for p in parts {
            k.part(p);
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        assert_eq!(k.digest(), h.digest128());
        assert_ne!(k.digest(), KeyBytes::default().digest());
    }

    fn key(params: &[(&str, Param)]) -> u128 {
        query_key("q.sql", [("t", "`p.d.t`")], params.iter().map(|(n, p)| (*n, p)))
    }

    /// Two parameters share a key exactly when BigQuery receives the same type and value text.
    #[test]
    fn a_query_key_tells_apart_exactly_what_bigquery_would_receive_differently() {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let ts = |nanos: i64| Param::Timestamp(t + chrono::Duration::nanoseconds(nanos));
        // the same rendered value: one key (BigQuery sees microseconds)
        assert_eq!(ts(0).bq_value(), ts(999).bq_value());
        assert_eq!(key(&[("at", ts(0))]), key(&[("at", ts(999))]));
        // one microsecond apart: two keys
        assert_ne!(ts(0).bq_value(), ts(1_000).bq_value());
        assert_ne!(key(&[("at", ts(0))]), key(&[("at", ts(1_000))]));
        // the same text under another type, another name, another date, another relation
        assert_ne!(key(&[("n", Param::Int(1))]), key(&[("n", Param::String("1".into()))]));
        assert_ne!(key(&[("n", Param::Int(1))]), key(&[("m", Param::Int(1))]));
        let day = |d| Param::Date(NaiveDate::from_ymd_opt(2026, 11, d).unwrap());
        assert_ne!(key(&[("d", day(29))]), key(&[("d", day(30))]));
        assert_ne!(query_key("q.sql", [("t", "`p.d.t`")], []), query_key("q.sql", [("t", "`p.d.u`")], []));
        // parts are length-prefixed: moving a byte between name and value changes the key
        assert_ne!(key(&[("ab", Param::String("c".into()))]), key(&[("a", Param::String("bc".into()))]));
        assert_eq!(key(&[("f", Param::Float(0.5))]), key(&[("f", Param::Float(0.5))]));
        assert_ne!(key(&[("f", Param::Float(0.5))]), key(&[("f", Param::Float(0.25))]));
    }
}
