//! `ferry run --server` and `ferry models --server`: a pipeline recorded on
//! a team's `ferry server` (a real one, started from the built binary).

use crate::support::*;
use ferry_metadata::{BlockingStore, RunQuery, ViewType};
use std::io::BufRead;

/// A `ferry server` on a free loopback port with a store of its own.
pub(crate) struct Server {
    child: std::process::Child,
    dir: tempfile::TempDir,
    pub(crate) url: String,
}

impl Server {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}", dir.path().join("server.db").display());
        let artifacts = dir.path().join("artifacts");
        Self::start_on(dir, &store, &artifacts)
    }

    /// A server on the store at `store` with its artifacts in `artifacts`.
    pub(crate) fn start_on(
        dir: tempfile::TempDir,
        store: &str,
        artifacts: &std::path::Path,
    ) -> Self {
        let mut child = std::process::Command::new(ferry_bin())
            .args(["server", "--port", "0", "--store", store, "--artifacts"])
            .arg(artifacts)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("server ended before listening")
                .unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, dir, url }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn store(&self) -> BlockingStore {
        BlockingStore::open(&format!(
            "sqlite://{}",
            self.dir.path().join("server.db").display()
        ))
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn remote_project() -> Proj {
    let p = crate::cli::project();
    let spec = crate::cli::SPEC.replace(
        "printf '{\"accuracy\": %s}' \"$(cat acc.txt)\" > metrics.json",
        "printf '{\"accuracy\": %s}' \"$(cat acc.txt)\" > metrics.json && echo \"$MLFLOW_TRACKING_URI $MLFLOW_RUN_ID\" > tracking.txt",
    );
    assert_ne!(spec, crate::cli::SPEC);
    p.write("ferry.yaml", &spec);
    p
}

#[test]
fn a_pipeline_recorded_on_a_server() {
    let srv = Server::start();
    let p = remote_project();
    let (code, report) = p.run_json(&["--server", &srv.url]);
    assert_eq!(code, 0, "{report}");
    let run_id = report["run_id"].as_str().unwrap().to_owned();
    assert_eq!(report["registered"]["version"], 1);
    // Stages log to the server, into the pipeline's run.
    assert_eq!(
        p.read("tracking.txt").trim(),
        format!("{} {run_id}", srv.url)
    );
    // Nothing was written to a local store.
    assert!(!p.path().join(".ferry/ferry.db").exists());

    // On the server: the run, its params, metrics, data tags and gates...
    let store = srv.store();
    let rid = run_id.clone();
    let run = store
        .call(|s| Box::pin(async move { s.get_tracked_run(&rid).await }))
        .unwrap()
        .unwrap();
    assert_eq!(run.info.status, "FINISHED");
    assert_eq!(run.params, pairs(&[("seed", "1")]));
    assert_eq!(run.metrics[0].key, "accuracy");
    assert_eq!(run.metrics[0].value, 0.95);
    let tag = |k: &str| {
        run.tags
            .iter()
            .find(|(t, _)| t == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let pipeline = p.path().file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(tag("ferry.pipeline"), pipeline);
    assert_eq!(tag("ferry.status"), "succeeded");
    assert_eq!(tag("ferry.data.src.txt").len(), 64);
    assert_eq!(
        tag("ferry.gate.1"),
        "passed: metrics.accuracy >= 0.9: 0.95 >= 0.9"
    );
    // ...the stages as nested runs...
    let exp = run.info.experiment_id;
    let all = store
        .call(|s| {
            Box::pin(async move {
                s.search_tracked_runs(&RunQuery {
                    experiment_ids: vec![exp],
                    filter: vec![],
                    order_by: vec![],
                    view: ViewType::ActiveOnly,
                    max_results: 100,
                    offset: 0,
                })
                .await
            })
        })
        .unwrap()
        .0;
    let mut children: Vec<String> = all
        .iter()
        .filter(|r| {
            r.tags
                .iter()
                .any(|(k, v)| k == "mlflow.parentRunId" && *v == run_id)
        })
        .map(|r| r.info.run_name.clone())
        .collect();
    children.sort();
    assert_eq!(children, vec!["gen", "train"]);
    // The run's cost is a metric of its run, the sum of its stages' (each
    // a metric of the stage's nested run), for any MLflow client to read.
    let metric = |r: &ferry_metadata::TrackedRun| {
        r.metrics
            .iter()
            .find(|m| m.key == "ferry.cost_usd")
            .map(|m| m.value)
    };
    let stages: f64 = all
        .iter()
        .filter(|r| r.info.run_id != run_id)
        .map(|r| metric(r).expect("a stage without its cost"))
        .sum();
    let total = metric(&run).expect("the run's cost");
    assert!((total - stages).abs() < 1e-12, "{total} != {stages}");
    // ...the model's files under the run's artifacts, and the version with
    // its lineage.
    let uploaded = srv
        .dir
        .path()
        .join(format!("artifacts/{exp}/{run_id}/artifacts/m/model.bin"));
    assert_eq!(
        std::fs::read(uploaded).unwrap(),
        std::fs::read(p.path().join("model.bin")).unwrap()
    );
    let v = store
        .call(|s| Box::pin(async move { s.get_version("m", 1).await }))
        .unwrap()
        .unwrap();
    assert_eq!(v.source, format!("runs:/{run_id}/m"));
    assert_eq!(v.artifact_digest.len(), 64);
    assert_eq!(v.lineage["params"]["seed"], 1);
    assert_eq!(v.aliases, vec!["candidate".to_string()]);

    // `ferry models --server` reads the same registry.
    let o = p.ferry(&["models", "list", "--server", &srv.url, "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let list: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(list[0]["name"], "m");
    assert_eq!(list[0]["versions"], 1);
    let o = p
        .cmd(&["models", "show", "m@candidate", "--json"])
        .env("FERRY_SERVER", &srv.url)
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["artifact_digest"], v.artifact_digest.as_str());
    assert_eq!(shown["lineage"]["data"], v.lineage["data"]);

    // Nothing changed: nothing runs, no new version.
    let (code, report) = p.run_json(&["--server", &srv.url]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["model_unchanged"], "m/1");

    // Gates compare with the server's production model.
    let o = p.ferry(&["models", "alias", "m/1", "production", "--server", &srv.url]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("production: m/1 (new)"), "{o:?}");
    p.write("acc.txt", "0.92\n");
    let o = p.ferry(&["run", "--server", &srv.url]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(o.stderr.contains("0.92 >= 0.94"), "{o:?}");
    let o = p.ferry(&["models", "versions", "m", "--server", &srv.url, "--json"]);
    let versions: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        versions.as_array().unwrap().len(),
        1,
        "a failed gate registers nothing"
    );
}

#[test]
fn server_errors_are_clear() {
    let p = crate::cli::project();
    let o = p.ferry(&["run", "--server", "ftp://example.com"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("invalid server URL `ftp://example.com`"),
        "{o:?}"
    );
    // Nothing listens on port 9 of loopback.
    let o = p.ferry(&["run", "--server", "http://127.0.0.1:9"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("cannot reach the server"), "{o:?}");
    let srv = Server::start();
    let o = p.ferry(&["models", "history", "m", "--server", &srv.url]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("not part of the MLflow API"), "{o:?}");
    let o = p.ferry(&["models", "show", "m@production", "--server", &srv.url]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("no model version `m@production`"),
        "{o:?}"
    );
}

#[test]
fn check_reports_go_to_the_server_with_the_run() {
    let srv = Server::start();
    let p = crate::checks::project();
    let (code, rep) = p.run_json(&["--server", &srv.url]);
    assert_eq!(code, 0, "{rep}");
    let run = rep["run_id"].as_str().unwrap();
    let arts = srv.dir.path().join("artifacts");
    let exp = std::fs::read_dir(&arts)
        .unwrap()
        .flatten()
        .find(|e| e.path().join(run).exists())
        .expect("the run's artifact folder")
        .path();
    for f in ["validate.json", "validate.html", "drift.json"] {
        let kept = exp.join(run).join("artifacts/checks").join(f);
        assert!(kept.is_file(), "{} missing", kept.display());
    }
    assert_eq!(
        std::fs::read(exp.join(run).join("artifacts/checks/validate.json")).unwrap(),
        std::fs::read(p.path().join("reports/validate.json")).unwrap()
    );
}

/// What `mlflow.sklearn.log_model(..., registered_model_name=...)` leaves
/// in a store: a run (with `accuracy` logged when given) and a version of
/// `model` made from it through the MLflow API, without any `ferry.*`
/// lineage; `alias` then points at it. Returns the version.
pub(crate) fn register_like_mlflow(
    store: &BlockingStore,
    model: &str,
    accuracy: Option<f64>,
    alias: &str,
) -> i64 {
    let (model, alias) = (model.to_owned(), alias.to_owned());
    store
        .call(|s| {
            Box::pin(async move {
                let now = ferry_core::now_ms();
                let exp = s.ensure_experiment("notebook", now).await?;
                let run = ferry_core::RunId::generate().as_str().to_owned();
                s.create_tracked_run(&run, exp, "fit", "someone", now, &[])
                    .await?;
                let metrics: Vec<ferry_metadata::Metric> = accuracy
                    .map(|a| ferry_metadata::Metric {
                        key: "accuracy".into(),
                        value: a,
                        timestamp: now,
                        step: 0,
                    })
                    .into_iter()
                    .collect();
                s.log_batch(&run, &metrics, &[("C".into(), "0.5".into())], &[])
                    .await?;
                s.update_tracked_run(&run, Some("FINISHED"), Some(now), None)
                    .await?;
                if s.get_registered_model(&model).await?.is_none() {
                    s.create_registered_model(&model, "", &[], now).await?;
                }
                let v = s
                    .create_mlflow_version(
                        &model,
                        &format!("runs:/{run}/model"),
                        Some(&run),
                        "",
                        &[],
                        "",
                        None,
                        now,
                    )
                    .await?;
                s.set_alias(&model, &alias, v.version, None, now).await?;
                Ok(v.version)
            })
        })
        .unwrap()
}

#[test]
fn gates_read_the_metrics_of_a_version_the_mlflow_client_registered() {
    let srv = Server::start();
    let store = srv.store();
    assert_eq!(
        register_like_mlflow(&store, "m", Some(0.99), "production"),
        1
    );
    let p = remote_project();
    // The production version's accuracy is its run's: 0.95 is not within 0.01.
    let o = p.ferry(&["run", "--server", &srv.url]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(o.stderr.contains("0.95 >= 0.98"), "{o:?}");
    assert!(!o.stderr.contains("no stage wrote"), "{o:?}");
    // A production version whose run logged no accuracy: no comparison is
    // possible, the gate says so and does not hold the run back.
    assert_eq!(register_like_mlflow(&store, "m", None, "production"), 2);
    let o = p.ferry(&["run", "--server", &srv.url]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("gate skipped: metrics.accuracy >= model(\"m@production\").metrics.accuracy - 0.01: m@production has no metric accuracy"),
        "{o:?}"
    );
    assert!(o.stderr.contains("registered m/3 @candidate"), "{o:?}");
    // The server's run records the gate as skipped.
    let runs = store
        .call(|s| Box::pin(async move { s.list_runs(&Default::default()).await }))
        .unwrap();
    let skipped = runs.iter().any(|r| {
        let rid = r.run_id.clone();
        let run = store
            .call(|s| Box::pin(async move { s.get_tracked_run(&rid).await }))
            .unwrap()
            .unwrap();
        run.tags.iter().any(|(k, v)| {
            k == "ferry.gate.2"
                && v.starts_with("skipped: ")
                && v.ends_with("m@production has no metric accuracy")
        })
    });
    assert!(skipped, "no run recorded the skipped gate");
}

#[test]
fn gates_read_the_run_of_a_version_registered_in_the_project_store() {
    let p = crate::cli::project();
    p.run_ok();
    let store = BlockingStore::open(&format!(
        "sqlite://{}",
        p.path().join(".ferry/ferry.db").display()
    ))
    .unwrap();
    register_like_mlflow(&store, "m", Some(0.99), "production");
    drop(store);
    p.write("acc.txt", "0.93\n");
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(o.stderr.contains("0.93 >= 0.98"), "{o:?}");
    let (code, r) = {
        let store = BlockingStore::open(&format!(
            "sqlite://{}",
            p.path().join(".ferry/ferry.db").display()
        ))
        .unwrap();
        register_like_mlflow(&store, "m", None, "production");
        drop(store);
        p.run_json(&[])
    };
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["gates"][1]["skipped"], true);
    assert_eq!(r["gates"][1]["passed"], true);
    assert_eq!(
        r["gates"][1]["message"],
        "skipped: m@production has no metric accuracy"
    );
    // `ferry runs show` says it was skipped, not passed.
    let rid = r["run_id"].as_str().unwrap();
    let o = p.ferry(&["runs", "show", rid]);
    assert!(
        o.stdout.contains("skip metrics.accuracy >= model(\"m@production\").metrics.accuracy - 0.01: m@production has no metric accuracy"),
        "{o:?}"
    );
}

/// A project whose `train` stage prints a line (for `ferry logs`).
fn talking_project() -> Proj {
    let p = remote_project();
    let spec = p.read("ferry.yaml").replace(
        "echo run >> counts/train &&",
        "echo run >> counts/train && echo \"hello from train\" &&",
    );
    assert!(spec.contains("hello from train"));
    p.write("ferry.yaml", &spec);
    p
}

/// `ferry runs list|show` and `ferry logs` of a run `--server` recorded:
/// the same reading through the server's API as on the project's store.
fn shows_the_remote_run(where_: &Proj, server: Option<&str>, run_id: &str, pipeline: &str) {
    let with = |args: &[&str]| {
        let mut a = args.to_vec();
        if let Some(u) = server {
            a.extend(["--server", u]);
        }
        let o = where_.ferry(&a);
        assert_eq!(o.code, 0, "{a:?}: {o:?}");
        o
    };
    let list = with(&["runs", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let run = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id)
        .unwrap_or_else(|| panic!("{run_id} not listed: {list}"));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["pipeline"], pipeline, "{run}");
    assert_eq!(run["trigger"], "cli", "{run}");
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only pipeline runs: {list}"
    );
    let human = with(&["runs", "list"]);
    assert!(
        human.stdout.contains(&format!("{} ", &run_id[..8])),
        "{human:?}"
    );
    assert!(human.stdout.contains("succeeded"), "{human:?}");

    let show = with(&["runs", "show", &run_id[..8], "--json"]);
    let show: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let stages: Vec<(String, String, i64)> = show["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                s["exit_code"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("gen".into(), "ran".into(), 0),
            ("train".into(), "ran".into(), 0)
        ],
        "{show}"
    );
    assert!(show["stages"][1]["wall_ms"].as_i64().is_some(), "{show}");
    // Each stage's cost went through the MLflow API (metrics and tags on
    // its nested run) and came back.
    let cost = &show["stages"][1]["cost"];
    assert_eq!(cost["basis"], "used", "{show}");
    assert_eq!(cost["machine"], "aws-us-east-1", "{show}");
    assert!(cost["charged"].as_f64().is_some_and(|c| c >= 0.0), "{show}");
    assert_eq!(show["gates"][0]["passed"], true, "{show}");
    assert_eq!(show["params"][0][0], "seed", "{show}");
    let human = with(&["runs", "show", &run_id[..8]]);
    assert!(human.stdout.contains("status    succeeded"), "{human:?}");
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("train ") && l.contains(" ran ")),
        "{human:?}"
    );

    let logs = with(&["logs", &run_id[..8], "train"]);
    assert_eq!(logs.stdout, "hello from train\n", "{logs:?}");
    let all = with(&["logs", &run_id[..8]]);
    assert!(
        all.stdout.contains("== train\nhello from train\n"),
        "{all:?}"
    );
    assert!(!all.stderr.contains("no stage ran"), "{all:?}");
}

#[test]
fn runs_recorded_on_a_server_show_their_stages_status_and_logs() {
    let srv = Server::start();
    let p = talking_project();
    let (code, report) = p.run_json(&["--server", &srv.url]);
    assert_eq!(code, 0, "{report}");
    let run_id = report["run_id"].as_str().unwrap().to_owned();
    let pipeline = p.path().file_name().unwrap().to_string_lossy().into_owned();
    // Read through the server's API, from a folder with no project at all.
    let nowhere = Proj {
        dir: tempfile::tempdir().unwrap(),
    };
    shows_the_remote_run(&nowhere, Some(&srv.url), &run_id, &pipeline);
    // FERRY_SERVER works as --server does.
    let o = nowhere
        .cmd(&["runs", "list"])
        .env("FERRY_SERVER", &srv.url)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains(&run_id[..8]));
    // Nothing to do the second time: a no-op, as the server keeps it.
    let (code, again) = p.run_json(&["--server", &srv.url]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["noop"], true, "{again}");
    let o = nowhere.ferry(&["runs", "list", "--server", &srv.url, "--json"]);
    let list: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(list[0]["noop"], true, "{list}");
    assert_eq!(list[1]["noop"], false, "{list}");
    let o = nowhere.ferry(&["runs", "list", "--server", &srv.url]);
    assert!(o.stdout.contains("\n… 1 no-op run (latest "), "{o:?}");
}

#[test]
fn runs_a_server_recorded_in_the_project_store_read_as_pipeline_runs() {
    // The team's server runs in project `home` on its own store; another
    // checkout records there with --server.
    let home = crate::cli::project();
    let store = format!("sqlite://{}", home.path().join(".ferry/ferry.db").display());
    std::fs::create_dir_all(home.path().join(".ferry")).unwrap();
    let srv = Server::start_on(
        tempfile::tempdir().unwrap(),
        &store,
        &home.path().join(".ferry/artifacts"),
    );
    let p = talking_project();
    let (code, report) = p.run_json(&["--server", &srv.url]);
    assert_eq!(code, 0, "{report}");
    let run_id = report["run_id"].as_str().unwrap().to_owned();
    let pipeline = p.path().file_name().unwrap().to_string_lossy().into_owned();
    shows_the_remote_run(&home, None, &run_id, &pipeline);
}

/// A server that cannot bind says where, why once, and what to try; the
/// gateway says the same.
#[test]
fn a_taken_port_is_a_clear_error_for_both_servers() {
    let srv = Server::start();
    let port = srv.url.rsplit(':').next().unwrap().to_owned();
    let p = Proj::new("stages: {}\n");
    let o = p.ferry(&["server", "--port", &port]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains(&format!("cannot listen on 127.0.0.1:{port}: Address already in use (os error 98)\nhint: another process listens there; pick another port with --port")),
        "{o:?}"
    );
    assert_eq!(
        o.stderr.matches("Address already in use").count(),
        1,
        "{o:?}"
    );
    let p = crate::deploy::two_versions();
    let store = ferry_metadata::BlockingStore::open(&format!(
        "sqlite://{}",
        p.path().join(".ferry/ferry.db").display()
    ))
    .unwrap();
    store
        .call(|s| Box::pin(async move { s.set_version_tag("m", 1, "ferry.fake", "ok").await }))
        .unwrap();
    let o = p.ferry(&["serve", "m@production", "--allow-fakes", "--port", &port]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("hint: another process listens there"),
        "{o:?}"
    );
}

#[test]
fn stored_text_reaches_the_terminal_escaped() {
    // A tag an MLflow client set: an escape sequence that would retitle the
    // window and clear the screen if printed raw.
    let srv = Server::start();
    let store = srv.store();
    let v = register_like_mlflow(&store, "m", Some(0.99), "production");
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2Jhidden\rshown";
    store
        .call(|s| {
            let evil = evil.to_owned();
            Box::pin(async move { s.set_version_tag("m", v, "note", &evil).await })
        })
        .unwrap();
    let p = remote_project();
    let o = p.ferry(&["models", "show", "m/1", "--server", &srv.url]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        !o.stdout.contains('\u{1b}') && !o.stdout.contains('\r'),
        "{o:?}"
    );
    assert!(o.stdout.contains("note = \\u{1b}]0;pwned"), "{o:?}");
    // --json keeps the value exactly (JSON escapes it).
    let o = p.ferry(&["models", "show", "m/1", "--server", &srv.url, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["tags"][0], serde_json::json!(["note", evil]), "{o:?}");
}
