//! The runner's scheduler driven through a fake executor: no process is
//! started. A stage's `cmd` is a little script the fake plays:
//! `write PATH` (the stage name and attempt into PATH), `sleep MS`,
//! `fail CODE`, `flaky N` (fail the first N attempts), `wait-cancel`
//! (until the run is cancelled), `use CPU_MS RSS_BYTES` (what the attempt
//! reports it used), separated by `;`.

#![allow(clippy::unwrap_used)]

use ferry_executor::{CancelToken, Exit, Outcome, OutputSink, Stream};
use ferry_metadata::{RunStatus, StageStatus};
use ferry_runner::{Event, Executor, Project, Reporter, RunOptions, RunReport, StageCommand};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One attempt the fake played.
#[derive(Debug, Clone)]
struct Call {
    stage: String,
    env: Vec<(String, String)>,
    cwd: std::path::PathBuf,
    began: Instant,
    ended: Instant,
}

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<Call>>,
    attempts: Mutex<HashMap<String, u32>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    /// What `use` said each stage used: CPU ms and peak bytes.
    used: Mutex<HashMap<String, (u64, u64)>>,
}

impl Fake {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn started(&self) -> Vec<String> {
        let mut c = self.calls();
        c.sort_by_key(|c| c.began);
        c.into_iter().map(|c| c.stage).collect()
    }
    fn play(&self, cmd: &StageCommand, attempt: u32, cancel: &CancelToken) -> Exit {
        for step in cmd.cmd.split(';').map(str::trim) {
            let (verb, arg) = step.split_once(' ').unwrap_or((step, ""));
            match verb {
                "write" => {
                    let p = cmd.cwd.join(arg);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, format!("{} {attempt}\n", cmd.stage)).unwrap();
                }
                "sleep" => std::thread::sleep(Duration::from_millis(arg.parse().unwrap())),
                "fail" => return Exit::Code(arg.parse().unwrap()),
                "flaky" if attempt <= arg.parse().unwrap() => return Exit::Code(1),
                "flaky" => {}
                "use" => {
                    let (cpu, rss) = arg.split_once(' ').unwrap();
                    let used = (cpu.parse().unwrap(), rss.parse().unwrap());
                    self.used.lock().unwrap().insert(cmd.stage.clone(), used);
                }
                "wait-cancel" => {
                    while !cancel.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    return Exit::Cancelled;
                }
                other => panic!("the fake cannot play `{other}`"),
            }
        }
        Exit::Code(0)
    }
}

impl Executor for Fake {
    fn execute(
        &self,
        cmd: &StageCommand,
        sink: Arc<dyn OutputSink>,
        cancel: &CancelToken,
    ) -> Outcome {
        let began = Instant::now();
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(cmd.stage.clone()).or_default();
            *n += 1;
            *n
        };
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        sink.line(&cmd.stage, Stream::Stdout, &format!("attempt {attempt}"));
        let exit = self.play(cmd, attempt, cancel);
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.calls.lock().unwrap().push(Call {
            stage: cmd.stage.clone(),
            env: cmd.env.clone(),
            cwd: cmd.cwd.clone(),
            began,
            ended: Instant::now(),
        });
        let (cpu_ms, rss) = self
            .used
            .lock()
            .unwrap()
            .get(&cmd.stage)
            .copied()
            .unwrap_or_default();
        Outcome {
            exit,
            wall: began.elapsed(),
            user_cpu: Duration::from_millis(cpu_ms),
            sys_cpu: Duration::ZERO,
            max_rss_bytes: rss,
            log_truncated_bytes: 0,
        }
    }
}

/// Keeps every event, as its debug text.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl OutputSink for Events {
    fn line(&self, _: &str, _: Stream, _: &str) {}
}

impl Reporter for Events {
    fn event(&self, event: Event<'_>) {
        self.0.lock().unwrap().push(format!("{event:?}"));
    }
}

struct Proj {
    dir: tempfile::TempDir,
    fake: Arc<Fake>,
    events: Arc<Events>,
}

impl Proj {
    fn new(spec: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ferry.yaml"), spec).unwrap();
        Self {
            dir,
            fake: Arc::new(Fake::default()),
            events: Arc::new(Events::default()),
        }
    }
    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }
    fn run_opts(&self, opts: &RunOptions, cancel: &CancelToken) -> RunReport {
        let project = Project::load(self.dir.path()).unwrap();
        ferry_runner::run_with(
            &project,
            opts,
            self.fake.clone(),
            self.events.clone(),
            cancel,
        )
        .unwrap()
    }
    fn run(&self, jobs: usize) -> RunReport {
        let opts = RunOptions {
            jobs,
            ..RunOptions::default()
        };
        self.run_opts(&opts, &CancelToken::new())
    }
}

