//! Raw HTTP/1.1 over keep-alive connections for the load generators of the whole-process
//! benches (benches/whole_process.rs, benches/lifecycle_process.rs): requests are prebuilt bytes,
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
