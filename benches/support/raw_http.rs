//! The load generator of the whole-process benches (benches/whole_process.rs,
//! benches/lifecycle_process.rs) and the raw HTTP/1.1 it speaks over keep-alive connections,
//! with the server's memory read from /proc: requests are prebuilt bytes,
//! responses parsed just enough to know their status and end (Content-Length or chunked), so
//! that the client costs as little CPU as possible on the cores it shares with the server.

use std::io::{Read, Write};
use std::net::TcpStream as StdStream;

/// The first position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A complete response at the start of `buf`: (status, its length in bytes).
pub fn parse_response(buf: &[u8]) -> std::io::Result<Option<(u16, usize)>> {
    let Some(end) = find(buf, b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buf[..end]).map_err(std::io::Error::other)?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let body_start = end + 4;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        return Ok(find(&buf[body_start..], b"0\r\n\r\n").map(|p| (status, body_start + p + 5)));
    }
    let total = body_start + length.unwrap_or(0);
    Ok((buf.len() >= total).then_some((status, total)))
}

/// One request and its response on a blocking keep-alive connection: (status, length of the
/// response at the start of `buf`).
pub fn roundtrip_sync(stream: &mut StdStream, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<(u16, usize)> {
    stream.write_all(req)?;
    buf.clear();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(answer) = parse_response(buf)? {
            return Ok(answer);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The body of the response of `len` bytes at the start of `buf`, as text (used by one bench of
/// the two that include this file).
#[allow(dead_code)]
pub fn body(buf: &[u8], len: usize) -> String {
    let at = find(buf, b"\r\n\r\n").map_or(len, |p| p + 4);
    String::from_utf8_lossy(&buf[at..len]).into_owned()
}

/// One request and its response on a non-blocking keep-alive connection.
pub async fn roundtrip(stream: &tokio::net::TcpStream, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<u16> {
    use std::io::ErrorKind::WouldBlock;
    let mut sent = 0;
    while sent < req.len() {
        stream.writable().await?;
        match stream.try_write(&req[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    buf.clear();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some((status, _)) = parse_response(buf)? {
            return Ok(status);
        }
        stream.readable().await?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends `total` requests (fewer if `limit` passes first) over `concurrency` keep-alive
/// connections from one thread; every latency is kept. Each connection gets its own clone of
/// `state`, and `next` gives the bytes of its next request (renewing its identity as it likes).
///
/// Returns `{concurrency, requested, events, errors, statuses, seconds, events_per_s, p50_us,
/// p90_us, p99_us, max_us, mean_us, time_limited}` (latencies in µs) and prints one line.
pub fn load<S: Clone + Send + 'static>(
    port: u16,
    state: &S,
    next: fn(&mut S) -> &[u8],
    concurrency: usize,
    total: usize,
    limit: std::time::Duration,
) -> serde_json::Value {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let per_client = rt.block_on(async {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (mut state, sent) = (state.clone(), sent.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(total / concurrency + 1);
                    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                    let mut errors = 0usize;
                    let mut buf = Vec::with_capacity(4096);
                    let mut conn: Option<tokio::net::TcpStream> = None;
                    while sent.fetch_add(1, Ordering::Relaxed) < total && started.elapsed() < limit {
                        if conn.is_none() {
                            match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                                Ok(s) => {
                                    let _ = s.set_nodelay(true);
                                    conn = Some(s);
                                }
                                Err(_) => {
                                    errors += 1;
                                    continue;
                                }
                            }
                        }
                        let req = next(&mut state);
                        let t0 = Instant::now();
                        match roundtrip(conn.as_ref().unwrap(), req, &mut buf).await {
                            Ok(status) => {
                                lat.push(t0.elapsed().as_secs_f64() * 1e6);
                                *statuses.entry(status).or_default() += 1;
                            }
                            Err(_) => {
                                errors += 1;
                                conn = None;
                            }
                        }
                    }
                    (lat, statuses, errors)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.expect("client task"));
        }
        all
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = Vec::new();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = 0;
    for (l, s, e) in per_client {
        lat.extend(l);
        for (k, v) in s {
            *statuses.entry(k.to_string()).or_default() += v;
        }
        errors += e;
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if lat.is_empty() { 0.0 } else { lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1] }
    };
    let done = lat.len();
    let r = serde_json::json!({
        "concurrency": concurrency,
        "requested": total,
        "events": done,
        "errors": errors,
        "statuses": statuses,
        "seconds": seconds,
        "events_per_s": done as f64 / seconds,
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "max_us": lat.last().copied().unwrap_or(0.0),
        "mean_us": if done == 0 { 0.0 } else { lat.iter().sum::<f64>() / done as f64 },
        "time_limited": done + errors < total,
    });
    eprintln!(
        "   c={concurrency}: {done} events in {seconds:.2} s = {:.0}/s, p50 {:.0} us, p99 {:.0} us, statuses {}",
        r["events_per_s"].as_f64().unwrap(),
        r["p50_us"].as_f64().unwrap(),
        r["p99_us"].as_f64().unwrap(),
        r["statuses"]
    );
    r
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB: `{rss_kib, hwm_kib}`.
pub fn memory_of(pid: u32) -> serde_json::Value {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    serde_json::json!({"rss_kib": field("VmRSS:"), "hwm_kib": field("VmHWM:")})
}
