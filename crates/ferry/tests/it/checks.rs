//! Built-in check stages: `check: data` and `check: drift` in a pipeline,
//! cached like any stage, gating the run, usable in gates; and the
//! `ferry data` / `ferry check` commands on their own.

use crate::support::*;

const SPEC: &str = r#"
stages:
  validate:
    check: data
    data: data/batch.csv
    expect: expectations.yaml
    html: reports/validate.html
  drift:
    check: drift
    reference: data/reference.csv
    current: data/batch.csv
  train:
    cmd: >-
      echo run >> counts && cp data/batch.csv model.bin && echo '{"accuracy": 0.95}' > metrics.json
    deps: [data/batch.csv]
    outs: [model.bin]
    metrics: metrics.json
gates:
  - checks.validate.price.between.unexpected_count <= 0
  - checks.drift.drifted_share <= 0.5
register:
  model: m
  artifact: model.bin
"#;

const SUITE: &str = "columns:\n  price: {type: float, not_null: true, between: {min: 0, max: 100}}\n  kind: {in_set: [a, b]}\n";

fn table(rows: usize, bad: &[usize]) -> String {
    let mut s = String::from("price,kind\n");
    for i in 0..rows {
        if bad.contains(&i) {
            s.push_str("250,zzz\n");
        } else {
            s.push_str(&format!("{}.5,{}\n", i % 100, ["a", "b"][i % 2]));
        }
    }
    s
}

pub fn project() -> Proj {
    let p = Proj::new(SPEC);
    p.write("expectations.yaml", SUITE);
    p.write("data/reference.csv", &table(300, &[]));
    p.write("data/batch.csv", &table(300, &[]));
    p
}

#[test]
fn a_good_batch_passes_and_a_bad_one_stops_the_run_naming_every_problem() {
    let p = project();
    let (code, rep) = p.run_json(&[]);
    assert_eq!(code, 0, "{rep}");
    assert_eq!(rep["registered"]["version"], 1);
    let gates: Vec<&str> = rep["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(gates[..2], ["check validate", "check drift"]);
    assert_eq!(rep["metrics"]["checks.validate.passed"], 1.0);
    let report: serde_json::Value = serde_json::from_str(&p.read("reports/validate.json")).unwrap();
    assert_eq!(report["passed"], true);
    assert!(p.read("reports/validate.html").contains("<table>"));
    // The reports are artifacts of the run too.
    let run = rep["run_id"].as_str().unwrap();
    let kept: Vec<_> = glob_files(&p.path().join(".ferry/artifacts"))
        .into_iter()
        .filter(|f| f.contains(run) && f.contains("/artifacts/checks/"))
        .map(|f| f.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(
        kept.contains(&"validate.html".to_string()) && kept.contains(&"drift.json".to_string())
    );
    // Nothing changed: the checks are up to date like any stage.
    let (code, rep) = p.run_json(&[]);
    assert_eq!(code, 0);
    assert!(
        stage_statuses(&rep).iter().all(|(_, s)| s == "up_to_date"),
        "{rep}"
    );

    // A bad batch: two rows out of range with an unknown kind.
    p.write("data/batch.csv", &table(300, &[5, 17]));
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 3, "{o:?}");
    for want in [
        // Data row 5 is the file's line 7 (the header is line 1).
        "FAIL price.between: expected values between 0 and 100; 2 rows (0.67%), e.g. line 7 = 250",
        "FAIL kind.in_set",
        "check `validate` failed: see reports/validate.json",
    ] {
        assert!(
            o.stderr.contains(want) || o.stdout.contains(want),
            "missing {want:?} in {o:?}"
        );
    }
    let report: serde_json::Value = serde_json::from_str(&p.read("reports/validate.json")).unwrap();
    assert_eq!(report["failed"], 2);
    let v = p.ferry(&["models", "versions", "m", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "a failed check registers nothing"
    );

    // warn_only: the run goes on, with a warning.
    // (The new level `zzz` also makes the drift check flag `kind`.)
    let spec = SPEC
        .replace(
            "    html: reports/validate.html\n",
            "    html: reports/validate.html\n    warn_only: true\n",
        )
        .replace(
            "    current: data/batch.csv\n",
            "    current: data/batch.csv\n    warn_only: true\n",
        )
        .replace(
            "  - checks.validate.price.between.unexpected_count <= 0\n",
            "",
        )
        .replace("  - checks.drift.drifted_share <= 0.5\n", "");
    p.write("ferry.yaml", &spec);
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("warning: check `validate` failed (warn_only)"),
        "{o:?}"
    );
}

#[test]
fn drift_gates_read_the_drift_report() {
    let p = project();
    // The current batch moves every price up by 40: the price column drifts.
    let shifted: String = table(300, &[])
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_owned()
            } else {
                let (price, kind) = l.split_once(',').unwrap();
                format!("{},{kind}", price.parse::<f64>().unwrap() * 0.2 + 70.0)
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    p.write("data/batch.csv", &(shifted + "\n"));
    p.write(
        "ferry.yaml",
        &SPEC.replace(
            "checks.drift.drifted_share <= 0.5",
            "checks.drift.price.drifted == false",
        ),
    );
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr.contains("checks.drift.price.drifted == false"),
        "{o:?}"
    );
    let report: serde_json::Value = serde_json::from_str(&p.read("reports/drift.json")).unwrap();
    assert_eq!(report["columns"][0]["column"], "price");
    assert_eq!(report["columns"][0]["method"], "ks");
    assert_eq!(report["columns"][0]["drifted"], true);
}

