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
mod tests {
    use super::*;
    use RetryDecision::{NonRetryable, Retryable, Throttled};

    const SECS_7: Option<Duration> = Some(Duration::from_secs(7));

    /// (status, Retry-After) -> decision, per status family.
    fn check(name: &str, f: impl Fn(u16, Option<Duration>) -> RetryDecision, table: &[(u16, RetryDecision)]) {
        for &(status, want) in table {
            let got = f(status, None);
            assert_eq!(got, want, "{name}: HTTP {status}");
            // Retry-After turns a retryable status into a throttled one, and changes nothing else
            let throttled = f(status, SECS_7);
            let want = if want.is_retryable() { Throttled(Duration::from_secs(7)) } else { NonRetryable };
            assert_eq!(throttled, want, "{name}: HTTP {status} with Retry-After: 7");
        }
    }

    #[test]
    fn otlp_table() {
        check(
            "otlp",
            otlp,
            &[
                (400, NonRetryable),
                (401, NonRetryable),
                (403, NonRetryable),
                (404, NonRetryable),
                (408, NonRetryable),
                (413, NonRetryable),
                (415, NonRetryable),
                (429, Retryable),
                (500, NonRetryable),
                (501, NonRetryable),
                (502, Retryable),
                (503, Retryable),
                (504, Retryable),
            ],
        );
    }

    #[test]
    fn cloud_monitoring_table() {
        check(
            "cloud_monitoring",
            cloud_monitoring,
            &[
                (400, NonRetryable),
                (401, NonRetryable),
                (403, NonRetryable),
                (404, NonRetryable),
                (408, Retryable),
                (409, NonRetryable),
                (429, Retryable),
                (500, Retryable),
                (501, NonRetryable),
                (502, Retryable),
                (503, Retryable),
                (504, Retryable),
            ],
        );
    }

    #[test]
    fn oauth_token_table() {
        check(
            "oauth_token",
            |s, ra| oauth_token(s, Some("invalid_grant"), ra),
            &[
                (400, NonRetryable),
                (401, NonRetryable),
                (403, NonRetryable),
                (404, NonRetryable),
                (408, Retryable),
                (429, Retryable),
                (500, Retryable),
                (502, Retryable),
                (503, Retryable),
                (504, Retryable),
            ],
        );
    }

