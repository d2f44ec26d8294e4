//! An in-process warehouse for delivery tests (no service behind it): scripted delays and
//! failures, counted and cancelled queries.

use std::sync::Arc;
use std::time::Duration;

/// A warehouse for delivery tests: every table exists; each query waits `delay`, fails with
/// "unavailable" while `fail_queries` > 0 (counting down), and returns one row with the columns
/// of `claims_paid.sql` (U = 1000, P = 3000). Counts calls and cancelled (dropped) queries.
#[derive(Default)]
pub struct ScriptedWarehouse {
    /// how long each query waits
    pub delay: Duration,
    /// how many queries still fail with "unavailable"
    pub fail_queries: std::sync::atomic::AtomicUsize,
    /// queries received
    pub queries: std::sync::atomic::AtomicUsize,
    /// queries dropped before they finished
    pub cancelled: Arc<std::sync::atomic::AtomicUsize>,
}

struct CancelGuard(Arc<std::sync::atomic::AtomicUsize>, bool);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[async_trait::async_trait]
impl pipeline_run_metrics::warehouse::Warehouse for ScriptedWarehouse {
    async fn table_exists(
        &self,
        _: &pipeline_run_metrics::warehouse::TableRef,
    ) -> Result<bool, pipeline_run_metrics::warehouse::WarehouseError> {
        Ok(true)
    }
    async fn query(
        &self,
        _: &str,
        _: &[(String, pipeline_run_metrics::warehouse::Param)],
    ) -> Result<Vec<pipeline_run_metrics::warehouse::Row>, pipeline_run_metrics::warehouse::WarehouseError> {
        use pipeline_run_metrics::warehouse::Cell;
        use std::sync::atomic::Ordering::SeqCst;
        self.queries.fetch_add(1, SeqCst);
        let mut guard = CancelGuard(self.cancelled.clone(), false);
        tokio::time::sleep(self.delay).await;
        guard.1 = true;
        if self.fail_queries.load(SeqCst) > 0 {
            self.fail_queries.fetch_sub(1, SeqCst);
            return Err(pipeline_run_metrics::warehouse::WarehouseError::Unavailable("HTTP 503: backend error".into()));
        }
        let row: pipeline_run_metrics::warehouse::Row = [
            ("unprocessable_total", Cell::Float(1000.0)),
            ("processable_total", Cell::Float(3000.0)),
            ("unprocessable_relative", Cell::Float(0.25)),
            ("processable_relative", Cell::Float(0.75)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(vec![row])
    }
}
