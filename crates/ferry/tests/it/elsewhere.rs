//! Stages run away from their project (`ferry run --executor isolated`:
//! each stage's declared files sent through the remote, `ferry stage run`
//! in a folder of its own, the outputs brought back by digest), as a pod
//! runs them, on this machine: the lock is the one a local run writes, an
//! unchanged pipeline runs nothing, only what changed runs again, a stage
//! that reads an undeclared file fails, and a failing command keeps its
//! exit code.

use crate::support::*;

const SPEC: &str = r#"stages:
  prepare:
    cmd: mkdir -p work/rows && for i in 1 2 3; do echo "row $i ${seed}" > work/rows/$i.txt; done && echo x >> prepare.count
    params: [seed]
    outs: [work/rows]
  train:
    cmd: >-
      cat work/rows/*.txt notes.txt > work/model.txt && echo "${lr}" >> work/model.txt
      && echo '{"rows": 3}' > work/metrics.json && echo "trained on $(hostname)" && echo x >> $FERRY_PROJECT_ROOT/../train.count
    deps: [work/rows, notes.txt]
    params: [lr]
    outs: [work/model.txt]
    metrics: work/metrics.json
"#;

fn project(remote: &std::path::Path) -> Proj {
    let p = Proj::new(&format!(
        "remotes:\n  shared:\n    url: {}\n    default: true\n{SPEC}",
        remote.display()
    ));
    p.write("params.yaml", "seed: 1\nlr: 0.1\n");
    p.write("notes.txt", "notes\n");
    p
}

/// The lock without its comments, for comparing two runs'.
fn lock(p: &Proj) -> String {
    p.read("ferry.lock")
}

#[test]
fn isolated_stages_lock_what_a_local_run_locks_and_rerun_only_what_changed() {
    let remote = tempfile::tempdir().unwrap();
    let here = project(&remote.path().join("a"));
    here.run_ok();
    let away = project(&remote.path().join("b"));
    let (code, report) = away.run_json(&["--executor", "isolated"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        stage_statuses(&report),
        pairs(&[("prepare", "ran"), ("train", "ran")])
    );
    assert_eq!(
        lock(&away),
        lock(&here),
        "the same fingerprints and digests"
    );
    assert_eq!(away.read("work/model.txt"), here.read("work/model.txt"));
    assert_eq!(
        report["metrics"]["rows"], 3.0,
        "metrics read from the brought-back file"
    );
    // The stages ran elsewhere, not in the project.
    assert_eq!(counter(&away, "prepare.count"), 0);

    let (code, report) = away.run_json(&["--executor", "isolated"]);
    assert_eq!(code, 0);
    assert_eq!(
        stage_statuses(&report),
        pairs(&[("prepare", "up_to_date"), ("train", "up_to_date")])
    );
    away.write("params.yaml", "seed: 1\nlr: 0.2\n");
    let (code, report) = away.run_json(&["--executor", "isolated"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        stage_statuses(&report),
        pairs(&[("prepare", "up_to_date"), ("train", "ran")])
    );
    assert!(away.read("work/model.txt").ends_with("0.2\n"));
}

#[test]
fn an_undeclared_file_is_missing_away_and_a_failing_command_keeps_its_code() {
    let remote = tempfile::tempdir().unwrap();
    let p = Proj::new(&format!(
        "remotes:\n  shared:\n    url: {}\n    default: true\nstages:\n  peek:\n    cmd: cat secret.txt > out.txt\n    outs: [out.txt]\n  fail:\n    cmd: echo about to fail && exit 7\n    outs: [never.txt]\n",
        remote.path().display()
    ));
    p.write("secret.txt", "not declared\n");
    // Here the undeclared file is read; away it is not there.
    let (code, report) = p.run_json(&["--executor", "isolated"]);
    assert_eq!(code, 1, "{report}");
    let stages = stage_statuses(&report);
    assert_eq!(stages, pairs(&[("peek", "failed"), ("fail", "failed")]));
    let fail = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "fail")
        .unwrap();
    assert_eq!(fail["exit_code"], 7, "{fail}");
    let log = std::fs::read_to_string(fail["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("about to fail"), "{log}");
}

#[test]
fn kubernetes_needs_an_image_and_a_cluster() {
    let remote = tempfile::tempdir().unwrap();
    let p = project(remote.path());
    let o = p.ferry(&["run", "--executor", "kubernetes"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("kubernetes.image"), "{o:?}");
    let spec = p.read("ferry.yaml");
    p.write(
        "ferry.yaml",
        &format!("kubernetes:\n  image: ghcr.io/acme/ferry-stage:1.0\n{spec}"),
    );
    let o = p
        .cmd(&["run", "--executor", "kubernetes"])
        .env("KUBECONFIG", p.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no Kubernetes cluster configured"),
        "{stderr}"
    );
}
