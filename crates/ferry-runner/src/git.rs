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
