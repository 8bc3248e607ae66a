//! The conformance suite every backend must pass. Each backend gets a fresh
//! store and runs the same checks.

#![allow(clippy::unwrap_used)]

#[cfg(feature = "postgres")]
use ferry_core as _;
use ferry_metadata::*;

mod auth;
mod budgets;
mod deliveries;
mod monitors;
mod overview;

async fn sqlite() -> (tempfile::TempDir, SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
    let store = SqlStore::open(&url).await.unwrap();
    (dir, store)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn new_run(id: &str, started: i64) -> NewRun {
    NewRun {
        run_id: id.into(),
        pipeline: "iris".into(),
        trigger: "cli".into(),
        started_ms: started,
        git_commit: Some("abc123".into()),
        git_dirty: Some(false),
        env_fingerprint: Some("envfp".into()),
        pid: 999_999,
        host: "h".into(),
        workspace: "default".into(),
        project: "proj".into(),
    }
}

fn version(model: &str, digest: &str, alias: Option<&str>) -> NewModelVersion {
    NewModelVersion {
        model: model.into(),
        run_id: Some("0000aaaa".into()),
        artifact_path: "work/model.onnx".into(),
        artifact_digest: digest.into(),
        artifact_size: 10,
        git_commit: Some("abc".into()),
        git_dirty: Some(true),
        env_fingerprint: Some("env".into()),
        lineage: serde_json::json!({"data": {"data/iris.csv": "d1"}}),
        created_ms: 5,
        alias: alias.map(Into::into),
        source: None,
        stored: None,
    }
}

async fn runs_conformance(s: &dyn MetadataStore) {
    s.begin_run(&new_run("0001aaaa000000000000000000000000", 1))
        .await
        .unwrap();
    s.begin_run(&new_run("0002bbbb000000000000000000000000", 2))
        .await
        .unwrap();
    s.record_stage(
        "0001aaaa000000000000000000000000",
        &StageRecord {
            stage: "train".into(),
            position: 0,
            status: StageStatus::Ran,
            reason: Some("dep train.py changed".into()),
            fingerprint: Some("fp".into()),
            started_ms: Some(1),
            ended_ms: Some(2),
            wall_ms: Some(1),
            user_cpu_ms: Some(1),
            sys_cpu_ms: Some(0),
            max_rss_bytes: Some(1024),
            exit_code: Some(0),
            attempts: 1,
            error: None,
            log: None,
            cost: Some(ferry_cost::StageCost {
                charged: 0.125,
                basis: ferry_cost::Basis::Requested,
                requested: Some(0.125),
                used: 0.0625,
                machine: "gcp-us-central1".into(),
            }),
        },
    )
    .await
    .unwrap();
    s.record_params(
        "0001aaaa000000000000000000000000",
        &[("model.C".into(), serde_json::json!(1.0))],
    )
    .await
    .unwrap();
    s.record_metrics(
        "0001aaaa000000000000000000000000",
        &[MetricRecord {
            key: "accuracy".into(),
            value: 0.95,
            stage: Some("evaluate".into()),
            step: 0,
            ts_ms: 3,
        }],
    )
    .await
    .unwrap();
    s.record_gates(
        "0001aaaa000000000000000000000000",
        &[GateRecord {
            name: "acc".into(),
            expr: "metrics.accuracy >= 0.9".into(),
            passed: true,
            message: "0.95 >= 0.9".into(),
        }],
    )
    .await
    .unwrap();
    s.finish_run(
        "0001aaaa000000000000000000000000",
        RunStatus::Succeeded,
        4,
        None,
    )
    .await
    .unwrap();

    let runs = s
        .list_runs(&RunFilter {
            pipeline: Some("iris".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[0].run_id, "0002bbbb000000000000000000000000",
        "newest first"
    );
    let d = s.get_run("0001").await.unwrap();
    assert_eq!(d.run.status, RunStatus::Succeeded);
    assert_eq!(d.stages[0].reason.as_deref(), Some("dep train.py changed"));
    assert_eq!(d.stages[0].status, StageStatus::Ran);
    // Its cost, every figure as recorded.
    let c = d.stages[0].cost.as_ref().unwrap();
    assert_eq!(
        (c.charged, c.basis, c.requested, c.used, c.machine.as_str()),
        (
            0.125,
            ferry_cost::Basis::Requested,
            Some(0.125),
            0.0625,
            "gcp-us-central1"
        )
    );
    assert_eq!(d.params[0].1, serde_json::json!(1.0));
    assert_eq!(d.metrics[0].value, 0.95);
    assert!(d.gates[0].passed);
    assert!(matches!(s.get_run("0").await, Err(Error::Invalid(_))));
    assert!(matches!(s.get_run("ffff").await, Err(Error::NotFound(_))));
    assert!(matches!(s.get_run("000").await, Err(Error::Invalid(_))));
    // Two runs share the prefix `000`; `0002` is unique.
    assert!(s.get_run("0002").await.is_ok());

    // A run left `running` by a dead process is marked crashed.
    let n = s.reap_dead_runs("h", &|_pid| false).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        s.get_run("0002").await.unwrap().run.status,
        RunStatus::Crashed
    );
    // A run deleted through the MLflow API leaves the list (as MLflow's own
    // lists hide it); asked for by id, it is still there.
    s.set_run_stage("0001aaaa000000000000000000000000", true)
        .await
        .unwrap();
    let listed: Vec<String> = s
        .list_runs(&RunFilter {
            pipeline: None,
            limit: 10,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(listed, ["0002bbbb000000000000000000000000"]);
    assert!(s.get_run("0001").await.is_ok());
    s.set_run_stage("0001aaaa000000000000000000000000", false)
        .await
        .unwrap();
    assert_eq!(
        s.list_runs(&RunFilter {
            pipeline: Some("iris".into()),
            limit: 10,
        })
        .await
        .unwrap()
        .len(),
        2,
        "a restored run is listed again"
    );
}

/// What `ferry cost` reads: stage costs summed by pipeline, stage and day
/// in a time zone; a stage across midnight handed over whole; runs outside
/// the window and stages never priced left out.
async fn stage_costs_conformance(s: &dyn MetadataStore) {
    const H: i64 = 3_600_000;
    // 2026-11-30T00:00:00Z.
    let nov30 = 20_787 * 24 * H;
    let priced = |stage: &str, at: i64, hours: i64, charged: f64, basis| StageRecord {
        started_ms: Some(at),
        ended_ms: Some(at + hours * H),
        cost: Some(ferry_cost::StageCost {
            charged,
            basis,
            requested: (basis == ferry_cost::Basis::Requested).then_some(charged * 2.0),
            used: charged,
            machine: "aws-us-east-1".into(),
        }),
        ..StageRecord::new(stage, StageStatus::Ran, "never ran".into())
    };
    let runs = [
        ("0010aaaa000000000000000000000000", nov30 + 10 * H),
        ("0011aaaa000000000000000000000000", nov30 + 22 * H),
        ("0012aaaa000000000000000000000000", nov30 - 48 * H),
    ];
    for (id, at) in runs {
        s.begin_run(&new_run(id, at)).await.unwrap();
    }
    use ferry_cost::Basis::{Requested, Restored, Used};
    let (a, b, old) = (runs[0].0, runs[1].0, runs[2].0);
    s.record_stage(a, &priced("train", nov30 + 10 * H, 1, 1.0, Requested))
        .await
        .unwrap();
    s.record_stage(a, &priced("prepare", nov30 + 10 * H, 0, 0.0, Restored))
        .await
        .unwrap();
    // 22:00 to 01:00: across midnight.
    s.record_stage(b, &priced("train", nov30 + 22 * H, 3, 3.0, Used))
        .await
        .unwrap();
    s.record_stage(old, &priced("train", nov30 - 48 * H, 1, 100.0, Used))
        .await
        .unwrap();
    // Never priced (recorded before schema 14): not counted.
    let unpriced = StageRecord {
        cost: None,
        ..priced("report", nov30 + 10 * H, 1, 0.0, Used)
    };
    s.record_stage(a, &unpriced).await.unwrap();

    let by = |sums: &[ferry_cost::ledger::DaySum], by| {
        ferry_cost::ledger::totals(by, sums)
            .into_iter()
            .map(|t| (t.key, t.cost_usd, t.stage_runs))
            .collect::<Vec<_>>()
    };
    use ferry_cost::ledger::By::{Day, Month, Stage};
    let window = (nov30, nov30 + 48 * H);
    let sums = s.stage_costs(window.0, window.1, 0).await.unwrap();
    // Only train cost something; the restored prepare and the unpriced
    // report are not in the ledger, the old run is outside the window.
    assert_eq!(by(&sums, Stage), [("iris/train".into(), 4.0, 2)]);
    // By month, in UTC: 1 + 2/3 of 3 in November, 1/3 of 3 in December.
    assert_eq!(
        by(&sums, Month),
        [("2026-11".into(), 3.0, 2), ("2026-12".into(), 1.0, 0)]
    );
    let requested: f64 = sums.iter().map(|d| d.requested).sum();
    assert_eq!(requested, 2.0);
    // Read at UTC+3, the late run is all on the 1st of December (01:00 to
    // 04:00), and the morning one on the 30th.
    let sums = s.stage_costs(window.0, window.1, 180).await.unwrap();
    assert_eq!(
        by(&sums, Day),
        [("2026-11-30".into(), 1.0, 1), ("2026-12-01".into(), 3.0, 1)]
    );
    // Recorded again, a stage's cost replaces what it was: never twice.
    s.record_stage(b, &priced("train", nov30 + 22 * H, 3, 6.0, Used))
        .await
        .unwrap();
    let sums = s.stage_costs(window.0, window.1, 0).await.unwrap();
    assert_eq!(
        by(&sums, Month),
        [("2026-11".into(), 5.0, 2), ("2026-12".into(), 2.0, 0)]
    );
    // And without a cost, it leaves the ledger.
    let gone = StageRecord {
        cost: None,
        ..priced("train", nov30 + 22 * H, 3, 0.0, Used)
    };
    s.record_stage(b, &gone).await.unwrap();
    let sums = s.stage_costs(window.0, window.1, 0).await.unwrap();
    assert_eq!(by(&sums, Month), [("2026-11".into(), 1.0, 1)]);
}

/// What a run records, written in as few statements as each takes: the
/// same rows as writing them one at a time.
async fn batched_writes_conformance(s: &dyn MetadataStore) {
    let id = "0003cccc000000000000000000000000";
    s.begin_run(&new_run(id, 1)).await.unwrap();
    // A stage recorded again replaces its row.
    let mut st = StageRecord {
        stage: "train".into(),
        position: 1,
        status: StageStatus::Ran,
        reason: None,
        fingerprint: None,
        started_ms: Some(1),
        ended_ms: None,
        wall_ms: None,
        user_cpu_ms: None,
        sys_cpu_ms: None,
        max_rss_bytes: None,
        exit_code: None,
        attempts: 1,
        error: None,
        log: None,
        cost: None,
    };
    s.record_stage(id, &st).await.unwrap();
    st.status = StageStatus::Failed;
    st.reason = Some("the command exited with 1".into());
    st.ended_ms = Some(5);
    st.exit_code = Some(1);
    st.attempts = 2;
    s.record_stage(id, &st).await.unwrap();
    s.record_stage(
        id,
        &StageRecord {
            stage: "prepare".into(),
            position: 0,
            status: StageStatus::UpToDate,
            attempts: 0,
            started_ms: None,
            ..st.clone()
        },
    )
    .await
    .unwrap();
    // More params than one statement takes: several, all or none.
    let params: Vec<(String, serde_json::Value)> = (0..1200)
        .map(|i| (format!("p{i:04}"), serde_json::json!(i)))
        .collect();
    s.record_params(id, &params).await.unwrap();
    let mut dup = params[..600].to_vec();
    dup.push(("p0001".into(), serde_json::json!("again")));
    assert!(
        s.record_params(id, &dup).await.is_err(),
        "params are set once"
    );
    s.record_params(id, &[("text".into(), serde_json::json!("a b"))])
        .await
        .unwrap();
    s.record_params(id, &[]).await.unwrap();
    let gates: Vec<GateRecord> = ["a", "b", "c"]
        .iter()
        .map(|n| GateRecord {
            name: (*n).into(),
            expr: format!("metrics.{n} > 0"),
            passed: *n != "b",
            message: format!("{n}: checked"),
        })
        .collect();
    s.record_gates(id, &gates).await.unwrap();
    let d = s.get_run(id).await.unwrap();
    let stages: Vec<(&str, StageStatus, i64)> = d
        .stages
        .iter()
        .map(|x| (x.stage.as_str(), x.status, x.attempts))
        .collect();
    assert_eq!(
        stages,
        [
            ("prepare", StageStatus::UpToDate, 0),
            ("train", StageStatus::Failed, 2)
        ]
    );
    assert_eq!(d.stages[1].exit_code, Some(1));
    assert_eq!(
        d.stages[1].reason.as_deref(),
        Some("the command exited with 1")
    );
    assert_eq!(d.params.len(), 1201);
    assert_eq!(d.params[1], ("p0001".into(), serde_json::json!(1)));
    assert_eq!(d.params[1200], ("text".into(), serde_json::json!("a b")));
    let got: Vec<(String, bool, String)> = d
        .gates
        .iter()
        .map(|g| (g.name.clone(), g.passed, g.message.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("a".into(), true, "a: checked".into()),
            ("b".into(), false, "b: checked".into()),
            ("c".into(), true, "c: checked".into()),
        ]
    );
    // Tags given twice keep their last value, as one by one; the name
    // given to `attach_run` wins over a `mlflow.runName` tag.
    let e = s.ensure_experiment("batched", 2).await.unwrap();
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    s.attach_run(
        id,
        e,
        "batched-0003",
        &[tag("k", "1"), tag("mlflow.runName", "other"), tag("k", "2")],
    )
    .await
    .unwrap();
    s.log_batch(
        id,
        &[],
        &[],
        &[
            tag("j", "1"),
            tag("mlflow.runName", "renamed"),
            tag("j", "2"),
            tag("mlflow.runName", "renamed again"),
        ],
    )
    .await
    .unwrap();
    let r = s.get_tracked_run(id).await.unwrap().unwrap();
    let value = |k: &str| {
        r.tags
            .iter()
            .filter(|(t, _)| t == k)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(value("k"), ["2"]);
    assert_eq!(value("j"), ["2"]);
    assert_eq!(value("mlflow.runName"), ["renamed again"]);
    assert_eq!(r.info.run_name, "renamed again");
    assert!(matches!(
        s.attach_run(
            id,
            ferry_core::ExperimentId::new(e.get() + 1000)
                .unwrap_or(ferry_core::ExperimentId::DEFAULT),
            "x",
            &[]
        )
        .await,
        Err(Error::NotFound(_))
    ));
}

async fn registry_conformance(s: &dyn MetadataStore) {
    assert!(s.latest_version("iris").await.unwrap().is_none());
    let v1 = s
        .create_model_version(&version("iris", "d1", Some("candidate")))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.aliases, vec!["candidate".to_string()]);
    let v2 = s
        .create_model_version(&version("iris", "d2", Some("candidate")))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        s.resolve_alias("iris", "candidate")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert!(
        s.resolve_alias("iris", "production")
            .await
            .unwrap()
            .is_none()
    );
    let ev = s
        .set_alias("iris", "production", 1, Some("manual"), 10)
        .await
        .unwrap();
    assert_eq!(ev.previous, None);
    let ev = s
        .set_alias("iris", "production", 2, None, 11)
        .await
        .unwrap();
    assert_eq!(ev.previous, Some(1));
    assert!(matches!(
        s.set_alias("iris", "production", 9, None, 12).await,
        Err(Error::NotFound(_))
    ));
    let events = s.alias_events("iris").await.unwrap();
    assert_eq!(events.len(), 4, "two registrations and two moves");
    let models = s.list_models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].latest_version, Some(2));
    assert_eq!(models[0].versions, 2);
    let v = s.get_version("iris", 2).await.unwrap().unwrap();
    assert_eq!(v.lineage["data"]["data/iris.csv"], "d1");
    assert_eq!(v.git_dirty, Some(true));
    let mut aliases = v.aliases.clone();
    aliases.sort();
    assert_eq!(aliases, vec!["candidate", "production"]);
    assert_eq!(s.list_versions("iris").await.unwrap().len(), 2);
    stored_files_conformance(s).await;
}

/// What the registry keeps for a version is fixed at registration and
/// found again by any path at, above or below it (and only by those: LIKE's
/// wildcards in a path match themselves).
async fn stored_files_conformance(s: &dyn MetadataStore) {
    let stored = |loc: &str| {
        Some(ferry_metadata::StoredFiles {
            location: loc.into(),
            digest: "ab".repeat(32),
        })
    };
    let v = s
        .create_model_version(&NewModelVersion {
            stored: stored("mlflow-artifacts:/1/r_1/artifacts/m"),
            ..version("kept", "k1", None)
        })
        .await
        .unwrap();
    assert_eq!(v.stored, stored("mlflow-artifacts:/1/r_1/artifacts/m"));
    let again = s.get_version("kept", v.version).await.unwrap().unwrap();
    assert_eq!(again.stored, v.stored);
    s.create_registered_model("viaapi", "", &[], 1)
        .await
        .unwrap();
    let w = s
        .create_mlflow_version(
            "viaapi",
            "models:/m-1",
            None,
            "",
            &[],
            "",
            stored("mlflow-artifacts:/1/models/m-1/artifacts").as_ref(),
            1,
        )
        .await
        .unwrap();
    assert_eq!(w.stored, stored("mlflow-artifacts:/1/models/m-1/artifacts"));
    let at = |p: &'static str| async move { s.versions_storing(p).await.unwrap() };
    let kept = vec![("kept".to_owned(), v.version)];
    assert_eq!(at("mlflow-artifacts:/1/r_1/artifacts/m").await, kept);
    assert_eq!(at("mlflow-artifacts:/1/r_1/artifacts/m/").await, kept);
    assert_eq!(
        at("mlflow-artifacts:/1/r_1/artifacts/m/model.onnx").await,
        kept
    );
    assert_eq!(at("mlflow-artifacts:/1/r_1").await, kept, "a folder above");
    assert_eq!(at("mlflow-artifacts:/1").await.len(), 2, "both are below");
    assert!(at("mlflow-artifacts:/1/r_1/artifacts/mx").await.is_empty());
    assert!(
        at("mlflow-artifacts:/1/rX1").await.is_empty(),
        "`_` is no wildcard"
    );
    assert!(
        at("mlflow-artifacts:/1/r%").await.is_empty(),
        "`%` is no wildcard"
    );
    assert!(at("mlflow-artifacts:/2").await.is_empty());
    assert_eq!(
        at("mlflow-artifacts:/1/models/m-1/artifacts/MLmodel").await,
        vec![("viaapi".to_owned(), w.version)]
    );
}

/// An experiment with five logged runs (params, metrics, tags), checked.
async fn tracking_runs(s: &dyn MetadataStore) -> ferry_core::ExperimentId {
    let e = s
        .create_experiment("exp", None, &[("team".into(), "ml".into())], 10)
        .await
        .unwrap();
    assert_eq!(e.get(), 1);
    assert!(matches!(
        s.create_experiment("exp", None, &[], 11).await,
        Err(Error::AlreadyExists(_))
    ));
    let exp = s.get_experiment_by_name("exp").await.unwrap().unwrap();
    assert_eq!(exp.artifact_location, "mlflow-artifacts:/1");
    assert_eq!(exp.tags, vec![("team".to_string(), "ml".to_string())]);
    assert_eq!(
        s.get_experiment(ferry_core::ExperimentId::DEFAULT)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Default"
    );
    // Runs with params, metrics (history and latest), tags.
    for i in 0..5 {
        let id = format!("{i:032x}");
        let info = s
            .create_tracked_run(&id, e, &format!("run-{i}"), "me", 100 + i, &[])
            .await
            .unwrap()
            .info;
        assert_eq!(
            info.artifact_uri,
            format!("mlflow-artifacts:/1/{id}/artifacts")
        );
        let metrics = vec![
            Metric {
                key: "acc".into(),
                value: 0.5 + i as f64 / 10.0,
                timestamp: 1,
                step: 1,
            },
            Metric {
                key: "acc".into(),
                value: 0.1,
                timestamp: 2,
                step: 0,
            },
        ];
        let lr = if i % 2 == 0 { "0.01" } else { "0.1" };
        s.log_batch(
            &id,
            &metrics,
            &[("lr".into(), lr.into())],
            &[("kind".into(), format!("k{i}"))],
        )
        .await
        .unwrap();
    }
    let r = s
        .get_tracked_run(&format!("{:032x}", 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.metrics,
        vec![Metric {
            key: "acc".into(),
            value: 0.7,
            timestamp: 1,
            step: 1
        }],
        "latest = highest step"
    );
    assert_eq!(r.params, vec![("lr".to_string(), "0.01".to_string())]);
    assert!(
        r.tags
            .contains(&("mlflow.runName".to_string(), "run-2".to_string()))
    );
    let h = s
        .metric_history(&format!("{:032x}", 2), "acc")
        .await
        .unwrap();
    assert_eq!(
        h.iter().map(|m| m.timestamp).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // Params are immutable; a failed batch stores nothing.
    let id0 = format!("{:032x}", 0);
    let bad = s
        .log_batch(
            &id0,
            &[Metric {
                key: "new".into(),
                value: 1.0,
                timestamp: 5,
                step: 5,
            }],
            &[("lr".into(), "9".into())],
            &[],
        )
        .await;
    assert!(matches!(bad, Err(Error::Invalid(_))));
    assert!(
        s.metric_history(&id0, "new").await.unwrap().is_empty(),
        "all or nothing"
    );
    s.log_batch(&id0, &[], &[("lr".into(), "0.01".into())], &[])
        .await
        .unwrap();
    e
}

/// The tracking benchmark's search: its filter and order.
fn benchmark_query(e: ferry_core::ExperimentId) -> RunQuery {
    use ferry_search::{Grammar, parse_filter, parse_order_by};
    RunQuery {
        experiment_ids: vec![e],
        filter: parse_filter("metrics.acc > 0.55 and params.lr = '0.01'", Grammar::Runs).unwrap(),
        order_by: parse_order_by(&["metrics.acc DESC".into()], Grammar::Runs).unwrap(),
        view: ViewType::ActiveOnly,
        max_results: 10,
        offset: 0,
    }
}

/// How many runs of `e` the benchmark's search finds with `filter` instead.
async fn like(s: &dyn MetadataStore, e: ferry_core::ExperimentId, filter: &str) -> usize {
    use ferry_search::{Grammar, parse_filter};
    let q = RunQuery {
        filter: parse_filter(filter, Grammar::Runs).unwrap(),
        ..benchmark_query(e)
    };
    s.search_tracked_runs(&q).await.unwrap().0.len()
}

/// Search: the benchmark's filter and order, MLflow's grammar.
async fn tracking_search(s: &dyn MetadataStore, e: ferry_core::ExperimentId) {
    // Search: the benchmark's filter and order.
    let q = benchmark_query(e);
    let (runs, more) = s.search_tracked_runs(&q).await.unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r.info.run_name.as_str()).collect();
    assert_eq!(names, vec!["run-4", "run-2"]);
    assert!(!more);
    // Default order: start time descending; paging.
    let mut q2 = RunQuery {
        filter: vec![],
        order_by: vec![],
        max_results: 2,
        ..q.clone()
    };
    let (page1, more) = s.search_tracked_runs(&q2).await.unwrap();
    assert_eq!(
        page1.iter().map(|r| r.info.start_time).collect::<Vec<_>>(),
        vec![104, 103]
    );
    assert!(more);
    q2.offset = 4;
    let (last, more) = s.search_tracked_runs(&q2).await.unwrap();
    assert_eq!(last.len(), 1);
    assert!(!more);
    // LIKE is case-sensitive, ILIKE is not; tags and attributes filter.
    assert_eq!(like(s, e, "attributes.run_name LIKE 'RUN-%'").await, 0);
    assert_eq!(like(s, e, "attributes.run_name ILIKE 'RUN-%'").await, 5);
    assert_eq!(like(s, e, "tags.kind = 'k4'").await, 1);
    assert_eq!(
        like(
            s,
            e,
            "attributes.status = 'RUNNING' and attributes.start_time >= 103"
        )
        .await,
        2
    );
    // MLflow's bare attribute names select the same runs.
    assert_eq!(
        like(s, e, "status = 'RUNNING' and start_time >= 103").await,
        2
    );
    assert_eq!(like(s, e, "run_name = 'run-3'").await, 1);
    assert_eq!(like(s, e, "created < 102 and user_id = 'me'").await, 2);
    assert_eq!(like(s, e, "status = 'FAILED'").await, 0);
}

/// Status and deletion.
async fn tracking_run_lifecycle(s: &dyn MetadataStore, e: ferry_core::ExperimentId) {
    let id0 = format!("{:032x}", 0);
    let q = benchmark_query(e);
    // Status and deletion.
    s.update_tracked_run(&id0, Some("FINISHED"), Some(500), None)
        .await
        .unwrap();
    assert_eq!(
        s.get_tracked_run(&id0).await.unwrap().unwrap().info.status,
        "FINISHED"
    );
    s.set_run_stage(&id0, true).await.unwrap();
    let all = RunQuery {
        filter: vec![],
        order_by: vec![],
        max_results: 100,
        ..q.clone()
    };
    assert_eq!(s.search_tracked_runs(&all).await.unwrap().0.len(), 4);
    let deleted = RunQuery {
        view: ViewType::DeletedOnly,
        ..all.clone()
    };
    assert_eq!(s.search_tracked_runs(&deleted).await.unwrap().0.len(), 1);
    // A deleted run cannot change, as in MLflow's `_check_run_is_active`.
    let not_active = |r: Result<()>| match r {
        Err(Error::Invalid(m)) => assert_eq!(
            m,
            format!("The run {id0} must be in the 'active' state. Current state is deleted.")
        ),
        other => panic!("a deleted run was changed: {other:?}"),
    };
    not_active(
        s.update_tracked_run(&id0, Some("FAILED"), Some(600), Some("renamed"))
            .await
            .map(|_| ()),
    );
    not_active(
        s.log_batch(
            &id0,
            &[Metric {
                key: "late".into(),
                value: 1.0,
                timestamp: 7,
                step: 0,
            }],
            &[],
            &[],
        )
        .await,
    );
    not_active(
        s.log_batch(&id0, &[], &[("late".into(), "1".into())], &[])
            .await,
    );
    not_active(
        s.log_batch(&id0, &[], &[], &[("late".into(), "1".into())])
            .await,
    );
    not_active(s.delete_run_tag(&id0, "kind").await);
    not_active(s.log_run_outputs(&id0, &[("m-x".into(), 0)]).await);
    let r0 = s.get_tracked_run(&id0).await.unwrap().unwrap();
    assert_eq!(
        (
            r0.info.status.as_str(),
            r0.info.end_time,
            r0.info.run_name.as_str()
        ),
        ("FINISHED", Some(500), "run-0"),
        "nothing changed"
    );
    assert!(r0.outputs.is_empty() && !r0.tags.iter().any(|(k, _)| k == "late"));
    assert!(s.metric_history(&id0, "late").await.unwrap().is_empty());
}

/// Datasets.
async fn tracking_datasets(s: &dyn MetadataStore, e: ferry_core::ExperimentId) {
    // Datasets.
    let id1 = format!("{:032x}", 1);
    let ds = DatasetInput {
        dataset: Dataset {
            name: "iris".into(),
            digest: "d1".into(),
            source_type: "local".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        },
        tags: vec![("mlflow.data.context".into(), "training".into())],
    };
    s.log_inputs(&id1, &[ds]).await.unwrap();
    assert_eq!(
        s.get_tracked_run(&id1).await.unwrap().unwrap().inputs[0]
            .dataset
            .digest,
        "d1"
    );
    assert_eq!(
        like(
            s,
            e,
            "datasets.context = 'training' and datasets.digest IN ('d1', 'x')"
        )
        .await,
        1
    );
}

/// Experiment lifecycle, ordering across pages, pipeline runs in the tracking view, float bits.
async fn tracking_experiments(s: &dyn MetadataStore, e: ferry_core::ExperimentId) {
    use ferry_search::{Grammar, parse_filter, parse_order_by};
    // Experiment lifecycle.
    s.set_experiment_stage(e, true, 20).await.unwrap();
    assert!(matches!(
        s.create_tracked_run("f".repeat(32).as_str(), e, "x", "", 1, &[])
            .await,
        Err(Error::Invalid(_))
    ));
    s.set_experiment_stage(e, false, 21).await.unwrap();
    assert!(matches!(
        s.rename_experiment(e, "Default", 22).await,
        Err(Error::AlreadyExists(_))
    ));
    s.rename_experiment(e, "renamed", 22).await.unwrap();
    let found = s
        .search_experiments(
            ViewType::ActiveOnly,
            &parse_filter("name LIKE 'ren%'", Grammar::Experiments).unwrap(),
            &[],
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    // The requested order holds across pages; MLflow's default is the
    // newest first.
    for (name, t) in [
        ("order-b", 40),
        ("order-d", 41),
        ("order-a", 42),
        ("order-c", 43),
    ] {
        s.create_experiment(name, None, &[], t).await.unwrap();
    }
    let page = |order: &'static [&'static str], offset: i64| {
        let order: Vec<String> = order.iter().map(|o| o.to_string()).collect();
        async move {
            s.search_experiments(
                ViewType::ActiveOnly,
                &parse_filter("name LIKE 'order-%'", Grammar::Experiments).unwrap(),
                &parse_order_by(&order, Grammar::Experiments).unwrap(),
                3,
                offset,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        page(&["name ASC"], 0).await,
        ["order-a", "order-b", "order-c"]
    );
    assert_eq!(page(&["name ASC"], 3).await, ["order-d"]);
    assert_eq!(
        page(&["name DESC"], 0).await,
        ["order-d", "order-c", "order-b"]
    );
    assert_eq!(page(&["name DESC"], 3).await, ["order-a"]);
    assert_eq!(
        page(&["creation_time ASC"], 0).await,
        ["order-b", "order-d", "order-a"]
    );
    assert_eq!(
        page(&["experiment_id DESC"], 0).await,
        ["order-c", "order-a", "order-d"]
    );
    assert_eq!(page(&[], 0).await, ["order-c", "order-a", "order-d"]);
    assert_eq!(page(&[], 3).await, ["order-b"]);
    // A pipeline run joins the tracking view.
    s.begin_run(&new_run("0009aaaa000000000000000000000000", 7))
        .await
        .unwrap();
    let pe = s.ensure_experiment("iris", 30).await.unwrap();
    assert_eq!(s.ensure_experiment("iris", 31).await.unwrap(), pe);
    s.attach_run(
        "0009aaaa000000000000000000000000",
        pe,
        "iris-0009aaaa",
        &[("ferry.pipeline".into(), "iris".into())],
    )
    .await
    .unwrap();
    let pr = s
        .get_tracked_run("0009aaaa000000000000000000000000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pr.info.experiment_id, pe);
    assert_eq!(pr.info.status, "RUNNING");
    // Floats come back with the bits they were logged with, in one batch.
    {
        let id = "a".repeat(32);
        s.create_tracked_run(&id, e, "awkward", "me", 1, &[])
            .await
            .unwrap();
        let want = awkward_values();
        let batch: Vec<Metric> = want
            .iter()
            .enumerate()
            .map(|(i, v)| Metric {
                key: "awk".into(),
                value: *v,
                timestamp: 1,
                step: i as i64,
            })
            .collect();
        s.log_batch(&id, &batch, &[], &[]).await.unwrap();
        assert_same_values(&s.metric_history(&id, "awk").await.unwrap(), &want);
        let latest = s.get_tracked_run(&id).await.unwrap().unwrap().metrics;
        assert_eq!(
            latest[0].step,
            want.len() as i64 - 1,
            "latest = highest step"
        );
        assert_eq!(
            latest[0].value.to_bits(),
            want.last().unwrap().to_bits(),
            "the latest value is exact"
        );
    }
}

async fn tracking_conformance(s: &dyn MetadataStore) {
    let e = tracking_runs(s).await;
    tracking_search(s, e).await;
    tracking_run_lifecycle(s, e).await;
    tracking_datasets(s, e).await;
    tracking_experiments(s, e).await;
}

/// Concurrent `log_batch` calls through the group-commit writer: each keeps
/// its own all-or-nothing result.
async fn group_commit_conformance(s: std::sync::Arc<SqlStore>) {
    let e = s.create_experiment("g", None, &[], 1).await.unwrap();
    let ids: Vec<String> = (0..4).map(|i| format!("{:032x}", 100 + i)).collect();
    for id in &ids {
        s.create_tracked_run(id, e, "r", "", 1, &[]).await.unwrap();
    }
    s.log_batch(&ids[0], &[], &[("p".into(), "1".into())], &[])
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        let id = ids[i % 4].clone();
        handles.push(tokio::spawn(async move {
            let m = Metric {
                key: "m".into(),
                value: i as f64,
                timestamp: i as i64,
                step: i as i64,
            };
            // Every tenth call logs p = "changed": on run 0 (where p = 1) that
            // must fail alone; on run 2 it sets p, then repeats it harmlessly.
            let params = if i % 10 == 0 {
                vec![("p".to_string(), "changed".to_string())]
            } else {
                vec![]
            };
            s.log_batch(&id, &[m], &params, &[]).await
        }));
    }
    let mut failed = 0;
    for h in handles {
        if h.await.unwrap().is_err() {
            failed += 1;
        }
    }
    assert_eq!(
        failed, 2,
        "the two calls that change run 0's param fail, the rest commit"
    );
    let total: usize = {
        let mut n = 0;
        for id in &ids {
            n += s.metric_history(id, "m").await.unwrap().len();
        }
        n
    };
    assert_eq!(total, 38);
    let r2 = s.get_tracked_run(&ids[2]).await.unwrap().unwrap();
    assert_eq!(r2.params, vec![("p".to_string(), "changed".to_string())]);
    let r = s.get_tracked_run(&ids[1]).await.unwrap().unwrap();
    assert_eq!(
        r.metrics[0].value, 37.0,
        "latest = highest step across the group"
    );
    assert!(matches!(
        s.log_batch("f".repeat(32).as_str(), &[], &[], &[]).await,
        Err(Error::NotFound(_))
    ));
    group_commit_awkward_values(s.clone(), ids.clone()).await;
    group_commit_creates_while_logging(s.clone(), e, ids.clone()).await;
    group_commit_errors(s).await;
}

/// Special and awkward values through the group path, concurrently.
async fn group_commit_awkward_values(s: std::sync::Arc<SqlStore>, ids: Vec<String>) {
    // Special and awkward values through the group path, concurrently.
    let awkward = awkward_values();
    let mut handles = Vec::new();
    for (i, v) in awkward.iter().enumerate() {
        let s = s.clone();
        let id = ids[3].clone();
        let v = *v;
        handles.push(tokio::spawn(async move {
            let m = Metric {
                key: "awk".into(),
                value: v,
                timestamp: 1,
                step: i as i64,
            };
            s.log_batch(&id, &[m], &[], &[]).await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let got = s.metric_history(&ids[3], "awk").await.unwrap();
    assert_same_values(&got, &awkward);
}

/// Runs created while others log, then logged to at once.
async fn group_commit_creates_while_logging(
    s: std::sync::Arc<SqlStore>,
    e: ferry_core::ExperimentId,
    ids: Vec<String>,
) {
    // Runs created while others log (on a SQLite file both go through the
    // writer thread, in the same groups), then logged to at once.
    let mut handles = Vec::new();
    for i in 0..16 {
        let s1 = s.clone();
        handles.push(tokio::spawn(async move {
            let s = s1;
            let id = format!("{:032x}", 200 + i);
            let tags = vec![("team".to_string(), format!("t{i}"))];
            let created = s
                .create_tracked_run(&id, e, &format!("c{i}"), "me", 5, &tags)
                .await?;
            let m = Metric {
                key: "m".into(),
                value: i as f64,
                timestamp: 1,
                step: 0,
            };
            s.log_batch(&id, &[m], &[], &[]).await?;
            Ok::<_, Error>(Some(created))
        }));
        let s2 = s.clone();
        let id = ids[i % 4].clone();
        handles.push(tokio::spawn(async move {
            let s = s2;
            let m = Metric {
                key: "during".into(),
                value: i as f64,
                timestamp: 1,
                step: i as i64,
            };
            s.log_batch(&id, &[m], &[], &[]).await?;
            Ok(None)
        }));
    }
    for h in handles {
        let Some(created) = h.await.unwrap().unwrap() else {
            continue;
        };
        let info = &created.info;
        assert_eq!(info.status, "RUNNING");
        assert!(
            info.artifact_uri
                .ends_with(&format!("/{}/artifacts", info.run_id))
        );
        let name = info.run_name.clone();
        let team = format!("t{}", &name[1..]);
        assert_eq!(
            created.tags,
            vec![
                ("mlflow.runName".to_string(), name),
                ("team".to_string(), team)
            ]
        );
        let mut got = s.get_tracked_run(&info.run_id).await.unwrap().unwrap();
        assert_eq!(got.info, *info, "the stored run is the one answered");
        got.tags.sort();
        assert_eq!(got.tags, created.tags);
        assert_eq!(got.metrics.len(), 1);
    }
}

/// MLflow's errors through the group path: nothing written.
async fn group_commit_errors(s: std::sync::Arc<SqlStore>) {
    // MLflow's errors: no such experiment, a deleted one; nothing written.
    let missing = s
        .create_tracked_run(
            &format!("{:032x}", 300),
            ferry_core::ExperimentId::new(987_654).unwrap(),
            "x",
            "",
            1,
            &[],
        )
        .await;
    assert!(
        matches!(&missing, Err(Error::NotFound(m)) if m == "Could not find experiment with ID 987654"),
        "{missing:?}"
    );
    let gone = s.create_experiment("gone", None, &[], 1).await.unwrap();
    s.set_experiment_stage(gone, true, 2).await.unwrap();
    let deleted = s
        .create_tracked_run(&format!("{:032x}", 301), gone, "x", "", 1, &[])
        .await;
    assert!(
        matches!(&deleted, Err(Error::Invalid(m)) if m.contains("must be in the 'active' state. Current state is deleted.")),
        "{deleted:?}"
    );
    for n in [300, 301] {
        assert!(
            s.get_tracked_run(&format!("{n:032x}"))
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        s.group_fallbacks(),
        0,
        "every group committed as one transaction"
    );
}

/// Values a float round trip through text could get wrong, and the special
/// ones stored by flag.
fn awkward_values() -> Vec<f64> {
    let mut v = vec![
        0.1,
        -0.0,
        1.0 / 3.0,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        123_456_789.123_456_79,
        9007199254740993.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    // A fixed pseudo-random spread over the whole range of exponents.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = f64::from_bits(x);
        if f.is_finite() {
            v.push(f);
        }
    }
    v
}

/// History points (step i holds value i) carry exactly the logged bits.
fn assert_same_values(got: &[Metric], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    let mut by_step: Vec<&Metric> = got.iter().collect();
    by_step.sort_by_key(|m| m.step);
    for (m, w) in by_step.iter().zip(want) {
        if w.is_nan() {
            assert!(m.value.is_nan(), "step {}: {} is not NaN", m.step, m.value);
        } else if *w == 0.0 {
            assert_eq!(m.value, 0.0, "step {}", m.step);
        } else {
            assert_eq!(
                m.value.to_bits(),
                w.to_bits(),
                "step {}: {} != {}",
                m.step,
                m.value,
                w
            );
        }
    }
}

async fn deployments_conformance(s: &dyn MetadataStore) {
    s.create_model_version(&version("iris", "d1", Some("production")))
        .await
        .unwrap();
    s.create_model_version(&version("iris", "d2", None))
        .await
        .unwrap();
    let new = |candidate| NewDeployment {
        model: "iris".into(),
        candidate,
        stable: Some(1),
        strategy: "canary".into(),
        spec: serde_json::json!({"steps": [10, 50, 100]}),
        phase: "progressing".into(),
        weight: 10,
        created_ms: 100,
        reason: Some("by test".into()),
    };
    // A version that does not exist cannot be deployed.
    assert!(matches!(
        s.create_deployment(&new(9)).await,
        Err(Error::NotFound(_))
    ));
    let d = s.create_deployment(&new(2)).await.unwrap();
    assert_eq!(
        (d.candidate, d.stable, d.weight, d.step),
        (2, Some(1), 10, 0)
    );
    assert!(d.active);
    assert_eq!(d.spec["steps"][1], 50);
    // One active deployment per model.
    assert!(matches!(
        s.create_deployment(&new(2)).await,
        Err(Error::AlreadyExists(_))
    ));
    let step = |rev_step: i64, weight, kind: &str| DeploymentChange {
        phase: "progressing".into(),
        active: true,
        step: rev_step,
        weight,
        step_started_ms: 200,
        reason: None,
        kind: kind.into(),
        detail: serde_json::json!({"requests": 12}),
        now_ms: 200,
        move_alias: None,
        reject: false,
    };
    let d2 = s
        .change_deployment(&d.id, d.revision, &step(1, 50, "advanced"))
        .await
        .unwrap();
    assert_eq!((d2.step, d2.weight, d2.revision), (1, 50, d.revision + 1));
    // A stale revision loses.
    assert!(matches!(
        s.change_deployment(&d.id, d.revision, &step(2, 100, "advanced"))
            .await,
        Err(Error::Conflict(_))
    ));
    // Promotion moves the alias in the same transaction.
    let done = DeploymentChange {
        phase: "promoted".into(),
        active: false,
        reason: Some("all steps passed".into()),
        move_alias: Some("production".into()),
        ..step(2, 100, "promoted")
    };
    let d3 = s
        .change_deployment(&d.id, d2.revision, &done)
        .await
        .unwrap();
    assert!(!d3.active);
    assert_eq!(d3.phase, "promoted");
    assert_eq!(
        s.resolve_alias("iris", "production")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    let ev = s.alias_events("iris").await.unwrap();
    assert_eq!(
        ev.last().unwrap().reason.as_deref(),
        Some("all steps passed")
    );
    // A finished deployment takes no more changes.
    assert!(matches!(
        s.change_deployment(&d.id, d3.revision, &done).await,
        Err(Error::Conflict(_))
    ));
    let events = s.deployment_events(&d.id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["started", "advanced", "promoted"]);
    assert_eq!(events[1].detail["requests"], 12);
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);

    // A rollback tags the candidate as rejected; then a new deployment may start.
    s.create_model_version(&version("iris", "d3", None))
        .await
        .unwrap();
    let r = s.create_deployment(&new(3)).await.unwrap();
    assert_eq!(
        s.list_deployments(Some("iris"), true).await.unwrap().len(),
        1
    );
    let back = DeploymentChange {
        phase: "rolled_back".into(),
        active: false,
        reason: Some("error rate 0.2 > 0.01".into()),
        reject: true,
        ..step(0, 0, "rolled_back")
    };
    s.change_deployment(&r.id, r.revision, &back).await.unwrap();
    let v3 = s.get_version("iris", 3).await.unwrap().unwrap();
    assert!(
        v3.tags
            .iter()
            .any(|(k, v)| k == "ferry.rejected" && v == "error rate 0.2 > 0.01")
    );
    assert_eq!(
        s.resolve_alias("iris", "production")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert!(
        s.list_deployments(Some("iris"), true)
            .await
            .unwrap()
            .is_empty()
    );
    let all = s.list_deployments(None, false).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(s.get_deployment("nope").await.unwrap().is_none());
}

/// A pipeline run recorded through the MLflow API (`ferry run --server`
/// to a server on this store) reads back from the store as the pipeline
/// run it is: its status, trigger and stages, not an MLflow run's.
async fn api_pipeline_runs_conformance(s: &dyn MetadataStore) {
    let exp = s.ensure_experiment("iris", 1).await.unwrap();
    let parent = "aaaa0000000000000000000000000001";
    let tags = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    s.create_tracked_run(
        parent,
        exp,
        "iris",
        "",
        1_000,
        &tags(&[("ferry.pipeline", "iris"), ("ferry.trigger", "ci")]),
    )
    .await
    .unwrap();
    let child = "aaaa0000000000000000000000000002";
    s.create_tracked_run(
        child,
        exp,
        "train",
        "",
        1_100,
        &tags(&[
            ("mlflow.parentRunId", parent),
            ("ferry.stage", "train"),
            ("ferry.stage.status", "ran"),
            ("ferry.stage.position", "0"),
            ("ferry.stage.exit_code", "0"),
        ]),
    )
    .await
    .unwrap();
    let wall = Metric {
        key: "ferry.wall_seconds".into(),
        value: 1.5,
        timestamp: 1_100,
        step: 0,
    };
    s.log_batch(child, &[wall], &[], &[]).await.unwrap();
    s.update_tracked_run(child, Some("FINISHED"), Some(2_600), None)
        .await
        .unwrap();
    s.log_batch(
        parent,
        &[],
        &[("seed".into(), "1".into())],
        &tags(&[
            ("ferry.status", "gate_failed"),
            ("ferry.message", "too low"),
            ("ferry.gate.1", "failed: metrics.a >= 0.9: 0.5 >= 0.9"),
        ]),
    )
    .await
    .unwrap();
    s.update_tracked_run(parent, Some("FAILED"), Some(3_000), None)
        .await
        .unwrap();
    // A notebook's run is listed as it is.
    s.create_tracked_run("bbbb0000000000000000000000000003", exp, "nb", "", 500, &[])
        .await
        .unwrap();

    let runs = s.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 2, "stage runs are not listed");
    let r = runs.iter().find(|r| r.run_id == parent).unwrap();
    assert_eq!(
        (r.pipeline.as_str(), r.status, r.trigger.as_str()),
        ("iris", RunStatus::GateFailed, "ci")
    );
    assert_eq!(r.message.as_deref(), Some("too low"));
    let nb = runs.iter().find(|r| r.run_id != parent).unwrap();
    assert_eq!(nb.trigger, "mlflow");
    let d = s.get_run("aaaa0000000000000000000000000001").await.unwrap();
    assert_eq!(d.run.status, RunStatus::GateFailed);
    let stages: Vec<_> = d
        .stages
        .iter()
        .map(|st| (st.stage.as_str(), st.status, st.exit_code, st.wall_ms))
        .collect();
    assert_eq!(stages, [("train", StageStatus::Ran, Some(0), Some(1500))]);
    assert_eq!(d.params, [("seed".to_owned(), serde_json::json!(1))]);
    assert_eq!(d.gates.len(), 1);
    assert!(!d.gates[0].passed);
}

#[test]
fn sqlite_api_pipeline_runs() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        api_pipeline_runs_conformance(&s).await;
    });
}

/// Gateways announce themselves every tick; a deployment is marked picked
/// up by the first heartbeat that routes it, once; a version's rejection
/// reads back from its tag.
/// Replicated gateways sharing a rollout: each one's window of the current
/// step (replaced, not added to; an earlier step's row not counted) and
/// the lease that names the one that decides (renewed by its holder,
/// refused to another until it lapses, then taken over), also when many
/// gateways ask at once.
async fn rollout_replicas_conformance(s: &dyn MetadataStore) {
    let w = |g: &str, step: i64, n: i64| RolloutWindow {
        deployment_id: "d1".into(),
        gateway_id: g.into(),
        step_started_ms: step,
        updated_ms: step + n,
        figures: serde_json::json!({"requests": n}),
    };
    assert!(s.rollout_windows("d1", 100).await.unwrap().is_empty());
    s.report_window(&w("g1", 100, 5)).await.unwrap();
    s.report_window(&w("g2", 100, 7)).await.unwrap();
    s.report_window(&w("g1", 100, 9)).await.unwrap();
    s.report_window(&w("g3", 50, 4)).await.unwrap();
    let got = s.rollout_windows("d1", 100).await.unwrap();
    let figures: Vec<(String, i64)> = got
        .iter()
        .map(|w| {
            (
                w.gateway_id.clone(),
                w.figures["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(figures, [("g1".to_owned(), 9), ("g2".to_owned(), 7)]);
    // A new step replaces a gateway's row.
    s.report_window(&w("g1", 200, 1)).await.unwrap();
    assert_eq!(s.rollout_windows("d1", 100).await.unwrap().len(), 1);
    assert_eq!(s.rollout_windows("d1", 200).await.unwrap().len(), 1);

    assert!(s.take_lease("d1", "g1", 1_000, 300).await.unwrap());
    assert!(
        s.take_lease("d1", "g1", 1_100, 300).await.unwrap(),
        "renewed"
    );
    assert!(
        !s.take_lease("d1", "g2", 1_350, 300).await.unwrap(),
        "held till 1400"
    );
    assert!(
        s.take_lease("d1", "g2", 1_400, 300).await.unwrap(),
        "lapsed: moved"
    );
    assert!(
        !s.take_lease("d1", "g1", 1_500, 300).await.unwrap(),
        "g2's now"
    );
    assert!(
        s.take_lease("d2", "g1", 1_500, 300).await.unwrap(),
        "per deployment"
    );
    // Many at once on a lapsed lease: exactly one gets it.
    let asks = (0..8).map(|i| {
        let g = format!("r{i}");
        async move { s.take_lease("d1", &g, 5_000, 300).await.unwrap() }
    });
    let won = futures_util::future::join_all(asks).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}

async fn gateways_conformance(s: &dyn MetadataStore) {
    assert!(s.list_gateways().await.unwrap().is_empty());
    s.create_model_version(&version("iris", "d1", Some("production")))
        .await
        .unwrap();
    s.create_model_version(&version("iris", "d2", None))
        .await
        .unwrap();
    let d = s
        .create_deployment(&NewDeployment {
            model: "iris".into(),
            candidate: 2,
            stable: Some(1),
            strategy: "canary".into(),
            spec: serde_json::json!({"alias": "production"}),
            phase: "progressing".into(),
            weight: 10,
            created_ms: 100,
            reason: None,
        })
        .await
        .unwrap();
    assert_eq!(d.picked_up_ms, None);
    let mut beat = GatewayBeat {
        id: "g1".into(),
        host: "box".into(),
        addr: "127.0.0.1:8080".into(),
        pid: 42,
        models: vec![GatewayModel {
            model: "iris".into(),
            selector: "iris@production".into(),
            alias: Some("production".into()),
            version: Some(1),
            live: vec![LiveFigures {
                version: 1,
                role: "stable".into(),
                window_ms: 60_000,
                requests: 120,
                errors: 1,
                p99_ms: Some(2.5),
                labelled: 10,
                correct: 9,
            }],
            analysis: None,
        }],
        tick_ms: 1000,
        started_ms: 1_000,
        last_seen_ms: 1_000,
    };
    // A heartbeat that routes nothing picks nothing up.
    s.gateway_heartbeat(&beat, &[]).await.unwrap();
    assert_eq!(s.list_gateways().await.unwrap(), vec![beat.clone()]);
    assert_eq!(
        s.get_deployment(&d.id).await.unwrap().unwrap().picked_up_ms,
        None
    );
    // The next one routes the deployment: picked up then, and only then.
    beat.last_seen_ms = 2_000;
    s.gateway_heartbeat(&beat, std::slice::from_ref(&d.id))
        .await
        .unwrap();
    beat.last_seen_ms = 3_000;
    beat.models[0].version = None;
    s.gateway_heartbeat(&beat, std::slice::from_ref(&d.id))
        .await
        .unwrap();
    assert_eq!(
        s.get_deployment(&d.id).await.unwrap().unwrap().picked_up_ms,
        Some(2_000)
    );
    // The row is replaced, not added to; others have rows of their own.
    let mut other = beat.clone();
    other.id = "g2".into();
    other.models.clear();
    other.last_seen_ms = 2_500;
    s.gateway_heartbeat(&other, &[]).await.unwrap();
    let all = s.list_gateways().await.unwrap();
    assert_eq!(all, vec![beat.clone(), other.clone()]);
    assert!(all[0].live(3_000 + 5_000) && !all[0].live(3_000 + 5_001));
    assert!(all[0].serves_alias("iris", "production"));
    assert!(!all[0].serves_alias("iris", "staging"));
    assert!(!all[1].serves_alias("iris", "production"));
    s.remove_gateway("g2").await.unwrap();
    assert_eq!(s.list_gateways().await.unwrap(), vec![beat.clone()]);
    // A gateway not heard from for a day (killed: it left its row) goes
    // with the next heartbeat of another.
    let mut later = beat.clone();
    later.id = "g3".into();
    later.last_seen_ms = beat.last_seen_ms + GATEWAY_ROW_KEPT_MS;
    s.gateway_heartbeat(&later, &[]).await.unwrap();
    assert_eq!(s.list_gateways().await.unwrap().len(), 2);
    later.last_seen_ms += 1;
    s.gateway_heartbeat(&later, &[]).await.unwrap();
    assert_eq!(s.list_gateways().await.unwrap(), vec![later]);
    // Rejection is the version's tag, read back as its state.
    let v2 = s.get_version("iris", 2).await.unwrap().unwrap();
    assert_eq!(v2.rejected(), None);
    s.set_version_tag("iris", 2, REJECTED_TAG, "looks off")
        .await
        .unwrap();
    let v2 = s.get_version("iris", 2).await.unwrap().unwrap();
    assert_eq!(v2.rejected(), Some("looks off"));
    let listed = s.list_versions("iris").await.unwrap();
    assert_eq!(listed[1].rejected(), Some("looks off"));
    assert_eq!(listed[0].rejected(), None);
}

#[test]
fn sqlite_auth() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        auth::conformance(&s).await
    });
}

#[test]
fn sqlite_gateways() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        gateways_conformance(&s).await;
    });
}

#[test]
fn sqlite_rollout_replicas() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        rollout_replicas_conformance(&s).await;
    });
}

#[test]
fn sqlite_deployments() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        deployments_conformance(&s).await;
    });
}

