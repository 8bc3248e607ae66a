//! Who may use the gateway once its store has users: a matrix of every
//! route kind (probe, predict by each protocol, model metadata, listing,
//! feedback, metrics) x caller (none, wrong, a role in the model's
//! workspace or the other, a predict-only token, a server admin), the
//! refusals' shapes, and the audit entries they leave.

use super::*;
use ferry_access::Access;
use ferry_auth::ResourceType;
use ferry_metadata::{AuditQuery, NewUser, Token};

const V2_ROW: &str = r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;

/// iris in `team-a`, reg in `team-b`; a user per role, each with a token.
struct Team {
    env: Env,
    access: Arc<Access>,
    app: axum::Router,
    tokens: std::collections::HashMap<&'static str, String>,
}

/// Who asks: their role in `team-a` (the token limited to it when
/// `limited`), or a server admin.
const CALLERS: &[(&str, &str, &str, bool)] = &[
    // name, workspace, role, token limited to the role
    ("predictor-a", "team-a", "editor", true),
    ("viewer-a", "team-a", "viewer", false),
    ("editor-a", "team-a", "editor", false),
    ("maintainer-a", "team-a", "maintainer", false),
    ("editor-b", "team-b", "editor", false),
    ("root", "", "", false),
];

impl Team {
    async fn new() -> Team {
        Team::on(Env::new().await).await
    }

    /// The team on `env`'s store.
    async fn on(env: Env) -> Team {
        env.version_signed(
            "iris",
            Some("logreg.onnx"),
            None,
            Some("production"),
            &["sepal_length", "sepal_width", "petal_length", "petal_width"],
        )
        .await;
        env.version("reg", Some("rf_reg.onnx"), None, None).await;
        let store = env.store.clone();
        store
            .set_workspace(ResourceType::RegisteredModel, "iris", "team-a")
            .await
            .unwrap();
        store
            .set_workspace(ResourceType::RegisteredModel, "reg", "team-b")
            .await
            .unwrap();
        let mut tokens = std::collections::HashMap::new();
        for (name, ws, role, limited) in CALLERS {
            let u = store
                .create_user(&NewUser {
                    username: (*name).into(),
                    password_hash: None,
                    is_admin: ws.is_empty(),
                    service: *limited,
                    created_ms: 1,
                })
                .await
                .unwrap();
            if !ws.is_empty() {
                ferry_metadata::add_member(store.as_ref(), u.id, ws, role)
                    .await
                    .unwrap();
            }
            let issued = ferry_auth::secret::issue_token().unwrap();
            store
                .create_token(&Token {
                    id: issued.id.clone(),
                    user_id: u.id,
                    name: "test".into(),
                    workspace: limited.then(|| (*ws).to_owned()),
                    role: limited.then(|| "predictor".to_owned()),
                    secret_hash: issued.secret_hash.clone(),
                    created_ms: 1,
                    expires_ms: None,
                    revoked_ms: None,
                })
                .await
                .unwrap();
            tokens.insert(*name, issued.text);
        }
        let gw = env.gateway(&["iris@production", "reg"], true).await;
        let access = Access::new(store.clone()).await.unwrap();
        let app = ferry_gateway::router(
            HttpState {
                gw,
                max_body: 1 << 16,
                bodies: ferry_gateway::http::BodyBudget::default(),
            },
            Some(access.clone()),
        );
        Team {
            env,
            access,
            app,
            tokens,
        }
    }

    async fn send(&self, who: Option<&str>, method: &str, uri: &str, body: &str) -> Resp {
        let auth = who.map(|w| match self.tokens.get(w) {
            Some(t) => format!("Bearer {t}"),
            None => format!("Bearer {w}"),
        });
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        call_with(&self.app, method, uri, &headers, body).await
    }
}

