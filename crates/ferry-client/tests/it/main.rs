//! The client against a real `ferry server` on loopback: everything
//! `ferry run --server` records, read back through the API and the store.

#![allow(clippy::unwrap_used)]

use ferry_client::{Client, Error};
use ferry_metadata::{Metric, NewModelVersion};

fn server() -> (tempfile::TempDir, ferry_tracking::Embedded, Client) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
    let srv = ferry_tracking::Embedded::start(&url, &dir.path().join("artifacts")).unwrap();
    let client = Client::new(&srv.url()).unwrap();
    (dir, srv, client)
}

fn new_version(run: &str) -> NewModelVersion {
    NewModelVersion {
        model: "iris".into(),
        run_id: Some(run.into()),
        artifact_path: "work/model.onnx".into(),
        artifact_digest: "d1".repeat(32),
        artifact_size: 1234,
        git_commit: Some("abc123".into()),
        git_dirty: Some(false),
        env_fingerprint: Some("envfp".into()),
        lineage: serde_json::json!({"data": {"data/iris.csv": "ff"}, "metrics": {"accuracy": 0.97}}),
        created_ms: 1,
        alias: Some("production".into()),
        source: None,
        stored: None,
    }
}

#[test]
fn records_runs_artifacts_and_versions() {
    let (dir, _srv, c) = server();
    let exp = c.experiment("iris").unwrap();
    assert_eq!(
        c.experiment("iris").unwrap(),
        exp,
        "found again, not created twice"
    );
    let (run, uri) = c
        .create_run(
            &exp,
            "iris-1",
            1000,
            &[("ferry.pipeline".into(), "iris".into())],
        )
        .unwrap();
    assert_eq!(uri, format!("mlflow-artifacts:/{exp}/{run}/artifacts"));
    // More than one request's worth of metrics and params.
    let metrics: Vec<Metric> = (0..2500)
        .map(|i| Metric {
            key: "loss".into(),
            value: if i == 7 { f64::NAN } else { i as f64 },
            timestamp: 5,
            step: i,
        })
        .collect();
    let params: Vec<(String, String)> =
        (0..150).map(|i| (format!("p{i}"), i.to_string())).collect();
    c.log_batch(&run, &metrics, &params, &[("k".into(), "v".into())])
        .unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::write(&model, b"onnx bytes").unwrap();
    let rel = format!("{exp}/{run}/artifacts/iris/model file.onnx");
    c.upload_artifact(&rel, &model).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("artifacts").join(&rel)).unwrap(),
        b"onnx bytes"
    );
    c.finish_run(&run, "FINISHED", 2000).unwrap();
    // An ended run's artifacts are fixed.
    let e = c.upload_artifact(&rel, &model).unwrap_err().to_string();
    assert!(e.contains("409") || e.contains("INVALID_STATE"), "{e}");

    let v = c
        .create_model_version(&new_version(&run), &format!("runs:/{run}/iris"))
        .unwrap();
    assert_eq!(v.version, 1);
    assert_eq!(v.aliases, vec!["production".to_string()]);
    let again = c.resolve_alias("iris", "production").unwrap().unwrap();
    assert_eq!(again.version, 1);
    assert_eq!(again.artifact_digest, "d1".repeat(32));
    assert_eq!(again.artifact_size, 1234);
    assert_eq!(again.git_dirty, Some(false));
    assert_eq!(again.lineage["metrics"]["accuracy"], 0.97);
    assert_eq!(again.run_id.as_deref(), Some(run.as_str()));
    let v2 = c
        .create_model_version(
            &NewModelVersion {
                alias: None,
                ..new_version(&run)
            },
            &format!("runs:/{run}/iris"),
        )
        .unwrap();
    assert_eq!(v2.version, 2);
    let all = c.list_versions("iris").unwrap();
    assert_eq!(
        all.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(c.latest_version("iris").unwrap().unwrap().version, 2);
    c.set_alias("iris", "production", 2, None).unwrap();
    assert_eq!(
        c.get_version("iris", 2).unwrap().unwrap().aliases,
        vec!["production".to_string()]
    );
    let models = c.list_models().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].versions, 2);
    assert_eq!(models[0].aliases, vec![("production".to_string(), 2)]);
    // Absent things are None, not errors.
    assert!(c.get_version("iris", 9).unwrap().is_none());
    assert!(c.resolve_alias("iris", "staging").unwrap().is_none());
    assert!(c.resolve_alias("nope", "production").unwrap().is_none());
    assert!(c.list_versions("nope").unwrap().is_empty());

    // The server's own store has the run and the version's lineage columns.
    let store = ferry_metadata::BlockingStore::open(&format!(
        "sqlite://{}",
        dir.path().join("ferry.db").display()
    ))
    .unwrap();
    let stored = store
        .call(|s| Box::pin(async move { s.get_version("iris", 1).await }))
        .unwrap()
        .unwrap();
    assert_eq!(stored.git_commit.as_deref(), Some("abc123"));
    assert_eq!(stored.lineage["data"]["data/iris.csv"], "ff");
    let r = run.clone();
    let tracked = store
        .call(|s| Box::pin(async move { s.get_tracked_run(&r).await }))
        .unwrap()
        .unwrap();
    assert_eq!(tracked.params.len(), 150);
    assert_eq!(tracked.info.status, "FINISHED");
    let r = run.clone();
    let history = store
        .call(|s| Box::pin(async move { s.metric_history(&r, "loss").await }))
        .unwrap();
    assert_eq!(history.len(), 2500);
    assert!(history.iter().any(|m| m.value.is_nan()));
}

#[test]
fn errors_name_the_endpoint() {
    let (_dir, _srv, c) = server();
    let e = c
        .log_batch(
            "0".repeat(32).as_str(),
            &[],
            &[("a".into(), "b".into())],
            &[],
        )
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(
        e.to_string()
            .starts_with("POST /api/2.0/mlflow/runs/log-batch: HTTP 404 RESOURCE_DOES_NOT_EXIST"),
        "{e}"
    );
    // Nothing listens on port 9 of loopback.
    let down = Client::new("http://127.0.0.1:9").unwrap();
    let e = down.experiment("x").unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
}
