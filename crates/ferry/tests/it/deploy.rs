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
        "m/2",
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
            .contains("canary of m version 2 over version 1 recorded"),
        "{o:?}"
    );
    // No gateway serves `m@production`: the rollout waits, and says so.
    assert!(
        o.stderr
            .contains("warning: no gateway serves `m@production` (none seen in the last few seconds): the rollout waits until one does"),
        "{o:?}"
    );
    assert!(o.stderr.contains("no gateway picks it up yet"), "{o:?}");
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
    let again = p.ferry(&["deploy", "m/2"]);
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
    assert!(
        h.stdout.contains("gateways: none serves `m@production`"),
        "{h:?}"
    );
    // The events are a table with a header.
    assert!(
        h.stdout
            .contains("  events:\n    TIME (UTC)           EVENT        STEP   WEIGHT  REASON\n"),
        "{h:?}"
    );
    assert!(
        h.stdout
            .lines()
            .any(|l| l.ends_with("  started      1         10%  new data")),
        "{h:?}"
    );
    let all = p.ferry(&["deploy", "status"]);
    assert!(all.stdout.contains("m: canary of version 2"), "{all:?}");
    // Abort before any gateway picked it up: nothing judged version 2, so
    // it is not marked rejected; production stays.
    let a = p.ferry(&["deploy", "abort", "m", "--reason", "looks off"]);
    assert_eq!(a.code, 0, "{a:?}");
    assert!(
        a.stderr.contains(
            "aborted before any gateway picked it up; the version is not marked rejected"
        ),
        "{a:?}"
    );
    let s = status(&p);
    assert_eq!(s["deployment"]["phase"], "aborted");
    assert_eq!(s["deployment"]["active"], false);
    assert_eq!(s["deployment"]["picked_up_ms"], serde_json::Value::Null);
    let v2 = p.ferry(&["models", "show", "m/2", "--json"]);
    assert!(!v2.stdout.contains("ferry.rejected"), "{v2:?}");
    let v2: serde_json::Value = serde_json::from_str(&v2.stdout).unwrap();
    assert_eq!(v2["rejected"], serde_json::Value::Null);
    let prod = p.ferry(&["models", "show", "m@production", "--json"]);
    let prod: serde_json::Value = serde_json::from_str(&prod.stdout).unwrap();
    assert_eq!(prod["version"], 1);
    // Nothing left to end.
    assert_eq!(p.ferry(&["deploy", "abort", "m"]).code, 2);
    // A new rollout, promoted by hand: the alias moves, with the reason.
    assert_eq!(p.ferry(&["deploy", "m/2", "--json"]).code, 0);
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
        (
            &["deploy", "m"],
            "`m` names no version to roll out\nhint: `ferry deploy m/VERSION` for a version, `ferry deploy m@ALIAS` for the one an alias points to (e.g. `m@candidate`)",
        ),
        (
            &["deploy"],
            "give the version to roll out\nhint: `ferry deploy MODEL/VERSION` or `ferry deploy MODEL@ALIAS`",
        ),
        (&["deploy", "m/9"], "no model version `m/9`"),
        (&["deploy", "m/x"], "invalid model reference `m/x`"),
        (&["deploy", "m/1"], "already is `m@production`"),
        (
            &["deploy", "m/2", "--steps", "50,10"],
            "--steps must increase",
        ),
        (&["deploy", "m/2", "--steps", "0,10"], "not a percentage"),
        (&["deploy", "m/2", "--interval", "soon"], "--interval"),
        (
            &["deploy", "m/2", "--strategy", "blue"],
            "use canary or shadow",
        ),
        (
            &["deploy", "m/2", "--max-error-rate", "2"],
            "between 0 and 1",
        ),
        (&["deploy", "m/2", "--alias", "nope"], "no `nope` version"),
        (&["deploy", "m@nope"], "no model version `m@nope`"),
        // The old flags are gone, and say what replaced them (`--version`
        // must not print ferry's version and exit 0 in an old script).
        (
            &["deploy", "m", "--version", "2"],
            "`--version` is gone: the version goes in the model reference\nhint: `ferry deploy m/2`",
        ),
        (
            &["deploy", "m", "--candidate", "candidate"],
            "hint: `ferry deploy m@candidate`",
        ),
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

/// A gateway (`ferry serve m@production`, fakes allowed: versions 1 and 2
/// answer as well-behaved fakes) on `p`'s store, ticking every 100 ms.
pub(crate) struct Gateway {
    pub(crate) child: std::process::Child,
    pub(crate) addr: String,
}

