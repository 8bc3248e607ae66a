//! What a killed run leaves behind, and how the next one clears it.
//!
//! * While a run lives, `.ferry/runs/<run>.pids` names the process groups of
//!   its running stages (each with its leader's start time, so a pid the
//!   system has since given to another process is never signalled). A run
//!   that ends removes the file; a file found by a run that holds the run
//!   lock therefore belongs to a dead run, whose groups are killed, and so
//!   is every process that still carries its `FERRY_RUN_ID` (a stage
//!   spawned just before the run died, before its group was recorded).
//! * Temporary files (cache objects being written, atomic writes, restores,
//!   published artifacts) carry the pid of their writer in their name; those
//!   of a process that is gone (or older than a day) are removed by the next
//!   run after a dead one, and by `ferry gc`. Both hold the run lock, so no
//!   run is writing them.

use crate::Project;
use ferry_executor::{Group, GroupWatch};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The record of one live run's stage groups.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
    run_id: String,
    boot: String,
    groups: Mutex<Vec<Group>>,
}

impl PidFile {
    pub fn create(project: &Project, run_id: &str) -> crate::Result<Self> {
        let f = Self {
            path: runs_dir(project).join(format!("{run_id}.pids")),
            run_id: run_id.to_owned(),
            boot: ferry_executor::boot_id(),
            groups: Mutex::new(Vec::new()),
        };
        f.write(&[])?;
        Ok(f)
    }

