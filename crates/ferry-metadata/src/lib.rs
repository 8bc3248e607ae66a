//! The metadata store: runs, stage executions, params, metrics, gate results
//! and the model registry.
//!
//! One storage interface ([`MetadataStore`]); one SQL implementation
//! ([`SqlStore`]) over sqlx's `Any` driver, written in the portable subset of
//! SQL so that the same statements and migrations serve SQLite (the embedded
//! default, `.ferry/ferry.db`) and PostgreSQL. This is the only crate that
//! knows SQL. [`BlockingStore`] gives synchronous callers (the CLI) the same
//! interface on a private current-thread runtime.

mod deployments;
mod group;
mod model;
mod models;
pub mod pipeline_runs;
mod sql;
mod sqlite_writer;
mod tracking;

pub use deployments::*;
pub use model::*;
pub use models::*;
pub use sql::SqlStore;
pub use tracking::*;

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store at `{url}`: {source}")]
    Open {
        url: String,
        #[source]
        source: BackendError,
    },
    #[error("store migration {version} failed: {source}")]
    Migrate {
        version: i64,
        #[source]
        source: BackendError,
    },
    #[error("the store was written by a newer ferry (schema {found}, this ferry knows {known})")]
    NewerSchema { found: i64, known: i64 },
    #[error("store query failed ({what}): {source}")]
    Query {
        what: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    /// Someone else changed the record first (a stale revision).
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the database driver said when a store operation failed: its message
/// (as `Display`) and its causes (as `source`), without the driver's type,
/// which stays inside this crate.
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    pub(crate) fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}

impl std::fmt::Debug for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Everything ferry records, behind one interface every backend implements.
#[async_trait::async_trait]
pub trait MetadataStore: TrackingStore + ModelStore + DeploymentStore + Send + Sync {
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

/// The store for synchronous code: the same interface, blocking.
pub struct BlockingStore {
    rt: tokio::runtime::Runtime,
    inner: Arc<dyn MetadataStore>,
}

impl BlockingStore {
    /// Opens (and migrates) the store at `url`, e.g. `sqlite:///path/ferry.db`.
    pub fn open(url: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the store runtime: {e}")))?;
        let inner = rt.block_on(SqlStore::open(url))?;
        Ok(Self {
            rt,
            inner: Arc::new(inner),
        })
    }

    /// Runs one store call to completion.
    pub fn call<'a, T>(
        &'a self,
        f: impl FnOnce(
            &'a dyn MetadataStore,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>,
    ) -> Result<T> {
        self.rt.block_on(f(self.inner.as_ref()))
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.inner
    }
}