    #[test]
    fn bigquery_table() {
        // (status, errors[0].reason, decision)
        let table: &[(Option<u16>, Option<&str>, RetryDecision)] = &[
            (Some(403), Some("rateLimitExceeded"), Retryable),
            (Some(403), Some("quotaExceeded"), NonRetryable),
            (Some(500), Some("backendError"), Retryable),
            (Some(503), Some("backendError"), Retryable),
            (Some(504), Some("backendError"), Retryable),
            (Some(500), Some("internalError"), Retryable),
            (Some(502), Some("badGateway"), Retryable),
            (Some(200), Some("jobRateLimitExceeded"), Retryable),
            (Some(200), Some("jobBackendError"), Retryable),
            (Some(200), Some("jobInternalError"), Retryable),
            (Some(200), Some("timeout"), Retryable),
            (Some(400), Some("invalidQuery"), NonRetryable),
            (Some(404), Some("notFound"), NonRetryable),
            (Some(403), Some("accessDenied"), NonRetryable),
            (Some(403), Some("billingNotEnabled"), NonRetryable),
            (Some(409), Some("duplicate"), NonRetryable),
            // a reason wins over the status, as in python-bigquery
            (Some(500), Some("invalidQuery"), NonRetryable),
            // no reason: the status decides
            (Some(401), None, NonRetryable),
            (Some(403), None, NonRetryable),
            (Some(404), None, NonRetryable),
            (Some(408), None, Retryable),
            (Some(429), None, Retryable),
            (Some(500), None, Retryable),
            (Some(502), None, Retryable),
            (Some(503), Some(""), Retryable),
            (Some(504), None, Retryable),
            (Some(501), None, NonRetryable),
            // no answer at all
            (None, None, Retryable),
        ];
        for &(status, reason, want) in table {
            assert_eq!(bigquery(status, reason, None), want, "{status:?} {reason:?}");
            let throttled = if want.is_retryable() { Throttled(Duration::from_secs(7)) } else { NonRetryable };
            assert_eq!(bigquery(status, reason, SECS_7), throttled, "{status:?} {reason:?} with Retry-After");
        }
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let table: &[(&str, Option<Duration>)] = &[
            ("0", Some(Duration::ZERO)),
            ("120", Some(Duration::from_secs(120))),
            (" 3 ", Some(Duration::from_secs(3))),
            ("Sun, 06 Nov 1994 08:50:07 GMT", Some(Duration::from_secs(30))),
            // obsolete forms (RFC 850, asctime) are still HTTP-dates
            ("Sunday, 06-Nov-94 08:50:37 GMT", Some(Duration::from_secs(60))),
            ("Sun Nov  6 08:49:47 1994", Some(Duration::from_secs(10))),
            // a date in the past: retry now
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ];
        for &(value, want) in table {
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "42".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(42)));
    }

    #[test]
    fn backoff_grows_honours_retry_after_and_stops_at_the_deadline() {
        let policy = Policy {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            deadline: Duration::from_secs(60),
        };
        let mut b = policy.start();
        let waits: Vec<Duration> = (0..5).map(|_| b.next_delay(Retryable).unwrap()).collect();
        // base 100, 200, 400, 400, 400 ms, each plus a jitter below the base
        for (w, base) in waits.iter().zip([100u64, 200, 400, 400, 400]) {
            let base = Duration::from_millis(base);
            assert!(*w >= base && *w <= base * 2, "{waits:?}");
        }
        assert_eq!(b.next_delay(Throttled(Duration::from_secs(3))), Some(Duration::from_secs(3)));
        assert_eq!(b.next_delay(NonRetryable), None);
        // a Retry-After past the deadline: no retry at all
        assert_eq!(b.next_delay(Throttled(Duration::from_secs(61))), None);
        // a deadline already passed: no retry
        let mut late = Policy { deadline: Duration::ZERO, ..policy }.start();
        assert_eq!(late.next_delay(Retryable), None);
    }

    #[tokio::test]
    async fn retry_runs_until_success_a_final_error_or_the_deadline() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let policy = Policy {
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            deadline: Duration::from_millis(300),
        };
        // fails twice (retryable), then succeeds
        let n = AtomicUsize::new(0);
        let r: Result<usize, u16> = policy
            .retry(
                || async {
                    let i = n.fetch_add(1, SeqCst);
                    if i < 2 { Err(503) } else { Ok(i) }
                },
                |s| cloud_monitoring(*s, None),
            )
            .await;
        assert_eq!(r, Ok(2));
        // a non-retryable error: one attempt
        let n = AtomicUsize::new(0);
        let r: Result<(), u16> = policy
            .retry(
                || async {
                    n.fetch_add(1, SeqCst);
                    Err(403)
                },
                |s| cloud_monitoring(*s, None),
            )
            .await;
        assert_eq!((r, n.load(SeqCst)), (Err(403), 1));
        // always retryable: stops near the deadline with the last error
        let t0 = Instant::now();
        let n = AtomicUsize::new(0);
        let r: Result<(), u16> = policy
            .retry(
                || async {
                    n.fetch_add(1, SeqCst);
                    Err(503)
                },
                |s| cloud_monitoring(*s, None),
            )
            .await;
        assert_eq!(r, Err(503));
        assert!(n.load(SeqCst) > 3, "{} attempts", n.load(SeqCst));
        assert!(t0.elapsed() < Duration::from_millis(600), "{:?}", t0.elapsed());
        // a Retry-After longer than the deadline: no retry
        let n = AtomicUsize::new(0);
        let r: Result<(), u16> = policy
            .retry(
                || async {
                    n.fetch_add(1, SeqCst);
                    Err(429)
                },
                |s| cloud_monitoring(*s, Some(Duration::from_secs(30))),
            )
            .await;
        assert_eq!((r, n.load(SeqCst)), (Err(429), 1));
    }
}
