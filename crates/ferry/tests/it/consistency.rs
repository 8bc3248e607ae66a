//! Issue 13: one way to name where ferry reads and writes, one way to print
//! a value, a header on every table, one shape per answer.

use crate::support::*;

/// `ferry models history` is a table with a header.
#[test]
fn models_history_has_a_header() {
    let p = crate::deploy::two_versions();
    for (model, alias) in [
        ("m/2", "staging"),
        ("m/2", "production"),
        ("m@staging", "production"),
        ("m/1", "production"),
        ("m/1", "canary"),
    ] {
        let o = p.ferry(&["models", "alias", model, alias]);
        assert_eq!(o.code, 0, "{o:?}");
    }
    let h = p.ferry(&["models", "history", "m"]);
    let lines: Vec<String> = h
        .stdout
        .lines()
        .skip(1)
        .map(|l| format!("[time]{}", &l[19..]))
        .collect();
    assert!(
        h.stdout
            .starts_with("CHANGED (UTC)        ALIAS         FROM    TO    REASON\n"),
        "{h:?}"
    );
    insta::assert_snapshot!(lines.join("\n"), @r"
    [time]  m@candidate      - -> 1     registered by a pipeline run
    [time]  m@production     - -> 1
    [time]  m@candidate      1 -> 2     registered by a pipeline run
    [time]  m@staging        - -> 2
    [time]  m@production     1 -> 2
    [time]  m@production     2 -> 2
    [time]  m@production     2 -> 1
    [time]  m@canary         - -> 1
    ");
}

fn json(o: &Out) -> serde_json::Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"))
}

/// `ferry models alias` prints one shape whether the alias is new, moved or
/// already there; `--json` the same fields.
#[test]
fn models_alias_prints_one_shape() {
    let p = crate::deploy::two_versions();
    let alias = |args: &[&str]| {
        let o = p.ferry(args);
        assert_eq!(o.code, 0, "{args:?}: {o:?}");
        o
    };
    assert_eq!(
        alias(&["models", "alias", "m/2", "staging"]).stderr,
        "staging: m/2 (new)\n"
    );
    assert_eq!(
        alias(&["models", "alias", "m/2", "production"]).stderr,
        "production: m/2 (was m/1)\n"
    );
    assert_eq!(
        alias(&["models", "alias", "m@staging", "production"]).stderr,
        "production: m/2 (unchanged)\n"
    );
    let o = alias(&["models", "alias", "m/1", "production", "--json"]);
    assert_eq!(
        json(&o),
        serde_json::json!({"model": "m", "alias": "production", "version": 1, "previous": 2})
    );
    let o = alias(&["models", "alias", "m/1", "canary", "--json"]);
    assert_eq!(json(&o)["previous"], serde_json::Value::Null);
}

