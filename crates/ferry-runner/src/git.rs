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

/// The top of the git work tree that holds `dir`: the nearest folder
/// (`dir` itself or above) with a `.git` entry (a folder, or a file in a
/// linked worktree or submodule).
pub fn work_tree_top(dir: &Path) -> Option<&Path> {
    dir.ancestors().find(|d| d.join(".git").exists())
}

/// Checks `commit` out into a new detached worktree at `into` (`git
/// worktree add`), from the repository that holds `root`; returns the
/// folder in the worktree that corresponds to `root` (a project may live
/// below the repository's top).
pub fn worktree_at(root: &Path, commit: &str, into: &Path) -> Result<PathBuf, String> {
    let top = work_tree_top(root).ok_or("the project is not in a git repository")?;
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

/// Whether the repository that holds `root` has `commit` (a full commit
/// id, 40 hex digits; anything else is not asked about).
pub fn has_commit(root: &Path, commit: &str) -> bool {
    let Some(top) = work_tree_top(root) else {
        return false;
    };
    if !ferry_metadata::is_commit(commit) {
        return false;
    }
    std::process::Command::new("git")
        .args(["cat-file", "-e"])
        .arg(format!("{commit}^{{commit}}"))
        .current_dir(top)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fetches `commit` from the repository's `origin` (`git fetch origin
/// <commit>`), so a commit pushed since the work tree was cloned can be
/// checked out. Only a full commit id is ever passed, as an argument and
/// not through a shell; git asks for no credentials on a terminal.
pub fn fetch_commit(root: &Path, commit: &str) -> Result<(), String> {
    let top = work_tree_top(root).ok_or("the project is not in a git repository")?;
    if !ferry_metadata::is_commit(commit) {
        return Err(format!("`{commit}` is not a full commit id"));
    }
    let out = std::process::Command::new("git")
        .args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-recurse-submodules",
            "origin",
        ])
        .arg(commit)
        .current_dir(top)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git fetch origin {commit}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Removes a worktree [`worktree_at`] made (`git worktree remove
/// --force`), and its folder should git not.
pub fn remove_worktree(root: &Path, worktree: &Path) -> Result<(), String> {
    let top = work_tree_top(root).ok_or("the project is not in a git repository")?;
    let out = std::process::Command::new("git")
        .args(["worktree", "remove", "--force", "--force"])
        .arg(worktree)
        .current_dir(top)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() && !worktree.exists() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    match std::fs::remove_dir_all(worktree) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {}: {e} ({why})", worktree.display())),
    }
    // What git kept of it goes once its folder is gone.
    let _ = std::process::Command::new("git")
        .args(["worktree", "prune"])
        .current_dir(top)
        .stdin(std::process::Stdio::null())
        .output();
    Ok(())
}

/// Which commits' locks and pointers a remote's garbage collection keeps
/// (`ferry gc --remote --all-commits ...`); none of them: the work tree only.
#[derive(Debug, Clone, Default)]
pub struct Revisions {
    /// Every commit reachable from any ref.
    pub all_commits: bool,
    /// The tip of every branch.
    pub all_branches: bool,
    /// Every tag.
    pub all_tags: bool,
    /// Named revisions (`main`, `v1.2`, a commit id).
    pub revs: Vec<String>,
}

impl Revisions {
    pub fn is_empty(&self) -> bool {
        !(self.all_commits || self.all_branches || self.all_tags) && self.revs.is_empty()
    }
}

/// A file as some commit held it: the commit, its path (relative to the
/// project), its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedFile {
    pub commit: String,
    pub path: String,
    pub text: String,
}

fn git_out(root: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// The commit `rev` names and its first parents, newest first, at most
/// `max`; `None` when git does not know `rev` here. Only a name that
/// cannot be read as an option reaches git, as one argument (`ferry
/// report --compare`, a base branch CI names).
pub fn first_parents(root: &Path, rev: &str, max: usize) -> Option<Vec<String>> {
    let plain = !rev.is_empty()
        && !rev.starts_with('-')
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '~' | '^'));
    if !plain {
        return None;
    }
    let max = format!("--max-count={max}");
    let rev = format!("{rev}^{{commit}}");
    let out = git_out(root, &["rev-list", "--first-parent", &max, &rev, "--"]).ok()?;
    let commits: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_owned)
        .collect();
    (!commits.is_empty()).then_some(commits)
}

