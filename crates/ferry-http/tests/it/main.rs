//! The connection layer under misbehaving clients, over real sockets: a
//! body trickled byte by byte, headers never finished, more connections
//! than allowed; meanwhile an honest client's requests keep their latency,
//! and an honest large upload at a normal pace passes.

#![allow(clippy::unwrap_used)]

use axum::routing::{get, post};
use ferry_http::{BodyBudget, ConnLimits};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn limits() -> ConnLimits {
    ConnLimits {
        max_connections: 32,
        header_timeout: Duration::from_millis(800),
        min_body_rate: 16 << 10,
        body_grace: Duration::from_millis(800),
        body_idle: Duration::from_secs(2),
    }
}

fn too_slow() -> axum::response::Response {
    use axum::response::IntoResponse;
    (axum::http::StatusCode::REQUEST_TIMEOUT, "too slow").into_response()
}

/// A server whose POST route holds a share of a 64 MiB budget while it
/// reads the body, as both of ferry's servers do.
fn start(limits: ConnLimits) -> (SocketAddr, BodyBudget) {
    let budget = BodyBudget::new(64 << 20, Duration::from_millis(300));
    let b = budget.clone();
    let app = axum::Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/upload",
            post(move |req: axum::extract::Request| {
                let b = b.clone();
                async move {
                    let len = req
                        .headers()
                        .get("content-length")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let Ok(_share) = b.admit("POST", len.as_deref(), 32 << 20).await else {
                        return (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "full".to_owned(),
                        );
                    };
                    match axum::body::to_bytes(req.into_body(), 64 << 20).await {
                        Ok(bytes) => (axum::http::StatusCode::OK, bytes.len().to_string()),
                        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()),
                    }
                }
            }),
        );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            ferry_http::serve(l, app, limits, too_slow, std::future::pending())
                .await
                .unwrap();
        });
    });
    (rx.recv().unwrap(), budget)
}

/// One request on a fresh connection; its status and how long it took.
fn request(addr: SocketAddr, raw: &[u8]) -> (u16, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    let status = std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap();
    (status, t.elapsed())
}

fn ping(addr: SocketAddr) -> (u16, Duration) {
    request(
        addr,
        b"GET /ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
}

fn small_upload(addr: SocketAddr) -> (u16, Duration) {
    request(
        addr,
        b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    )
}

#[test]
fn trickled_bodies_get_408_and_give_their_share_back() {
    let (addr, budget) = start(limits());
    let normal = (0..20).map(|_| small_upload(addr).1).max().unwrap();
    // Eight clients each declare 16 MiB (all of the budget between them)
    // and send a byte every 0.2 s.
    let slow: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                s.write_all(
                    b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 16777216\r\n\r\n",
                )
                .unwrap();
                let mut buf = [0u8; 12];
                let mut got = 0;
                while got < 12 {
                    assert!(t.elapsed() < Duration::from_secs(15), "never cut off");
                    // Once the server has answered, a write may fail: read on.
                    let _ = s.write_all(b"x");
                    match s.read(&mut buf[got..]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(_) => {}
                    }
                }
                (
                    std::str::from_utf8(&buf[9..12]).unwrap_or("").to_owned(),
                    t.elapsed(),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        budget.in_use_kib(),
        64 * 1024,
        "the slow clients hold the whole budget"
    );
    // Four fit the budget and are cut off as too slow; the others found it
    // full and were told to retry.
    let statuses: Vec<_> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    for (status, took) in &statuses {
        assert!(status == "408" || status == "503", "{statuses:?}");
        assert!(*took < Duration::from_secs(5), "{statuses:?}");
    }
    assert_eq!(
        statuses.iter().filter(|s| s.0 == "408").count(),
        4,
        "{statuses:?}"
    );
    // Shares are back: honest requests are answered at their usual pace.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(budget.in_use_kib(), 0);
    let after = (0..20).map(|_| small_upload(addr)).collect::<Vec<_>>();
    assert!(after.iter().all(|(s, _)| *s == 200));
    let worst = after.iter().map(|r| r.1).max().unwrap();
    assert!(
        worst < normal.max(Duration::from_millis(50)) * 4,
        "{worst:?} vs {normal:?}"
    );
}

#[test]
fn an_honest_large_upload_at_a_normal_pace_passes() {
    let (addr, _) = start(limits());
    // 8 MiB in 64 KiB pieces with a pause between (about 4 MiB/s).
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 8388608\r\nconnection: close\r\n\r\n",
    )
    .unwrap();
    let piece = vec![7u8; 64 << 10];
    for _ in 0..128 {
        s.write_all(&piece).unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("8388608"), "{out}");
}

#[test]
fn unfinished_headers_and_surplus_connections_do_not_starve_others() {
    let (addr, _) = start(ConnLimits {
        max_connections: 16,
        ..limits()
    });
    // Sixteen connections that never finish their headers fill every slot.
    let idle: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /ping HTTP/1.1\r\nhost:").unwrap();
            s
        })
        .collect();
    // A client now waits until their header deadline frees the slots.
    let (status, took) = ping(addr);
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The idle connections were closed by the server.
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    // Thousands of connections opened and dropped, or left half-open,
    // cost nothing lasting: the server still answers at once.
    let many: Vec<TcpStream> = (0..400)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    drop(many);
    let (status, took) = ping(addr);
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(3), "{took:?}");
}
