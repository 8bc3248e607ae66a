//! Runs a ferry project.
//!
//! [`status`] says per stage whether it would run and why; [`run`] brings the
//! outputs up to date (running, restoring from the cache, or leaving stages
//! alone), evaluates the gates, registers the model, and records all of it in
//! the metadata store. Both share one decision procedure ([`engine`]), so what
//! `status` predicts is what `run` does. A run's stages are walked by the
//! scheduler (`scheduler.rs`), which settles every outcome through one path
//! (`settle.rs`) and runs commands through an [`Executor`] ([`run_with`]
//! takes one; [`run`] uses [`LocalProcesses`]).

mod at_commit;
mod budget;
mod checks;
mod confine;
mod engine;
mod executor;
mod gates;
mod git;
mod history;
mod orphans;
mod pointers;
mod project;
mod record;
mod register;
mod report;
mod reproduce;
mod run;
mod scheduler;
mod settle;
mod shared;
mod stage_task;
mod tracking;

pub use at_commit::{AtCommit, at_commit};
pub use budget::BudgetCheck;
pub use executor::{Executor, LocalProcesses, StageCommand};
pub use git::{Revisions, first_parents, head_commit, is_dirty, work_tree_top, worktree_at};
pub use history::{History, local_history, remote_history};
pub use pointers::{POINTER_SUFFIX, Pointer, add, all as pointers};
pub use project::{LOCK_FILE, Layout, Project, SPEC_FILE, store_url};
pub use record::{Registry, RunValues, local_registry, remote_registry};
pub use report::*;
pub use reproduce::{Difference, Reproduction, compare};
pub use run::{RunOptions, gc, run, run_with, status};
pub use shared::{CheckedOut, SharedCache, checkout, locked, remote_keep};
pub use stage_task::{
    Launch, Launcher, RESULT_MARKER, ResultLine, StageTask, TASK_FORMAT, TaskExecutor, TaskResult,
    run_task,
};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no ferry.yaml in `{}` or any folder above it (`ferry init` starts a pipeline; an empty ferry.yaml is enough to version data with `ferry add`)",
        .0.display()
    )]
    NoProject(PathBuf),
    #[error("{}", .0.render().trim_end())]
    Spec(ferry_spec::Diagnostics),
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] ferry_cache::Error),
    #[error(transparent)]
    Store(#[from] ferry_metadata::Error),
    #[error(transparent)]
    Env(#[from] ferry_env::Error),
    #[error(transparent)]
    Remote(#[from] ferry_client::Error),
    #[error("{0}")]
    Lock(#[from] ferry_pipeline::LockError),
    #[error("another `ferry run` is in progress in this project (lock: {})", .0.display())]
    Busy(PathBuf),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("unknown stage `{name}`; stages: {known}")]
    UnknownStage { name: String, known: String },
    #[error("`{path}` leads outside the project, to `{}`\nhint: ferry reads and writes only inside the project; move or copy it in", leads_to.display())]
    OutsideProject { path: String, leads_to: PathBuf },
    #[error("no such run {0}")]
    NoSuchRun(String),
    #[error("cannot add `{path}`: {why}")]
    CannotAdd { path: String, why: String },
    /// The reference data a version keeps for its monitor cannot be read.
    #[error("{0}")]
    Reference(String),
    #[error("register.signature.from `{table}`: {message}")]
    Signature { table: String, message: String },
    #[error("reading the git history: {0}")]
    History(String),
    /// The run's budgets cannot cover its estimate: why, in full.
    #[error("over budget: {0}")]
    OverBudget(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ferry_fs::Error> for Error {
    fn from(e: ferry_fs::Error) -> Self {
        Error::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}
