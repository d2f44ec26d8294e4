//! The top level of a request body read in one pass: the keys that decide its route
//! (`specversion`, `message`) together with what each route reads there (a Pub/Sub push wrapper,
//! a structured CloudEvent's members and, when it is a push wrapper or a plain Datastream record,
//! its `data`), so that the body is not read once to choose the route and again by the route's
//! parser.
//!
//! [`Routed`] has every field of the route's `Top`, of the push wrapper (`pubsub::push_body`) and
//! of a structured CloudEvent (`cloudevents::Structured`); unknown keys are skipped alike. Its
//! fields have the same types, except `data`, read as [`Carried`]. So whenever it reads a body,
//! each of them reads that body to the same values, and a body it cannot read (a field of
//! another type, a key given twice, a `data` that is neither of [`Carried`]'s two) is left to
//! them and their own errors.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::cloudevents::{self, Structured};
use super::datastream::members::{self, Members};
use super::pubsub::{self, PushBody, PushMessage, Pushed};
use super::{DecodeError, Decoded, Delivery, DeliveryFormat, storage};

/// The top-level keys that decide the route, read without building the document (the route's
/// reading of a body [`Routed`] does not read).
#[derive(Deserialize)]
pub(crate) struct Top<'a> {
    #[serde(default, borrow)]
    pub(crate) specversion: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) message: Option<&'a RawValue>,
    /// A Debezium change event's `op`: its logical message (`op: m`) has a `message` member.
    #[serde(default, borrow)]
    pub(crate) op: Option<&'a RawValue>,
}

/// A request body's top level, read once (see the module documentation).
#[derive(Deserialize)]
pub(crate) struct Routed<'a> {
    #[serde(default, borrow)]
    specversion: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<PushMessage<'a>>,
    /// See [`Top::op`].
    #[serde(default, borrow)]
    op: Option<&'a RawValue>,
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
    data: Option<Carried<'a>>,
    #[serde(default, borrow)]
    data_base64: Option<&'a RawValue>,
}

/// A structured CloudEvent's `data` read in the body's one pass, when it is one of the two
/// objects such events carry: a Pub/Sub push wrapper (its first key one of the wrapper's) or a
/// plain Datastream record (every key one of a record's: [`members`]). Anything else (another
/// first key, a record with another key, a string, an array, a value either reading refuses)
/// fails the one pass, and the body is read the way it always was (`Top`, then
/// `cloudevents::structured`), with that reading's outcome and errors.
pub(crate) enum Carried<'a> {
    Push(PushBody<'a>),
    Record(Members),
}

impl<'de: 'a, 'a> Deserialize<'de> for Carried<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Carried<'a>, D::Error> {
        struct CarriedVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for CarriedVisitor<'a> {
            type Value = Carried<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Pub/Sub push wrapper or a Datastream record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Carried<'a>, A::Error> {
                let first = map.next_key::<&'de str>()?;
                let first_key = first.unwrap_or("");
                if let Some(wrapper_key) = PUSH_KEYS.iter().copied().find(|k| *k == first_key) {
                    let replayed = Replay { first: Some(wrapper_key), map };
                    return PushBody::deserialize(de::value::MapAccessDeserializer::new(replayed)).map(Carried::Push);
                }
                match first.map(members::Key::of) {
                    Some(Some(key)) => members::read_rest(Some(key), map).map(Carried::Record),
                    _ => Err(de::Error::custom("left to the two-pass reading")),
                }
            }
        }
        d.deserialize_map(CarriedVisitor(std::marker::PhantomData))
    }
}

/// The keys of a Pub/Sub push wrapper (`pubsub::PushBody`).
const PUSH_KEYS: [&str; 4] = ["message", "subscription", "deliveryAttempt", "delivery_attempt"];

/// A map whose first key was read already: it is given again, then the map's own keys.
struct Replay<A> {
    first: Option<&'static str>,
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Replay<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(de::value::BorrowedStrDeserializer::new(key)).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

impl<'a> Routed<'a> {
    /// Whether the body has a (non-null) `specversion`: a structured CloudEvent.
    pub(crate) fn has_specversion(&self) -> bool {
        self.specversion.is_some()
    }

    /// Whether the body has a (non-null) `message`: a push wrapper.
    /// A Pub/Sub push body's `message` (not a Debezium logical message's: that event has `op`).
    pub(crate) fn has_message(&self) -> bool {
        self.message.is_some() && self.op.is_none()
    }

    /// What `pubsub::push_body(body, "")` gives for the same body; `None` without a `message`.
    pub(crate) fn push(self) -> Option<Result<Pushed, DecodeError>> {
        let m = self.message?;
        Some(pubsub::message(m, self.subscription, self.delivery_attempt, ""))
    }

