//! Holes found by probing (issue 11): paths that leave the project, special
//! files, permissions of restored files, orphaned stages, leftover temporary
//! files, file names that are not UTF-8, peak memory, binary specs.

use crate::support::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

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

fn wait_for(p: &Proj, rel: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.path().join(rel).exists() || p.read(rel).trim().is_empty() {
        assert!(Instant::now() < deadline, "{rel} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- 7. no orphans

#[test]
fn a_stage_leader_dies_with_ferry() {
    let p = Proj::new("stages:\n  slow:\n    cmd: echo $$ > leader.pid; exec sleep 60\n");
    let mut child = p.cmd(&["run"]).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&p, "leader.pid");
    child.kill().unwrap();
    child.wait().unwrap();
    let pid: i32 = p.read("leader.pid").trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let still = alive(pid);
    // SAFETY: cleaning up a process group this test started.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    assert!(!still, "the leader must get its parent-death signal");
}

// ---- 12. peak memory is the stage's own

#[test]
fn a_stage_after_a_big_hash_reports_its_own_peak_memory() {
    let p = Proj::new(
        "stages:\n  big:\n    cmd: head -c 400000000 /dev/zero > big.bin\n    outs: [big.bin]\n  small:\n    cmd: cat small.txt > small.out\n    deps: [big.bin, small.txt]\n    outs: [small.out]\n",
    );
    p.write("small.txt", "tiny");
    let (code, r) = p.run_json(&["--jobs", "1"]);
    assert_eq!(code, 0, "{r}");
    let peak = r["stages"][1]["max_rss_bytes"].as_i64().unwrap();
    assert!(
        peak < 100 * 1024 * 1024,
        "`cat` peaked at {} MiB",
        peak / 1024 / 1024
    );
}

// ---- 13. binary bytes in ferry.yaml

#[test]
fn binary_bytes_in_the_spec_are_a_spec_error_with_the_offset() {
    let p = Proj::new("");
    std::fs::write(
        p.path().join("ferry.yaml"),
        b"stages:\n  s:\n    cmd: echo \xff\xfe\n",
    )
    .unwrap();
    let o = p.ferry(&["status"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("ferry.yaml:3:15"), "{o:?}");
    assert!(o.stderr.contains("byte offset 27"), "{o:?}");
    assert!(!o.stderr.contains("UTF-8: stream"), "{o:?}");
}

#[test]
fn an_io_error_names_its_cause_once() {
    let p = Proj::new("stages:\n  s:\n    cmd: 'true'\n");
    std::fs::create_dir_all(p.path().join(".ferry")).unwrap();
    // The run lock's place is taken by a folder: opening it fails.
    std::fs::create_dir_all(p.path().join(".ferry/run.lock")).unwrap();
    let o = p.ferry(&["run"]);
    assert_ne!(o.code, 0, "{o:?}");
    let line = o.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    let cause = line.rsplit(": ").next().unwrap();
    assert_eq!(line.matches(cause).count(), 1, "{line}");
}
