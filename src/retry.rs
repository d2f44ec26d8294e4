//! One retry classifier and one backoff policy for every remote call the function makes.
//!
//! * **Classifier.** A failed call is [`RetryDecision::Retryable`], [`RetryDecision::NonRetryable`]
//!   or [`RetryDecision::Throttled`] (retryable, but not before the server's `Retry-After`). Each
//!   protocol has one pure function from its HTTP status (plus what else it reads: BigQuery's
//!   `errors[0].reason`, the OAuth `error` code) and the parsed `Retry-After` to a decision:
//!   [`otlp`], [`cloud_monitoring`], [`bigquery`], [`oauth_token`]. Their deliberate differences
//!   are stated on each, with sources; what they share: 401 and 403 are never retried (the same
//!   credentials get the same answer), and a call that got no answer at all ([`transport`]) is
//!   retried. Modelled on opentelemetry-otlp's `classify_http_error` (style.md §2.5).
//! * **`Retry-After`** ([`parse_retry_after`]): delay-seconds or an HTTP-date (RFC 9110
//!   §10.2.3). A throttled retry waits exactly that long, never less; if that would pass the
//!   deadline, the call is not retried.
//! * **Backoff** ([`Policy`]): exponential with jitter from `backon`'s `ExponentialBuilder`
//!   (first delay, doubling, capped), bounded by a wall-clock deadline: no retry starts once its
//!   wait would end past the deadline. [`Policy::retry`] retries a whole operation through
//!   `backon::Retryable`; [`Backoff`] gives the same delays to loops that retry only part of
//!   what they sent (the Cloud Monitoring sink retries the failed series of a call).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};

/// What to do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// A retry may succeed: retry after the policy's next backoff.
    Retryable,
    /// A retry of the same call cannot succeed.
    NonRetryable,
    /// Retryable, but not before this delay (the server's `Retry-After`).
    Throttled(Duration),
}

impl RetryDecision {
    /// Whether the call may be made again (`Retryable` or `Throttled`).
    pub fn is_retryable(self) -> bool {
        !matches!(self, RetryDecision::NonRetryable)
    }
}

/// `Retryable`, or `Throttled` when the server named a delay.
fn retry_with(retry_after: Option<Duration>) -> RetryDecision {
    match retry_after {
        Some(d) => RetryDecision::Throttled(d),
        None => RetryDecision::Retryable,
    }
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): `delay-seconds` (`"120"`) or an HTTP-date
/// (`"Fri, 31 Dec 1999 23:59:59 GMT"`, and the obsolete forms `httpdate` accepts). A date in the
/// past is a zero delay. `None` when the value is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response, read now (see [`parse_retry_after`]).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// A call that got no HTTP answer (connection refused or reset, timeout): the server may never
/// have seen it, and every protocol here allows the retry (OTLP spec, "a disconnect with no
/// response": `open-telemetry/opentelemetry-proto@ac2c4b5:docs/specification.md` L684–686).
pub fn transport() -> RetryDecision {
    RetryDecision::Retryable
}

/// OTLP/HTTP (`open-telemetry/opentelemetry-proto@ac2c4b5:docs/specification.md`, "Failures"
/// L638–649 and "Throttling" L663–677): **only 429, 502, 503 and 504** are retryable; "all
/// other 4xx or 5xx response status codes MUST NOT be retried" (so 408 and 500 are not, unlike
/// for Google APIs). 429 and 503 may carry `Retry-After`, which is honoured; without it,
/// exponential backoff.
pub fn otlp(status: u16, retry_after: Option<Duration>) -> RetryDecision {
    match status {
        429 | 502 | 503 | 504 => retry_with(retry_after),
        _ => RetryDecision::NonRetryable,
    }
}

/// Cloud Monitoring `projects.timeSeries.create` as a whole call (the series of a partial
/// failure are classified by their reason texts in `sink::gcm`): 408, 429
/// (`RESOURCE_EXHAUSTED`, a quota), 500 (`INTERNAL`: "Internal error encountered. Please retry
/// after a few seconds", GoogleCloudPlatform/kubernetes-engine-samples#1084), 502, 503
/// (`UNAVAILABLE`) and 504 (`DEADLINE_EXCEEDED`) are retryable, as Google's API design guide
/// says for those codes (https://google.aip.dev/194). Everything else is not, **401 and 403
/// included**: `Permission monitoring.timeSeries.create denied (or the resource may not exist).`
/// stays so until IAM changes (dynatrace-oss/dynatrace-gcp-monitor#25), and an unaccepted
/// token stays unaccepted. Whether Monitoring sends `Retry-After` is not documented; it is
/// honoured when present.
pub fn cloud_monitoring(status: u16, retry_after: Option<Duration>) -> RetryDecision {
    match status {
        408 | 429 | 500 | 502 | 503 | 504 => retry_with(retry_after),
        _ => RetryDecision::NonRetryable,
    }
}

/// The BigQuery reasons a retry can fix, as Google's own client retries them
/// (`googleapis/python-bigquery@0138de5:google/cloud/bigquery/retry.py` `_RETRYABLE_REASONS`
/// and `job_retry_reasons`), plus `timeout` (a query job that ran out of time; re-running it is
/// a new job).
pub const BIGQUERY_RETRYABLE_REASONS: [&str; 8] = [
    "rateLimitExceeded",
    "backendError",
    "internalError",
    "badGateway",
    "jobRateLimitExceeded",
    "jobBackendError",
    "jobInternalError",
    "timeout",
];