impl Gateway {
    pub(crate) fn start(p: &Proj) -> Self {
        use std::io::BufRead;
        let store = ferry_metadata::BlockingStore::open(&format!(
            "sqlite://{}",
            p.path().join(".ferry/ferry.db").display()
        ))
        .unwrap();
        for v in 1..=2 {
            store
                .call(|s| {
                    Box::pin(async move { s.set_version_tag("m", v, "ferry.fake", "ok").await })
                })
                .unwrap();
        }
        let mut child = p
            .cmd(&[
                "serve",
                "m@production",
                "--port",
                "0",
                "--allow-fakes",
                "--tick",
                "100ms",
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the gateway ended").unwrap();
            if let Some(rest) = line.split("at http://").nth(1) {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        // Its first heartbeat.
        let t = std::time::Instant::now();
        while store
            .call(|s| Box::pin(async move { s.list_gateways().await }))
            .unwrap()
            .is_empty()
        {
            assert!(t.elapsed().as_secs() < 20, "the gateway never showed up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Gateway { child, addr }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until a gateway has picked up the active deployment of `m`.
fn picked_up(p: &Proj) {
    let t = std::time::Instant::now();
    while status(p)["deployment"]["picked_up_ms"].is_null() {
        assert!(t.elapsed().as_secs() < 20, "no gateway picked it up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_rejected_version_stays_rejected() {
    let p = two_versions();
    let gw = Gateway::start(&p);
    let o = p.ferry(&["deploy", "m/2", "--interval", "1h"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!o.stderr.contains("warning"), "{o:?}");
    assert!(
        o.stderr.contains(&format!(
            "the gateway at {} picks it up within a tick",
            gw.addr
        )),
        "{o:?}"
    );
    picked_up(&p);
    // `deploy status` names the gateway that serves the model.
    let h = p.ferry(&["deploy", "status", "m"]);
    let table: Vec<Vec<&str>> = h
        .stdout
        .lines()
        .skip_while(|l| *l != "  gateways:")
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        table[0],
        ["ADDRESS", "HOST", "PID", "SERVES", "VERSION", "SEEN"],
        "{h:?}"
    );
    assert_eq!(table[1][0], gw.addr, "{h:?}");
    assert_eq!(table[1][3..5], ["m@production", "1"], "{h:?}");
    assert_eq!(table.len(), 2, "{h:?}");
    assert_eq!(status(&p)["gateways"][0]["addr"], gw.addr.as_str());
    // Aborted after a gateway routed it: rejected.
    let a = p.ferry(&["deploy", "abort", "m", "--reason", "looks off"]);
    assert_eq!(a.code, 0, "{a:?}");
    assert!(a.stderr.contains("aborted and marked rejected"), "{a:?}");

    // The rejection is a visible state of the version...
    let show = p.ferry(&["models", "show", "m/2"]);
    assert!(show.stdout.contains("rejected   looks off"), "{show:?}");
    let j = p.ferry(&["models", "show", "m/2", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(j["rejected"], "looks off");
    let vs = p.ferry(&["models", "versions", "m"]);
    let line2 = vs
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("2 "))
        .unwrap_or_default()
        .to_owned();
    assert!(line2.ends_with("candidate (rejected: looks off)"), "{vs:?}");
    let line1 = vs
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_default()
        .to_owned();
    assert!(!line1.contains("rejected"), "{vs:?}");

    // ...that a new rollout of it must ask for explicitly...
    for args in [&["deploy", "m/2"][..], &["deploy", "m@candidate"][..]] {
        let o = p.ferry(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(
            o.stderr
                .contains("version 2 of `m` was rejected (looks off)"),
            "{o:?}"
        );
        assert!(
            o.stderr
                .contains("hint: roll it out anyway with --allow-rejected"),
            "{o:?}"
        );
    }
    // ...and that an unchanged run does not point an alias back at.
    p.write("train.sh", "code v3\n");
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["registered"]["version"], 3);
    p.write("train.sh", "code v2\n");
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains(
            "unchanged the model equals m/2, which was rejected (looks off); nothing registered, no alias moved"
        ),
        "{o:?}"
    );
    let c = p.ferry(&["models", "show", "m@candidate", "--json"]);
    let c: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
    assert_eq!(c["version"], 3, "@candidate stays where it was");
    let (_, r) = p.run_json(&[]);
    assert_eq!(r["model_unchanged"], "m/2");
    assert_eq!(r["model_rejected"], "looks off");
    assert_eq!(r["registered"], serde_json::Value::Null);

    // Asked for explicitly, it rolls out.
    let o = p.ferry(&["deploy", "m/2", "--allow-rejected", "--interval", "1h"]);
    assert_eq!(o.code, 0, "{o:?}");
    drop(gw);
}

/// `method path` with `body` to `addr`: the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |b| b.1).to_owned();
    (status, body)
}

#[test]
fn serving_a_version_is_priced_per_prediction() {
    let p = two_versions();
    let set = p.ferry(&["budget", "set", "default", "--monthly", "0.00000001"]);
    assert_eq!(set.code, 0, "{set:?}");
    let gw = Gateway::start(&p);
    let row =
        r#"{"inputs": [{"name": "X", "shape": [1, 2], "datatype": "FP32", "data": [5.1, 3.5]}]}"#;
    for _ in 0..40 {
        let (code, body) = http(&gw.addr, "POST", "/v2/models/m/infer", row);
        assert_eq!(code, 200, "{body}");
    }
    // Within a few ticks the store has what serving version 1 cost.
    let t = std::time::Instant::now();
    let line = loop {
        let o = p.ferry(&["cost", "--by", "model", "--since", "1d", "--json"]);
        assert_eq!(o.code, 0, "{o:?}");
        let lines: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        let one = lines
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["model"] == "m" && l["version"] == 1)
            .cloned();
        if let Some(l) = one.filter(|l| l["predictions"] == 40) {
            break l;
        }
        assert!(t.elapsed().as_secs() < 20, "never recorded: {lines}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Whatever CPU the answers took, at aws-us-east-1's $0.04048 a
    // vCPU-hour, per 1,000 predictions.
    let usd = line["serving_usd"].as_f64().unwrap();
    let cpu = line["serving_cpu_seconds"].as_f64().unwrap();
    assert!(cpu > 0.0, "answering took no CPU? {line}");
    assert!((usd - cpu * 0.04048 / 3600.0).abs() < 1e-12, "{line}");
    let per_1k = line["per_1k_predictions_usd"].as_f64().unwrap();
    assert!((per_1k - usd * 1000.0 / 40.0).abs() < 1e-12, "{line}");
    // What built it: the run that registered it.
    assert!(line["run_id"].is_string(), "{line}");
    assert!(line["build_usd"].as_f64().unwrap() >= 0.0, "{line}");
    // And /metrics counts it per version.
    let (code, metrics) = http(&gw.addr, "GET", "/metrics", "");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("ferry_serving_cost_usd_total{model=\"m\",version=\"1\"}"),
        "{metrics}"
    );
    // With the budgets: this one is spent past every threshold.
    assert!(
        metrics.contains("ferry_budget_monthly_usd{budget=\"workspace:default\",period=\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferry_budget_alert{budget=\"workspace:default\"")
            && metrics.contains(",threshold=\"100\"} 1"),
        "{metrics}"
    );
    let table = p.ferry(&["cost", "--by", "model", "--since", "1d"]);
    assert!(table.stdout.contains("PER 1K"), "{table:?}");
    assert!(table.stdout.contains("m/1"), "{table:?}");
}

#[test]
fn what_is_kept_is_priced_by_owner_a_month() {
    let p = two_versions();
    let o = p.ferry(&["cost", "--by", "storage", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let kept: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let find = |place: &str| {
        kept.as_array()
            .unwrap()
            .iter()
            .find(|k| k["place"] == place)
            .cloned()
            .unwrap_or_else(|| panic!("no {place}: {kept}"))
    };
    // The registry: both versions of m, their files' bytes as registered.
    let registry = find("registry");
    assert_eq!(registry["name"], "m");
    assert_eq!(registry["workspace"], "default");
    assert_eq!(registry["objects"], 2);
    let versions = p.ferry(&["models", "versions", "m", "--json"]);
    let versions: serde_json::Value = serde_json::from_str(&versions.stdout).unwrap();
    let bytes: i64 = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["artifact_size"].as_i64().unwrap())
        .sum();
    assert_eq!(registry["bytes"], bytes, "{versions}");
    // At aws-us-east-1's $0.023 a GiB-month.
    let usd = registry["usd_month"].as_f64().unwrap();
    assert!(
        (usd - bytes as f64 / 1073741824.0 * 0.023).abs() < 1e-15,
        "{registry}"
    );
    // This machine's cache, the project's.
    let cache = find("cache");
    assert!(cache["objects"].as_i64().unwrap() > 0, "{cache}");
    assert!(cache["bytes"].as_i64().unwrap() > 0, "{cache}");
}
