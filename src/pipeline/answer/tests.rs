use super::*;
use crate::warehouse::WarehouseError;

const ACK: AckPolicy = AckPolicy { ack_permanent: true };
const NACK: AckPolicy = AckPolicy { ack_permanent: false };

fn failed(e: HandlerError) -> Outcome {
    let transient = e.class() == ErrorClass::Transient;
    Outcome::HandlersFailed { transient, failures: vec![Failure { handler: "H".into(), error: e }] }
}

fn sink(class: ErrorClass) -> Outcome {
    Outcome::SinkFailed(match class {
        ErrorClass::Transient => SinkError::unavailable("m"),
        ErrorClass::Permanent => SinkError::refused("m"),
    })
}

#[test]
fn single_record_answer_table() {
    // (outcome, status by default, status with ack_permanent, final)
    let table = [
        (Outcome::Done, 204, 204, true),
        (Outcome::History, 204, 204, true),
        (Outcome::Ignored { reason: "a DMS control record".into() }, 204, 204, true),
        (Outcome::Rejected(DecodeError::malformed(None, "x")), 400, 200, true),
        (Outcome::Rejected(DecodeError::unsupported("x")), 415, 200, true),
        (
            Outcome::Rejected(DecodeError { kind: DecodeErrorKind::TooLarge, field: None, message: "x".into() }),
            413,
            200,
            true,
        ),
        (failed(HandlerError::invalid("f", "m")), 400, 200, true),
        (failed(WarehouseError::Unavailable("503".into()).into()), 503, 503, false),
        (sink(ErrorClass::Transient), 503, 503, false),
        (sink(ErrorClass::Permanent), 400, 200, true),
        (Outcome::InProgress, 503, 503, false),
        (Outcome::DeadlineExceeded { deadline_secs: 50.0 }, 503, 503, false),
        (Outcome::Duplicate(Remembered { status: 204, body: Bytes::new() }), 204, 204, true),
        (Outcome::Duplicate(Remembered { status: 400, body: Bytes::from_static(b"{}") }), 400, 400, true),
    ];
    for (outcome, status, acked, is_final) in table {
        assert_eq!(record_answer(&outcome, NACK).status.as_u16(), status, "{outcome:?}");
        assert_eq!(record_answer(&outcome, ACK).status.as_u16(), acked, "{outcome:?} with ack_permanent");
        assert_eq!(outcome.is_final(), is_final, "{outcome:?}");
    }
}

#[test]
fn decode_errors_are_rejected_unless_not_a_change() {
    let ignored = Outcome::of_decode_error(DecodeError::not_a_change(None, "control"));
    assert_eq!(ignored, Outcome::Ignored { reason: "control".into() });
    let e = DecodeError::malformed(Some("data".into()), "x");
    assert_eq!(Outcome::of_decode_error(e.clone()), Outcome::Rejected(e));
}

#[test]
fn refusal_table() {
    let table = [
        (Refusal::Unauthorized("no token".into()), 401, 401),
        (Refusal::Overloaded { limit: 256 }, 429, 429),
        (Refusal::Undecodable(DecodeError::malformed(None, "x")), 400, 200),
        (Refusal::Undecodable(DecodeError::unsupported("x")), 415, 200),
        (Refusal::Unavailable("storage down".into()), 503, 503),
        (Refusal::Ignored("OBJECT_DELETE".into()), 204, 204),
        (Refusal::Undecodable(DecodeError::not_a_change(None, "x")), 204, 204),
        (Refusal::BodiesBuffered { limit: 1 << 20 }, 429, 429),
        (Refusal::BodyTimeout { timeout_secs: 20.0 }, 408, 408),
        (Refusal::NoRoute { method: "GET".into(), path: "/nope".into() }, 404, 404),
        (Refusal::MethodNotAllowed { method: "PUT".into(), path: "/".into(), allowed: "GET, POST" }, 405, 405),
    ];
    for (r, status, acked) in table {
        assert_eq!(refuse(&r, NACK).status.as_u16(), status, "{r:?}");
        assert_eq!(refuse(&r, ACK).status.as_u16(), acked, "{r:?} with ack_permanent");
    }
}

/// Error bodies share one shape: `error`, `class`, `message` and `field` (null when no part of
/// the request is at fault, as when the instance is overloaded).
#[test]
fn refusal_bodies_have_the_shape_of_every_error_body() {
    let table = [
        (Refusal::Overloaded { limit: 256 }, "overloaded", "transient", Value::Null),
        (Refusal::BodiesBuffered { limit: 1 << 20 }, "overloaded", "transient", Value::Null),
        (
            Refusal::Undecodable(DecodeError::malformed(Some("body".into()), "x")),
            "malformed_event",
            "permanent",
            "body".into(),
        ),
        (Refusal::NoRoute { method: "GET".into(), path: "/nope".into() }, "not_found", "permanent", "path".into()),
        (
            Refusal::MethodNotAllowed { method: "PUT".into(), path: "/".into(), allowed: "GET, POST" },
            "method_not_allowed",
            "permanent",
            "method".into(),
        ),
    ];
    for (r, error, class, field) in table {
        let body: Value = serde_json::from_slice(&refuse(&r, NACK).body).unwrap();
        assert_eq!(body["error"], error, "{r:?}");
        assert_eq!(body["class"], class, "{r:?}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{r:?}");
        assert_eq!(body.get("field"), Some(&field), "{r:?}");
    }
    let long = Refusal::NoRoute { method: "GET".into(), path: format!("/{}", "p".repeat(10_000)) };
    assert!(refuse(&long, NACK).body.len() < 400, "a path is not echoed in full");
}

