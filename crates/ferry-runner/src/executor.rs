//! How a stage's command runs: the [`Executor`] trait, and [`LocalProcesses`]
//! (process groups on this machine, through ferry-executor), the default.
//!
//! The scheduler decides what runs and when, retries and records; an
//! executor only runs one attempt of one command to its end. Other
//! executors (a Kubernetes one, a test double) implement the same trait and
//! are handed to [`crate::run_with`]. Built-in check stages run inside ferry
//! and never reach an executor.

use ferry_executor::{CancelToken, GroupWatch, Job, Outcome, OutputSink};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One attempt of a stage's command, as an executor gets it.
#[derive(Debug, Clone)]
pub struct StageCommand {
    pub stage: String,
    /// The command with its `${param}`s interpolated, for `sh -c`.
    pub cmd: String,
    /// Where it runs: the project root.
    pub cwd: PathBuf,
    /// Variables added to (or replacing in) the inherited environment: the
    /// Python environment's, `FERRY_RUN_ID`, `FERRY_PROJECT_ROOT`, the
    /// `MLFLOW_*` ones when stages have an endpoint, `FERRY_STAGE`.
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// Where the combined output is kept (`.ferry/logs/<run>/<stage>.log`).
    pub log_path: PathBuf,
    /// The run's record of the local process groups its stages start (its
    /// pid file), so a later run can end them should this one die. An
    /// executor that starts no local processes has nothing to tell it.
    pub watch: Option<Arc<dyn GroupWatch>>,
    /// The stage as a task to run elsewhere, for an executor that
    /// [`Executor::wants_task`]: its files are in the project's cache.
    pub task: Option<crate::StageTask>,
    /// What the stage asks for (`resources:`).
    pub resources: Option<ferry_cost::Requested>,
    /// Where its pod goes (the stage's `kubernetes:`).
    pub placement: Option<ferry_spec::Placement>,
}

/// Runs stage commands.
pub trait Executor: Send + Sync {
    /// Whether this executor runs a stage away from the project, from a
    /// [`crate::StageTask`] (then the scheduler makes one for each command).
    fn wants_task(&self) -> bool {
        false
    }

    /// Runs one attempt of `cmd` to its end: its exit (code, signal,
    /// timeout, cancellation, or that it could not start) and the resources
    /// it used. Output lines go to `sink` as they come and to
    /// `cmd.log_path`; once `cancel` is set the command is stopped.
    fn execute(
        &self,
        cmd: &StageCommand,
        sink: Arc<dyn OutputSink>,
        cancel: &CancelToken,
    ) -> Outcome;
}

/// Each command in a process group of its own on this machine
/// ([`ferry_executor::run`]): timeouts, cancellation, capped logs and
/// `wait4` accounting.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalProcesses;

impl Executor for LocalProcesses {
    fn execute(
        &self,
        cmd: &StageCommand,
        sink: Arc<dyn OutputSink>,
        cancel: &CancelToken,
    ) -> Outcome {
        let job = Job {
            stage: cmd.stage.clone(),
            cmd: cmd.cmd.clone(),
            cwd: cmd.cwd.clone(),
            env: cmd.env.clone(),
            timeout: cmd.timeout,
            log_path: cmd.log_path.clone(),
            watch: cmd.watch.clone(),
        };
        ferry_executor::run(&job, sink, cancel)
    }
}
