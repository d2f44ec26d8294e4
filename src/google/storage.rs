//! Cloud Storage objects read through the JSON API: `GET
//! {base}/storage/v1/b/{bucket}/o/{object}?alt=media&generation={g}`
//! (https://cloud.google.com/storage/docs/json_api/v1/objects/get), streamed; and listed under a
//! prefix, page by page: `GET {base}/storage/v1/b/{bucket}/o?prefix={p}&pageToken={t}`
//! (https://cloud.google.com/storage/docs/json_api/v1/objects/list).
//!
//! `STORAGE_EMULATOR_HOST` is honoured as Google's client libraries honour it (`host:port` or a
//! URL; no credentials then); otherwise the shared [`TokenSource`] gives a token with the
//! `devstorage.read_only` scope. No `Accept-Encoding: gzip` is sent, so an object stored with
//! `Content-Encoding: gzip` is served decompressed (decompressive transcoding); a `.jsonl.gz`
//! object that Datastream wrote (GZIP JSON output) has no content encoding and arrives as the
//! gzip bytes it holds.
//!
//! Failures: 404 (the object or that generation no longer exists: "No such object:
//! bucket/name" as text, tests/common/fakes/SOURCES.md §5) is permanent; 401 and 403 are
//! failures of this function's credentials, not of the notification (transient, like the
//! sinks); 408, 429 and 5xx are retried with the shared backoff, then transient.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, TryStreamExt};

use super::credentials::TokenSource;
use crate::retry::{self, Policy, RetryDecision};

/// The read-only scope of the Cloud Storage JSON API.
pub const READ_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    /// The object is gone (or never existed at that generation): retrying cannot help.
    pub not_found: bool,
    /// HTTP status, when the API answered.
    pub status: Option<u16>,
    pub message: String,
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        self.not_found
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    /// Bytes (the API writes it as a decimal string); `None` when absent.
    pub size: Option<u64>,
    /// The generation listed, so that the object read is the one listed.
    pub generation: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    #[serde(default)]
    items: Vec<ListItem>,
    next_page_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct ListItem {
    name: String,
    size: Option<serde_json::Value>,
    generation: Option<serde_json::Value>,
}

