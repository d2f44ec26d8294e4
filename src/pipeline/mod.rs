//! The pipeline: one transport-agnostic driver per delivery.
//!
//! [`Pipeline::handle`] takes a decoded [`Delivery`] of one or more records and returns its
//! [`Answer`]. Per record: de-duplicate ([`dedup`]), dispatch to the handlers, then write the
//! points of every processed record through the sink, all within the delivery's deadline. Each
//! record gets its own [`Outcome`]; the answer of the delivery is derived from those outcomes in
//! one function ([`answer::answer`]). Every operational outcome is an internal event
//! ([`events`]) that logs and counts itself. Transports (HTTP, Lambda batches) only decode and
//! turn the answer into their own response.
//!
//! This file holds the [`Pipeline`] and its refusals; the driver over a delivery's records is in
//! `delivery.rs`, the steps of one record (dispatch, history time, de-duplication key) in
//! `record.rs`.

pub mod answer;
pub mod config;
pub mod dedup;
mod delivery;
pub mod events;
pub mod files;
pub mod labels;
mod record;
pub mod replay;

use std::sync::Arc;

use tracing::Instrument;

pub use answer::{AckPolicy, Answer, Outcome, RecordResult, Refusal};

use crate::decode::Delivery;
use crate::facts::FactStore;
use crate::handlers::Dispatcher;
use crate::handlers::lifecycle::Lifecycle;
use crate::sink::MetricSink;
use crate::warehouse::Warehouse;
use config::Delivery as DeliveryConfig;
use dedup::Dedup;
use events::Stats;

/// Everything a delivery needs, built once at startup.
pub struct Pipeline {
    pub dispatcher: Dispatcher,
    pub warehouse: Arc<dyn Warehouse>,
    pub sink: Arc<dyn MetricSink>,
    pub config: DeliveryConfig,
    lifecycle: Option<LifecycleParts>,
    /// Reads the objects of Cloud Storage notifications ([`files`]).
    storage: Option<Arc<crate::google::storage::Storage>>,
    dedup: Arc<Dedup>,
    /// Bounds the length and number of label values of every point written.
    labels: labels::LabelGuard,
    stats: Stats,
}

/// The lifecycle profiles in force and the fact store that makes their facts count once.
#[derive(Clone)]
pub struct LifecycleParts {
    pub lifecycle: Arc<Lifecycle>,
    pub facts: Arc<dyn FactStore>,
}

impl Pipeline {
    pub fn new(
        dispatcher: Dispatcher,
        warehouse: Arc<dyn Warehouse>,
        sink: Arc<dyn MetricSink>,
        config: DeliveryConfig,
    ) -> Pipeline {
        let dedup = Dedup::new(config.dedup_window, config.dedup_capacity);
        let labels = labels::LabelGuard::new(config.labels);
        Pipeline {
            dispatcher,
            warehouse,
            sink,
            config,
            lifecycle: None,
            storage: None,
            dedup,
            labels,
            stats: Stats::default(),
        }
    }

    /// With lifecycle metrics (`None`: without).
    pub fn with_lifecycle(mut self, lifecycle: Option<LifecycleParts>) -> Pipeline {
        self.lifecycle = lifecycle;
        self
    }

    pub fn policy(&self) -> AckPolicy {
        AckPolicy { ack_permanent: self.config.ack_permanent }
    }

    /// The function's own counters (internal events count into them).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The answer to a refused delivery, logged and counted.
    pub fn refuse(&self, refusal: &Refusal) -> Answer {
        let answer = answer::refuse(refusal, self.policy());
        match refusal {
            Refusal::Unauthorized(reason) => events::Unauthorized { reason }.emit(&self.stats),
            Refusal::Overloaded { limit } => events::Overloaded { limit: *limit }.emit(&self.stats),
            Refusal::BodiesBuffered { limit } => events::BodiesBuffered { limit: *limit }.emit(&self.stats),
            Refusal::BodyTimeout { timeout_secs } => {
                events::BodyTimeout { timeout_secs: *timeout_secs }.emit(&self.stats)
            }
            Refusal::Undecodable(error) => {
                events::Rejected { status: answer.status.as_u16(), error, format: None, meta: None, item: None }
                    .emit(&self.stats)
            }
            Refusal::Unavailable(reason) => events::SourceUnavailable { reason }.emit(&self.stats),
            Refusal::Ignored(reason) => events::NotificationIgnored { reason }.emit(&self.stats),
            Refusal::NoRoute { method, path } | Refusal::MethodNotAllowed { method, path, .. } => {
                events::NotRouted { status: answer.status.as_u16(), method, path }.emit()
            }
        }
        answer
    }

    /// Processes one delivery and answers it.
    pub async fn handle(&self, delivery: Delivery) -> Answer {
        let span = match delivery.records.as_slice() {
            [one] => tracing::info_span!(
                "event",
                message_id = delivery.meta.message_id.as_deref().unwrap_or(""),
                ce_id = delivery.meta.ce_id.as_deref().unwrap_or(""),
                datastream_uuid = one.record.as_ref().ok().and_then(|e| e.uuid.as_deref()).unwrap_or(""),
                delivery_attempt = delivery.meta.delivery_attempt.unwrap_or(0),
            ),
            _ => tracing::info_span!(
                "delivery",
                message_id = delivery.meta.message_id.as_deref().unwrap_or(""),
                ce_id = delivery.meta.ce_id.as_deref().unwrap_or(""),
                delivery_attempt = delivery.meta.delivery_attempt.unwrap_or(0),
                records = delivery.records.len(),
            ),
        };
        self.process(delivery).instrument(span).await
    }

    async fn process(&self, delivery: Delivery) -> Answer {
        let Delivery { format, meta, records } = delivery;
        let results = self.outcomes(format, &meta, records, self.config.event_deadline).await;
        answer::answer(&results, self.policy())
    }
}