#[test]
fn sqlite_group_commit() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_d, s) = sqlite().await;
        group_commit_conformance(std::sync::Arc::new(s.with_group_commit())).await;
    });
}

#[test]
fn sqlite_tracking() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        tracking_conformance(&s).await;
    });
}

#[test]
fn sqlite_runs() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        runs_conformance(&s).await;
    });
}

#[test]
fn sqlite_budgets() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        budgets::conformance(&s).await;
    });
}

#[test]
fn sqlite_monitors() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        monitors::conformance(&s).await;
    });
}

#[test]
fn sqlite_trigger_race() {
    sqlite_race(monitors::race);
}

#[test]
fn sqlite_deliveries() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        deliveries::conformance(&s).await;
    });
}

#[test]
fn sqlite_delivery_race() {
    sqlite_race(deliveries::race);
}

#[test]
fn sqlite_overview() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        overview::conformance(&s).await;
    });
}

#[test]
fn sqlite_budget_race() {
    sqlite_race(budgets::race);
}

#[test]
fn sqlite_registration_race() {
    sqlite_race(registrations_race);
}

/// Two stores over one database (two servers' pools) registering versions
/// of one model at once: every number given once, none reused or skipped.
async fn registrations_race(one: std::sync::Arc<SqlStore>, two: std::sync::Arc<SqlStore>) {
    let register = |s: std::sync::Arc<SqlStore>, tag: &'static str| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for j in 0..10 {
                let v = version("m", &format!("{tag}{j}"), None);
                got.push(s.create_model_version(&v).await.unwrap().version);
            }
            got
        })
    };
    let (a, b) = tokio::join!(register(one.clone(), "a"), register(two.clone(), "b"));
    let mut all = [a.unwrap(), b.unwrap()].concat();
    all.sort_unstable();
    assert_eq!(all, (1..=20).collect::<Vec<_>>());
    for s in [&one, &two] {
        assert_eq!(s.latest_version("m").await.unwrap().unwrap().version, 20);
    }
}

