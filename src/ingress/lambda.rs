//! The AWS Lambda entry: batch triggers (Kinesis, SQS, Amazon MSK / self-managed Kafka) are
//! handled here, every other invocation goes through the HTTP [`Router`] exactly as
//! `lambda_http::run` would hand it over.
//!
//! **Telling invocations apart** (the payload's own markers, read without building it):
//! * `Records[0].eventSource` `aws:kinesis` -> Kinesis; `aws:sqs` -> SQS;
//! * `eventSource` `aws:kafka` (Amazon MSK) or `SelfManagedKafka`, with `records` -> Kafka;
//! * anything else (Function URL, API Gateway REST and HTTP APIs, ALB, and any other JSON, which
//!   `pass_through` turns into `POST /events`) -> lambda_http's own request types and its
//!   `Adapter`, then the Router.
//!
//! **A batch is one [`Delivery`]** of one record per item, with the transport's item id: the
//! Kinesis sequence number, the SQS message id, `<topic>-<partition>@<offset>` for Kafka (the
//! `records` key and the offset). An item carries JSON (Kinesis `data` and Kafka `value` base64,
//! SQS `body` text): an AWS DMS message ([`crate::decode::dms`]), or anything the HTTP route
//! accepts (a Datastream record, a Pub/Sub push body, a structured CloudEvent). An item that does
//! not decode fails alone (a permanent failure of that item); a Kafka record without value (a
//! tombstone) is ignored like a DMS control record.
//!
//! **The answer** is `{"batchItemFailures": [{"itemIdentifier": ...}]}` from
//! [`Answer::retry`](crate::pipeline::Answer::retry): transient failures, and permanent ones
//! unless `ACK_PERMANENT_ERRORS` (so that the event source's on-failure destination keeps them).
//! Lambda reads it only when the event source mapping has `FunctionResponseTypes:
//! [ReportBatchItemFailures]`:
//! * Kinesis: the sequence number of the **first** failed item only: Lambda checkpoints there and
//!   delivers that item and every later one again (those already done are answered from the
//!   de-duplication window);
//! * SQS: every failed message id; on a FIFO queue (`.fifo`) the first failed message and every
//!   message after it, so that a message group keeps its order (AWS Lambda Developer Guide,
//!   "Implementing partial batch responses" for FIFO queues);
//! * Kafka: `{"partition": "<topic>-<partition>", "offset": <n>}` for every failed record (AWS
//!   Lambda supports partial batch responses for MSK and self-managed Kafka event source mappings
//!   in provisioned mode, "Configuring error handling controls for Kafka event sources"; the
//!   identifier's shape is the one AWS's Powertools for Lambda returns).
//! * An item that failed and has no identifier (no sequence number, message id or offset in the
//!   payload) cannot be named: the invocation fails, and Lambda retries the whole batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::kafka::KafkaRecord;
use aws_lambda_events::kinesis::KinesisEventRecord;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use aws_lambda_events::streams::KinesisEventResponse;
use axum::Router;
use axum::http::HeaderMap;
use base64::Engine;
use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent, service_fn};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::http::App;
use crate::decode::{
    self, ChangeEvent, DecodeError, Decoded, Delivery, DeliveryFormat, DeliveryMeta, RecordInput, dms,
};
use crate::pipeline::Pipeline;

/// The prefix of the id given to an item whose payload names none (never a real id: sequence
/// numbers are digits, message ids UUIDs, Kafka topics have no `#`).
const UNNAMED: &str = "unnamed#";

/// The batch trigger of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Kinesis,
    Sqs,
    Kafka,
}

impl Trigger {
    pub fn format(self) -> DeliveryFormat {
        match self {
            Trigger::Kinesis => DeliveryFormat::LambdaKinesis,
            Trigger::Sqs => DeliveryFormat::LambdaSqs,
            Trigger::Kafka => DeliveryFormat::LambdaKafka,
        }
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "Records", default, borrow)]
    records_upper: Option<Vec<SourceOf<'a>>>,
    #[serde(rename = "eventSource", default, borrow)]
    event_source: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    records: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct SourceOf<'a> {
    #[serde(rename = "eventSource", default, borrow)]
    event_source: Option<std::borrow::Cow<'a, str>>,
}

