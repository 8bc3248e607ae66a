//! The closed loop with a driven clock: real prediction-log files and a
//! real store (SQLite), the pipeline, the rollouts and the webhook faked.

#![allow(clippy::unwrap_used)]

use ferry_core::clock::{Clock, ManualClock};
use ferry_metadata::*;
use ferry_monitor::agent::{Agent, Memory, Pipelines, Project, Ran, Rollouts};
use ferry_monitor::alert::{self, Notifier};
use std::path::Path;
use std::sync::{Arc, Mutex};

const MIN: i64 = 60_000;
/// 2026-11-26T14:30:00Z.
const T0: i64 = 1_795_703_400_000;

const SPEC: &str = r#"
stages:
  train:
    cmd: python train.py
    deps: [data/iris.csv]
    outs: [model.onnx]
register:
  model: iris
  artifact: model.onnx
monitor:
  reference: data/iris.csv
  min_rows: 50
  window: 1h
  schedule: 5m
  thresholds:
    drift_share: 0.4
    accuracy: 0.9
  alerts:
    webhook_env: HOOK
    secret_env: HOOK_SECRET
    cooldown: 1h
on:
  drift: iris@production
  cooldown: 2h
deploy:
  steps: [50, 100]
  interval: 30s
"#;

/// Deterministic noise in [-1, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

const COLUMNS: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
const MEANS: [f64; 4] = [5.8, 3.0, 3.7, 1.2];

fn reference(root: &Path) {
    let mut rng = Lcg(7);
    let mut csv = format!("{},species\n", COLUMNS.join(","));
    for _ in 0..300 {
        let row: Vec<String> = MEANS
            .iter()
            .map(|m| format!("{:.3}", m + rng.next()))
            .collect();
        csv.push_str(&format!("{},setosa\n", row.join(",")));
    }
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/iris.csv"), csv).unwrap();
}

/// Writes `n` logged predictions of `version` in the hour window of
/// `at_ms`, the petals moved by `shift`.
fn log(dir: &Path, at_ms: i64, version: i64, n: usize, shift: f64, seed: u64) {
    let folder = dir.join(ferry_core::predlog::model_dir("iris"));
    std::fs::create_dir_all(&folder).unwrap();
    let name = format!(
        "predictions-{}.jsonl",
        ferry_core::predlog::window_name(at_ms, 3600)
    );
    let mut rng = Lcg(seed);
    let mut text = String::new();
    for i in 0..n {
        let mut row = serde_json::json!({"ts": at_ms, "request_id": format!("r{seed}-{i}"), "model": "iris", "version": version});
        for (c, m) in COLUMNS.iter().zip(MEANS) {
            let moved = if c.starts_with("petal") { shift } else { 0.0 };
            row[*c] = serde_json::json!(m + moved + rng.next());
        }
        row["prediction"] = serde_json::json!(if i % 3 == 0 { "setosa" } else { "versicolor" });
        text.push_str(&row.to_string());
        text.push('\n');
    }
    std::fs::write(folder.join(name), text).unwrap();
}

/// A webhook call: the URL, the body's bytes and the headers.
type Call = (String, Vec<u8>, Vec<(String, String)>);