/// Two connections to one fresh SQLite store, racing on two threads.
fn sqlite_race<F: std::future::Future<Output = ()>>(
    race: impl FnOnce(std::sync::Arc<SqlStore>, std::sync::Arc<SqlStore>) -> F,
) {
    multi_thread().block_on(async {
        let (d, one) = sqlite().await;
        let url = format!("sqlite://{}", d.path().join("ferry.db").display());
        let two = SqlStore::open(&url).await.unwrap();
        race(std::sync::Arc::new(one), std::sync::Arc::new(two)).await;
    });
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sqlite_stage_costs() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        stage_costs_conformance(&s).await;
    });
}

#[test]
fn sqlite_batched_writes() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        batched_writes_conformance(&s).await;
    });
}

#[test]
fn sqlite_registry() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        registry_conformance(&s).await;
    });
}

#[test]
fn sqlite_reopen_keeps_data_and_schema() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        {
            let s = SqlStore::open(&url).await.unwrap();
            s.create_model_version(&version("m", "d", None))
                .await
                .unwrap();
        }
        let s = SqlStore::open(&url).await.unwrap();
        assert_eq!(s.latest_version("m").await.unwrap().unwrap().version, 1);
    });
}

#[test]
fn concurrent_registrations_get_distinct_versions() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
    BlockingStore::open(&url).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let s = BlockingStore::open(&url).unwrap();
                (0..5)
                    .map(|j| {
                        let v = version("m", &format!("d{i}{j}"), None);
                        s.call(|st| Box::pin(async move { st.create_model_version(&v).await }))
                            .unwrap()
                            .version
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (1..=20).collect::<Vec<_>>());
}