/// The batch trigger a payload comes from, or `None` for anything else (HTTP events, direct
/// invocations).
pub fn trigger(payload: &str) -> Option<Trigger> {
    let probe: Probe = serde_json::from_str(payload).ok()?;
    if let Some(first) = probe.records_upper.as_ref().and_then(|r| r.first()) {
        return match first.event_source.as_deref() {
            Some("aws:kinesis") => Some(Trigger::Kinesis),
            Some("aws:sqs") => Some(Trigger::Sqs),
            _ => None,
        };
    }
    match probe.event_source.as_deref() {
        Some("aws:kafka") | Some("SelfManagedKafka") if probe.records.is_some() => Some(Trigger::Kafka),
        _ => None,
    }
}

/// A decoded batch: the delivery, and what its answer needs.
#[derive(Debug)]
pub struct Batch {
    pub delivery: Delivery,
    pub shape: Shape,
}

/// What the answer to a batch needs to know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub trigger: Trigger,
    /// Every item's id, in delivery order.
    pub items: Vec<String>,
    /// An SQS FIFO queue (its event source ARN ends with `.fifo`).
    pub fifo: bool,
}

/// One record carried by an item: a DMS message, or what the HTTP route accepts. `field` names
/// the item's field that carries it.
pub fn record_of(bytes: &[u8], field: &str) -> Result<ChangeEvent, DecodeError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| DecodeError::malformed(Some(field.to_string()), format!("{field} is not JSON: {e}")))?;
    if dms::looks_like_dms(&value) {
        return dms::decode(value);
    }
    let prefix = |e: DecodeError| DecodeError {
        field: Some(match e.field {
            Some(f) => format!("{field}.{f}"),
            None => field.to_string(),
        }),
        ..e
    };
    match decode::decode(&HeaderMap::new(), bytes).map_err(prefix)? {
        Decoded::Records(d) => d.records.into_iter().next().map(|r| r.record).unwrap_or_else(|| {
            Err(DecodeError::malformed(Some(field.to_string()), format!("{field} carries no record")))
        }),
        Decoded::Object { .. } => Err(DecodeError::malformed(
            Some(field.to_string()),
            "Cloud Storage notifications (Datastream files) are not supported: send one record per item",
        )),
    }
}

#[derive(Deserialize)]
struct Records<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct KafkaBatch<'a> {
    #[serde(rename = "eventSourceArn", default)]
    event_source_arn: Option<String>,
    #[serde(borrow, default)]
    records: BTreeMap<String, Vec<&'a RawValue>>,
}

/// The ids an item names even when it is not a valid record of its trigger.
#[derive(Deserialize, Default)]
struct Ids {
    #[serde(default)]
    kinesis: Option<KinesisIds>,
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(default)]
    offset: Option<i64>,
}

#[derive(Deserialize, Default)]
struct KinesisIds {
    #[serde(rename = "sequenceNumber", default)]
    sequence_number: Option<String>,
}

