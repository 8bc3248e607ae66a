//! The metadata store: runs, stage executions, params, metrics, gate results
//! and the model registry.
//!
//! One storage interface ([`MetadataStore`], with the records, in
//! `ferry-records`); one SQL implementation
//! ([`SqlStore`]) over sqlx's `Any` driver, written in the portable subset of
//! SQL so that the same statements and migrations serve SQLite (the embedded
//! default, `.ferry/ferry.db`) and PostgreSQL. This is the only crate that
//! knows SQL. [`BlockingStore`] gives synchronous callers (the CLI) the same
//! interface on a private current-thread runtime.

mod deployments;
mod group;
mod jobs;
mod models;
mod row;
mod sql;
mod sqlite_writer;
mod tracking;

/// The records and store interfaces live in `ferry-records` (pure); they
/// are re-exported here so that callers of the store need one crate.
pub use ferry_records::*;
pub use sql::SqlStore;

use std::sync::Arc;

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
