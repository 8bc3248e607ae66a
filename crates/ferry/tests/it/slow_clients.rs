//! Both servers, as the binary starts them, against the clients that used
//! to starve them: bodies declared large and trickled a byte at a time, and
//! hundreds of connections that never finish their headers. Each slow body
//! is cut off (408) or refused (503) within seconds, an honest client's
//! latency stays in its normal range throughout, and the server's memory
//! stays bounded.

use crate::remote::Server;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One request on a fresh connection: its status and how long it took.
pub(crate) fn request(addr: SocketAddr, raw: &str) -> (u16, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    let status = std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap();
    (status, t.elapsed())
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Worst latency of `n` honest requests, all of which must get `ok`.
fn honest(addr: SocketAddr, raw: &str, ok: u16, n: usize) -> Duration {
    (0..n)
        .map(|_| {
            let (s, t) = request(addr, raw);
            assert_eq!(s, ok, "an honest request got {s}");
            t
        })
        .max()
        .unwrap()
}

/// A client declaring a 16 MiB body and sending a byte every 0.2 s: the
/// status it finally gets and when.
fn trickle(addr: SocketAddr, path: &str) -> (String, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(
        format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 16777216\r\n\r\n{{")
            .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 12];
    let mut got = 0;
    while got < 12 && t.elapsed() < Duration::from_secs(30) {
        let _ = s.write_all(b" ");
        match s.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => {}
        }
    }
    (
        std::str::from_utf8(&buf[9..12])
            .unwrap_or("none")
            .to_owned(),
        t.elapsed(),
    )
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// The whole probe against one server: `post_path` takes a JSON body,
/// `honest_post` is a normal request there, `get` a cheap read.
fn probe(name: &str, pid: u32, addr: SocketAddr, post_path: &str, honest_post: &str, get: &str) {
    let normal = honest(addr, honest_post, 200, 20).max(honest(addr, get, 200, 20));
    let before = rss_mib(pid);
    // Eight slow bodies (with the default 64 MiB budget, four hold it all).
    let slow: Vec<_> = (0..8)
        .map(|_| {
            let path = post_path.to_owned();
            std::thread::spawn(move || trickle(addr, &path))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Reads are never held up meanwhile.
    let during = honest(addr, get, 200, 20);
    let statuses: Vec<_> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    for (status, took) in &statuses {
        assert!(status == "408" || status == "503", "{name}: {statuses:?}");
        assert!(*took < Duration::from_secs(15), "{name}: {statuses:?}");
    }
    assert!(
        statuses.iter().any(|s| s.0 == "408"),
        "{name}: {statuses:?}"
    );
    // The shares are back: writes are answered at their normal pace.
    let after = honest(addr, honest_post, 200, 20);
    // Hundreds of connections that never finish their headers.
    let idle: Vec<TcpStream> = (0..600)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(b"GET / HTTP/1.1\r\nhost:");
            s
        })
        .collect();
    let with_idle = honest(addr, get, 200, 20);
    let peak = rss_mib(pid);
    drop(idle);
    let bound = normal.max(Duration::from_millis(20)) * 10;
    for (what, t) in [
        ("during", during),
        ("after", after),
        ("with idle connections", with_idle),
    ] {
        assert!(
            t < bound,
            "{name}: honest latency {what} {t:?} vs normal {normal:?}"
        );
    }
    assert!(
        peak - before < 100.0,
        "{name}: {before:.0} MiB -> {peak:.0} MiB"
    );
}

#[test]
fn slow_clients_do_not_starve_either_server() {
    let server = Server::start();
    let url: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let server_pid = server.pid();
    let p = crate::deploy::two_versions();
    let gw = crate::deploy::Gateway::start(&p);
    let gw_addr: SocketAddr = gw.addr.parse().unwrap();
    let gw_pid = gw.child.id();
    let a = std::thread::spawn(move || {
        probe(
            "ferry server",
            server_pid,
            url,
            "/api/2.0/mlflow/experiments/create",
            &post(
                "/api/2.0/mlflow/experiments/search",
                r#"{"max_results": 1}"#,
            ),
            "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
    });
    let b = std::thread::spawn(move || {
        probe(
            "ferry serve",
            gw_pid,
            gw_addr,
            "/invocations",
            &post("/invocations", r#"{"instances": [[1.0, 2.0]]}"#),
            "GET /ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
    });
    a.join().unwrap();
    b.join().unwrap();
}
