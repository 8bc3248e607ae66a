//! The git commit a run was built from, read without starting git where it can.

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
pub fn is_dirty(root: &Path) -> Option<bool> {
    git_dir(root)?;
    let out = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
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
    let g = git_dir(root).ok_or("the project is not in a git repository")?;
    // The top of the work tree: the folder that holds `.git`.
    let top = std::iter::successors(Some(root), |d| d.parent())
        .find(|d| d.join(".git").exists())
        .ok_or("the project is not in a git repository")?;
    let _ = g;
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