fn text_of(v: Option<serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A Cloud Storage JSON API client for reading objects.
pub struct Storage {
    http: reqwest::Client,
    base: String,
    tokens: Option<Arc<dyn TokenSource>>,
    retry: Policy,
    timeout: Duration,
}

impl Storage {
    /// Against `STORAGE_EMULATOR_HOST` (`host:port` or `http://host:port`), without
    /// credentials.
    pub fn emulator(http: reqwest::Client, host: &str) -> Storage {
        let base = if host.starts_with("http://") || host.starts_with("https://") {
            host.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", host.trim_end_matches('/'))
        };
        Storage { http, base, tokens: None, retry: Policy::default(), timeout: Duration::from_secs(30) }
    }

    /// Against `https://storage.googleapis.com` with Google credentials.
    pub fn production(http: reqwest::Client, tokens: Arc<dyn TokenSource>) -> Storage {
        Storage {
            http,
            base: "https://storage.googleapis.com".into(),
            tokens: Some(tokens),
            retry: Policy::default(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Retries with `policy` instead of the default (200 ms doubling, within 20 s).
    pub fn with_retry(mut self, policy: Policy) -> Storage {
        self.retry = policy;
        self
    }

    /// The URL of one generation of an object's data.
    pub fn media_url(&self, bucket: &str, name: &str, generation: Option<&str>) -> String {
        let mut url = format!("{}/storage/v1/b/{}/o/{}?alt=media", self.base, enc(bucket), enc(name));
        if let Some(g) = generation {
            url.push_str("&generation=");
            url.push_str(&enc(g));
        }
        url
    }

    /// Every object whose name starts with `prefix`, in name order (the API lists in
    /// lexicographic order), all pages followed.
    ///
    /// Errors: as [`Storage::read`] (a missing bucket is a 404, `not_found`); a page that is not
    /// the API's JSON.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let url = format!("{}/storage/v1/b/{}/o", self.base, enc(bucket));
        let what = format!("gs://{bucket}/{prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query: Vec<(&str, &str)> = vec![("prefix", prefix)];
            if let Some(t) = &token {
                query.push(("pageToken", t));
            }
            let text = self.get_text(&url, &query, &what).await.map_err(|mut e| {
                if e.not_found {
                    e.message = format!("the bucket of {what} does not exist (HTTP 404)");
                }
                e
            })?;
            let page: ListPage = serde_json::from_str(&text).map_err(|e| StorageError {
                not_found: false,
                status: None,
                message: format!("listing {what}: not a Cloud Storage object list ({e})"),
            })?;
            out.extend(page.items.into_iter().map(|i| ObjectInfo {
                name: i.name,
                size: text_of(i.size).and_then(|s| s.parse().ok()),
                generation: text_of(i.generation),
            }));
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The text of a JSON API GET, with the token and retries of [`Storage::read`].
    async fn get_text(&self, url: &str, query: &[(&str, &str)], what: &str) -> Result<String, StorageError> {
        let resp = self.send(|| self.http.get(url).query(query), what).await?;
        resp.text().await.map_err(|e| StorageError {
            not_found: false,
            status: None,
            message: format!("reading the listing of {what} failed: {e}"),
        })
    }

    /// Sends a request (built anew for each attempt) until it succeeds, or fails for good, or
    /// the retry policy gives up (see the module documentation).
    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, StorageError> {
        let mut backoff = self.retry.start();
        loop {
            let mut req = request().timeout(self.timeout);
            if let Some(tokens) = &self.tokens {
                let token = tokens.token(&[READ_SCOPE]).await.map_err(|e| StorageError {
                    not_found: false,
                    status: e.status(),
                    message: format!("no access token to read {what}: {e}"),
                })?;
                req = req.bearer_auth(token);
            }
            let (decision, error) = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let after = retry::retry_after(resp.headers());
                    let text = resp.text().await.unwrap_or_default();
                    let text: String = text.chars().take(300).collect();
                    let error = StorageError {
                        not_found: status == 404,
                        status: Some(status),
                        message: match status {
                            404 => {
                                format!("{what} does not exist (deleted, or that generation replaced): HTTP 404 {text}")
                            }
                            401 | 403 => format!("this function may not read {what}: HTTP {status} {text}"),
                            _ => format!("reading {what} failed: HTTP {status} {text}"),
                        },
                    };
                    let decision = match status {
                        408 | 429 | 500..=599 => match after {
                            Some(d) => RetryDecision::Throttled(d),
                            None => RetryDecision::Retryable,
                        },
                        _ => RetryDecision::NonRetryable,
                    };
                    (decision, error)
                }
                Err(e) => (
                    retry::transport(),
                    StorageError {
                        not_found: false,
                        status: None,
                        message: format!("reading {what} failed: {}", crate::error::transport(&e)),
                    },
                ),
            };
            if !backoff.wait(decision).await {
                return Err(error);
            }
        }
    }

    /// The object's bytes as a stream (the first byte within the retry policy's deadline;
    /// the body then flows as it is read).
    ///
    /// Errors: see the module documentation.
    pub async fn read(
        &self,
        bucket: &str,
        name: &str,
        generation: Option<&str>,
    ) -> Result<impl Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send + 'static, StorageError> {
        let url = self.media_url(bucket, name, generation);
        let what = match generation {
            Some(g) => format!("gs://{bucket}/{name} (generation {g})"),
            None => format!("gs://{bucket}/{name}"),
        };
        let resp = self.send(|| self.http.get(&url), &what).await?;
        Ok(resp.bytes_stream().map_err(std::io::Error::other))
    }
}

/// Percent-encodes one path segment of the JSON API (an object name's `/` included).
fn enc(s: &str) -> String {
    const PART: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(s, PART).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_escaped_in_the_media_url() {
        let s = Storage::emulator(reqwest::Client::new(), "127.0.0.1:9023");
        assert_eq!(
            s.media_url("b", "ds/public_pipeline_run/2025/f.jsonl.gz", Some("17")),
            "http://127.0.0.1:9023/storage/v1/b/b/o/ds%2Fpublic_pipeline_run%2F2025%2Ff.jsonl.gz?alt=media&generation=17"
        );
        let s = Storage::emulator(reqwest::Client::new(), "http://localhost:9023/");
        assert!(s.media_url("b", "o", None).starts_with("http://localhost:9023/storage/v1/b/b/o/o?alt=media"));
    }
}
