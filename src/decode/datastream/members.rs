//! A Datastream record's top level read straight from its JSON text into [`Members`], without
//! building a JSON object for it: the record's own metadata (about a third of its nodes) costs
//! no map and no key allocation. The row (`payload`) and `source_metadata` are still JSON values,
//! exactly as the JSON tree would hold them.
//!
//! [`record`] is used only where it gives what the JSON tree gives: an object whose every key is
//! one of Datastream's record keys (protocols.md §3.2) is what [`super::super::record`] decodes as
//! a Datastream record (no DMS `metadata`, no Debezium `op`/`schema`/`__op`/`__table`, no Cloud
//! Storage `kind`, no Pub/Sub `message`). Any other key, a JSON error or a record without
//! `source_timestamp` ends the read (`None`), and the caller takes the JSON tree, with its
//! errors. Every member value is parsed as a [`Value`], so what is accepted (UTF-8, escapes,
//! numbers, depth) is the tree's; a key given twice keeps its last value, as the tree does.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::decode::{ChangeEvent, DecodeError};

/// The members of a Datastream record that the decoder reads, each as the JSON tree would hold
/// it (`None`: absent).
#[derive(Debug, Default)]
pub(crate) struct Members {
    pub(crate) uuid: Option<Value>,
    pub(crate) stream_name: Option<Value>,
    pub(crate) source_timestamp: Option<Value>,
    pub(crate) read_timestamp: Option<Value>,
    pub(crate) object: Option<Value>,
    pub(crate) read_method: Option<Value>,
    pub(crate) source_metadata: Option<Value>,
    pub(crate) payload: Option<Value>,
}

impl Members {
    /// The members taken out of a record's JSON object.
    pub(crate) fn take(o: &mut Map<String, Value>) -> Members {
        Members {
            uuid: o.remove("uuid"),
            stream_name: o.remove("stream_name"),
            source_timestamp: o.remove("source_timestamp"),
            read_timestamp: o.remove("read_timestamp"),
            object: o.remove("object"),
            read_method: o.remove("read_method"),
            source_metadata: o.remove("source_metadata"),
            payload: o.remove("payload"),
        }
    }
}

/// The record in `json` decoded as [`super::decode`] decodes its JSON tree (its `uuid` bounded as
/// [`crate::decode::record`] bounds it), or `None` when `json` is not a Datastream record this
/// reader takes (see the module documentation): the caller then builds the tree.
pub(crate) fn record(json: &[u8]) -> Option<Result<ChangeEvent, DecodeError>> {
    serde_json::from_slice::<Members>(json).ok()?.decode()
}

impl Members {
    /// The record these members make, as [`record`] decodes it; `None` without
    /// `source_timestamp` (the tree must decide what such an object is).
    pub(crate) fn decode(self) -> Option<Result<ChangeEvent, DecodeError>> {
        self.source_timestamp.as_ref()?;
        Some(super::decode_members(self).and_then(|event| {
            crate::decode::bounded_id("uuid", event.uuid.as_deref())?;
            Ok(event)
        }))
    }
}

/// A key of a record's top level that this reader takes (any other ends the read).
#[derive(Clone, Copy)]
pub(crate) enum Key {
    Uuid,
    StreamName,
    SourceTimestamp,
    ReadTimestamp,
    Object,
    ReadMethod,
    SourceMetadata,
    Payload,
    /// Read by no decoder: parsed (as the tree would) and dropped.
    Unread,
}

