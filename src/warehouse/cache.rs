//! The per-event request cache: within one event, each table's existence is asked once and each
//! distinct query runs once, however many handlers need them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::{Param, Row, TableRef, Warehouse, WarehouseError};

/// A result computed once per event and shared by every handler that asks for it.
type Shared<K, T> = Mutex<HashMap<K, Arc<OnceCell<Result<T, WarehouseError>>>>>;

pub struct EventContext<'a> {
    pub warehouse: &'a dyn Warehouse,
    tables: Shared<TableRef, bool>,
    queries: Shared<u128, Arc<Vec<Row>>>,
}

/// The identity of a query within an event: a 128-bit hash (xxh3) of its SQL file, the relation
/// each table placeholder stands for, and its parameters (names, types and values).
pub fn query_key<'a>(
    sql_file: &str,
    relations: impl IntoIterator<Item = (&'a str, &'a str)>,
    params: &[(String, Param)],
) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut part = |s: &[u8]| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s);
    };
    part(sql_file.as_bytes());
    for (name, relation) in relations {
        part(name.as_bytes());
        part(relation.as_bytes());
    }
    for (name, p) in params {
        part(name.as_bytes());
        part(p.bq_type().as_bytes());
        part(p.bq_value().as_bytes());
    }
    h.digest128()
}

impl<'a> EventContext<'a> {
    pub fn new(warehouse: &'a dyn Warehouse) -> Self {
        EventContext { warehouse, tables: Mutex::new(HashMap::new()), queries: Mutex::new(HashMap::new()) }
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
            map.entry(table.clone()).or_default().clone()
        };
        cell.get_or_init(|| self.warehouse.table_exists(table)).await.clone()
    }
}
