//! Runs one stage command as a child process in its own process group.
//!
//! * stdout and stderr are read line by line, written to the stage's log file
//!   (capped, so a flooding stage cannot fill the disk) and handed to an
//!   [`OutputSink`] for the terminal;
//! * a timeout or a cancellation sends SIGTERM to the whole group, then
//!   SIGKILL after a grace period;
//! * the child is reaped with `wait4`, which gives the OS's accounting of it
//!   (user and system CPU time, peak resident memory), descendants included;
//! * on Linux the group's leader gets a parent-death signal (SIGKILL), and a
//!   [`GroupWatch`] hears of every group when it starts and when it is gone,
//!   so a run can record them and the next one can end what a killed run left
//!   behind ([`kill_stale_group`], which checks the group's start time first
//!   so that a recycled pid is never signalled).
//!
//! The child is forked, not `vfork`ed (`posix_spawn`): the kernel carries the
//! peak resident size of the address space a process leaves at `exec` into
//! its accounting, and a `vfork`ed child leaves ferry's own, so a trivial
//! stage spawned after ferry hashed a big file would report ferry's peak. A
//! forked child leaves a copy that holds only ferry's current anonymous memory.
//!
//! This is the only crate that spawns processes for stages.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub stage: String,
    /// A shell command, run with `sh -c`.
    pub cmd: String,
    pub cwd: PathBuf,
    /// Variables added to (or replacing in) the inherited environment.
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// Where the combined output goes.
    pub log_path: PathBuf,
    /// Told of the job's process group when it starts and when it is gone.
    pub watch: Option<Arc<dyn GroupWatch>>,
}

/// A process group this crate started, identified beyond its id: the
/// leader's start time (clock ticks after boot, `/proc/<pid>/stat` field 22)
/// tells the group from a later one that reuses the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub pgid: i32,
    pub start_ticks: u64,
}

/// Hears of the process groups of jobs (to record them where a later process
/// can find them, should this one die).
pub trait GroupWatch: Send + Sync + std::fmt::Debug {
    /// The group exists; its leader is about to run the command.
    fn started(&self, group: Group);
    /// The group is gone: its leader is reaped and its members killed.
    fn ended(&self, group: Group);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives output lines as they come.
pub trait OutputSink: Send + Sync {
    fn line(&self, stage: &str, stream: Stream, line: &str);
}

/// A sink that drops everything.
pub struct Discard;

impl OutputSink for Discard {
    fn line(&self, _: &str, _: Stream, _: &str) {}
}

/// Shared flag that stops every running job when set.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code (0 is success).
    Code(i32),
    /// Killed by this signal, not by ferry.
    Signal(i32),
    TimedOut,
    Cancelled,
    /// Could not be started at all.
    SpawnFailed(String),
    /// Ended for a reason outside the command, as where it ran tells it
    /// (a cluster's: killed out of memory, no node fits, the image cannot
    /// be pulled) or its outputs could not be brought back.
    Failed(String),
}

impl Outcome {
    /// An attempt that ended with `exit` after `wall`, having used nothing
    /// this machine measured (one that never started, or ran elsewhere).
    pub fn of(exit: Exit, wall: Duration) -> Self {
        Outcome {
            exit,
            wall,
            user_cpu: Duration::ZERO,
            sys_cpu: Duration::ZERO,
            max_rss_bytes: 0,
            log_truncated_bytes: 0,
        }
    }
}

impl Exit {
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
    /// An exit code for records: the process's, 128+signal, or -1.
    pub fn code(&self) -> Option<i32> {
        match self {
            Exit::Code(c) => Some(*c),
            Exit::Signal(s) => Some(128 + s),
            _ => None,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Exit::Code(c) => format!("exited with code {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
            Exit::TimedOut => "timed out".into(),
            Exit::Cancelled => "cancelled".into(),
            Exit::SpawnFailed(e) => format!("could not start: {e}"),
            Exit::Failed(why) => format!("failed: {why}"),
        }
    }
}

/// How one attempt ended, with the OS's accounting of it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    pub wall: Duration,
    pub user_cpu: Duration,
    pub sys_cpu: Duration,
    /// Peak resident set size of the child or its largest descendant, bytes.
    pub max_rss_bytes: u64,
    /// Bytes of output the log could not keep.
    pub log_truncated_bytes: u64,
}

/// The most a stage's log file keeps; the rest is counted, not written.
pub const LOG_CAP_BYTES: u64 = 64 * 1024 * 1024;
/// Grace between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);
/// Longest line handed to the sink; longer lines are split.
const MAX_LINE: usize = 64 * 1024;