    fn write(&self, groups: &[Group]) -> crate::Result<()> {
        let mut text = format!("run {}\nboot {}\n", self.run_id, self.boot);
        for g in groups {
            text.push_str(&format!("group {} {}\n", g.pgid, g.start_ticks));
        }
        // Atomic, not durable: the groups it names die with the machine.
        ferry_fs::replace(&self.path, text.as_bytes())?;
        Ok(())
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Group>)) {
        // The lock is held while writing: one writer of the file at a time.
        if let Ok(mut g) = self.groups.lock() {
            f(&mut g);
            let _ = self.write(&g);
        }
    }

    /// Waits (at most `limit`) until no stage group is left.
    pub fn wait_empty(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until && self.groups.lock().is_ok_and(|g| !g.is_empty()) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The run is over: the file goes, unless a group is still recorded
    /// (then the next run ends it).
    pub fn close(&self) {
        if self.groups.lock().is_ok_and(|g| g.is_empty()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl GroupWatch for PidFile {
    fn started(&self, group: Group) {
        self.update(|g| g.push(group));
    }
    fn ended(&self, group: Group) {
        self.update(|g| g.retain(|x| *x != group));
    }
}

fn runs_dir(project: &Project) -> PathBuf {
    project.layout().runs()
}

/// Kills the stage groups of dead runs and removes their records. Call
/// only with the run lock held. Returns whether a dead run was found.
pub(crate) fn reap(project: &Project) -> bool {
    let Ok(rd) = std::fs::read_dir(runs_dir(project)) else {
        return false;
    };
    let boot = ferry_executor::boot_id();
    let mut found = false;
    for e in rd.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "pids") {
            continue;
        }
        found = true;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut run = "";
        let mut same_boot = false;
        for line in text.lines() {
            let mut f = line.split_whitespace();
            match (f.next(), f.next(), f.next()) {
                (Some("run"), Some(r), None) => run = r,
                (Some("boot"), Some(b), None) => same_boot = b == boot,
                (Some("group"), Some(pgid), Some(start)) if same_boot && !run.is_empty() => {
                    if let (Ok(pgid), Ok(start_ticks)) = (pgid.parse(), start.parse()) {
                        let g = Group { pgid, start_ticks };
                        ferry_executor::kill_stale_group(g, &format!("FERRY_RUN_ID={run}"));
                    }
                }
                _ => {}
            }
        }
        // A stage started just before the run died may not be recorded yet;
        // every stage process carries its run's id in its environment.
        if same_boot && !run.is_empty() {
            ferry_executor::kill_marked(&format!("FERRY_RUN_ID={run}"));
        }
        let _ = std::fs::remove_file(&path);
    }
    found
}

/// The pid in a temporary file's name, if it is one of ferry's.
fn temp_pid(name: &str) -> Option<u32> {
    let tail = if let Some(rest) = name.strip_prefix(".tmp-") {
        // cache objects: `.tmp-<pid>-<digest prefix>`
        rest.split('-').next()?
    } else if let Some(rest) = name.strip_prefix(".ferry-publish-") {
        rest
    } else if name.starts_with('.') {
        // atomic writes `.<name>.tmp-<pid>-<n>`, restores `.<name>.ferry-restore-<pid>`
        let (_, pid) = name
            .rsplit_once(".tmp-")
            .or_else(|| name.rsplit_once(".ferry-restore-"))?;
        pid.split('-').next()?
    } else {
        return None;
    };
    tail.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Removes ferry's temporary files in `dir` whose writer is gone (or that
/// are older than a day), of those whose name `ours` accepts.
fn sweep_dir(dir: &Path, ours: &dyn Fn(&str) -> bool) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().filter(|n| ours(n)).and_then(temp_pid) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if pid_alive(pid) && !old {
            continue;
        }
        let p = e.path();
        let gone = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        n += u64::from(gone.is_ok());
    }
    n
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the temporary files dead ferry processes left: in the cache, in
/// `.ferry`, beside the lock file and the outs, and (with `artifacts`) in
/// the published artifacts, whose tree grows with every run. Outside
/// `.ferry` only the names ferry itself gives are touched. Call only with
/// the run lock held. Returns how many were removed.
pub(crate) fn sweep_temp(project: &Project, artifacts: bool) -> u64 {
    let ferry = project.layout().ferry_dir();
    let cache = project.layout().cache();
    let any = |_: &str| true;
    let mut n = sweep_dir(&ferry, &any) + sweep_dir(&runs_dir(project), &any);
    for sub in ["objects", "runs"] {
        for d in subdirs(&cache.join(sub)) {
            n += sweep_dir(&d, &any);
        }
    }
    let lock_tmp = format!(".{}.tmp-", crate::LOCK_FILE);
    n += sweep_dir(&project.root, &|name| name.starts_with(&lock_tmp));
    // Restores build an out beside it: `.<name>.ferry-restore-<pid>`.
    let mut outs: Vec<(PathBuf, String)> = project
        .pipeline
        .stages
        .iter()
        .flat_map(|s| &s.outs)
        .filter_map(|o| {
            let p = project.root.join(o);
            let name = p.file_name()?.to_str()?.to_owned();
            Some((p.parent()?.to_owned(), format!(".{name}.ferry-restore-")))
        })
        .collect();
    outs.sort();
    outs.dedup();
    for (dir, prefix) in &outs {
        n += sweep_dir(dir, &|name| name.starts_with(prefix.as_str()));
    }
    if artifacts {
        // `.ferry/artifacts/<experiment>/<run>/artifacts/`: a model being
        // published (`.ferry-publish-<pid>`), check reports being attached
        // (`checks/.<name>.tmp-<pid>`); what MLflow clients log is theirs.
        // (Walked rather than named: `Layout::run_artifacts` of each.)
        for exp in subdirs(&project.layout().artifacts()) {
            for run in subdirs(&exp) {
                let a = run.join("artifacts");
                n += sweep_dir(&a, &|name| name.starts_with(".ferry-publish-"));
                n += sweep_dir(&a.join("checks"), &|name| {
                    !name.starts_with(".ferry-publish-")
                });
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::temp_pid;

    #[test]
    fn temporary_names_and_their_writers() {
        assert_eq!(temp_pid(".tmp-123-0123456789abcdef"), Some(123));
        assert_eq!(temp_pid(".ferry-publish-77"), Some(77));
        assert_eq!(temp_pid(".ferry.lock.tmp-9"), Some(9));
        assert_eq!(temp_pid(".model.bin.ferry-restore-42"), Some(42));
        assert_eq!(temp_pid(".index.tmp-5"), Some(5));
        assert_eq!(temp_pid(".index.tmp-5-12"), Some(5));
        assert_eq!(temp_pid("model.bin"), None);
        assert_eq!(temp_pid(".gitignore"), None);
        assert_eq!(temp_pid(".notes.tmp-draft"), None);
    }
}
