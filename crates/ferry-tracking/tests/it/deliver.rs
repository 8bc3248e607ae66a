//! Webhooks out against real receivers on loopback: a delivery retried
//! after two failures with the same id and a valid signature each time;
//! one that always fails given up after the cap; two deliverers on one
//! store posting each event once; events from before an endpoint existed
//! never posted; more events in one millisecond than a page all enqueued.
//! Time is a driven clock; the posts are real HTTP.

use ferry_core::clock::{Clock, ManualClock};
use ferry_metadata::{
    DeliveryQuery, DeliveryState, DeliveryStore, MetadataStore, NewModelVersion, SqlStore,
};
use ferry_tracking::deliver::{self, Deliverer, Endpoint, Event, Settings, SigningSecret};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

const SECRET: &str = "whsec-0123456789abcdef";
const T0: i64 = 1_767_225_600_000;

/// One request a receiver took: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Got {
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name}: {:?}", self.headers))
    }
}

/// A receiver on 127.0.0.1 that answers the n-th attempt of a delivery
/// (by its id) with `statuses[n]` (the last one from then on), keeping
/// what it was sent.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn start(statuses: &'static [u16]) -> Self {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ferry-events?team=ml", l.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert!(line.starts_with("POST /ferry-events?team=ml "), "{line}");
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap();
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let n = {
                    let mut g = seen.lock().unwrap();
                    let got = Got {
                        headers,
                        body: String::from_utf8(body).unwrap(),
                    };
                    let id = got.header("x-mlflow-delivery-id").to_owned();
                    g.push(got);
                    g.iter()
                        .filter(|g| g.header("x-mlflow-delivery-id") == id)
                        .count()
                };
                let status = statuses[(n - 1).min(statuses.len() - 1)];
                let _ = write!(
                    c,
                    "HTTP/1.1 {status} X\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"
                );
            }
        });
        Receiver { url, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// What a receiver does to check a delivery, as MLflow's documentation
/// describes it, with another HMAC implementation (ring) than ferry's.
fn verify(g: &Got, secret: &str) {
    use base64::Engine as _;
    let id = g.header("x-mlflow-delivery-id");
    let ts = g.header("x-mlflow-timestamp");
    let sig = g.header("x-mlflow-signature");
    let want = sig.strip_prefix("v1,").expect("v1,<base64>");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signed = format!("{id}.{ts}.{}", g.body);
    let tag = base64::engine::general_purpose::STANDARD
        .decode(want)
        .unwrap();
    ring::hmac::verify(&key, signed.as_bytes(), &tag).expect("a valid signature");
    assert_eq!(g.header("content-type"), "application/json");
}

fn endpoint(name: &str, url: &str, events: &[Event]) -> Endpoint {
    Endpoint {
        name: name.into(),
        url: url.into(),
        secret: SigningSecret::new(SECRET),
        events: events.to_vec(),
    }
}

async fn store(dir: &tempfile::TempDir) -> Arc<SqlStore> {
    let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
    Arc::new(SqlStore::open(&url).await.unwrap())
}

fn version(model: &str, at_ms: i64) -> NewModelVersion {
    NewModelVersion {
        model: model.into(),
        run_id: Some("0123456789abcdef0123456789abcdef".into()),
        artifact_path: "model.onnx".into(),
        artifact_digest: format!("d{at_ms}"),
        artifact_size: 10,
        git_commit: None,
        git_dirty: None,
        env_fingerprint: None,
        lineage: serde_json::json!({}),
        created_ms: at_ms,
        alias: None,
        source: Some(format!("models:/m-{at_ms}")),
        stored: None,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_delivery_failed_twice_is_delivered_on_the_third_attempt_with_one_id() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let rx = Receiver::start(&[500, 503, 204]);
        let clock = ManualClock::at(T0);
        let d = Deliverer::new(
            s.clone(),
            vec![endpoint(
                "ci",
                &rx.url,
                &[Event::ModelVersionCreated, Event::ModelVersionAliasCreated],
            )],
            Arc::new(clock.clone()),
            Settings::default(),
        );
        // Before the endpoint existed: never delivered.
        s.create_model_version(&version("churn", T0 - 5_000))
            .await
            .unwrap();
        assert_eq!(d.round().await.unwrap(), deliver::Round::default());
        s.create_model_version(&version("churn", T0 + 10))
            .await
            .unwrap();
        s.set_alias("churn", "staging", 2, None, T0 + 20)
            .await
            .unwrap();
        clock.set(T0 + 100);
        let r = d.round().await.unwrap();
        // The model's creation is not an event this endpoint takes.
        assert_eq!((r.enqueued, r.retrying), (2, 2), "{r:?}");
        // Nothing more is due until the backoff (1 s) has passed.
        assert_eq!(d.round().await.unwrap(), deliver::Round::default());
        clock.advance(1_000);
        let r = d.round().await.unwrap();
        assert_eq!(r.retrying, 2, "{r:?}");
        clock.advance(1_999);
        assert_eq!(d.round().await.unwrap(), deliver::Round::default());
        clock.advance(1);
        let r = d.round().await.unwrap();
        assert_eq!((r.delivered, r.retrying, r.failed), (2, 0, 0), "{r:?}");
        assert_eq!(d.round().await.unwrap(), deliver::Round::default());

        let got = rx.got();
        assert_eq!(got.len(), 6, "{got:#?}");
        let of = |event: &str| -> Vec<&Got> {
            got.iter()
                .filter(|g| {
                    let v: Value = serde_json::from_str(&g.body).unwrap();
                    format!(
                        "{}.{}",
                        v["entity"].as_str().unwrap(),
                        v["action"].as_str().unwrap()
                    ) == event
                })
                .collect()
        };
        let created = of("model_version.created");
        assert_eq!(created.len(), 3);
        let id = created[0].header("x-mlflow-delivery-id");
        let mut stamps = Vec::new();
        for g in &created {
            verify(g, SECRET);
            assert_eq!(
                g.header("x-mlflow-delivery-id"),
                id,
                "one id for every attempt"
            );
            assert_eq!(g.body, created[0].body, "the same bytes every attempt");
            stamps.push(g.header("x-mlflow-timestamp").to_owned());
        }
        assert_eq!(
            stamps,
            [T0 / 1_000, T0 / 1_000 + 1, T0 / 1_000 + 3].map(|s| s.to_string()),
            "each attempt's own time"
        );
        let v: Value = serde_json::from_str(&created[0].body).unwrap();
        assert_eq!(v["data"]["name"], "churn");
        assert_eq!(v["data"]["version"], "2");
        assert_eq!(v["data"]["source"], format!("models:/m-{}", T0 + 10));
        assert_eq!(v["workspace"], "default");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00.010000+00:00");
        let alias = of("model_version_alias.created");
        assert_eq!(alias.len(), 3);
        assert_ne!(alias[0].header("x-mlflow-delivery-id"), id);
        let v: Value = serde_json::from_str(&alias[0].body).unwrap();
        assert_eq!(
            v["data"],
            serde_json::json!({"name": "churn", "alias": "staging", "version": "2"})
        );
        // A tampered body does not verify.
        let mut bad = created[2].clone();
        bad.body = bad.body.replace("churn", "churm");
        assert!(std::panic::catch_unwind(|| verify(&bad, SECRET)).is_err());

        // Recorded: delivered on the third attempt, each attempt kept.
        let all = s
            .deliveries(&DeliveryQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
        for dl in &all {
            assert_eq!(dl.state, DeliveryState::Delivered);
            assert_eq!((dl.attempts, dl.last_status), (3, Some(204)));
            assert_eq!(dl.last_error, None);
            assert_eq!(dl.delivered_ms, Some(T0 + 3_100));
        }
        let created = all
            .iter()
            .find(|dl| dl.event == "model_version.created")
            .unwrap();
        assert_eq!(created.delivery_id, id);
        let attempts = s.delivery_attempts("ci", &created.event_id).await.unwrap();
        let seen: Vec<(i64, Option<i64>, Option<&str>)> = attempts
            .iter()
            .map(|a| (a.at_ms, a.status, a.error.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (T0 + 100, Some(500), Some("HTTP 500")),
                (T0 + 1_100, Some(503), Some("HTTP 503")),
                (T0 + 3_100, Some(204), None),
            ]
        );
        assert!(attempts.iter().all(|a| a.holder == d.holder()));
    });
}

#[test]
fn a_receiver_that_always_fails_is_given_up_after_the_cap() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let rx = Receiver::start(&[500]);
        let clock = ManualClock::at(T0);
        let settings = Settings {
            max_attempts: 4,
            ..Settings::default()
        };
        let d = Deliverer::new(
            s.clone(),
            vec![endpoint("ci", &rx.url, &Event::ALL)],
            Arc::new(clock.clone()),
            settings,
        );
        d.round().await.unwrap();
        s.create_model_version(&version("churn", T0 + 10))
            .await
            .unwrap();
        clock.set(T0 + 100);
        let mut rounds = Vec::new();
        for _ in 0..6 {
            rounds.push(d.round().await.unwrap());
            clock.advance(600_000);
        }
        // The model's creation and its version: two deliveries.
        let failed: usize = rounds.iter().map(|r| r.failed).sum();
        assert_eq!(failed, 2, "{rounds:?}");
        assert_eq!(rx.got().len(), 8, "4 attempts each, no more");
        let all = s
            .deliveries(&DeliveryQuery {
                state: Some(DeliveryState::Failed),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
        assert!(
            all.iter()
                .all(|dl| dl.attempts == 4 && dl.last_status == Some(500))
        );
        // A receiver that is not there: the error says so, without its URL.
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/s3cret-path", l.local_addr().unwrap())
        };
        let dir2 = tempfile::tempdir().unwrap();
        let s2 = store(&dir2).await;
        let d2 = Deliverer::new(
            s2.clone(),
            vec![endpoint("gone", &gone, &[Event::ModelVersionCreated])],
            Arc::new(clock.clone()),
            Settings::default(),
        );
        d2.round().await.unwrap();
        let mut v = version("churn", clock.now_ms() + 1);
        v.source = None;
        s2.create_model_version(&v).await.unwrap();
        clock.advance(10);
        assert_eq!(d2.round().await.unwrap().retrying, 1);
        let dl = &s2
            .deliveries(&DeliveryQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()[0];
        let e = dl.last_error.as_deref().unwrap();
        assert_eq!(dl.last_status, None);
        assert!(!e.contains("s3cret"), "{e}");
    });
}