#[test]
fn bad_check_stages_are_spec_errors_and_bad_data_fails_the_stage() {
    let p = project();
    p.write(
        "ferry.yaml",
        r#"
stages:
  a: {check: data, data: data/batch.csv}
  b: {check: histogram, data: data/batch.csv}
  c: {check: data, cmd: "true", data: data/batch.csv, expect: expectations.yaml}
  d: {cmd: "true", expect: expectations.yaml}
  e: {check: drift, reference: data/reference.csv, current: "data/*.csv", method: magic}
gates:
  - checks.d.passed == true
"#,
    );
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 2, "{o:?}");
    for want in [
        "`check: data` needs `expect`",
        "unknown check `histogram`",
        "a stage has either `cmd` or `check`, not both",
        "`expect` belongs to check stages",
        "`data/*.csv` is a glob",
        "unknown method `magic`",
        "no check stage `d`",
    ] {
        assert!(o.stderr.contains(want), "missing {want:?} in {o:?}");
    }
    // A malformed suite: the stage fails and says where.
    let p = project();
    p.write(
        "expectations.yaml",
        "columns:\n  price: {between: {min: 5, max: 1}}\n",
    );
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("expectations.yaml:2:11: columns.price.between: min (5) is above max (1)"),
        "{o:?}"
    );
}