/// What each kind of route lets a caller do, by (role, own workspace).
fn allowed(kind: &str, caller: &str) -> bool {
    let (_, ws, role, limited) = CALLERS.iter().find(|c| c.0 == caller).unwrap();
    let admin = ws.is_empty();
    // Every route below reaches iris, which is team-a's.
    let own = *ws == "team-a";
    match kind {
        "probe" => true,
        "predict" => admin || (own && (*limited || *role != "viewer")),
        // USE includes READ (MLflow's levels): the predictor reads too.
        "read" => admin || own,
        // metrics covers reg too (team-b's): only an admin reads both.
        "metrics" => admin,
        "feedback" => admin || (own && !*limited && *role != "viewer"),
        other => panic!("{other}"),
    }
}

#[test]
fn every_route_kind_allows_exactly_the_callers_its_rule_names() {
    rt().block_on(async { matrix(&Team::new().await).await });
}

async fn matrix(team: &Team) {
    {
        let routes: &[(&str, &str, &str, &str)] = &[
            ("probe", "GET", "/ping", ""),
            ("probe", "GET", "/v2/health/ready", ""),
            (
                "predict",
                "POST",
                "/invocations",
                r#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#,
            ),
            // Encoded names are decided as the route decodes them.
            ("predict", "POST", "/v2/models/ir%69s/infer", V2_ROW),
            (
                "predict",
                "POST",
                "/v1/models/iris%3Apredict",
                r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#,
            ),
            ("predict", "POST", "/v2/models/iris/infer", V2_ROW),
            (
                "predict",
                "POST",
                "/v2/models/iris/versions/1/infer",
                V2_ROW,
            ),
            (
                "predict",
                "POST",
                "/v1/models/iris:predict",
                r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#,
            ),
            ("read", "GET", "/v2/models/iris", ""),
            ("read", "GET", "/v2/models/iris/ready", ""),
            ("read", "GET", "/v1/models/iris", ""),
            ("metrics", "GET", "/metrics", ""),
        ];
        let mut cells = 0;
        for (kind, method, uri, body) in routes {
            // Without credentials, or with a token nobody was given.
            for who in [None, Some("ferry_0000000000000000_nope")] {
                let r = team.send(who, method, uri, body).await;
                if *kind == "probe" {
                    assert_eq!(r.status, 200, "{uri} as {who:?}: {}", r.text);
                } else {
                    assert_eq!(r.status, 401, "{uri} as {who:?}: {}", r.text);
                    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"ferry\""));
                }
            }
            for (caller, ..) in CALLERS {
                let r = team.send(Some(caller), method, uri, body).await;
                let want = allowed(kind, caller);
                assert_eq!(
                    r.status == 200,
                    want,
                    "{method} {uri} as {caller}: {} {}",
                    r.status,
                    r.text
                );
                if !want {
                    assert_eq!(r.status, 403, "{uri} as {caller}");
                }
                cells += 1;
            }
        }
        assert_eq!(cells, routes.len() * CALLERS.len());
    }
}

/// The same matrix on the PostgreSQL server `FERRY_TEST_POSTGRES_URL`
/// names (`.ci/run` starts one).
#[cfg(feature = "postgres")]
#[test]
fn the_matrix_holds_on_postgresql() {
    rt().block_on(async {
        let admin = std::env::var("FERRY_TEST_POSTGRES_URL")
            .expect("the postgres feature needs FERRY_TEST_POSTGRES_URL");
        let url = ferry_metadata::SqlStore::scratch_database(&admin, "ferry_gw")
            .await
            .unwrap();
        let team = Team::on(Env::on(&url).await).await;
        matrix(&team).await;
    });
}