    /// What `cloudevents::carried` gives for the event's data, after
    /// `cloudevents::structured(body)` read it (`body` is read again only where the data read in
    /// the one pass does not decide: a record of a Cloud Storage event, or without
    /// `source_timestamp`).
    pub(crate) fn cloudevent(self, body: &[u8]) -> Result<Decoded, DecodeError> {
        const FORMAT: DeliveryFormat = DeliveryFormat::CloudEventStructured;
        let ce = Structured {
            specversion: self.specversion,
            id: self.id,
            source: self.source,
            ty: self.ty,
            time: self.time,
            data: None,
            data_base64: self.data_base64,
        };
        let Some(data) = self.data else {
            let (meta, data) = cloudevents::attributes(ce)?;
            return cloudevents::carried(FORMAT, meta, &data, "data");
        };
        let meta = cloudevents::context(&ce)?;
        if ce.data_base64.is_some() {
            return Err(cloudevents::both_data());
        }
        match data {
            Carried::Push(push) => {
                let (mut inner, data) = pubsub::pushed(push, "data.")?;
                (inner.ce_id, inner.ce_source, inner.ce_type) = (meta.ce_id, meta.ce_source, meta.ce_type);
                super::message_data(FORMAT, inner, data, "data.message.data")
            }
            Carried::Record(members) if !storage::may_announce(&meta) => match members.decode() {
                Some(record) => Ok(Decoded::Records(Delivery::of(FORMAT, meta, record))),
                None => Self::read_again(body),
            },
            Carried::Record(_) => Self::read_again(body),
        }
    }

    /// The two-pass reading of a structured CloudEvent.
    fn read_again(body: &[u8]) -> Result<Decoded, DecodeError> {
        let (meta, data) = cloudevents::structured(body)?;
        cloudevents::carried(DeliveryFormat::CloudEventStructured, meta, &data, "data")
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
    /// top-level field of the wrong type) is refused with `push_body`'s words and field, and a null
    /// `message` is no wrapper at all.
    #[test]
    fn wrappers_the_one_pass_read_refuses_keep_their_errors() {
        let body = json!({"message": {"data": b64(&record())}, "subscription": 5}).to_string();
        let e = crate::decode::decode(&json_headers(), body.as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("subscription"));
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

    /// A structured CloudEvent read in the one pass decodes as the two-pass reading
    /// (`cloudevents::structured`, then `cloudevents::carried`) does, errors included, whatever
    /// its data holds.
    #[test]
    fn the_one_pass_read_of_a_structured_event_is_the_structured_read() {
        let ce = |extra: Value| {
            let mut e = json!({"specversion": "1.0", "id": "i", "source": "s", "type": "t"});
            e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            e
        };
        let push = json!({"message": {"data": b64(&record()), "messageId": "m"}, "subscription": "projects/p/subscriptions/s"});
        let mut foreign = record();
        foreign["op"] = json!("u");
        let storage_object = json!({"kind": "storage#object", "bucket": "b", "name": "n.jsonl"});
        let bodies = [
            ce(json!({"data": record()})),
            ce(json!({"data": push})),
            ce(json!({"data": {"subscription": "s", "message": {"data": b64(&record())}}})),
            ce(json!({"data": {"deliveryAttempt": 2, "message": {"data": "not base64!"}}})),
            ce(json!({"data": {"subscription": "s"}})),
            ce(json!({"data": foreign})),
            ce(json!({"data": {"uuid": "u-1", "payload": {}}})),
            ce(json!({"data": {"source_timestamp": "noon"}})),
            ce(json!({"data": record(), "data_base64": b64(&record())})),
            ce(json!({"data_base64": b64(&record())})),
            ce(json!({"data": record().to_string()})),
            ce(json!({"data": {}})),
            ce(json!({"data": storage_object, "type": "google.cloud.storage.object.v1.finalized"})),
            ce(json!({"data": record(), "type": "google.cloud.storage.object.v1.finalized"})),
            ce(json!({"data": record(), "source": "//storage.googleapis.com/projects/_/buckets/b"})),
            ce(json!({"data": record(), "id": ""})),
            ce(json!({"data": push, "specversion": "0.3"})),
            ce(json!({"data": record(), "time": "noon"})),
        ];
        let mut one_pass = 0;
        for body in bodies {
            let body = body.to_string();
            let two_pass = cloudevents::structured(body.as_bytes()).and_then(|(meta, data)| {
                cloudevents::carried(DeliveryFormat::CloudEventStructured, meta, &data, "data")
            });
            if let Ok(routed) = serde_json::from_slice::<Routed>(body.as_bytes()) {
                assert!(routed.has_specversion());
                assert_eq!(routed.cloudevent(body.as_bytes()), two_pass, "{body}");
                one_pass += 1;
            }
            let headers = json_headers();
            assert_eq!(crate::decode::decode(&headers, body.as_bytes()), two_pass, "{body}");
        }
        assert!(one_pass >= 12, "most of these are read in one pass ({one_pass})");
    }
}
