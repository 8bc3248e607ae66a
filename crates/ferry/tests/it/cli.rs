//! The everyday loop: run, nothing to do, change something, revert.

use crate::support::*;

/// Two stages; each appends a line to `counts/<stage>` every time it runs.
pub const SPEC: &str = r#"
stages:
  gen:
    cmd: mkdir -p counts out && echo run >> counts/gen && echo "seed=${seed}" > out/data.txt && cat src.txt >> out/data.txt
    deps: [src.txt]
    params: [seed]
    outs: [out/data.txt]
  train:
    cmd: >-
      echo run >> counts/train &&
      cat out/data.txt train.sh > model.bin &&
      printf '{"accuracy": %s}' "$(cat acc.txt)" > metrics.json
    deps: [out/data.txt, train.sh, acc.txt]
    outs: [model.bin]
    metrics: metrics.json
gates:
  - metrics.accuracy >= 0.9
  - metrics.accuracy >= model("m@production").metrics.accuracy - 0.01
register:
  model: m
  artifact: model.bin
  alias: candidate
"#;

pub fn project() -> Proj {
    let p = Proj::new(SPEC);
    p.write("params.yaml", "seed: 1\n");
    p.write("src.txt", "data v1\n");
    p.write("train.sh", "code v1\n");
    p.write("acc.txt", "0.95\n");
    p
}

#[test]
fn first_run_then_nothing_to_do() {
    let p = project();
    insta::assert_snapshot!(p.status(), @r"
    gen    will run: never ran
    train  will run: upstream stage gen will run
    ");
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        stage_statuses(&r),
        pairs(&[("gen", "ran"), ("train", "ran")])
    );
    assert_eq!(r["registered"]["version"], 1);
    assert_eq!(r["registered"]["aliases"][0], "candidate");
    assert!(p.read("ferry.lock").contains("fingerprint:"));

    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        stage_statuses(&r),
        pairs(&[("gen", "up_to_date"), ("train", "up_to_date")])
    );
    assert_eq!(r["model_unchanged"], "m/1");
    insta::assert_snapshot!(p.status(), @r"
    gen    up to date
    train  up to date
    everything is up to date
    ");
    assert_eq!(counter(&p, "counts/gen"), 1);
    assert_eq!(counter(&p, "counts/train"), 1);
}

