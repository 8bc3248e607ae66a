//! The rollout state machine end to end: a gateway over a real store,
//! misbehaving candidates (errors, slowness, shifted predictions, no
//! traffic, one that cannot load), load during promotion and rollback, and
//! a restarted gateway that resumes.

use super::*;
use ferry_gateway::canary::{Criteria, Plan, Strategy};
use ferry_metadata::{DeploymentChange, NewDeployment};
use std::time::Duration;

pub fn plan(steps: &[u32], interval_ms: u64, criteria: Criteria) -> Plan {
    Plan {
        strategy: Strategy::Canary,
        steps: steps.to_vec(),
        interval_ms,
        deadline_ms: 60_000,
        mirror_percent: 100,
        alias: "production".into(),
        criteria,
    }
}

pub fn criteria() -> Criteria {
    Criteria {
        max_error_rate: Some(0.05),
        max_p99_ms: Some(1_000.0),
        max_prediction_shift: Some(0.3),
        min_accuracy: None,
        min_requests: 10,
        min_agreement: None,
    }
}

pub async fn deploy(env: &Env, model: &str, candidate: i64, p: &Plan) -> String {
    let d = env
        .store
        .create_deployment(&NewDeployment {
            model: model.into(),
            candidate,
            stable: Some(1),
            strategy: p.strategy.as_str().into(),
            spec: serde_json::to_value(p).unwrap(),
            phase: "progressing".into(),
            weight: i64::from(ferry_gateway::canary::weight_at(p, 0)),
            created_ms: ferry_core::now_ms(),
            reason: None,
        })
        .await
        .unwrap();
    d.id
}

/// Two versions of `m`: 1 (healthy, production) and 2 (`candidate`).
async fn setup(candidate: &str) -> (Env, Arc<Gateway>) {
    let env = Env::new().await;
    env.version("m", None, Some("ok"), Some("production")).await;
    env.version("m", None, Some(candidate), None).await;
    let gw = env.gateway(&["m@production"], false).await;
    (env, gw)
}

/// `n` requests alternating between class a (x < 5) and b; their statuses.
pub async fn traffic(app: &axum::Router, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let x = if i % 2 == 0 { 1.0 } else { 9.0 };
        let r = post_json(
            app,
            "/invocations",
            &format!(r#"{{"instances": [[{x}, 0]]}}"#),
        )
        .await;
        out.push(r.status.as_u16());
    }
    out
}

async fn drive(
    env: &Env,
    gw: &Arc<Gateway>,
    id: &str,
    per_tick: usize,
    sleep_ms: u64,
) -> ferry_metadata::Deployment {
    let app = app(gw);
    for _ in 0..60 {
        // Whatever the candidate does, clients get answers (a failing
        // canary's requests are answered by the stable version).
        let statuses = traffic(&app, per_tick).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        gw.tick().await;
        let d = env.store.get_deployment(id).await.unwrap().unwrap();
        if !d.active {
            return d;
        }
    }
    let evs = env.store.deployment_events(id).await.unwrap();
    panic!("the deployment never ended: {evs:#?}");
}

