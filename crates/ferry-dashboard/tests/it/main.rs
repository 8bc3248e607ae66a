//! The dashboard's pages through its router, on a SQLite store: each page's
//! HTML (snapshots, times redacted), filters and paging, bad input refused
//! by field, and a viewer of one workspace seeing nothing of another's.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ferry_access::Caller;
use ferry_auth::{Grant, Permission, ResourceType};
use ferry_metadata::*;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

const MIN: i64 = 60_000;
const H: i64 = 60 * MIN;

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    settings: ferry_dashboard::Settings,
    now: i64,
}

/// Run `i`'s id: distinct from its first characters, as real ones are.
fn id(i: usize) -> String {
    format!("{:08x}{i:024x}", (i as u32).wrapping_mul(2_654_435_761))
}

/// `iris` (workspace `ml`): 12 runs an hour apart, every fourth failed, the
/// newest with stages, gates, params and metrics; `churn` (workspace
/// `growth`): 2 runs.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
    let store: Arc<dyn MetadataStore> = Arc::new(SqlStore::open(&url).await.unwrap());
    let now = ferry_core::now_ms();
    for i in 0..12usize {
        let at = now - (i as i64 + 1) * H;
        begin(&*store, i, "iris", "ml", at).await;
        let status = if i % 4 == 3 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        // The newest finishes once its stages are recorded (below), as a
        // run does.
        if i > 0 {
            store
                .finish_run(&id(i), status, at + (i as i64 + 2) * MIN, None)
                .await
                .unwrap();
        }
    }
    let newest = id(0);
    let at = now - H;
    let mut prepare = StageRecord::new(
        "prepare",
        StageStatus::Restored,
        "restored from the run cache".into(),
    );
    prepare.position = 0;
    let mut train = StageRecord::new(
        "train",
        StageStatus::Ran,
        "params changed: train.lr 0.1 -> 0.2".into(),
    );
    train.position = 1;
    train.started_ms = Some(at + 5_000);
    train.ended_ms = Some(at + 95_000);
    train.wall_ms = Some(90_000);
    train.user_cpu_ms = Some(80_000);
    train.sys_cpu_ms = Some(2_000);
    train.exit_code = Some(0);
    for s in [&prepare, &train] {
        store.record_stage(&newest, s).await.unwrap();
    }
    store
        .record_params(&newest, &[("train.lr".into(), serde_json::json!(0.2))])
        .await
        .unwrap();
    store
        .record_metrics(
            &newest,
            &[MetricRecord {
                key: "accuracy".into(),
                value: 0.96,
                stage: Some("evaluate".into()),
                step: 0,
                ts_ms: at,
            }],
        )
        .await
        .unwrap();
    store
        .record_gates(
            &newest,
            &[GateRecord {
                name: "accurate".into(),
                expr: "accuracy >= 0.9".into(),
                passed: true,
                message: "accuracy 0.96 >= 0.9".into(),
            }],
        )
        .await
        .unwrap();
    store
        .finish_run(&newest, RunStatus::Succeeded, at + 2 * MIN, None)
        .await
        .unwrap();
    for i in 100..102usize {
        begin(
            &*store,
            i,
            "churn",
            "growth",
            now - (i as i64 - 99) * 30 * MIN,
        )
        .await;
    }
    let settings = ferry_dashboard::Settings {
        predictions: Some(dir.path().join("predictions")),
        logs: Some(dir.path().join("logs")),
        drift: None,
        artifacts: Some(Arc::new(
            ferry_artifacts::LocalArtifacts::new(&dir.path().join("artifacts")).unwrap(),
        )),
    };
    Fixture {
        dir,
        store,
        settings,
        now,
    }
}

async fn begin(store: &dyn MetadataStore, i: usize, pipeline: &str, workspace: &str, at: i64) {
    begin_as(store, &id(i), 0xabc000 + i, pipeline, workspace, at).await;
}

async fn begin_as(
    store: &dyn MetadataStore,
    run_id: &str,
    commit: usize,
    pipeline: &str,
    workspace: &str,
    at: i64,
) {
    store
        .begin_run(&NewRun {
            run_id: run_id.into(),
            pipeline: pipeline.into(),
            trigger: "cli".into(),
            started_ms: at,
            git_commit: Some(format!("{commit:040x}")),
            git_dirty: Some(false),
            env_fingerprint: Some("env-fp".into()),
            pid: 999_999,
            host: "h".into(),
            workspace: workspace.into(),
            project: pipeline.into(),
        })
        .await
        .unwrap();
}

