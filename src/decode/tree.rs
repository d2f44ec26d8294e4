//! A JSON tree ([`serde_json::Value`]) read like `Value`'s own `Deserialize`, except that an
//! object's members are collected first and then built into its map at once (sorted, then
//! bulk-built: `BTreeMap`'s `FromIterator`), instead of inserted one by one (a search and, every
//! few members, a node split each): a run row and its variables are tens of members.
//!
//! The tree is the one `Value::deserialize` builds, member for member: the same scalars, a key
//! given twice keeps its last value (the sort is stable and the build keeps the last of equal
//! keys, as `insert` does). The one difference: serde_json's private raw-value key
//! (`$serde_json::private::RawValue`), which `Value` treats as a raw value, is refused here, so
//! that a caller falls back to `Value` and its reading of it.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// serde_json's key for a raw value inside a map (`serde_json::raw::TOKEN`, private).
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

/// Reads one JSON value as a [`Value`] (see the module documentation).
#[derive(Clone, Copy)]
pub(crate) struct Tree;

impl<'de> DeserializeSeed<'de> for Tree {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Tree.deserialize(d)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Tree)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == RAW_VALUE_KEY {
                return Err(de::Error::custom("serde_json's raw-value key is left to serde_json"));
            }
            members.push((key, map.next_value_seed(Tree)?));
        }
        Ok(Value::Object(members.into_iter().collect::<Map<String, Value>>()))
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeSeed;
    use serde_json::Value;

    fn tree(text: &str) -> Result<Value, serde_json::Error> {
        let mut d = serde_json::Deserializer::from_str(text);
        let v = super::Tree.deserialize(&mut d)?;
        d.end()?;
        Ok(v)
    }

    /// The tree is `Value`'s, for every kind of value, nesting, key order and repeated keys.
    #[test]
    fn the_tree_is_the_one_value_builds() {
        let texts = [
            r#"{"b":1,"a":[true,null,-3,18446744073709551615,1.5e300,"x\u00e9"],"c":{"z":{},"y":[]}}"#,
            r#"{"k":1,"j":2,"k":3,"a":{"x":1,"x":{"deep":[1,{"x":2,"x":3}]}}}"#,
            r#"{"m":0.1,"n":-0.0,"o":1e-7,"p":123456789012345678,"q":"\ud83d\ude00"}"#,
            r#"[1,"two",{"3":3}]"#,
            r#""just a string""#,
            "{}",
        ];
        for text in texts {
            assert_eq!(tree(text).unwrap(), serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
        let many: String =
            format!("{{{}}}", (0..100).rev().map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(","));
        assert_eq!(tree(&many).unwrap(), serde_json::from_str::<Value>(&many).unwrap());
        assert_eq!(tree(&many).unwrap().as_object().unwrap().len(), 100);
    }

    /// What `Value` refuses, the tree refuses; serde_json's raw-value key is left to it.
    #[test]
    fn what_value_refuses_the_tree_refuses() {
        for text in [r#"{"a":1e400}"#, r#"{"a":"\ud800"}"#, r#"{"a":}"#, "[1,]"] {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
            assert!(tree(text).is_err(), "{text}");
        }
        assert!(tree(r#"{"$serde_json::private::RawValue":"1"}"#).is_err());
    }
}
