//! The answer to a delivery of several records: outcomes counted as they come ([`Tally`]), the
//! status of the worst class, a summary body listing the failures, and the items to retry.

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{AckPolicy, Answer, RecordResult, permanent, record_answer};
use crate::error::ErrorClass;

/// Lists at most this many failed records in a multi-record answer body.
pub const MAX_LISTED_FAILURES: usize = 20;

/// Outcomes of a delivery counted as they come (a file of many chunks), holding only the
/// failures an answer lists and the items to retry.
#[derive(Debug, Default)]
pub struct Tally {
    pub records: usize,
    pub done: usize,
    pub transient: usize,
    pub permanent: usize,
    failures: Vec<RecordResult>,
    retry: Vec<String>,
    /// A failure of the delivery itself after some records (the file could not be read to its
    /// end): transient or permanent, with its message.
    pub broken: Option<(ErrorClass, String)>,
}

impl Tally {
    pub fn add(&mut self, r: RecordResult, policy: AckPolicy) {
        self.records += 1;
        match r.outcome.class() {
            None => self.done += 1,
            Some(c) => {
                if c == ErrorClass::Transient {
                    self.transient += 1;
                } else {
                    self.permanent += 1;
                }
                if retry_items(std::slice::from_ref(&r), policy).len() == 1
                    && let Some(item) = &r.item
                {
                    self.retry.push(item.clone());
                }
                if self.failures.len() < MAX_LISTED_FAILURES {
                    self.failures.push(r);
                }
            }
        }
    }

    /// The answer: 503 when any record (or the reading itself) failed transiently, else the
    /// permanent status when any failed for good, else 204; the body counts and lists.
    pub fn answer(&self, policy: AckPolicy) -> Answer {
        let broken_transient = matches!(self.broken, Some((ErrorClass::Transient, _)));
        let broken_permanent = matches!(self.broken, Some((ErrorClass::Permanent, _)));
        let transient = self.transient > 0 || broken_transient;
        let status = if transient {
            StatusCode::SERVICE_UNAVAILABLE
        } else if self.permanent > 0 || broken_permanent {
            permanent(StatusCode::BAD_REQUEST, policy)
        } else {
            StatusCode::NO_CONTENT
        };
        if status == StatusCode::NO_CONTENT {
            return Answer { status, body: Bytes::new(), retry: Vec::new() };
        }
        let failed: Vec<Value> = self
            .failures
            .iter()
            .map(|r| {
                let v = record_answer(&r.outcome, policy);
                let mut body: Value = serde_json::from_slice(&v.body).unwrap_or_else(|_| json!({}));
                body["item"] = json!(r.item);
                body
            })
            .collect();
        let mut body = json!({"error": if transient { "records_failed_transiently" } else { "records_failed" },
                "class": if transient { "transient" } else { "permanent" },
                "records": self.records, "done": self.done, "transient": self.transient, "permanent": self.permanent,
                "failures": failed});
        if let Some((class, message)) = &self.broken {
            body["unread"] = json!({"class": class, "message": message});
        }
        let mut a = Answer::json(status, &body);
        a.retry = self.retry.clone();
        a
    }
}

/// The answer to a delivery: a single record's own answer, or for several records the status
/// of the worst class (transient > permanent > done), a summary body and the items to retry.
pub fn answer(records: &[RecordResult], policy: AckPolicy) -> Answer {
    if let [one] = records {
        let mut a = record_answer(&one.outcome, policy);
        a.retry = retry_items(records, policy);
        return a;
    }
    let mut tally = Tally::default();
    for r in records {
        tally.add(r.clone(), policy);
    }
    tally.answer(policy)
}

fn retry_items(records: &[RecordResult], policy: AckPolicy) -> Vec<String> {
    records
        .iter()
        .filter(|r| match r.outcome.class() {
            Some(ErrorClass::Transient) => true,
            Some(ErrorClass::Permanent) => !policy.ack_permanent,
            None => false,
        })
        .filter_map(|r| r.item.clone())
        .collect()
}
