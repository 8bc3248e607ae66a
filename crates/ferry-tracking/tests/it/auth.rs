//! The gate in front of every route: a permission matrix generated from one
//! table (route x role x own or other workspace), the refusals' exact
//! shapes, tokens, the auth API and the audit entries it all leaves.

use super::*;
use base64::Engine as _;
use ferry_metadata::{MetadataStore, NewUser};
use ferry_tracking::auth::Gate;

/// A team server: two workspaces, a user per role, and a server admin.
struct Team {
    router: axum::Router,
    store: Arc<dyn MetadataStore>,
    gate: Arc<Gate>,
    _dir: tempfile::TempDir,
}

/// Who asks, and their built-in role in `team-a` or `team-b` (none: 0).
const USERS: &[(&str, &str, &str)] = &[
    ("nobody", "", ""),
    ("viewer-a", "team-a", "viewer"),
    ("editor-a", "team-a", "editor"),
    ("maintainer-a", "team-a", "maintainer"),
    ("admin-a", "team-a", "admin"),
    ("editor-b", "team-b", "editor"),
];

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 1,
        "editor" => 2,
        "maintainer" => 3,
        "admin" => 4,
        _ => 0,
    }
}

fn password(user: &str) -> String {
    format!("{user}-long-password")
}

fn basic(user: &str) -> String {
    let creds = format!("{user}:{}", password(user));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    )
}

impl Team {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        Self::on(dir, &url).await
    }

    /// The team on the store at `url` (artifacts under `dir`).
    async fn on(dir: tempfile::TempDir, url: &str) -> Self {
        Self::with_sso(dir, url, None).await
    }

    /// [`Team::on`], accepting `oidc`'s ID tokens.
    async fn with_sso(dir: tempfile::TempDir, url: &str, oidc: Option<ferry_access::Sso>) -> Self {
        let store: Arc<dyn MetadataStore> =
            Arc::new(ferry_metadata::SqlStore::open(url).await.unwrap());
        let add = |name: &str, admin: bool| NewUser {
            username: name.into(),
            password_hash: Some(ferry_auth::secret::hash_password(&password(name)).unwrap()),
            is_admin: admin,
            service: false,
            created_ms: 1,
        };
        store.create_user(&add("root", true)).await.unwrap();
        for (name, ws, role) in USERS {
            let u = store.create_user(&add(name, false)).await.unwrap();
            if !ws.is_empty() {
                ferry_metadata::add_member(store.as_ref(), u.id, ws, role)
                    .await
                    .unwrap();
            }
        }
        let gate = Gate::with_oidc(store.clone(), false, oidc).await.unwrap();
        let artifacts = Arc::new(ArtifactRoot::new(&dir.path().join("artifacts")).unwrap());
        let router = router(
            AppState {
                store: store.clone(),
                artifacts,
                bodies: ferry_http::BodyBudget::default(),
                webhook_hosts: std::sync::Arc::new([]),
                dashboard: Default::default(),
                hooks: None,
            },
            Some(gate.clone()),
        );
        Team {
            router,
            store,
            gate,
            _dir: dir,
        }
    }

    async fn send(
        &self,
        auth: Option<&str>,
        workspace: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send_with(auth, workspace, &[], method, uri, body)
            .await
    }

    /// [`Team::send`] with `headers` besides.
    async fn send_with(
        &self,
        auth: Option<&str>,
        workspace: Option<&str>,
        headers: &[(&str, &str)],
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        if let Some(w) = workspace {
            b = b.header("x-mlflow-workspace", w);
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(b.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    /// As the server admin, in `ws`: must succeed.
    async fn root(&self, ws: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self
            .send(Some(&basic("root")), Some(ws), method, path, body)
            .await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }
}

/// What one cell works on: an experiment, a run in it with an artifact,
/// and a registered model with a version from the run, in one workspace.
struct Fixture {
    exp: String,
    run: String,
    model: String,
}

async fn fixture(t: &Team, ws: &str, n: usize) -> Fixture {
    let api = |p: &str| format!("/api/2.0/mlflow/{p}");
    let exp = t
        .root(
            ws,
            Method::POST,
            &api("experiments/create"),
            Some(json!({"name": format!("{ws}-exp-{n}")})),
        )
        .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = t
        .root(
            ws,
            Method::POST,
            &api("runs/create"),
            Some(json!({"experiment_id": exp})),
        )
        .await["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let model = format!("{ws}-model-{n}");
    t.root(
        ws,
        Method::POST,
        &api("registered-models/create"),
        Some(json!({"name": model})),
    )
    .await;
    let art = format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/a.txt");
    let resp = t
        .router
        .clone()
        .oneshot(
            Request::builder()
                .method(Method::PUT)
                .uri(&art)
                .header("authorization", basic("root"))
                .body(Body::from("a"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    t.root(
        ws,
        Method::POST,
        &api("model-versions/create"),
        Some(json!({"name": model, "source": format!("runs:/{run}/a.txt"), "run_id": run})),
    )
    .await;
    Fixture { exp, run, model }
}

/// One route of the matrix: the request it makes on a fixture, and the
/// least role that may make it.
struct Case {
    name: &'static str,
    least: &'static str,
    request: fn(&Fixture) -> (Method, String, Option<Value>),
}

fn api(p: &str) -> String {
    format!("/api/2.0/mlflow/{p}")
}

fn artifact(f: &Fixture, name: &str) -> String {
    format!(
        "/api/2.0/mlflow-artifacts/artifacts/{}/{}/artifacts/{name}",
        f.exp, f.run
    )
}

/// The table the matrix is generated from.
const CASES: &[Case] = &[
    Case {
        name: "experiments/get",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                api(&format!("experiments/get?experiment_id={}", f.exp)),
                None,
            )
        },
    },
    Case {
        name: "experiments/update",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                api("experiments/update"),
                Some(json!({"experiment_id": f.exp, "new_name": format!("renamed-{}", f.exp)})),
            )
        },
    },
    Case {
        name: "experiments/set-experiment-tag",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                api("experiments/set-experiment-tag"),
                Some(json!({"experiment_id": f.exp, "key": "k", "value": "v"})),
            )
        },
    },
    Case {
        name: "experiments/delete",
        least: "maintainer",
        request: |f| {
            (
                Method::POST,
                api("experiments/delete"),
                Some(json!({"experiment_id": f.exp})),
            )
        },
    },
    Case {
        name: "runs/create",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                api("runs/create"),
                Some(json!({"experiment_id": f.exp})),
            )
        },
    },
    Case {
        name: "runs/get",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                api(&format!("runs/get?run_id={}", f.run)),
                None,
            )
        },
    },
    Case {
        name: "runs/log-metric",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                api("runs/log-metric"),
                Some(json!({"run_id": f.run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0})),
            )
        },
    },
    Case {
        name: "runs/log-batch",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                api("runs/log-batch"),
                Some(json!({"run_id": f.run, "params": [{"key": "p", "value": "1"}]})),
            )
        },
    },
    Case {
        name: "runs/delete",
        least: "maintainer",
        request: |f| {
            (
                Method::POST,
                api("runs/delete"),
                Some(json!({"run_id": f.run})),
            )
        },
    },
    Case {
        name: "metrics/get-history",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                api(&format!(
                    "metrics/get-history?run_id={}&metric_key=m",
                    f.run
                )),
                None,
            )
        },
    },
    Case {
        name: "artifacts/list",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                api(&format!("artifacts/list?run_id={}", f.run)),
                None,
            )
        },
    },
    Case {
        name: "artifact download",
        least: "viewer",
        request: |f| (Method::GET, artifact(f, "a.txt"), None),
    },
    Case {
        name: "artifact listing",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                format!(
                    "/api/2.0/mlflow-artifacts/artifacts?path={}/{}/artifacts",
                    f.exp, f.run
                ),
                None,
            )
        },
    },
    Case {
        name: "get-artifact",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                format!("/get-artifact?run_uuid={}&path=a.txt", f.run),
                None,
            )
        },
    },
    Case {
        name: "registered-models/get",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                api(&format!("registered-models/get?name={}", f.model)),
                None,
            )
        },
    },
    Case {
        name: "registered-models/set-tag",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                api("registered-models/set-tag"),
                Some(json!({"name": f.model, "key": "k", "value": "v"})),
            )
        },
    },
    Case {
        name: "registered-models/alias",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                api("registered-models/alias"),
                Some(json!({"name": f.model, "alias": "staging", "version": "1"})),
            )
        },
    },
    Case {
        name: "registered-models/alias production",
        least: "maintainer",
        request: |f| {
            (
                Method::POST,
                api("registered-models/alias"),
                Some(json!({"name": f.model, "alias": "production", "version": "1"})),
            )
        },
    },
    Case {
        name: "registered-models/delete",
        least: "maintainer",
        request: |f| {
            (
                Method::DELETE,
                api("registered-models/delete"),
                Some(json!({"name": f.model})),
            )
        },
    },
    Case {
        name: "model-versions/get",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                api(&format!("model-versions/get?name={}&version=1", f.model)),
                None,
            )
        },
    },
    Case {
        name: "model-versions/get-download-uri",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                api(&format!(
                    "model-versions/get-download-uri?name={}&version=1",
                    f.model
                )),
                None,
            )
        },
    },
    Case {
        name: "model-versions/create",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                api("model-versions/create"),
                Some(
                    json!({"name": f.model, "source": format!("runs:/{}/a.txt", f.run), "run_id": f.run}),
                ),
            )
        },
    },
    Case {
        name: "model-versions/delete",
        least: "maintainer",
        request: |f| {
            (
                Method::DELETE,
                api("model-versions/delete"),
                Some(json!({"name": f.model, "version": "1"})),
            )
        },
    },
    // ferry's deployments API (see `rollout_ready`).
    Case {
        name: "deployments/create",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                ferry_api("deployments/create"),
                Some(json!({"name": f.model, "rollout": {"candidate": format!("{}/2", f.model)}})),
            )
        },
    },
    Case {
        name: "deployments/get (started)",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                ferry_api(&format!("deployments/get?name={}", f.model)),
                None,
            )
        },
    },
    Case {
        name: "deployments/end abort (started)",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                ferry_api("deployments/end"),
                Some(json!({"name": f.model, "action": "abort"})),
            )
        },
    },
    Case {
        name: "deployments/end promote (started)",
        least: "maintainer",
        request: |f| {
            (
                Method::POST,
                ferry_api("deployments/end"),
                Some(json!({"name": f.model, "action": "promote"})),
            )
        },
    },
    // ferry's costs and budgets API, on the pipeline run they name.
    Case {
        name: "costs/stage",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                ferry_api("costs/stage"),
                Some(json!({
                    "run_id": f.run, "stage": "train", "status": "ran",
                    "started_ms": 1_000, "ended_ms": 61_000, "project": "matrix",
                    "cost": {"charged": 0.5, "basis": "used", "requested": null, "used": 0.5, "machine": "aws-us-east-1"}
                })),
            )
        },
    },
    Case {
        name: "costs/finish",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                ferry_api("costs/finish"),
                Some(json!({"run_id": f.run, "status": "succeeded"})),
            )
        },
    },
    Case {
        name: "costs/recent",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                ferry_api(&format!("costs/recent?run_id={}&stage=train", f.run)),
                None,
            )
        },
    },
    Case {
        name: "budgets/covers",
        least: "viewer",
        request: |f| {
            (
                Method::GET,
                ferry_api(&format!("budgets/covers?run_id={}", f.run)),
                None,
            )
        },
    },
    Case {
        name: "budgets/hold",
        least: "editor",
        request: |f| {
            (
                Method::POST,
                ferry_api("budgets/hold"),
                Some(json!({"run_id": f.run, "estimate_usd": 0.25})),
            )
        },
    },
    Case {
        name: "budgets/override",
        least: "maintainer",
        request: |f| {
            (
                Method::POST,
                ferry_api("budgets/override"),
                Some(json!({"run_id": f.run, "estimate_usd": 0.25})),
            )
        },
    },
];

