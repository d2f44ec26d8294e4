//! One `projects.timeSeries.create` call and its retries: the request, the answer read as a
//! [`CallFailure`], and the retry decision of [`crate::retry::cloud_monitoring`] (see the parent
//! module's documentation).

use std::time::Duration;

use serde_json::Value;

use super::classify::{self, Reason, failed_groups};
use super::{CloudMonitoring, request_body};
use crate::google::credentials::MONITORING_SCOPE;
use crate::retry::{self, Backoff, RetryDecision};
use crate::sink::{Delivered, Point, SinkError};

/// Why one call was not (fully) written.
pub(super) struct CallFailure {
    /// `None`: no HTTP answer.
    pub(super) status: Option<u16>,
    pub(super) retry_after: Option<Duration>,
    /// `error.message` of the answer, or the whole body, or the transport error.
    pub(super) message: String,
    pub(super) transport: Option<reqwest::Error>,
}

/// The names of some points, for messages.
fn names(points: &[&Point]) -> String {
    let mut names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
    names.dedup();
    let more = names.len().saturating_sub(5);
    names.truncate(5);
    let mut s = names.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

impl CloudMonitoring {
    /// One `timeSeries.create` call with an access token.
    async fn call(&self, token: &str, project: &str, points: &[&Point]) -> Result<(), CallFailure> {
        self.post(token, project, &request_body(points, &self.resource)).await
    }

    /// One `timeSeries.create` call of `body`.
    pub(super) async fn post(&self, token: &str, project: &str, body: &Value) -> Result<(), CallFailure> {
        let url = format!("{}/v3/projects/{project}/timeSeries", self.endpoint);
        let resp = match self.http.post(url).bearer_auth(token).timeout(self.timeout).json(body).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(CallFailure {
                    status: None,
                    retry_after: None,
                    message: format!("request failed: {}", crate::error::transport(&e)),
                    transport: Some(e),
                });
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry::retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        Err(CallFailure { status: Some(status.as_u16()), retry_after, message, transport: None })
    }

    /// Writes one call's points, retrying what can be retried within `backoff`. Every result
    /// goes into `out`; `Err` only when no access token could be had (no further call can be
    /// made then).
    pub(super) async fn write(
        &self,
        project: &str,
        points: Vec<&Point>,
        backoff: &mut Backoff,
        out: &mut Delivered,
    ) -> Result<(), SinkError> {
        let mut pending = points;
        loop {
            let token = match self.tokens.token(&[MONITORING_SCOPE]).await {
                Ok(t) => t,
                Err(e) => {
                    let e = SinkError::credentials(e);
                    out.fail(pending, e.clone());
                    return Err(e);
                }
            };
            out.calls += 1;
            let failure = match self.call(&token, project, &pending).await {
                Ok(()) => return Ok(()),
                Err(f) => f,
            };
            let (retry, decision) = self.sort_failure(&pending, &failure, out);
            if retry.is_empty() {
                return Ok(());
            }
            if !backoff.wait(decision).await {
                let mut e = SinkError::unavailable(format!(
                    "Cloud Monitoring still failing after {} calls in {:?}: {}{}",
                    out.calls,
                    backoff.elapsed(),
                    failure.status.map(|s| format!("HTTP {s}: ")).unwrap_or_default(),
                    failure.message
                ));
                if let Some(s) = failure.status {
                    e = e.with_status(s);
                }
                if let Some(t) = failure.transport {
                    e = e.with_source(t);
                }
                out.fail(retry, e);
                return Ok(());
            }
            pending = retry;
        }
    }

    /// Sorts the points of a failed call: rejected (into `out`), failed for good (into `out`),
    /// or to retry (returned, with the decision for the wait).
    fn sort_failure<'p>(
        &self,
        pending: &[&'p Point],
        failure: &CallFailure,
        out: &mut Delivered,
    ) -> (Vec<&'p Point>, RetryDecision) {
        let Some(status) = failure.status else {
            return (pending.to_vec(), retry::transport());
        };
        let whole = retry::cloud_monitoring(status, failure.retry_after);
        if matches!(status, 401 | 403) {
            out.fail(
                pending.iter().copied(),
                SinkError::unauthorized(
                    status,
                    format!("Cloud Monitoring refused the credentials (HTTP {status}): {}", failure.message),
                ),
            );
            return (Vec::new(), RetryDecision::NonRetryable);
        }
        let mut retry = Vec::new();
        let mut decision = whole;
        let mut claimed = vec![false; pending.len()];
        for group in failed_groups(&failure.message, pending.len()) {
            let indices: Vec<usize> = match group.indices {
                Some(ix) => ix,
                None => (0..pending.len()).collect(),
            };
            // a series named by two groups is treated as the first says
            let points: Vec<&Point> = indices
                .into_iter()
                .filter(|&i| !std::mem::replace(&mut claimed[i], true))
                .map(|i| pending[i])
                .collect();
            if points.is_empty() {
                continue;
            }
            match classify::classify_reason(&group.reason) {
                Reason::Rejected(r) => out.rejected.extend(points.iter().map(|p| (p.name.clone(), r))),
                Reason::Retry => {
                    if !whole.is_retryable() {
                        decision = RetryDecision::Retryable;
                    }
                    retry.extend(points);
                }
                Reason::Unknown if whole.is_retryable() => retry.extend(points),
                Reason::Unknown => out.fail(
                    points.iter().copied(),
                    SinkError::refused(format!(
                        "Cloud Monitoring refused {} (HTTP {status}): {}",
                        names(&points),
                        group.reason
                    ))
                    .with_status(status),
                ),
            }
        }
        (retry, decision)
    }
}
