//! `ferry agent`, `ferry trigger` and `ferry monitor` as a user runs them,
//! on a project of shell stages: new data under `on.data` fires a run once;
//! a person's trigger queues one the next tick runs; within the cooldown a
//! firing is ignored and recorded; the readers say so in text and JSON; bad
//! flags and a misshapen `on:` are usage errors naming the place.

use crate::support::*;

const SPEC: &str = r#"
stages:
  train:
    cmd: mkdir -p work && cat data/raw/*.csv > work/model.txt && nice > work/nice.txt
    deps: [data/raw]
    outs: [work/model.txt, work/nice.txt]
on:
  data: [data/raw]
  cooldown: 1h
"#;

fn json(o: &Out) -> serde_json::Value {
    assert_eq!(o.code, 0, "{o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"))
}

#[test]
fn new_data_fires_one_run_and_a_person_queues_another() {
    let p = Proj::new(SPEC);
    p.write("data/raw/a.csv", "x\n1\n");
    p.run_ok();
    // Nothing changed: the tick fires nothing and runs nothing.
    let t = json(&p.ferry(&["agent", "--once", "--json"]));
    assert_eq!(t["fired"], serde_json::json!([]), "{t}");
    assert!(t["ran"].is_null());

    // New data: one firing, run in the same tick, recorded with its evidence.
    p.write("data/raw/b.csv", "x\n2\n");
    let t = json(&p.ferry(&["agent", "--once", "--json"]));
    assert_eq!(t["fired"][0]["outcome"], "queued", "{t}");
    let trigger = &t["fired"][0]["trigger"];
    assert_eq!(trigger["kind"], "data");
    assert!(
        trigger["evidence"]
            .as_str()
            .unwrap()
            .contains("train: dep data/raw changed"),
        "{trigger}"
    );
    let ran = &t["ran"][1];
    assert_eq!(ran["succeeded"], true, "{t}");
    assert_eq!(p.read("work/model.txt"), "x\n1\nx\n2\n");
    // The agent's runs yield the CPU (`--nice`, 10 by default).
    let nice: i32 = p.read("work/nice.txt").trim().parse().unwrap();
    assert!(nice >= 10, "{nice}");
    let run_id = ran["run_id"].as_str().unwrap();
    let show = p.ferry(&["runs", "show", run_id]);
    assert!(show.stdout.contains("trigger   data\n"), "{show:?}");
    assert!(
        show.stdout
            .contains("new data: train: dep data/raw changed"),
        "{show:?}"
    );

    // A person asks: queued, run by the next tick (a person's trigger is
    // not held back by the cooldown).
    let asked = json(&p.ferry(&["trigger", "--reason", "new params", "--json"]));
    assert_eq!(asked["outcome"], "queued");
    assert!(
        asked["trigger"]["evidence"]
            .as_str()
            .unwrap()
            .ends_with(": new params")
    );
    let t = json(&p.ferry(&["agent", "--once", "--json"]));
    assert_eq!(t["ran"][0]["kind"], "manual", "{t}");

    // More data within the cooldown: ignored, and recorded as such.
    p.write("data/raw/c.csv", "x\n3\n");
    let t = json(&p.ferry(&["agent", "--once", "--json"]));
    assert_eq!(t["fired"][0]["outcome"], "ignored", "{t}");
    assert!(t["ran"].is_null());
    let h = json(&p.ferry(&["monitor", "history", "--json"]));
    let states: Vec<&str> = h["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["ignored", "succeeded", "succeeded"]);
    let text = p.ferry(&["monitor", "history"]);
    assert!(text.stdout.contains("within the cooldown (1h)"), "{text:?}");
    let status = p.ferry(&["monitor", "status"]);
    assert!(
        status.stdout.starts_with("no monitor has run yet"),
        "{status:?}"
    );
}

#[test]
fn bad_flags_and_a_misshapen_on_block_are_usage_errors() {
    let p = Proj::new(SPEC);
    p.write("data/raw/a.csv", "x\n1\n");
    p.run_ok();
    let o = p.ferry(&["agent", "--at", "2026-12-03T14:00:00Z"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("--at needs --once"), "{o:?}");
    let o = p.ferry(&["agent", "--once", "--at", "yesterday"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("--at: `yesterday`"), "{o:?}");
    let o = p.ferry(&["agent", "--every", "0s"]);
    assert_eq!(o.code, 2, "{o:?}");
    let o = p.ferry(&["monitor", "rules"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("no `monitor:` block"), "{o:?}");
    p.write(
        "ferry.yaml",
        &SPEC.replace("cooldown: 1h", "cooldown: soon\n  schedule: \"61 * * * *\""),
    );
    let o = p.ferry(&["agent", "--once"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("on.cooldown: invalid duration `soon`"),
        "{o:?}"
    );
    assert!(
        o.stderr.contains("on.schedule: minute 61 is outside 0-59"),
        "{o:?}"
    );
}