async fn kinds(env: &Env, id: &str) -> Vec<String> {
    env.store
        .deployment_events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn a_healthy_canary_advances_step_by_step_and_is_promoted() {
    rt().block_on(async {
        let (env, gw) = setup("ok").await;
        let id = deploy(&env, "m", 2, &plan(&[20, 50, 100], 150, criteria())).await;
        gw.tick().await;
        let t = gw.table();
        let c = t.get("m").unwrap().candidate.as_ref().unwrap();
        assert_eq!((c.served.version, c.weight), (2, 20));
        // Its weight's share of traffic, spread evenly.
        let app = app(&gw);
        traffic(&app, 100).await;
        let snap = c.served.stats.snapshot();
        assert_eq!(snap.requests(), 20);
        let d = drive(&env, &gw, &id, 30, 160).await;
        assert_eq!(d.phase, "promoted");
        assert_eq!(
            kinds(&env, &id).await,
            ["started", "advanced", "advanced", "promoted"]
        );
        let prod = env
            .store
            .resolve_alias("m", "production")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(prod.version, 2);
        let ev = env.store.alias_events("m").await.unwrap();
        assert!(
            ev.last()
                .unwrap()
                .reason
                .as_deref()
                .unwrap()
                .starts_with("passed every step")
        );
        // The protected alias moved through a passing deployment: the audit
        // log says by whom, through which deployment, and why.
        let log = env.store.audit_entries(&Default::default()).await.unwrap();
        let e = &log.last().unwrap().event;
        assert_eq!(
            (e.actor.as_str(), e.action.as_str(), e.resource.as_str()),
            ("gateway", "deployment.promote", "registered_model:m")
        );
        let why = e.reason.as_deref().unwrap();
        assert!(
            why.starts_with(&format!("deployment {id} of version 2: passed every step")),
            "{why}"
        );
        // The route follows the alias: version 2 alone.
        let t = gw.table();
        let r = t.get("m").unwrap();
        assert_eq!(r.stable.version, 2);
        assert!(r.candidate.is_none());
        // Each decision kept its analysis.
        let evs = env.store.deployment_events(&id).await.unwrap();
        assert!(evs[1].detail["candidate"]["requests"].as_u64().unwrap() >= 10);
        assert_eq!(evs[1].detail["verdict"]["verdict"], "pass");
    });
}

#[test]
fn misbehaving_candidates_are_rolled_back_at_once_with_the_reason() {
    let cases = [
        ("errors=2", "error_rate 0."),
        ("delay=30ms", "p99_ms"),
        ("shift=b", "prediction_shift 0."),
    ];
    for (fake, want) in cases {
        rt().block_on(async {
            let (env, gw) = setup(fake).await;
            let mut c = criteria();
            c.max_p99_ms = Some(10.0);
            // A long interval: the failure must not wait for it.
            let id = deploy(&env, "m", 2, &plan(&[50, 100], 600_000, c)).await;
            gw.tick().await;
            let d = drive(&env, &gw, &id, 30, 10).await;
            assert_eq!(d.phase, "rolled_back", "{fake}");
            let reason = d.reason.clone().unwrap();
            assert!(reason.contains(want), "{fake}: {reason}");
            assert_eq!(kinds(&env, &id).await, ["started", "rolled_back"], "{fake}");
            let log = env.store.audit_entries(&Default::default()).await.unwrap();
            let e = &log.last().unwrap().event;
            assert_eq!(
                (e.actor.as_str(), e.action.as_str()),
                ("gateway", "deployment.rollback")
            );
            assert!(e.reason.as_deref().unwrap().contains(want), "{fake}: {e:?}");
            let v2 = env.store.get_version("m", 2).await.unwrap().unwrap();
            assert!(
                v2.tags
                    .iter()
                    .any(|(k, v)| k == "ferry.rejected" && v == &reason),
                "{fake}"
            );
            assert_eq!(
                env.store
                    .resolve_alias("m", "production")
                    .await
                    .unwrap()
                    .unwrap()
                    .version,
                1
            );
            // 100% back to stable.
            let t = gw.table();
            assert!(t.get("m").unwrap().candidate.is_none(), "{fake}");
            let statuses = traffic(&app(&gw), 20).await;
            assert!(statuses.iter().all(|s| *s == 200), "{fake}");
        });
    }
}

#[test]
fn no_traffic_waits_and_then_rolls_back_at_the_deadline() {
    rt().block_on(async {
        let (env, gw) = setup("ok").await;
        let mut p = plan(&[50, 100], 100, criteria());
        p.deadline_ms = 300;
        let id = deploy(&env, "m", 2, &p).await;
        gw.tick().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        gw.tick().await;
        let d = env.store.get_deployment(&id).await.unwrap().unwrap();
        assert!(d.active);
        assert_eq!(kinds(&env, &id).await, ["started", "waiting"]);
        assert!(d.reason.unwrap().contains("0 of 10 requests"));
        // Waiting is recorded once, not every tick.
        gw.tick().await;
        assert_eq!(kinds(&env, &id).await, ["started", "waiting"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        gw.tick().await;
        let d = env.store.get_deployment(&id).await.unwrap().unwrap();
        assert_eq!(d.phase, "rolled_back");
        assert!(
            d.reason
                .unwrap()
                .starts_with("no verdict within the deadline")
        );
    });
}

#[test]
fn a_candidate_that_cannot_load_is_rolled_back() {
    rt().block_on(async {
        let (env, gw) = setup("bogus=1").await;
        let id = deploy(&env, "m", 2, &plan(&[50, 100], 100, criteria())).await;
        // It loads in the background: a later tick finds it failed.
        let d = until_ended(&env, &gw, &id).await;
        assert_eq!(d.phase, "rolled_back");
        assert!(d.reason.unwrap().contains("failed to load"));
        assert!(traffic(&app(&gw), 10).await.iter().all(|s| *s == 200));
    });
}

/// One row for the fakes, in the Open Inference Protocol.
fn v2_row() -> String {
    r#"{"inputs": [{"name": "X", "shape": [1, 2], "datatype": "FP32", "data": [1, 0]}]}"#.into()
}

/// Ticks until the deployment ends (at most 5 s).
async fn until_ended(env: &Env, gw: &Gateway, id: &str) -> ferry_metadata::Deployment {
    for _ in 0..500 {
        gw.tick().await;
        let d = env.store.get_deployment(id).await.unwrap().unwrap();
        if d.phase != "progressing" {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("deployment {id} did not end");
}

/// A candidate that takes long to load (a process runtime waiting for its
/// health check, say) loads in the background: ticks go on meanwhile (other
/// models' routes and decisions are not held up), stable answers every
/// request, and the candidate gets its share once it is ready.
#[test]
fn a_slow_loading_candidate_does_not_hold_up_the_controller() {
    rt().block_on(async {
        let env = Env::new().await;
        env.version("m", None, Some("ok"), Some("production")).await;
        env.version("m", None, Some("load=1500ms"), None).await;
        env.version("n", None, Some("ok"), Some("production")).await;
        env.version("n", None, Some("errors=1"), None).await;
        let gw = env.gateway(&["m@production", "n@production"], false).await;
        let app = app(&gw);
        let slow = deploy(&env, "m", 2, &plan(&[50, 100], 60_000, criteria())).await;
        let started = std::time::Instant::now();
        gw.tick().await;
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a tick waited for the load: {:?}",
            started.elapsed()
        );
        // Meanwhile another model's failing candidate is judged and rolled back.
        let failing = deploy(&env, "n", 2, &plan(&[50, 100], 100, criteria())).await;
        gw.tick().await;
        for _ in 0..30 {
            let _ = post_json(&app, "/v2/models/n/infer", &v2_row()).await;
        }
        let d = until_ended(&env, &gw, &failing).await;
        assert_eq!(d.phase, "rolled_back");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        // m's candidate is not routed yet: every answer comes from version 1.
        for _ in 0..20 {
            let r = post_json(&app, "/v2/models/m/infer", &v2_row()).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-ferry-model-version"), Some("1"));
        }
        // Once loaded, a tick gives it its 50%.
        let mut versions = std::collections::HashSet::new();
        for _ in 0..300 {
            gw.tick().await;
            if gw
                .table()
                .get("m")
                .and_then(|r| r.candidate.as_ref())
                .is_some()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(1500));
        for _ in 0..40 {
            let r = post_json(&app, "/v2/models/m/infer", &v2_row()).await;
            assert_eq!(r.status, 200);
            versions.insert(r.header("x-ferry-model-version").unwrap().to_owned());
        }
        assert_eq!(versions.len(), 2, "both versions answer: {versions:?}");
        let d = env.store.get_deployment(&slow).await.unwrap().unwrap();
        assert_eq!(d.phase, "progressing");
    });
}

/// Clients hammering the gateway while it promotes one candidate and rolls
/// back another: not one request fails.
#[test]
fn no_request_fails_during_promotion_and_rollback() {
    rt().block_on(async {
        let env = Env::new().await;
        env.version("m", None, Some("ok"), Some("production")).await;
        env.version("m", None, Some("ok"), None).await;
        env.version("m", None, Some("shift=b"), None).await;
        let gw = env.gateway(&["m@production"], false).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for _ in 0..4 {
            let app = app(&gw);
            let stop = stop.clone();
            clients.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    statuses.extend(traffic(&app, 10).await);
                    tokio::task::yield_now().await;
                }
                statuses
            }));
        }
        // The prediction shift is not judged here: at 10% a candidate's
        // few requests can all be one class of the alternating traffic (the
        // rollback below is the one judged on it).
        let mut c = criteria();
        c.max_prediction_shift = None;
        let id = deploy(&env, "m", 2, &plan(&[10, 50, 100], 150, c)).await;
        let mut ended = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            gw.tick().await;
            let d = env.store.get_deployment(&id).await.unwrap().unwrap();
            if !d.active {
                ended = Some(d);
                break;
            }
        }
        let ended = ended.unwrap();
        assert_eq!(ended.phase, "promoted", "{ended:?}");
        // Now 2 is production; 3 answers wrongly and goes back.
        let mut p = plan(&[50, 100], 600_000, criteria());
        p.criteria.max_prediction_shift = Some(0.3);
        let d = env
            .store
            .create_deployment(&NewDeployment {
                model: "m".into(),
                candidate: 3,
                stable: Some(2),
                strategy: "canary".into(),
                spec: serde_json::to_value(&p).unwrap(),
                phase: "progressing".into(),
                weight: 50,
                created_ms: ferry_core::now_ms(),
                reason: None,
            })
            .await
            .unwrap();
        let mut ended = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            gw.tick().await;
            let d = env.store.get_deployment(&d.id).await.unwrap().unwrap();
            if !d.active {
                ended = Some(d);
                break;
            }
        }
        assert_eq!(ended.unwrap().phase, "rolled_back");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        for c in clients {
            all.extend(c.await.unwrap());
        }
        assert!(all.len() > 100, "{} requests", all.len());
        assert!(
            all.iter().all(|s| *s == 200),
            "failed: {:?}",
            all.iter().filter(|s| **s != 200).count()
        );
    });
}