#[test]
fn two_deliverers_on_one_store_deliver_each_event_once() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let one = store(&dir).await;
        let two = store(&dir).await;
        let rx = Receiver::start(&[200]);
        let clock = ManualClock::at(T0);
        let ep = || vec![endpoint("ci", &rx.url, &[Event::ModelVersionCreated])];
        let a = Arc::new(Deliverer::new(
            one.clone(),
            ep(),
            Arc::new(clock.clone()),
            Settings::default(),
        ));
        let b = Arc::new(Deliverer::new(
            two.clone(),
            ep(),
            Arc::new(clock.clone()),
            Settings::default(),
        ));
        assert_ne!(a.holder(), b.holder());
        a.round().await.unwrap();
        for i in 0..24 {
            one.create_model_version(&version("churn", T0 + 10 + i))
                .await
                .unwrap();
        }
        clock.set(T0 + 1_000);
        let mut delivered = 0;
        for _ in 0..4 {
            let (ra, rb) = tokio::join!(
                {
                    let a = a.clone();
                    tokio::spawn(async move { a.round().await.unwrap() })
                },
                {
                    let b = b.clone();
                    tokio::spawn(async move { b.round().await.unwrap() })
                }
            );
            delivered += ra.unwrap().delivered + rb.unwrap().delivered;
        }
        assert_eq!(delivered, 24);
        let got = rx.got();
        let mut ids: Vec<&str> = got
            .iter()
            .map(|g| g.header("x-mlflow-delivery-id"))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!((got.len(), ids.len()), (24, 24), "each event posted once");
        let holders: std::collections::BTreeSet<String> = one
            .deliveries(&DeliveryQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|d| {
                assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 1));
                d.lease_holder.unwrap()
            })
            .collect();
        assert!(!holders.is_empty());
    });
}

#[test]
fn more_events_at_one_millisecond_than_a_page_are_all_enqueued() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let clock = ManualClock::at(T0);
        let d = Deliverer::new(
            s.clone(),
            vec![endpoint(
                "ci",
                "http://127.0.0.1:9/hook",
                &[Event::ModelVersionCreated],
            )],
            Arc::new(clock.clone()),
            Settings {
                page: 4,
                ..Settings::default()
            },
        );
        d.enqueue().await.unwrap();
        // Eleven versions of three models in one millisecond, then one later.
        for i in 0..11 {
            let mut v = version(["a", "b", "c"][i % 3], T0 + 10);
            v.artifact_digest = format!("d{i}");
            s.create_model_version(&v).await.unwrap();
        }
        s.create_model_version(&version("a", T0 + 11))
            .await
            .unwrap();
        clock.set(T0 + 1_000);
        assert_eq!(d.enqueue().await.unwrap(), 12);
        assert_eq!(d.enqueue().await.unwrap(), 0, "nothing enqueued twice");
    });
}
