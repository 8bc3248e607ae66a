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

mod auth;
mod budgets;
mod deliveries;
mod deployments;
mod group;
mod jobs;
mod ledger;
mod models;
mod monitors;
mod overview;
mod row;
mod sql;
mod sqlite_writer;
mod tracking;

/// The records and store interfaces live in `ferry-records` (pure); they
/// are re-exported here so that callers of the store need one crate.
pub use ferry_records::*;
pub use sql::SqlStore;

use std::sync::Arc;

/// How long a command lets the WAL grow before a commit checkpoints it, in
/// pages (4 KiB): each command that opens the store reads the whole WAL
/// first (about 3 µs a page), and a checkpoint costs a few fsyncs, so a few
/// commands' worth (a run that changes nothing writes about 70 pages).
pub const CHECKPOINT_PAGES: u32 = 256;

/// The store for synchronous code: the same interface, blocking.
pub struct BlockingStore {
    rt: tokio::runtime::Runtime,
    inner: Arc<dyn MetadataStore>,
}

impl BlockingStore {
    /// Opens (and migrates) the store at `url`, e.g. `sqlite:///path/ferry.db`.
    ///
    /// Its callers are commands, which end soon after their last write, so
    /// SQLite connections in this process no longer checkpoint when they
    /// close (see `sqlite_writer::leave_checkpoints_to_commits`); this
    /// one's commits checkpoint every [`CHECKPOINT_PAGES`] pages instead,
    /// which keeps the WAL the next command reads when it opens the store
    /// short.
    pub fn open(url: &str) -> Result<Self> {
        let sqlite = url.starts_with("sqlite:");
        let mut rt = tokio::runtime::Builder::new_current_thread();
        // SQLite needs timers (the pool's) but no sockets: without the IO
        // driver, an answer from the connection's thread wakes this one
        // directly.
        if sqlite {
            rt.enable_time();
            sqlite_writer::leave_checkpoints_to_commits();
        } else {
            rt.enable_all();
        }
        let rt = rt
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the store runtime: {e}")))?;
        let inner = rt.block_on(SqlStore::open_with(url, CHECKPOINT_PAGES))?;
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