#[test]
fn a_restarted_gateway_resumes_where_the_deployment_is() {
    rt().block_on(async {
        let (env, gw) = setup("ok").await;
        let id = deploy(&env, "m", 2, &plan(&[10, 40, 100], 600_000, criteria())).await;
        let d = env.store.get_deployment(&id).await.unwrap().unwrap();
        env.store
            .change_deployment(
                &id,
                d.revision,
                &DeploymentChange {
                    phase: "progressing".into(),
                    active: true,
                    step: 1,
                    weight: 40,
                    step_started_ms: ferry_core::now_ms(),
                    reason: Some("step 1 passed".into()),
                    kind: "advanced".into(),
                    detail: Value::Null,
                    now_ms: ferry_core::now_ms(),
                    move_alias: None,
                    reject: false,
                },
            )
            .await
            .unwrap();
        drop(gw);
        let gw = env.gateway(&["m@production"], false).await;
        let t = gw.table();
        let c = t.get("m").unwrap().candidate.as_ref().unwrap();
        assert_eq!((c.served.version, c.weight, c.deployment.step), (2, 40, 1));
        traffic(&app(&gw), 100).await;
        assert_eq!(c.served.stats.snapshot().requests(), 40);
        // `ferry deploy abort` writes to the store; the next tick obeys.
        let d = env.store.get_deployment(&id).await.unwrap().unwrap();
        env.store
            .change_deployment(
                &id,
                d.revision,
                &DeploymentChange {
                    phase: "aborted".into(),
                    active: false,
                    step: 1,
                    weight: 0,
                    step_started_ms: 0,
                    reason: Some("aborted by hand".into()),
                    kind: "aborted".into(),
                    detail: Value::Null,
                    now_ms: ferry_core::now_ms(),
                    move_alias: None,
                    reject: true,
                },
            )
            .await
            .unwrap();
        gw.tick().await;
        assert!(gw.table().get("m").unwrap().candidate.is_none());
    });
}