#[derive(Default)]
struct Hook(Mutex<Vec<Call>>);
impl Notifier for Hook {
    fn post(&self, url: &str, body: &[u8], headers: &[(&str, String)]) -> Result<(), String> {
        let h = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.0
            .lock()
            .unwrap()
            .push((url.to_owned(), body.to_vec(), h));
        Ok(())
    }
}
impl Hook {
    fn texts(&self) -> Vec<String> {
        let got = self.0.lock().unwrap();
        got.iter()
            .map(|(_, b, _)| {
                serde_json::from_slice::<serde_json::Value>(b).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
}

/// The pipeline: registers the next version when it passes, or fails its gates.
struct Train {
    store: Arc<SqlStore>,
    passes: bool,
    runs: Mutex<Vec<String>>,
    rt: tokio::runtime::Handle,
}
impl Pipelines for Train {
    fn run(&self, t: &TriggeredRun) -> Result<Ran, String> {
        self.runs.lock().unwrap().push(t.trigger_id.clone());
        if !self.passes {
            return Ok(Ran {
                run_id: Some("run-f".into()),
                succeeded: false,
                registered: None,
                message: "gate `metrics.accuracy >= 0.9` failed: 0.71".into(),
            });
        }
        let v = self
            .rt
            .block_on(self.store.create_model_version(&version(None)))
            .unwrap();
        Ok(Ran {
            run_id: Some(format!("run-{}", v.version)),
            succeeded: true,
            registered: Some(v.version),
            message: "registered".into(),
        })
    }
    fn data_changed(&self, _: &[String]) -> Result<Option<(String, String)>, String> {
        Ok(None)
    }
}

/// Rollouts recorded as real deployments; the test plays the gateway's verdicts.
struct Deploy(Arc<SqlStore>);
#[async_trait::async_trait]
impl Rollouts for Deploy {
    async fn start(
        &self,
        model: &str,
        version: i64,
        policy: &ferry_spec::DeployPolicy,
        reason: &str,
    ) -> Result<String, String> {
        assert_eq!(policy.steps, Some(vec![50, 100]));
        let d = self
            .0
            .create_deployment(&NewDeployment {
                model: model.into(),
                candidate: version,
                stable: Some(1),
                strategy: "canary".into(),
                spec: serde_json::json!({}),
                phase: "progressing".into(),
                weight: 50,
                created_ms: T0,
                reason: Some(reason.into()),
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(d.id)
    }
}

fn version(alias: Option<&str>) -> NewModelVersion {
    NewModelVersion {
        model: "iris".into(),
        run_id: None,
        artifact_path: "model.onnx".into(),
        artifact_digest: format!("{:064}", ferry_core::now_ms()),
        artifact_size: 1,
        git_commit: None,
        git_dirty: None,
        env_fingerprint: None,
        lineage: serde_json::json!({}),
        created_ms: T0 - 600 * MIN,
        alias: alias.map(Into::into),
        source: None,
        stored: None,
    }
}

/// The spec, loaded against the files under `root`.
fn load(root: &Path, spec: &str) -> ferry_spec::Pipeline {
    struct Files<'a>(&'a Path);
    impl ferry_spec::Files for Files<'_> {
        fn read(&self, p: &str) -> Result<Option<String>, String> {
            Ok(std::fs::read_to_string(self.0.join(p)).ok())
        }
        fn exists(&self, p: &str) -> bool {
            self.0.join(p).exists()
        }
    }
    ferry_spec::load("ferry.yaml", spec, "iris", &Files(root)).unwrap()
}

struct Loop {
    _dir: tempfile::TempDir,
    store: Arc<SqlStore>,
    clock: ManualClock,
    hook: Arc<Hook>,
    project: Project,
}

impl Loop {
    async fn new() -> Loop {
        Self::with(SPEC).await
    }

    async fn with(spec: &str) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        reference(&root);
        std::fs::write(root.join("ferry.yaml"), spec).unwrap();
        let pipeline = load(&root, spec);
        let url = format!("sqlite://{}", root.join("ferry.db").display());
        let store = Arc::new(SqlStore::open(&url).await.unwrap());
        store
            .create_model_version(&version(Some("production")))
            .await
            .unwrap();
        let project = Project {
            pipeline,
            log_dir: root.join("predictions"),
            artifacts: root.join("artifacts"),
            root,
        };
        Loop {
            _dir: dir,
            store,
            clock: ManualClock::at(T0),
            hook: Arc::default(),
            project,
        }
    }

    fn agent(&self, name: &str, store: Arc<SqlStore>) -> Agent {
        Agent {
            store,
            clock: Arc::new(self.clock.clone()),
            notifier: self.hook.clone(),
            env: Arc::new(|k: &str| match k {
                "HOOK" => Some("http://127.0.0.1:9/hook".into()),
                "HOOK_SECRET" => Some("s3cret".into()),
                _ => None,
            }),
            name: name.into(),
            lease_ms: MIN,
        }
    }

    fn train(&self, passes: bool) -> Arc<Train> {
        Arc::new(Train {
            store: self.store.clone(),
            passes,
            runs: Mutex::default(),
            rt: tokio::runtime::Handle::current(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_alerts_retrains_deploys_and_recovers() {
    let l = Loop::new().await;
    let logs = l.project.log_dir.clone();
    log(&logs, T0 - 10 * MIN, 1, 400, 2.5, 1);
    let agent = l.agent("a", l.store.clone());
    let train = l.train(true);
    let deploy = Deploy(l.store.clone());
    let mut memory = Memory::default();

    // The monitor fires within one window; one signed alert; the drift
    // trigger queues a retrain, which runs and is rolled out.
    let t = agent
        .tick(&l.project, &mut memory, train.clone(), &deploy)
        .await
        .unwrap();
    let drift = t.events.iter().find(|e| e.check == "drift").unwrap();
    assert_eq!(drift.status, CheckStatus::Failing, "{}", drift.summary);
    assert!(
        drift.summary.starts_with("drift in petal_length"),
        "{}",
        drift.summary
    );
    assert!(
        drift.summary.contains("over 400 predictions"),
        "{}",
        drift.summary
    );
    let accuracy = t.events.iter().find(|e| e.check == "accuracy").unwrap();
    assert_eq!(accuracy.status, CheckStatus::Insufficient);
    let posted = l.hook.0.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "{:?}", l.hook.texts());
    let (url, body, headers) = &posted[0];
    assert_eq!(url, "http://127.0.0.1:9/hook");
    let header = |k: &str| headers.iter().find(|h| h.0 == k).unwrap().1.clone();
    let ts: i64 = header(alert::TIMESTAMP_HEADER).parse().unwrap();
    assert!(alert::verify(
        b"s3cret",
        ts,
        body,
        &header(alert::SIGNATURE_HEADER)
    ));
    assert!(l.hook.texts()[0].contains("iris version 1: drift is failing"));
    assert!(
        matches!(&t.fired[..], [Fired::Queued { trigger }] if trigger.evidence.contains("petal_length"))
    );
    let (trigger, ran) = t.ran.as_ref().unwrap();
    assert_eq!((trigger.kind.as_str(), ran.registered), ("drift", Some(2)));
    let id = t.deployed.clone().unwrap();
    let d = l.store.get_deployment(&id).await.unwrap().unwrap();
    assert!(d.reason.unwrap().contains("triggered by drift"));
    let done = l.store.trigger_of_run("run-2").await.unwrap().unwrap();
    assert_eq!(done.state, TriggerState::Succeeded);

    // Five minutes on: still drifting, told no one again (deduplicated),
    // and the same episode of drift does not fire again.
    l.clock.advance(5 * MIN);
    let t = agent
        .tick(&l.project, &mut memory, train.clone(), &deploy)
        .await
        .unwrap();
    assert!(!t.events.is_empty());
    assert_eq!(l.hook.0.lock().unwrap().len(), 1);
    assert!(matches!(&t.fired[..], [Fired::Duplicate]), "{:?}", t.fired);
    assert!(t.ran.is_none());
    assert_eq!(train.runs.lock().unwrap().len(), 1);

    // The gateway promotes the canary; traffic of version 2 looks like the
    // reference again: the monitor recovers and says so, once.
    let d = l.store.get_deployment(&id).await.unwrap().unwrap();
    l.store
        .change_deployment(
            &id,
            d.revision,
            &DeploymentChange {
                phase: "promoted".into(),
                active: false,
                step: 2,
                weight: 100,
                step_started_ms: T0,
                reason: Some("passed".into()),
                kind: "promoted".into(),
                detail: serde_json::json!({}),
                now_ms: T0 + 20 * MIN,
                move_alias: Some("production".into()),
                reject: false,
            },
        )
        .await
        .unwrap();
    l.clock.set(T0 + 100 * MIN);
    log(&logs, T0 + 90 * MIN, 2, 400, 0.0, 2);
    let t = agent
        .tick(&l.project, &mut memory, train.clone(), &deploy)
        .await
        .unwrap();
    let drift = t.events.iter().find(|e| e.check == "drift").unwrap();
    assert_eq!(
        (drift.status, drift.version),
        (CheckStatus::Ok, Some(2)),
        "{}",
        drift.summary
    );
    let texts = l.hook.texts();
    assert!(
        texts.iter().any(|t| t.contains("drift recovered")),
        "{texts:?}"
    );
    assert_eq!(
        texts.len(),
        2,
        "a promotion after no rollback is not an alert: {texts:?}"
    );
    assert!(t.fired.is_empty());
    let history = l
        .store
        .monitor_events(Some("iris"), None, 100)
        .await
        .unwrap();
    assert!(history.len() >= 9);

    // It drifts anew, still within the cooldown of the retrain (2h): the
    // trigger fires, is ignored, and that is recorded.
    l.clock.set(T0 + 115 * MIN);
    std::fs::remove_file(logs.join("iris").join(format!(
        "predictions-{}.jsonl",
        ferry_core::predlog::window_name(T0 + 90 * MIN, 3600)
    )))
    .unwrap();
    log(&logs, T0 + 110 * MIN, 2, 400, 2.5, 3);
    let t = agent
        .tick(&l.project, &mut memory, train.clone(), &deploy)
        .await
        .unwrap();
    let [Fired::Ignored { trigger, .. }] = &t.fired[..] else {
        panic!("{:?} {:?}", t.fired, t.events);
    };
    assert!(
        trigger
            .note
            .as_deref()
            .unwrap()
            .contains("within the cooldown (2h)")
    );
    assert_eq!(train.runs.lock().unwrap().len(), 1);
    let recorded = l.store.triggered_runs(Some("iris"), 10).await.unwrap();
    assert_eq!(recorded[0].state, TriggerState::Ignored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_fails_its_gates_is_not_deployed_and_is_told() {
    let l = Loop::new().await;
    log(&l.project.log_dir, T0 - 10 * MIN, 1, 400, 2.5, 1);
    let agent = l.agent("a", l.store.clone());
    let t = agent
        .tick(
            &l.project,
            &mut Memory::default(),
            l.train(false),
            &Deploy(l.store.clone()),
        )
        .await
        .unwrap();
    assert!(t.deployed.is_none());
    assert!(
        l.store
            .list_deployments(Some("iris"), false)
            .await
            .unwrap()
            .is_empty()
    );
    let (trigger, _) = t.ran.unwrap();
    let runs = l.store.triggered_runs(Some("iris"), 5).await.unwrap();
    assert_eq!(
        (runs[0].trigger_id.as_str(), runs[0].state),
        (trigger.trigger_id.as_str(), TriggerState::Failed)
    );
    assert!(runs[0].note.as_deref().unwrap().contains("gate"));
    let texts = l.hook.texts();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("did not produce a candidate") && t.contains("0.71")),
        "{texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_canary_is_told_once() {
    let l = Loop::new().await;
    l.store.create_model_version(&version(None)).await.unwrap();
    let id = Deploy(l.store.clone())
        .start(
            "iris",
            2,
            &ferry_spec::DeployPolicy {
                steps: Some(vec![50, 100]),
                ..Default::default()
            },
            "by hand",
        )
        .await
        .unwrap();
    let d = l.store.get_deployment(&id).await.unwrap().unwrap();
    l.store
        .change_deployment(
            &id,
            d.revision,
            &DeploymentChange {
                phase: "rolled_back".into(),
                active: false,
                step: 0,
                weight: 0,
                step_started_ms: T0,
                reason: Some("error rate 0.2 > 0.05".into()),
                kind: "rolled_back".into(),
                detail: serde_json::json!({}),
                now_ms: T0,
                move_alias: None,
                reject: true,
            },
        )
        .await
        .unwrap();
    let agent = l.agent("a", l.store.clone());
    let (train, deploy) = (l.train(true), Deploy(l.store.clone()));
    let mut memory = Memory::default();
    agent
        .tick(&l.project, &mut memory, train.clone(), &deploy)
        .await
        .unwrap();
    l.clock.advance(5 * MIN);
    agent
        .tick(&l.project, &mut memory, train, &deploy)
        .await
        .unwrap();
    let texts = l.hook.texts();
    let back: Vec<_> = texts
        .iter()
        .filter(|t| t.contains("rolled back: error rate 0.2 > 0.05"))
        .collect();
    assert_eq!(back.len(), 1, "{texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_race_for_one_trigger_and_a_dead_agents_run_is_retried_once() {
    let l = Loop::new().await;
    log(&l.project.log_dir, T0 - 10 * MIN, 1, 400, 2.5, 1);
    let url = format!("sqlite://{}", l.project.root.join("ferry.db").display());
    let other = Arc::new(SqlStore::open(&url).await.unwrap());
    let (a, b) = (l.agent("a", l.store.clone()), l.agent("b", other));
    let train = l.train(true);
    let deploy = Deploy(l.store.clone());
    let (mut ma, mut mb) = (Memory::default(), Memory::default());
    let (x, y) = tokio::join!(
        a.tick(&l.project, &mut ma, train.clone(), &deploy),
        b.tick(&l.project, &mut mb, train.clone(), &deploy)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(
        train.runs.lock().unwrap().len(),
        1,
        "one run for one trigger"
    );
    assert!(x.ran.is_some() ^ y.ran.is_some());
    assert_eq!(
        l.hook.0.lock().unwrap().len(),
        1,
        "one alert for two agents"
    );

    // An agent claims a manual run and dies: once its lease lapses another
    // agent runs it (attempt 2).
    let f = Firing {
        pipeline: "iris".into(),
        kind: "manual".into(),
        key: "manual:x".into(),
        evidence: "asked".into(),
        commit: None,
        now_ms: l.clock.now_ms(),
        cooldown_ms: 0,
    };
    l.store.fire_trigger(&f).await.unwrap();
    let dead = l
        .store
        .claim_trigger(&Claim {
            pipeline: "iris".into(),
            agent: "dead".into(),
            now_ms: l.clock.now_ms(),
            lease_ms: MIN,
            concurrency: 1,
            retries: 1,
        })
        .await
        .unwrap()
        .unwrap();
    l.clock.advance(2 * MIN);
    let t = a
        .tick(&l.project, &mut ma, train.clone(), &deploy)
        .await
        .unwrap();
    let (retried, _) = t.ran.unwrap();
    assert_eq!(
        (retried.trigger_id.as_str(), retried.attempts),
        (dead.trigger_id.as_str(), 2)
    );
    assert!(retried.note.unwrap().contains("stopped answering"));
}

/// A version keeps its reference among its files: the monitor compares
/// with that sample, not the project's file, and refuses one whose files
/// changed since registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_is_compared_with_the_reference_it_kept() {
    let l = Loop::new().await;
    let logs = l.project.log_dir.clone();
    log(&logs, T0 - 10 * MIN, 2, 400, 2.5, 1);
    // Version 2 was trained on data like today's traffic, and kept it.
    let dir = l.project.artifacts.join("1/run2/artifacts/iris");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.onnx"), b"onnx").unwrap();
    let mut rng = Lcg(9);
    let mut csv = format!("{},species\n", COLUMNS.join(","));
    for _ in 0..300 {
        let row: Vec<String> = COLUMNS
            .iter()
            .zip(MEANS)
            .map(|(c, m)| {
                format!(
                    "{:.3}",
                    m + if c.starts_with("petal") { 2.5 } else { 0.0 } + rng.next()
                )
            })
            .collect();
        csv.push_str(&format!("{},virginica\n", row.join(",")));
    }
    std::fs::write(dir.join("reference.csv"), &csv).unwrap();
    let mut v = version(Some("production"));
    v.lineage = serde_json::json!({"reference": {"source": "data/iris.csv", "file": "reference.csv", "rows": 300, "kept": 300}});
    v.stored = Some(StoredFiles {
        location: "mlflow-artifacts:/1/run2/artifacts/iris".into(),
        digest: ferry_cache::stored_digest(&dir).unwrap().to_hex(),
    });
    assert_eq!(l.store.create_model_version(&v).await.unwrap().version, 2);
    let agent = l.agent("a", l.store.clone());
    let m = l.project.pipeline.monitor.as_ref().unwrap();
    let events = agent.monitor(&l.project, m).await.unwrap();
    let drift = events.iter().find(|e| e.check == "drift").unwrap();
    assert_eq!(
        (drift.version, drift.status),
        (Some(2), CheckStatus::Ok),
        "{}",
        drift.summary
    );

    std::fs::write(
        dir.join("reference.csv"),
        csv.replace("virginica", "setosa"),
    )
    .unwrap();
    let events = agent.monitor(&l.project, m).await.unwrap();
    let drift = events.iter().find(|e| e.check == "drift").unwrap();
    assert_eq!(drift.status, CheckStatus::Error);
    assert!(
        drift.summary.contains("changed since it was registered"),
        "{}",
        drift.summary
    );
}

/// `ferry monitor rules` is valid under `promtool check rules` (Debian's
/// `prometheus`; CI installs it, elsewhere the check is skipped with a
/// note), with a rule per condition, quoting names PromQL must escape.
#[test]
fn the_prometheus_rules_pass_promtool() {
    let spec = SPEC.replace(
        "    accuracy: 0.9\n",
        "    accuracy: 0.9\n    p99_ms: 250\n",
    );
    let dir = tempfile::tempdir().unwrap();
    reference(dir.path());
    let p = load(dir.path(), &spec);
    let text = ferry_monitor::rules::render(&[p.monitor.as_ref().unwrap()]);
    for alert in [
        "FerryModelInputDrift",
        "FerryModelPredictionShift",
        "FerryModelAccuracyDecay",
        "FerryModelErrorRate",
        "FerryModelLatencyP99",
        "FerryMonitorStale",
    ] {
        assert!(
            text.contains(&format!("- alert: {alert}\n")),
            "{alert}:\n{text}"
        );
    }
    assert!(text.contains(r#"ferry_monitor_failing{model=\"iris\",check=\"drift\"} == 1"#));
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, &text).unwrap();
    let out = match std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not found: the rules were not checked (CI installs it)");
            return;
        }
        Err(e) => panic!("promtool is needed in CI: {e}"),
    };
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "promtool: {said}{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("SUCCESS: 6 rules found"), "{said}");
}

/// A schedule fires once per minute it names (however many ticks see it,
/// however many agents), and decay fires on live accuracy below its floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_a_slot_and_decay_below_its_floor() {
    let spec = SPEC
        .replace(
            "  drift: iris@production\n",
            "  schedule: \"*/15 * * * *\"\n  decay: {model: iris, below: 0.8}\n",
        )
        .replace("  cooldown: 2h\n", "  cooldown: 1m\n");
    let l = Loop::with(&spec).await;
    let agent = l.agent("a", l.store.clone());
    let (train, deploy) = (l.train(true), Deploy(l.store.clone()));
    let mut memory = Memory::default();
    // 14:30: the agent starts; nothing is due until 14:45.
    let t = agent
        .tick(&l.project, &mut memory, train.clone(), &deploy)
        .await
        .unwrap();
    assert!(t.fired.is_empty(), "{:?}", t.fired);
    l.clock.advance(10 * MIN);
    let t = agent
        .tick(&l.project, &mut memory, train.clone(), &deploy)
        .await
        .unwrap();
    assert!(t.fired.is_empty());
    l.clock.advance(6 * MIN); // 14:46
    let t = agent
        .tick(&l.project, &mut memory, train.clone(), &deploy)
        .await
        .unwrap();
    let [Fired::Queued { trigger }] = &t.fired[..] else {
        panic!("{:?}", t.fired);
    };
    assert_eq!(trigger.kind, "schedule");
    assert!(
        trigger.evidence.contains("2026-11-26T14:45:00Z"),
        "{}",
        trigger.evidence
    );
    // Another agent that starts later sees the same slot already fired.
    let other = l.agent("b", l.store.clone());
    let mut fresh = Memory::default();
    let t = other
        .tick(&l.project, &mut fresh, train.clone(), &deploy)
        .await
        .unwrap();
    assert!(t.fired.is_empty());

    // Labels say version 1 is right 70% of the time: decay fires.
    let folder = l.project.log_dir.join("iris");
    std::fs::create_dir_all(&folder).unwrap();
    let name = format!(
        "feedback-{}.jsonl",
        ferry_core::predlog::window_name(l.clock.now_ms() - MIN, 3600)
    );
    let mut text = String::new();
    for i in 0..100 {
        let row = serde_json::json!({"ts": 0, "request_id": format!("f{i}"), "model": "iris", "version": 1, "labels": ["setosa"], "predicted": ["setosa"], "correct": u64::from(i % 10 < 7)});
        text.push_str(&format!("{row}\n"));
    }
    std::fs::write(folder.join(name), text).unwrap();
    l.clock.advance(5 * MIN);
    let t = agent
        .tick(&l.project, &mut memory, train, &deploy)
        .await
        .unwrap();
    let acc = t.events.iter().find(|e| e.check == "accuracy").unwrap();
    assert_eq!(
        (acc.status, acc.value),
        (CheckStatus::Failing, Some(0.7)),
        "{}",
        acc.summary
    );
    let decay = t.fired.iter().find_map(|f| match f {
        Fired::Queued { trigger } if trigger.kind == "decay" => Some(trigger),
        _ => None,
    });
    assert!(
        decay
            .unwrap()
            .evidence
            .contains("live accuracy 0.700 < 0.8"),
        "{:?}",
        t.fired
    );
}

/// A webhook's triggers name a commit: a pull request's run is built and
/// recorded but never rolled out, nor told as a failed retrain; a push's
/// candidate is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_requests_candidate_is_not_rolled_out_and_a_pushs_is() {
    let l = Loop::new().await;
    let agent = l.agent("a", l.store.clone());
    let fire = |kind: &str, key: &str| Firing {
        pipeline: "iris".into(),
        kind: kind.into(),
        key: key.into(),
        evidence: format!("{kind} to main by octocat (github delivery {key})"),
        commit: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into()),
        now_ms: l.clock.now_ms(),
        cooldown_ms: 0,
    };
    for passes in [true, false] {
        let key = format!("github:pr-{passes}");
        l.store
            .fire_trigger(&fire(ferry_monitor::agent::PULL_REQUEST, &key))
            .await
            .unwrap();
        let t = agent
            .tick(
                &l.project,
                &mut Memory::default(),
                l.train(passes),
                &Deploy(l.store.clone()),
            )
            .await
            .unwrap();
        let (trigger, ran) = t.ran.unwrap();
        assert_eq!(
            trigger.commit.as_deref(),
            Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")
        );
        assert_eq!(ran.succeeded, passes);
        assert!(t.deployed.is_none(), "a pull request is not rolled out");
        assert!(l.hook.texts().is_empty(), "{:?}", l.hook.texts());
        l.clock.advance(MIN);
    }
    l.store
        .fire_trigger(&fire("push", "github:push-1"))
        .await
        .unwrap();
    let t = agent
        .tick(
            &l.project,
            &mut Memory::default(),
            l.train(true),
            &Deploy(l.store.clone()),
        )
        .await
        .unwrap();
    assert_eq!(t.ran.unwrap().0.kind, "push");
    assert!(t.deployed.is_some(), "a push's candidate goes out");
}

/// `n` reviews of 8 words, every other one from `topic`.
fn reviews(n: usize, topic: &[&str], seed: u64) -> Vec<String> {
    const COMMON: [&str; 12] = [
        "product", "bought", "really", "quality", "price", "happy", "item", "order", "works",
        "great", "value", "money",
    ];
    let mut rng = Lcg(seed);
    let mut pick = |from: &[&str]| {
        from[((rng.next() + 1.0) / 2.0 * from.len() as f64) as usize % from.len()].to_owned()
    };
    (0..n)
        .map(|_| {
            (0..8)
                .map(|k| {
                    if k % 2 == 0 {
                        pick(&COMMON)
                    } else {
                        pick(topic)
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// A text model's monitor: its `review` input, logged as text, is
/// compared by the domain classifier (the monitor's method for every
/// column leaves text to it), drifts when the traffic turns from delivery
/// to battery life, and the event names the words now typical.
#[test]
fn a_text_models_inputs_drift_as_text() {
    const DELIVERY: [&str; 10] = [
        "delivery",
        "courier",
        "package",
        "arrived",
        "late",
        "shipping",
        "parcel",
        "driver",
        "doorstep",
        "warehouse",
    ];
    const BATTERY: [&str; 10] = [
        "battery",
        "charge",
        "charging",
        "hours",
        "drains",
        "lasts",
        "charger",
        "overnight",
        "standby",
        "capacity",
    ];
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reviews.jsonl");
    let lines = |texts: Vec<String>, logged: bool| -> String {
        texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let mut row = serde_json::json!({"review": t, "stars": 1 + i % 5});
                if logged {
                    row["ts"] = serde_json::json!(T0 - 10 * MIN);
                    row["request_id"] = serde_json::json!(format!("r{i}"));
                    row["model"] = serde_json::json!("reviews");
                    row["version"] = serde_json::json!(1);
                    row["prediction"] = serde_json::json!(["pos", "neg"][i % 2]);
                }
                format!("{row}\n")
            })
            .collect()
    };
    std::fs::write(&reference, lines(reviews(300, &DELIVERY, 1), false)).unwrap();
    let logs = dir.path().join("logs");
    let folder = logs.join(ferry_core::predlog::model_dir("reviews"));
    std::fs::create_dir_all(&folder).unwrap();
    let window = |texts: Vec<String>| {
        let name = format!(
            "predictions-{}.jsonl",
            ferry_core::predlog::window_name(T0 - 10 * MIN, 3600)
        );
        std::fs::write(folder.join(name), lines(texts, true)).unwrap();
    };
    let monitor = ferry_spec::Monitor {
        model: "reviews".into(),
        alias: "production".into(),
        window_ms: 3_600_000,
        schedule_ms: 300_000,
        columns: vec![],
        method: Some("psi".into()),
        min_rows: 50,
        min_labels: 10,
        reference: None,
        thresholds: Default::default(),
        alerts: None,
    };
    let drift = || {
        let inputs = ferry_monitor::checks::Inputs {
            monitor: &monitor,
            version: Some((1, T0 - 60 * MIN)),
            reference: Ok(&reference),
            log_dir: &logs,
            live: &[],
            now_ms: T0,
        };
        ferry_monitor::checks::run(&inputs)
            .into_iter()
            .find(|e| e.check == "drift")
            .unwrap()
    };
    window(reviews(300, &DELIVERY, 2));
    let e = drift();
    assert_eq!(e.status, CheckStatus::Ok, "{}", e.summary);
    let review = &e.detail["columns"][0];
    assert_eq!(
        (&review["column"], &review["kind"], &review["method"]),
        (
            &serde_json::json!("review"),
            &serde_json::json!("text"),
            &serde_json::json!("domain classifier ROC AUC")
        ),
        "{}",
        e.detail
    );
    assert_eq!(e.detail["columns"][1]["method"], "PSI", "{}", e.detail);
    window(reviews(300, &BATTERY, 3));
    let e = drift();
    assert_eq!(e.status, CheckStatus::Failing, "{}", e.summary);
    assert!(
        e.summary
            .starts_with("drift in review: domain classifier ROC AUC ")
            && e.summary.contains(" > 0.5")
            && e.summary.contains("(words now typical: "),
        "{}",
        e.summary
    );
    let words = e.detail["columns"][0]["typical_words_current"]
        .as_array()
        .unwrap();
    assert!(
        words.len() >= 5
            && words[..5]
                .iter()
                .all(|w| BATTERY.contains(&w.as_str().unwrap())),
        "{words:?}"
    );
}
