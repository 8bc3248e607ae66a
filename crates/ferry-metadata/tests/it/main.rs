//! The conformance suite every backend must pass. Each backend gets a fresh
//! store and runs the same checks.

#![allow(clippy::unwrap_used)]

#[cfg(feature = "postgres")]
use ferry_core as _;
use ferry_metadata::*;

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
}

#[test]
fn sqlite_runs() {
    rt().block_on(async {
        let (_d, s) = sqlite().await;
        runs_conformance(&s).await;
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
        let name = format!("ferry_test_{}", ferry_core::RunId::generate().short());
        {
            let a = SqlStore::open(&admin).await.unwrap();
            a.raw_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        }
        let (base, _) = admin.rsplit_once('/').unwrap();
        SqlStore::open(&format!("{base}/{name}")).await.unwrap()
    }

    #[test]
    fn postgres_runs() {
        rt().block_on(async { runs_conformance(&fresh().await).await });
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