fn statuses(r: &RunReport) -> Vec<(String, StageStatus)> {
    r.stages
        .iter()
        .map(|s| (s.stage.clone(), s.status))
        .collect()
}

fn stage<'r>(r: &'r RunReport, name: &str) -> &'r ferry_metadata::StageRecord {
    r.stages.iter().find(|s| s.stage == name).unwrap()
}

fn pos(order: &[String], stage: &str) -> usize {
    order.iter().position(|s| s == stage).unwrap()
}

fn overlap(a: &Call, b: &Call) -> bool {
    a.began < b.ended && b.began < a.ended
}

#[test]
fn stages_run_in_topological_order() {
    // Declared out of order: `c` needs `b`, which needs `a`.
    let p = Proj::new(
        "stages:
  c:
    cmd: write c.txt
    deps: [b.txt]
    outs: [c.txt]
  d:
    cmd: write d.txt
    outs: [d.txt]
  b:
    cmd: write b.txt
    deps: [a.txt]
    outs: [b.txt]
  a:
    cmd: write a.txt
    outs: [a.txt]
",
    );
    for jobs in [1, 4] {
        let r = p.run_opts(
            &RunOptions {
                jobs,
                force: true,
                ..RunOptions::default()
            },
            &CancelToken::new(),
        );
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    }
    let calls = p.fake.calls();
    assert_eq!(calls.len(), 8);
    for run in [&calls[..4], &calls[4..]] {
        let by = |s: &str| run.iter().find(|c| c.stage == s).unwrap();
        // Each starts after what it needs has ended.
        assert!(by("b").began >= by("a").ended);
        assert!(by("c").began >= by("b").ended);
    }
    // With one job, one at a time, in an order that respects the edges.
    let first: Vec<String> = {
        let mut c = calls[..4].to_vec();
        c.sort_by_key(|c| c.began);
        c.into_iter().map(|c| c.stage).collect()
    };
    assert!(pos(&first, "a") < pos(&first, "b") && pos(&first, "b") < pos(&first, "c"));
    // The report lists the stages in the pipeline's (topological) order.
    let r = p.run(1);
    let order: Vec<String> = r.stages.iter().map(|s| s.stage.clone()).collect();
    assert!(pos(&order, "a") < pos(&order, "b") && pos(&order, "b") < pos(&order, "c"));
    assert!(r.stages.iter().all(|s| s.status == StageStatus::UpToDate));
}

const FOUR: &str = "stages:
  s1:
    cmd: write 1.txt; sleep 250
    outs: [1.txt]
  s2:
    cmd: write 2.txt; sleep 250
    outs: [2.txt]
  s3:
    cmd: write 3.txt; sleep 250
    outs: [3.txt]
  s4:
    cmd: write 4.txt; sleep 250
    outs: [4.txt]
";

#[test]
fn jobs_bound_how_many_stages_run_at_once() {
    for (jobs, peak) in [(1, 1), (2, 2), (8, 4)] {
        let p = Proj::new(FOUR);
        let r = p.run(jobs);
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        assert_eq!(p.fake.peak.load(Ordering::SeqCst), peak, "-j {jobs}");
        let calls = p.fake.calls();
        let overlapping = calls
            .iter()
            .enumerate()
            .any(|(i, a)| calls[i + 1..].iter().any(|b| overlap(a, b)));
        // Independent stages overlap unless one job is all there is.
        assert_eq!(overlapping, jobs > 1, "-j {jobs}: {calls:?}");
    }
}

#[test]
fn a_failure_skips_only_its_dependents() {
    let p = Proj::new(
        "stages:
  a:
    cmd: write a.txt; fail 3
    outs: [a.txt]
  b:
    cmd: write b.txt
    deps: [a.txt]
    outs: [b.txt]
  c:
    cmd: write c.txt
    deps: [b.txt]
    outs: [c.txt]
  d:
    cmd: write d.txt
    outs: [d.txt]
",
    );
    let r = p.run(1);
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(
        statuses(&r),
        [
            ("a".into(), StageStatus::Failed),
            ("b".into(), StageStatus::Skipped),
            ("c".into(), StageStatus::Skipped),
            ("d".into(), StageStatus::Ran),
        ]
    );
    let a = stage(&r, "a");
    assert_eq!(a.exit_code, Some(3));
    assert_eq!(a.error.as_deref(), Some("the command exited with code 3"));
    assert_eq!(
        stage(&r, "b").reason.as_deref(),
        Some("an upstream stage failed")
    );
    assert_eq!(
        stage(&r, "c").reason.as_deref(),
        Some("an upstream stage failed")
    );
    let mut started = p.fake.started();
    started.sort();
    assert_eq!(
        started,
        ["a", "d"],
        "skipped stages never reach the executor"
    );
}