/// BigQuery REST v2. The error's `errors[0].reason` decides when there is one, as in
/// python-bigquery's `_should_retry`: `rateLimitExceeded` ("a short-term limit … retry after a
/// few seconds"), `backendError`, `internalError`, `badGateway` and the `job*` variants are
/// retryable; **`quotaExceeded` is not** ("a longer-term limit … wait 10 minutes or longer",
/// https://cloud.google.com/bigquery/docs/troubleshoot-quotas), nor is any other reason
/// (`notFound`, `invalidQuery`, `accessDenied`, …) whatever its status. Without a reason, the
/// status decides: 408, 429, 500, 502, 503, 504 are retryable ("If you receive a 5xx response
/// code, then retry the request later", https://cloud.google.com/bigquery/docs/error-messages;
/// `backendError` comes as 500, 503 or 504). 401 and 403 are not.
pub fn bigquery(status: Option<u16>, reason: Option<&str>, retry_after: Option<Duration>) -> RetryDecision {
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        return if BIGQUERY_RETRYABLE_REASONS.contains(&reason) {
            retry_with(retry_after)
        } else {
            RetryDecision::NonRetryable
        };
    }
    match status {
        Some(408 | 429 | 500 | 502 | 503 | 504) => retry_with(retry_after),
        Some(_) => RetryDecision::NonRetryable,
        // no answer at all (see [`transport`])
        None => retry_with(retry_after),
    }
}

/// Google's OAuth 2.0 token endpoint (`POST https://oauth2.googleapis.com/token`, JWT-bearer
/// grant). Its refusals are 400 (`invalid_grant`: "Invalid JWT Signature.", the clock-skew
/// "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable
/// timeframe…") and 401 (`invalid_client`, `unauthorized_client`), RFC 6749 §5.2; none can be
/// fixed by asking again with the same key and clock, whatever the `error` code. 408, 429 and
/// 5xx (500, 502, 503, 504) are retryable. Sources: tests/common/fakes/SOURCES.md §3.1
/// (google-cloud-python#10004, spring-cloud-gcp#2634, hlavki/g-suite-identity-sync#7).
pub fn oauth_token(status: u16, _error: Option<&str>, retry_after: Option<Duration>) -> RetryDecision {
    match status {
        408 | 429 | 500 | 502 | 503 | 504 => retry_with(retry_after),
        _ => RetryDecision::NonRetryable,
    }
}

/// Exponential backoff with jitter and a deadline, shared by every remote call.
///
/// The n-th retry waits `first_backoff · 2ⁿ` (capped at `max_backoff`) plus a random jitter of
/// up to the same amount (`backon`'s `ExponentialBuilder::with_jitter`), or exactly the server's
/// `Retry-After` for a [`RetryDecision::Throttled`] failure. No retry starts whose wait would end
/// more than `deadline` after the first attempt started; the last failure is returned then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Wait before the first retry (before jitter).
    pub first_backoff: Duration,
    /// Longest wait between two attempts (before jitter).
    pub max_backoff: Duration,
    /// No retry starts later than this after the first attempt.
    pub deadline: Duration,
}

impl Default for Policy {
    /// 200 ms doubling to 5 s, within 20 s (the metric sinks' default `SINK_DEADLINE_SECS`).
    fn default() -> Self {
        Policy {
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(20),
        }
    }
}

impl Policy {
    fn steps(&self) -> ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(self.first_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The backoff of one operation whose first attempt starts now.
    pub fn start(&self) -> Backoff {
        self.start_at(Instant::now())
    }

    /// The backoff of one operation whose first attempt started at `started` (several calls that
    /// share one deadline, e.g. the calls of one event).
    pub fn start_at(&self, started: Instant) -> Backoff {
        Backoff { steps: self.steps(), started, deadline: self.deadline }
    }

    /// Runs `op` until it succeeds, `decide` calls its error non-retryable, or the deadline
    /// would pass; returns its last result. Built on `backon::Retryable` (`when` + `adjust`).
    pub async fn retry<T, E, Fut, F, D>(self, op: F, decide: D) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        D: Fn(&E) -> RetryDecision,
    {
        let started = Instant::now();
        let deadline = self.deadline;
        op.retry(self.steps())
            .when(|e| decide(e).is_retryable())
            .adjust(|e, step| within(started, deadline, decide(e), step))
            .await
    }
}

/// The wait before the next attempt: the server's delay when throttled, else the backoff step;
/// `None` when the call must not be retried or the wait would end past the deadline.
fn within(started: Instant, deadline: Duration, decision: RetryDecision, step: Option<Duration>) -> Option<Duration> {
    let wait = match decision {
        RetryDecision::NonRetryable => return None,
        RetryDecision::Retryable => step?,
        RetryDecision::Throttled(d) => d,
    };
    (started.elapsed() + wait <= deadline).then_some(wait)
}

/// The backoff state of one operation (see [`Policy`]).
#[derive(Debug)]
pub struct Backoff {
    steps: ExponentialBackoff,
    started: Instant,
    deadline: Duration,
}

impl Backoff {
    /// The wait before retrying after a failure classified `decision`, or `None`: do not retry
    /// (not retryable, or the wait would end past the deadline).
    pub fn next_delay(&mut self, decision: RetryDecision) -> Option<Duration> {
        let step = match decision {
            RetryDecision::NonRetryable => return None,
            // a throttled attempt still advances the exponential sequence
            RetryDecision::Retryable | RetryDecision::Throttled(_) => self.steps.next(),
        };
        within(self.started, self.deadline, decision, step)
    }

    /// Sleeps before the next attempt; `false` (at once) when there must be none.
    pub async fn wait(&mut self, decision: RetryDecision) -> bool {
        match self.next_delay(decision) {
            Some(d) => {
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }

    /// Time since the first attempt started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests;
