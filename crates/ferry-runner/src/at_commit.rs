//! A project at a commit, for a run a trigger asked for at that commit
//! (a push or pull request a forge's webhook told `ferry server` about):
//! the project itself when its work tree is at that commit and clean,
//! else the commit checked out into a detached worktree under the
//! project's `.ferry/worktrees/` and run as the project
//! ([`Layout::checkout`]: the project's store, cache and environments),
//! the worktree removed when the [`AtCommit`] is dropped.
//!
//! Only a full commit id ever reaches git (checked here, and when the
//! trigger was queued), as an argument and never through a shell; git
//! fetches it from the repository's own `origin`, nothing else.

use crate::{Layout, Project};
use std::path::{Path, PathBuf};

/// The project at a commit; dereferences to it.
#[derive(Debug)]
pub struct AtCommit {
    project: Project,
    /// The worktree made for it, removed when this is dropped.
    worktree: Option<Worktree>,
}

impl std::ops::Deref for AtCommit {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.project
    }
}

impl AtCommit {
    /// Whether the commit is checked out beside the project (`false`: the
    /// project's own work tree is at it).
    pub fn checked_out(&self) -> bool {
        self.worktree.is_some()
    }
}

/// A worktree made from the repository holding `home`, removed on drop.
#[derive(Debug)]
struct Worktree {
    home: PathBuf,
    tree: PathBuf,
}

impl Drop for Worktree {
    fn drop(&mut self) {
        if let Err(e) = crate::git::remove_worktree(&self.home, &self.tree) {
            eprintln!(
                "warning: cannot remove the worktree {}: {e}",
                self.tree.display()
            );
        }
    }
}

/// The project at `home` at `commit` (40 hex digits). `name` names the
/// worktree's folder when one is made (unique per run: a trigger's id and
/// attempt). The commit is fetched from `origin` when the repository does
/// not have it; data that pointer files name is put back from the cache.
pub fn at_commit(home: &Path, commit: &str, name: &str) -> Result<AtCommit, String> {
    if !ferry_metadata::is_commit(commit) {
        return Err(format!("`{commit}` is not a full commit id"));
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("`{name}` cannot name a worktree"));
    }
    if crate::git::work_tree_top(home).is_none() {
        return Err(format!(
            "the run is asked for at commit {commit}, but {} is not in a git repository",
            home.display()
        ));
    }
    let at_head = crate::git::head_commit(home).as_deref() == Some(commit);
    if at_head && crate::git::is_dirty(home) == Some(false) {
        let project = Project::load(home).map_err(|e| e.to_string())?;
        return Ok(AtCommit {
            project,
            worktree: None,
        });
    }
    if !crate::git::has_commit(home, commit) {
        let fetched = crate::git::fetch_commit(home, commit);
        if !crate::git::has_commit(home, commit) {
            let why = fetched
                .err()
                .unwrap_or_else(|| "it did not bring it".into());
            return Err(format!(
                "commit {commit} is not in the repository, and fetching it from `origin` failed: {why}"
            ));
        }
    }
    let worktrees = Layout::new(home).worktrees();
    std::fs::create_dir_all(&worktrees)
        .map_err(|e| format!("cannot create {}: {e}", worktrees.display()))?;
    // Removed however what follows ends, unless it is handed over.
    let made = Worktree {
        home: home.to_owned(),
        tree: worktrees.join(name),
    };
    let dir = crate::git::worktree_at(home, commit, &made.tree)?;
    let project = Project::load_checkout(&dir, home)
        .map_err(|e| format!("ferry.yaml at commit {}: {e}", &commit[..12]))?;
    // The stat index is the checkout's own.
    if let Some(parent) = project.layout().index().parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // Data ferry tracks with pointer files is not in git: from the cache.
    let put = crate::checkout(&project, &[]).map_err(|e| e.to_string())?;
    let missing: Vec<&str> = put
        .iter()
        .filter(|c| c.stage.is_empty() && c.outcome == "missing")
        .map(|c| c.path.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the data {} at commit {} is not in this machine's cache (`ferry pull` brings it)",
            missing.join(", "),
            &commit[..12]
        ));
    }
    Ok(AtCommit {
        project,
        worktree: Some(made),
    })
}