#[test]
fn refusals_speak_each_protocol_and_are_audited_with_the_model() {
    rt().block_on(async {
        let team = Team::new().await;
        let r = team
            .send(
                Some("editor-b"),
                "POST",
                "/invocations",
                r#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#,
            )
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(
            r.json(),
            serde_json::json!({"error_code": "PERMISSION_DENIED", "message": "Permission denied"})
        );
        let r = team
            .send(Some("editor-b"), "POST", "/v2/models/iris/infer", V2_ROW)
            .await;
        assert_eq!(r.json(), serde_json::json!({"error": "Permission denied"}));
        let r = team
            .send(None, "POST", "/v2/models/iris/infer", V2_ROW)
            .await;
        assert_eq!(r.status, 401);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("not authenticated")
        );

        let log = team
            .env
            .store
            .audit_entries(&AuditQuery::default())
            .await
            .unwrap();
        let seen: Vec<(String, String, String, String)> = log
            .iter()
            .map(|e| {
                (
                    e.event.actor.clone(),
                    e.event.action.clone(),
                    e.event.resource.clone(),
                    e.event.outcome.clone(),
                )
            })
            .collect();
        let denied = |actor: &str, action: &str, res: &str| {
            (actor.into(), action.into(), res.into(), "denied".into())
        };
        assert_eq!(
            seen,
            [
                denied("editor-b", "gateway.predict", "registered_model:iris"),
                denied("editor-b", "gateway.predict", "registered_model:iris"),
                denied("anonymous", "auth.login", ""),
            ]
        );
    });
}

#[test]
fn the_listing_shows_only_readable_models_and_feedback_needs_edit_on_the_answering_model() {
    rt().block_on(async {
        let team = Team::new().await;
        for (who, want) in [
            ("root", serde_json::json!(["iris", "reg"])),
            ("viewer-a", serde_json::json!(["iris"])),
            ("editor-b", serde_json::json!(["reg"])),
            ("predictor-a", serde_json::json!(["iris"])),
        ] {
            let r = team.send(Some(who), "GET", "/v1/models", "").await;
            assert_eq!(r.status, 200, "{who}: {}", r.text);
            assert_eq!(r.json()["models"], want, "{who}");
        }

        // The predict-only token predicts; its labels are refused, an
        // editor's are scored.
        let r = team
            .send(Some("predictor-a"), "POST", "/v2/models/iris/infer", V2_ROW)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let id = r.header("x-request-id").unwrap().to_owned();
        let label = format!(r#"{{"request_id": "{id}", "label": "setosa"}}"#);
        for (who, status) in [
            ("predictor-a", 403),
            ("viewer-a", 403),
            ("editor-b", 403),
            ("editor-a", 200),
        ] {
            let r = team.send(Some(who), "POST", "/feedback", &label).await;
            assert_eq!(r.status, status, "{who}: {}", r.text);
        }
        let last = team
            .env
            .store
            .audit_entries(&AuditQuery::default())
            .await
            .unwrap();
        assert!(last.iter().any(|e| e.event.actor == "predictor-a"
            && e.event.action == "gateway.feedback"
            && e.event.resource == "registered_model:iris"));
    });
}

#[test]
fn without_users_every_route_is_open_as_before() {
    rt().block_on(async {
        let env = Env::new().await;
        env.version("iris", Some("logreg.onnx"), None, Some("production"))
            .await;
        let gw = env.gateway(&["iris@production"], false).await;
        let access = Access::new(env.store.clone()).await.unwrap();
        assert!(!access.is_on());
        let app = ferry_gateway::router(
            HttpState {
                gw,
                max_body: 1 << 16,
                bodies: ferry_gateway::http::BodyBudget::default(),
            },
            Some(access),
        );
        let r = post_json(&app, "/v2/models/iris/infer", V2_ROW).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(&app, "GET", "/metrics", None, "").await;
        assert_eq!(r.status, 200);
    });
}

#[test]
fn a_revoked_token_is_refused_as_soon_as_the_generation_moves_however_often_it_was_allowed() {
    rt().block_on(async {
        let team = Team::new().await;
        for _ in 0..3 {
            let r = team
                .send(Some("predictor-a"), "POST", "/v2/models/iris/infer", V2_ROW)
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let id = ferry_auth::secret::parse_token(&team.tokens["predictor-a"])
            .unwrap()
            .0
            .to_owned();
        team.env.store.revoke_token(&id, 2).await.unwrap();
        // What the poll does within a second.
        team.access.refresh().await.unwrap();
        let r = team
            .send(Some("predictor-a"), "POST", "/v2/models/iris/infer", V2_ROW)
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
        // Another caller's remembered decisions are dropped too, and made anew.
        let r = team
            .send(Some("editor-a"), "POST", "/v2/models/iris/infer", V2_ROW)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    });
}
