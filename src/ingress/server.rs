//! The HTTP/1.1 server of the Router (Cloud Run, local; Lambda is driven by lambda_http):
//! hyper's connection driver, with a timer per connection and graceful shutdown.
//!
//! Every connection is in one of three phases, and its timer follows the phase:
//! * waiting for a request head — from the connection's start, or from the first byte of a
//!   later request — at most [`Connections::header_read`] (`HEADER_READ_TIMEOUT_SECS`): a client
//!   that sends nothing, or half a request line, is disconnected;
//! * in the handler: no connection timer; the handler reads the body within
//!   `BODY_READ_TIMEOUT_SECS` (408 past it) and the event has its own deadline;
//! * idle between requests — from the end of a response to the first byte of the next request —
//!   at most [`Connections::idle`] (`IDLE_TIMEOUT_SECS`, longer than the keep-alive of the front
//!   ends that reuse connections, so that they close first). A client that does not read its
//!   response is idle too.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a keep-alive connection is
//! idle, so that the idle time could not be longer than the header-read time.
//!
//! Accept errors (out of file descriptors) do not stop the server: it waits a moment and accepts
//! again, while the timers free the descriptors of connections that do nothing.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

pub use crate::config::Connections;

const WAITING_HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

/// What one connection is doing, shared by its reader, its service and its timer.
struct Phase {
    epoch: Instant,
    phase: AtomicU8,
    /// When the phase began, in milliseconds since `epoch`.
    since_ms: AtomicU64,
    /// Requests in the handler.
    busy: AtomicUsize,
    changed: Notify,
}

impl Phase {
    fn new() -> Phase {
        Phase {
            epoch: Instant::now(),
            phase: AtomicU8::new(WAITING_HEAD),
            since_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn enter(&self, phase: u8) {
        self.since_ms.store(self.now_ms(), Ordering::SeqCst);
        self.phase.store(phase, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Bytes arrived: on an idle connection, they start a request head.
    fn bytes_read(&self) {
        if self.phase.load(Ordering::SeqCst) == IDLE {
            self.enter(WAITING_HEAD);
        }
    }

    /// A request head was read: the request is in the handler.
    fn request_started(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.enter(BUSY);
    }

    fn request_finished(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.enter(IDLE);
        }
    }

    /// When the current phase runs out (`None`: no timer).
    fn deadline(&self, limits: &Connections) -> Option<Instant> {
        let limit = match self.phase.load(Ordering::SeqCst) {
            WAITING_HEAD => limits.header_read,
            IDLE => limits.idle,
            _ => return None,
        };
        Some(self.epoch + Duration::from_millis(self.since_ms.load(Ordering::SeqCst)) + limit)
    }
}

/// The TCP stream, telling its connection's [`Phase`] when bytes arrive.
struct Timed {
    stream: TcpStream,
    phase: Arc<Phase>,
}

impl AsyncRead for Timed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.phase.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Timed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The Router as hyper's service, marking its connection busy while a request is handled.
#[derive(Clone)]
struct Service {
    router: Router,
    phase: Arc<Phase>,
}

struct Busy(Arc<Phase>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.phase.request_started();
        let busy = Busy(self.phase.clone());
        // The Router is always ready (axum documents it), so it is called without poll_ready.
        let mut router = self.router.clone();
        let response = tower_service::Service::call(&mut router, req);
        Box::pin(async move {
            let r = response.await;
            drop(busy);
            r
        })
    }
}

/// Serves one connection until it closes, its timer runs out, or shutdown completes it.
async fn connection(stream: TcpStream, router: Router, limits: Connections, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let phase = Arc::new(Phase::new());
    let io = TokioIo::new(Timed { stream, phase: phase.clone() });
    let service = Service { router, phase: phase.clone() };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = phase.deadline(&limits);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = phase.changed.notified() => {}
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                if phase.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    // dropping the connection closes the socket
                    tracing::debug!(phase = phase.phase.load(Ordering::SeqCst), "connection timed out: closed");
                    return;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets every
/// connection finish its request in progress (idle ones close at once) and returns when all are
/// closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Connections,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, router.clone(), limits, stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted: keep
                    // serving. Logged at most every 10 s.
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(error = %e, connections = connections.len(), "cannot accept connections");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_follows_the_phase() {
        let limits = Connections { header_read: Duration::from_secs(10), idle: Duration::from_secs(600) };
        let p = Phase::new();
        let start = p.epoch;
        assert_eq!(p.deadline(&limits), Some(start + Duration::from_secs(10)), "a new connection waits for a head");
        p.request_started();
        assert_eq!(p.deadline(&limits), None, "no timer while handled");
        p.request_finished();
        let idle = p.deadline(&limits).unwrap();
        assert!(idle >= start + Duration::from_secs(600), "idle: {:?}", idle - start);
        p.bytes_read();
        let head = p.deadline(&limits).unwrap();
        assert!(head < start + Duration::from_secs(11), "a head started: {:?}", head - start);
        // bytes read while a request is handled (its body) do not start a head
        p.request_started();
        p.bytes_read();
        assert_eq!(p.deadline(&limits), None);
    }
}
