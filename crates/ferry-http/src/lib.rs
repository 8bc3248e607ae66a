//! What ferry's two HTTP servers (`ferry server`, `ferry serve`) share, with
//! no wire shapes of its own: each server renders its errors (including the
//! 408 of a body that arrives too slowly) in its own protocol's shape.
//!
//! - [`serve`]: the connection layer both routers run on (a cap on open
//!   connections, a deadline for headers, a minimum rate for bodies,
//!   graceful shutdown).
//! - [`shutdown_signal`]: Ctrl-C or SIGTERM, then the servers finish their
//!   in-flight requests.
//! - [`BodyBudget`]: the request bodies a server holds at once.
//! - [`guard`]: one guard in front of every route, free while off.

mod conn;
pub mod guard;
pub use conn::{ConnLimits, DEFAULT_MAX_CONNECTIONS, Peer, TooSlow, serve};

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What to try when an address cannot be bound.
pub fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another process listens there; pick another port with --port (0 takes any free one)"
        }
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges; pick a port above 1024 with --port"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "this machine has no such address; --host takes one of its own (127.0.0.1 by default)"
        }
        _ => "check --host and --port",
    }
}

/// Completes on Ctrl-C or SIGTERM. If SIGTERM cannot be watched, only
/// Ctrl-C ends it (never at once).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The request bodies a server holds at once, counted in KiB. A request
/// takes its body's share (its declared length, or the largest body allowed
/// when it declares none) before its body is read and gives it back when its
/// answer is ready, so the memory that reading and parsing take (a JSON
/// body becomes several times its size as values) is bounded for the whole
/// server however many clients send at once. Small requests take 1 KiB
/// each; a request that cannot get its share within `wait` is refused (the
/// server answers 503 with `Retry-After`).
#[derive(Clone)]
pub struct BodyBudget {
    sem: Arc<Semaphore>,
    kib: u32,
    wait: Duration,
}

/// A request's share did not fit in its [`BodyBudget`] within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Request bodies held at once, by default: 64 MiB.
pub const DEFAULT_BODY_BUDGET: usize = 64 << 20;

impl BodyBudget {
    /// A budget of `bytes` (at least 1 KiB); requests wait up to `wait`.
    pub fn new(bytes: usize, wait: Duration) -> Self {
        let max = u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX);
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(max)
            .clamp(1, max);
        Self {
            sem: Arc::new(Semaphore::new(kib as usize)),
            kib,
            wait,
        }
    }

    /// The request's share, held until the returned permit is dropped;
    /// `None` when it did not fit within the wait. `declared` is the body's
    /// declared length; `max_body` the largest body the route takes (a
    /// larger one is refused when read, so it never needs more).
    pub async fn hold(
        &self,
        declared: Option<usize>,
        max_body: usize,
    ) -> Option<OwnedSemaphorePermit> {
        let want = declared.unwrap_or(max_body).min(max_body);
        let kib = u32::try_from(want.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.kib);
        // Most requests find room at once: no timer for them.
        if let Ok(held) = self.sem.clone().try_acquire_many_owned(kib) {
            return Some(held);
        }
        tokio::time::timeout(self.wait, self.sem.clone().acquire_many_owned(kib))
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// [`BodyBudget::hold`] for a request as it arrives: `method` and its
    /// `Content-Length` header as text. Requests that carry no body (GET,
    /// HEAD, OPTIONS) hold nothing: `Ok(None)`. `Err(Full)` when its share
    /// did not fit within the wait.
    pub async fn admit(
        &self,
        method: &str,
        content_length: Option<&str>,
        max_body: usize,
    ) -> Result<Option<OwnedSemaphorePermit>, Full> {
        if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            return Ok(None);
        }
        let declared = content_length.and_then(|v| v.trim().parse::<usize>().ok());
        self.hold(declared, max_body).await.map(Some).ok_or(Full)
    }

    /// KiB held right now.
    pub fn in_use_kib(&self) -> u32 {
        self.kib
            .saturating_sub(u32::try_from(self.sem.available_permits()).unwrap_or(u32::MAX))
    }

    /// The whole budget, in MiB (for messages).
    pub fn total_mib(&self) -> u32 {
        self.kib / 1024
    }
}

impl Default for BodyBudget {
    fn default() -> Self {
        Self::new(DEFAULT_BODY_BUDGET, Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn shares_are_held_until_dropped_and_capped() {
        rt().block_on(async {
            let b = BodyBudget::new(10 * 1024, Duration::from_millis(50));
            // Declared lengths round up to KiB; none declared takes the most.
            let a = b.hold(Some(3000), 1 << 20).await.unwrap();
            assert_eq!(b.in_use_kib(), 3);
            let small = b.hold(Some(10), 1 << 20).await.unwrap();
            assert_eq!(b.in_use_kib(), 4);
            // 7 KiB do not fit beside 4: refused after the wait.
            let t = std::time::Instant::now();
            assert!(b.hold(Some(7 * 1024), 1 << 20).await.is_none());
            assert!(t.elapsed() >= Duration::from_millis(50));
            assert_eq!(b.in_use_kib(), 4);
            drop(a);
            drop(small);
            assert_eq!(b.in_use_kib(), 0);
            // No declared length: the route's largest body (here 4 KiB).
            let unknown = b.hold(None, 4096).await.unwrap();
            assert_eq!(b.in_use_kib(), 4);
            drop(unknown);
            // More than the whole budget: capped to it, so it can still run.
            let huge = b.hold(Some(usize::MAX), usize::MAX).await.unwrap();
            assert_eq!(b.in_use_kib(), 10);
            drop(huge);
        });
    }

    #[test]
    fn requests_are_admitted_by_method_and_declared_length() {
        rt().block_on(async {
            let b = BodyBudget::new(4 * 1024, Duration::from_millis(20));
            assert!(
                b.admit("GET", Some("999999"), 1 << 20)
                    .await
                    .unwrap()
                    .is_none()
            );
            let post = b.admit("POST", Some("2048"), 1 << 20).await.unwrap();
            assert_eq!(b.in_use_kib(), 2);
            // Unparsable length: the route's largest body (capped at the budget).
            assert_eq!(
                b.admit("DELETE", Some("x"), 1 << 20).await.err(),
                Some(Full)
            );
            drop(post);
            let unknown = b.admit("PUT", None, 3 * 1024).await.unwrap();
            assert_eq!(b.in_use_kib(), 3);
            drop(unknown);
        });
    }

    #[test]
    fn a_waiting_request_gets_its_share_when_one_is_given_back() {
        rt().block_on(async {
            let b = BodyBudget::new(4 * 1024, Duration::from_secs(5));
            let first = b.hold(Some(4 * 1024), 1 << 20).await.unwrap();
            let b2 = b.clone();
            let waiter = tokio::spawn(async move { b2.hold(Some(2048), 1 << 20).await.is_some() });
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(!waiter.is_finished());
            drop(first);
            assert!(waiter.await.unwrap());
        });
    }
}