/// The lines of section `name` (`params`, `metrics`) of `runs show` or
/// `models show`.
fn section(stdout: &str, name: &str) -> String {
    stdout
        .lines()
        .skip_while(|l| *l != name)
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A param or metric prints the same in `ferry runs show` and `ferry models
/// show`: text without quotes, `1` for 1.0, a true metric as the 1 the run
/// recorded.
#[test]
fn a_value_prints_the_same_in_runs_and_models() {
    let p = Proj::new(
        r#"
stages:
  train:
    cmd: >-
      echo "${name} ${lr} ${flag} ${epochs}" > model.bin &&
      printf '{"accuracy": 1.0, "loss": 0.25, "converged": true}' > metrics.json
    params: [name, lr, flag, epochs]
    outs: [model.bin]
    metrics: metrics.json
register:
  model: m
  artifact: model.bin
"#,
    );
    p.write(
        "params.yaml",
        "name: small net\nlr: 1.0\nflag: true\nepochs: 3\n",
    );
    p.run_ok();
    let run = p.ferry(&["runs", "show", "latest"]);
    assert_eq!(run.code, 0, "{run:?}");
    let model = p.ferry(&["models", "show", "m/1"]);
    assert_eq!(model.code, 0, "{model:?}");
    for name in ["params", "metrics"] {
        assert_eq!(
            section(&run.stdout, name),
            section(&model.stdout, name),
            "{name}: {run:?}\n{model:?}"
        );
    }
    insta::assert_snapshot!(section(&run.stdout, "params") + &section(&run.stdout, "metrics"), @r"
    epochs = 3
    flag = true
    lr = 1
    name = small net
    accuracy = 1
    converged = 1
    loss = 0.25
    ");
}

fn store_of(p: &Proj) -> String {
    format!("sqlite://{}", p.path().join(".ferry/ferry.db").display())
}

fn reject(p: &Proj, version: i64, why: &'static str) {
    let store = ferry_metadata::BlockingStore::open(&store_of(p)).unwrap();
    store
        .call(|s| {
            Box::pin(async move {
                s.set_version_tag("m", version, ferry_metadata::REJECTED_TAG, why)
                    .await
            })
        })
        .unwrap();
}

/// `ferry models show m` says which version it picked and why, and never
/// picks a rejected one; `ferry models versions` shows them rejected.
#[test]
fn a_bare_model_name_picks_the_newest_version_not_rejected() {
    let p = crate::deploy::two_versions();
    let o = p.ferry(&["models", "show", "m"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stderr, "m/2: the latest version\n");
    assert!(o.stdout.starts_with("model m/2\n"), "{o:?}");

    reject(&p, 2, "looks off");
    let o = p.ferry(&["models", "show", "m", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        o.stderr,
        "m/1: the latest version that is not rejected; skipped m/2 (rejected: looks off)\n"
    );
    assert_eq!(json(&o)["version"], 1);
    let vs = p.ferry(&["models", "versions", "m"]);
    assert!(
        vs.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("2 ") && l.ends_with("(rejected: looks off)")),
        "{vs:?}"
    );
    // A rejected version is still there when named.
    assert_eq!(p.ferry(&["models", "show", "m/2"]).code, 0);

    reject(&p, 1, "too slow");
    let o = p.ferry(&["models", "show", "m"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(
        o.stderr,
        "error: every version of `m` is rejected: m/2 (rejected: looks off), m/1 (rejected: too slow)\nhint: name one to see it anyway, e.g. `ferry models show m/2`\n"
    );
    let o = p.ferry(&["models", "show", "nope"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(o.stderr, "error: no model `nope`\n");
}

/// A folder with no project in it.
fn elsewhere() -> Proj {
    Proj {
        dir: tempfile::tempdir().unwrap(),
    }
}

/// `--store` (and `FERRY_STORE`) names the store that `runs`, `models` and
/// `deploy` read and write, from anywhere, as `--server` names a server.
#[test]
fn read_and_write_commands_work_on_the_store_they_are_given() {
    let p = crate::deploy::two_versions();
    let store = store_of(&p);
    let out = elsewhere();
    let ok = |args: &[&str]| {
        let o = out.ferry(args);
        assert_eq!(o.code, 0, "{args:?}: {o:?}");
        o
    };
    let runs = json(&ok(&["runs", "list", "--store", &store, "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    let id = runs[0]["run_id"].as_str().unwrap();
    let shown = json(&ok(&[
        "runs",
        "show",
        &id[..8],
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(shown["run_id"], id);
    let versions = json(&ok(&[
        "models", "versions", "m", "--store", &store, "--json",
    ]));
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let o = ok(&["models", "alias", "m/2", "staging", "--store", &store]);
    assert_eq!(o.stderr, "staging: m/2 (new)\n");
    // The environment variable works as the option does.
    let o: Out = out
        .cmd(&["models", "show", "m@staging", "--json"])
        .env("FERRY_STORE", &store)
        .output()
        .unwrap()
        .into();
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(json(&o)["version"], 2);
    // Rollouts too.
    let o = ok(&["deploy", "m/2", "--store", &store]);
    assert!(
        o.stderr.contains("canary of m version 2 over version 1"),
        "{o:?}"
    );
    let st = json(&ok(&["deploy", "status", "m", "--json", "--store", &store]));
    assert_eq!(st["deployment"]["phase"], "progressing");
    ok(&["deploy", "abort", "m", "--store", &store]);
    // A store that is not there is named, not made empty.
    let o = out.ferry(&["runs", "list", "--store", "sqlite:///nonexistent/ferry.db"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(
        o.stderr,
        "error: --store `sqlite:///nonexistent/ferry.db`: no store at `/nonexistent/ferry.db`\n"
    );
}

/// A command that cannot work through one of the two options says so, and
/// what to use instead, rather than ignoring it; both at once are refused.
#[test]
fn a_command_refuses_the_option_it_cannot_use() {
    let p = crate::cli::project();
    p.run_ok();
    let store = store_of(&p);
    let server = "http://127.0.0.1:9";
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--store", &store],
            "error: `ferry run` cannot work on `--store`: a run records into the project's store, or into another through the `ferry server` on it",
        ),
        (
            &["logs", "latest", "--store", &store],
            "error: `ferry logs` cannot work on `--store`: stage logs are files beside a store, not in it\nhint: read them through the `ferry server` on that store with `--server URL`",
        ),
        (
            &["serve", "m", "--port", "0", "--server", server],
            "error: `ferry serve` cannot work through `--server`: the gateway reads versions, aliases and deployments from the store itself\nhint: give the store that `ferry server` works on with `--store URL`",
        ),
        (
            &["server", "--port", "0", "--server", server],
            "error: `ferry server` cannot work through `--server`: it is the server",
        ),
        (
            &["runs", "list", "--server", server, "--store", &store],
            "error: `--server` and `--store` both say where to work: give one",
        ),
        (
            &["models", "list", "--store", &store, "--server", server],
            "error: `--server` and `--store` both say where to work: give one",
        ),
    ];
    for (args, want) in cases {
        let o = p.ferry(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.starts_with(want), "{args:?}: {o:?}");
    }
    // An environment variable is named as where the value came from.
    let o: Out = p
        .cmd(&["serve", "m", "--port", "0"])
        .env("FERRY_SERVER", server)
        .output()
        .unwrap()
        .into();
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.starts_with(
            "error: `ferry serve` cannot work through `--server` (from `FERRY_SERVER`)"
        ),
        "{o:?}"
    );
    let o: Out = p
        .cmd(&["runs", "list", "--server", server])
        .env("FERRY_STORE", &store)
        .output()
        .unwrap()
        .into();
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.starts_with(
            "error: `--server` and `--store` (from `FERRY_STORE`) both say where to work: give one"
        ),
        "{o:?}"
    );
}

/// The shape of `ferry runs list`'s lines after the header: `run <status>`
/// for a run (`(no-op)` marked), the fold line without its time.
fn list_shape(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip(1)
        .map(|l| match l.strip_prefix("… ") {
            Some(fold) => {
                let (count, rest) = fold.split_once(" (latest ").unwrap();
                // `2026-12-02 10:01:58` is 19 characters.
                format!("… {count} ({}", &rest[19..])
            }
            None => {
                let status = l.split_whitespace().nth(3).unwrap();
                let noop = if l.ends_with("(no-op)") {
                    " (no-op)"
                } else {
                    ""
                };
                format!("run {status}{noop}")
            }
        })
        .collect()
}

/// A run in which nothing happened is no row of its own: consecutive ones
/// fold into one line; `--all` lists them, `--json` has every run.
#[test]
fn no_op_runs_fold_into_one_line() {
    let p = crate::cli::project();
    p.run_ok();
    for _ in 0..3 {
        let (code, r) = p.run_json(&[]);
        assert_eq!(code, 0, "{r}");
        assert_eq!(r["noop"], true, "{r}");
    }
    // A change: the train stage runs and registers version 2.
    p.write("acc.txt", "0.96\n");
    let (_, r) = p.run_json(&[]);
    assert_eq!(r["noop"], false, "{r}");
    p.run_ok();
    // Back to before: restored from the cache, the alias moves back: not a no-op.
    p.write("acc.txt", "0.95\n");
    let (_, r) = p.run_json(&[]);
    assert_eq!(r["stages"][1]["status"], "restored", "{r}");
    assert_eq!(r["noop"], false, "{r}");

    let o = p.ferry(&["runs", "list"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("RUN "), "{o:?}");
    assert_eq!(
        list_shape(&o.stdout),
        [
            "run succeeded",
            "… 1 no-op run (; `--all` lists it)",
            "run succeeded",
            "… 3 no-op runs (; `--all` lists them)",
            "run succeeded",
        ],
        "{o:?}"
    );
    let all = p.ferry(&["runs", "list", "--all"]);
    assert_eq!(
        list_shape(&all.stdout),
        [
            "run succeeded",
            "run succeeded (no-op)",
            "run succeeded",
            "run succeeded (no-op)",
            "run succeeded (no-op)",
            "run succeeded (no-op)",
            "run succeeded",
        ],
        "{all:?}"
    );
    // `--limit` counts lines, and a fold at the end is counted whole.
    let two = p.ferry(&["runs", "list", "--limit", "4"]);
    assert_eq!(
        list_shape(&two.stdout)[3],
        "… 3 no-op runs (; `--all` lists them)",
        "{two:?}"
    );
    let runs = json(&p.ferry(&["runs", "list", "--json"]));
    let noop: Vec<bool> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["noop"].as_bool().unwrap())
        .collect();
    assert_eq!(noop, [false, true, false, true, true, true, false]);
    let show = p.ferry(&["runs", "show", "latest~1"]);
    assert!(
        show.stdout
            .contains("status    succeeded (no-op: nothing ran, restored or registered)\n"),
        "{show:?}"
    );
}
