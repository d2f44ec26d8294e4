//! Google Cloud Monitoring sink: `projects.timeSeries.create` over REST.
//!
//! The API's rules (protocols.md §5): at most 200 series per call and exactly one point per
//! series per call, so the points of one event go out in as few calls as those rules allow (two
//! points of one series need two calls, sent in time order). Metrics are `GAUGE`/`DOUBLE` under
//! `custom.googleapis.com/`. A partial failure names the failed `timeSeries[i]` indices; each is
//! classified: a point written too frequently, out of order or as a duplicate of one already
//! there counts as already written; a point outside the 25-hour window is refused for good;
//! both are reported, never retried. 429, 5xx, timeouts and connection errors are retried with
//! exponential backoff inside the configured deadline, then reported as transient.

mod body;
mod classify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use body::{MAX_SERIES_PER_CALL, METRIC_PREFIX, Resource, plan_calls, request_body};
use classify::{Verdict, classify_text, failed_series};

use super::{Delivered, MetricSink, Point, SinkError};
use crate::error::ErrorClass;
use crate::google::credentials::{MONITORING_SCOPE, TokenSource};

/// Retry of transient failures.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// No retry starts later than this after the first call.
    pub deadline: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(20),
        }
    }
}

pub struct CloudMonitoring {
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    /// `https://monitoring.googleapis.com` (a fake's URL in tests).
    endpoint: String,
    resource: Resource,
    retry: Retry,
    /// Limit for one HTTP call.
    timeout: Duration,
}
impl CloudMonitoring {
    pub fn new(
        http: reqwest::Client,
        tokens: Arc<dyn TokenSource>,
        endpoint: &str,
        resource: Resource,
        retry: Retry,
    ) -> Self {
        CloudMonitoring {
            http,
            tokens,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            resource,
            retry,
            timeout: Duration::from_secs(10),
        }
    }
}
enum CallError {
    /// Some series failed; the others were written.
    Partial(Vec<(usize, String)>),
    /// The whole call failed.
    Whole { status: Option<u16>, message: String },
}

impl CloudMonitoring {
    async fn call(&self, project: &str, points: &[&Point]) -> Result<(), CallError> {
        let token = self
            .tokens
            .token(&[MONITORING_SCOPE])
            .await
            .map_err(|e| CallError::Whole { status: None, message: format!("no access token: {e}") })?;
        let url = format!("{}/v3/projects/{project}/timeSeries", self.endpoint);
        let resp = self
            .http
            .post(url)
            .bearer_auth(token)
            .timeout(self.timeout)
            .json(&request_body(points, &self.resource))
            .send()
            .await
            .map_err(|e| CallError::Whole { status: None, message: format!("request failed: {e}") })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        let failed = failed_series(&message);
        if !failed.is_empty() && status.as_u16() == 400 {
            return Err(CallError::Partial(failed));
        }
        Err(CallError::Whole { status: Some(status.as_u16()), message })
    }

    /// Writes one call's points, retrying what can be retried.
    async fn write(&self, project: &str, points: Vec<&Point>, out: &mut Delivered) -> Result<(), SinkError> {
        let started = Instant::now();
        let mut pending = points;
        let mut backoff = self.retry.first_backoff;
        loop {
            out.calls += 1;
            let mut retry = Vec::new();
            let mut last_error = String::new();
            match self.call(project, &pending).await {
                Ok(()) => return Ok(()),
                Err(CallError::Partial(failed)) => {
                    for (idx, reason) in failed {
                        let Some(g) = pending.get(idx) else { continue };
                        match classify_text(&reason) {
                            Some(Verdict::Rejected(r)) => out.rejected.push((g.name.clone(), r)),
                            Some(Verdict::Retry) => retry.push(*g),
                            _ => {
                                return Err(SinkError {
                                    class: ErrorClass::Permanent,
                                    message: format!("Cloud Monitoring refused {}: {reason}", g.name),
                                });
                            }
                        }
                        last_error = reason;
                    }
                }
                Err(CallError::Whole { status, message }) => {
                    let verdict = match status {
                        None | Some(401 | 403 | 408 | 429 | 500..=599) => Verdict::Retry,
                        Some(_) => classify_text(&message).unwrap_or(Verdict::Fail),
                    };
                    match verdict {
                        Verdict::Rejected(r) => {
                            out.rejected.extend(pending.iter().map(|g| (g.name.clone(), r)));
                            return Ok(());
                        }
                        Verdict::Retry => retry = pending.clone(),
                        Verdict::Fail => {
                            return Err(SinkError {
                                class: ErrorClass::Permanent,
                                message: format!("Cloud Monitoring rejected the request ({status:?}): {message}"),
                            });
                        }
                    }
                    last_error = format!("{status:?}: {message}");
                }
            }
            if retry.is_empty() {
                return Ok(());
            }
            if started.elapsed() + backoff > self.retry.deadline {
                return Err(SinkError {
                    class: ErrorClass::Transient,
                    message: format!(
                        "Cloud Monitoring still failing after {} calls in {:?}: {last_error}",
                        out.calls,
                        started.elapsed()
                    ),
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
            pending = retry;
        }
    }
}

#[async_trait::async_trait]
impl MetricSink for CloudMonitoring {
    async fn emit(&self, points: &[Point]) -> Result<Delivered, SinkError> {
        let mut out = Delivered::default();
        for (project, call) in plan_calls(points) {
            self.write(&project, call, &mut out).await?;
        }
        Ok(out)
    }
}
