//! The git state a run records: the commit HEAD points at (read from `.git`
//! without starting git) and whether tracked files changed (`git status`).

use std::path::{Path, PathBuf};

fn git_dir(root: &Path) -> Option<PathBuf> {
    let mut dir = Some(root);
    while let Some(d) = dir {
        let g = d.join(".git");
        if g.is_dir() {
            return Some(g);
        }
        if g.is_file() {
            // A worktree or submodule: `gitdir: <path>`.
            let text = std::fs::read_to_string(&g).ok()?;
            let p = text.strip_prefix("gitdir:")?.trim();
            return Some(d.join(p));
        }
        dir = d.parent();
    }
    None
}

/// The commit HEAD points at, from `.git` files directly.
pub fn head_commit(root: &Path) -> Option<String> {
    let g = git_dir(root)?;
    let head = std::fs::read_to_string(g.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(r) = head.strip_prefix("ref:") else {
        return Some(head.to_owned());
    };
    let r = r.trim();
    // A worktree keeps refs in the common dir.
    let common = std::fs::read_to_string(g.join("commondir"))
        .ok()
        .map(|c| g.join(c.trim()))
        .unwrap_or_else(|| g.clone());
    for base in [&g, &common] {
        if let Ok(s) = std::fs::read_to_string(base.join(r)) {
            return Some(s.trim().to_owned());
        }
        if let Ok(packed) = std::fs::read_to_string(base.join("packed-refs")) {
            for line in packed.lines() {
                if let Some((sha, name)) = line.split_once(' ')
                    && name == r
                {
                    return Some(sha.to_owned());
                }
            }
        }
    }
    None // an unborn branch
}

/// Whether tracked files differ from HEAD (`git status`), if git can tell.
/// Without git's optional locks: the same answer, but git does not write
/// back the index it refreshed on the way (`.git/index.lock`, a write and
/// a rename), which is meant for tools that ask in the background (and a
/// git command run meanwhile does not find the index locked).
pub fn is_dirty(root: &Path) -> Option<bool> {
    git_dir(root)?;
    let out = std::process::Command::new("git")
        .args([
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .current_dir(root)
        .output()
        .ok()?;
    out.status.success().then_some(!out.stdout.is_empty())
}

/// Checks `commit` out into a new detached worktree at `into` (`git
/// worktree add`), from the repository that holds `root`; returns the
/// folder in the worktree that corresponds to `root` (a project may live
/// below the repository's top).
pub fn worktree_at(root: &Path, commit: &str, into: &Path) -> Result<PathBuf, String> {
    // The top of the work tree: the folder that holds `.git`.
    let top = std::iter::successors(Some(root), |d| d.parent())
        .find(|d| d.join(".git").exists())
        .ok_or("the project is not in a git repository")?;
    if !commit.bytes().all(|b| b.is_ascii_hexdigit()) || commit.is_empty() {
        return Err(format!("`{commit}` is not a commit id"));
    }
    let out = std::process::Command::new("git")
        .args(["worktree", "add", "--detach", "--quiet"])
        .arg(into)
        .arg(commit)
        .current_dir(top)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git worktree add: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let rel = root.strip_prefix(top).unwrap_or(Path::new(""));
    Ok(into.join(rel))
}

/// [`is_dirty`] asked now and answered later: `git status` (a few
/// milliseconds) runs in a thread of its own, beside what the caller does
/// meanwhile (a run opens its store).
pub(crate) struct DirtyProbe(Option<std::thread::JoinHandle<Option<bool>>>);

impl DirtyProbe {
    pub fn start(root: &Path) -> Self {
        let root = root.to_owned();
        Self(Some(std::thread::spawn(move || is_dirty(&root))))
    }

    /// What [`is_dirty`] answers.
    pub fn wait(mut self) -> Option<bool> {
        self.0.take()?.join().ok().flatten()
    }
}

impl Drop for DirtyProbe {
    /// Not asked after all (the run failed first): git is left to finish.
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn the_probe_answers_what_git_status_does() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(DirtyProbe::start(d.path()).wait(), None, "not a work tree");
        git(d.path(), &["init", "-q"]);
        std::fs::write(d.path().join("a.txt"), "one").unwrap_or_else(|e| panic!("{e}"));
        git(d.path(), &["add", "a.txt"]);
        git(d.path(), &["commit", "-qm", "a"]);
        assert_eq!(DirtyProbe::start(d.path()).wait(), Some(false));
        // Untracked files do not count, nor a tracked one written again
        // with the same bytes (its stat changed, its contents did not); a
        // changed tracked one does.
        std::fs::write(d.path().join("b.txt"), "new").unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.path().join("a.txt"), "one").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(DirtyProbe::start(d.path()).wait(), Some(false));
        std::fs::write(d.path().join("a.txt"), "two").unwrap_or_else(|e| panic!("{e}"));
        let probe = DirtyProbe::start(d.path());
        assert_eq!(probe.wait(), is_dirty(d.path()));
        assert_eq!(is_dirty(d.path()), Some(true));
        // Dropped unasked: git finishes; it never takes the index's lock.
        drop(DirtyProbe::start(d.path()));
        assert!(!d.path().join(".git/index.lock").exists());
    }
}
