//! `ferry server --hooks FILE` with `deliver:`, as an operator runs it: the
//! registry's and rollouts' changes made by the CLI on the server's store
//! (no write path knows about webhooks) are posted to a receiver on
//! loopback, retried after a failure, and listed by `ferry admin
//! deliveries`. A bad `deliver:` section stops the server with every
//! problem and its position.

use crate::support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

const SECRET: &str = "whsec-0123456789abcdef";

/// What a receiver took: each delivery id and body.
type Took = Arc<Mutex<Vec<(String, String)>>>;

/// A receiver on 127.0.0.1 that fails every delivery's first attempt
/// (500) and takes the next; the bodies and delivery ids it took.
fn receiver() -> (String, Took) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ferry-events", l.local_addr().unwrap());
    let got: Took = Arc::default();
    let seen = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut id = String::new();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    break;
                }
                let h = h.trim_end().to_owned();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "x-mlflow-delivery-id" => id = v.trim().to_owned(),
                        "content-length" => len = v.trim().parse().unwrap(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let first = {
                let mut g = seen.lock().unwrap();
                let first = !g.iter().any(|(i, _)| *i == id);
                g.push((id, String::from_utf8(body).unwrap()));
                first
            };
            let status = if first { 500 } else { 200 };
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(p: &Proj, hooks: &std::path::Path) -> (Server, Vec<String>) {
    let mut child = p
        .cmd(&["server", "--port", "0", "--hooks"])
        .arg(hooks)
        .env("FERRY_DELIVER_SECRET", SECRET)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the server ended: {said:?}"))
            .unwrap();
        let done = line.contains("listening on http://");
        said.push(line);
        if done {
            break;
        }
    }
    said.extend(lines.by_ref().take(2).map(Result::unwrap));
    std::thread::spawn(move || for _ in lines {});
    (Server(child), said)
}

#[test]
fn registry_and_rollout_events_are_delivered_retried_and_listed() {
    let p = crate::deploy::two_versions();
    let (url, got) = receiver();
    let hooks = p.path().join("hooks.yaml");
    std::fs::write(
        &hooks,
        format!(
            "deliver:\n  - name: ci\n    url: {url}\n    secret_env: FERRY_DELIVER_SECRET\n    events: [model_version_alias.created, rollout.started, rollout.promoted]\n"
        ),
    )
    .unwrap();
    let (server, said) = start(&p, &hooks);
    assert!(
        said.iter()
            .any(|l| l.contains("delivering 3 events to `ci`")),
        "{said:?}"
    );
    assert!(
        !said.iter().any(|l| l.contains(&url)),
        "no URL shown: {said:?}"
    );
    // Made on the store by the CLI while the server runs.
    assert_eq!(p.ferry(&["models", "alias", "m/2", "staging"]).code, 0);
    let o = p.ferry(&["deploy", "m/2", "--reason", "ship v2"]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = p.ferry(&["deploy", "promote", "m", "--reason", "checked by hand"]);
    assert_eq!(o.code, 0, "{o:?}");
    // Four deliveries, each taken on its second attempt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let n = got.lock().unwrap().len();
        if n >= 8 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{:#?}",
            got.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Recorded once the attempt is back.
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(server);
    let got = got.lock().unwrap().clone();
    let mut ids: Vec<&str> = got.iter().map(|(i, _)| i.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (8, 4), "{got:#?}");
    let events: Vec<String> = got
        .iter()
        .map(|(_, b)| {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            format!(
                "{}.{}",
                v["entity"].as_str().unwrap(),
                v["action"].as_str().unwrap()
            )
        })
        .collect();
    for e in [
        "model_version_alias.created",
        "rollout.started",
        "rollout.promoted",
    ] {
        assert!(events.iter().any(|x| x == e), "{e}: {events:?}");
    }

    let o = p.ferry(&["admin", "deliveries"]);
    assert_eq!(o.code, 0, "{o:?}");
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "[time]"),
    ]}, {
        insta::assert_snapshot!(o.stdout, @r"
        EVENT TIME (UTC)     ENDPOINT  EVENT                        SUBJECT       STATE      ATTEMPTS  LAST
        [time]  ci        rollout.promoted             m/2           delivered         2  200 at [time]
        [time]  ci        model_version_alias.created  m@production  delivered         2  200 at [time]
        [time]  ci        rollout.started              m/2           delivered         2  200 at [time]
        [time]  ci        model_version_alias.created  m@staging     delivered         2  200 at [time]
        ");
    });
    let o = p.ferry(&[
        "admin",
        "deliveries",
        "--json",
        "--state",
        "delivered",
        "--limit",
        "1",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let d = &v[0];
    assert_eq!(d["event"], "rollout.promoted");
    assert_eq!(d["state"], "delivered");
    assert_eq!(d["subject"], "m/2");
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0]["status"].as_i64(), log[1]["status"].as_i64()),
        (Some(500), Some(200))
    );
    assert_eq!(log[0]["error"], "HTTP 500");
    assert!(d.get("body").is_none(), "{d}");
    let o = p.ferry(&["admin", "deliveries", "--state", "failed"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{o:?}");
    assert!(o.stderr.contains("no webhook deliveries"), "{o:?}");
}

#[test]
fn a_bad_deliver_section_stops_the_server_with_every_problem() {
    let p = crate::cli::project();
    p.write(
        "hooks.yaml",
        "deliver:\n  - name: ci\n    url: http://ci.example.com/x\n    secret_env: FERRY_DELIVER_SECRET\n  - name: ci\n    url: https://ci.example.com/x\n    secret_env: UNSET_SECRET_VAR\n    events: [model.exploded]\n",
    );
    let o = p
        .cmd(&["server", "--port", "0", "--hooks", "hooks.yaml"])
        .env("FERRY_DELIVER_SECRET", SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    for want in [
        "hooks.yaml:3:10: deliver[0].url: the URL is http:// to another machine",
        "hooks.yaml:5:11: deliver[1].name: `ci` names another endpoint already",
        "hooks.yaml:7:17: deliver[1].secret_env: the environment variable UNSET_SECRET_VAR is not set",
        "hooks.yaml:8:14: deliver[1].events[0]: unknown event `model.exploded`",
        "4 errors in the hooks file",
    ] {
        assert!(stderr.contains(want), "{want}\n{stderr}");
    }
}
