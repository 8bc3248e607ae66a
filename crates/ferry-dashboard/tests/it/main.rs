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
        let next = first
            .split("rel=\"next\" href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&").replace("&#x2f;", "/");
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
        let next = first
            .split("rel=\"next\" href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&").replace("&#x2f;", "/");
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
            (format!("author=alice"), vec![id(3)]),
            (format!("q={}", q("attributes.user_id = 'bob'")), vec![id(5)]),
            (format!("q={}&status=failed", q("tags.mlflow.user LIKE '%'")), vec![id(3)]),
            (format!("q={}", q("attributes.status = 'FAILED' and tags.mlflow.user = 'alice'")), vec![id(3)]),
        ] {
            let (status, html) = get(&f, &format!("/ui/runs?{query}"), None).await;
            assert_eq!(status, StatusCode::OK, "{query}: {html}");
            assert_eq!(ids(&html), expect, "{query}");
        }
        // The author is shown and is a filter of its own.
        let (_, html) = get(&f, "/ui/runs?author=alice", None).await;
        assert!(html.contains("<a href=\"/ui/runs?author=alice\">alice</a>"), "{html}");
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
