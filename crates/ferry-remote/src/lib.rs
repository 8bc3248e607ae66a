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
//! on an HTTP client and TLS); its API is blocking, with its own runtime,
//! but for [`ObjectArtifacts`] (`artifacts.rs`): MLflow artifacts in a
//! bucket, the async `ferry_artifacts::ArtifactStore` that `ferry server`
//! and `ferry serve` are given.

pub mod artifacts;
mod known;
mod landing;
mod open;
mod transfer;

pub use artifacts::ObjectArtifacts;
pub use ferry_spec::remote::{Location, RemoteConfig};
pub use transfer::{Failure, GcReport, Progress, RemoteStatus, Summary, Want};

use object_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("remote `{remote}`: {message}")]
    Config { remote: String, message: String },
    /// The remote as a whole cannot be used: its bucket does not exist, it
    /// refuses the credentials, or it does not answer.
    #[error("remote `{remote}`: {message}")]
    Unavailable { remote: String, message: String },
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

impl Error {
    /// Whether this failure is the service's (an upload or download that
    /// failed after its retries, the remote unusable), not one key's (a
    /// corrupt copy, a local file).
    pub(crate) fn is_service_failure(&self) -> bool {
        match self {
            Self::Unavailable { .. } => true,
            Self::Store { op, .. } => *op != "verify",
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Threads a remote's runtime keeps for blocking filesystem work.
const FS_THREADS: usize = 16;

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
    /// Whether the bucket answered a first request (see `Remote::probe`).
    probed: std::sync::atomic::AtomicBool,
    /// A folder remote's folder: synced after each kind of a push (its
    /// store writes files without syncing them), so that nothing on it
    /// points at what a crash could lose, and nothing is recorded as held
    /// before it is durable.
    folder: Option<PathBuf>,
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
        let mut remote = Self::with_store(cfg, store, prefix, state_dir, rt);
        if let Ok(ferry_spec::remote::Location::Folder(dir)) =
            ferry_spec::remote::Location::parse(&cfg.url, base)
        {
            remote.folder = Some(dir);
        }
        Ok(remote)
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
            probed: std::sync::atomic::AtomicBool::new(false),
            folder: None,
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
/// wait on the network, not the CPU), with as many threads for the
/// filesystem as transfers in flight by default. Unbounded (tokio's 512),
/// a push of 10,000 small files started dozens, each with its own
/// allocator heap keeping the bodies it had read: 200-700 MiB.
fn runtime(for_path: &Path) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(FS_THREADS)
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
    let text = compact(&e.to_string());
    let hint = if is_credential_error(e) {
        Some(CREDENTIALS_HINT)
    } else if matches!(e, object_store::Error::PermissionDenied { .. }) {
        Some("the credentials in use may not read or write this bucket")
    } else if is_missing_bucket(e) {
        Some("the bucket does not exist: create it, or fix the remote's URL")
    } else {
        None
    };
    match hint {
        Some(h) => format!("{text} ({h}; remote {url})"),
        None => text,
    }
}

/// Why a remote cannot be used at all, from the error of its first request.
fn unavailable(e: &object_store::Error, url: &str) -> String {
    let location = Location::parse(url, Path::new("/")).ok();
    let what = match &location {
        Some(Location::S3 { bucket, .. } | Location::Gcs { bucket, .. }) => {
            format!("the bucket `{bucket}`")
        }
        _ => format!("`{url}`"),
    };
    let detail = compact(&e.to_string());
    if matches!(e, object_store::Error::NotFound { .. }) || is_missing_bucket(e) {
        format!("{what} does not exist: create it, or fix the remote's URL ({detail})")
    } else if is_credential_error(e) || matches!(e, object_store::Error::PermissionDenied { .. }) {
        let hint = match location {
            Some(Location::S3 { .. }) => S3_CREDENTIALS,
            Some(Location::Gcs { .. }) => GCS_CREDENTIALS,
            _ => "the credentials",
        };
        format!("{what} refused the credentials in use (check {hint}): {detail}")
    } else {
        format!("{what} cannot be reached: {detail}")
    }
}

const S3_CREDENTIALS: &str =
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the profile AWS_PROFILE names";
const GCS_CREDENTIALS: &str = "the service account GOOGLE_APPLICATION_CREDENTIALS names";
const CREDENTIALS_HINT: &str = "check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or \
     AWS_PROFILE for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://";

fn is_credential_error(e: &object_store::Error) -> bool {
    let text = e.to_string();
    matches!(e, object_store::Error::Unauthenticated { .. })
        || [
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "InvalidToken",
            "ExpiredToken",
            "credential",
        ]
        .iter()
        .any(|w| text.contains(w))
}

fn is_missing_bucket(e: &object_store::Error) -> bool {
    let text = e.to_string();
    text.contains("NoSuchBucket") || text.contains("bucket does not exist")
}

/// An error's text on one line, with a service's XML error body (S3's
/// `<Code>…</Code><Message>…</Message>`) shortened to its code and message.
fn compact(text: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find(&format!("</{name}>"))?;
        Some(text[start..start + len].to_owned())
    };
    let mut out = match text.find("<?xml").or_else(|| text.find("<Error>")) {
        Some(at) => {
            let head = text[..at].trim_end().trim_end_matches(':');
            match (tag("Code"), tag("Message")) {
                (Some(c), Some(m)) => format!("{head}: {c}: {m}"),
                (Some(c), None) => format!("{head}: {c}"),
                _ => head.to_owned(),
            }
        }
        None => text.to_owned(),
    };
    out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    const MAX: usize = 600;
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_error_bodies_are_shortened_to_code_and_message() {
        let raw = "Generic S3 error: Error performing PUT http://h/b/k in 2ms - Server returned \
                   non-2xx status code: 404 Not Found: <?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
                   <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>\
                   <BucketName>b</BucketName></Error>";
        assert_eq!(
            super::compact(raw),
            "Generic S3 error: Error performing PUT http://h/b/k in 2ms - Server returned non-2xx \
             status code: 404 Not Found: NoSuchBucket: The specified bucket does not exist"
        );
        assert_eq!(super::compact("a\n  b"), "a b");
        assert!(super::compact(&"x".repeat(2000)).chars().count() <= 601);
    }
}
