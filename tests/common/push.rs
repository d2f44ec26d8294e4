//! Pub/Sub push bodies: the wrapped push JSON a push subscription POSTs
//! (`{"message": {"data": <base64>, "messageId": .., "publishTime": ..}, "subscription": ..}`),
//! and the message alone, as the publish API takes it. The only place tests and benches
//! base64-encode message data.

use base64::Engine;
use serde_json::{Map, Value, json};

/// The subscription named in push bodies unless another (or none) is asked for.
pub const SUBSCRIPTION: &str = "projects/p/subscriptions/s";

/// A wrapped Pub/Sub push body under construction.
#[derive(Debug, Clone)]
pub struct Push {
    data: Vec<u8>,
    message_id: Option<String>,
    publish_time: Option<String>,
    subscription: Option<String>,
    attributes: Map<String, Value>,
}

impl Push {
    /// A message carrying `data` (any bytes, base64-encoded in the body), without message id or
    /// publish time, pushed by [`SUBSCRIPTION`].
    pub fn new(data: impl Into<Vec<u8>>) -> Push {
        Push {
            data: data.into(),
            message_id: None,
            publish_time: None,
            subscription: Some(SUBSCRIPTION.into()),
            attributes: Map::new(),
        }
    }

    /// A message carrying `record` as JSON (a Datastream record, as Datastream publishes it).
    pub fn record(record: &Value) -> Push {
        Push::new(serde_json::to_vec(record).unwrap())
    }

    /// Sets `message.messageId`.
    pub fn message_id(mut self, id: &str) -> Push {
        self.message_id = Some(id.into());
        self
    }

    /// Sets `message.publishTime`.
    pub fn publish_time(mut self, time: &str) -> Push {
        self.publish_time = Some(time.into());
        self
    }

    /// Names another subscription.
    pub fn subscription(mut self, subscription: &str) -> Push {
        self.subscription = Some(subscription.into());
        self
    }

    /// Adds a message attribute (a Cloud Storage notification's `eventType`, `objectId`, ...).
    pub fn attribute(mut self, key: &str, value: &str) -> Push {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Leaves `subscription` out of the body.
    pub fn without_subscription(mut self) -> Push {
        self.subscription = None;
        self
    }

    /// The `message` object alone (`data`, and `messageId` / `publishTime` when set).
    pub fn message(&self) -> Value {
        let mut m = Map::new();
        m.insert("data".into(), base64::engine::general_purpose::STANDARD.encode(&self.data).into());
        if let Some(id) = &self.message_id {
            m.insert("messageId".into(), id.clone().into());
        }
        if let Some(t) = &self.publish_time {
            m.insert("publishTime".into(), t.clone().into());
        }
        if !self.attributes.is_empty() {
            m.insert("attributes".into(), Value::Object(self.attributes.clone()));
        }
        Value::Object(m)
    }

    /// The whole push body as JSON.
    pub fn json(&self) -> Value {
        let mut body = json!({"message": self.message()});
        if let Some(s) = &self.subscription {
            body["subscription"] = s.clone().into();
        }
        body
    }

    /// The whole push body as the text a push subscription POSTs.
    pub fn body(&self) -> String {
        self.json().to_string()
    }
}

/// The push body of `record` with message id `message_id` (the common case).
pub fn push_body(record: &Value, message_id: &str) -> String {
    Push::record(record).message_id(message_id).body()
}