#[test]
fn headline_is_the_first_failure_of_the_deciding_class() {
    let outcome = Outcome::HandlersFailed {
        transient: true,
        failures: vec![
            Failure { handler: "A".into(), error: HandlerError::invalid("payload.x", "bad") },
            Failure { handler: "B".into(), error: WarehouseError::Unavailable("down".into()).into() },
        ],
    };
    let a = record_answer(&outcome, NACK);
    let body: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(body["handler"], "B");
    assert_eq!(body["class"], "transient");
    assert_eq!(body["failures"].as_array().unwrap().len(), 2);
    assert_eq!(body["failures"][0]["field"], "payload.x");
}

#[test]
fn multi_record_answers_and_retry_items() {
    let r = |item: &str, outcome: Outcome| RecordResult { item: Some(item.into()), outcome };
    let done = [
        r("1", Outcome::Done),
        r("2", Outcome::Duplicate(Remembered { status: 204, body: Bytes::new() })),
        r("3", Outcome::History),
        r("4", Outcome::Ignored { reason: "a DMS control record".into() }),
    ];
    let a = answer(&done, NACK);
    assert_eq!((a.status.as_u16(), a.retry.len()), (204, 0), "history and ignored records are done");
    assert!(a.body.is_empty());

    let mixed = [
        r("1", Outcome::Done),
        r("2", Outcome::Rejected(DecodeError::malformed(Some("line 2".into()), "not JSON"))),
        r("3", Outcome::InProgress),
    ];
    let a = answer(&mixed, NACK);
    assert_eq!(a.status.as_u16(), 503, "a transient failure wins");
    assert_eq!(a.retry, vec!["2".to_string(), "3".to_string()]);
    let body: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!((body["records"].as_u64(), body["done"].as_u64()), (Some(3), Some(1)));
    assert_eq!(body["failures"][0]["item"], "2");
    assert_eq!(body["failures"][0]["field"], "line 2");
    let a = answer(&mixed, ACK);
    assert_eq!(a.retry, vec!["3".to_string()], "acknowledged permanent failures are not retried");

    let permanent_only = [r("1", Outcome::Done), r("2", sink(ErrorClass::Permanent))];
    assert_eq!(answer(&permanent_only, NACK).status.as_u16(), 400);
    assert_eq!(answer(&permanent_only, ACK).status.as_u16(), 200);
}

#[test]
fn a_file_read_only_in_part_answers_by_the_reason() {
    let r = |item: &str, outcome: Outcome| RecordResult { item: Some(item.into()), outcome };
    let mut t = Tally::default();
    t.add(r("line 1", Outcome::Done), NACK);
    t.broken = Some((ErrorClass::Transient, "connection reset".into()));
    let a = t.answer(NACK);
    assert_eq!(a.status.as_u16(), 503);
    let body: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(body["unread"]["message"], "connection reset");
    t.broken = Some((ErrorClass::Permanent, "corrupt gzip".into()));
    assert_eq!(t.answer(NACK).status.as_u16(), 400);
    assert_eq!(t.answer(ACK).status.as_u16(), 200);
}

#[test]
fn many_failures_are_listed_up_to_a_bound() {
    let records: Vec<RecordResult> = (0..100)
        .map(|i| RecordResult {
            item: Some(i.to_string()),
            outcome: Outcome::Rejected(DecodeError::malformed(None, "x")),
        })
        .collect();
    let body: Value = serde_json::from_slice(&answer(&records, NACK).body).unwrap();
    assert_eq!(body["failures"].as_array().unwrap().len(), MAX_LISTED_FAILURES);
    assert_eq!(body["permanent"], 100);
}

#[test]
fn remembered_answers_are_short() {
    let small = record_answer(&failed(HandlerError::invalid("payload.variables.partner", "missing")), NACK);
    assert_eq!(small.remembered().body, small.body, "a short body is kept as it is");
    let failures = (0..50)
        .map(|i| Failure { handler: format!("Handler{i}"), error: HandlerError::invalid("payload.x", "m".repeat(500)) })
        .collect();
    let big = record_answer(&Outcome::HandlersFailed { transient: false, failures }, NACK);
    assert!(big.body.len() > 20_000);
    let r = big.remembered();
    assert_eq!(r.status, 400);
    assert!(r.body.len() <= MAX_REMEMBERED_BODY, "{}", r.body.len());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((v["error"].as_str(), v["handler"].as_str()), (Some("invalid_input"), Some("Handler0")));
}