#[test]
fn a_changed_dep_reruns_exactly_the_affected_stages() {
    let p = project();
    p.run_ok();
    p.write("train.sh", "code v2\n");
    insta::assert_snapshot!(p.status(), @r"
    gen    up to date
    train  will run: dep train.sh changed
    ");
    let (_, r) = p.run_json(&[]);
    assert_eq!(
        stage_statuses(&r),
        pairs(&[("gen", "up_to_date"), ("train", "ran")])
    );
    assert_eq!(r["registered"]["version"], 2);
    assert_eq!(counter(&p, "counts/gen"), 1);
    assert_eq!(counter(&p, "counts/train"), 2);

    // Data changes upstream: both rerun, and the lineage records the new hash.
    p.write("src.txt", "data v2\n");
    let (_, r) = p.run_json(&[]);
    assert_eq!(
        stage_statuses(&r),
        pairs(&[("gen", "ran"), ("train", "ran")])
    );
    let v = p.ferry(&["models", "show", "m@candidate", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(v["version"], 3);
    assert!(v["lineage"]["data"]["src.txt"].is_string());
    assert!(v["lineage"]["data"]["train.sh"].is_string());
    assert!(
        v["lineage"]["data"].get("out/data.txt").is_none(),
        "produced files are not source data"
    );
    assert_eq!(v["lineage"]["params"]["seed"], 1);
    assert_eq!(v["lineage"]["metrics"]["accuracy"], 0.95);
}

#[test]
fn a_param_change_is_explained_and_a_revert_restores_without_running() {
    let p = project();
    p.run_ok();
    let model_v1 = p.read("model.bin");
    p.write("params.yaml", "seed: 2\n");
    insta::assert_snapshot!(p.status(), @r"
    gen    will run: command changed, param seed 1 -> 2
    train  will run: upstream stage gen will run
    ");
    p.run_ok();
    assert_ne!(p.read("model.bin"), model_v1);
    // Back to seed 1: both stages come back from the cache, nothing runs.
    p.write("params.yaml", "seed: 1\n");
    insta::assert_snapshot!(p.status(), @r"
    gen    will restore from cache: command changed, param seed 2 -> 1
    train  will restore from cache: dep out/data.txt changed
    ");
    let (_, r) = p.run_json(&[]);
    assert_eq!(
        stage_statuses(&r),
        pairs(&[("gen", "restored"), ("train", "restored")])
    );
    assert_eq!(p.read("model.bin"), model_v1);
    assert_eq!(counter(&p, "counts/gen"), 2);
    assert_eq!(counter(&p, "counts/train"), 2);
    // The same artifact as version 1: no new version, the alias follows.
    assert_eq!(r["model_unchanged"], "m/1");
    let v = p.ferry(&["models", "show", "m@candidate", "--json"]);
    assert!(v.stdout.contains("\"version\": 1"), "{v:?}");
}

#[test]
fn editing_a_restored_output_in_place_does_not_corrupt_the_cache() {
    let p = project();
    p.run_ok();
    p.write("params.yaml", "seed: 2\n");
    p.run_ok();
    p.write("params.yaml", "seed: 1\n");
    p.run_ok(); // restores model.bin from the cache
    let good = p.read("model.bin");
    p.write("model.bin", "vandalised\n");
    assert!(
        p.status()
            .contains("train  will restore from cache: out model.bin modified")
    );
    p.run_ok();
    assert_eq!(p.read("model.bin"), good);
}

#[test]
fn deleting_an_output_restores_it() {
    let p = project();
    p.run_ok();
    std::fs::remove_file(p.path().join("model.bin")).unwrap();
    assert!(
        p.status()
            .contains("train  will restore from cache: out model.bin missing")
    );
    p.run_ok();
    assert!(p.path().join("model.bin").exists());
    assert_eq!(counter(&p, "counts/train"), 1);
}

#[test]
fn force_and_targets() {
    let p = project();
    p.run_ok();
    let (_, r) = p.run_json(&["--force", "gen"]);
    assert_eq!(stage_statuses(&r), pairs(&[("gen", "ran")]));
    assert_eq!(
        r["gates"].as_array().unwrap().len(),
        0,
        "a partial run does not gate"
    );
    let o = p.ferry(&["run", "nope"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("unknown stage `nope`; stages: gen, train"),
        "{o:?}"
    );
}

#[test]
fn dry_run_changes_nothing() {
    let p = project();
    let o = p.ferry(&["run", "--dry-run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("would run gen"), "{o:?}");
    assert!(!p.path().join("model.bin").exists());
    assert!(!p.path().join("ferry.lock").exists());
}

#[test]
fn a_failed_gate_exits_3_and_registers_nothing() {
    let p = project();
    p.run_ok();
    p.write("acc.txt", "0.5\n");
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr
            .contains("gate FAILED: metrics.accuracy >= 0.9: 0.5 >= 0.9"),
        "{o:?}"
    );
    let v = p.ferry(&["models", "versions", "m", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    // The run is recorded with its gate results.
    let runs = p.ferry(&["runs", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(runs[0]["status"], "gate_failed");
    let id = runs[0]["run_id"].as_str().unwrap();
    let d = p.ferry(&["runs", "show", &id[..6], "--json"]);
    let d: serde_json::Value = serde_json::from_str(&d.stdout).unwrap();
    assert_eq!(d["gates"][0]["passed"], false);
    assert_eq!(
        d["gates"][0]["message"],
        "metrics.accuracy >= 0.9: 0.5 >= 0.9"
    );
}

#[test]
fn comparison_with_the_production_model() {
    let p = project();
    p.run_ok();
    let o = p.ferry(&[
        "models",
        "alias",
        "m/1",
        "production",
        "--reason",
        "first release",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    // Slightly worse than production but within the 0.01 margin: passes.
    p.write("acc.txt", "0.945\n");
    let (code, _) = p.run_json(&[]);
    assert_eq!(code, 0);
    // Clearly worse: fails, with both values shown.
    p.write("acc.txt", "0.92\n");
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(o.stderr.contains("0.92 >= 0.94"), "{o:?}");
    let h = p.ferry(&["models", "history", "m"]);
    assert!(
        h.stdout
            .contains("m@production     - -> 1     first release"),
        "{h:?}"
    );
}

#[test]
fn a_malformed_spec_reports_every_error_and_exits_2() {
    let p = Proj::new(
        "stages:\n  a:\n    cmd: echo\n    deps: [missing.txt]\n    outz: [x]\n  b:\n    cmd: echo ${nope}\n    deps: [b.out]\n    outs: [a.out]\n  c:\n    cmd: echo\n    deps: [a.out]\n    outs: [b.out]\ngates:\n  - metrics.x >=\n",
    );
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 2, "{o:?}");
    insta::assert_snapshot!(o.stderr);
    let o = p.ferry(&["status"]);
    assert_eq!(o.code, 2);
}

#[test]
fn no_project_and_bad_flags() {
    let t = tempfile::tempdir().unwrap();
    let o: Out = std::process::Command::new(ferry_bin())
        .arg("status")
        .current_dir(t.path())
        .output()
        .unwrap()
        .into();
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("no ferry.yaml in"), "{o:?}");
    let o: Out = std::process::Command::new(ferry_bin())
        .args(["run", "--jobs", "x"])
        .output()
        .unwrap()
        .into();
    assert_eq!(o.code, 2);
    let o: Out = std::process::Command::new(ferry_bin())
        .args(["-C", "/nonexistent-dir", "status"])
        .output()
        .unwrap()
        .into();
    assert_eq!(o.code, 2);
    let p = project();
    let o = p.ferry(&["runs", "show", "zz"]);
    assert_eq!(o.code, 2, "{o:?}");
    p.run_ok();
    let o = p.ferry(&["runs", "show", "zzzz"]);
    assert_eq!(o.code, 2, "{o:?}");
    let o = p.ferry(&["models", "show", "m/9"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("no model version `m/9`"));
    let o = p.ferry(&["models", "alias", "m", "production"]);
    assert_eq!(o.code, 2, "{o:?}");
    // A damaged lock file is a clear error, not a panic.
    p.write("ferry.lock", "schema: 1\nstages: [oops\n");
    let o = p.ferry(&["status"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("ferry.lock is not valid"), "{o:?}");
}

#[test]
fn json_read_commands_have_stable_shapes() {
    let p = project();
    let (code, run) = p.run_json(&[]);
    assert_eq!(code, 0);
    let keys_of =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    // A stage as the run reports it (`ferry run --json`).
    assert_eq!(
        keys_of(&run["stages"][0]),
        [
            "stage",
            "status",
            "reason",
            "wall_ms",
            "user_cpu_ms",
            "sys_cpu_ms",
            "max_rss_bytes",
            "exit_code",
            "attempts",
            "error",
            "log"
        ]
    );
    let st: serde_json::Value =
        serde_json::from_str(&p.ferry(&["status", "--json"]).stdout).unwrap();
    insta::assert_json_snapshot!(st, {".pipeline" => "[pipeline]"}, @r#"
    {
      "pipeline": "[pipeline]",
      "stages": [
        {
          "stage": "gen",
          "action": "up_to_date",
          "reasons": []
        },
        {
          "stage": "train",
          "action": "up_to_date",
          "reasons": []
        }
      ],
      "env": null
    }
    "#);
    let runs: serde_json::Value =
        serde_json::from_str(&p.ferry(&["runs", "list", "--json"]).stdout).unwrap();
    let keys: Vec<&String> = runs[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "run_id",
            "pipeline",
            "status",
            "trigger",
            "started_ms",
            "ended_ms",
            "git_commit",
            "git_dirty",
            "message",
            "noop"
        ]
    );
    let models: serde_json::Value =
        serde_json::from_str(&p.ferry(&["models", "list", "--json"]).stdout).unwrap();
    insta::assert_json_snapshot!(models, {"[].created_ms" => "[ms]"}, @r#"
    [
      {
        "name": "m",
        "created_ms": "[ms]",
        "latest_version": 1,
        "versions": 1,
        "aliases": [
          [
            "candidate",
            1
          ]
        ]
      }
    ]
    "#);
    let id = runs[0]["run_id"].as_str().unwrap();
    let show: serde_json::Value =
        serde_json::from_str(&p.ferry(&["runs", "show", id, "--json"]).stdout).unwrap();
    assert_eq!(show["stages"][0]["stage"], "gen");
    // The same stage as the store keeps it (`ferry runs show --json`).
    assert_eq!(
        keys_of(&show["stages"][0]),
        [
            "stage",
            "position",
            "status",
            "reason",
            "fingerprint",
            "started_ms",
            "ended_ms",
            "wall_ms",
            "user_cpu_ms",
            "sys_cpu_ms",
            "max_rss_bytes",
            "exit_code",
            "attempts",
            "cost"
        ]
    );
    // A stage that ran is charged on what it used (it declares no
    // resources), at the default machine class's prices.
    let cost = &show["stages"][0]["cost"];
    assert_eq!(
        keys_of(cost),
        ["charged", "basis", "requested", "used", "machine"]
    );
    assert_eq!(
        (&cost["basis"], &cost["machine"]),
        (
            &serde_json::json!("used"),
            &serde_json::json!("aws-us-east-1")
        )
    );
    assert_eq!(cost["charged"], cost["used"]);
    assert!(show["stages"][0]["user_cpu_ms"].is_i64());
    assert!(show["stages"][0]["max_rss_bytes"].as_i64().unwrap() > 0);
    assert_eq!(show["metrics"][0]["key"], "accuracy");
}

#[test]
fn logs_show_stage_output() {
    let p = project();
    p.write(
        "ferry.yaml",
        &SPEC.replace(
            "mkdir -p counts out &&",
            "mkdir -p counts out && echo hello-from-gen &&",
        ),
    );
    p.run_ok();
    let runs: serde_json::Value =
        serde_json::from_str(&p.ferry(&["runs", "list", "--json"]).stdout).unwrap();
    let id = runs[0]["run_id"].as_str().unwrap();
    let o = p.ferry(&["logs", &id[..8], "gen"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "hello-from-gen\n");
}

#[test]
fn gc_keeps_what_is_referenced() {
    let p = project();
    p.run_ok();
    p.write("src.txt", "data v2\n");
    p.run_ok();
    // Version 1's model is still referenced by the registry; gc --all drops
    // the run cache, so reverting now runs the stage again. A dry run says
    // what a real one removes and removes nothing.
    let cache = |p: &Proj| walk(&p.path().join(".ferry/cache")).len();
    let before = cache(&p);
    let dry = p.ferry(&["gc", "--all", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stderr.starts_with("would remove "), "{dry:?}");
    assert_eq!(cache(&p), before, "a dry run removed files");
    let o = p.ferry(&["gc", "--all"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        o.stderr.replacen("removed", "would remove", 1),
        dry.stderr,
        "the dry run counted what the real one removed"
    );
    assert!(cache(&p) < before);
    p.write("src.txt", "data v1\n");
    let (_, r) = p.run_json(&[]);
    assert_eq!(
        stage_statuses(&r),
        pairs(&[("gen", "ran"), ("train", "ran")])
    );
}

#[test]
fn init_templates_run_as_written() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("Churn Model");
    std::fs::create_dir(&dir).unwrap();
    let ferry = |args: &[&str]| -> Out {
        std::process::Command::new(ferry_bin())
            .args(args)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
            .into()
    };
    let o = ferry(&["init"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("pipeline and model `churn-model`"),
        "{o:?}"
    );
    let o = ferry(&["init"]);
    assert_eq!(o.code, 2, "refuses to overwrite: {o:?}");
    assert!(o.stderr.contains("`ferry.yaml`, `params.yaml`"), "{o:?}");
    // It runs as written: three stages, the gates, a registered model.
    let o = ferry(&["run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("registered churn-model/1 @candidate"),
        "{o:?}"
    );
    assert!(ferry(&["run"]).stderr.contains("0 ran"));
    let o = ferry(&[
        "init",
        "--template",
        "minimal",
        "--force",
        "--name",
        "hello",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(ferry(&["run"]).code, 0);
    let o = ferry(&["init", "--template", "nope"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("templates: `tabular`"), "{o:?}");
}

#[test]
fn schema_is_json() {
    let o: Out = std::process::Command::new(ferry_bin())
        .arg("schema")
        .output()
        .unwrap()
        .into();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["title"], "ferry pipeline");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let p = project();
    p.run_ok();
    for _ in 0..30 {
        p.run_ok();
    }
    let mut child = p
        .cmd(&["runs", "list", "--limit", "1000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A registered ONNX model gets an `MLmodel` beside it with the signature
/// its `register:` declares, here taken from a table of the project.
#[test]
fn registered_onnx_models_carry_an_mlmodel_with_their_signature() {
    let spec = |sig: &str| {
        format!(
            r#"
stages:
  train:
    cmd: cat train.csv > model.onnx
    deps: [train.csv]
    outs: [model.onnx]
register:
  model: m
  artifact: model.onnx
  signature: {sig}
"#
        )
    };
    let p = Proj::new(&spec("{from: train.csv, exclude: [label]}"));
    p.write(
        "train.csv",
        "width,height,kind,label\n1.5,2,a,x\n2.5,3,b,y\n",
    );
    p.run_ok();
    let mlmodel = std::fs::read_dir(p.path().join(".ferry/artifacts"))
        .unwrap()
        .flat_map(|e| walk(&e.unwrap().path()))
        .find(|f| f.ends_with("m/MLmodel"))
        .expect("an MLmodel beside the model");
    let text = std::fs::read_to_string(&mlmodel).unwrap();
    let m = ferry_mlmodel::parse(&text).unwrap();
    assert_eq!(m.flavors, ["onnx", "python_function"]);
    assert_eq!(m.onnx_file.as_deref(), Some("model.onnx"));
    let cols: Vec<(String, &str)> = m
        .signature
        .unwrap()
        .inputs
        .iter()
        .map(|c| (c.name.clone(), c.ty.name()))
        .collect();
    assert_eq!(
        cols,
        [
            ("width".to_owned(), "double"),
            ("height".to_owned(), "long"),
            ("kind".to_owned(), "string")
        ]
    );
    // A column to exclude that the table does not have is a clear error.
    let p = Proj::new(&spec("{from: train.csv, exclude: [nope]}"));
    p.write("train.csv", "a,b\n1,2\n");
    let o = p.ferry(&["run"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("register.signature.from `train.csv`: it has no column `nope` to exclude"),
        "{o:?}"
    );
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    if p.is_dir() {
        std::fs::read_dir(p)
            .unwrap()
            .flat_map(|e| walk(&e.unwrap().path()))
            .collect()
    } else {
        vec![p.to_owned()]
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    let p = Proj::new("stages: {}\n");
    for shell in ["bash", "zsh", "fish"] {
        let o = p.ferry(&["completions", shell]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(
            o.stdout.contains("deploy") && o.stdout.contains("runtime"),
            "{shell}"
        );
    }
    let o = p.ferry(&["completions", "tcsh"]);
    assert_eq!(o.code, 2, "{o:?}");
}

/// A run deleted through the MLflow API (the store's soft delete) is no
/// longer listed, not shown as `succeeded`; `runs show` still finds it.
#[test]
fn runs_deleted_through_the_mlflow_api_leave_the_list() {
    let (p, ids) = two_runs();
    let gone = ids[1].clone();
    {
        let store =
            ferry_metadata::BlockingStore::open(&ferry_runner::store_url(p.path())).unwrap();
        let id = gone.clone();
        store
            .call(|s| Box::pin(async move { s.set_run_stage(&id, true).await }))
            .unwrap();
    }
    assert_eq!(listed_runs(&p), [ids[0].clone()]);
    let text = p.ferry(&["runs", "list"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(!text.stdout.contains(&gone[..8]), "{text:?}");
    assert!(text.stdout.contains(&ids[0][..8]), "{text:?}");
    let shown = p.ferry(&["runs", "show", &gone]);
    assert_eq!(shown.code, 0, "{shown:?}");
}

#[test]
fn latest_and_latest_n_name_recent_runs() {
    let (p, ids) = two_runs();
    let id = |i: usize| ids[i].clone();
    for (name, want) in [("latest", id(0)), ("latest~0", id(0)), ("latest~1", id(1))] {
        let o = p.ferry(&["runs", "show", name, "--json"]);
        assert_eq!(o.code, 0, "{name}: {o:?}");
        let shown: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(shown["run_id"], want.as_str(), "{name}");
    }
    assert_eq!(p.ferry(&["logs", "latest~1", "gen"]).code, 0);
    let o = p.ferry(&["runs", "show", "latest~5"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("there are only 2 runs"), "{o:?}");
    let o = p.ferry(&["logs", "latest~x"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("use `latest`, `latest~N`"), "{o:?}");
}

/// The run ids `ferry runs list` shows, newest first.
fn listed_runs(p: &Proj) -> Vec<String> {
    let runs: serde_json::Value =
        serde_json::from_str(&p.ferry(&["runs", "list", "--json"]).stdout).unwrap();
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A project run twice (the second with another accuracy), and its two run
/// ids, newest first.
fn two_runs() -> (Proj, Vec<String>) {
    let p = project();
    p.run_ok();
    p.write("acc.txt", "0.96\n");
    p.run_ok();
    let ids = listed_runs(&p);
    assert_eq!(ids.len(), 2);
    (p, ids)
}

#[test]
fn lineage_goes_from_a_version_to_its_inputs_and_back() {
    let p = project();
    p.run_ok();
    p.write("src.txt", "data v2\n");
    p.run_ok();
    let o = p.ferry(&["lineage", "m/1", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let src_v1 = v["data"]["src.txt"].as_str().unwrap().to_owned();
    assert_eq!(v["artifact"]["path"], "model.bin");
    assert!(v["stages"].as_array().unwrap().iter().any(|s| s == "gen"));
    let o = p.ferry(&["lineage", "m"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("m/2 @candidate  "), "{o:?}");
    assert!(o.stdout.contains("src.txt"), "{o:?}");
    // The reverse: every version built from the file, or from one content of it.
    let o = p.ferry(&["lineage", "--data", "src.txt", "--json"]);
    let found: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(2), "{o:?}");
    let o = p.ferry(&[
        "lineage",
        "--data",
        &format!("src.txt@{}", &src_v1[..10]),
        "--json",
    ]);
    let found: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(found[0]["version"], 1, "{o:?}");
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let o = p.ferry(&["lineage", "m/9"]);
    assert_eq!(o.code, 2, "{o:?}");
}

#[test]
fn reproduce_rebuilds_a_version_from_its_commit_and_says_what_differs() {
    let p = project();
    p.write(
        ".gitignore",
        ".ferry/\ncounts/\nout/\nmodel.bin\nmetrics.json\n",
    );
    git(p.path(), &["init", "-q"]);
    git(p.path(), &["add", "."]);
    git(p.path(), &["commit", "-qm", "v1"]);
    p.run_ok();
    // The work tree moves on; the recorded commit is what is rebuilt.
    p.write("train.sh", "code v2\n");
    let o = p.ferry(&["reproduce", "m/1", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["identical"], true, "{o:?}");
    assert_eq!(v["produced_digest"], v["recorded_digest"]);
    let again = p.ferry(&["reproduce", "m/1"]);
    assert_eq!(
        again.code, 2,
        "an existing folder is not overwritten: {again:?}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let into = elsewhere.path().join("m1");
    let o = p.ferry(&["reproduce", "m/1", "--into", into.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.starts_with("identical: m/1 rebuilt from "),
        "{o:?}"
    );
    let o = p.ferry(&["reproduce", "m"]);
    assert_eq!(o.code, 2, "{o:?}");
}

#[test]
fn reproduce_names_a_stage_that_is_not_deterministic() {
    let p = Proj::new(
        "stages:\n  train:\n    cmd: date +%s%N > model.bin\n    outs: [model.bin]\nregister:\n  model: m\n  artifact: model.bin\n",
    );
    p.write(".gitignore", ".ferry/\nmodel.bin\n");
    git(p.path(), &["init", "-q"]);
    git(p.path(), &["add", "."]);
    git(p.path(), &["commit", "-qm", "v1"]);
    p.run_ok();
    let o = p.ferry(&["reproduce", "m/1"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stdout.starts_with("different: m/1 rebuilt to "), "{o:?}");
    assert!(o.stdout.contains("a stage is not deterministic"), "{o:?}");
}
