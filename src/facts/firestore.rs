//! The fact store in Firestore (native mode), shared by every instance (`FACT_STORE=firestore`),
//! through the REST API v1.
//!
//! Three collections (`<prefix>facts`, `<prefix>rows`, `<prefix>dimensions`), documents named
//! by the key's hex. Every document carries `expire_at` (now + `FACT_TTL_SECS`) for a Firestore
//! TTL policy on that field, which deletes expired documents (within about a day of expiry).
//!
//! * `reserve` = createDocument with the document id: 200 created; 409 `ALREADY_EXISTS` exists;
//! * `release` = delete;
//! * `update_row` = a read-write transaction: beginTransaction, batchGet in it, commit the
//!   write (or roll back when nothing changed); `ABORTED` (lock contention) starts again;
//! * dimensions = patch (upsert) / batchGet.
//!
//! Reads use batchGet (absent = `missing` in a 200) rather than GET (absent = 404), because a 404
//! also says that the database does not exist, and only the status may be trusted, never the
//! message (the emulator's texts differ from production's). Every request has a timeout; a
//! failed request is a [`StoreError`]: transient for the record.
//!
//! `FIRESTORE_EMULATOR_HOST` is honoured as Google's client libraries do: plain HTTP to that
//! host, no token. Otherwise each request carries a token for the datastore scope.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{FactKey, FactStore, Key, Mark, RowKey, RowState, RowUpdate, StoreError};
use crate::google::TokenSource;

pub const DATASTORE_SCOPE: &str = "https://www.googleapis.com/auth/datastore";
pub const PRODUCTION_ENDPOINT: &str = "https://firestore.googleapis.com";

/// Attempts of one call aborted by contention (`ABORTED`) before it gives up (transient).
const MAX_ATTEMPTS: u32 = 10;

/// Where and how to reach the database.
#[derive(Clone)]
pub struct Settings {
    /// `https://firestore.googleapis.com`, or `http://<FIRESTORE_EMULATOR_HOST>`.
    pub endpoint: String,
    pub project: String,
    pub database: String,
    pub collection_prefix: String,
    pub ttl: Duration,
    /// Limit of each request.
    pub timeout: Duration,
    /// `None` for the emulator (no token is sent).
    pub tokens: Option<Arc<dyn TokenSource>>,
}

pub struct Firestore {
    http: reqwest::Client,
    /// `projects/<p>/databases/<d>/documents`
    root: String,
    /// `<endpoint>/v1/<root>`
    base: String,
    facts: String,
    rows: String,
    dimensions: String,
    ttl: Duration,
    timeout: Duration,
    tokens: Option<Arc<dyn TokenSource>>,
    /// Updates of one row within this instance wait for each other (64 stripes by row key):
    /// two transactions that read the same document and then both write it only make each
    /// other wait for a lock and abort (the emulator resolves that after a ~2 s lock timeout),
    /// so racing them inside one process gains nothing. Instances still race, and the
    /// transaction keeps that correct.
    row_locks: Vec<tokio::sync::Mutex<()>>,
}

/// What an answer means for the store, by HTTP status and the error's `status` (gRPC code name).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok(Value),
    /// 409 `ALREADY_EXISTS`.
    Exists,
    /// 409 `ABORTED`: contention (a lock timed out, a transaction lost): try again.
    Aborted,
    /// Anything else: unreachable, a timeout, 5xx, 429, 4xx.
    Failed(String),
}

/// Classifies an answer on its status and the error envelope's `status`, never on the message
/// (the emulator words its errors differently from production). A 409 that is not
/// `ALREADY_EXISTS` is taken as contention: retrying is safe, taking it for "exists" would lose
/// a fact.
pub fn classify(status: StatusCode, body: &str) -> Reply {
    if status.is_success() {
        return Reply::Ok(serde_json::from_str(body).unwrap_or(Value::Null));
    }
    let envelope: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = envelope["error"]["status"].as_str().unwrap_or("");
    if status == StatusCode::CONFLICT {
        return if code == "ALREADY_EXISTS" { Reply::Exists } else { Reply::Aborted };
    }
    if code == "ABORTED" {
        return Reply::Aborted;
    }
    let message = envelope["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| {
        let mut b = body.trim().to_string();
        b.truncate(200);
        b
    });
    let code = if code.is_empty() { String::new() } else { format!(" {code}") };
    Reply::Failed(format!("HTTP {}{code}: {message}", status.as_u16()))
}

/// What a read found.
enum Read {
    /// The document's fields.
    Found(Value),
    Missing,
    /// Contention ended the transaction.
    Aborted,
}

fn error(message: impl Into<String>) -> StoreError {
    StoreError { store: "firestore", message: message.into() }
}