impl Key {
    /// The key named `key`, if it is one of a Datastream record's (protocols.md §3.2).
    pub(crate) fn of(key: &str) -> Option<Key> {
        Some(match key {
            "uuid" => Key::Uuid,
            "stream_name" => Key::StreamName,
            "source_timestamp" => Key::SourceTimestamp,
            "read_timestamp" => Key::ReadTimestamp,
            "object" => Key::Object,
            "read_method" => Key::ReadMethod,
            "source_metadata" => Key::SourceMetadata,
            "payload" => Key::Payload,
            "schema_key" | "sort_keys" => Key::Unread,
            _ => return None,
        })
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Datastream record key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Key::of(key).ok_or_else(|| E::custom(format_args!("not a Datastream record key: {key}")))
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// The members of a record whose first key, `first`, was read already; the rest of its keys
/// from `map`.
pub(crate) fn read_rest<'de, A: MapAccess<'de>>(first: Option<Key>, mut map: A) -> Result<Members, A::Error> {
    let mut m = Members::default();
    let mut key = first;
    if key.is_none() {
        key = map.next_key::<Key>()?;
    }
    while let Some(k) = key {
        // every value is parsed as the tree would, read or not; a key given twice keeps its last
        let value: Value = map.next_value_seed(crate::decode::tree::Tree)?;
        let slot = match k {
            Key::Uuid => Some(&mut m.uuid),
            Key::StreamName => Some(&mut m.stream_name),
            Key::SourceTimestamp => Some(&mut m.source_timestamp),
            Key::ReadTimestamp => Some(&mut m.read_timestamp),
            Key::Object => Some(&mut m.object),
            Key::ReadMethod => Some(&mut m.read_method),
            Key::SourceMetadata => Some(&mut m.source_metadata),
            Key::Payload => Some(&mut m.payload),
            Key::Unread => None,
        };
        if let Some(slot) = slot {
            *slot = Some(value);
        }
        key = map.next_key::<Key>()?;
    }
    Ok(m)
}

impl<'de> de::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Datastream record (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Members, A::Error> {
                read_rest(None, map)
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    /// The record of `text` as the JSON tree decodes it.
    fn by_tree(text: &str) -> Result<crate::decode::ChangeEvent, crate::decode::DecodeError> {
        crate::decode::record(serde_json::from_str::<Value>(text).expect("JSON"))
    }

    fn plain() -> Value {
        json!({"uuid": "u-1", "read_timestamp": 1735689600123i64, "source_timestamp": "2024-12-31T23:59:59Z",
            "object": "public_pipeline_run", "read_method": "postgresql-cdc", "stream_name": "s",
            "schema_key": "k", "sort_keys": [1, "0/16B2C00"],
            "source_metadata": {"schema": "public", "table": "pipeline_run", "change_type": "UPDATE",
                "is_deleted": false, "tx_id": 77, "lsn": "0/16B2C00", "primary_keys": ["id"]},
            "payload": {"id": 42, "pipeline_uuid": "etl", "status": "COMPLETED", "variables": "{\"partner\":\"p\"}"}})
    }

    /// Read straight from the text, a plain record is the event its JSON tree gives, errors
    /// included; a record the reader does not take is left to the tree (`None`), never decoded
    /// otherwise.
    #[test]
    fn a_plain_record_read_from_its_text_is_the_record_its_tree_gives() {
        let mut taken = Vec::new();
        let mut variants: Vec<String> = vec![plain().to_string()];
        let edits: [(&str, Value); 16] = [
            ("source_timestamp", Value::Null),
            ("uuid", json!(7)),
            ("uuid", json!(["x"])),
            ("uuid", Value::Null),
            ("source_timestamp", json!("yesterday")),
            ("source_timestamp", json!(1)),
            ("read_timestamp", Value::Null),
            ("read_timestamp", json!(true)),
            ("source_metadata", json!(5)),
            ("source_metadata", json!({"is_deleted": "no"})),
            ("source_metadata", json!({"change_type": "WEIRD"})),
            ("payload", json!([])),
            ("payload", json!({"status": 3})),
            ("payload", Value::Null),
            ("stream_name", json!({"a": 1})),
            ("object", json!(1.5)),
        ];
        for (key, value) in edits {
            let mut r = plain();
            r[key] = value;
            variants.push(r.to_string());
        }
        let text = plain().to_string();
        let body = &text[1..text.len() - 1];
        variants.extend([
            // a key given twice: the last value, as in the tree
            format!(r#"{{"uuid":"first",{body}}}"#),
            format!(r#"{{{body},"uuid":"last"}}"#),
            // escapes in a key and in a value the decoder does not read
            format!(r#"{{"uu\u0069d":"escaped-key",{body}}}"#),
            format!(r#"{{{body},"schema_key":"\ud83d\ude00"}}"#),
        ]);
        for text in &variants {
            if let Some(direct) = super::record(text.as_bytes()) {
                assert_eq!(direct, by_tree(text), "{text}");
                taken.push(text);
            }
        }
        assert_eq!(taken.len(), variants.len(), "every variant is a plain record");
        // the identity is bounded as `decode::record` bounds it
        let mut long = plain();
        long["uuid"] = json!("u".repeat(crate::decode::MAX_ID_BYTES + 1));
        let long = long.to_string();
        assert_eq!(super::record(long.as_bytes()).expect("plain").unwrap_err().field.as_deref(), Some("uuid"));
    }

    /// Whatever the tree might read otherwise (another format, a Cloud Storage object, a push
    /// wrapper, an unknown key, JSON the tree refuses, no `source_timestamp`) is left to it.
    #[test]
    fn anything_else_is_left_to_the_tree() {
        let text = plain().to_string();
        let body = &text[1..text.len() - 1];
        for extra in [
            r#""op":"u""#,
            r#""__op":"u""#,
            r#""__table":"t""#,
            r#""schema":{}"#,
            r#""metadata":{"operation":"update"}"#,
            r#""kind":"storage#object""#,
            r#""message":null"#,
            r#""custom":1"#,
        ] {
            let text = format!("{{{body},{extra}}}");
            assert!(super::record(text.as_bytes()).is_none(), "{text}");
        }
        let refused = [
            format!("[{text}]"),
            format!("{text} x"),
            format!(r#"{{{body},"schema_key":"\ud800"}}"#),
            format!(r#"{{{body},"sort_keys":[1e400]}}"#),
            r#"{"uuid":"u","payload":{}}"#.to_string(),
        ];
        for text in refused {
            assert!(super::record(text.as_bytes()).is_none(), "{text}");
        }
    }
}
