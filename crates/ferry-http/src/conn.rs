//! The connection layer both servers run their routers on: an accept loop
//! that holds at most [`ConnLimits::max_connections`] connections (beyond
//! it, new ones wait in the kernel's backlog, costing the server nothing),
//! a deadline for a request's headers, a minimum rate for its body, and a
//! graceful shutdown that lets requests in flight finish.
//!
//! A client that declares a large body and trickles it would otherwise hold
//! its share of the [`crate::BodyBudget`] (and a connection) for as long as
//! it likes; here its body fails once it is too slow, the server answers
//! with the router's own 408 (see [`serve`]) and closes the connection, and
//! the share comes back. Honest uploads of any size pass: only the time the
//! server spends *waiting for the client* counts, not the time a handler
//! spends writing what it got.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// What one server allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections held open at once.
    pub max_connections: usize,
    /// The longest a client may take to send a request's headers (and the
    /// longest an idle keep-alive connection is kept waiting for one).
    pub header_timeout: Duration,
    /// The slowest a body may arrive, in bytes a second, averaged over the
    /// time spent waiting for it once that passes [`ConnLimits::body_grace`].
    pub min_body_rate: u64,
    /// Waiting a body may take before its rate is judged.
    pub body_grace: Duration,
    /// The longest wait for a body's next bytes.
    pub body_idle: Duration,
}

/// Connections held at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
            min_body_rate: 16 << 10,
            body_grace: Duration::from_secs(5),
            body_idle: Duration::from_secs(10),
        }
    }
}

/// The body of a request that arrived too slowly (the error a handler sees).
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
pub struct TooSlow;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body that fails once its client is too slow (see the module
/// documentation); `tripped` tells the serving loop to answer 408.
struct SlowGuard {
    inner: Incoming,
    limits: ConnLimits,
    got: u64,
    /// Time spent waiting for the client, up to the current wait.
    waited: Duration,
    /// When the current wait began (the body was polled and had nothing).
    waiting_since: Option<Instant>,
    check: Option<Pin<Box<tokio::time::Sleep>>>,
    tripped: Arc<AtomicBool>,
}

impl SlowGuard {
    /// Whether the client is too slow, counting the current wait.
    fn too_slow(&self, now: Instant) -> bool {
        let current = self.waiting_since.map_or(Duration::ZERO, |t| now - t);
        if current >= self.limits.body_idle {
            return true;
        }
        let waited = self.waited + current;
        waited > self.limits.body_grace
            && (self.got as f64) < self.limits.min_body_rate as f64 * waited.as_secs_f64()
    }
}

impl Body for SlowGuard {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(t) = this.waiting_since.take() {
                    this.waited += t.elapsed();
                }
                if let Some(Ok(f)) = &frame
                    && let Some(d) = f.data_ref()
                {
                    this.got += d.len() as u64;
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let now = Instant::now();
                this.waiting_since.get_or_insert(now);
                if this.too_slow(now) {
                    this.tripped.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(Box::new(TooSlow))));
                }
                // Judged again in a second if the client is still silent
                // (the timer wakes this task; a fresh one is a second away,
                // so polling it only registers the wake-up).
                let at = tokio::time::Instant::from_std(now + Duration::from_secs(1));
                let sleep = this
                    .check
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                sleep.as_mut().reset(at);
                let _ = sleep.as_mut().poll(cx);
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The address a request's connection came from, in its extensions (for
/// the audit log and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// Serves `app` on `listener` within `limits` until `shutdown` completes,
/// then lets the requests in flight finish. A request whose body arrived
/// too slowly is answered with `too_slow()` (each server renders its own
/// 408) and its connection closed.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnLimits,
    too_slow: fn() -> axum::response::Response,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the limit, connections wait in the backlog.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((s, peer)) => (s, Peer(peer)),
                Err(e) => {
                    // Out of file descriptors or a connection reset before
                    // it was accepted: not the server's end.
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        // One flag per connection: HTTP/1 answers its requests one at a
        // time, so each request starts with it down.
        let tripped = Arc::new(AtomicBool::new(false));
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            tripped.store(false, Ordering::Relaxed);
            let tripped = tripped.clone();
            let mut req = req.map(|inner| {
                axum::body::Body::new(SlowGuard {
                    inner,
                    limits,
                    got: 0,
                    waited: Duration::ZERO,
                    waiting_since: None,
                    check: None,
                    tripped: tripped.clone(),
                })
            });
            req.extensions_mut().insert(peer);
            let app = app.clone();
            async move {
                let resp = match app.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                if tripped.load(Ordering::Relaxed) {
                    let mut r = too_slow();
                    r.headers_mut().insert(
                        hyper::header::CONNECTION,
                        hyper::header::HeaderValue::from_static("close"),
                    );
                    return Ok::<_, std::convert::Infallible>(r);
                }
                Ok(resp)
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