/// The commits `sel` names, each once.
fn commits(root: &Path, sel: &Revisions) -> Result<Vec<String>, String> {
    let mut found: Vec<String> = Vec::new();
    let mut take = |bytes: Vec<u8>| {
        found.extend(
            String::from_utf8_lossy(&bytes)
                .split_whitespace()
                .map(str::to_owned),
        )
    };
    if sel.all_commits {
        take(git_out(root, &["rev-list", "--all"])?);
    }
    if sel.all_branches {
        take(git_out(root, &["rev-parse", "--branches"])?);
    }
    if sel.all_tags {
        take(git_out(root, &["rev-parse", "--tags"])?);
    }
    for rev in &sel.revs {
        let peeled = format!("{rev}^{{commit}}");
        let id = git_out(
            root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &peeled,
            ],
        )
        .map_err(|_| format!("`{rev}` names no commit in this repository"))?;
        take(id);
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// Every `ferry.lock` and pointer file (`*.ferry`) that the commits `sel`
/// names hold in the project's folder, each distinct text once (read in one
/// `git cat-file --batch`).
pub fn committed_records(root: &Path, sel: &Revisions) -> Result<Vec<CommittedFile>, String> {
    git_dir(root).ok_or("the project is not in a git repository")?;
    let mut wanted: Vec<(String, String, String)> = Vec::new(); // blob, commit, path
    let mut seen = std::collections::BTreeSet::new();
    for commit in commits(root, sel)? {
        let listing = git_out(root, &["ls-tree", "-r", "-z", &commit])?;
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let mut meta = meta.split(' ');
            let (Some(_mode), Some("blob"), Some(blob)) = (meta.next(), meta.next(), meta.next())
            else {
                continue;
            };
            let is_record = path == crate::project::LOCK_FILE
                || path.ends_with(crate::pointers::POINTER_SUFFIX);
            if is_record && seen.insert(blob.to_owned()) {
                wanted.push((blob.to_owned(), commit.clone(), path.to_owned()));
            }
        }
    }
    let texts = cat_blobs(root, wanted.iter().map(|w| w.0.as_str()))?;
    Ok(wanted
        .into_iter()
        .zip(texts)
        .map(|((_, commit, path), text)| CommittedFile { commit, path, text })
        .collect())
}

/// The contents of `blobs`, in order, from one `git cat-file --batch`.
fn cat_blobs<'a>(root: &Path, blobs: impl Iterator<Item = &'a str>) -> Result<Vec<String>, String> {
    use std::io::{BufRead, Read, Write};
    let input: String = blobs.map(|b| format!("{b}\n")).collect();
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let mut child = std::process::Command::new("git")
        .args(["cat-file", "--batch"])
        .current_dir(root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("git cat-file: no stdin")?;
    // Written from a thread: git answers while it reads, and a pipe holds
    // only so much.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut out = std::io::BufReader::new(child.stdout.take().ok_or("git cat-file: no stdout")?);
    let mut texts = Vec::new();
    let mut header = String::new();
    loop {
        header.clear();
        if out.read_line(&mut header).map_err(|e| e.to_string())? == 0 {
            break;
        }
        let size: usize = header
            .split(' ')
            .nth(2)
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("git cat-file: unexpected `{}`", header.trim()))?;
        let mut body = vec![0; size + 1]; // and its newline
        out.read_exact(&mut body).map_err(|e| e.to_string())?;
        body.pop();
        texts.push(String::from_utf8_lossy(&body).into_owned());
    }
    let _ = writer.join();
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("git cat-file failed".into());
    }
    Ok(texts)
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

    fn head(dir: &Path) -> String {
        head_commit(dir).unwrap_or_else(|| panic!("no HEAD in {}", dir.display()))
    }

    #[test]
    fn a_commit_runs_in_place_when_the_work_tree_is_clean_at_it_and_else_in_a_worktree() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let repo = d.path().join("repo");
        let home = repo.join("churn");
        std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
        git(&repo, &["init", "-q"]);
        std::fs::write(home.join("ferry.yaml"), "").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(home.join("a.txt"), "one").unwrap_or_else(|e| panic!("{e}"));
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-qm", "one"]);
        let first = head(&home);
        std::fs::write(home.join("a.txt"), "two").unwrap_or_else(|e| panic!("{e}"));
        git(&repo, &["commit", "-qam", "two"]);
        let second = head(&home);
        let home = std::fs::canonicalize(&home).unwrap_or_else(|e| panic!("{e}"));

        // HEAD, clean: the project itself.
        let here = crate::at_commit(&home, &second, "t1-1").unwrap_or_else(|e| panic!("{e}"));
        assert!(!here.checked_out());
        assert_eq!(here.root, home);
        drop(here);

        // An older commit: checked out under .ferry/worktrees, run as the
        // project (its name, its store), its own files.
        let there = crate::at_commit(&home, &first, "t2-1").unwrap_or_else(|e| panic!("{e}"));
        assert!(there.checked_out());
        let tree = home.join(".ferry/worktrees/t2-1");
        assert_eq!(there.root, tree.join("churn"));
        assert_eq!(
            std::fs::read_to_string(there.root.join("a.txt")).unwrap_or_default(),
            "one"
        );
        assert_eq!(there.pipeline.name, "churn");
        assert_eq!(there.layout().home(), home);
        assert_eq!(there.layout().store_url(), crate::store_url(&home));
        assert_eq!(there.layout().index(), there.root.join(".ferry/index"));
        assert_eq!(head_commit(&there.root).as_deref(), Some(first.as_str()));
        drop(there);
        assert!(!tree.exists(), "removed once the run is done");

        // HEAD but dirty: checked out, so the run is the commit's.
        std::fs::write(home.join("a.txt"), "three").unwrap_or_else(|e| panic!("{e}"));
        let dirty = crate::at_commit(&home, &second, "t3-1").unwrap_or_else(|e| panic!("{e}"));
        assert!(dirty.checked_out());
        assert_eq!(
            std::fs::read_to_string(dirty.root.join("a.txt")).unwrap_or_default(),
            "two"
        );
        drop(dirty);

        // A commit the repository lacks, with no origin to fetch it from.
        let e = crate::at_commit(&home, &"1".repeat(40), "t4-1").unwrap_err();
        assert!(e.contains("not in the repository"), "{e}");
        for (bad, name) in [("HEAD", "t5-1"), (first.as_str(), "../x")] {
            assert!(crate::at_commit(&home, bad, name).is_err(), "{bad} {name}");
        }
        assert!(!home.join(".ferry/worktrees/t4-1").exists());
    }
}
