//! MLflow tracking records: experiments, runs, params, metrics, tags,
//! datasets, run queries, and the [`TrackingStore`] interface over them.

use crate::Result;
use ferry_core::ExperimentId;
use ferry_search::{Clause, OrderBy};

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub experiment_id: ExperimentId,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: ExperimentId,
    pub run_name: String,
    pub user_id: String,
    /// MLflow's vocabulary: RUNNING, SCHEDULED, FINISHED, FAILED, KILLED.
    pub status: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInput {
    pub dataset: Dataset,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackedRun {
    pub info: RunInfo,
    pub metrics: Vec<Metric>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub inputs: Vec<DatasetInput>,
    /// Logged models this run produced, with the step.
    pub outputs: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    ActiveOnly,
    DeletedOnly,
    All,
}

#[derive(Debug, Clone)]
pub struct RunQuery {
    pub experiment_ids: Vec<ExperimentId>,
    pub filter: Vec<Clause>,
    pub order_by: Vec<OrderBy>,
    pub view: ViewType,
    pub max_results: i64,
    pub offset: i64,
}

/// MLflow's status words for ferry's.
pub fn status_to_mlflow(ferry: &str) -> &'static str {
    match ferry {
        "running" => "RUNNING",
        "scheduled" => "SCHEDULED",
        "succeeded" => "FINISHED",
        "cancelled" => "KILLED",
        _ => "FAILED",
    }
}

/// ferry's status words for MLflow's; `None` for an unknown status.
pub fn status_from_mlflow(mlflow: &str) -> Option<&'static str> {
    Some(match mlflow {
        "RUNNING" => "running",
        "SCHEDULED" => "scheduled",
        "FINISHED" => "succeeded",
        "FAILED" => "failed",
        "KILLED" => "cancelled",
        _ => return None,
    })
}

/// The per-request limits of `log-batch`, as MLflow enforces them.
pub const MAX_BATCH_METRICS: usize = 1000;
pub const MAX_BATCH_PARAMS: usize = 100;
pub const MAX_BATCH_TAGS: usize = 100;
pub const MAX_BATCH_TOTAL: usize = 1000;

/// MLflow tracking, behind one interface every backend implements.
#[async_trait::async_trait]
pub trait TrackingStore: Send + Sync {
    async fn get_experiment(&self, id: ExperimentId) -> Result<Option<Experiment>>;

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>>;

    /// Creates an experiment; `artifact_location` defaults to
    /// `mlflow-artifacts:/<id>`.
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[(String, String)],
        now_ms: i64,
    ) -> Result<ExperimentId>;

    /// The experiment named `name`, created if absent.
    async fn ensure_experiment(&self, name: &str, now_ms: i64) -> Result<ExperimentId>;

    /// One page of the experiments in `view` matching `filter`, in
    /// `order_by` order (MLflow's default when empty: newest first), ties
    /// broken by id so pages never overlap.
    async fn search_experiments(
        &self,
        view: ViewType,
        filter: &[Clause],
        order_by: &[OrderBy],
        max_results: i64,
        offset: i64,
    ) -> Result<Vec<Experiment>>;

    async fn rename_experiment(&self, id: ExperimentId, new_name: &str, now_ms: i64) -> Result<()>;

    async fn set_experiment_tag(&self, id: ExperimentId, key: &str, value: &str) -> Result<()>;

    async fn delete_experiment_tag(&self, id: ExperimentId, key: &str) -> Result<()>;

    /// Soft delete (or restore): the experiment and its runs change stage.
    async fn set_experiment_stage(
        &self,
        id: ExperimentId,
        deleted: bool,
        now_ms: i64,
    ) -> Result<()>;

    /// Creates a run in `experiment_id`; its artifacts live under the
    /// experiment's artifact location.
    #[allow(clippy::too_many_arguments)]
    async fn create_tracked_run(
        &self,
        run_id: &str,
        experiment_id: ExperimentId,
        run_name: &str,
        user_id: &str,
        start_time: i64,
        tags: &[(String, String)],
    ) -> Result<TrackedRun>;

    /// Links a pipeline run (already in `runs`) to its experiment, so MLflow
    /// clients see it.
    async fn attach_run(
        &self,
        run_id: &str,
        experiment_id: ExperimentId,
        run_name: &str,
        tags: &[(String, String)],
    ) -> Result<()>;

    async fn get_tracked_run(&self, run_id: &str) -> Result<Option<TrackedRun>>;

    async fn update_tracked_run(
        &self,
        run_id: &str,
        status: Option<&str>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo>;

    async fn set_run_stage(&self, run_id: &str, deleted: bool) -> Result<()>;

    /// Logs metrics, params and tags in one transaction: all or nothing.
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()>;

    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()>;

    /// Every point of a metric, ordered by (timestamp, step, value).
    async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>>;

    async fn log_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<()>;

    /// Runs matching `q`, one page; the second value says whether more follow.
    async fn search_tracked_runs(&self, qr: &RunQuery) -> Result<(Vec<TrackedRun>, bool)>;
}
