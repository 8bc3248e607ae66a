//! `ferry deploy` from the command line: rollouts recorded in the store,
//! their status, ending them by hand, and bad flags.

use crate::support::*;

/// Two registered versions of `m`, the first one `production`.
pub(crate) fn two_versions() -> Proj {
    let p = crate::cli::project();
    p.run_ok();
    assert_eq!(p.ferry(&["models", "alias", "m/1", "production"]).code, 0);
    p.write("train.sh", "code v2\n");
    p.run_ok();
    p
}

fn status(p: &Proj) -> serde_json::Value {
    let o = p.ferry(&["deploy", "status", "m", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    serde_json::from_str(&o.stdout).unwrap()
}

#[test]
fn a_rollout_is_recorded_shown_and_ended_by_hand() {
    let p = two_versions();
    let o = p.ferry(&[
        "deploy",
        "m",
        "--version",
        "2",
        "--steps",
        "10,50,100",
        "--interval",
        "30s",
        "--max-error-rate",
        "0.01",
        "--max-p99-ms",
        "50",
        "--reason",
        "new data",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("canary of m version 2 over version 1 started"),
        "{o:?}"
    );
    let s = status(&p);
    assert_eq!(s["deployment"]["phase"], "progressing");
    assert_eq!(s["deployment"]["weight"], 10);
    assert_eq!(
        s["deployment"]["spec"]["steps"],
        serde_json::json!([10, 50, 100])
    );
    assert_eq!(s["deployment"]["spec"]["criteria"]["max_p99_ms"], 50.0);
    assert_eq!(s["events"][0]["kind"], "started");
    // One active rollout per model.
    let again = p.ferry(&["deploy", "m", "--version", "2"]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(
        again.stderr.contains("already has an active deployment"),
        "{again:?}"
    );
    // Human status.
    let h = p.ferry(&["deploy", "status", "m"]);
    assert!(
        h.stdout
            .starts_with("m: canary of version 2 over version 1: step 1/3 at 10%"),
        "{h:?}"
    );
    assert!(
        h.stdout
            .contains("plan: steps 10%, 50%, 100%, every 30s, error rate <= 0.01, p99 <= 50 ms"),
        "{h:?}"
    );
    let all = p.ferry(&["deploy", "status"]);
    assert!(all.stdout.contains("m: canary of version 2"), "{all:?}");
    // Abort: the candidate is rejected, production stays.
    let a = p.ferry(&["deploy", "abort", "m", "--reason", "looks off"]);
    assert_eq!(a.code, 0, "{a:?}");
    let s = status(&p);
    assert_eq!(s["deployment"]["phase"], "aborted");
    assert_eq!(s["deployment"]["active"], false);
    let v2 = p.ferry(&["models", "show", "m/2", "--json"]);
    assert!(v2.stdout.contains("ferry.rejected"), "{v2:?}");
    let prod = p.ferry(&["models", "show", "m@production", "--json"]);
    let prod: serde_json::Value = serde_json::from_str(&prod.stdout).unwrap();
    assert_eq!(prod["version"], 1);
    // Nothing left to end.
    assert_eq!(p.ferry(&["deploy", "abort", "m"]).code, 2);
    // A new rollout, promoted by hand: the alias moves, with the reason.
    assert_eq!(
        p.ferry(&["deploy", "m", "--version", "2", "--json"]).code,
        0
    );
    assert_eq!(
        p.ferry(&["deploy", "promote", "m", "--reason", "signed off"])
            .code,
        0
    );
    let prod = p.ferry(&["models", "show", "m@production", "--json"]);
    let prod: serde_json::Value = serde_json::from_str(&prod.stdout).unwrap();
    assert_eq!(prod["version"], 2);
    let hist = p.ferry(&["models", "history", "m"]);
    assert!(hist.stdout.contains("signed off"), "{hist:?}");
}

#[test]
fn bad_rollouts_are_usage_errors() {
    let p = two_versions();
    let cases: &[(&[&str], &str)] = &[
        (&["deploy", "m"], "--version N or --candidate ALIAS"),
        (&["deploy", "m", "--version", "9"], "no version 9"),
        (
            &["deploy", "m", "--version", "1"],
            "already is `m@production`",
        ),
        (
            &["deploy", "m", "--version", "2", "--steps", "50,10"],
            "--steps must increase",
        ),
        (
            &["deploy", "m", "--version", "2", "--steps", "0,10"],
            "not a percentage",
        ),
        (
            &["deploy", "m", "--version", "2", "--interval", "soon"],
            "--interval",
        ),
        (
            &["deploy", "m", "--version", "2", "--strategy", "blue"],
            "use canary or shadow",
        ),
        (
            &["deploy", "m", "--version", "2", "--max-error-rate", "2"],
            "between 0 and 1",
        ),
        (
            &["deploy", "m", "--version", "2", "--alias", "nope"],
            "no `nope` version",
        ),
        (&["deploy", "m", "--candidate", "nope"], "no alias `nope`"),
        (&["deploy", "status", "zz"], "no deployment"),
    ];
    for (args, want) in cases {
        let o = p.ferry(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:?}");
    }
    // Serving needs a model that exists.
    let o = p.ferry(&["serve", "nope@production", "--port", "0"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("no model version `nope@production`"),
        "{o:?}"
    );
    let o = p.ferry(&["serve", "m", "m"]);
    assert_eq!(o.code, 2, "{o:?}");
}

/// A version registered through the MLflow API has no ferry digest or
/// lineage: `models show` prints its source and tags (it used to panic).
#[test]
fn versions_from_mlflow_clients_show_their_source_and_tags() {
    let p = two_versions();
    let store = ferry_metadata::BlockingStore::open(&format!(
        "sqlite://{}",
        p.path().join(".ferry/ferry.db").display()
    ))
    .unwrap();
    store
        .call(|s| {
            Box::pin(async move {
                s.create_mlflow_version(
                    "m",
                    "mlflow-artifacts:/0/abc/artifacts/model",
                    Some("x"),
                    "",
                    &[("ferry.serve.runtime".into(), "mlflow".into())],
                    "",
                    None,
                    1,
                )
                .await
            })
        })
        .unwrap();
    let o = p.ferry(&["models", "show", "m/3"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains("source     mlflow-artifacts:/0/abc/artifacts/model"),
        "{o:?}"
    );
    assert!(o.stdout.contains("ferry.serve.runtime = mlflow"), "{o:?}");
    let o = p.ferry(&["models", "versions", "m"]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = p.ferry(&["models", "history", "m"]);
    assert_eq!(o.code, 0, "{o:?}");
}
