//! `ferry cost` on a project's store: the lines add up to the stage costs
//! `ferry runs show` records, in every grouping and format, and bad flags
//! are usage errors.

use crate::support::*;

const SPEC: &str = r#"
cost:
  machine: gcp-us-central1
stages:
  prepare:
    cmd: echo a > a.txt
    outs: [a.txt]
  train:
    cmd: cat a.txt > b.txt && echo "$RANDOM" >> b.txt
    deps: [a.txt]
    outs: [b.txt]
    resources: {cpus: 4, memory: 16Gi}
"#;

fn json(o: &Out) -> serde_json::Value {
    assert_eq!(o.code, 0, "{o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"))
}

#[test]
fn the_lines_add_up_to_the_stage_costs_runs_show_records() {
    let p = Proj::new(SPEC);
    p.run_ok();
    assert_eq!(p.ferry(&["run", "--force"]).code, 0);
    p.run_ok();
    // What each run's stages were charged, as `ferry runs show` has them.
    let runs = json(&p.ferry(&["runs", "list", "--json"]));
    let mut by_stage = std::collections::BTreeMap::<String, (f64, i64)>::new();
    for r in runs.as_array().unwrap() {
        let show = json(&p.ferry(&["runs", "show", r["run_id"].as_str().unwrap(), "--json"]));
        for s in show["stages"].as_array().unwrap() {
            let e = by_stage
                .entry(s["stage"].as_str().unwrap().to_owned())
                .or_default();
            let charged = s["cost"]["charged"].as_f64().unwrap();
            e.0 += charged;
            e.1 += i64::from(charged > 0.0);
        }
    }
    let lines = json(&p.ferry(&["cost", "--by", "stage", "--json"]));
    let pipeline = p.path().file_name().unwrap().to_string_lossy().into_owned();
    for line in lines.as_array().unwrap() {
        let stage = line["key"]
            .as_str()
            .unwrap()
            .strip_prefix(&format!("{pipeline}/"))
            .unwrap();
        let (cost, n) = by_stage[stage];
        assert!(
            (line["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
            "{line}"
        );
        assert_eq!(line["stage_runs"], n, "{line}");
    }
    // Three runs: the first and the forced one ran both stages, the last
    // restored nothing and ran nothing (up to date): 2 of 6 cost nothing.
    let total: f64 = by_stage.values().map(|(c, _)| c).sum();
    for by in ["pipeline", "day", "month"] {
        let lines = json(&p.ferry(&["cost", "--by", by, "--json"]));
        let sum: f64 = lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["cost_usd"].as_f64().unwrap())
            .sum();
        assert!((sum - total).abs() < 1e-12, "--by {by}: {sum} != {total}");
    }
    let train = &lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"].as_str().unwrap().ends_with("/train"))
        .unwrap()
        .clone();
    // Counted: the two that ran (the up-to-date one cost nothing).
    assert_eq!(train["stage_runs"].as_i64(), Some(2));
    assert!(train["requested_usd"].as_f64().unwrap() > 0.0);

    let table = p.ferry(&["cost", "--by", "stage"]);
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.starts_with("STAGE "), "{table:?}");
    assert!(
        table.stdout.lines().last().unwrap().starts_with("total "),
        "{table:?}"
    );
    let csv = p.ferry(&["cost", "--csv"]);
    assert!(
        csv.stdout
            .starts_with("key,cost_usd,requested_usd,used_usd,stage_runs\n"),
        "{csv:?}"
    );
    // Nothing in a window before the runs.
    let none = p.ferry(&["cost", "--since", "2020-01-01", "--until", "2020-02-01"]);
    assert_eq!(
        none.stdout, "no priced stage runs in this window\n",
        "{none:?}"
    );
}

#[test]
fn bad_flags_are_usage_errors_naming_the_flag() {
    let p = Proj::new(SPEC);
    p.run_ok();
    for (args, want) in [
        (&["cost", "--since", "last week"][..], "--since `last week`"),
        (
            &["cost", "--until", "2026-02-30"][..],
            "--until `2026-02-30`",
        ),
        (&["cost", "--utc-offset", "CET"][..], "--utc-offset `CET`"),
        (
            &["cost", "--since", "2026-12-01", "--until", "2026-11-01"][..],
            "is not after --since",
        ),
        (&["cost", "--server", "ftp://x"][..], "ftp://x"),
    ] {
        let o = p.ferry(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:?}");
    }
}

#[test]
fn a_stage_is_stopped_when_what_it_asked_for_has_cost_its_max_cost() {
    // 1 vCPU and 1 GiB at aws-us-east-1's prices cost $0.044925 an hour:
    // $0.0000125 buys about a second.
    let p = Proj::new(
        r#"
stages:
  long:
    cmd: sleep 30 && echo done > out.txt
    outs: [out.txt]
    resources: {cpus: 1, memory: 1Gi}
    max_cost: 0.0000125
"#,
    );
    let started = std::time::Instant::now();
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{o:?}"
    );
    assert!(
        o.stderr.contains("reached its max_cost of $0.0000125"),
        "{o:?}"
    );
    let show = json(&p.ferry(&["runs", "show", "latest", "--json"]));
    assert_eq!(show["stages"][0]["status"], "failed", "{show}");
    // It is charged for what it ran: at most a few seconds' worth.
    assert!(
        show["stages"][0]["cost"]["charged"].as_f64().unwrap() < 0.0001,
        "{show}"
    );
}