impl Firestore {
    pub fn new(http: reqwest::Client, s: Settings) -> Firestore {
        let root = format!("projects/{}/databases/{}/documents", s.project, s.database);
        let base = format!("{}/v1/{root}", s.endpoint.trim_end_matches('/'));
        let p = &s.collection_prefix;
        Firestore {
            http,
            base,
            root,
            facts: format!("{p}facts"),
            rows: format!("{p}rows"),
            dimensions: format!("{p}dimensions"),
            ttl: s.ttl,
            timeout: s.timeout,
            tokens: s.tokens,
            row_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// The three collections (for the TTL policy).
    pub fn collections(&self) -> [&str; 3] {
        [&self.facts, &self.rows, &self.dimensions]
    }

    /// One cheap call (a page of at most one fact, its `expire_at` only), so that a wrong
    /// project, database or credentials stop the process at startup.
    pub async fn check(&self) -> Result<(), String> {
        let url = format!("{}/{}?pageSize=1&mask.fieldPaths=expire_at", self.base, self.facts);
        match self.call(Method::GET, &url, None).await {
            Ok(Reply::Ok(_)) => Ok(()),
            Ok(Reply::Failed(m)) => Err(format!("{}: {m}", self.base)),
            Ok(other) => Err(format!("{}: {other:?}", self.base)),
            Err(e) => Err(format!("{}: {}", self.base, e.message)),
        }
    }

    /// One request with the timeout (and a token, outside the emulator), classified.
    async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Reply, StoreError> {
        let mut req = self.http.request(method, url).timeout(self.timeout);
        if let Some(tokens) = &self.tokens {
            let token = tokens.token(&[DATASTORE_SCOPE]).await.map_err(|e| error(format!("no access token: {e}")))?;
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| error(describe(&e)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| error(describe(&e)))?;
        Ok(classify(status, &text))
    }

    /// A call whose contention (`ABORTED`) is retried; `Ok` or `Exists`, else the error.
    async fn call_retried(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Reply, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            match self.call(method.clone(), url, body).await? {
                Reply::Aborted => backoff(attempt).await,
                Reply::Failed(m) => return Err(error(m)),
                done => return Ok(done),
            }
        }
        Err(error(format!("still aborted (contention) after {MAX_ATTEMPTS} attempts")))
    }

    fn name(&self, collection: &str, key: Key) -> String {
        format!("{}/{collection}/{}", self.root, key.hex())
    }

    fn expire_at(&self) -> Value {
        let at = Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(8));
        json!({"timestampValue": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)})
    }

    /// One document by name, in a transaction or not (outside one, contention is retried).
    async fn read(&self, name: &str, transaction: Option<&str>) -> Result<Read, StoreError> {
        let mut body = json!({"documents": [name]});
        if let Some(t) = transaction {
            body["transaction"] = t.into();
        }
        let url = format!("{}:batchGet", self.base);
        let reply = match transaction {
            // inside a transaction, ABORTED ends it: the caller starts again
            Some(_) => self.call(Method::POST, &url, Some(&body)).await?,
            None => self.call_retried(Method::POST, &url, Some(&body)).await?,
        };
        match reply {
            Reply::Ok(v) => {
                // the REST form of the BatchGetDocuments stream: an array of responses
                let items = v.as_array().cloned().unwrap_or_else(|| vec![v]);
                for item in items {
                    if let Some(found) = item.get("found") {
                        return Ok(Read::Found(found.get("fields").cloned().unwrap_or_else(|| json!({}))));
                    }
                    if item.get("missing").is_some() {
                        return Ok(Read::Missing);
                    }
                }
                Err(error("batchGet answered neither found nor missing"))
            }
            Reply::Aborted => Ok(Read::Aborted),
            Reply::Exists => Err(error("batchGet answered ALREADY_EXISTS")),
            Reply::Failed(m) => Err(error(m)),
        }
    }

    async fn begin(&self) -> Result<String, StoreError> {
        let body = json!({"options": {"readWrite": {}}});
        match self.call_retried(Method::POST, &format!("{}:beginTransaction", self.base), Some(&body)).await? {
            Reply::Ok(v) => v["transaction"].as_str().map(str::to_string).ok_or_else(|| error("no transaction id")),
            other => Err(error(format!("beginTransaction: {other:?}"))),
        }
    }

    /// Ends a transaction that writes nothing (its locks are freed at once); best effort.
    async fn rollback(&self, transaction: &str) {
        let body = json!({"transaction": transaction});
        let _ = self.call(Method::POST, &format!("{}:rollback", self.base), Some(&body)).await;
    }

    /// One attempt of `update_row`: `Ok(None)` when the transaction was aborted.
    async fn try_update(
        &self,
        name: &str,
        transaction: &str,
        update: RowUpdate<'_>,
    ) -> Result<Option<Vec<Mark>>, StoreError> {
        let fields = match self.read(name, Some(transaction)).await? {
            Read::Found(f) => Some(f),
            Read::Missing => None,
            Read::Aborted => return Ok(None),
        };
        let before: RowState = match fields.as_ref().and_then(|f| f["state"]["stringValue"].as_str()) {
            Some(text) => serde_json::from_str(text).map_err(|e| error(format!("{name} is not a row state: {e}")))?,
            None => RowState::default(),
        };
        let mut after = before.clone();
        let marks = update(&mut after);
        if after == before {
            self.rollback(transaction).await;
            return Ok(Some(marks));
        }
        let state = serde_json::to_string(&after).map_err(|e| error(e.to_string()))?;
        let body = json!({
            "writes": [{"update": {"name": name, "fields": {
                "state": {"stringValue": state},
                "expire_at": self.expire_at(),
            }}}],
            "transaction": transaction,
        });
        match self.call(Method::POST, &format!("{}:commit", self.base), Some(&body)).await? {
            Reply::Ok(_) => Ok(Some(marks)),
            Reply::Aborted => Ok(None),
            Reply::Exists => Err(error("commit answered ALREADY_EXISTS")),
            Reply::Failed(m) => Err(error(m)),
        }
    }
}