#[test]
fn a_stage_that_does_not_write_its_out_fails() {
    let p = Proj::new(
        "stages:
  a:
    cmd: sleep 1
    outs: [a.txt]
",
    );
    let r = p.run(1);
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(
        stage(&r, "a").error.as_deref(),
        Some("the command succeeded but did not write its out `a.txt`")
    );
}

#[test]
fn retries_until_an_attempt_succeeds_and_announce_each() {
    let p = Proj::new(
        "stages:
  flaky:
    cmd: flaky 2; write f.txt
    outs: [f.txt]
    retries: 2
  hopeless:
    cmd: fail 4
    retries: 1
",
    );
    let r = p.run(1);
    assert_eq!(r.status, RunStatus::Failed);
    let flaky = stage(&r, "flaky");
    assert_eq!((flaky.status, flaky.attempts), (StageStatus::Ran, 3));
    assert_eq!(
        std::fs::read_to_string(p.path("f.txt")).unwrap(),
        "flaky 3\n"
    );
    let hopeless = stage(&r, "hopeless");
    assert_eq!(
        (hopeless.status, hopeless.attempts, hopeless.exit_code),
        (StageStatus::Failed, 2, Some(4))
    );
    let events = p.events.0.lock().unwrap().clone();
    let starts: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("StageStarted"))
        .collect();
    assert_eq!(
        starts,
        [
            r#"StageStarted { stage: "flaky", reason: "never ran", attempt: 1 }"#,
            r#"StageStarted { stage: "flaky", reason: "retry after it exited with code 1", attempt: 2 }"#,
            r#"StageStarted { stage: "flaky", reason: "retry after it exited with code 1", attempt: 3 }"#,
            r#"StageStarted { stage: "hopeless", reason: "never ran", attempt: 1 }"#,
            r#"StageStarted { stage: "hopeless", reason: "retry after it exited with code 4", attempt: 2 }"#,
        ]
    );
}

#[test]
fn cancellation_stops_the_running_stage_and_starts_no_other() {
    let p = Proj::new(
        "stages:
  a:
    cmd: wait-cancel
    outs: [a.txt]
  b:
    cmd: write b.txt
    deps: [a.txt]
    outs: [b.txt]
  c:
    cmd: write c.txt
    outs: [c.txt]
",
    );
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    let fake = p.fake.clone();
    std::thread::spawn(move || {
        // Once `a` is running.
        while fake.running.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        c2.cancel();
    });
    let began = Instant::now();
    let r = p.run_opts(
        &RunOptions {
            jobs: 1,
            ..RunOptions::default()
        },
        &cancel,
    );
    assert!(began.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status, RunStatus::Cancelled);
    let a = stage(&r, "a");
    assert_eq!(
        (a.status, a.error.as_deref()),
        (StageStatus::Cancelled, Some("cancelled"))
    );
    for s in ["b", "c"] {
        let o = stage(&r, s);
        assert_eq!(
            (o.status, o.reason.as_deref()),
            (StageStatus::Cancelled, Some("not started"))
        );
    }
    assert_eq!(p.fake.started(), ["a"]);
    // Stages never started are not announced as finished.
    let events = p.events.0.lock().unwrap().clone();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("StageFinished"))
            .count(),
        1,
        "{events:#?}"
    );
}

#[test]
fn restore_or_run_is_decided_from_the_lock_and_the_run_cache() {
    let p = Proj::new(
        "stages:
  a:
    cmd: write out/a.txt
    deps: [in.txt]
    outs: [out/a.txt]
",
    );
    p.write("in.txt", "one");
    let only = |r: &RunReport| {
        let s = stage(r, "a");
        (s.status, s.reason.clone().unwrap_or_default())
    };
    let r = p.run(1);
    assert_eq!(only(&r), (StageStatus::Ran, "never ran".into()));
    let call = &p.fake.calls()[0];
    assert_eq!(call.cwd, p.dir.path());
    let env: HashMap<&str, &str> = call
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env["FERRY_STAGE"], "a");
    assert_eq!(env["FERRY_RUN_ID"], r.run_id.as_deref().unwrap());
    assert_eq!(Path::new(env["FERRY_PROJECT_ROOT"]), p.dir.path());
    // Nothing changed: up to date, nothing runs.
    let r = p.run(1);
    assert_eq!(only(&r), (StageStatus::UpToDate, "up to date".into()));
    // The out is gone: the run cache has it for these inputs.
    std::fs::remove_file(p.path("out/a.txt")).unwrap();
    let r = p.run(1);
    assert_eq!(only(&r).0, StageStatus::Restored);
    assert_eq!(
        std::fs::read_to_string(p.path("out/a.txt")).unwrap(),
        "a 1\n"
    );
    // New inputs: it runs.
    p.write("in.txt", "two");
    let r = p.run(1);
    assert_eq!(only(&r).0, StageStatus::Ran);
    assert_eq!(
        std::fs::read_to_string(p.path("out/a.txt")).unwrap(),
        "a 2\n"
    );
    // The old inputs again: their outputs come back from the cache.
    p.write("in.txt", "one");
    let r = p.run(1);
    assert_eq!(only(&r).0, StageStatus::Restored);
    assert_eq!(
        std::fs::read_to_string(p.path("out/a.txt")).unwrap(),
        "a 1\n"
    );
    // --force runs whatever the cache has.
    let r = p.run_opts(
        &RunOptions {
            force: true,
            jobs: 1,
            ..RunOptions::default()
        },
        &CancelToken::new(),
    );
    assert_eq!(only(&r), (StageStatus::Ran, "forced".into()));
    assert_eq!(p.fake.calls().len(), 3);
    // What `status` predicts is what `run` did.
    let st = ferry_runner::status(&Project::load(p.dir.path()).unwrap(), &[]).unwrap();
    assert!(st.up_to_date());
}