/// GET `uri` as `caller` (none: a server without users).
async fn get(f: &Fixture, uri: &str, caller: Option<&Caller>) -> (StatusCode, String) {
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    if let Some(c) = caller {
        req.extensions_mut().insert(c.clone());
    }
    let res = ferry_dashboard::router(f.store.clone(), f.settings.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The href of a page's `rel="next"` link, as a browser reads it.
fn next_link(html: &str) -> String {
    html.split("rel=\"next\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
}

/// The page with what changes from run to run (times) redacted.
fn redacted(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(at) = rest.find("<time ") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("</time>").unwrap() + at + "</time>".len();
        out.push_str("<time/>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A user with a role in `workspace` only.
/// A user with no role anywhere, as the gate hands them to a page.
async fn user(f: &Fixture, username: &str) -> ferry_metadata::User {
    f.store
        .create_user(&NewUser {
            username: username.into(),
            password_hash: None,
            is_admin: false,
            service: false,
            created_ms: f.now,
        })
        .await
        .unwrap()
}

async fn member_of(f: &Fixture, username: &str, workspace: &str) -> Caller {
    let user = user(f, username).await;
    f.store
        .grant_user(
            user.id,
            workspace,
            &Grant::new(ResourceType::Experiment, "*", Permission::Read),
        )
        .await
        .unwrap();
    Caller::new(Arc::new(user), None, workspace.into(), i64::MAX)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn overview_shows_each_workspace_and_its_pipelines_health() {
    rt().block_on(async {
        let f = fixture().await;
        let (status, html) = get(&f, "/", None).await;
        assert_eq!(status, StatusCode::OK);
        insta::assert_snapshot!(redacted(&html));
    });
}

#[test]
fn runs_page_filters_and_pages_by_cursor() {
    rt().block_on(async {
        let f = fixture().await;
        let (status, html) = get(&f, "/ui/runs?pipeline=iris&status=failed", None).await;
        assert_eq!(status, StatusCode::OK);
        insta::assert_snapshot!(redacted(&html));

        // 150 more runs: a page holds 100, the link to older runs goes on
        // from the last, and no run is on two pages.
        for i in 200..350usize {
            begin(&*f.store, i, "iris", "ml", f.now - 20 * H - i as i64 * MIN).await;
        }
        let (_, first) = get(&f, "/ui/runs?pipeline=iris", None).await;
        let rows = |html: &str| html.matches("<a href=\"/ui/runs/").count();
        assert_eq!(rows(&first), 100);
        let next = next_link(&first);
        let (status, second) = get(&f, &next, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(rows(&second), 62);
        assert!(!second.contains("rel=\"next\""));
        let ids = |html: &str| -> Vec<String> {
            html.split("<a href=\"/ui/runs/")
                .skip(1)
                .map(|s| s[..32].to_owned())
                .collect()
        };
        let (a, b) = (ids(&first), ids(&second));
        assert!(a.iter().all(|x| !b.contains(x)));

        // The longest first, runs still going last, paged by the same
        // kind of cursor: every run once.
        let (_, first) = get(&f, "/ui/runs?pipeline=iris&order=slowest", None).await;
        assert_eq!(ids(&first)[..3], [id(11), id(10), id(9)]);
        let next = next_link(&first);
        assert!(next.contains("order=slowest"), "{next}");
        let (_, second) = get(&f, &next, None).await;
        let mut all = ids(&first);
        all.extend(ids(&second));
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((all.len(), unique.len()), (162, 162));
        let (_, html) = get(&f, "/ui/runs?pipeline=iris&order=oldest", None).await;
        assert_eq!(ids(&html)[0], id(349));

        // Commit prefix.
        let (_, html) = get(&f, &format!("/ui/runs?commit={:x}", 0xabc000 + 5), None).await;
        assert_eq!(rows(&html), 0, "the middle of a hash matches nothing");
        let full = format!("{:040x}", 0xabc000 + 5);
        let (_, html) = get(&f, &format!("/ui/runs?commit={full}"), None).await;
        assert_eq!(ids(&html), vec![id(5)]);
        // `…abc00` begins the hashes of iris's first twelve runs.
        let (_, html) = get(&f, &format!("/ui/runs?commit={}", &full[..39]), None).await;
        assert_eq!(ids(&html), (0..12).map(id).collect::<Vec<_>>());
    });
}

#[test]
fn runs_are_found_by_mlflow_search_grammar_and_by_author() {
    rt().block_on(async {
        let f = fixture().await;
        // Who started run 3 and run 5, as a run attached to MLflow
        // records it.
        for (i, who) in [(3, "alice"), (5, "bob")] {
            let exp = f.store.ensure_experiment("iris", f.now).await.unwrap();
            f.store
                .attach_run(
                    &id(i),
                    exp,
                    &format!("iris-{i}"),
                    &[("mlflow.user".into(), who.into())],
                )
                .await
                .unwrap();
        }
        let ids = |html: &str| -> Vec<String> {
            html.split("<a href=\"/ui/runs/")
                .skip(1)
                .map(|s| s[..32].to_owned())
                .collect()
        };
        let q = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        for (query, expect) in [
            (format!("q={}", q("metrics.accuracy > 0.9")), vec![id(0)]),
            (format!("q={}", q("metrics.accuracy < 0.9")), vec![]),
            ("author=alice".to_owned(), vec![id(3)]),
            (
                format!("q={}", q("attributes.user_id = 'bob'")),
                vec![id(5)],
            ),
            (
                format!("q={}&status=failed", q("tags.mlflow.user LIKE '%'")),
                vec![id(3)],
            ),
            (
                format!(
                    "q={}",
                    q("attributes.status = 'FAILED' and tags.mlflow.user = 'alice'")
                ),
                vec![id(3)],
            ),
        ] {
            let (status, html) = get(&f, &format!("/ui/runs?{query}"), None).await;
            assert_eq!(status, StatusCode::OK, "{query}: {html}");
            assert_eq!(ids(&html), expect, "{query}");
        }
        // The author is shown and is a filter of its own.
        let (_, html) = get(&f, "/ui/runs?author=alice", None).await;
        assert!(
            html.contains("<a href=\"/ui/runs?author=alice\">alice</a>"),
            "{html}"
        );
        // A filter the grammar refuses is a 400 naming it, with MLflow's words.
        let (status, html) = get(&f, &format!("/ui/runs?q={}", q("metrics.acc >> 1")), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("search `metrics.acc &gt;&gt; 1`"), "{html}");
        let (status, html) = get(&f, "/ui/runs?order=best", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("order `best`"), "{html}");
    });
}

#[test]
fn check_reports_are_shown_inline_sandboxed_and_only_the_runs_own() {
    rt().block_on(async {
        let f = fixture().await;
        let exp = f.store.ensure_experiment("iris", f.now).await.unwrap();
        f.store.attach_run(&id(0), exp, "iris-0", &[]).await.unwrap();
        let run = f.store.get_tracked_run(&id(0)).await.unwrap().unwrap();
        let dir = ferry_metadata::pipeline_runs::artifact_dir(&run).unwrap().to_owned();
        let checks = f.dir.path().join("artifacts").join(&dir).join("checks");
        std::fs::create_dir_all(&checks).unwrap();
        std::fs::write(checks.join("validate.html"), "<h1>3 of 40 rules failed</h1>").unwrap();
        std::fs::write(checks.join("validate.json"), "{}").unwrap();
        // A file beside the folder, which no report name may reach.
        std::fs::write(checks.parent().unwrap().join("secret.html"), "no").unwrap();

        let (status, html) = get(&f, &format!("/ui/runs/{}", id(0)), None).await;
        assert_eq!(status, StatusCode::OK);
        let frame = format!(
            "<iframe src=\"/ui/runs/{}/checks/validate.html\" sandbox title=\"check report validate.html\"",
            id(0)
        );
        assert!(html.contains(&frame), "{html}");
        assert!(!html.contains("validate.json"), "only the HTML reports are framed");

        let res = ferry_dashboard::router(f.store.clone(), f.settings.clone())
            .oneshot(
                Request::get(format!("/ui/runs/{}/checks/validate.html", id(0)))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.starts_with("sandbox; default-src 'none'"), "{csp}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"<h1>3 of 40 rules failed</h1>");

        for name in ["..%2Fsecret.html", "secret.html", "validate.json", "%2E%2E"] {
            let (status, _) = get(&f, &format!("/ui/runs/{}/checks/{name}", id(0)), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
        }
        // Another run has none.
        let (_, html) = get(&f, &format!("/ui/runs/{}", id(1)), None).await;
        assert!(!html.contains("Check reports"));
    });
}

#[test]
fn bad_filters_are_refused_by_field() {
    rt().block_on(async {
        let f = fixture().await;
        for (uri, field) in [
            ("/ui/runs?before=yesterday", "before `yesterday`"),
            ("/ui/runs?since=forever", "since `forever`"),
            ("/ui/runs?commit=HEAD~1", "commit `HEAD~1`"),
        ] {
            let (status, html) = get(&f, uri, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert!(html.contains(field), "{uri}: {html}");
        }
        let (status, html) = get(&f, "/ui/runs/deadbeef", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("<h1>404</h1>"), "{html}");
        // What a client sends is escaped, never markup.
        let (status, html) = get(&f, "/ui/runs?since=%3Cscript%3E", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            html.contains("&lt;script&gt;") && !html.contains("<script>"),
            "{html}"
        );
    });
}

#[test]
fn run_page_shows_stages_why_gates_params_and_metrics() {
    rt().block_on(async {
        let f = fixture().await;
        let (status, html) = get(&f, &format!("/ui/runs/{}", id(0)), None).await;
        assert_eq!(status, StatusCode::OK);
        insta::assert_snapshot!(redacted(&html));

        // A metric of 10,000 steps is a chart, not 10,000 rows.
        let points: Vec<MetricRecord> = (0..10_000)
            .map(|step| MetricRecord {
                key: "loss".into(),
                value: 1.0 / (step as f64 + 1.0),
                stage: Some("train".into()),
                step,
                ts_ms: step,
            })
            .collect();
        f.store.record_metrics(&id(1), &points).await.unwrap();
        let (status, html) = get(&f, &format!("/ui/runs/{}", id(1)), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("<h3><code>loss</code> by step</h3>"),
            "{html}"
        );
        assert!(
            html.contains("<td>0.0001</td><td>10000</td>"),
            "the last value, and how many"
        );
        assert!(html.len() < 100_000, "{} bytes", html.len());

        // The stage that ran has its log, as plain text (never markup).
        let logs = f.dir.path().join("logs").join(id(0));
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(
            logs.join("train.log"),
            "epoch 1\n<script>alert(1)</script>\n",
        )
        .unwrap();
        let uri = format!("/ui/runs/{}/logs/train", id(0));
        let res = ferry_dashboard::router(f.store.clone(), f.settings.clone())
            .oneshot(Request::get(&uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        // A stage the run does not have, or one that left no log.
        for stage in ["nope", "prepare", "..%2F..%2Fetc"] {
            let (status, _) = get(&f, &format!("/ui/runs/{}/logs/{stage}", id(0)), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{stage}");
        }
    });
}

#[test]
fn a_viewer_of_one_workspace_sees_nothing_of_another() {
    rt().block_on(async {
        let f = fixture().await;
        let ml = member_of(&f, "ana", "ml").await;
        let growth = member_of(&f, "gus", "growth").await;

        let (_, html) = get(&f, "/", Some(&ml)).await;
        assert!(html.contains("iris") && !html.contains("churn"), "{html}");
        let (_, html) = get(&f, "/", Some(&growth)).await;
        assert!(html.contains("churn") && !html.contains("iris"), "{html}");

        let (_, html) = get(&f, "/ui/runs", Some(&growth)).await;
        assert_eq!(html.matches("<a href=\"/ui/runs/").count(), 2);
        assert!(!html.contains("iris"));
        // Asking for the other team's pipeline by name shows nothing.
        let (_, html) = get(&f, "/ui/runs?pipeline=iris", Some(&growth)).await;
        assert!(html.contains("No runs match."));

        // Another team's run is not found, as one that does not exist.
        let (status, _) = get(&f, &format!("/ui/runs/{}", id(0)), Some(&growth)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = get(&f, &format!("/ui/runs/{}", id(0)), Some(&ml)).await;
        assert_eq!(status, StatusCode::OK);

        // Someone with no role anywhere sees no workspace at all.
        let nobody = Caller::new(
            Arc::new(user(&f, "nobody").await),
            None,
            "default".into(),
            i64::MAX,
        );
        let (_, html) = get(&f, "/ui/runs", Some(&nobody)).await;
        assert!(html.contains("No runs match."), "{html}");
    });
}

#[test]
fn assets_are_served_with_their_types() {
    rt().block_on(async {
        let f = fixture().await;
        for (uri, kind) in [
            ("/ui/static/app.css", "text/css"),
            ("/ui/static/app.js", "text/javascript"),
        ] {
            let res = ferry_dashboard::router(f.store.clone(), f.settings.clone())
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let ct = res.headers()["content-type"].to_str().unwrap();
            assert!(ct.starts_with(kind), "{uri}: {ct}");
        }
    });
}

/// Two versions of `iris` (workspace `ml`) built by run 0, the second with
/// the `production` alias.
async fn register(f: &Fixture) {
    f.store
        .set_workspace(ResourceType::RegisteredModel, "iris", "ml")
        .await
        .unwrap();
    for (n, acc) in [(1, 0.91), (2, 0.96)] {
        f.store
            .create_model_version(&NewModelVersion {
                model: "iris".into(),
                run_id: Some(id(0)),
                artifact_path: "work/model.onnx".into(),
                artifact_digest: format!("{n:064x}"),
                artifact_size: 10,
                git_commit: Some(format!("{:040x}", 0xabc000)),
                git_dirty: Some(false),
                env_fingerprint: Some("e".repeat(64)),
                lineage: serde_json::json!({
                    "pipeline": "iris",
                    "stages": ["train", "prepare"],
                    "data": {"data/iris.csv": "d".repeat(64)},
                    "params": {"train.lr": 0.1 * n as f64},
                    "metrics": {"accuracy": acc, "f1": acc - 0.01},
                    "environment": {"fingerprint": "e".repeat(64), "python": "3.11.2", "platform": "linux-x86_64", "packages": ["scikit-learn==1.5.2"]},
                }),
                created_ms: f.now - H,
                alias: (n == 2).then(|| "production".into()),
                source: None,
                stored: None,
            })
            .await
            .unwrap();
    }
}

#[test]
fn models_show_versions_metrics_across_them_and_lineage() {
    rt().block_on(async {
        let f = fixture().await;
        register(&f).await;
        let (status, html) = get(&f, "/ui/models", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<code>production</code> &rarr; 2"), "{html}");
        let (status, html) = get(&f, "/ui/models/iris", None).await;
        assert_eq!(status, StatusCode::OK);
        insta::assert_snapshot!("model", redacted(&html));
        let (status, html) = get(&f, "/ui/models/iris/2", None).await;
        assert_eq!(status, StatusCode::OK);
        insta::assert_snapshot!("version", redacted(&html));
        // The overview says which version serves production, linked.
        let (_, html) = get(&f, "/", None).await;
        assert!(html.contains("<a href=\"/ui/models/iris/2\"><strong>iris</strong> version 2</a>"));

        for (uri, code) in [
            ("/ui/models/iris/x", StatusCode::BAD_REQUEST),
            ("/ui/models/iris/9", StatusCode::NOT_FOUND),
            ("/ui/models/nope", StatusCode::NOT_FOUND),
        ] {
            assert_eq!(get(&f, uri, None).await.0, code, "{uri}");
        }
        // Another team's model is not found, as one that does not exist.
        let growth = member_of(&f, "gus", "growth").await;
        for uri in ["/ui/models/iris", "/ui/models/iris/2"] {
            assert_eq!(get(&f, uri, Some(&growth)).await.0, StatusCode::NOT_FOUND);
        }
        let (_, html) = get(&f, "/ui/models", Some(&growth)).await;
        assert!(!html.contains("iris"), "{html}");
    });
}

#[test]
fn a_request_id_leads_to_the_version_run_and_commit_that_answered_it() {
    rt().block_on(async {
        let f = fixture().await;
        register(&f).await;
        let log = f.dir.path().join("predictions/iris");
        std::fs::create_dir_all(&log).unwrap();
        std::fs::write(
            log.join("predictions-2026-12-03T07.jsonl"),
            "{\"ts\":1796259723000,\"request_id\":\"0000beef-00000000002a\",\"model\":\"iris\",\"version\":2,\"sepal_length\":5.1,\"prediction\":\"setosa\"}\n",
        )
        .unwrap();
        let (status, html) = get(&f, "/ui/requests?id=0000beef-00000000002a", None).await;
        assert_eq!(status, StatusCode::OK);
        insta::assert_snapshot!("request", redacted(&html));

        let (_, html) = get(&f, "/ui/requests?id=0000beef-00000000002b", None).await;
        assert!(html.contains("No request 0000beef-00000000002b in the prediction log."));
        let (status, html) = get(&f, "/ui/requests?id=%22%3E%3Cb%3E", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("id `&quot;&gt;&lt;b&gt;`"), "{html}");
        // Another team learns nothing of the request.
        let growth = member_of(&f, "gus", "growth").await;
        let (_, html) = get(&f, "/ui/requests?id=0000beef-00000000002a", Some(&growth)).await;
        assert!(html.contains("No request") && !html.contains("abc000"), "{html}");
    });
}

/// A canary of iris/2 over 1 at step 2 (50%), with the decision that
/// advanced it, and a gateway judging the step now.
async fn canary(f: &Fixture) -> String {
    let spec = serde_json::json!({
        "strategy": "canary", "steps": [10, 50, 100], "interval_ms": 30000,
        "deadline_ms": 60000, "mirror_percent": 100, "alias": "production",
        "criteria": {"max_error_rate": 0.05, "max_p99_ms": 250.0, "max_prediction_shift": null,
                     "min_accuracy": null, "min_requests": 20, "min_agreement": null}
    });
    let d = f
        .store
        .create_deployment(&NewDeployment {
            model: "iris".into(),
            candidate: 2,
            stable: Some(1),
            strategy: "canary".into(),
            spec,
            phase: "progressing".into(),
            weight: 10,
            created_ms: f.now - 40_000,
            reason: None,
        })
        .await
        .unwrap();
    let verdict = |err: f64, p99: f64| {
        serde_json::json!({
            "verdict": {"verdict": "pass", "checks": [
                {"name": "error_rate", "value": err, "limit": 0.05, "passed": true},
                {"name": "p99_ms", "value": p99, "limit": 250.0, "passed": true}]},
            "candidate": {"requests": 42}, "stable": {"requests": 380}
        })
    };
    f.store
        .change_deployment(
            &d.id,
            d.revision,
            &DeploymentChange {
                phase: "progressing".into(),
                active: true,
                step: 1,
                weight: 50,
                step_started_ms: f.now - 10_000,
                reason: Some("step 1 passed".into()),
                kind: "advanced".into(),
                detail: verdict(0.0, 12.5),
                now_ms: f.now - 10_000,
                move_alias: None,
                reject: false,
            },
        )
        .await
        .unwrap();
    let live = |version: i64, role: &str, requests: u64| LiveFigures {
        version,
        role: role.into(),
        window_ms: 60_000,
        requests,
        errors: 1,
        p99_ms: Some(8.25),
        labelled: 40,
        correct: 38,
    };
    f.store
        .gateway_heartbeat(
            &GatewayBeat {
                id: "g1".into(),
                host: "h".into(),
                addr: "127.0.0.1:5001".into(),
                pid: 1,
                models: vec![GatewayModel {
                    model: "iris".into(),
                    selector: "iris@production".into(),
                    alias: Some("production".into()),
                    version: Some(1),
                    live: vec![live(1, "stable", 600), live(2, "canary", 600)],
                    analysis: Some(LiveAnalysis {
                        deployment_id: d.id.clone(),
                        at_ms: f.now - 1_000,
                        detail: verdict(0.004, 9.75),
                    }),
                }],
                tick_ms: 1000,
                started_ms: f.now - 60_000,
                last_seen_ms: ferry_core::now_ms(),
            },
            std::slice::from_ref(&d.id),
        )
        .await
        .unwrap();
    d.id
}

#[test]
fn a_rollout_shows_its_steps_criteria_live_judgement_and_decisions() {
    rt().block_on(async {
        let f = fixture().await;
        register(&f).await;
        // The canary's stable version is production's (1), so move it.
        f.store
            .set_alias("iris", "production", 1, None, f.now)
            .await
            .unwrap();
        let id = canary(&f).await;
        let (status, html) = get(&f, "/ui/rollouts", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains(&format!("href=\"/ui/rollouts/{id}\"")),
            "{html}"
        );
        let (status, html) = get(&f, &format!("/ui/rollouts/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        // The chart's last point is now: only its start is fixed.
        let page = redacted(&html).replace(&id, "ID");
        let chart = page.find("<svg class=\"chart\"").unwrap();
        let end = page[chart..].find("</svg>").unwrap() + chart + "</svg>".len();
        assert!(page[chart..end].contains("points=\"64.0,193.4 "), "{page}");
        insta::assert_snapshot!(
            "rollout",
            format!("{}<svg/>{}", &page[..chart], &page[end..])
        );
        // The live part alone, what the page's script fetches again.
        let (status, part) = get(&f, &format!("/ui/rollouts/{id}/live"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(part.starts_with("<section data-active=\"true\">"), "{part}");
        assert!(part.contains("<td>0.004</td><td>0.05</td>"), "{part}");

        // The overview: production's version with the gateways' figures.
        let (_, html) = get(&f, "/", None).await;
        assert!(
            html.contains("<td>10.0</td>"),
            "600 requests a minute: {html}"
        );
        assert!(
            html.contains("95.0% <span class=\"muted\">of 40</span>"),
            "{html}"
        );

        let growth = member_of(&f, "gus", "growth").await;
        for uri in [
            format!("/ui/rollouts/{id}"),
            format!("/ui/rollouts/{id}/live"),
        ] {
            assert_eq!(get(&f, &uri, Some(&growth)).await.0, StatusCode::NOT_FOUND);
        }
        let (_, html) = get(&f, "/ui/rollouts", Some(&growth)).await;
        assert!(!html.contains(&id));
    });
}

#[test]
fn runs_compare_side_by_side_params_that_differ_first() {
    rt().block_on(async {
        let f = fixture().await;
        let loss = |run: usize, scale: f64| {
            let store = f.store.clone();
            async move {
                let points: Vec<MetricRecord> = (0..5)
                    .map(|step| MetricRecord {
                        key: "loss".into(),
                        value: scale / (step as f64 + 1.0),
                        stage: Some("train".into()),
                        step,
                        ts_ms: step,
                    })
                    .collect();
                store.record_metrics(&id(run), &points).await.unwrap();
            }
        };
        loss(0, 1.0).await;
        loss(1, 2.0).await;
        f.store
            .record_params(
                &id(1),
                &[
                    ("train.lr".into(), serde_json::json!(0.1)),
                    ("prepare.seed".into(), serde_json::json!(42)),
                ],
            )
            .await
            .unwrap();
        f.store
            .record_params(&id(0), &[("prepare.seed".into(), serde_json::json!(42))])
            .await
            .unwrap();
        // A prefix that names several runs is the viewer's to lengthen.
        for tail in ["0", "1"] {
            let run_id = format!("abcd{}", tail.repeat(28));
            begin_as(&*f.store, &run_id, 1, "iris", "ml", f.now).await;
        }
        let (status, html) = get(&f, &format!("/ui/compare?run={}&run=abcd", id(0)), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("matches several runs"), "{html}");
        let uri = format!("/ui/compare?run={}&run={}", id(0), id(1));
        let (status, html) = get(&f, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        insta::assert_snapshot!("compare", redacted(&html));

        let (status, html) = get(&f, &format!("/ui/compare?run={}", id(0)), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("choose 2 to 10 runs"), "{html}");
        // Another team's run is not found, whichever place it takes.
        let growth = member_of(&f, "gus", "growth").await;
        let (status, _) = get(
            &f,
            &format!("/ui/compare?run={}&run={}", id(100), id(0)),
            Some(&growth),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

/// A drift engine that reports what it was asked, misbehaving on demand:
/// slow, or failing.
struct FakeDrift {
    calls: std::sync::atomic::AtomicUsize,
    delay: std::time::Duration,
    fail: bool,
}

impl FakeDrift {
    fn new(delay_ms: u64, fail: bool) -> Arc<FakeDrift> {
        Arc::new(FakeDrift {
            calls: Default::default(),
            delay: std::time::Duration::from_millis(delay_ms),
            fail,
        })
    }
}

impl ferry_dashboard::monitoring::DriftEngine for FakeDrift {
    fn drift(
        &self,
        reference: &std::path::Path,
        current: &std::path::Path,
    ) -> Result<ferry_dashboard::monitoring::WindowDrift, String> {
        use ferry_dashboard::monitoring::{ColumnScore, WindowDrift};
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(self.delay);
        if self.fail {
            return Err("the windows share no column to compare".into());
        }
        assert!(
            reference.ends_with("predictions-2026-11-26T14.jsonl"),
            "{reference:?}"
        );
        // The newer the window, the further petal_length has moved.
        let hour: f64 = current.to_string_lossy()[current.to_string_lossy().len() - 8..][..2]
            .parse()
            .unwrap();
        let moved = (hour - 14.0) * 0.2;
        Ok(WindowDrift {
            dataset_drift: moved >= 0.1,
            drifted: usize::from(moved >= 0.1),
            columns: vec![
                ColumnScore {
                    column: "petal_length".into(),
                    method: "Wasserstein distance (normed)".into(),
                    value: moved,
                    threshold: 0.1,
                    rule: "distance >= 0.1".into(),
                    drifted: moved >= 0.1,
                },
                ColumnScore {
                    column: "sepal_width".into(),
                    method: "Wasserstein distance (normed)".into(),
                    value: 0.01,
                    threshold: 0.1,
                    rule: "distance >= 0.1".into(),
                    drifted: false,
                },
            ],
        })
    }
}

/// Three hourly windows of iris's prediction log: version 1 alone, then
/// version 2 taking over, predicting virginica more and more.
fn write_prediction_log(f: &Fixture) {
    let dir = f.dir.path().join("predictions").join("iris");
    std::fs::create_dir_all(&dir).unwrap();
    for (hour, v2, virginica) in [(14, 0, 3), (15, 5, 6), (16, 9, 9)] {
        let mut text = String::new();
        for i in 0..10 {
            let v = if i < v2 { 2 } else { 1 };
            let label = if i < virginica { "virginica" } else { "setosa" };
            text.push_str(&format!(
                "{{\"ts\":1,\"request_id\":\"r{hour}-{i}\",\"model\":\"iris\",\"version\":{v},\"petal_length\":{}.4,\"prediction\":\"{label}\"}}\n",
                i % 5
            ));
        }
        std::fs::write(
            dir.join(format!("predictions-2026-11-26T{hour}.jsonl")),
            text,
        )
        .unwrap();
    }
    // Feedback files and stray names are not windows of predictions.
    std::fs::write(dir.join("feedback-2026-11-26T16.jsonl"), "{}\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
}

/// GETs through one router, so what it remembers lasts across views.
async fn get_via(app: &axum::Router, uri: &str, caller: Option<&Caller>) -> (StatusCode, String) {
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    if let Some(c) = caller {
        req.extensions_mut().insert(c.clone());
    }
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn monitoring_shows_drift_over_windows_predictions_and_versions_measured_once() {
    rt().block_on(async {
        let mut f = fixture().await;
        register(&f).await;
        write_prediction_log(&f);
        // What `ferry agent` found at its last checks.
        let event = |id: &str, check: &str, status, summary: &str| MonitorEvent {
            event_id: id.into(),
            model: "iris".into(),
            version: Some(2),
            check: check.into(),
            status,
            value: None,
            threshold: None,
            rows: 400,
            window_start_ms: 1_795_700_000_000,
            window_end_ms: 1_795_703_600_000,
            at_ms: 1_795_703_600_000,
            summary: summary.into(),
            detail: serde_json::json!({}),
        };
        f.store
            .record_monitor_events(&[
                event("e1", "drift", CheckStatus::Failing, "drift in petal_length: Wasserstein distance (normed) 0.310 >= 0.1 over 400 predictions"),
                event("e2", "accuracy", CheckStatus::Insufficient, "version 2: 3 labels in the window; 50 needed to judge accuracy"),
            ])
            .await
            .unwrap();
        let engine = FakeDrift::new(0, false);
        f.settings.drift = Some(engine.clone());
        let app = ferry_dashboard::router(f.store.clone(), f.settings.clone());

        let (status, html) = get_via(&app, "/ui/monitoring/iris", None).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("<th scope=\"row\">drift</th>"), "{html}");
        insta::assert_snapshot!(redacted(&html));
        // Two windows measured against the reference; the second view
        // reads nothing again.
        assert_eq!(engine.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        let (_, again) = get_via(&app, "/ui/monitoring/iris", None).await;
        assert_eq!(again, html);
        assert_eq!(engine.calls.load(std::sync::atomic::Ordering::SeqCst), 2);

        // The overview says production drifts, and the list agrees.
        let (_, html) = get_via(&app, "/", None).await;
        assert!(
            html.contains("<span class=\"status failed\">drift</span> <span class=\"muted\">1 of 2 columns, window predictions-2026-11-26T16.jsonl</span>"),
            "{html}"
        );
        let (_, html) = get_via(&app, "/ui/monitoring", None).await;
        assert!(html.contains("1 of 2 columns"), "{html}");

        // A window the gateway is still writing is read again.
        let newest = f.dir.path().join("predictions/iris/predictions-2026-11-26T16.jsonl");
        let mut text = std::fs::read_to_string(&newest).unwrap();
        text.push_str("{\"ts\":2,\"request_id\":\"late\",\"model\":\"iris\",\"version\":2,\"petal_length\":9.9,\"prediction\":\"virginica\"}\n");
        std::fs::write(&newest, text).unwrap();
        let (_, html) = get_via(&app, "/ui/monitoring/iris", None).await;
        assert_eq!(engine.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(html.contains("<td>11</td>"), "{html}");

        // A name that is no model, or that would lead out of the log's
        // folder, is none; two models whose logs share a folder are told
        // apart by name only, and so not shown.
        for name in ["%2E%2E", "%2E", "nobody"] {
            let (status, _) = get_via(&app, &format!("/ui/monitoring/{name}"), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
        }
        for name in ["fraud model", "fraud_model"] {
            f.store.create_registered_model(name, "", &[], f.now).await.unwrap();
        }
        let (status, html) = get_via(&app, "/ui/monitoring/fraud%20model", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("same folder (`fraud_model`) as model `fraud_model`"), "{html}");

        // Someone of another workspace: no such model.
        let outsider = member_of(&f, "outsider", "growth").await;
        let (status, _) = get_via(&app, "/ui/monitoring/iris", Some(&outsider)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, html) = get_via(&app, "/ui/monitoring", Some(&outsider)).await;
        assert!(!html.contains("iris"), "{html}");
    });
}

#[test]
fn a_slow_or_failing_drift_engine_never_holds_up_the_overview() {
    rt().block_on(async {
        let mut f = fixture().await;
        register(&f).await;
        write_prediction_log(&f);
        let slow = FakeDrift::new(800, false);
        f.settings.drift = Some(slow.clone());
        let app = ferry_dashboard::router(f.store.clone(), f.settings.clone());
        let t = std::time::Instant::now();
        let (status, html) = get_via(&app, "/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(t.elapsed() < std::time::Duration::from_millis(600), "{:?}", t.elapsed());
        assert!(html.contains("being measured…"), "{html}");
        // A view meanwhile starts nothing again; once done, the measure shows.
        let (_, html) = get_via(&app, "/", None).await;
        assert!(html.contains("being measured…"), "{html}");
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let (_, html) = get_via(&app, "/", None).await;
        assert!(html.contains("1 of 2 columns"), "{html}");
        assert_eq!(slow.calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        f.settings.drift = Some(FakeDrift::new(0, true));
        let app = ferry_dashboard::router(f.store.clone(), f.settings.clone());
        let (_, html) = get_via(&app, "/", None).await;
        assert!(
            html.contains("<span class=\"status failed\">not measured</span> <span class=\"muted\">the windows share no column to compare</span>"),
            "{html}"
        );
        let (status, html) = get_via(&app, "/ui/monitoring/iris", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("not measured"), "{html}");

        // Without a log at all.
        f.settings.predictions = None;
        let app = ferry_dashboard::router(f.store.clone(), f.settings.clone());
        let (_, html) = get_via(&app, "/ui/monitoring/iris", None).await;
        assert!(html.contains("was not told where the prediction log is"), "{html}");
    });
}

/// Stage `stage` of run `i` charged `usd`, as a run records it.
async fn charge(f: &Fixture, i: usize, stage: &str, usd: f64) {
    let mut s = StageRecord::new(stage, StageStatus::Ran, "changed".into());
    s.started_ms = Some(f.now - 2 * H);
    s.ended_ms = Some(f.now - 2 * H + MIN);
    s.wall_ms = Some(MIN);
    s.cost = Some(ferry_cost::StageCost {
        charged: usd,
        basis: ferry_cost::Basis::Used,
        requested: None,
        used: usd,
        machine: "aws-us-east-1".into(),
    });
    f.store.record_stage(&id(i), &s).await.unwrap();
}

#[test]
fn cost_shows_each_viewer_only_their_workspaces_spend() {
    rt().block_on(async {
        let f = fixture().await;
        charge(&f, 100, "train", 2.5).await;
        charge(&f, 5, "train", 1.25).await;
        charge(&f, 6, "evaluate", 0.25).await;
        let (status, html) = get(&f, "/ui/cost", None).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("<strong>$4.00</strong>"), "{html}");
        assert!(
            html.contains("<th scope=\"row\">growth</th><td>$2.50</td>"),
            "{html}"
        );
        assert!(
            html.contains("<th scope=\"row\">ml</th><td>$1.50</td>"),
            "{html}"
        );
        let (_, html) = get(&f, "/ui/cost?by=stage&since=7d", None).await;
        assert!(
            html.contains("<th scope=\"row\">iris&#x2f;train</th><td>$1.25</td>"),
            "{html}"
        );

        let ml = member_of(&f, "ml-viewer", "ml").await;
        let (_, html) = get(&f, "/ui/cost?by=pipeline", Some(&ml)).await;
        assert!(html.contains("<strong>$1.50</strong>"), "{html}");
        assert!(
            !html.contains("churn") && !html.contains("growth"),
            "{html}"
        );

        for (uri, field) in [
            ("/ui/cost?by=colour", "by `colour`"),
            ("/ui/cost?since=1y", "since `1y`"),
            ("/ui/cost?by=storage", "by `storage`"),
        ] {
            let (status, html) = get(&f, uri, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert!(html.contains(field), "{uri}: {html}");
        }
    });
}

#[test]
fn the_audit_log_is_for_server_admins_newest_first_a_page_at_a_time() {
    rt().block_on(async {
        let f = fixture().await;
        for i in 0..130u64 {
            f.store
                .append_audit(&ferry_auth::audit::Event {
                    time_ms: f.now - 1000 + i as i64,
                    actor: if i % 2 == 0 { "ana" } else { "ben" }.into(),
                    token_id: None,
                    action: if i == 129 {
                        "registered_model.alias.set"
                    } else {
                        "experiment.create"
                    }
                    .into(),
                    resource: format!("experiment:{i}"),
                    outcome: if i == 128 { "denied" } else { "allowed" }.into(),
                    source: "127.0.0.1".into(),
                    reason: (i == 129).then(|| "<b>hotfix</b>".into()),
                })
                .await
                .unwrap();
        }
        let (status, html) = get(&f, "/ui/audit", None).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let seqs = |html: &str| -> Vec<u64> {
            html.split("<tr><th scope=\"row\">")
                .skip(1)
                .map(|s| s[..s.find('<').unwrap()].parse().unwrap())
                .collect()
        };
        let first = seqs(&html);
        assert_eq!((first.len(), first[0], first[99]), (100, 130, 31));
        assert!(
            html.contains("&lt;b&gt;hotfix&lt;&#x2f;b&gt;"),
            "the reason is text"
        );
        assert!(html.contains("<span class=\"status failed\">denied</span>"));
        let next = next_link(&html);
        let (_, html) = get(&f, &next, None).await;
        assert_eq!(seqs(&html), (1..=30).rev().collect::<Vec<_>>());
        let (_, html) = get(&f, "/ui/audit?actor=ben&action=registered_model", None).await;
        assert_eq!(seqs(&html), vec![130]);

        let (status, _) = get(&f, "/ui/audit?before=x", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Not a server admin: refused, whatever their roles.
        let ml = member_of(&f, "ml-admin", "ml").await;
        let (status, html) = get(&f, "/ui/audit", Some(&ml)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(html.contains("shown to server admins"), "{html}");
        // Nor does their navigation offer it.
        let (_, html) = get(&f, "/", Some(&ml)).await;
        assert!(!html.contains("/ui/audit"), "{html}");
    });
}