fn ferry_api(p: &str) -> String {
    format!("/api/2.0/ferry/{p}")
}

/// For the deployments cases: a second version of the fixture's model with
/// `production` on the first; and for a case marked `(started)`, a rollout
/// of the second under way.
async fn rollout_ready(t: &Team, ws: &str, f: &Fixture, case: &str) {
    if !case.starts_with("deployments/") {
        return;
    }
    t.root(
        ws,
        Method::POST,
        &api("model-versions/create"),
        Some(json!({"name": f.model, "source": format!("runs:/{}/a.txt", f.run), "run_id": f.run})),
    )
    .await;
    let (s, v) = t
        .send_with(
            Some(&basic("root")),
            Some(ws),
            &[("x-ferry-reason", "set%20up")],
            Method::POST,
            &api("registered-models/alias"),
            Some(json!({"name": f.model, "alias": "production", "version": "1"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    if case.ends_with("(started)") {
        t.root(
            ws,
            Method::POST,
            &ferry_api("deployments/create"),
            Some(json!({"name": f.model, "rollout": {"candidate": format!("{}/2", f.model)}})),
        )
        .await;
    }
}

#[test]
fn every_route_allows_exactly_the_roles_the_table_names_in_their_own_workspace_only() {
    rt().block_on(async { matrix(&Team::new().await).await });
}

/// The matrix on PostgreSQL: a database of its own on the server
/// `FERRY_TEST_POSTGRES_URL` names (`.ci/run` starts one).
#[cfg(feature = "postgres")]
#[test]
fn the_matrix_holds_on_postgresql() {
    rt().block_on(async {
        let admin = std::env::var("FERRY_TEST_POSTGRES_URL")
            .expect("the postgres feature needs FERRY_TEST_POSTGRES_URL");
        let url = ferry_metadata::SqlStore::scratch_database(&admin, "ferry_auth")
            .await
            .unwrap();
        let t = Team::on(tempfile::tempdir().unwrap(), &url).await;
        matrix(&t).await;
    });
}

async fn matrix(t: &Team) {
    let mut failures = Vec::new();
    let mut n = 0;
    for case in CASES {
        for (user, home, role) in USERS.iter().copied().chain([("root", "", "")]) {
            for ws in ["team-a", "team-b"] {
                n += 1;
                let f = fixture(t, ws, n).await;
                rollout_ready(t, ws, &f, case.name).await;
                let (method, uri, body) = (case.request)(&f);
                // A reason, which moving a protected alias needs (and the
                // other routes ignore).
                let why = [("x-ferry-reason", "the%20matrix")];
                let (status, v) = t
                    .send_with(Some(&basic(user)), None, &why, method, &uri, body)
                    .await;
                let allowed = user == "root" || (home == ws && rank(role) >= rank(case.least));
                let ok = if allowed {
                    status == StatusCode::OK
                } else {
                    status == StatusCode::FORBIDDEN && v == json!("Permission denied")
                };
                if !ok {
                    failures.push(format!(
                        "{} as {user} ({role} of {home:?}) on {ws}: {status} {v}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn refusals_are_mlflows_and_say_nothing_about_who_exists() {
    rt().block_on(async {
        let t = Team::new().await;
        let get = api("experiments/get?experiment_id=0");
        let resp = t
            .router
            .clone()
            .oneshot(Request::builder().uri(&get).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"mlflow\"");
        let unknown = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ghost:ghost-long-password")
        );
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("editor-a:not-the-password")
        );
        let bearer = format!("Bearer ferry_{}_{}", "0".repeat(16), "a".repeat(64));
        let mut bodies = Vec::new();
        for a in [unknown.as_str(), &wrong, &bearer, "Basic !!!", "Digest x"] {
            let (s, v) = t.send(Some(a), None, Method::GET, &get, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{a}");
            bodies.push(v);
        }
        assert!(
            bodies.iter().all(|b| b == &bodies[0]),
            "one answer for every failure"
        );
        assert!(
            bodies[0]
                .as_str()
                .unwrap()
                .starts_with("You are not authenticated.")
        );
        // Health needs nothing; an unknown route is 403 for a user, 404 for an admin.
        let (s, _) = t.send(None, None, Method::GET, "/health", None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::GET,
                "/api/2.0/mlflow/nothing",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = t
            .send(
                Some(&basic("root")),
                None,
                Method::GET,
                "/api/2.0/mlflow/nothing",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Failed logins are in the audit log, without the password.
        let entries = t.store.audit_entries(&Default::default()).await.unwrap();
        let logins: Vec<_> = entries
            .iter()
            .filter(|e| e.event.action == "auth.login")
            .collect();
        assert_eq!(logins.len(), 6, "{entries:#?}");
        assert!(logins.iter().any(|e| e.event.actor == "ghost"));
        let text = format!("{entries:?}");
        assert!(!text.contains("not-the-password") && !text.contains(&"a".repeat(64)));
    });
}

/// A token for `user` in the store, limited as given; its text.
async fn token(
    t: &Team,
    user: &str,
    workspace: Option<&str>,
    role: Option<&str>,
    expires_ms: Option<i64>,
) -> (String, String) {
    let u = t.store.get_user(user).await.unwrap().unwrap();
    let issued = ferry_auth::secret::issue_token().unwrap();
    t.store
        .create_token(&ferry_metadata::Token {
            id: issued.id.clone(),
            user_id: u.id,
            name: "test".into(),
            workspace: workspace.map(str::to_owned),
            role: role.map(str::to_owned),
            secret_hash: issued.secret_hash.clone(),
            created_ms: 1,
            expires_ms,
            revoked_ms: None,
        })
        .await
        .unwrap();
    (format!("Bearer {}", issued.text), issued.id)
}

#[test]
fn tokens_are_limited_to_their_workspace_and_role_and_refused_once_revoked_or_expired() {
    rt().block_on(async {
        let t = Team::new().await;
        let a = fixture(&t, "team-a", 1).await;
        let log = json!({"run_id": a.run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0});
        let (full, id) = token(&t, "editor-a", None, None, None).await;
        let (s, _) = t
            .send(
                Some(&full),
                None,
                Method::POST,
                &api("runs/log-metric"),
                Some(log.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "a token acts as its user");
        // A viewer-limited token of an editor reads but does not write.
        let (viewer, _) = token(&t, "editor-a", Some("team-a"), Some("viewer"), None).await;
        let (s, _) = t
            .send(
                Some(&viewer),
                None,
                Method::POST,
                &api("runs/log-metric"),
                Some(log.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = t
            .send(
                Some(&viewer),
                None,
                Method::GET,
                &api(&format!("runs/get?run_id={}", a.run)),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        // Limited to team-a: naming another workspace is refused.
        let (s, _) = t
            .send(
                Some(&viewer),
                Some("team-b"),
                Method::GET,
                &api(&format!("runs/get?run_id={}", a.run)),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // An admin's token limited to a role is no admin.
        let (limited_root, _) = token(&t, "root", Some("team-b"), Some("editor"), None).await;
        let (s, _) = t
            .send(
                Some(&limited_root),
                None,
                Method::POST,
                &api("runs/log-metric"),
                Some(log.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Expired: refused.
        let (old, _) = token(&t, "editor-a", None, None, Some(2)).await;
        let (s, _) = t
            .send(
                Some(&old),
                None,
                Method::POST,
                &api("runs/log-metric"),
                Some(log.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // Revoked in the store (the CLI): refused from the next poll on.
        t.store.revoke_token(&id, 3).await.unwrap();
        t.gate.refresh().await.unwrap();
        let (s, _) = t
            .send(
                Some(&full),
                None,
                Method::POST,
                &api("runs/log-metric"),
                Some(log),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    });
}

#[test]
fn listings_show_each_team_only_its_own_and_creators_manage_what_they_make() {
    rt().block_on(async {
        let t = Team::new().await;
        let a = fixture(&t, "team-a", 1).await;
        let b = fixture(&t, "team-b", 2).await;
        let names = |v: &Value, field: &str, key: &str| -> Vec<String> {
            v[field]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|r| r[key].as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let (s, v) = t
            .send(
                Some(&basic("editor-b")),
                None,
                Method::POST,
                &api("experiments/search"),
                Some(json!({"max_results": 100})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            names(&v, "experiments", "experiment_id"),
            vec![b.exp.clone()]
        );
        let (_, v) = t
            .send(
                Some(&basic("viewer-a")),
                None,
                Method::GET,
                &api("registered-models/search"),
                None,
            )
            .await;
        assert_eq!(
            names(&v, "registered_models", "name"),
            vec![a.model.clone()]
        );
        let (_, v) = t
            .send(
                Some(&basic("nobody")),
                None,
                Method::GET,
                &api("model-versions/search"),
                None,
            )
            .await;
        assert_eq!(names(&v, "model_versions", "name"), Vec::<String>::new());
        let (_, v) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::POST,
                &api("runs/search"),
                Some(json!({"experiment_ids": [a.exp, b.exp]})),
            )
            .await;
        let runs: Vec<String> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["info"]["run_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(runs, vec![a.run.clone()]);

        // A run is recorded as the authenticated user's, whoever the
        // client says started it.
        let (s, v) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::POST,
                &api("runs/create"),
                Some(json!({"experiment_id": a.exp, "user_id": "admin",
                    "tags": [{"key": "mlflow.user", "value": "admin"}]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["run"]["info"]["user_id"], "editor-a");
        let user_tags: Vec<&Value> = v["run"]["data"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["key"] == "mlflow.user")
            .collect();
        assert_eq!(user_tags.len(), 1);
        assert_eq!(user_tags[0]["value"], "editor-a");

        // An editor creates in their workspace (named by nothing: their only
        // one), and manages what they made: deleting needs MANAGE.
        let (s, v) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::POST,
                &api("experiments/create"),
                Some(json!({"name": "mine"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mine = v["experiment_id"].as_str().unwrap().to_owned();
        assert_eq!(
            t.store
                .workspace_of(ferry_auth::ResourceType::Experiment, &mine)
                .await
                .unwrap(),
            "team-a"
        );
        let (s, _) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::POST,
                &api("experiments/delete"),
                Some(json!({"experiment_id": mine})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        // Not in a workspace they are not a member of.
        let (s, _) = t
            .send(
                Some(&basic("editor-a")),
                Some("team-b"),
                Method::POST,
                &api("experiments/create"),
                Some(json!({"name": "theirs"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // An artifact path that is no run's folder is denied, even listed.
        let (s, _) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::GET,
                &format!("/api/2.0/mlflow-artifacts/artifacts?path={}", a.exp),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    });
}

#[test]
fn without_users_the_gate_lets_everything_through_until_the_first_is_made() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        let store: Arc<dyn MetadataStore> =
            Arc::new(ferry_metadata::SqlStore::open(&url).await.unwrap());
        let gate = Gate::new(store.clone()).await.unwrap();
        assert!(!gate.is_on());
        let router = router(
            AppState {
                store: store.clone(),
                artifacts: Arc::new(ArtifactRoot::new(&dir.path().join("a")).unwrap()),
                bodies: ferry_http::BodyBudget::default(),
                webhook_hosts: std::sync::Arc::new([]),
                dashboard: Default::default(),
                hooks: None,
            },
            Some(gate.clone()),
        );
        let get = || {
            Request::builder()
                .uri("/api/2.0/mlflow/experiments/get?experiment_id=0")
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(
            router.clone().oneshot(get()).await.unwrap().status(),
            StatusCode::OK
        );
        // The auth API is not a way in while there is no one.
        let create = Request::builder()
            .method(Method::POST)
            .uri("/api/2.0/mlflow/users/create")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"username":"me","password":"a-long-password"}"#,
            ))
            .unwrap();
        assert_eq!(
            router.clone().oneshot(create).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        store
            .create_user(&NewUser {
                username: "first".into(),
                password_hash: Some(ferry_auth::secret::hash_password(&password("first")).unwrap()),
                is_admin: true,
                service: false,
                created_ms: 1,
            })
            .await
            .unwrap();
        gate.refresh().await.unwrap();
        assert!(gate.is_on());
        assert_eq!(
            router.clone().oneshot(get()).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    });
}

#[test]
fn the_auth_api_makes_users_and_grants_as_mlflows_does_and_the_log_verifies() {
    rt().block_on(async {
        let t = Team::new().await;
        let a = fixture(&t, "team-a", 1).await;
        let v3 = |p: &str| format!("/api/3.0/mlflow/{p}");
        let new_user = json!({"username": "carol", "password": password("carol")});
        let (s, _) = t.send(Some(&basic("editor-a")), None, Method::POST, &api("users/create"), Some(new_user.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "only admins and workspace admins make users");
        let (s, v) = t.send(Some(&basic("admin-a")), None, Method::POST, &api("users/create"), Some(new_user.clone())).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["user"]["username"], "carol");
        let (s, v) = t.send(Some(&basic("root")), None, Method::POST, &api("users/create"), Some(new_user)).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS")));
        let short = json!({"username": "dan", "password": "short"});
        let (s, v) = t.send(Some(&basic("root")), None, Method::POST, &api("users/create"), Some(short)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

        // Carol may read the experiment once its manager grants it.
        let get = api(&format!("experiments/get?experiment_id={}", a.exp));
        let (s, _) = t.send(Some(&basic("carol")), None, Method::GET, &get, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let grant = json!({"username": "carol", "resource_type": "experiment", "resource_id": a.exp, "permission": "READ"});
        let (s, _) = t.send(Some(&basic("editor-a")), None, Method::POST, &v3("users/permissions/grant"), Some(grant.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "EDIT does not grant");
        let (s, v) = t.send(Some(&basic("maintainer-a")), None, Method::POST, &v3("users/permissions/grant"), Some(grant.clone())).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, _) = t.send(Some(&basic("carol")), None, Method::GET, &get, None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = t.send(Some(&basic("root")), None, Method::POST, &v3("users/permissions/grant"), Some(grant)).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS")));
        let q = v3(&format!("users/permissions/get?username=carol&resource_type=experiment&resource_id={}", a.exp));
        let (_, v) = t.send(Some(&basic("carol")), None, Method::GET, &q, None).await;
        assert_eq!(v, json!({"allowed": false, "permission": "READ"}));
        let revoke = json!({"username": "carol", "resource_type": "experiment", "resource_id": a.exp});
        let (s, _) = t.send(Some(&basic("maintainer-a")), None, Method::POST, &v3("users/permissions/revoke"), Some(revoke)).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = t.send(Some(&basic("carol")), None, Method::GET, &get, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "revoked at once");

        // Every change and denial is in the log, and the chain holds.
        let entries = t.store.audit_entries(&Default::default()).await.unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.event.action.as_str()).collect();
        for want in ["user.create", "permission.grant", "permission.revoke", "experiment.create"] {
            assert!(actions.contains(&want), "{want} in {actions:?}");
        }
        assert!(entries.iter().any(|e| e.event.outcome == "denied" && e.event.actor == "carol"));
        let head = t.store.audit_head().await.unwrap();
        let n = ferry_auth::audit::verify(&entries, head.as_ref().map(|(s, h)| (*s, h.as_str()))).unwrap();
        assert_eq!(n as usize, entries.len());
    });
}

#[test]
fn a_protected_alias_moves_by_hand_only_for_a_maintainer_who_says_why() {
    rt().block_on(async {
        let t = Team::new().await;
        let f = fixture(&t, "team-a", 1).await;
        let alias = |alias: &str| Some(json!({"name": f.model, "alias": alias, "version": "1"}));
        let uri = api("registered-models/alias");
        // An editor: refused whatever the reason.
        let why = [("x-ferry-reason", "hotfix%20%E2%80%94%20rollback%20of%20v2")];
        let said = Some("hotfix \u{2014} rollback of v2");
        let (s, _) = t
            .send_with(
                Some(&basic("editor-a")),
                None,
                &why,
                Method::POST,
                &uri,
                alias("production"),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // A maintainer without a reason: told what to give.
        let (s, v) = t
            .send(
                Some(&basic("maintainer-a")),
                None,
                Method::POST,
                &uri,
                alias("production"),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.contains("protected alias") && msg.contains("--reason"),
            "{msg}"
        );
        // With one: moved, and the reason is in the alias history and the log.
        let (s, v) = t
            .send_with(
                Some(&basic("maintainer-a")),
                None,
                &why,
                Method::POST,
                &uri,
                alias("production"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let events = t.store.alias_events(&f.model).await.unwrap();
        assert_eq!(events.last().unwrap().reason.as_deref(), said);
        let log = t.store.audit_entries(&Default::default()).await.unwrap();
        let moved = log
            .iter()
            .rev()
            .find(|e| e.event.action == "registered_model.alias.set")
            .unwrap();
        assert_eq!(
            (
                moved.event.actor.as_str(),
                moved.event.outcome.as_str(),
                moved.event.reason.as_deref()
            ),
            ("maintainer-a", "allowed", said)
        );

        // The model names its own protected aliases; only a maintainer
        // changes that list.
        let tag =
            |v: &str| Some(json!({"name": f.model, "key": "ferry.protected_aliases", "value": v}));
        let set_tag = api("registered-models/set-tag");
        let (s, _) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::POST,
                &set_tag,
                tag(""),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "an editor cannot unprotect");
        let (s, v) = t
            .send(
                Some(&basic("maintainer-a")),
                None,
                Method::POST,
                &set_tag,
                tag("staging"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::POST,
                &uri,
                alias("production"),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "production is not protected on this model now: {v}"
        );
        let (s, _) = t
            .send_with(
                Some(&basic("editor-a")),
                None,
                &why,
                Method::POST,
                &uri,
                alias("staging"),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "staging is");
    });
}

#[test]
fn what_does_not_exist_is_the_routes_404_not_a_refusal() {
    rt().block_on(async {
        let t = Team::new().await;
        let f = fixture(&t, "team-a", 1).await;
        for user in ["editor-a", "editor-b"] {
            let (s, v) = t
                .send(
                    Some(&basic(user)),
                    None,
                    Method::GET,
                    &api("registered-models/get?name=nope"),
                    None,
                )
                .await;
            assert_eq!(
                (s, v["error_code"].as_str()),
                (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST")),
                "{user}: {v}"
            );
            let (s, _) = t
                .send(
                    Some(&basic(user)),
                    None,
                    Method::GET,
                    &api("runs/get?run_id=0123456789abcdef0123456789abcdef"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{user}");
        }
        // A logged model named by an encoded id (which the route would
        // decode into another) is refused, never taken for a missing one.
        let (s, _) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::GET,
                "/api/2.0/mlflow/logged-models/m-%30123",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // What exists in another workspace stays refused.
        let (s, _) = t
            .send(
                Some(&basic("editor-b")),
                None,
                Method::GET,
                &api(&format!("registered-models/get?name={}", f.model)),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    });
}

#[test]
fn roles_are_updated_in_place_by_those_who_manage_them() {
    rt().block_on(async {
        let t = Team::new().await;
        let api3 = |p: &str| format!("/api/3.0/mlflow/{p}");
        let role = t
            .root("team-a", Method::POST, &api3("roles/create"), Some(json!({"workspace": "team-a", "name": "readers"})))
            .await["role"]["id"]
            .as_i64()
            .unwrap();
        let grant = t
            .root(
                "team-a",
                Method::POST,
                &api3("roles/permissions/add"),
                Some(json!({"role_id": role, "resource_type": "experiment", "resource_pattern": "*", "permission": "READ"})),
            )
            .await["role_permission"]["id"]
            .as_i64()
            .unwrap();
        let rename = json!({"role_id": role, "name": "auditors"});
        let level = json!({"role_permission_id": grant, "permission": "EDIT"});
        // An editor of the workspace manages no role; team B's admin none of team A's.
        for who in ["editor-a", "editor-b"] {
            let (s, _) = t.send(Some(&basic(who)), None, Method::PATCH, &api3("roles/update"), Some(rename.clone())).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{who}");
            let (s, _) = t
                .send(Some(&basic(who)), None, Method::PATCH, &api3("roles/permissions/update"), Some(level.clone()))
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{who}");
        }
        // The workspace's admin does.
        let (s, v) = t.send(Some(&basic("admin-a")), None, Method::PATCH, &api3("roles/update"), Some(rename)).await;
        assert_eq!((s, v["role"]["name"].as_str()), (StatusCode::OK, Some("auditors")), "{v}");
        let (s, v) = t
            .send(Some(&basic("admin-a")), None, Method::PATCH, &api3("roles/permissions/update"), Some(level))
            .await;
        assert_eq!((s, v["role_permission"]["permission"].as_str()), (StatusCode::OK, Some("EDIT")), "{v}");
        // What MLflow refuses, refused alike.
        let (s, v) = t
            .send(Some(&basic("admin-a")), None, Method::PATCH, &api3("roles/update"), Some(json!({"role_id": role})))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["message"].as_str().unwrap().contains("At least one of 'name' or 'description'"));
        let bad = json!({"role_permission_id": grant, "permission": "OWNER"});
        let (s, _) = t.send(Some(&basic("admin-a")), None, Method::PATCH, &api3("roles/permissions/update"), Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // Who holds it, for those who manage it.
        let uid = t.store.get_user("viewer-a").await.unwrap().unwrap().id;
        t.store.assign(uid, role).await.unwrap();
        let (s, v) = t
            .send(Some(&basic("admin-a")), None, Method::GET, &api3(&format!("roles/users/list?role_id={role}")), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["assignments"][0]["user_id"].as_i64(), Some(uid), "{v}");
        let (s, _) = t
            .send(Some(&basic("viewer-a")), None, Method::GET, &api3(&format!("roles/users/list?role_id={role}")), None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Each change is in the log.
        let log = t.store.audit_entries(&Default::default()).await.unwrap();
        for action in ["role.update", "role.permission.update"] {
            assert!(log.iter().any(|e| e.event.action == action && e.event.actor == "admin-a"), "{action}");
        }
    });
}

#[test]
fn a_group_holds_a_role_for_every_member() {
    rt().block_on(async {
        let t = Team::new().await;
        let f = fixture(&t, "team-a", 1).await;
        let read = format!("registered-models/get?name={}", f.model);
        let (s, _) = t
            .send(
                Some(&basic("nobody")),
                Some("team-a"),
                Method::GET,
                &api(&read),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let g = t.store.create_group("readers").await.unwrap();
        let role = ferry_metadata::builtin_role_in(t.store.as_ref(), "team-a", "viewer")
            .await
            .unwrap()
            .unwrap();
        t.store.assign_group(g.id, role.id).await.unwrap();
        let nobody = t.store.get_user("nobody").await.unwrap().unwrap();
        t.store.add_to_group(g.id, nobody.id).await.unwrap();
        // What the poll does within a second.
        t.gate.refresh().await.unwrap();
        let (s, v) = t
            .send(Some(&basic("nobody")), None, Method::GET, &api(&read), None)
            .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "the group's only workspace is theirs: {v}"
        );
        t.store.remove_from_group(g.id, nobody.id).await.unwrap();
        t.gate.refresh().await.unwrap();
        let (s, _) = t
            .send(
                Some(&basic("nobody")),
                Some("team-a"),
                Method::GET,
                &api(&read),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    });
}

/// An identity provider for the tests: an ES256 key, its JWKS, and the ID
/// tokens it signs.
struct Idp {
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl Idp {
    fn new() -> Self {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING as ALG, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ALG, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &rng).unwrap();
        Idp { key, rng }
    }

    fn jwks(&self) -> String {
        use ring::signature::KeyPair as _;
        let p = self.key.public_key().as_ref();
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid(), "x": enc(&p[1..33]), "y": enc(&p[33..65])}]})
            .to_string()
    }

    /// The key's id: its public point's first bytes.
    fn kid(&self) -> String {
        use ring::signature::KeyPair as _;
        let p = self.key.public_key().as_ref();
        p[1..9].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn provider(&self) -> ferry_auth::oidc::Provider {
        Idp::provider_of(&self.jwks())
    }

    fn provider_of(jwks: &str) -> ferry_auth::oidc::Provider {
        let config = ferry_auth::oidc::OidcConfig {
            issuer: "https://idp.test".into(),
            audience: "ferry".into(),
            user_claim: "preferred_username".into(),
            groups_claim: Some("groups".into()),
        };
        ferry_auth::oidc::Provider::new(config, jwks).unwrap()
    }

    fn token(&self, user: &str, groups: &[&str], exp_s: i64) -> String {
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = enc(json!({"alg": "ES256", "kid": self.kid(), "typ": "JWT"})
            .to_string()
            .as_bytes());
        let claims = json!({"iss": "https://idp.test", "aud": "ferry", "exp": exp_s,
                            "preferred_username": user, "groups": groups});
        let signed = format!("{header}.{}", enc(claims.to_string().as_bytes()));
        let sig = self.key.sign(&self.rng, signed.as_bytes()).unwrap();
        format!("Bearer {signed}.{}", enc(sig.as_ref()))
    }
}

#[test]
fn single_sign_on_id_tokens_name_the_user_and_the_groups_that_give_them_roles() {
    rt().block_on(async {
        let idp = Idp::new();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        let sso = ferry_access::Sso {
            provider: idp.provider(),
            reload: None,
        };
        let t = Team::with_sso(dir, &url, Some(sso)).await;
        let a = fixture(&t, "team-a", 1).await;
        let b = fixture(&t, "team-b", 2).await;
        let g = t.store.create_group("scientists").await.unwrap();
        let role = ferry_metadata::builtin_role_in(t.store.as_ref(), "team-a", "editor")
            .await
            .unwrap()
            .unwrap();
        t.store.assign_group(g.id, role.id).await.unwrap();
        t.gate.refresh().await.unwrap();
        let later = ferry_core::now_ms() / 1000 + 3600;
        let get = |m: &str| api(&format!("registered-models/get?name={m}"));

        // Ida is no ferry user yet: made at her first sign-in, and the group
        // her provider names gives her team A.
        let ida = idp.token("ida", &["scientists", "unknown-group"], later);
        let (s, v) = t
            .send(Some(&ida), None, Method::GET, &get(&a.model), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, _) = t
            .send(Some(&ida), None, Method::GET, &get(&b.model), None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = t
            .send(
                Some(&ida),
                None,
                Method::POST,
                &api("experiments/create"),
                Some(json!({"name": "ida-exp"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mine = v["experiment_id"].as_str().unwrap().to_owned();
        // Without the group, nothing.
        let (s, _) = t
            .send(
                Some(&idp.token("ida", &[], later)),
                None,
                Method::GET,
                &get(&a.model),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // A ferry user with their own credentials (here a password) is not
        // the provider's to name, nor is the server admin.
        for name in ["editor-b", "root"] {
            let (s, _) = t
                .send(
                    Some(&idp.token(name, &[], later)),
                    None,
                    Method::GET,
                    &get(&b.model),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{name}");
        }
        // Expired, or signed by someone else: 401, and the failed login is logged.
        let stale = idp.token("ida", &["scientists"], ferry_core::now_ms() / 1000 - 3600);
        let forged = Idp::new().token("root", &[], later);
        for bad in [stale, forged] {
            let (s, _) = t
                .send(Some(&bad), None, Method::GET, &get(&a.model), None)
                .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
        let log = t.store.audit_entries(&Default::default()).await.unwrap();
        assert!(
            log.iter()
                .any(|e| e.event.actor == "ida" && e.event.action == "experiment.create")
        );
        assert!(
            log.iter()
                .any(|e| e.event.actor == "oidc" && e.event.resource == "user:ida")
        );
        let made = t.store.get_user("ida").await.unwrap().unwrap();
        assert!(made.password_hash.is_none() && !made.is_admin);
        // What she made is hers to delete, not every signed-in editor's.
        let delete = json!({"experiment_id": mine});
        let ivo = idp.token("ivo", &["scientists"], later);
        let (s, _) = t
            .send(
                Some(&ivo),
                None,
                Method::POST,
                &api("experiments/delete"),
                Some(delete.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = t
            .send(
                Some(&ida),
                None,
                Method::POST,
                &api("experiments/delete"),
                Some(delete),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    });
}

#[test]
fn a_key_the_provider_rotated_in_is_read_again_at_most_once_a_minute() {
    rt().block_on(async {
        let (old, new, newer) = (Idp::new(), Idp::new(), Idp::new());
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = reads.clone();
        let published = new.jwks();
        let reload: ferry_access::Reload = std::sync::Arc::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Idp::provider_of(&published))
        });
        let sso = ferry_access::Sso {
            provider: old.provider(),
            reload: Some(reload),
        };
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        let t = Team::with_sso(dir, &url, Some(sso)).await;
        let later = ferry_core::now_ms() / 1000 + 3600;
        let me = api("users/current");
        let count = || reads.load(std::sync::atomic::Ordering::SeqCst);
        // Signed with the key the provider rotated in: read, then accepted.
        let (s, v) = t
            .send(
                Some(&new.token("ida", &[], later)),
                None,
                Method::GET,
                &me,
                None,
            )
            .await;
        assert_eq!((s, count()), (StatusCode::OK, 1), "{v}");
        // The old key is gone with the rotation.
        let (s, _) = t
            .send(
                Some(&old.token("ida", &[], later)),
                None,
                Method::GET,
                &me,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // Another unknown key within the minute: not read again.
        let (s, _) = t
            .send(
                Some(&newer.token("ida", &[], later)),
                None,
                Method::GET,
                &me,
                None,
            )
            .await;
        assert_eq!((s, count()), (StatusCode::UNAUTHORIZED, 1));
    });
}

#[test]
fn a_body_never_borrows_ids_from_the_query_string() {
    rt().block_on(async {
        let t = Team::new().await;
        let a = fixture(&t, "team-a", 1).await;
        // The gate must decide on the body's model (team A's, protected
        // alias), not on a missing one the query string names.
        let uri = format!("{}?name=nope", api("registered-models/alias"));
        let body = json!({"name": a.model, "alias": "production", "version": "1", "key": 0});
        let (s, _) = t
            .send(
                Some(&basic("editor-b")),
                None,
                Method::POST,
                &uri,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let runs = format!("{}?run_id=nope", api("runs/log-metric"));
        let body =
            json!({"run_id": a.run, "key": "m", "value": 1, "timestamp": 1, "step": 0, "alias": 7});
        let (s, _) = t
            .send(
                Some(&basic("editor-b")),
                None,
                Method::POST,
                &runs,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // An experiment id is decided as the route parses it.
        let tag = json!({"experiment_id": format!(" 0{}", a.exp), "key": "k", "value": "v"});
        let (s, _) = t
            .send(
                Some(&basic("editor-b")),
                None,
                Method::POST,
                &api("experiments/set-experiment-tag"),
                Some(tag),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // And `*` names no model.
        let (s, _) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::POST,
                &api("registered-models/create"),
                Some(json!({"name": "*"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn a_model_holding_a_protected_alias_is_renamed_only_by_a_maintainer() {
    rt().block_on(async {
        let t = Team::new().await;
        let f = fixture(&t, "team-a", 1).await;
        let why = [("x-ferry-reason", "release")];
        let alias = json!({"name": f.model, "alias": "production", "version": "1"});
        let (s, _) = t
            .send_with(
                Some(&basic("root")),
                Some("team-a"),
                &why,
                Method::POST,
                &api("registered-models/alias"),
                Some(alias),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let rename = json!({"name": f.model, "new_name": "renamed"});
        let (s, _) = t
            .send(
                Some(&basic("editor-a")),
                None,
                Method::POST,
                &api("registered-models/rename"),
                Some(rename.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = t
            .send(
                Some(&basic("maintainer-a")),
                None,
                Method::POST,
                &api("registered-models/rename"),
                Some(rename),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // It stays team A's under its new name.
        let (s, _) = t
            .send(
                Some(&basic("editor-b")),
                None,
                Method::GET,
                &api("registered-models/get?name=renamed"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = t
            .send(
                Some(&basic("viewer-a")),
                None,
                Method::GET,
                &api("registered-models/get?name=renamed"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    });
}

#[test]
fn rollouts_start_and_end_through_the_server_by_role_and_are_audited() {
    rt().block_on(async {
        let t = Team::new().await;
        let f = fixture(&t, "team-a", 1).await;
        rollout_ready(&t, "team-a", &f, "deployments/create").await;
        let fb = fixture(&t, "team-b", 2).await;
        rollout_ready(&t, "team-b", &fb, "deployments/create (started)").await;
        let create = ferry_api("deployments/create");
        let body = |m: &str, v: &str| Some(json!({"name": m, "rollout": {"candidate": format!("{m}/{v}"), "steps": [50, 100], "reason": "v2 looks better"}}));

        // The gate decides on `name`: a rollout naming another model is refused.
        let (s, v) = t
            .send(Some(&basic("editor-a")), None, Method::POST, &create, Some(json!({"name": f.model, "rollout": {"candidate": format!("{}/2", fb.model)}})))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        // A viewer may not start one; an editor may.
        let (s, _) = t.send(Some(&basic("viewer-a")), None, Method::POST, &create, body(&f.model, "2")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = t.send(Some(&basic("editor-a")), None, Method::POST, &create, body(&f.model, "2")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["deployment"]["candidate"], json!(2));
        assert_eq!(v["deployment"]["stable"], json!(1));
        assert_eq!(v["gateways"], json!([]));
        // The same rules as on a store: one active rollout per model, and a
        // version that does not exist is 404.
        let (s, v) = t.send(Some(&basic("editor-a")), None, Method::POST, &create, body(&f.model, "2")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let (s, _) = t.send(Some(&basic("editor-a")), None, Method::POST, &create, body(&f.model, "9")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Each team lists only its own rollouts.
        let (s, v) = t.send(Some(&basic("viewer-a")), None, Method::GET, &ferry_api("deployments/list"), None).await;
        assert_eq!(s, StatusCode::OK);
        let models: Vec<&str> = v["deployments"].as_array().unwrap().iter().map(|d| d["model"].as_str().unwrap()).collect();
        assert_eq!(models, [f.model.as_str()]);
        let (s, _) = t.send(Some(&basic("editor-b")), None, Method::GET, &ferry_api(&format!("deployments/get?name={}", f.model)), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // Promoting by hand: not an editor's; a maintainer's with a reason.
        let end = ferry_api("deployments/end");
        let promote = Some(json!({"name": f.model, "action": "promote"}));
        let why = [("x-ferry-reason", "the%20canary%20is%20fine")];
        let (s, _) = t.send_with(Some(&basic("editor-a")), None, &why, Method::POST, &end, promote.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = t.send(Some(&basic("maintainer-a")), None, Method::POST, &end, promote.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["message"].as_str().unwrap().contains("--reason"), "{v}");
        let (s, v) = t.send_with(Some(&basic("maintainer-a")), None, &why, Method::POST, &end, promote.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["deployment"]["phase"], json!("promoted"));
        let prod = t.store.resolve_alias(&f.model, "production").await.unwrap().unwrap();
        assert_eq!(prod.version, 2);
        let (s, v) = t.send_with(Some(&basic("maintainer-a")), None, &why, Method::POST, &end, promote).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "already ended: {v}");

        // An editor of team B aborts team B's rollout.
        let (s, v) = t.send(Some(&basic("editor-b")), None, Method::POST, &end, Some(json!({"name": fb.model, "action": "abort"}))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["unjudged"], json!(true));

        // Who did each, with what, from where.
        let log = t.store.audit_entries(&Default::default()).await.unwrap();
        let find = |action: &str, actor: &str| {
            log.iter().find(|e| e.event.action == action && e.event.actor == actor).unwrap_or_else(|| panic!("no {action} by {actor}"))
        };
        let started = find("deployment.start", "editor-a");
        assert!(started.event.reason.as_deref().unwrap().contains("v2 looks better"));
        let promoted = find("deployment.promote", "maintainer-a");
        assert!(promoted.event.reason.as_deref().unwrap().contains("the canary is fine"));
        find("deployment.abort", "editor-b");
        // The editor's refused promotion is there too.
        assert!(log.iter().any(|e| e.event.actor == "editor-a"
            && e.event.outcome == "denied"
            && e.event.resource == format!("registered_model:{}", f.model)));
        let head = t.store.audit_head().await.unwrap();
        let n = ferry_auth::audit::verify(&log, head.as_ref().map(|(s, h)| (*s, h.as_str()))).unwrap();
        assert_eq!(n as usize, log.len());
    });
}

#[test]
fn the_dashboard_shows_each_team_only_its_own() {
    rt().block_on(async {
        let t = Team::new().await;
        let a = fixture(&t, "team-a", 1).await;
        let b = fixture(&t, "team-b", 2).await;
        let page = |user: Option<&'static str>, uri: String| {
            let t = &t;
            async move {
                let auth = user.map(basic);
                t.send(auth.as_deref(), None, Method::GET, &uri, None).await
            }
        };
        let (s, v) = page(Some("editor-b"), "/ui/models".into()).await;
        assert_eq!(s, StatusCode::OK);
        let html = v.as_str().unwrap();
        assert!(
            html.contains(&b.model) && !html.contains(&a.model),
            "{html}"
        );
        let (s, _) = page(Some("editor-b"), format!("/ui/models/{}", a.model)).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "another team's model is not there"
        );
        let (s, v) = page(Some("viewer-a"), "/ui/models".into()).await;
        assert_eq!(s, StatusCode::OK);
        let html = v.as_str().unwrap();
        assert!(
            html.contains(&a.model) && !html.contains(&b.model),
            "{html}"
        );
        // Someone with no role sees no team's; the server admin every one.
        let (_, v) = page(Some("nobody"), "/ui/models".into()).await;
        let html = v.as_str().unwrap();
        assert!(
            !html.contains(&a.model) && !html.contains(&b.model),
            "{html}"
        );
        let (_, v) = page(Some("root"), "/ui/models".into()).await;
        let html = v.as_str().unwrap();
        assert!(html.contains(&a.model) && html.contains(&b.model), "{html}");
        // Without credentials, no page at all.
        for uri in ["/", "/ui/runs", "/ui/models", "/ui/static/app.css"] {
            let (s, _) = page(None, uri.into()).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        }
        // What a browser asks of every site: nothing, to anyone.
        let (s, _) = page(None, "/favicon.ico".into()).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    });
}

#[test]
fn cost_reports_show_each_team_only_its_own() {
    rt().block_on(async {
        let t = Team::new().await;
        for (ws, n) in [("team-a", 1), ("team-b", 2)] {
            let f = fixture(&t, ws, n).await;
            t.root(
                ws,
                Method::POST,
                &ferry_api("costs/stage"),
                Some(json!({
                    "run_id": f.run, "stage": "train", "status": "ran",
                    "started_ms": 1_000, "ended_ms": 61_000, "project": ws,
                    "cost": {"charged": 0.5, "basis": "used", "requested": null, "used": 0.5, "machine": "aws-us-east-1"}
                })),
            )
            .await;
        }
        let keys = |v: &Value| -> Vec<String> {
            v["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["key"].as_str().unwrap().to_owned())
                .collect()
        };
        let report = ferry_api("costs/report?by=team&since_ms=0");
        let (s, v) = t
            .send(Some(&basic("viewer-a")), None, Method::GET, &report, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(keys(&v), vec!["team-a"]);
        let (_, v) = t
            .send(
                Some(&basic("editor-b")),
                None,
                Method::GET,
                &ferry_api("costs/report?by=pipeline&since_ms=0"),
                None,
            )
            .await;
        assert_eq!(v["lines"].as_array().map(Vec::len), Some(1), "{v}");
        let (_, v) = t
            .send(Some(&basic("nobody")), None, Method::GET, &report, None)
            .await;
        assert_eq!(keys(&v), Vec::<String>::new());
        let (_, v) = t
            .send(Some(&basic("root")), None, Method::GET, &report, None)
            .await;
        assert_eq!(keys(&v), vec!["team-a", "team-b"]);
        // A token limited to a workspace sees that one, even an admin's.
        let (bearer, _) = token(&t, "root", Some("team-a"), None, None).await;
        let (_, v) = t.send(Some(&bearer), None, Method::GET, &report, None).await;
        assert_eq!(keys(&v), vec!["team-a"]);

        // Budgets likewise.
        for ws in ["team-a", "team-b"] {
            let (s, v) = t
                .send(
                    Some(&basic("root")),
                    None,
                    Method::POST,
                    &ferry_api("budgets/set"),
                    Some(json!({"target": ws, "monthly_usd": 100.0})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        let budgets = |v: &Value| -> Vec<String> {
            v["budgets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["budget"].as_str().or(b["scope"].as_str()).unwrap_or("?").to_owned())
                .collect()
        };
        let list = ferry_api("budgets/list");
        let (_, v) = t.send(Some(&basic("viewer-a")), None, Method::GET, &list, None).await;
        assert_eq!(v["budgets"].as_array().map(Vec::len), Some(1), "{v}");
        assert!(v.to_string().contains("team-a") && !v.to_string().contains("team-b"), "{v}");
        let (_, v) = t.send(Some(&basic("root")), None, Method::GET, &list, None).await;
        assert_eq!(budgets(&v).len(), 2, "{v}");
    });
}
