//! The top level of a request body read in one pass: the keys that decide its route
//! (`specversion`, `message`) together with what each route reads there (a Pub/Sub push wrapper,
//! a structured CloudEvent's members), so that the body is not read once to choose the route and
//! again by the route's parser.
//!
//! [`Routed`] has every field of the route's `Top`, of the push wrapper (`pubsub::push_body`) and
//! of a structured CloudEvent (`cloudevents::Structured`), with the same types; unknown keys are
//! skipped alike. So whenever it reads a body, each of them reads that body to the same values,
//! and a body it cannot read (a field of another type, a key given twice) is left to them and
//! their own errors.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::cloudevents::{self, Structured};
use super::pubsub::{self, PushMessage, Pushed};
use super::{DecodeError, DeliveryMeta};

/// The top-level keys that decide the route, read without building the document (the route's
/// reading of a body [`Routed`] does not read).
#[derive(Deserialize)]
pub(crate) struct Top<'a> {
    #[serde(default, borrow)]
    pub(crate) specversion: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) message: Option<&'a RawValue>,
}

/// A request body's top level, read once (see the module documentation).
#[derive(Deserialize)]
pub(crate) struct Routed<'a> {
    #[serde(default, borrow)]
    specversion: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<PushMessage<'a>>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default, alias = "delivery_attempt", rename = "deliveryAttempt")]
    delivery_attempt: Option<u32>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    source: Option<&'a RawValue>,
    #[serde(default, rename = "type", borrow)]
    ty: Option<&'a RawValue>,
    #[serde(default, borrow)]
    time: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data_base64: Option<&'a RawValue>,
}

impl<'a> Routed<'a> {
    /// Whether the body has a (non-null) `specversion`: a structured CloudEvent.
    pub(crate) fn has_specversion(&self) -> bool {
        self.specversion.is_some()
    }

    /// Whether the body has a (non-null) `message`: a push wrapper.
    pub(crate) fn has_message(&self) -> bool {
        self.message.is_some()
    }

    /// What `pubsub::push_body(body, "")` gives for the same body; `None` without a `message`.
    pub(crate) fn push(self) -> Option<Result<Pushed, DecodeError>> {
        let m = self.message?;
        Some(pubsub::message(m, self.subscription, self.delivery_attempt, ""))
    }

    /// What `cloudevents::structured(body)` gives for the same body.
    pub(crate) fn cloudevent(self) -> Result<(DeliveryMeta, std::borrow::Cow<'a, [u8]>), DecodeError> {
        cloudevents::attributes(Structured {
            specversion: self.specversion,
            id: self.id,
            source: self.source,
            ty: self.ty,
            time: self.time,
            data: self.data,
            data_base64: self.data_base64,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use base64::Engine;
    use serde_json::{Value, json};

    use super::Routed;
    use crate::decode::{Decoded, DeliveryFormat, cloudevents, pubsub};

    fn record() -> Value {
        json!({"uuid": "u-1", "source_timestamp": "2024-01-15T10:30:00Z", "payload": {"pipeline_uuid": "p", "status": "COMPLETED"}})
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(v).unwrap())
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        h
    }

    /// The one-pass read decides as `Top` and `push_body` did: a wrapper it cannot read (here a
    /// top-level field of the wrong type) is refused with `push_body`'s words, and a null
    /// `message` is no wrapper at all.
    #[test]
    fn wrappers_the_one_pass_read_refuses_keep_their_errors() {
        let body = json!({"message": {"data": b64(&record())}, "subscription": 5}).to_string();
        let e = crate::decode::decode(&json_headers(), body.as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("message"));
        assert!(
            e.message.starts_with("invalid Pub/Sub push body: invalid type: integer `5`, expected a string at line 1"),
            "{}",
            e.message
        );
        let wrapper = json!({"message": {"data": b64(&record()), "messageId": "m"}, "deliveryAttempt": 2}).to_string();
        let read = serde_json::from_slice::<Routed>(wrapper.as_bytes()).unwrap().push().expect("a wrapper");
        assert_eq!(read, pubsub::push_body(wrapper.as_bytes(), ""));
        let null_message = json!({"message": null, "uuid": "u-1", "source_timestamp": "2024-01-15T10:30:00Z"});
        match crate::decode::decode(&json_headers(), null_message.to_string().as_bytes()).unwrap() {
            Decoded::Records(d) => assert_ne!(d.format, DeliveryFormat::PubSubPush),
            other => panic!("expected a record, got {other:?}"),
        }
    }

    /// A structured CloudEvent read in the one pass has the attributes and data
    /// `cloudevents::structured` reads, errors included.
    #[test]
    fn the_one_pass_read_of_a_structured_event_is_the_structured_read() {
        let bodies = [
            json!({"specversion": "1.0", "id": "i", "source": "s", "type": "t", "data": record()}),
            json!({"specversion": "1.0", "id": "i", "source": "s", "type": "t", "data_base64": b64(&record())}),
            json!({"specversion": "1.0", "id": "", "source": "s", "type": "t", "data": record()}),
            json!({"specversion": "0.3", "id": "i", "source": "s", "type": "t", "data": record()}),
            json!({"specversion": "1.0", "id": "i", "source": "s", "type": "t", "time": "noon", "data": record()}),
        ];
        for body in bodies {
            let body = body.to_string();
            let routed = serde_json::from_slice::<Routed>(body.as_bytes()).unwrap();
            assert!(routed.has_specversion());
            assert_eq!(routed.cloudevent(), cloudevents::structured(body.as_bytes()), "{body}");
        }
    }
}