/// A short, growing pause between attempts after contention (the emulator's lock timeout is
/// about 2 s: the next attempt usually finds the lock free).
async fn backoff(attempt: u32) {
    let ms = 20u64 << attempt.min(5);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A transport error in words (the URL is not secret; there is no token in it).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{what}: {}", crate::error::transport(e))
}

#[async_trait::async_trait]
impl FactStore for Firestore {
    fn name(&self) -> &'static str {
        "firestore"
    }

    async fn reserve(&self, fact: FactKey) -> Result<bool, StoreError> {
        // mask: the answer need not echo the document
        let url = format!("{}/{}?documentId={}&mask.fieldPaths=expire_at", self.base, self.facts, fact.hex());
        let body = json!({"fields": {"expire_at": self.expire_at()}});
        match self.call_retried(Method::POST, &url, Some(&body)).await? {
            Reply::Ok(_) => Ok(true),
            Reply::Exists => Ok(false),
            other => Err(error(format!("createDocument: {other:?}"))),
        }
    }

    async fn release(&self, fact: FactKey) -> Result<(), StoreError> {
        let url = format!("{}/{}/{}", self.base, self.facts, fact.hex());
        self.call_retried(Method::DELETE, &url, None).await.map(|_| ())
    }

    async fn update_row(&self, row: RowKey, update: RowUpdate<'_>) -> Result<Vec<Mark>, StoreError> {
        let name = self.name(&self.rows, row);
        let _turn = self.row_locks[(row.0 % self.row_locks.len() as u128) as usize].lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            let transaction = self.begin().await?;
            match self.try_update(&name, &transaction, update).await {
                Ok(Some(marks)) => return Ok(marks),
                Ok(None) => {
                    tracing::debug!(row = %row.hex(), attempt, "fact store: transaction aborted (contention), again");
                    backoff(attempt).await
                }
                Err(e) => {
                    self.rollback(&transaction).await;
                    return Err(e);
                }
            }
        }
        Err(error(format!("{name}: still aborted (contention) after {MAX_ATTEMPTS} attempts")))
    }

    async fn put_dimension(&self, key: Key, value: &str) -> Result<(), StoreError> {
        let url = format!("{}/{}/{}", self.base, self.dimensions, key.hex());
        let body = json!({"fields": {"value": {"stringValue": value}, "expire_at": self.expire_at()}});
        self.call_retried(Method::PATCH, &format!("{url}?mask.fieldPaths=expire_at"), Some(&body)).await.map(|_| ())
    }

    async fn get_dimension(&self, key: Key) -> Result<Option<String>, StoreError> {
        match self.read(&self.name(&self.dimensions, key), None).await? {
            Read::Found(f) => Ok(f["value"]["stringValue"].as_str().map(str::to_string)),
            Read::Missing => Ok(None),
            Read::Aborted => Err(error("batchGet: still aborted (contention)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_on_status_not_on_message() {
        // production and emulator wordings of the same answers (research/fake-texts.md §6)
        let prod = r#"{"error":{"code":409,"message":"Document already exists: projects/p/databases/(default)/documents/c/x","status":"ALREADY_EXISTS"}}"#;
        let emu = r#"{"error":{"code":409,"message":"entity already exists: EntityRef{partitionRef=dev~p, path=/c/x}","status":"ALREADY_EXISTS"}}"#;
        assert_eq!(classify(StatusCode::CONFLICT, prod), Reply::Exists);
        assert_eq!(classify(StatusCode::CONFLICT, emu), Reply::Exists);
        let aborted = r#"{"error":{"code":409,"message":"Transaction lock timeout.","status":"ABORTED"}}"#;
        assert_eq!(classify(StatusCode::CONFLICT, aborted), Reply::Aborted);
        assert_eq!(classify(StatusCode::CONFLICT, "<html>"), Reply::Aborted, "an unknown 409 is retried");
        // a message that says "already exists" under another status is not "exists"
        let odd = r#"{"error":{"code":400,"message":"Document already exists","status":"INVALID_ARGUMENT"}}"#;
        assert!(
            matches!(classify(StatusCode::BAD_REQUEST, odd), Reply::Failed(m) if m.starts_with("HTTP 400 INVALID_ARGUMENT"))
        );
        for s in [429u16, 500, 503, 403, 404] {
            let r = classify(StatusCode::from_u16(s).unwrap(), r#"{"error":{"code":0,"message":"x","status":"Y"}}"#);
            assert!(matches!(r, Reply::Failed(_)), "{s}: {r:?}");
        }
        assert_eq!(classify(StatusCode::OK, r#"{"a":1}"#), Reply::Ok(json!({"a": 1})));
    }
}