/// The same suite on PostgreSQL: each test gets a database of its own on the
/// server `FERRY_TEST_POSTGRES_URL` names (`.ci/run` starts one).
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    async fn fresh() -> SqlStore {
        let admin = std::env::var("FERRY_TEST_POSTGRES_URL")
            .expect("the postgres feature needs FERRY_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:55432/postgres)");
        let url = SqlStore::scratch_database(&admin, "ferry_test")
            .await
            .unwrap();
        SqlStore::open(&url).await.unwrap()
    }

    #[test]
    fn postgres_runs() {
        rt().block_on(async { runs_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_group_commit() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            group_commit_conformance(std::sync::Arc::new(fresh().await.with_group_commit())).await
        });
    }

    #[test]
    fn postgres_deployments() {
        rt().block_on(async { deployments_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_api_pipeline_runs() {
        rt().block_on(async { api_pipeline_runs_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_auth() {
        rt().block_on(async { crate::auth::conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_gateways() {
        rt().block_on(async { gateways_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_rollout_replicas() {
        rt().block_on(async { rollout_replicas_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_tracking() {
        rt().block_on(async { tracking_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_budgets() {
        rt().block_on(async { crate::budgets::conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_monitors() {
        rt().block_on(async { crate::monitors::conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_trigger_race() {
        postgres_race(crate::monitors::race);
    }

    #[test]
    fn postgres_deliveries() {
        rt().block_on(async { crate::deliveries::conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_delivery_race() {
        postgres_race(crate::deliveries::race);
    }

    #[test]
    fn postgres_registration_race() {
        postgres_race(crate::registrations_race);
    }

    /// Two connections to one fresh PostgreSQL database, racing on two threads.
    fn postgres_race<F: std::future::Future<Output = ()>>(
        race: impl FnOnce(std::sync::Arc<SqlStore>, std::sync::Arc<SqlStore>) -> F,
    ) {
        crate::multi_thread().block_on(async {
            let admin = std::env::var("FERRY_TEST_POSTGRES_URL").unwrap();
            let url = SqlStore::scratch_database(&admin, "ferry_test")
                .await
                .unwrap();
            let one = SqlStore::open(&url).await.unwrap();
            let two = SqlStore::open(&url).await.unwrap();
            race(std::sync::Arc::new(one), std::sync::Arc::new(two)).await;
        });
    }

    #[test]
    fn postgres_overview() {
        rt().block_on(async { crate::overview::conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_budget_race() {
        postgres_race(crate::budgets::race);
    }

    #[test]
    fn postgres_stage_costs() {
        rt().block_on(async { stage_costs_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_batched_writes() {
        rt().block_on(async { batched_writes_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_registry() {
        rt().block_on(async { registry_conformance(&fresh().await).await });
    }

    #[test]
    fn postgres_migrations_are_idempotent() {
        rt().block_on(async {
            let s = fresh().await;
            s.create_model_version(&version("m", "d", None))
                .await
                .unwrap();
            s.migrate_again().await.unwrap();
            assert_eq!(s.latest_version("m").await.unwrap().unwrap().version, 1);
        });
    }
}