#[test]
fn the_commands_on_their_own() {
    let p = project();
    p.write("data/bad.csv", &table(300, &[1, 2, 3]));
    // Profile a trusted batch into a suite, then check batches with it.
    let o = p.ferry(&["data", "profile", "data/reference.csv", "-o", "suite.yaml"]);
    assert_eq!(o.code, 0, "{o:?}");
    let suite = p.read("suite.yaml");
    assert!(
        suite.contains("kind: {type: string, not_null: true, in_set: [a, b]}"),
        "{suite}"
    );
    let ok = p.ferry(&["check", "data", "data/batch.csv", "--expect", "suite.yaml"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let bad = p.ferry(&[
        "check",
        "data",
        "data/bad.csv",
        "--expect",
        "suite.yaml",
        "--json",
        "--html",
        "out/r.html",
    ]);
    assert_eq!(bad.code, 3, "{bad:?}");
    let v: serde_json::Value = serde_json::from_str(&bad.stdout).unwrap();
    assert_eq!(v["passed"], false);
    assert!(bad.stderr.contains("FAIL kind.in_set"), "{bad:?}");
    assert!(p.read("out/r.html").starts_with("<!doctype html>"));
    // Drift of a table with itself: nothing drifts.
    let d = p.ferry(&[
        "check",
        "drift",
        "--reference",
        "data/reference.csv",
        "--current",
        "data/reference.csv",
        "--json",
    ]);
    assert_eq!(d.code, 0, "{d:?}");
    let v: serde_json::Value = serde_json::from_str(&d.stdout).unwrap();
    assert_eq!(v["drifted"], 0);
    // Thresholds for every column and for one.
    let d = p.ferry(&[
        "check",
        "drift",
        "--reference",
        "data/reference.csv",
        "--current",
        "data/bad.csv",
        "--threshold",
        "0.01",
        "--threshold",
        "kind=0.5",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&d.stdout).unwrap();
    assert_eq!(v["columns"][0]["threshold"], 0.01, "{d:?}");
    assert_eq!(v["columns"][1]["threshold"], 0.5, "{d:?}");
    // Bad input: exit 2 with the file, column or key named.
    for (args, want) in [
        (
            vec![
                "check",
                "data",
                "data/batch.csv",
                "--expect",
                "suite.yaml",
                "--type",
                "nosuch=float",
            ],
            "--type `nosuch=float`: ",
        ),
        (
            vec![
                "check",
                "drift",
                "--reference",
                "data/batch.csv",
                "--current",
                "data/batch.csv",
                "--threshold",
                "nosuch=0.2",
            ],
            "--threshold: data/batch.csv has no column `nosuch`",
        ),
        (
            vec!["check", "data", "nope.csv", "--expect", "suite.yaml"],
            "nope.csv: no such file or folder",
        ),
        (
            vec![
                "check",
                "data",
                "data/batch.csv",
                "--expect",
                "missing.yaml",
            ],
            "cannot read the suite missing.yaml",
        ),
        (
            vec![
                "check",
                "drift",
                "--reference",
                "data/batch.csv",
                "--current",
                "data/batch.csv",
                "--method",
                "magic",
            ],
            "--method `magic`",
        ),
        (
            vec![
                "check",
                "drift",
                "--reference",
                "data/batch.csv",
                "--current",
                "data/batch.csv",
                "--columns",
                "nope",
            ],
            "no column `nope`",
        ),
        (
            vec!["data", "profile", "data/batch.csv", "--type", "price"],
            "--type `price`: write COLUMN=TYPE",
        ),
    ] {
        let o = p.ferry(&args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(
            o.stderr.contains(want),
            "{args:?}: missing {want:?} in {o:?}"
        );
    }
}

#[test]
fn a_run_that_changes_nothing_keeps_the_reports_as_they_are_without_copying_them() {
    let p = project();
    let (code, _) = p.run_json(&[]);
    assert_eq!(code, 0);
    let (code, rep) = p.run_json(&[]);
    assert_eq!(code, 0, "{rep}");
    assert!(
        stage_statuses(&rep).iter().all(|(_, s)| s == "up_to_date"),
        "{rep}"
    );
    let run = rep["run_id"].as_str().unwrap();
    let kept: Vec<std::path::PathBuf> = glob_files(&p.path().join(".ferry/artifacts"))
        .into_iter()
        .filter(|f| f.contains(run) && f.contains("/artifacts/checks/"))
        .map(std::path::PathBuf::from)
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    let objects = glob_files(&p.path().join(".ferry/cache/objects"));
    for f in &kept {
        let name = f.file_name().unwrap().to_str().unwrap();
        // The same bytes as the report the check wrote ...
        assert_eq!(
            std::fs::read(f).unwrap(),
            std::fs::read(p.path().join("reports").join(name)).unwrap(),
            "{name}"
        );
        // ... by a link to the cache's copy of it: nothing copied or synced
        // but the folder, and no temporary left beside it.
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(f).unwrap().ino();
        assert!(
            objects
                .iter()
                .any(|o| std::fs::metadata(o).is_ok_and(|m| m.ino() == ino)),
            "{name} is not the cache's object"
        );
    }
    let left: Vec<_> = std::fs::read_dir(kept[0].parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn glob_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

/// A CSV separated by something else than commas reads as one column: the
/// check says how to read it.
#[test]
fn a_csv_with_another_separator_gets_a_delimiter_hint() {
    let p = Proj::new("stages: {}\n");
    p.write("semi.csv", "a;b;c\n1;2;3\n");
    p.write("suite.yaml", "columns:\n  a: {not_null: true}\n");
    let o = p.ferry(&["check", "data", "semi.csv", "--expect", "suite.yaml"]);
    assert!(
        o.stderr.contains("reads as one column named `a;b;c`; if its fields are separated by ';', pass --delimiter ';'"),
        "{o:?}"
    );
    let o = p.ferry(&[
        "check",
        "data",
        "semi.csv",
        "--expect",
        "suite.yaml",
        "--delimiter",
        ";",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!o.stderr.contains("hint:"), "{o:?}");
}

/// `ferry check data` names failing rows by their file's own line
/// (`file:line` when the table has several files) and gives shares as
/// percentages, in the text, the JSON and the HTML report.
#[test]
fn check_data_output_says_where_and_how_many() {
    let p = project();
    p.write("data/bad.csv", &table(150, &[5]));
    let filters = vec![(r"\d+\.\d\d s\)", "[secs] s)")];
    let o = p.ferry(&[
        "check",
        "data",
        "data/bad.csv",
        "--expect",
        "expectations.yaml",
    ]);
    assert_eq!(o.code, 3, "{o:?}");
    insta::with_settings!({filters => filters.clone()}, {
        insta::assert_snapshot!("check_data_text", o.stdout);
    });
    let o = p.ferry(&[
        "check",
        "data",
        "data/bad.csv",
        "--expect",
        "expectations.yaml",
        "--json",
        "--html",
        "r.html",
    ]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let between = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "price.between")
        .unwrap();
    insta::assert_json_snapshot!("check_data_json_sample", between["sample"]);
    assert_eq!(v["files"], serde_json::json!(["data/bad.csv"]));
    let html = p.read("r.html");
    assert!(html.contains("<td>line 7</td>"), "{html}");
    assert!(html.contains("1 row (0.67%)"), "{html}");
    // A folder of files: the file and its line.
    p.write("data/parts/a.csv", &table(3, &[]));
    p.write("data/parts/b.csv", &table(3, &[1]));
    let o = p.ferry(&[
        "check",
        "data",
        "data/parts",
        "--expect",
        "expectations.yaml",
    ]);
    assert!(
        o.stdout
            .contains("1 row (16.67%), e.g. data/parts/b.csv:3 = 250"),
        "{o:?}"
    );
}

/// `ferry check drift` (and a drift stage) says how many rows each column's
/// test used, and points it out when they are far fewer than the table's:
/// a prediction log whose rows mostly lack `price`.
#[test]
fn check_drift_output_says_how_many_rows_each_test_used() {
    let p = project();
    let filters = vec![(r"\d+\.\d\d s\)", "[secs] s)")];
    let mut log = String::new();
    for i in 0..2000 {
        if i % 100 == 0 {
            log.push_str(&format!("{{\"price\": {}.5, \"kind\": \"a\"}}\n", i % 97));
        } else {
            log.push_str("{\"X_0\": 1.5, \"kind\": \"b\"}\n");
        }
    }
    p.write("log.jsonl", &log);
    let o = p.ferry(&[
        "check",
        "drift",
        "--reference",
        "data/reference.csv",
        "--current",
        "log.jsonl",
        "--columns",
        "price,kind",
        "--html",
        "d.html",
    ]);
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!("check_drift_text", o.stdout);
    });
    let html = p.read("d.html");
    assert!(
        html.contains(
            "20 / 300 rows <span class=\"warn\">(only 20 of 2,000 current rows have a value)</span>"
        ),
        "{html}"
    );
    let o = p.ferry(&[
        "check",
        "drift",
        "--reference",
        "data/reference.csv",
        "--current",
        "log.jsonl",
        "--columns",
        "price,kind",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["current_rows"], 2000);
    assert_eq!(v["columns"][0]["column"], "price");
    assert_eq!(
        (
            &v["columns"][0]["current_rows"],
            &v["columns"][0]["reference_rows"]
        ),
        (&serde_json::json!(20), &serde_json::json!(300))
    );
    assert_eq!(v["columns"][1]["current_rows"], 2000);
    // The same in a pipeline's drift stage log.
    p.write(
        "ferry.yaml",
        "stages:\n  drift:\n    check: drift\n    reference: data/reference.csv\n    current: log.jsonl\n    columns: [price, kind]\n    warn_only: true\n",
    );
    let o = p.ferry(&["run"]);
    assert!(
        o.stdout
            .contains("on 20 / 300 rows (only 20 of 2,000 current rows have a value)")
            || o.stderr
                .contains("on 20 / 300 rows (only 20 of 2,000 current rows have a value)"),
        "{o:?}"
    );
}

/// `n` reviews of 8 words, every other one from `topic` (deterministic).
fn reviews(n: usize, topic: &[&str], salt: usize) -> String {
    const COMMON: [&str; 12] = [
        "product", "bought", "really", "quality", "price", "happy", "item", "order", "works",
        "great", "value", "money",
    ];
    let mut s = String::from("review,stars\n");
    for i in 0..n {
        let words: Vec<&str> = (0..8)
            .map(|k| {
                let h = (i * 31 + k * 17 + salt * 7 + (i * k) % 13) % 997;
                if k % 2 == 0 {
                    COMMON[h % COMMON.len()]
                } else {
                    topic[h % topic.len()]
                }
            })
            .collect();
        s.push_str(&format!("{},{}\n", words.join(" "), 1 + i % 5));
    }
    s
}

/// `ferry check drift` on a text column: the domain classifier compares
/// it (the method for every column leaves text to it), the words telling
/// the tables apart and the descriptors under it; a method for the column
/// itself wins.
#[test]
fn check_drift_compares_text_with_a_domain_classifier() {
    const DELIVERY: [&str; 10] = [
        "delivery",
        "courier",
        "package",
        "arrived",
        "late",
        "shipping",
        "parcel",
        "driver",
        "doorstep",
        "warehouse",
    ];
    const BATTERY: [&str; 10] = [
        "battery",
        "charge",
        "charging",
        "hours",
        "drains",
        "lasts",
        "charger",
        "overnight",
        "standby",
        "capacity",
    ];
    let p = project();
    p.write("data/reviews.csv", &reviews(300, &DELIVERY, 1));
    p.write("data/now.csv", &reviews(300, &BATTERY, 2));
    let args = [
        "check",
        "drift",
        "--reference",
        "data/reviews.csv",
        "--current",
        "data/now.csv",
        "--method",
        "psi",
    ];
    let o = p.ferry(&args);
    assert_eq!(o.code, 3, "{o:?}");
    let filters = vec![(r"\d+\.\d\d s\)", "[secs] s)")];
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!("check_drift_text_column", o.stdout);
    });
    let o = p.ferry(&[&args[..], &["--json", "--html", "t.html"]].concat());
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let review = &v["columns"][0];
    assert_eq!(
        (
            &review["method"],
            &review["text"]["classifier"]["threshold_from"]
        ),
        (
            &serde_json::json!("domain_classifier"),
            &serde_json::json!("random_classifier")
        )
    );
    assert_eq!(v["columns"][1]["method"], "psi");
    assert!(
        p.read("t.html")
            .contains("typical words in current: <code>")
    );
    // A method for the column itself: the texts as levels.
    let o = p.ferry(&[&args[..6], &["--method", "review=psi,psi", "--json"]].concat());
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["columns"][0]["method"], "psi", "{o:?}");
    for (method, want) in [
        (
            "review=ks",
            "column `review`: Kolmogorov-Smirnov p-value needs numbers; the column is text",
        ),
        (
            "stars=domain_classifier",
            "column `stars`: the domain classifier needs text; the column is categorical",
        ),
        (
            "nosuch=psi",
            "--method: data/reviews.csv has no column `nosuch`",
        ),
        ("review=magic", "--method `review=magic`: methods: "),
    ] {
        let o = p.ferry(&[&args[..6], &["--method", method]].concat());
        assert_eq!(o.code, 2, "{method}: {o:?}");
        assert!(
            o.stderr.contains(want),
            "{method}: missing {want:?} in {o:?}"
        );
    }
}
