//! The real Iris example with scikit-learn, and Python environments. These
//! need `python3` and network access to the package index (or a warm uv
//! cache); CI installs uv and provides both.

use crate::support::*;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n == ".ferry" || n == "work" || n == "ferry.lock" || n == "__pycache__" {
            continue;
        }
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn iris_example_end_to_end() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/iris");
    let p = Proj::new("");
    copy_dir(&example, p.path());

    // First run: the data check, environment, three stages, gates, a
    // registered version.
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        stage_statuses(&r),
        pairs(&[
            ("validate", "ran"),
            ("prepare", "ran"),
            ("train", "ran"),
            ("evaluate", "ran")
        ])
    );
    assert_eq!(r["gates"][0]["name"], "check validate");
    assert_eq!(r["metrics"]["checks.validate.passed"], 1.0);
    assert!(r["metrics"]["accuracy"].as_f64().unwrap() >= 0.9);
    assert_eq!(r["registered"]["model"], "iris");
    assert_eq!(r["registered"]["version"], 1);
    let lineage = &r["registered"]["lineage"];
    assert!(lineage["data"]["data/iris.csv"].is_string(), "{lineage}");
    assert!(
        lineage["environment"]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("scikit-learn=="))
    );
    assert_eq!(
        r["registered"]["env_fingerprint"],
        lineage["environment"]["fingerprint"]
    );

    // Nothing changed: nothing runs.
    let (_, r) = p.run_json(&[]);
    assert_eq!(
        stage_statuses(&r),
        pairs(&[
            ("validate", "up_to_date"),
            ("prepare", "up_to_date"),
            ("train", "up_to_date"),
            ("evaluate", "up_to_date")
        ])
    );

    // A comment in train.py: train reruns, the model bytes are identical
    // (the export is deterministic), so evaluate stays up to date.
    let train = p.read("train.py");
    p.write("train.py", &format!("{train}\n# a comment\n"));
    let (_, r) = p.run_json(&[]);
    assert_eq!(
        stage_statuses(&r),
        pairs(&[
            ("validate", "up_to_date"),
            ("prepare", "up_to_date"),
            ("train", "ran"),
            ("evaluate", "up_to_date")
        ])
    );
    assert_eq!(r["model_unchanged"], "iris/1");

    // A bad batch: a negative width and an unknown species. The check
    // names both, the run stops with exit 3 and registers nothing.
    let good = p.read("data/iris.csv");
    p.write(
        "data/iris.csv",
        &format!("{good}5.0,3.4,1.5,-4.0,setosa\n6.7,3.0,5.2,2.3,virginca\n"),
    );
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 3, "{r}");
    assert_eq!(r["gates"][0]["passed"], false);
    assert!(r["registered"].is_null());
    let report: serde_json::Value = serde_json::from_str(&p.read("work/validate.json")).unwrap();
    let failed: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["success"] == false)
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    // (The -4.0 also pushes the standard deviation out of its range.)
    assert_eq!(
        failed,
        ["petal_width.between", "petal_width.stdev", "species.in_set"],
        "{report}"
    );
    assert_eq!(r["stages"][1]["status"], "skipped");
    assert_eq!(r["stages"][1]["reason"], "check `validate` failed");
    assert!(p.read("work/validate.html").contains("virginca"));

    // New, good data: everything downstream reruns and a new version is registered.
    let mut data = good;
    data.push_str("5.0,3.4,1.5,0.2,setosa\n6.7,3.0,5.2,2.3,virginica\n");
    p.write("data/iris.csv", &data);
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        stage_statuses(&r),
        pairs(&[
            ("validate", "ran"),
            ("prepare", "ran"),
            ("train", "ran"),
            ("evaluate", "ran")
        ])
    );
    assert_eq!(r["registered"]["version"], 2);

    // A param that ruins accuracy: the gate stops registration with exit 3.
    p.write(
        "params.yaml",
        &p.read("params.yaml").replace("C: 1.0", "C: 0.001"),
    );
    assert!(
        p.status()
            .contains("train     will run: command changed, param train.C 1.0 -> 0.001")
    );
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 3, "{r}");
    assert_eq!(r["status"], "gate_failed");
    assert!(r["registered"].is_null());
    assert!(
        r["gates"][1]["message"]
            .as_str()
            .unwrap()
            .contains(">= 0.9")
    );

    // Revert: the old outputs come back from the cache without running.
    p.write(
        "params.yaml",
        &p.read("params.yaml").replace("C: 0.001", "C: 1.0"),
    );
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        stage_statuses(&r),
        pairs(&[
            ("validate", "up_to_date"),
            ("prepare", "up_to_date"),
            ("train", "restored"),
            ("evaluate", "restored")
        ])
    );
    assert_eq!(r["model_unchanged"], "iris/2");
}

#[test]
fn a_changed_pin_reruns_what_runs_in_the_environment() {
    let p = Proj::new(
        "env:\n  python:\n    requirements: requirements.txt\nstages:\n  v:\n    cmd: python -c 'import six; print(six.__version__)' > v.txt\n    outs: [v.txt]\n",
    );
    p.write("requirements.txt", "six==1.16.0\n");
    assert!(
        p.status()
            .contains("v  will run: environment not built yet")
    );
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(p.read("v.txt"), "1.16.0\n");
    assert!(p.status().contains("v  up to date"));
    // A comment does not change the resolved packages: the environment is
    // rebuilt (new requirements file) but its fingerprint is the same.
    p.write("requirements.txt", "# pinned\nsix==1.16.0\n");
    let (_, r) = p.run_json(&[]);
    assert_eq!(stage_statuses(&r), pairs(&[("v", "up_to_date")]));
    // A new pin: the stage reruns, and says why.
    p.write("requirements.txt", "six==1.17.0\n");
    let (_, r) = p.run_json(&[]);
    assert_eq!(stage_statuses(&r), pairs(&[("v", "ran")]));
    assert_eq!(r["stages"][0]["reason"], "environment changed");
    assert_eq!(p.read("v.txt"), "1.17.0\n");
}

#[test]
fn environments_build_with_venv_and_pip_too() {
    let p = Proj::new(
        r#"
env:
  python:
    requirements: requirements.txt
stages:
  v:
    cmd: python -c 'import six, sys; print(six.__version__, ".ferry/envs/" in sys.prefix)' > v.txt
    outs: [v.txt]
"#,
    );
    p.write("requirements.txt", "six==1.16.0\n");
    let o: Out = p
        .cmd(&["run", "--json"])
        .env("FERRY_ENV_TOOL", "pip")
        .output()
        .unwrap()
        .into();
    assert_eq!(o.code, 0, "{o:?}");
    let r: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(stage_statuses(&r), pairs(&[("v", "ran")]));
    assert_eq!(p.read("v.txt"), "1.16.0 True\n");
    let marker = std::fs::read_dir(p.path().join(".ferry/envs"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join("ferry-env.json").exists())
        .expect("a built environment");
    let env: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(marker.path().join("ferry-env.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(env["tool"], "pip");
    assert!(
        env["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "six==1.16.0"),
        "{env}"
    );
}
