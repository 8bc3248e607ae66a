//! What ferry records, without the recording: the records of pipeline runs,
//! stages, MLflow runs and experiments, registered models and versions,
//! deployments and gateways, the store interfaces every backend implements
//! ([`MetadataStore`] = pipeline records + [`TrackingStore`] +
//! [`ModelStore`] + [`DeploymentStore`] + [`AuthStore`] + [`CostStore`] +
//! [`LoopStore`] + [`DeliveryStore`]) and the one store
//! [`Error`].
//!
//! Pure: no SQL, no files, no network. `ferry-metadata` implements the
//! interfaces over SQL; `ferry-client` fills the records from JSON.

mod auth;
mod costs;
mod deliveries;
mod deployments;
mod error;
mod models;
mod monitors;
pub mod pipeline_runs;
mod runs;
mod tracking;
mod versions;

pub use auth::*;
pub use costs::*;
pub use deliveries::*;
pub use deployments::*;
pub use error::*;
pub use models::*;
pub use monitors::*;
pub use runs::*;
pub use tracking::*;
pub use versions::*;

/// Everything ferry records, behind one interface every backend implements.
#[async_trait::async_trait]
pub trait MetadataStore:
    TrackingStore
    + ModelStore
    + DeploymentStore
    + AuthStore
    + CostStore
    + LoopStore
    + DeliveryStore
    + Send
    + Sync
{
    async fn begin_run(&self, run: &NewRun) -> Result<()>;
    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        ended_ms: i64,
        message: Option<&str>,
    ) -> Result<()>;
    /// Marks runs left `running` by processes that no longer exist as crashed.
    async fn reap_dead_runs(&self, host: &str, alive: &(dyn Fn(i64) -> bool + Sync))
    -> Result<u64>;
    async fn record_stage(&self, run_id: &str, stage: &StageRecord) -> Result<()>;
    async fn record_params(
        &self,
        run_id: &str,
        params: &[(String, serde_json::Value)],
    ) -> Result<()>;
    async fn record_metrics(&self, run_id: &str, metrics: &[MetricRecord]) -> Result<()>;
    async fn record_gates(&self, run_id: &str, gates: &[GateRecord]) -> Result<()>;
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>>;
    /// What `ferry cost` reports from: the cost ledger's hours in
    /// `[since_ms, until_ms)`, summed per pipeline, stage and day in the
    /// zone `offset_minutes` east of UTC (`record_stage` keeps the ledger).
    async fn stage_costs(
        &self,
        since_ms: i64,
        until_ms: i64,
        offset_minutes: i32,
    ) -> Result<Vec<ferry_cost::ledger::DaySum>>;
    /// A page of runs, newest first (see [`RunPage`]).
    async fn page_runs(&self, q: &RunPage) -> Result<Vec<RunSummary>>;
    /// Every pipeline that ran in the 30 days before `now_ms`, and how it
    /// has been doing (only those of `workspaces` when given).
    async fn pipeline_health(
        &self,
        now_ms: i64,
        workspaces: Option<&[String]>,
    ) -> Result<Vec<PipelineHealth>>;
    /// A run by its id or a unique prefix of it (at least 4 characters).
    async fn get_run(&self, id_or_prefix: &str) -> Result<RunDetail>;

    /// Creates the next version of `model` (and the model, if new), and
    /// points `alias` at it, in one transaction.
    async fn create_model_version(&self, v: &NewModelVersion) -> Result<ModelVersion>;
    async fn list_models(&self) -> Result<Vec<ModelSummary>>;
    async fn list_versions(&self, model: &str) -> Result<Vec<ModelVersion>>;
    async fn get_version(&self, model: &str, version: i64) -> Result<Option<ModelVersion>>;
    async fn latest_version(&self, model: &str) -> Result<Option<ModelVersion>>;
    async fn resolve_alias(&self, model: &str, alias: &str) -> Result<Option<ModelVersion>>;
    async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: i64,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<AliasEvent>;
    async fn alias_events(&self, model: &str) -> Result<Vec<AliasEvent>>;
}