#[test]
fn a_shadow_gets_mirrored_traffic_and_its_disagreement_ends_it() {
    rt().block_on(async {
        let (env, gw) = setup("shift=b").await;
        let mut p = plan(
            &[],
            600_000,
            Criteria {
                min_agreement: Some(0.9),
                min_requests: 10,
                ..Criteria::default()
            },
        );
        p.strategy = Strategy::Shadow;
        let id = deploy(&env, "m", 2, &p).await;
        gw.tick().await;
        let app = app(&gw);
        for _ in 0..20 {
            let r = post_json(&app, "/invocations", r#"{"instances": [[1, 0]]}"#).await;
            // Answers come from the stable version only.
            assert_eq!(r.header("x-ferry-model-version"), Some("1"));
            assert_eq!(r.json()["predictions"][0], "a");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = call(&app, "GET", "/metrics", None, "").await.text;
        assert!(
            m.contains(
                r#"ferry_shadow_comparisons_total{model="m",version="2",outcome="disagree"}"#
            ),
            "{m}"
        );
        super::routes::promtool_check(&m);
        gw.tick().await;
        let d = env.store.get_deployment(&id).await.unwrap().unwrap();
        assert_eq!(d.phase, "rolled_back");
        assert!(d.reason.unwrap().contains("agreement 0 < 0.9"));
    });
}

/// A candidate that hangs: its requests time out, count as failures and are
/// answered by the stable version; it is rolled back.
#[test]
fn a_hanging_candidate_times_out_and_is_rolled_back() {
    rt().block_on(async {
        let env = Env::new().await;
        env.version("m", None, Some("ok"), Some("production")).await;
        env.version("m", None, Some("delay=5s"), None).await;
        let gw = env
            .gateway_with(&["m@production"], false, Duration::from_millis(100))
            .await;
        let id = deploy(&env, "m", 2, &plan(&[50, 100], 600_000, criteria())).await;
        gw.tick().await;
        let d = drive(&env, &gw, &id, 24, 10).await;
        assert_eq!(d.phase, "rolled_back");
        let reason = d.reason.unwrap();
        assert!(reason.contains("error_rate 1 > 0.05"), "{reason}");
    });
}

/// A gateway serving a pinned version (or another alias) is not the one a
/// deployment for `production` is about: it keeps serving what it serves.
#[test]
fn deployments_apply_to_gateways_serving_their_alias() {
    rt().block_on(async {
        let env = Env::new().await;
        env.version("m", None, Some("ok"), Some("production")).await;
        env.version("m", None, Some("ok"), None).await;
        let pinned = env.gateway(&["m/1"], false).await;
        let by_alias = env.gateway(&["m@production"], false).await;
        deploy(&env, "m", 2, &plan(&[50, 100], 600_000, criteria())).await;
        pinned.tick().await;
        by_alias.tick().await;
        assert!(pinned.table().get("m").unwrap().candidate.is_none());
        assert_eq!(pinned.table().get("m").unwrap().stable.version, 1);
        assert!(by_alias.table().get("m").unwrap().candidate.is_some());
    });
}

/// The stable version's columns, and a canary's that names them otherwise.
const STABLE_COLUMNS: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
const CANARY_COLUMNS: [&str; 4] = ["sl", "sw", "pl", "pw"];

/// One iris row in MLflow's `dataframe_records`, its columns named `names`.
fn records(names: &[&str; 4]) -> String {
    let values = [5.1, 3.5, 1.4, 0.2];
    let fields: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!(r#""{n}": {v}"#))
        .collect();
    format!(r#"{{"dataframe_records": [{{{}}}]}}"#, fields.join(", "))
}

/// A request's status, the version that answered it and its prediction.
async fn answer(app: &axum::Router, body: &str) -> (u16, Option<String>, Value) {
    let r = post_json(app, "/invocations", body).await;
    let version = r.header("x-ferry-model-version").map(str::to_owned);
    let json = serde_json::from_str(&r.text).unwrap_or(Value::Null);
    (r.status.as_u16(), version, json["predictions"][0].clone())
}

/// A canary whose version has another signature than the stable one: a
/// request routed to it is read against its own signature; a body only the
/// stable version can read is charged to the canary as a 5xx and answered
/// by the stable version (as any failure of a canary is); a body neither
/// reads is the stable version's 400. The canary's failures count in its
/// verdict: it is rolled back on its error rate.
#[test]
fn a_canary_with_another_signature_reads_requests_by_its_own() {
    rt().block_on(async {
        let env = Env::new().await;
        let onnx = Some("logreg.onnx");
        env.version_signed("iris", onnx, None, Some("production"), &STABLE_COLUMNS)
            .await;
        env.version_signed("iris", onnx, None, None, &CANARY_COLUMNS)
            .await;
        let gw = env.gateway(&["iris@production"], false).await;
        // Every request goes to the canary (a single step of 100%).
        let id = deploy(&env, "iris", 2, &plan(&[100], 600_000, criteria())).await;
        gw.reconcile(false).await.unwrap();
        gw.tick().await;
        let app = app(&gw);
        let setosa = Value::from("setosa");
        // Named as the canary names its columns: the canary answers.
        let canary = records(&CANARY_COLUMNS);
        assert_eq!(
            answer(&app, &canary).await,
            (200, Some("2".into()), setosa.clone())
        );
        // Unnamed rows are read by position: the canary answers.
        assert_eq!(
            answer(&app, r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#).await,
            (200, Some("2".into()), setosa.clone())
        );
        // Named as the stable version names them: the canary cannot read
        // it, the stable version answers.
        let stable = records(&STABLE_COLUMNS);
        assert_eq!(
            answer(&app, &stable).await,
            (200, Some("1".into()), setosa.clone())
        );
        // Named as neither: refused, as the stable version refuses it.
        let (status, _, _) = answer(&app, &records(&["a", "b", "c", "d"])).await;
        assert_eq!(status, 400);
        let metrics = call(&app, "GET", "/metrics", None, "").await.text;
        let count = |version: &str, code: &str| {
            let key = format!(
                r#"ferry_requests_total{{model="iris",version="{version}",code="{code}"}} "#
            );
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&key))
                .map_or(0, |n| n.parse::<u64>().unwrap())
        };
        assert_eq!(
            [
                count("2", "200"),
                count("2", "500"),
                count("2", "400"),
                count("1", "200"),
                count("1", "400")
            ],
            [2, 1, 0, 1, 1],
            "{metrics}"
        );
        // Clients that keep naming the stable version's columns are all
        // answered, and the canary fails every one of their requests.
        for _ in 0..10 {
            assert_eq!(answer(&app, &stable).await.0, 200);
        }
        gw.tick().await;
        let d = env.store.get_deployment(&id).await.unwrap().unwrap();
        assert_eq!(d.phase, "rolled_back", "{d:?}");
        let reason = d.reason.unwrap();
        assert!(reason.contains("error_rate 0."), "{reason}");
    });
}

#[test]
fn a_heartbeat_reports_each_versions_live_figures_and_the_rollouts_analysis() {
    rt().block_on(async {
        let (env, gw) = setup("ok").await;
        let id = deploy(&env, "m", 2, &plan(&[20, 100], 60_000, criteria())).await;
        gw.tick().await;
        let presence = ferry_gateway::presence::Presence::new(
            gw.replica.clone(),
            "127.0.0.1:1".parse().unwrap(),
            Duration::from_secs(1),
        );
        traffic(&app(&gw), 100).await;
        gw.tick().await;
        let beat = presence.beat(&gw, ferry_core::now_ms());
        let m = &beat.models[0];
        let figures: Vec<(i64, &str, u64, u64)> = m
            .live
            .iter()
            .map(|l| (l.version, l.role.as_str(), l.requests, l.errors))
            .collect();
        assert_eq!(figures, [(1, "stable", 80, 0), (2, "canary", 20, 0)]);
        assert!(m.live.iter().all(|l| l.p99_ms.is_some()));
        // The step is judged before its interval is up: what the dashboard
        // shows live, each criterion's value against its limit.
        let a = m.analysis.as_ref().unwrap();
        assert_eq!(a.deployment_id, id);
        let checks = a.detail["verdict"]["checks"].as_array().unwrap();
        let error_rate = checks.iter().find(|c| c["name"] == "error_rate").unwrap();
        assert_eq!(
            (error_rate["value"].as_f64(), error_rate["limit"].as_f64()),
            (Some(0.0), Some(0.05))
        );
        assert_eq!(a.detail["candidate"]["requests"], 20);

        // The next beat counts only what came since the window's start.
        traffic(&app(&gw), 10).await;
        let beat = presence.beat(&gw, ferry_core::now_ms());
        let total: u64 = beat.models[0].live.iter().map(|l| l.requests).sum();
        assert_eq!(total, 10, "{:?}", beat.models[0].live);
        // And it survives the store: the dashboard reads it back.
        env.store.gateway_heartbeat(&beat, &[]).await.unwrap();
        let back = env.store.list_gateways().await.unwrap();
        // (Floats come back from JSON text to within their last bit.)
        let figures = |m: &ferry_metadata::GatewayModel| -> Vec<(i64, u64, u64, i64)> {
            m.live
                .iter()
                .map(|l| {
                    (
                        l.version,
                        l.requests,
                        l.errors,
                        (l.p99_ms.unwrap_or(0.0) * 1e6).round() as i64,
                    )
                })
                .collect()
        };
        assert_eq!(figures(&back[0].models[0]), figures(&beat.models[0]));
        let a = back[0].models[0].analysis.as_ref().unwrap();
        assert_eq!(
            (a.deployment_id.as_str(), &a.detail["candidate"]["requests"]),
            (id.as_str(), &serde_json::json!(20))
        );
    });
}