struct Log {
    file: Option<std::fs::File>,
    written: u64,
    dropped: u64,
}

impl Log {
    fn write(&mut self, bytes: &[u8]) {
        if self.written + bytes.len() as u64 > LOG_CAP_BYTES {
            if self.dropped == 0
                && let Some(f) = self.file.as_mut()
            {
                let _ = f.write_all(b"\n[ferry: log truncated at the 64 MiB cap]\n");
            }
            self.dropped += bytes.len() as u64;
            return;
        }
        if let Some(f) = self.file.as_mut()
            && f.write_all(bytes).is_ok()
        {
            self.written += bytes.len() as u64;
        }
    }
}

fn pump(
    reader: impl Read,
    stream: Stream,
    stage: String,
    sink: Arc<dyn OutputSink>,
    log: Arc<Mutex<Log>>,
) {
    let mut r = BufReader::with_capacity(64 * 1024, reader);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        // Read a line, but never more than MAX_LINE bytes of it at once.
        let n = match (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Ok(mut l) = log.lock() {
            l.write(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        sink.line(&stage, stream, text.trim_end_matches(['\n', '\r']));
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

struct Reaped {
    status: libc::c_int,
    usage: libc::rusage,
}

fn wait4(pid: libc::pid_t) -> Option<Reaped> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, status and usage are valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Some(Reaped { status, usage });
        }
        if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

fn kill_group(pgid: libc::pid_t, sig: libc::c_int) {
    // Never 0 (our own group) or 1 (kill(-1) signals every process).
    if pgid <= 1 {
        return;
    }
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Asks the process group `pgid` (a child started as a group leader) to
/// stop: SIGTERM, or SIGKILL with `force`. Ids 0 and 1 are refused.
pub fn signal_group(pgid: u32, force: bool) {
    if let Ok(p) = libc::pid_t::try_from(pgid) {
        kill_group(p, if force { libc::SIGKILL } else { libc::SIGTERM });
    }
}

/// Fields of `/proc/<pid>/stat` after the command name: (state, pgrp,
/// start time in clock ticks after boot).
fn proc_stat(pid: i32) -> Option<(char, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything, `)` included.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): pgrp is field 5, starttime field 22.
    let state = f.first()?.chars().next()?;
    Some((state, f.get(2)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// The identity of the group led by `pid` (which must lead its group).
pub fn group_of(pid: i32) -> Option<Group> {
    let (_, pgrp, start_ticks) = proc_stat(pid)?;
    (pgrp == pid).then_some(Group {
        pgid: pid,
        start_ticks,
    })
}

/// CPU time (user and system) this process has used, in seconds.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct passed to it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU time (user and system) process `pid` has used, in seconds, from
/// `/proc/<pid>/stat`; `None` once it is gone.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start past its last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15, the 12th and 13th after `)`.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (tick > 0).then(|| (utime + stime) / tick as f64)
}

/// This boot's id: start times only compare within one boot.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Kills (SIGKILL) the process group `group` if it is still the one this
/// crate started: its leader alive with the recorded start time, or, when
/// the leader is gone, a member started no earlier whose environment holds
/// `marker` (such as `FERRY_RUN_ID=<run>`). A pid reused by an unrelated
/// process is never signalled. Returns whether the group was signalled.
pub fn kill_stale_group(group: Group, marker: &str) -> bool {
    if group.pgid <= 1 {
        return false;
    }
    let ours = match proc_stat(group.pgid) {
        // The leader lives: the same process only if it started at the same tick.
        Some((_, pgrp, start)) => start == group.start_ticks && pgrp == group.pgid,
        // The leader is gone; while any member lives the kernel does not
        // hand its id to another process, but a later group could have taken
        // the id after this one ended: look for a member of ours.
        None => group_members(group.pgid)
            .into_iter()
            .any(|(pid, start)| start >= group.start_ticks && environ_has(pid, marker)),
    };
    if ours {
        kill_group(group.pgid, libc::SIGKILL);
        // SIGKILL is delivered asynchronously: wait (a little) until the
        // group is gone, so nothing of it writes after this returns.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until && !group_members(group.pgid).is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    ours
}

/// Kills (SIGKILL) every live process whose environment holds `marker`
/// (such as `FERRY_RUN_ID=<run>`, unique to one run), with its process
/// group unless that is this process's own: what a dead run left that its
/// record missed (a stage started just before ferry was killed, before its
/// group was recorded). Returns how many processes carried the marker.
pub fn kill_marked(marker: &str) -> usize {
    // SAFETY: getpgrp has no preconditions.
    let own_group = unsafe { libc::getpgrp() };
    let marked = || -> Vec<(i32, i32)> {
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                let (state, pgrp, _) = proc_stat(pid)?;
                (state != 'Z' && environ_has(pid, marker)).then_some((pid, pgrp))
            })
            .collect()
    };
    let found = marked();
    for &(pid, pgrp) in &found {
        if pgrp > 1 && pgrp != own_group {
            kill_group(pgrp, libc::SIGKILL);
        } else if pid > 1 {
            // SAFETY: sending a signal has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    let until = Instant::now() + Duration::from_secs(2);
    while !found.is_empty() && Instant::now() < until && !marked().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    found.len()
}

/// (pid, start ticks) of every live process in group `pgid`.
fn group_members(pgid: i32) -> Vec<(i32, u64)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let (state, pgrp, start) = proc_stat(pid)?;
            (pgrp == pgid && state != 'Z').then_some((pid, start))
        })
        .collect()
}

fn environ_has(pid: i32, marker: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    env.split(|&b| b == 0).any(|v| v == marker.as_bytes())
}

/// `s` as one word of a [`Job`]'s `sh -c` command: single-quoted, a quote
/// inside closed, escaped and reopened.
pub fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod shell_word_tests {
    #[test]
    fn shell_words_survive_quotes() {
        assert_eq!(super::shell_word("a b"), "'a b'");
        assert_eq!(super::shell_word("it's"), r"'it'\''s'");
    }
}

/// Runs `job` to completion (or timeout, or cancellation).
pub fn run(job: &Job, sink: Arc<dyn OutputSink>, cancel: &CancelToken) -> Outcome {
    let started = Instant::now();
    let failed = |e: String| Outcome::of(Exit::SpawnFailed(e), started.elapsed());
    if let Some(parent) = job.log_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let log = Arc::new(Mutex::new(Log {
        file: std::fs::File::create(&job.log_path).ok(),
        written: 0,
        dropped: 0,
    }));
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&job.cmd)
        .current_dir(&job.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure only makes async-signal-safe system calls. A
        // closure also makes std fork rather than vfork (see the crate docs).
        unsafe {
            cmd.pre_exec(move || {
                // The leader dies with the thread that started it (this
                // one, which waits for it), should ferry be killed.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before the signal was armed. (No
                // allocation here: another thread may hold the heap's lock.)
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let pid = child.id() as libc::pid_t;
    // The child cannot exit unreaped before wait4 below, so its /proc entry is there.
    let group = group_of(pid);
    if let (Some(w), Some(g)) = (&job.watch, group) {
        w.started(g);
    }
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        let (s, l, st) = (sink.clone(), log.clone(), job.stage.clone());
        pumps.push(std::thread::spawn(move || {
            pump(out, Stream::Stdout, st, s, l)
        }));
    }
    if let Some(err) = child.stderr.take() {
        let (s, l, st) = (sink.clone(), log.clone(), job.stage.clone());
        pumps.push(std::thread::spawn(move || {
            pump(err, Stream::Stderr, st, s, l)
        }));
    }
    // std's Child is never waited on: wait4 below reaps it and gives rusage.
    drop(child);
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(wait4(pid));
    });
    let deadline = job.timeout.map(|t| started + t);
    let mut killed: Option<(Exit, Instant)> = None;
    let reaped = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(r) => break r,
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        match &killed {
            None => {
                let why = if cancel.is_cancelled() {
                    Some(Exit::Cancelled)
                } else if deadline.is_some_and(|d| now >= d) {
                    Some(Exit::TimedOut)
                } else {
                    None
                };
                if let Some(why) = why {
                    kill_group(pid, libc::SIGTERM);
                    killed = Some((why, now));
                }
            }
            Some((_, at)) if now.duration_since(*at) >= KILL_GRACE => {
                kill_group(pid, libc::SIGKILL);
            }
            Some(_) => {}
        }
    };
    // Whatever the stage left behind in its group goes too, so the pipes
    // close and no stray process outlives its stage.
    kill_group(pid, libc::SIGKILL);
    let _ = waiter.join();
    for p in pumps {
        let _ = p.join();
    }
    if let (Some(w), Some(g)) = (&job.watch, group) {
        w.ended(g);
    }
    let wall = started.elapsed();
    let truncated = log.lock().map(|l| l.dropped).unwrap_or(0);
    let Some(r) = reaped else {
        return failed("the child could not be waited for".into());
    };
    let exit = match killed {
        Some((why, _)) => why,
        None if libc::WIFEXITED(r.status) => Exit::Code(libc::WEXITSTATUS(r.status)),
        None if libc::WIFSIGNALED(r.status) => Exit::Signal(libc::WTERMSIG(r.status)),
        None => Exit::Code(-1),
    };
    Outcome {
        exit,
        wall,
        user_cpu: tv(r.usage.ru_utime),
        sys_cpu: tv(r.usage.ru_stime),
        max_rss_bytes: (r.usage.ru_maxrss.max(0) as u64) * 1024,
        log_truncated_bytes: truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(Stream, String)>>);
    impl OutputSink for Collect {
        fn line(&self, _: &str, s: Stream, l: &str) {
            self.0.lock().unwrap().push((s, l.to_owned()));
        }
    }

    #[test]
    fn cpu_time_is_read_for_this_process_and_others() {
        let before = own_cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(own_cpu_seconds() > before);
        let me = cpu_seconds_of(std::process::id()).unwrap();
        assert!(me > 0.0 && me <= own_cpu_seconds() + 0.02, "{me}");
        assert_eq!(cpu_seconds_of(u32::MAX), None);
    }

    fn job(dir: &std::path::Path, cmd: &str) -> Job {
        Job {
            stage: "s".into(),
            cmd: cmd.into(),
            cwd: dir.to_owned(),
            env: vec![("FERRY_TEST_VAR".into(), "42".into())],
            timeout: None,
            log_path: dir.join("logs/s.log"),
            watch: None,
        }
    }

    #[test]
    fn peak_memory_is_the_stages_own_not_ferrys() {
        let t = tempfile::tempdir().unwrap();
        // ferry after hashing a big file: a high peak, little memory now.
        let big = vec![7u8; 400 * 1024 * 1024];
        assert_eq!(big[big.len() / 2], 7);
        drop(big);
        let o = run(
            &job(t.path(), "cat /dev/null"),
            Arc::new(Discard),
            &CancelToken::new(),
        );
        assert!(o.exit.success(), "{:?}", o.exit);
        assert!(
            o.max_rss_bytes < 100 * 1024 * 1024,
            "`cat` peaked at {} MiB",
            o.max_rss_bytes / 1024 / 1024
        );
    }

    #[derive(Debug, Default)]
    struct Groups(Mutex<Vec<(bool, Group)>>);
    impl GroupWatch for Groups {
        fn started(&self, g: Group) {
            self.0.lock().unwrap().push((true, g));
        }
        fn ended(&self, g: Group) {
            self.0.lock().unwrap().push((false, g));
        }
    }

    #[test]
    fn the_watch_hears_of_the_group_and_the_leader_has_a_parent_death_signal() {
        let t = tempfile::tempdir().unwrap();
        let watch = Arc::new(Groups::default());
        let mut j = job(t.path(), "echo $$ > pid; cat /proc/$$/stat > stat");
        j.watch = Some(watch.clone());
        let o = run(&j, Arc::new(Discard), &CancelToken::new());
        assert!(o.exit.success(), "{:?}", o.exit);
        let pid: i32 = std::fs::read_to_string(t.path().join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let seen = watch.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!((seen[0].0, seen[1].0), (true, false));
        assert_eq!(seen[0].1, seen[1].1);
        assert_eq!(seen[0].1.pgid, pid);
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
        let start: u64 = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(seen[0].1.start_ticks, start);
    }

    fn sleeper(marker: &str, leader_exits: bool) -> (std::process::Child, Group) {
        let script = if leader_exits {
            "sleep 30 & echo $!"
        } else {
            "echo $$; exec sleep 30"
        };
        let mut c = std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .env("FERRY_RUN_ID", marker)
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let g = group_of(c.id() as i32).unwrap();
        let mut line = String::new();
        BufReader::new(c.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (c, g)
    }

    fn gone(pid: i32) -> bool {
        for _ in 0..100 {
            match proc_stat(pid) {
                None | Some(('Z', _, _)) => return true,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    #[test]
    fn a_stale_group_is_killed_only_when_it_is_still_ours() {
        // The leader alive: its start time decides.
        let (mut c, g) = sleeper("run-a", false);
        let other = Group {
            start_ticks: g.start_ticks + 1,
            ..g
        };
        assert!(
            !kill_stale_group(other, "FERRY_RUN_ID=run-a"),
            "a recycled pid"
        );
        assert!(proc_stat(g.pgid).is_some_and(|s| s.0 != 'Z'));
        assert!(kill_stale_group(g, "FERRY_RUN_ID=run-a"));
        c.wait().unwrap();
        // The leader gone, a member left: the marker decides.
        let (mut c, g) = sleeper("run-b", true);
        c.wait().unwrap();
        let members = group_members(g.pgid);
        assert_eq!(members.len(), 1, "{members:?}");
        assert!(!kill_stale_group(g, "FERRY_RUN_ID=run-x"));
        assert!(proc_stat(members[0].0).is_some());
        assert!(kill_stale_group(g, "FERRY_RUN_ID=run-b"));
        assert!(gone(members[0].0));
    }

    #[test]
    fn marked_processes_are_killed_with_their_groups() {
        // Markers of this test process's own: another test run on the
        // machine (the same binary, elsewhere) must not be touched.
        let mine = format!("run-c-{}", std::process::id());
        let other_marker = format!("run-d-{}", std::process::id());
        let (mut c, g) = sleeper(&mine, true);
        c.wait().unwrap();
        let (mut other, og) = sleeper(&other_marker, false);
        let members = group_members(g.pgid);
        let env = format!("FERRY_RUN_ID={mine}");
        assert_eq!(kill_marked(&env), 1);
        assert!(gone(members[0].0));
        assert!(proc_stat(og.pgid).is_some_and(|s| s.0 != 'Z'), "not marked");
        assert_eq!(kill_marked(&env), 0);
        kill_group(og.pgid, libc::SIGKILL);
        other.wait().unwrap();
    }

    #[test]
    fn output_exit_code_and_env() {
        let t = tempfile::tempdir().unwrap();
        let sink = Arc::new(Collect::default());
        let o = run(
            &job(t.path(), "echo out $FERRY_TEST_VAR; echo err >&2; exit 3"),
            sink.clone(),
            &CancelToken::new(),
        );
        assert_eq!(o.exit, Exit::Code(3));
        let lines = sink.0.lock().unwrap().clone();
        assert!(lines.contains(&(Stream::Stdout, "out 42".into())));
        assert!(lines.contains(&(Stream::Stderr, "err".into())));
        let log = std::fs::read_to_string(t.path().join("logs/s.log")).unwrap();
        assert!(log.contains("out 42") && log.contains("err"));
    }

    #[test]
    fn resources_are_accounted() {
        let t = tempfile::tempdir().unwrap();
        // Burn some CPU in a grandchild and touch ~50 MB of memory.
        let o = run(
            &job(
                t.path(),
                "python3 -c 'b = bytearray(50_000_000); s = sum(range(3_000_000))'",
            ),
            Arc::new(Discard),
            &CancelToken::new(),
        );
        assert!(o.exit.success(), "{:?}", o.exit);
        assert!(o.user_cpu + o.sys_cpu > Duration::from_millis(20), "{o:?}");
        assert!(o.max_rss_bytes > 50_000_000, "{o:?}");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let t = tempfile::tempdir().unwrap();
        let mut j = job(t.path(), "sleep 30 & sleep 30; echo never");
        j.timeout = Some(Duration::from_millis(300));
        let started = Instant::now();
        let o = run(&j, Arc::new(Discard), &CancelToken::new());
        assert_eq!(o.exit, Exit::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn term_ignoring_stage_is_killed_after_grace() {
        let t = tempfile::tempdir().unwrap();
        let mut j = job(t.path(), "trap '' TERM; while true; do sleep 0.05; done");
        j.timeout = Some(Duration::from_millis(200));
        let started = Instant::now();
        let o = run(&j, Arc::new(Discard), &CancelToken::new());
        assert_eq!(o.exit, Exit::TimedOut);
        assert!(started.elapsed() < KILL_GRACE + Duration::from_secs(3));
    }

    #[test]
    fn cancel_stops_a_running_job() {
        let t = tempfile::tempdir().unwrap();
        let cancel = CancelToken::new();
        let c2 = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            c2.cancel();
        });
        let o = run(&job(t.path(), "sleep 30"), Arc::new(Discard), &cancel);
        assert_eq!(o.exit, Exit::Cancelled);
    }

    #[test]
    fn flooding_stage_is_captured_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let sink = Arc::new(Collect::default());
        let o = run(
            &job(
                t.path(),
                "seq 1 200000; head -c 200000 /dev/zero | tr '\\0' x",
            ),
            sink.clone(),
            &CancelToken::new(),
        );
        assert!(o.exit.success());
        let lines = sink.0.lock().unwrap();
        assert_eq!(
            lines.len(),
            200_000 + 4,
            "a 200 kB line is split in 64 KiB pieces"
        );
        assert_eq!(lines[199_999].1, "200000");
    }

    #[test]
    fn missing_directory_is_a_spawn_failure() {
        let t = tempfile::tempdir().unwrap();
        let mut j = job(t.path(), "true");
        j.cwd = t.path().join("nope");
        let o = run(&j, Arc::new(Discard), &CancelToken::new());
        assert!(matches!(o.exit, Exit::SpawnFailed(_)), "{:?}", o.exit);
    }
}