/// A webhook receiver on loopback: the JSON bodies posted to it.
fn webhook() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/budget", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                seen.lock().unwrap().push(v);
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[test]
fn a_team_budget_refuses_the_run_it_cannot_cover_until_a_holder_lets_it_over() {
    let p = Proj::new(
        r#"
workspace: ml
stages:
  train:
    cmd: sleep 0.5 && echo "$RANDOM" > b.txt
    outs: [b.txt]
    resources: {cpus: 4, memory: 16Gi}
"#,
    );
    p.run_ok();
    let first = json(&p.ferry(&["cost", "--by", "team", "--json"]));
    assert_eq!(first[0]["key"], "ml", "{first}");
    let c1 = first[0]["cost_usd"].as_f64().unwrap();
    assert!(c1 > 0.0);

    // A budget of 1.5 runs: the next (estimated at the last run's cost) does
    // not fit in what is left.
    let (hook, posted) = webhook();
    let monthly = format!("{}", c1 * 1.5);
    let set = p.ferry(&[
        "budget",
        "set",
        "ml",
        "--monthly",
        &monthly,
        "--webhook",
        &hook,
    ]);
    assert_eq!(set.code, 0, "{set:?}");
    let refused = p.ferry(&["run", "--force"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    for said in [
        "over budget: budget workspace:ml",
        "spent",
        "this run is estimated at",
        "estimate: train",
        "(its last run)",
        "--over-budget REASON",
    ] {
        assert!(refused.stderr.contains(said), "{said}: {refused:?}");
    }
    // Refused before anything ran, and recorded as refused.
    let runs = json(&p.ferry(&["runs", "list", "--json"]));
    assert_eq!(runs[0]["status"], "failed", "{runs}");
    let show = json(&p.ferry(&["runs", "show", "latest", "--json"]));
    assert!(
        show["message"]
            .as_str()
            .unwrap_or_default()
            .contains("over budget"),
        "{show}"
    );
    assert_eq!(show["stages"].as_array().map_or(0, Vec::len), 0, "{show}");
    // Its end owed the 50% alert (spent: 67%), posted once.
    assert_eq!(
        posted
            .lock()
            .unwrap()
            .iter()
            .map(|a| a["threshold_percent"].clone())
            .collect::<Vec<_>>(),
        [50]
    );

    // A holder lets it over, with a reason, which is audited.
    let over = p.ferry(&["run", "--force", "--over-budget", "quarter-end retrain"]);
    assert_eq!(over.code, 0, "{over:?}");
    assert!(over.stderr.contains("warning over budget"), "{over:?}");
    let audit = p.ferry(&["audit", "list", "--action", "budget", "--json"]);
    assert!(audit.stdout.contains("budget.override"), "{audit:?}");
    assert!(audit.stdout.contains("quarter-end retrain"), "{audit:?}");
    // Now past 100%: 80 and 100 sent, each once; another run sends none.
    let thresholds = |p: &std::sync::Mutex<Vec<serde_json::Value>>| {
        p.lock()
            .unwrap()
            .iter()
            .map(|a| a["threshold_percent"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(thresholds(&posted), [50, 80, 100]);
    assert_eq!(
        p.ferry(&["run", "--force", "--over-budget", "again"]).code,
        0
    );
    assert_eq!(thresholds(&posted), [50, 80, 100]);
    let a = &posted.lock().unwrap()[2];
    assert_eq!(a["budget"], "workspace:ml");
    assert!(a["text"].as_str().unwrap().contains("reached 100%"), "{a}");

    // The budget's spend is what `ferry cost` sums for the team.
    let list = json(&p.ferry(&["budget", "list", "--json"]));
    let team = json(&p.ferry(&["cost", "--by", "team", "--json"]));
    assert!(
        (list[0]["spent_usd"].as_f64().unwrap() - team[0]["cost_usd"].as_f64().unwrap()).abs()
            < 1e-12,
        "{list} {team}"
    );
    assert_eq!(list[0]["held_usd"], 0.0, "{list}");
    let project = json(&p.ferry(&["cost", "--by", "project", "--json"]));
    let folder = p.path().file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(project[0]["key"], folder.as_str(), "{project}");

    // A run that runs nothing is never refused, even over budget.
    assert_eq!(p.ferry(&["run"]).code, 0);
    // Without the budget, runs go on.
    assert_eq!(p.ferry(&["budget", "remove", "ml"]).code, 0);
    assert_eq!(p.ferry(&["run", "--force"]).code, 0);
}

#[test]
fn bad_budgets_are_usage_errors_naming_what_is_wrong() {
    let p = Proj::new("stages: {}\n");
    // The first budget makes the project's store.
    assert_eq!(p.ferry(&["budget", "set", "ml", "--monthly", "5"]).code, 0);
    for (args, says) in [
        (
            &["budget", "set", "team:x", "--monthly", "5"][..],
            "`team:` is neither",
        ),
        (&["budget", "set", "ml", "--monthly=-1"][..], "--monthly -1"),
        (
            &["budget", "set", "ml", "--monthly", "5", "--alert", "0"][..],
            "--alert",
        ),
        (
            &[
                "budget",
                "set",
                "ml",
                "--monthly",
                "5",
                "--webhook",
                "file:///etc/passwd",
            ][..],
            "--webhook",
        ),
        (
            &["budget", "remove", "pipeline:iris"][..],
            "no budget pipeline:iris",
        ),
    ] {
        let o = p.ferry(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains(says), "{args:?}: {o:?}");
    }
}