fn ids(raw: &RawValue) -> Ids {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

fn named(id: Option<String>, index: usize) -> String {
    id.filter(|s| !s.is_empty()).unwrap_or_else(|| format!("{UNNAMED}{index}"))
}

fn invalid_item(what: &str, field: String, e: serde_json::Error) -> DecodeError {
    let message = format!("{field} is not a valid {what} record: {e}");
    DecodeError::malformed(Some(field), message)
}

/// Decodes a batch of `trigger` into one delivery.
///
/// Errors: the payload is not a batch of that trigger at all (then nothing can be named, and the
/// whole invocation fails).
pub fn decode_batch(trigger: Trigger, payload: &str) -> Result<Batch, DecodeError> {
    let not_a_batch =
        |e: serde_json::Error| DecodeError::malformed(None, format!("not a {trigger:?} batch event: {e}"));
    let mut records = Vec::new();
    let mut arn = None;
    match trigger {
        Trigger::Kinesis => {
            let batch: Records = serde_json::from_str(payload).map_err(not_a_batch)?;
            for (i, raw) in batch.records.into_iter().enumerate() {
                let (item, record) = match serde_json::from_str::<KinesisEventRecord>(raw.get()) {
                    Ok(r) => {
                        arn = arn.or(r.event_source_arn);
                        let item = named(Some(r.kinesis.sequence_number), i);
                        (item, record_of(&r.kinesis.data.0, "kinesis.data"))
                    }
                    Err(e) => (
                        named(ids(raw).kinesis.and_then(|k| k.sequence_number), i),
                        Err(invalid_item("Kinesis", format!("Records[{i}]"), e)),
                    ),
                };
                records.push(RecordInput { item: Some(item), record });
            }
        }
        Trigger::Sqs => {
            let batch: Records = serde_json::from_str(payload).map_err(not_a_batch)?;
            for (i, raw) in batch.records.into_iter().enumerate() {
                let (item, record) = match serde_json::from_str::<SqsMessage>(raw.get()) {
                    Ok(m) => {
                        arn = arn.or(m.event_source_arn);
                        let record = match m.body {
                            Some(body) => record_of(body.as_bytes(), "body"),
                            None => Err(DecodeError::malformed(Some("body".into()), "an SQS message without body")),
                        };
                        (named(m.message_id, i), record)
                    }
                    Err(e) => (named(ids(raw).message_id, i), Err(invalid_item("SQS", format!("Records[{i}]"), e))),
                };
                records.push(RecordInput { item: Some(item), record });
            }
        }
        Trigger::Kafka => {
            let batch: KafkaBatch = serde_json::from_str(payload).map_err(not_a_batch)?;
            arn = batch.event_source_arn;
            let mut i = 0;
            for (partition, list) in batch.records {
                for (j, raw) in list.into_iter().enumerate() {
                    let (item, record) = match serde_json::from_str::<KafkaRecord>(raw.get()) {
                        Ok(r) => (format!("{partition}@{}", r.offset), kafka_value(r.value.as_deref())),
                        Err(e) => (
                            match ids(raw).offset {
                                Some(o) => format!("{partition}@{o}"),
                                None => format!("{UNNAMED}{i}"),
                            },
                            Err(invalid_item("Kafka", format!("records.{partition}[{j}]"), e)),
                        ),
                    };
                    records.push(RecordInput { item: Some(item), record });
                    i += 1;
                }
            }
        }
    }
    let items = records.iter().map(|r| r.item.clone().unwrap_or_default()).collect();
    let fifo = trigger == Trigger::Sqs && arn.as_deref().is_some_and(|a| a.ends_with(".fifo"));
    let meta = DeliveryMeta { subscription: arn, ..Default::default() };
    Ok(Batch { delivery: Delivery { format: trigger.format(), meta, records }, shape: Shape { trigger, items, fifo } })
}

fn kafka_value(value: Option<&str>) -> Result<ChangeEvent, DecodeError> {
    let Some(text) = value else {
        return Err(DecodeError::not_a_change(Some("value".into()), "a Kafka record without value (a tombstone)"));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| DecodeError::malformed(Some("value".into()), format!("value is not base64: {e}")))?;
    record_of(&bytes, "value")
}

/// Why a batch cannot be answered item by item: Lambda must retry all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct WholeBatch(pub String);

impl Shape {
    /// The `batchItemFailures` answer of a batch whose items `retry` must be delivered again (in
    /// delivery order, as [`Answer::retry`](crate::pipeline::Answer::retry) lists them).
    pub fn response(&self, retry: &[String]) -> Result<Value, WholeBatch> {
        if let Some(unnamed) = retry.iter().find(|r| r.starts_with(UNNAMED)) {
            return Err(WholeBatch(format!(
                "item {} failed and has no identifier: the whole batch must be retried",
                unnamed.trim_start_matches(UNNAMED)
            )));
        }
        let to_value = |v: Result<Value, serde_json::Error>| v.map_err(|e| WholeBatch(e.to_string()));
        match self.trigger {
            Trigger::Kinesis => {
                let mut r = KinesisEventResponse::default();
                if let Some(first) = retry.first() {
                    r.add_failure(first.clone());
                }
                to_value(serde_json::to_value(r))
            }
            Trigger::Sqs => {
                let mut r = SqsBatchResponse::default();
                let failed: Vec<&String> = match (self.fifo, retry.first()) {
                    (true, Some(first)) => self.items.iter().skip_while(|i| *i != first).collect(),
                    _ => retry.iter().collect(),
                };
                for id in failed {
                    r.add_failure(id.clone());
                }
                to_value(serde_json::to_value(r))
            }
            Trigger::Kafka => {
                let mut failures = Vec::with_capacity(retry.len());
                for item in retry {
                    let (partition, offset) = item
                        .rsplit_once('@')
                        .and_then(|(p, o)| Some((p, o.parse::<i64>().ok()?)))
                        .ok_or_else(|| WholeBatch(format!("not a Kafka item id: {item}")))?;
                    failures.push(json!({"itemIdentifier": {"partition": partition, "offset": offset}}));
                }
                Ok(json!({"batchItemFailures": failures}))
            }
        }
    }
}

/// Processes one batch through the pipeline and answers it.
pub async fn handle_batch(pipeline: &Pipeline, trigger: Trigger, payload: &str) -> Result<Value, Diagnostic> {
    let batch = decode_batch(trigger, payload).map_err(|e| {
        tracing::error!(format = trigger.format().as_str(), error = %e, "batch event not decodable: failing the invocation");
        Diagnostic { error_type: "BatchNotDecodable".into(), error_message: e.to_string() }
    })?;
    let Batch { delivery, shape } = batch;
    let answer = pipeline.handle(delivery).await;
    let response = shape.response(&answer.retry).map_err(|WholeBatch(why)| {
        tracing::warn!(format = trigger.format().as_str(), reason = %why, "failing the invocation");
        Diagnostic { error_type: "BatchRetry".into(), error_message: why }
    })?;
    tracing::info!(
        format = trigger.format().as_str(),
        items = shape.items.len(),
        retry = answer.retry.len(),
        "batch answered"
    );
    Ok(response)
}

/// Serves invocations from the Lambda Runtime API until the process ends: batch triggers through
/// [`handle_batch`], everything else through `router` as `lambda_http::run` would.
pub async fn run(app: Arc<App>, router: Router) -> Result<(), lambda_runtime::Error> {
    let http = lambda_http::Adapter::from(router);
    let handler = service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let app = app.clone();
        let http = http.clone();
        async move {
            let LambdaEvent { payload, context } = event;
            if let Some(trigger) = trigger(payload.get()) {
                return handle_batch(&app.pipeline, trigger, payload.get()).await;
            }
            // lambda_http's own deserialisation (API Gateway, Function URL, ALB, else
            // pass_through) and Adapter, as lambda_http::run does.
            let request: LambdaRequest = serde_json::from_str(payload.get())
                .map_err(|e| Diagnostic { error_type: "UnrecognizedEvent".into(), error_message: e.to_string() })?;
            drop(payload);
            let response = http
                .oneshot(LambdaEvent { payload: request, context })
                .await
                .unwrap_or_else(|never: std::convert::Infallible| match never {});
            serde_json::to_value(response)
                .map_err(|e| Diagnostic { error_type: "ResponseNotSerializable".into(), error_message: e.to_string() })
        }
    });
    lambda_runtime::run(handler).await
}

#[cfg(test)]
mod tests;
