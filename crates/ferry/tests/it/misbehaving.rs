//! Stages that fail, hang, flood their logs or get killed; ferry itself
//! killed mid-run.

use crate::support::*;
use std::time::{Duration, Instant};

#[test]
fn a_failing_stage_stops_its_dependents_and_is_never_cached() {
    let p = Proj::new(
        r#"
stages:
  ok:
    cmd: echo fine > ok.txt
    outs: [ok.txt]
  bad:
    cmd: echo partial > bad.out && echo boom >&2 && exit 7
    outs: [bad.out]
  after:
    cmd: cat bad.out > after.out
    deps: [bad.out]
    outs: [after.out]
"#,
    );
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 1);
    assert_eq!(r["status"], "failed");
    assert_eq!(
        stage_statuses(&r),
        pairs(&[("ok", "ran"), ("bad", "failed"), ("after", "skipped")])
    );
    let bad = &r["stages"][1];
    assert_eq!(bad["exit_code"], 7);
    assert_eq!(bad["error"], "the command exited with code 7");
    assert!(
        std::fs::read_to_string(bad["log"].as_str().unwrap())
            .unwrap()
            .contains("boom")
    );
    // The lock knows `ok` but not `bad`, and the partial output is not cached.
    let lock = p.read("ferry.lock");
    assert!(lock.contains("  ok:") && !lock.contains("  bad:"), "{lock}");
    let objects = walk(&p.path().join(".ferry/cache/objects"));
    assert_eq!(objects, 1, "only ok.txt is cached");
    assert!(p.status().contains("bad    will run: never ran"));
}

/// Running, not a zombie waiting for its reaper.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn a_stage_that_forgets_an_out_fails() {
    let p = Proj::new("stages:\n  s:\n    cmd: 'true'\n    outs: [never.txt]\n");
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 1);
    assert_eq!(
        r["stages"][0]["error"],
        "the command succeeded but did not write its out `never.txt`"
    );
}

#[test]
fn a_hanging_stage_times_out_and_its_group_is_killed() {
    let p = Proj::new(
        "stages:\n  hang:\n    cmd: (sleep 60 & echo $! > child.pid; wait)\n    timeout: 1s\n",
    );
    let started = Instant::now();
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(r["stages"][0]["error"], "the command timed out");
    let pid: i32 = p.read("child.pid").trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(pid), "the grandchild must be gone");
}

#[test]
fn retries_give_a_flaky_stage_another_chance() {
    let p = Proj::new(
        "stages:\n  flaky:\n    cmd: if [ -f tried ]; then echo ok > out.txt; else touch tried; exit 1; fi\n    outs: [out.txt]\n    retries: 2\n",
    );
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["stages"][0]["attempts"], 2);
}

#[test]
fn a_flooding_stage_is_captured_without_stalling() {
    let p = Proj::new("stages:\n  flood:\n    cmd: seq 1 300000; seq 1 300000 >&2\n");
    let started = Instant::now();
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0);
    assert!(started.elapsed() < Duration::from_secs(60));
    let log = std::fs::read_to_string(r["stages"][0]["log"].as_str().unwrap()).unwrap();
    assert_eq!(log.lines().count(), 600_000);
}

#[test]
fn independent_stages_run_in_parallel() {
    let spec = "stages:\n  a:\n    cmd: sleep 1 && echo a > a.txt\n    outs: [a.txt]\n  b:\n    cmd: sleep 1 && echo b > b.txt\n    outs: [b.txt]\n  c:\n    cmd: cat a.txt b.txt > c.txt\n    deps: [a.txt, b.txt]\n    outs: [c.txt]\n";
    let p = Proj::new(spec);
    let started = Instant::now();
    let (code, _) = p.run_json(&["--jobs", "2"]);
    assert_eq!(code, 0);
    let parallel = started.elapsed();
    assert!(parallel < Duration::from_millis(1900), "{parallel:?}");
    let p = Proj::new(spec);
    let started = Instant::now();
    let (code, _) = p.run_json(&["--jobs", "1"]);
    assert_eq!(code, 0);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(p.read("c.txt"), "a\nb\n");
}

fn wait_for(p: &Proj, rel: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.path().join(rel).exists() {
        assert!(Instant::now() < deadline, "{rel} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SLOW: &str = "stages:\n  quick:\n    cmd: echo q > q.txt\n    outs: [q.txt]\n  slow:\n    cmd: echo $$ > slow.pid; sleep 60; echo s > s.txt\n    deps: [q.txt]\n    outs: [s.txt]\n";

#[test]
fn ctrl_c_kills_the_stage_and_records_the_run_as_cancelled() {
    let p = Proj::new(SLOW);
    let mut child = p
        .cmd(&["run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&p, "slow.pid");
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let pid: i32 = p.read("slow.pid").trim().parse().unwrap();
    assert!(!alive(pid), "the stage must be killed");
    let runs: serde_json::Value =
        serde_json::from_str(&p.ferry(&["runs", "list", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["status"], "cancelled");
    // `quick` finished before the interrupt and stays done.
    assert!(p.status().contains("quick  up to date"));
}

#[test]
fn killing_ferry_mid_run_leaves_store_cache_and_lock_consistent() {
    let p = Proj::new(SLOW);
    let mut child = p
        .cmd(&["run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&p, "slow.pid");
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    // The orphaned stage is still running in its own group; end it as a
    // supervisor would.
    let pid: i32 = p.read("slow.pid").trim().parse().unwrap();
    // SAFETY: signalling a process group this test created.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    // The lock file and the cache are intact; the next run finishes the job
    // and the dead run is marked crashed.
    assert!(p.status().contains("quick  up to date"));
    p.write("ferry.yaml", &SLOW.replace("sleep 60", "true"));
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        stage_statuses(&r),
        pairs(&[("quick", "up_to_date"), ("slow", "ran")])
    );
    let runs: serde_json::Value =
        serde_json::from_str(&p.ferry(&["runs", "list", "--json"]).stdout).unwrap();
    assert_eq!(runs[1]["status"], "crashed");
}

#[test]
fn two_runs_at_once_do_not_interleave() {
    let p = Proj::new(SLOW);
    let mut child = p
        .cmd(&["run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&p, "slow.pid");
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("another `ferry run` is in progress"),
        "{o:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let pid: i32 = p.read("slow.pid").trim().parse().unwrap();
    // SAFETY: signalling a process group this test created.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
}
