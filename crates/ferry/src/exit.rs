//! Exit codes: the one place where what happened becomes the number the
//! process exits with. Commands say what happened (a run's status, a check
//! that failed, a rollout that ended, an error); this module chooses the
//! code. Documented in `ferry --help`: 0 ok, 1 a stage failed (or the run
//! could not be recorded), 2 usage or spec error, 3 a gate (or check, or
//! rollout) failed, 4 over budget (the run was refused before it
//! started), 130 cancelled.

use ferry_metadata::RunStatus;

pub const OK: u8 = 0;
const STAGE_FAILED: u8 = 1;
const USAGE: u8 = 2;
const GATE_FAILED: u8 = 3;
const OVER_BUDGET: u8 = 4;
pub const CANCELLED: u8 = 130;

/// A user mistake (bad spec, bad argument): exit code 2.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// The code of a command that failed with `e`: 2 for the user's mistakes
/// (a bad argument, spec, suite or table; an unknown stage; a path that
/// leads outside the project), 1 for everything else.
pub fn of_error(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Usage>().is_some() {
        return USAGE;
    }
    // Bad data or a bad suite: the user's input.
    if let Some(d) = e.downcast_ref::<ferry_data::DataError>() {
        return match d {
            // A report that cannot be written is not the input's fault.
            ferry_data::DataError::Internal(_) | ferry_data::DataError::Write { .. } => {
                STAGE_FAILED
            }
            _ => USAGE,
        };
    }
    // A remote that cannot be opened as configured: the user's settings.
    if let Some(ferry_remote::Error::Config { .. }) = e.downcast_ref::<ferry_remote::Error>() {
        return USAGE;
    }
    match e.downcast_ref::<ferry_runner::Error>() {
        Some(ferry_runner::Error::OverBudget(_)) => OVER_BUDGET,
        Some(
            ferry_runner::Error::Spec(_)
            | ferry_runner::Error::NoProject(_)
            | ferry_runner::Error::UnknownStage { .. }
            | ferry_runner::Error::CannotAdd { .. }
            | ferry_runner::Error::Lock(_)
            | ferry_runner::Error::Unsupported(_)
            | ferry_runner::Error::OutsideProject { .. }
            | ferry_runner::Error::Cache(ferry_cache::Error::NotRegular { .. })
            | ferry_runner::Error::Remote(ferry_client::Error::Url { .. }),
        ) => USAGE,
        _ => STAGE_FAILED,
    }
}

/// A transfer's (`push`, `fetch`, `pull`) or `checkout`'s code: 1 when
/// anything could not be moved.
pub fn of_transfer(complete: bool) -> u8 {
    if complete { OK } else { STAGE_FAILED }
}

/// A run's code: by how it ended.
pub fn of_run(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded | RunStatus::Running => OK,
        RunStatus::GateFailed => GATE_FAILED,
        RunStatus::Cancelled => CANCELLED,
        RunStatus::Failed | RunStatus::Crashed => STAGE_FAILED,
    }
}

/// `ferry check data|drift`: 3 when the check failed (an expectation, or
/// dataset drift), as a gate.
pub fn of_check(passed: bool) -> u8 {
    if passed { OK } else { GATE_FAILED }
}

/// A followed rollout (`ferry deploy --wait`, `status --watch`): 0 when it
/// was promoted, 3 when it was rolled back or aborted.
pub fn of_rollout(promoted: bool) -> u8 {
    if promoted { OK } else { GATE_FAILED }
}

/// A store's refusal the user caused (no such thing, an invalid or
/// conflicting request) is a usage error; its other failures are not.
/// A team server's answer to a request the user got wrong or may not make
/// (4xx) is a usage error, said as the server said it; any other failure
/// (the server unreachable, a 5xx) is not.
pub(crate) fn client_err(e: ferry_client::Error) -> anyhow::Error {
    match e {
        ferry_client::Error::Api {
            status: 400..=499,
            message,
            ..
        } => usage(message),
        e @ ferry_client::Error::Url { .. } => usage(e.to_string()),
        other => other.into(),
    }
}

pub(crate) fn store_err(e: ferry_metadata::Error) -> anyhow::Error {
    match e {
        ferry_metadata::Error::NotFound(m)
        | ferry_metadata::Error::Ambiguous(m)
        | ferry_metadata::Error::Invalid(m)
        | ferry_metadata::Error::AlreadyExists(m)
        | ferry_metadata::Error::Conflict(m) => usage(m),
        other => other.into(),
    }
}
