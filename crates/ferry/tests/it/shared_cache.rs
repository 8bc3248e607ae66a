//! Remotes through the CLI, as a team lives them: `ferry remote add` in one
//! clone, `push`; a second clone with the committed files only `pull`s and
//! its `run` runs nothing; a changed param reruns only its stage.

use crate::support::*;

const SPEC: &str = r#"# two stages
stages:
  prepare:
    cmd: mkdir -p work/rows && for i in 1 2 3; do echo "row $i ${seed}" > work/rows/$i.txt; done && echo x >> prepare.count
    params: [seed]
    outs: [work/rows]
  train:
    cmd: cat work/rows/*.txt > work/model.txt && echo "${lr}" >> work/model.txt && echo x >> train.count
    deps: [work/rows]
    params: [lr]
    outs: [work/model.txt]
"#;

/// A clone of `from` with only what git would hold: the spec, params and lock.
fn clone_committed(from: &Proj) -> Proj {
    let to = Proj::new(&from.read("ferry.yaml"));
    for f in ["params.yaml", "ferry.lock"] {
        to.write(f, &from.read(f));
    }
    to
}

#[test]
fn a_second_clone_pulls_and_runs_nothing_then_reruns_only_what_changed() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().join("cache").display());
    let a = Proj::new(SPEC);
    a.write("params.yaml", "seed: 1\nlr: 0.1\n");
    a.run_ok();
    let o = a.ferry(&["remote", "add", "origin", &url, "--default"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        a.read("ferry.yaml").starts_with("# two stages\n"),
        "the rest of the file is kept"
    );
    let o = a.ferry(&["push", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    // 3 rows + a manifest + the model + 2 run entries.
    assert_eq!(v["summary"]["transferred"], 7, "{o:?}");
    // Nothing new: nothing sent.
    let o = a.ferry(&["push", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        (
            v["summary"]["transferred"].as_u64(),
            v["summary"]["up_to_date"].as_u64()
        ),
        (Some(0), Some(7))
    );

    let b = clone_committed(&a);
    let o = b.ferry(&["status", "--remote"]);
    assert_eq!(o.code, 0, "{o:?}");
    // The folder counts as its manifest until that is fetched.
    assert!(o.stdout.contains("4 to fetch"), "{o:?}");
    let o = b.ferry(&["pull"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(b.read("work/model.txt"), a.read("work/model.txt"));
    let (code, report) = b.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        stage_statuses(&report),
        pairs(&[("prepare", "up_to_date"), ("train", "up_to_date")])
    );
    assert_eq!(
        (counter(&b, "prepare.count"), counter(&b, "train.count")),
        (0, 0)
    );

    b.write("params.yaml", "seed: 1\nlr: 0.2\n");
    let (code, report) = b.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        stage_statuses(&report),
        pairs(&[("prepare", "up_to_date"), ("train", "ran")])
    );
}

#[test]
fn remotes_are_listed_removed_and_refused_with_reasons() {
    let p = Proj::new(SPEC);
    p.write("params.yaml", "seed: 1\nlr: 0.1\n");
    let o = p.ferry(&["push"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("ferry remote add"), "{o:?}");
    let o = p.ferry(&["remote", "add", "origin", "ftp://x/y"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("unsupported scheme"), "{o:?}");
    let o = p.ferry(&[
        "remote",
        "add",
        "origin",
        "s3://bucket/iris",
        "--endpoint",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = p.ferry(&["remote", "add", "backup", "../backup", "--default"]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = p.ferry(&["remote", "add", "origin", "s3://other"]);
    assert_eq!(o.code, 2, "{o:?}");
    p.write(".ferry/remotes.yaml", "origin:\n  region: eu-west-1\n");
    let o = p.ferry(&["remote", "list", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        v[0]["options"]["region"], "eu-west-1",
        "local settings laid over"
    );
    assert_eq!(v[1]["default"], true);
    p.write(
        ".ferry/remotes.yaml",
        "origin:\n  secret_access_key: AKIA\n",
    );
    let o = p.ferry(&["remote", "list"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains(".ferry/remotes.yaml:2:3"), "{o:?}");
    assert!(
        !o.stderr.contains("AKIA"),
        "a secret is never echoed: {o:?}"
    );
    let o = p.ferry(&["remote", "remove", "origin"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!p.read("ferry.yaml").contains("s3://bucket"));
    assert!(p.read("ferry.yaml").contains("backup"));
}

#[test]
fn a_run_restores_from_the_remote_run_cache_what_another_machine_pushed() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().join("cache").display());
    let a = Proj::new(SPEC);
    a.write("params.yaml", "seed: 1\nlr: 0.1\n");
    assert_eq!(
        a.ferry(&["remote", "add", "origin", &url, "--default"])
            .code,
        0
    );
    let o = a.ferry(&["run", "--push"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("pushed train to remote `origin`"),
        "{o:?}"
    );

    // A fresh machine (CI) with the committed files runs nothing.
    let b = clone_committed(&a);
    let o = b.ferry(&["run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("from remote `origin`"), "{o:?}");
    assert_eq!(
        (counter(&b, "prepare.count"), counter(&b, "train.count")),
        (0, 0)
    );
    assert_eq!(b.read("work/model.txt"), a.read("work/model.txt"));

    // What changed runs; what did not comes from the remote.
    let c = clone_committed(&a);
    c.write("params.yaml", "seed: 1\nlr: 0.3\n");
    let (code, report) = c.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        stage_statuses(&report),
        pairs(&[("prepare", "restored"), ("train", "ran")])
    );

    // --no-remote looks nothing up.
    let d = clone_committed(&a);
    let (_, report) = d.run_json(&["--no-remote"]);
    assert_eq!(
        stage_statuses(&report),
        pairs(&[("prepare", "ran"), ("train", "ran")])
    );
}

#[test]
fn an_unreachable_remote_warns_and_the_stages_run() {
    let a = Proj::new(SPEC);
    a.write("params.yaml", "seed: 1\nlr: 0.1\n");
    // A file where the remote's folder should be: it cannot be opened.
    a.write("not-a-folder", "x");
    assert_eq!(
        a.ferry(&["remote", "add", "origin", "not-a-folder", "--default"])
            .code,
        0
    );
    let o = a.ferry(&["run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("warning prepare: the remote's run cache"),
        "{o:?}"
    );
    assert_eq!(counter(&a, "prepare.count"), 1);
}

const DATA_SPEC: &str = r#"stages:
  count:
    cmd: mkdir -p work && cat raw/*.csv | wc -l > work/rows.txt && echo x >> count.count
    deps: [raw]
    outs: [work/rows.txt]
"#;

#[test]
fn data_no_stage_makes_is_added_pushed_and_pulled_by_its_pointer() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().join("cache").display());
    let a = Proj::new(DATA_SPEC);
    a.write("raw/a.csv", "1\n2\n");
    a.write("raw/b.csv", "3\n");
    let o = a.ferry(&["add", "raw"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("added raw (2 files, "), "{o:?}");
    assert!(a.read("raw.ferry").contains("path: raw\n"));
    assert!(a.read("raw.ferry").contains("files: 2\n"));
    assert_eq!(a.read(".gitignore"), "/raw\n");
    // The cache the data is in stays out of git too, without `ferry init`.
    assert!(a.read(".ferry/.gitignore").ends_with("\n*\n"));
    // Adding again changes nothing, and the ignore entry is not repeated.
    assert_eq!(a.ferry(&["add", "raw"]).code, 0);
    assert_eq!(a.read(".gitignore"), "/raw\n");
    a.run_ok();
    assert!(a.status().contains("everything is up to date"));

    a.write("raw/b.csv", "3\n4\n");
    let st = a.status();
    assert!(
        st.contains("raw    data changed: `ferry add` records it"),
        "{st}"
    );
    assert_eq!(a.ferry(&["add", "raw"]).code, 0);
    a.run_ok();

    assert_eq!(
        a.ferry(&["remote", "add", "origin", &url, "--default"])
            .code,
        0
    );
    let o = a.ferry(&["push"]);
    assert_eq!(o.code, 0, "{o:?}");

    // A clone has the spec, the lock and the pointer; pull brings the data.
    let b = Proj::new(&a.read("ferry.yaml"));
    b.write("ferry.lock", &a.read("ferry.lock"));
    b.write("raw.ferry", &a.read("raw.ferry"));
    let st = b.status();
    assert!(
        st.contains("raw    data missing: `ferry checkout` brings it back"),
        "{st}"
    );
    let o = b.ferry(&["pull"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(b.read("raw/b.csv"), "3\n4\n");
    let (_, report) = b.run_json(&[]);
    assert_eq!(stage_statuses(&report), pairs(&[("count", "up_to_date")]));

    // A stage's out is versioned by ferry.lock, not by a pointer.
    let o = a.ferry(&["add", "work/rows.txt"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("it is an out of stage `count`"), "{o:?}");
    // gc keeps what a pointer names.
    assert_eq!(a.ferry(&["gc", "--all"]).code, 0);
    std::fs::remove_dir_all(a.path().join("raw")).unwrap();
    let o = a.ferry(&["checkout"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(a.read("raw/a.csv"), "1\n2\n");
}

/// Sets every file under `dir` two days back, past gc's grace period.
fn age(dir: &std::path::Path) {
    let o = std::process::Command::new("find")
        .arg(dir)
        .args([
            "-type",
            "f",
            "-exec",
            "touch",
            "-d",
            "2 days ago",
            "{}",
            "+",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

fn gc_json(p: &Proj, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["gc", "--remote", "--json"];
    args.extend_from_slice(extra);
    let o = p.ferry(&args);
    assert_eq!(o.code, 0, "{o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"))
}

#[test]
fn push_auto_sends_what_runs_and_gc_keeps_what_the_chosen_history_locks() {
    let shared = tempfile::tempdir().unwrap();
    let cache = shared.path().join("cache");
    let url = format!("file://{}", cache.display());
    let a = Proj::new(SPEC);
    a.write(".gitignore", "/work\n*.count\n");
    a.write("params.yaml", "seed: 1\nlr: 0.1\n");
    git(a.path(), &["init", "-q"]);
    let o = a.ferry(&[
        "remote",
        "add",
        "origin",
        &url,
        "--default",
        "--push",
        "auto",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(a.read("ferry.yaml").contains("push: auto"));
    let o = a.ferry(&["remote", "add", "other", &url, "--push", "sometimes"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("`push`: `sometimes` is not auto"),
        "{o:?}"
    );

    // Three versions of the model, each committed; `push: auto` sends each.
    for (i, lr) in ["0.1", "0.2", "0.3"].iter().enumerate() {
        a.write("params.yaml", &format!("seed: 1\nlr: {lr}\n"));
        let o = a.ferry(&["run"]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(
            o.stderr.contains("pushed train to remote `origin`"),
            "{o:?}"
        );
        git(a.path(), &["add", "-A"]);
        git(a.path(), &["commit", "-qm", lr]);
        if i == 0 {
            git(a.path(), &["tag", "v1"]);
        }
    }
    // --no-push sends nothing.
    a.write("params.yaml", "seed: 1\nlr: 0.4\n");
    let o = a.ferry(&["run", "--no-push"]);
    assert!(!o.stderr.contains("pushed"), "{o:?}");
    a.write("params.yaml", "seed: 1\nlr: 0.3\n");
    a.run_ok();

    // The local run cache keeps only what the lock names now, so the
    // remote's entries for lr 0.1 and 0.2 are known only from history.
    assert_eq!(a.ferry(&["gc", "--all"]).code, 0);
    age(&cache);
    // Each older model is its file and train's run entry.
    let work_tree = gc_json(&a, &[]);
    assert_eq!(work_tree["removed"], 4, "{work_tree}");
    assert_eq!(work_tree["dry_run"], true);
    assert_eq!(gc_json(&a, &["--rev", "v1"])["removed"], 2);
    assert_eq!(gc_json(&a, &["--all-commits"])["removed"], 0);
    assert_eq!(gc_json(&a, &["--all-tags"])["removed"], 2);
    let o = a.ferry(&["gc", "--remote", "--rev", "no-such-branch"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("`no-such-branch` names no commit"),
        "{o:?}"
    );

    let done = gc_json(&a, &["--rev", "v1", "--yes"]);
    assert_eq!(
        (done["removed"].as_u64(), done["dry_run"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(gc_json(&a, &["--rev", "v1"])["removed"], 0);

    // What v1 locked still comes back in a clone checked out there.
    let b = Proj::new(SPEC);
    std::fs::remove_file(b.path().join("ferry.yaml")).unwrap();
    git(b.path(), &["init", "-q"]);
    git(b.path(), &["pull", "-q", a.path().to_str().unwrap(), "v1"]);
    let o = b.ferry(&["pull"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        b.read("work/model.txt").ends_with("0.1\n"),
        "{}",
        b.read("work/model.txt")
    );
}

#[test]
fn a_project_with_no_stages_versions_data_as_dvc_add_does() {
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().join("cache");
    let only_remotes = format!(
        "remotes:\n  origin:\n    url: {}\n    default: true\n",
        remote.display()
    );
    for spec in ["", "stages: {}\n", "name: data\n", only_remotes.as_str()] {
        let a = Proj::new(spec);
        a.write("raw/a.csv", "1\n2\n");
        let o = a.ferry(&["add", "raw"]);
        assert_eq!(o.code, 0, "{spec:?}: {o:?}");
        assert!(a.status().contains("everything is up to date"), "{spec:?}");
        let o = a.ferry(&["run"]);
        assert_eq!(o.code, 0, "{spec:?}: {o:?}");
        assert!(
            o.stderr
                .contains("nothing to run: ferry.yaml has no stages"),
            "{spec:?}: {o:?}"
        );
        a.write("raw/a.csv", "1\n");
        let st = a.status();
        assert!(
            st.contains("raw  data changed: `ferry add` records it"),
            "{spec:?}: {st}"
        );
        assert_eq!(a.ferry(&["add", "raw"]).code, 0);
        if spec != only_remotes {
            let url = remote.display().to_string();
            let _ = a.ferry(&["remote", "add", "origin", &url, "--default"]);
        }
        let o = a.ferry(&["push"]);
        assert_eq!(o.code, 0, "{spec:?}: {o:?}");
        let b = Proj::new(&a.read("ferry.yaml"));
        b.write("raw.ferry", &a.read("raw.ferry"));
        let o = b.ferry(&["pull"]);
        assert_eq!(o.code, 0, "{spec:?}: {o:?}");
        assert_eq!(b.read("raw/a.csv"), "1\n");
        std::fs::remove_dir_all(b.path().join("raw")).unwrap();
        let o = b.ferry(&["checkout"]);
        assert_eq!(o.code, 0, "{spec:?}: {o:?}");
        // Data no stage makes is named alone, without an empty `()`.
        assert_eq!(o.stderr, "restored  raw\n", "{spec:?}");
    }
}

fn links(p: &Proj, rel: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p.path().join(rel)).unwrap().nlink()
}

#[test]
fn a_pull_with_hard_links_shares_the_cache_and_a_rerun_never_writes_through_it() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().join("cache").display());
    let a = Proj::new(SPEC);
    a.write("params.yaml", "seed: 1\nlr: 0.1\n");
    a.run_ok();
    assert_eq!(
        a.ferry(&["remote", "add", "origin", &url, "--default"])
            .code,
        0
    );
    assert_eq!(a.ferry(&["push"]).code, 0);

    let b = clone_committed(&a);
    let o = b.ferry(&["pull", "--link", "hardlink"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(b.read("work/model.txt"), a.read("work/model.txt"));
    assert_eq!(
        (links(&b, "work/model.txt"), links(&b, "work/rows/1.txt")),
        (2, 2)
    );
    let model = std::fs::metadata(b.path().join("work/model.txt")).unwrap();
    assert!(model.permissions().readonly(), "a linked file is read-only");
    let (_, report) = b.run_json(&[]);
    assert_eq!(
        stage_statuses(&report),
        pairs(&[("prepare", "up_to_date"), ("train", "up_to_date")])
    );

    // A rerun writes a new file: the cached model (still linked from
    // nowhere else) keeps its bytes, and checking the old lock out again
    // gives them back.
    let lock = b.read("ferry.lock");
    b.write("params.yaml", "seed: 1\nlr: 0.2\n");
    b.run_ok();
    assert!(b.read("work/model.txt").ends_with("0.2\n"));
    assert_eq!(links(&b, "work/model.txt"), 1);
    b.write("params.yaml", "seed: 1\nlr: 0.1\n");
    b.write("ferry.lock", &lock);
    let o = b.ferry(&["checkout", "--link", "copy"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(b.read("work/model.txt"), a.read("work/model.txt"));
    assert_eq!(links(&b, "work/model.txt"), 1, "--link copy copies");

    // ferry.yaml's `cache.link` is the default of every restore.
    let spec = format!("cache:\n  link: hardlink\n{}", b.read("ferry.yaml"));
    b.write("ferry.yaml", &spec);
    std::fs::remove_dir_all(b.path().join("work")).unwrap();
    assert_eq!(b.ferry(&["checkout"]).code, 0);
    assert_eq!(links(&b, "work/model.txt"), 2);
}

#[test]
fn a_link_mode_that_does_not_exist_is_refused_where_it_is_written() {
    let p = Proj::new(&format!("cache:\n  link: symlink\n{SPEC}"));
    let o = p.ferry(&["status"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains(
            "ferry.yaml:2:9: cache.link: expected one of copy, reflink, hardlink, found `symlink`"
        ),
        "{o:?}"
    );
    let o = p.ferry(&["checkout", "--link", "symlink"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr
            .contains("invalid value 'symlink' for '--link <MODE>'"),
        "{o:?}"
    );
}
