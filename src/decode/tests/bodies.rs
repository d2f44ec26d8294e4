//! Bodies as a whole: content types, a byte order mark, and what bodies that are no JSON or no
//! delivery are answered.

use super::*;

#[test]
fn batch_and_unknown_content_types_are_unsupported() {
    for ct in ["application/cloudevents-batch+json", "text/html", "application/xml", "multipart/form-data"] {
        let e = decode(&headers(&[("content-type", ct)]), b"[]").unwrap_err();
        assert_eq!(e.kind, crate::decode::DecodeErrorKind::UnsupportedMediaType, "{ct}");
    }
}

/// A Content-Type of parameters only, or not ASCII, is no media type: it was read as absent and
/// the body accepted. A blank one still counts as absent; parameters after a type are fine.
#[test]
fn a_content_type_without_a_media_type_is_unsupported() {
    let record = json!({"source_timestamp": 1762367011393i64, "payload": {"id": 1}}).to_string();
    for ct in [&b";;;"[..], b"; charset=utf-8", b" ;", "application/jsön".as_bytes()] {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_bytes(ct).unwrap());
        let e = decode(&h, record.as_bytes()).unwrap_err();
        assert_eq!(e.kind, crate::decode::DecodeErrorKind::UnsupportedMediaType, "{ct:?}");
        assert_eq!(e.field.as_deref(), Some("header content-type"), "{ct:?}");
    }
    for ct in ["", "  ", "application/json; charset=utf-8", "Application/JSON"] {
        assert!(decode(&headers(&[("content-type", ct)]), record.as_bytes()).is_ok(), "{ct:?}");
    }
}

/// A body that begins with a UTF-8 byte order mark decodes as without it (RFC 8259 §8.1): it
/// was a 400 "expected value at line 1 column 1" for a body that looks like JSON.
#[test]
fn a_byte_order_mark_is_ignored() {
    let record = json!({"source_timestamp": 1762367011393i64, "payload": {"id": 1}}).to_string();
    let push = json!({"message": {"data": b64(&json!({"source_timestamp": 1762367011393i64}))}}).to_string();
    for body in [record, push] {
        let plain = decode(&headers(&[("content-type", "application/json")]), body.as_bytes()).unwrap();
        let marked = format!("\u{feff}{body}");
        let got = decode(&headers(&[("content-type", "application/json")]), marked.as_bytes()).unwrap();
        assert_eq!(got, plain, "{body}");
    }
    // inside Pub/Sub message data too
    let marked = [&b"\xEF\xBB\xBF"[..], record_bytes().as_slice()].concat();
    let push =
        json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode(&marked), "messageId": "m"}});
    let d = decode(&headers(&[("content-type", "application/json")]), push.to_string().as_bytes()).unwrap();
    assert!(d.records[0].record.is_ok(), "{:?}", d.records[0].record);
    // only before the text: inside it, it is what serde_json says it is
    let e = decode(&headers(&[]), "{\u{feff}}".as_bytes()).unwrap_err();
    assert_eq!(e.kind, crate::decode::DecodeErrorKind::Malformed);
}

#[test]
fn garbage_bodies_are_malformed_and_say_what_was_expected() {
    for body in [&b""[..], b"not json", b"{\"x\":1}", b"[1,2]", b"42"] {
        let e = decode(&headers(&[("content-type", "application/json")]), body).unwrap_err();
        assert_eq!(e.kind, crate::decode::DecodeErrorKind::Malformed);
        assert!(e.message.contains("expected"), "{e}");
    }
}

/// Errors about the body as a whole (empty, not JSON, not UTF-8, not a delivery) name `body`.
#[test]
fn errors_of_the_whole_body_name_the_body() {
    let bodies: [&[u8]; 8] =
        [b"", b"  ", b"not json", b"{\"x\":1}", b"[1,2]", b"{\"a\": \"\xff\"}", b"\xfe\xff", b"{\"message\": "];
    for body in bodies {
        let e = decode(&headers(&[("content-type", "application/json")]), body).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(BODY), "{body:?}: {e}");
    }
    // a structured CloudEvent that is no JSON object, and binary mode, whose body is the data
    let e = decode(&headers(&[("content-type", "application/cloudevents+json")]), b"[1]").unwrap_err();
    assert_eq!(e.field.as_deref(), Some(BODY), "{e}");
    let ce = [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "s"), ("ce-type", "t")];
    for body in [&b"{oops"[..], b"", b"{\"x\": 1}"] {
        let e = decode(&headers(&ce), body).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(BODY), "{body:?}: {e}");
    }
    // ... and a Pub/Sub wrapper there is named from the body, as its message id is
    let e = decode(&headers(&ce), br#"{"message": {"data": "%%%"}}"#).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("message.data"), "{e}");
}