#[test]
fn a_missing_dep_fails_its_stage_before_the_executor() {
    let p = Proj::new(
        "stages:
  a:
    cmd: write a.txt
    deps: [in.txt]
    outs: [a.txt]
",
    );
    p.write("in.txt", "x");
    let project = Project::load(p.dir.path()).unwrap();
    std::fs::remove_file(p.path("in.txt")).unwrap();
    let r = ferry_runner::run_with(
        &project,
        &RunOptions::default(),
        p.fake.clone(),
        p.events.clone(),
        &CancelToken::new(),
    )
    .unwrap();
    let a = stage(&r, "a");
    assert_eq!(
        (a.status, a.reason.as_deref(), a.error.as_deref()),
        (
            StageStatus::Failed,
            Some("dep in.txt missing"),
            Some("dependency `in.txt` does not exist")
        )
    );
    assert!(p.fake.calls().is_empty());
}

#[test]
fn stages_that_run_get_the_runs_mlflow_endpoint() {
    let p = Proj::new(
        "stages:
  a:
    cmd: write a.txt
    outs: [a.txt]
",
    );
    let r = p.run(1);
    let env: HashMap<String, String> = p.fake.calls()[0].env.iter().cloned().collect();
    if std::env::var_os("FERRY_NO_TRACKING").is_some() {
        assert!(!env.contains_key("MLFLOW_TRACKING_URI"));
        return;
    }
    assert!(
        env["MLFLOW_TRACKING_URI"].starts_with("http://127.0.0.1:"),
        "{env:?}"
    );
    assert_eq!(env["MLFLOW_RUN_ID"], r.run_id.clone().unwrap());
    assert!(env.contains_key("MLFLOW_EXPERIMENT_ID"));
}

#[test]
fn stages_are_charged_on_their_requests_or_their_use_and_restored_ones_cost_nothing() {
    let p = Proj::new(
        "cost:
  machine: gcp-us-central1
stages:
  asks:
    cmd: sleep 20; write out/a.txt
    outs: [out/a.txt]
    resources: {cpus: 2, memory: 4Gi}
  uses:
    cmd: use 30000 2147483648; write out/b.txt
    outs: [out/b.txt]
",
    );
    // The shipped N2 prices of gcp-us-central1, by hand.
    let (vcpu, gib) = (0.031611, 0.004237);
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} != {b}");
    let r = p.run(1);
    let asks = stage(&r, "asks");
    let hours = asks.wall_ms.unwrap() as f64 / 3_600_000.0;
    assert!(hours > 0.0);
    let c = asks.cost.as_ref().unwrap();
    assert_eq!(
        (c.basis, c.machine.as_str()),
        (ferry_cost::Basis::Requested, "gcp-us-central1")
    );
    close(c.charged, hours * (2.0 * vcpu + 4.0 * gib));
    close(c.requested.unwrap(), c.charged);
    close(c.used, 0.0);
    let uses = stage(&r, "uses");
    let hours = uses.wall_ms.unwrap() as f64 / 3_600_000.0;
    let c = uses.cost.as_ref().unwrap();
    assert_eq!((c.basis, c.requested), (ferry_cost::Basis::Used, None));
    // 30 s of CPU, and 2 GiB for as long as it ran.
    close(c.charged, 30.0 / 3600.0 * vcpu + 2.0 * hours * gib);
    // Up to date, then restored from the run cache: nothing ran, nothing charged.
    let r = p.run(1);
    let c = stage(&r, "asks").cost.clone().unwrap();
    assert_eq!((c.basis, c.charged), (ferry_cost::Basis::Restored, 0.0));
    std::fs::remove_file(p.path("out/b.txt")).unwrap();
    let r = p.run(1);
    assert_eq!(stage(&r, "uses").status, StageStatus::Restored);
    let c = stage(&r, "uses").cost.clone().unwrap();
    assert_eq!((c.basis, c.charged), (ferry_cost::Basis::Restored, 0.0));
}
