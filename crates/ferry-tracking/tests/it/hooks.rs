//! `POST /hooks/github` and `/hooks/gitlab` through the router: signed
//! deliveries queue a triggered run at their commit; unsigned, replayed,
//! oversized or unconfigured ones do nothing.

use crate::rt;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ferry_metadata::{MetadataStore, TriggeredRun};
use ferry_tracking::hooks::{Forge, Hooks, Repository, Secret};
use ferry_tracking::{AppState, artifacts::ArtifactRoot, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const SECRET: &str = "It's a Secret to Everybody";
const TOKEN: &str = "glpat-hook-token-0123456789";
const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
const HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

struct Hooked {
    router: axum::Router,
    store: Arc<dyn MetadataStore>,
    _dir: tempfile::TempDir,
}

fn repo() -> Repository {
    Repository {
        name: "acme/churn".into(),
        pipeline: "churn".into(),
        branches: vec!["main".into()],
        pull_requests: true,
    }
}

fn hooks() -> Hooks {
    Hooks {
        github: Some(Forge {
            secret: Secret::new(SECRET),
            repositories: vec![repo()],
        }),
        gitlab: Some(Forge {
            secret: Secret::new(TOKEN),
            repositories: vec![repo()],
        }),
    }
}

impl Hooked {
    /// A server with `hooks`; with `users`, its gate is on.
    async fn new(hooks: Option<Hooks>, users: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        let store: Arc<dyn MetadataStore> =
            Arc::new(ferry_metadata::SqlStore::open(&url).await.unwrap());
        if users {
            store
                .create_user(&ferry_metadata::NewUser {
                    username: "root".into(),
                    password_hash: Some(
                        ferry_auth::secret::hash_password("root-long-password").unwrap(),
                    ),
                    is_admin: true,
                    service: false,
                    created_ms: 1,
                })
                .await
                .unwrap();
        }
        let gate = ferry_tracking::auth::Gate::new(store.clone())
            .await
            .unwrap();
        assert_eq!(ferry_http::guard::Guard::is_on(gate.as_ref()), users);
        let router = router(
            AppState {
                store: store.clone(),
                artifacts: Arc::new(ArtifactRoot::new(&dir.path().join("a")).unwrap()),
                bodies: ferry_http::BodyBudget::default(),
                webhook_hosts: Arc::new([]),
                dashboard: Default::default(),
                hooks: hooks.map(Arc::new),
            },
            Some(gate),
        );
        Self {
            router,
            store,
            _dir: dir,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn queued(&self) -> Vec<TriggeredRun> {
        self.store.triggered_runs(None, 100).await.unwrap()
    }
}

/// GitHub's signature of `body` under `secret`, computed with another
/// implementation (ring) than the server's.
fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn github(event: &str, delivery: &str, body: &[u8], signature: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/hooks/github")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("user-agent", "GitHub-Hookshot/044aadd");
    if let Some(s) = signature {
        b = b.header("x-hub-signature-256", s);
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

/// A push as GitHub sends it (the fields of a real delivery, fewer
/// commits).
fn push_body(reference: &str, after: &str, repo: &str) -> Vec<u8> {
    json!({
        "ref": reference,
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": after,
        "repository": {
            "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "churn",
            "full_name": repo, "private": true,
            "owner": {"name": "acme", "login": "acme", "id": 1, "type": "Organization"},
            "html_url": format!("https://github.com/{repo}"),
            "clone_url": format!("https://github.com/{repo}.git"),
            "default_branch": "main", "master_branch": "main",
        },
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
        "created": false, "deleted": false, "forced": false, "base_ref": null,
        "compare": format!("https://github.com/{repo}/compare/6113728f27ae...{}", &after[..12.min(after.len())]),
        "commits": [{
            "id": after, "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433", "distinct": true,
            "message": "Retrain with the new features", "timestamp": "2026-03-04T10:15:00+01:00",
            "url": format!("https://github.com/{repo}/commit/{after}"),
            "author": {"name": "Mona", "email": "mona@github.com", "username": "octocat"},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
            "added": [], "removed": [], "modified": ["train.py"],
        }],
        "head_commit": {"id": after, "message": "Retrain with the new features"},
    })
    .to_string()
    .into_bytes()
}

#[test]
fn githubs_published_test_vector_signs_as_the_server_does() {
    let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(sign(SECRET, b"Hello, World!"), expected);
    assert_eq!(
        ferry_tracking::hooks::github_signature(SECRET.as_bytes(), b"Hello, World!"),
        expected
    );
}

#[test]
fn a_signed_push_queues_a_run_at_its_commit_once() {
    rt().block_on(async {
        let app = Hooked::new(Some(hooks()), false).await;
        let body = push_body("refs/heads/main", SHA, "acme/churn");
        let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        let (s, v) = app
            .send(github("push", delivery, &body, Some(&sign(SECRET, &body))))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["outcome"], "queued");
        assert_eq!(v["commit"], SHA);
        let q = app.queued().await;
        assert_eq!(q.len(), 1);
        let t = &q[0];
        assert_eq!(
            (
                t.pipeline.as_str(),
                t.kind.as_str(),
                t.commit.as_deref(),
                t.state
            ),
            (
                "churn",
                "push",
                Some(SHA),
                ferry_metadata::TriggerState::Queued
            )
        );
        assert_eq!(
            t.evidence,
            format!("push to main by octocat (github delivery {delivery})")
        );
        assert_eq!(
            t.key,
            format!("github:{}", &blake3::hash(&body).to_hex()[..32]),
            "known by what its signature covers"
        );
        assert_eq!(v["trigger_id"], t.trigger_id.as_str());

        // The same delivery again (GitHub's redelivery): acknowledged, and
        // nothing new is queued.
        let (s, v) = app
            .send(github("push", delivery, &body, Some(&sign(SECRET, &body))))
            .await;
        assert_eq!(
            (s, v["outcome"].as_str()),
            (StatusCode::OK, Some("duplicate"))
        );
        assert_eq!(app.queued().await.len(), 1);

        // A captured delivery sent again under a new id (GitHub does not
        // sign the id): the same body, the same delivery.
        let (s, v) = app
            .send(github(
                "push",
                "0b989ba4-242f-11e5-81e1-c7b6966d2516",
                &body,
                Some(&sign(SECRET, &body)),
            ))
            .await;
        assert_eq!(
            (s, v["outcome"].as_str()),
            (StatusCode::OK, Some("duplicate"))
        );
        assert_eq!(app.queued().await.len(), 1);

        // Audited, with who pushed and what came of it.
        let log = app.store.audit_entries(&Default::default()).await.unwrap();
        let pushes: Vec<_> = log
            .iter()
            .filter(|e| e.event.action == "webhook.github.push")
            .collect();
        assert_eq!(pushes.len(), 3, "{log:?}");
        assert_eq!(pushes[0].event.actor, "github:octocat");
        assert_eq!(pushes[0].event.resource, "pipeline:churn");
        assert!(pushes[0].event.outcome.starts_with("queued "));
        assert_eq!(pushes[1].event.outcome, "duplicate");
    });
}

#[test]
fn a_missing_or_wrong_signature_is_refused_and_does_nothing() {
    rt().block_on(async {
        let app = Hooked::new(Some(hooks()), false).await;
        let body = push_body("refs/heads/main", SHA, "acme/churn");
        let tampered = push_body("refs/heads/main", HEAD, "acme/churn");
        for sig in [
            None,
            Some(sign("another secret", &body)),
            Some(sign(SECRET, &tampered)),
            Some(sign(SECRET, &body).replace("sha256=", "sha1=")),
            Some("sha256=".to_owned()),
            Some("sha256=not-hex".to_owned()),
        ] {
            let (s, v) = app.send(github("push", "d-1", &body, sig.as_deref())).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{sig:?}: {v}");
            assert_eq!(v["error_code"], "UNAUTHENTICATED");
            let said = v["message"].as_str().unwrap();
            assert!(!said.contains(SECRET), "{said}");
        }
        assert!(app.queued().await.is_empty());
        let log = app.store.audit_entries(&Default::default()).await.unwrap();
        assert_eq!(log.len(), 6);
        assert!(
            log.iter().all(
                |e| e.event.action == "webhook.github" && e.event.outcome.starts_with("denied")
            )
        );
    });
}

#[test]
fn an_oversized_body_is_refused_before_it_is_read() {
    rt().block_on(async {
        let app = Hooked::new(Some(hooks()), false).await;
        let big = vec![b' '; ferry_tracking::hooks::MAX_BODY + 1];
        // Declared too large: refused before a byte is read.
        let declared = Request::builder()
            .method("POST")
            .uri("/hooks/github")
            .header("content-type", "application/json")
            .header("content-length", (100 << 20).to_string())
            .header("x-github-event", "push")
            .body(Body::empty())
            .unwrap();
        let (s, v) = app.send(declared).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        // Not declared, and larger: refused as it is read, signed or not.
        let (s, _) = app
            .send(github("push", "d-2", &big, Some(&sign(SECRET, &big))))
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(app.queued().await.is_empty());
    });
}

#[test]
fn what_the_hooks_file_does_not_name_is_ignored() {
    rt().block_on(async {
        let app = Hooked::new(Some(hooks()), false).await;
        let cases = [
            (
                push_body("refs/heads/main", SHA, "acme/other"),
                "repository `acme/other`",
            ),
            (
                push_body("refs/heads/dev", SHA, "acme/churn"),
                "branch `dev`",
            ),
            (
                push_body("refs/tags/v1.0", SHA, "acme/churn"),
                "not a branch",
            ),
            (
                push_body("refs/heads/main", &"0".repeat(40), "acme/churn"),
                "deleted",
            ),
        ];
        for (i, (body, why)) in cases.iter().enumerate() {
            let (s, v) = app
                .send(github(
                    "push",
                    &format!("d-{i}"),
                    body,
                    Some(&sign(SECRET, body)),
                ))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v["outcome"], "ignored");
            assert!(v["reason"].as_str().unwrap().contains(why), "{v}");
        }
        // Another event: acknowledged, ignored.
        let star = br#"{"action":"created","repository":{"full_name":"acme/churn"}}"#;
        let (s, v) = app
            .send(github("star", "d-9", star, Some(&sign(SECRET, star))))
            .await;
        assert_eq!(
            (s, v["outcome"].as_str()),
            (StatusCode::OK, Some("ignored"))
        );
        // A ping answers.
        let ping = br#"{"zen":"Design for failure.","hook_id":1}"#;
        let (s, v) = app
            .send(github("ping", "d-10", ping, Some(&sign(SECRET, ping))))
            .await;
        assert_eq!((s, v["outcome"].as_str()), (StatusCode::OK, Some("pong")));
        assert!(app.queued().await.is_empty());
        // Each is in the audit log, with why nothing ran.
        let log = app.store.audit_entries(&Default::default()).await.unwrap();
        let seen: Vec<(&str, &str)> = log
            .iter()
            .map(|e| (e.event.action.as_str(), e.event.outcome.as_str()))
            .collect();
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert_eq!(seen[0].0, "webhook.github.push");
        assert!(
            seen[0].1.starts_with("ignored: repository `acme/other`"),
            "{seen:?}"
        );
        assert_eq!(
            seen[4],
            (
                "webhook.github.other",
                "ignored: `star` events do not run pipelines"
            )
        );
        assert_eq!(seen[5], ("webhook.github.ping", "pong"));
    });
}

#[test]
fn a_malformed_delivery_is_a_400_naming_the_field() {
    rt().block_on(async {
        let app = Hooked::new(Some(hooks()), false).await;
        let cases: [(&[u8], &str); 4] = [
            (b"{not json", "malformed JSON"),
            (br#"{"ref":"refs/heads/main","after":"x"}"#, "repository.full_name"),
            (
                br#"{"ref":"refs/heads/main","after":"$(touch /tmp/pwned)","repository":{"full_name":"acme/churn"}}"#,
                "field `after`",
            ),
            (br#"[1,2]"#, "not a JSON object"),
        ];
        for (body, field) in cases {
            let (s, v) = app
                .send(github("push", "d-3", body, Some(&sign(SECRET, body))))
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
            assert!(v["message"].as_str().unwrap().contains(field), "{v}");
        }
        // Not JSON at all: 415, before the body is read.
        let mut form = github("push", "d-4", b"payload=%7B%7D", None);
        form.headers_mut().insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let (s, _) = app.send(form).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // A signed delivery without its id cannot be told from a replay.
        let body = push_body("refs/heads/main", SHA, "acme/churn");
        let mut no_id = github("push", "x", &body, Some(&sign(SECRET, &body)));
        no_id.headers_mut().remove("x-github-delivery");
        let (s, v) = app.send(no_id).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(app.queued().await.is_empty());
    });
}

#[test]
fn a_pull_request_given_new_commits_queues_its_head() {
    rt().block_on(async {
        let app = Hooked::new(Some(hooks()), false).await;
        let body = |action: &str, head_repo: &str| {
            json!({
                "action": action, "number": 42,
                "pull_request": {
                    "number": 42, "state": "open", "title": "Try a deeper tree",
                    "head": {"ref": "deeper", "sha": HEAD, "repo": {"full_name": head_repo}},
                    "base": {"ref": "main", "sha": SHA, "repo": {"full_name": "acme/churn"}},
                },
                "before": SHA, "after": HEAD,
                "repository": {"full_name": "acme/churn"},
                "sender": {"login": "hubot"},
            })
            .to_string()
            .into_bytes()
        };
        let b = body("synchronize", "acme/churn");
        let (s, v) = app
            .send(github("pull_request", "pr-1", &b, Some(&sign(SECRET, &b))))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let q = app.queued().await;
        assert_eq!(q.len(), 1);
        assert_eq!(
            (q[0].kind.as_str(), q[0].commit.as_deref()),
            ("pull_request", Some(HEAD))
        );
        assert_eq!(
            q[0].evidence,
            "pull request #42 synchronize into main by hubot (github delivery pr-1)"
        );
        for (i, (action, head_repo)) in [("closed", "acme/churn"), ("opened", "mallory/churn")]
            .into_iter()
            .enumerate()
        {
            let b = body(action, head_repo);
            let (s, v) = app
                .send(github(
                    "pull_request",
                    &format!("pr-x{i}"),
                    &b,
                    Some(&sign(SECRET, &b)),
                ))
                .await;
            assert_eq!(
                (s, v["outcome"].as_str()),
                (StatusCode::OK, Some("ignored")),
                "{v}"
            );
        }
        assert_eq!(app.queued().await.len(), 1);
    });
}

fn gitlab(event: &str, token: Option<&str>, uuid: Option<&str>, body: &[u8]) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/hooks/gitlab")
        .header("content-type", "application/json")
        .header("x-gitlab-event", event);
    if let Some(t) = token {
        b = b.header("x-gitlab-token", t);
    }
    if let Some(u) = uuid {
        b = b.header("x-gitlab-event-uuid", u);
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

#[test]
fn gitlab_deliveries_need_the_token() {
    rt().block_on(async {
        let app = Hooked::new(Some(hooks()), false).await;
        let push = json!({
            "object_kind": "push", "event_name": "push",
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22", "after": SHA,
            "ref": "refs/heads/main", "checkout_sha": SHA,
            "user_name": "John Smith", "user_username": "jsmith",
            "project_id": 15,
            "project": {"id": 15, "name": "churn", "path_with_namespace": "acme/churn",
                        "default_branch": "main", "git_http_url": "https://gitlab.example.com/acme/churn.git"},
            "commits": [{"id": SHA, "message": "Retrain", "timestamp": "2026-03-04T10:15:00+01:00"}],
            "total_commits_count": 1,
        })
        .to_string()
        .into_bytes();
        for token in [None, Some("wrong"), Some(&TOKEN[..TOKEN.len() - 1])] {
            let (s, _) = app
                .send(gitlab("Push Hook", token, Some("u-1"), &push))
                .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{token:?}");
        }
        assert!(app.queued().await.is_empty());
        let (s, v) = app
            .send(gitlab("Push Hook", Some(TOKEN), Some("u-1"), &push))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let (s, v) = app
            .send(gitlab("Push Hook", Some(TOKEN), Some("u-1"), &push))
            .await;
        assert_eq!((s, v["outcome"].as_str()), (StatusCode::OK, Some("duplicate")));
        let q = app.queued().await;
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].commit.as_deref(), Some(SHA));
        assert_eq!(q[0].evidence, "push to main by jsmith (gitlab delivery u-1)");

        // A merge request given new commits, without a delivery id: known
        // by its number and commit, so a retry queues nothing.
        let mr = json!({
            "object_kind": "merge_request", "user": {"username": "jsmith"},
            "project": {"path_with_namespace": "acme/churn"},
            "object_attributes": {
                "iid": 7, "action": "update", "oldrev": SHA, "target_branch": "main",
                "source_branch": "deeper", "source_project_id": 15, "target_project_id": 15,
                "last_commit": {"id": HEAD},
            },
        })
        .to_string()
        .into_bytes();
        for _ in 0..2 {
            app.send(gitlab("Merge Request Hook", Some(TOKEN), None, &mr))
                .await;
        }
        let q = app.queued().await;
        assert_eq!(q.len(), 2);
        assert_eq!(
            (q[0].kind.as_str(), q[0].commit.as_deref()),
            ("pull_request", Some(HEAD))
        );
    });
}

#[test]
fn without_hooks_the_routes_are_not_there_and_with_users_they_need_no_credentials() {
    rt().block_on(async {
        let off = Hooked::new(None, false).await;
        let body = push_body("refs/heads/main", SHA, "acme/churn");
        let (s, v) = off
            .send(github("push", "d-1", &body, Some(&sign(SECRET, &body))))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(v["error_code"], "ENDPOINT_NOT_FOUND");
        let only_github = Hooks {
            gitlab: None,
            ..hooks()
        };
        let half = Hooked::new(Some(only_github), false).await;
        let (s, _) = half
            .send(gitlab("Push Hook", Some(TOKEN), None, b"{}"))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // The store has users: every other route needs credentials, the
        // webhooks their signature only.
        let team = Hooked::new(Some(hooks()), true).await;
        let (s, _) = team
            .send(
                Request::builder()
                    .uri("/api/2.0/mlflow/experiments/search")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, v) = team
            .send(github("push", "d-1", &body, Some(&sign(SECRET, &body))))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let (s, _) = team.send(github("push", "d-2", &body, None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // Only POST: anything else is the gate's.
        let (s, _) = team
            .send(
                Request::builder()
                    .uri("/hooks/github")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(team.queued().await.len(), 1);
    });
}
