//! Holes found by probing (issue 11): paths that leave the project, special
//! files, permissions of restored files, orphaned stages, leftover temporary
//! files, file names that are not UTF-8, peak memory, binary specs.

use crate::support::*;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Waits for `child` at most `limit`; kills it (and fails) if it is still
/// running then.
fn finish_within(mut child: Child, limit: Duration, what: &str) -> Out {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap().into();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let o: Out = child.wait_with_output().unwrap().into();
            panic!("{what} still running after {limit:?}: {o:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ferry_within(p: &Proj, args: &[&str], limit: Duration) -> Out {
    let child = p
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish_within(child, limit, &format!("ferry {}", args.join(" ")))
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

fn wait_for(p: &Proj, rel: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.path().join(rel).exists() || p.read(rel).trim().is_empty() {
        assert!(Instant::now() < deadline, "{rel} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

// ---- 4. outputs stay inside the project

#[test]
fn paths_that_lead_outside_the_project_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let spec = "stages:\n  s:\n    cmd: mkdir -p link && echo new > link/victim.txt\n    outs: [link/victim.txt]\n";
    let p = Proj::new(spec);
    std::os::unix::fs::symlink(outside.path(), p.path().join("link")).unwrap();
    // `run` would delete the stale out (outside) before running the stage.
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("`link/victim.txt`"), "{o:?}");
    let real = std::fs::canonicalize(outside.path()).unwrap();
    assert!(o.stderr.contains(&real.display().to_string()), "{o:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert_eq!(p.ferry(&["status"]).code, 2);

    // A restore must not write there either: cache the out with `link` a
    // real folder, then make it a link to the outside.
    std::fs::remove_file(p.path().join("link")).unwrap();
    p.run_ok();
    std::fs::remove_dir_all(p.path().join("link")).unwrap();
    std::fs::remove_file(&victim).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path().join("link")).unwrap();
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(!victim.exists(), "a restore wrote outside the project");

    // A dep that leads outside is refused as well.
    let p = Proj::new(
        "stages:\n  s:\n    cmd: cat ext/victim.txt > o.txt\n    deps: [ext/victim.txt]\n    outs: [o.txt]\n",
    );
    std::fs::write(&victim, "data").unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path().join("ext")).unwrap();
    let o = p.ferry(&["status"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("`ext/victim.txt`") && o.stderr.contains("outside the project"),
        "{o:?}"
    );
}

// ---- 5. special files do not hang ferry

#[test]
fn a_fifo_dep_is_an_error_naming_it_not_a_hang() {
    let p = Proj::new(
        "stages:\n  s:\n    cmd: echo x > o.txt\n    deps: [in.fifo, dir]\n    outs: [o.txt]\n",
    );
    mkfifo(&p.path().join("in.fifo"));
    std::fs::create_dir_all(p.path().join("dir")).unwrap();
    let o = ferry_within(&p, &["status"], Duration::from_secs(20));
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("`in.fifo`") && o.stderr.contains("FIFO"),
        "{o:?}"
    );
    let o = ferry_within(&p, &["run"], Duration::from_secs(20));
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("`in.fifo`"), "{o:?}");
    // Inside a dep folder too.
    std::fs::remove_file(p.path().join("in.fifo")).unwrap();
    p.write("in.fifo", "now a file");
    mkfifo(&p.path().join("dir/pipe"));
    let o = ferry_within(&p, &["status"], Duration::from_secs(20));
    assert!(o.stderr.contains("`dir/pipe`"), "{o:?}");
}

#[test]
fn sigterm_ends_a_run_promptly_even_beside_a_stage_with_a_fifo_dep() {
    let p = Proj::new(
        "stages:\n  slow:\n    cmd: (sleep 60 & echo $! > child.pid; wait)\n  fifo:\n    cmd: echo x > o.txt\n    deps: [in.fifo]\n    outs: [o.txt]\n",
    );
    mkfifo(&p.path().join("in.fifo"));
    let child = p
        .cmd(&["run", "--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&p, "child.pid");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = finish_within(child, Duration::from_secs(10), "ferry run after SIGTERM");
    assert_eq!(o.code, 130, "{o:?}");
    let pid: i32 = p.read("child.pid").trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(pid), "the stage's group must be stopped");
    let runs: serde_json::Value =
        serde_json::from_str(&p.ferry(&["runs", "list", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["status"], "cancelled");
    // The run lock is free again.
    let o = ferry_within(&p, &["run", "slow", "--dry-run"], Duration::from_secs(20));
    assert_eq!(o.code, 0, "{o:?}");
}

// ---- 6. restored outputs keep sane permissions

#[test]
fn restored_outputs_honour_the_umask() {
    use std::os::unix::process::CommandExt;
    let p = Proj::new(
        "stages:\n  s:\n    cmd: echo x > out.txt && echo y > run.sh && chmod +x run.sh\n    outs: [out.txt, run.sh]\n",
    );
    let run = || {
        let mut c = p.cmd(&["run"]);
        // SAFETY: umask is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                libc::umask(0o027);
                Ok(())
            });
        }
        let o: Out = c.output().unwrap().into();
        assert_eq!(o.code, 0, "{o:?}");
    };
    run();
    let mode = |rel: &str| {
        std::fs::metadata(p.path().join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!((mode("out.txt"), mode("run.sh")), (0o640, 0o750));
    std::fs::remove_file(p.path().join("out.txt")).unwrap();
    std::fs::remove_file(p.path().join("run.sh")).unwrap();
    run();
    assert_eq!(p.read("out.txt"), "x\n");
    assert_eq!((mode("out.txt"), mode("run.sh")), (0o640, 0o750));
}

// ---- 7. no orphans

#[test]
fn the_next_run_kills_the_stages_a_killed_run_left_behind() {
    let spec = "stages:\n  slow:\n    cmd: (sleep 60 & echo $! > child.pid; wait); echo late > out.txt\n    outs: [out.txt]\n";
    let p = Proj::new(spec);
    let mut child = p.cmd(&["run"]).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&p, "child.pid");
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let pid: i32 = p.read("child.pid").trim().parse().unwrap();
    assert!(alive(pid), "the grandchild is an orphan until the next run");
    p.write("ferry.yaml", &spec.replace("sleep 60", "true"));
    std::fs::remove_file(p.path().join("child.pid")).unwrap();
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    std::thread::sleep(Duration::from_millis(200));
    let still = alive(pid);
    // SAFETY: cleaning up a process this test started, should the fix fail.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(!still, "the dead run's stage group must be killed");
    let runs: serde_json::Value =
        serde_json::from_str(&p.ferry(&["runs", "list", "--json"]).stdout).unwrap();
    assert_eq!(runs[1]["status"], "crashed");
    assert!(
        !p.path().join(".ferry/runs").exists()
            || std::fs::read_dir(p.path().join(".ferry/runs"))
                .unwrap()
                .next()
                .is_none(),
        "a finished run leaves no pid files"
    );
}

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

// ---- 8. partial temporary files

#[test]
fn temporary_files_of_a_dead_run_are_swept() {
    let p = Proj::new("stages:\n  s:\n    cmd: echo x > out.txt\n    outs: [out.txt]\n");
    p.run_ok();
    // A pid that is surely dead: a child we reaped.
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    let live = std::process::id();
    let leftovers = [
        format!(".ferry/cache/objects/ab/.tmp-{dead}-0123456789abcdef"),
        format!(".ferry/cache/runs/cd/.ef01.tmp-{dead}"),
        format!(".ferry/.index.tmp-{dead}"),
        format!(".out.txt.ferry-restore-{dead}"),
        format!(".ferry/artifacts/1/r/artifacts/.ferry-publish-{dead}/model.bin"),
        format!(".ferry/artifacts/1/r/artifacts/checks/.report.json.tmp-{dead}"),
        format!(".ferry/runs/.x.pids.tmp-{dead}"),
    ];
    let kept = [
        // A live writer's.
        format!(".ferry/cache/objects/ab/.tmp-{live}-0123456789abcdef"),
        // Not ferry's: what an MLflow client logged, a user's file.
        format!(".ferry/artifacts/1/r/artifacts/model/.notes.tmp-{dead}"),
        format!("data/.notes.tmp-{dead}"),
    ];
    for f in leftovers.iter().chain(&kept) {
        p.write(f, "partial");
    }
    let o = p.ferry(&["gc"]);
    assert_eq!(o.code, 0, "{o:?}");
    for f in &leftovers {
        assert!(!p.path().join(f).exists(), "{f} left behind");
    }
    assert!(
        !p.path()
            .join(format!(
                ".ferry/artifacts/1/r/artifacts/.ferry-publish-{dead}"
            ))
            .exists()
    );
    for f in &kept {
        assert!(p.path().join(f).exists(), "{f} is not ferry's to remove");
    }
    // The run after a killed one sweeps too.
    p.write(
        "ferry.yaml",
        "stages:\n  s:\n    cmd: echo $$ > s.pid; sleep 60\n",
    );
    let mut child = p.cmd(&["run"]).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&p, "s.pid");
    let killed = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    // What it was writing when it died.
    let partial = format!(".ferry/cache/objects/ab/.tmp-{killed}-fedcba9876543210");
    p.write(&partial, "partial");
    p.write("ferry.yaml", "stages:\n  s:\n    cmd: 'true'\n");
    p.run_ok();
    assert!(!p.path().join(&partial).exists());
}

// ---- 9. file names that are not UTF-8

#[test]
fn a_dep_folder_with_a_name_that_is_not_utf8_runs_and_restores() {
    let p = Proj::new(
        "stages:\n  copy:\n    cmd: cp -r data copied\n    deps: [data]\n    outs: [copied]\n",
    );
    std::fs::create_dir_all(p.path().join("data")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(p.path().join("data").join(odd), "latin-1 name").unwrap();
    std::fs::write(p.path().join("data/plain.txt"), "plain").unwrap();
    let o = p.ferry(&["run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(p.status().contains("up to date"));
    // Editing the odd file is noticed.
    std::fs::write(p.path().join("data").join(odd), "changed").unwrap();
    assert!(
        p.status().contains("will run: dep data changed"),
        "{}",
        p.status()
    );
    // Restoring a folder out with such a name writes the very same name.
    std::fs::write(p.path().join("data").join(odd), "latin-1 name").unwrap();
    std::fs::remove_dir_all(p.path().join("copied")).unwrap();
    let (code, r) = p.run_json(&[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(stage_statuses(&r), pairs(&[("copy", "restored")]));
    assert_eq!(
        std::fs::read_to_string(p.path().join("copied").join(odd)).unwrap(),
        "latin-1 name"
    );
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

#[test]
fn servers_refuse_an_address_beyond_loopback_without_authentication() {
    let p = Proj::new("");
    for (args, exposed) in [
        (
            vec!["server", "--host", "0.0.0.0", "--port", "0"],
            "read and change every run, model and deployment",
        ),
        (
            vec!["serve", "iris", "--host", "192.0.2.1", "--port", "0"],
            "predict with every model served and send feedback",
        ),
    ] {
        let o = p.ferry(&args);
        assert_eq!(o.code, 2, "{o:?}");
        assert!(o.stderr.contains(exposed), "{o:?}");
        assert!(o.stderr.contains("--insecure-no-auth"), "{o:?}");
    }
    // Refused before anything is made.
    assert!(!p.path().join(".ferry").exists());
    let o = p.ferry(&["server", "--host", "localhost"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("is not an IP address"), "{o:?}");
}
