//! pipeline-run-metrics: turns Datastream change records of Mage.ai `pipeline_run` rows into
//! operational metrics.
//!
//! Data flow, one module per stage:
//! [`transport`] (HTTP) -> [`envelope`] (Pub/Sub push, CloudEvents) -> [`record`] (Datastream
//! change record) -> [`dispatch`] (matching, concurrent execution) -> [`handler`] / [`catalogue`]
//! (built-in and declarative query handlers, through [`bigquery`]) -> [`sink`] (metric points).
//! [`error`] decides ack or retry in one place; [`config`] and [`logging`] are set up once.

pub mod auth;
pub mod bigquery;
pub mod catalogue;
pub mod config;
pub mod credentials;
pub mod dedup;
pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod handler;
pub mod logging;
pub mod record;
pub mod sink;
pub mod transport;

use std::sync::Arc;

/// Every handler in registration order: the built-in ones, then the catalogue.
pub fn all_handlers(
    dir: Option<&std::path::Path>,
) -> Result<Vec<Arc<dyn handler::Handler>>, catalogue::CatalogueError> {
    let mut handlers: Vec<Arc<dyn handler::Handler>> = vec![Arc::new(handler::PipelineRunCount)];
    handlers.extend(catalogue::load(dir)?);
    Ok(handlers)
}
