//! What the group writer is handed ([`Job`]: a logging request or a new
//! run, each with the channel its answer goes back on) and the bounds of a
//! group. The store sends them (`tracking.rs`), the writers take them
//! (`group.rs` over the pool, `sqlite_writer.rs` on its own connection);
//! this module uses neither.

use crate::Result;
use ferry_core::ExperimentId;
use ferry_records::{Metric, TrackedRun};

/// A run an MLflow client asks to create.
pub(crate) struct NewTrackedRun {
    pub run_id: String,
    pub experiment_id: ExperimentId,
    pub run_name: String,
    pub user_id: String,
    pub start_time: i64,
    pub tags: Vec<(String, String)>,
}

/// A write for the group writer.
pub(crate) enum Job {
    Log(LogJob),
    CreateRun(CreateRunJob),
}

impl Job {
    /// Metric points it writes (a group holds at most [`MAX_GROUP_POINTS`]).
    pub(crate) fn points(&self) -> usize {
        match self {
            Job::Log(j) => j.metrics.len(),
            Job::CreateRun(_) => 1,
        }
    }
}

/// An MLflow client's new run (on a SQLite file: see
/// `create_tracked_run`).
pub(crate) struct CreateRunJob {
    pub run: NewTrackedRun,
    pub reply: tokio::sync::oneshot::Sender<Result<TrackedRun>>,
}

pub(crate) struct LogJob {
    pub run_id: String,
    pub metrics: Vec<Metric>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub reply: tokio::sync::oneshot::Sender<Result<()>>,
}

/// Requests with at most this many entities go through the group writer.
pub(crate) const SMALL_REQUEST: usize = 100;

/// Most requests written in one transaction.
pub(crate) const MAX_GROUP: usize = 64;
/// Most metric points in one transaction (beyond that, the next group).
pub(crate) const MAX_GROUP_POINTS: usize = 5000;
