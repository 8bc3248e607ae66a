//! Remotes: the content-addressed cache and the run cache on S3, GCS or a
//! shared folder, through the `object_store` crate.
//!
//! A remote is a copy of the cache's files under the same keys
//! (`ferry_cache::layout`): `objects/ab/cdef…` for a file, `….dir` for a
//! folder's manifest, `runs/ab/cdef…` for what a stage fingerprint produced.
//! Objects are immutable and named by their BLAKE3 digest, so a push is
//! idempotent and several machines can push at once (create-if-absent
//! writes where the service has them; the same bytes otherwise). Within one
//! push, files go before the manifests that list them and both before the
//! run-cache entries that point at them, so whoever sees an entry finds its
//! objects. Every download is verified against its digest before it enters
//! the cache; an interrupted push or pull leaves only whole objects behind
//! and resumes where it stopped.
//!
//! The crate is the only one that depends on `object_store` (and through it
//! on an HTTP client and TLS); its API is blocking, with its own runtime.

mod known;
mod open;
mod transfer;

pub use ferry_spec::remote::{Location, RemoteConfig};
pub use transfer::{Failure, GcReport, Progress, RemoteStatus, Summary, Want};

use object_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("remote `{remote}`: {message}")]
    Config { remote: String, message: String },
    #[error("remote `{remote}`: {op} `{key}`: {message}")]
    Store {
        remote: String,
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] ferry_cache::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a transfer runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Transfers in flight at once.
    pub jobs: usize,
    /// Forget what the remote is known to hold and ask it again.
    pub verify: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            jobs: 16,
            verify: false,
        }
    }
}

/// One remote, opened: its store, the prefix of its keys, and what this
/// machine knows it holds.
pub struct Remote {
    name: String,
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    known_file: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Opens the remote `cfg`; a relative folder URL is taken from `base`
    /// (the project root); what it is known to hold is kept in `state_dir`
    /// (`.ferry/remotes`). Nothing is requested yet: a wrong credential or a
    /// missing bucket shows at the first transfer.
    pub fn open(cfg: &RemoteConfig, base: &Path, state_dir: &Path) -> Result<Self> {
        let rt = runtime(base)?;
        let (store, prefix) = {
            let _guard = rt.enter();
            open::open(cfg, base)?
        };
        Ok(Self::with_store(cfg, store, prefix, state_dir, rt))
    }

    /// A remote over any store (the tests' in-memory or misbehaving ones).
    pub fn from_store(
        cfg: &RemoteConfig,
        store: Arc<dyn ObjectStore>,
        state_dir: &Path,
    ) -> Result<Self> {
        let rt = runtime(state_dir)?;
        Ok(Self::with_store(cfg, store, String::new(), state_dir, rt))
    }

    fn with_store(
        cfg: &RemoteConfig,
        store: Arc<dyn ObjectStore>,
        prefix: String,
        state_dir: &Path,
        rt: tokio::runtime::Runtime,
    ) -> Self {
        Self {
            name: cfg.name.clone(),
            url: cfg.url.clone(),
            store,
            prefix,
            known_file: state_dir.join(format!("{}.known", cfg.name)),
            rt,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store path of a cache key.
    fn path(&self, key: &str) -> object_store::path::Path {
        if self.prefix.is_empty() {
            object_store::path::Path::from(key)
        } else {
            object_store::path::Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The cache key of a store path under this remote's prefix.
    fn key_of(&self, p: &object_store::path::Path) -> Option<String> {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            Some(s.to_owned())
        } else {
            s.strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_owned)
        }
    }

    fn store_error(&self, op: &'static str, key: &str, e: &object_store::Error) -> Error {
        Error::Store {
            remote: self.name.clone(),
            op,
            key: key.to_owned(),
            message: describe(e, &self.url),
        }
    }
}

/// The runtime a remote's transfers run on (two workers: the transfers
/// wait on the network, not the CPU).
fn runtime(for_path: &Path) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "start the transfer runtime for",
            path: for_path.to_owned(),
            source,
        })
}

/// An object store error in words a user can act on.
fn describe(e: &object_store::Error, url: &str) -> String {
    let text = e.to_string();
    let hint = if matches!(e, object_store::Error::Unauthenticated { .. })
        || text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("credential")
    {
        Some(
            "check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE for s3://, \
             GOOGLE_APPLICATION_CREDENTIALS for gs://",
        )
    } else if matches!(e, object_store::Error::PermissionDenied { .. }) {
        Some("the credentials in use may not read or write this bucket")
    } else if text.contains("NoSuchBucket") || text.contains("bucket does not exist") {
        Some("the bucket does not exist: create it, or fix the remote's URL")
    } else {
        None
    };
    match hint {
        Some(h) => format!("{text} ({h}; remote {url})"),
        None => text,
    }
}
