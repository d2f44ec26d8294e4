//! A startup look at the BigQuery emulator: one TCP connection, so that a configured but
//! stopped emulator is reported once, with its cause and its fix, instead of surfacing as a
//! transport error inside every event's log line.
//!
//! The process starts anyway: the emulator may be started after the function (the local loop
//! has two terminals and no order between them), events that need it fail as transient (503,
//! redelivered) until it answers, and lifecycle metrics need no BigQuery at all.

use std::time::Duration;

/// How long the connection may take (the emulator runs on this machine).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `host:port` of `BIGQUERY_EMULATOR_HOST` (which may be a URL: scheme and path dropped, the
/// scheme's port when none is given).
pub fn address(host: &str) -> String {
    let (rest, default_port) = match host.split_once("://") {
        Some((scheme, rest)) => (rest, if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 }),
        None => (host, 80),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let has_port = match authority.rsplit_once(':') {
        Some((h, p)) => {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']'))
        }
        None => false,
    };
    if has_port { authority.to_string() } else { format!("{authority}:{default_port}") }
}

/// Connects to the emulator at `host` once, within `limit`: `Err` says why not, in words
/// ("connection refused", "timed out after 1s", "cannot resolve …").
pub async fn emulator(host: &str, limit: Duration) -> Result<(), String> {
    let addr = address(host);
    match tokio::time::timeout(limit, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(format!("connection refused at {addr} (nothing listens there)"))
        }
        Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
        Err(_) => Err(format!("no answer from {addr} within {limit:?}")),
    }
}

/// Logs one structured warning when the emulator at `host` cannot be reached: the cause and
/// the fix. Nothing when it answers.
pub async fn warn_if_unreachable(host: &str) {
    if let Err(cause) = emulator(host, PROBE_TIMEOUT).await {
        tracing::warn!(
            bigquery_emulator_host = host,
            cause = %cause,
            fix = "start it with `make local-up` (or point BIGQUERY_EMULATOR_HOST at a running emulator)",
            "BigQuery emulator not reachable: events whose handlers query BigQuery will fail (503, retried) until it answers"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address("127.0.0.1:9050"), "127.0.0.1:9050");
        assert_eq!(address("http://localhost:9050/"), "localhost:9050");
        assert_eq!(address("https://bq.example"), "bq.example:443");
        assert_eq!(address("bq"), "bq:80");
        assert_eq!(address("[::1]:9050"), "[::1]:9050");
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_and_an_open_one_answers() {
        let cause = emulator("127.0.0.1:1", PROBE_TIMEOUT).await.unwrap_err();
        assert!(cause.starts_with("connection refused at 127.0.0.1:1"), "{cause}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().to_string();
        assert_eq!(emulator(&open, PROBE_TIMEOUT).await, Ok(()));
    }
}
