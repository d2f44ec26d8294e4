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
