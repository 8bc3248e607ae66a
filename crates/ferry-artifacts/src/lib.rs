//! Where MLflow artifacts are kept, behind one trait: [`ArtifactStore`].
//!
//! `ferry server` keeps the artifacts its clients upload in one store, and
//! `ferry serve` reads registered versions from it. Today's backend is a
//! local folder ([`LocalArtifacts`]); `ferry-remote` adds one over S3 and
//! GCS (`ferry_remote::ObjectArtifacts`). Every backend runs the same
//! conformance suite (feature `conformance`, [`conformance::run`]).
//!
//! Paths are relative, `/`-separated, and checked again by every backend
//! ([`segments`]): whatever a caller hands in, nothing outside the store's
//! root (a folder, or a bucket's prefix) is ever read, written or deleted.
//! Bodies go in and out as streams of chunks, so no backend holds a whole
//! file in memory.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod local;
mod walk;

pub use local::LocalArtifacts;
pub use walk::{fetch, stored_digest};

use bytes::Bytes;
use ferry_core::Digest;
use futures_util::stream::BoxStream;
use std::path::Path;

/// A body in chunks; an error ends it.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path that could lead outside the store's root.
    #[error("`{0}` is not a path under the artifact root")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} is a directory")]
    IsDir(String),
    /// The body of an upload failed before its end; nothing was stored.
    #[error("the upload of {path} was interrupted: {message}")]
    Interrupted { path: String, message: String },
    /// The backend failed (a disk error, the service after its retries).
    #[error("{store}: cannot {op} `{path}`: {message}")]
    Backend {
        store: String,
        op: &'static str,
        path: String,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of a listing: a name relative to the folder listed (or, from
/// [`ArtifactStore::files`], a `/`-separated path under it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub is_dir: bool,
    /// Bytes of a file; 0 for a folder.
    pub size: u64,
}

/// A file being read: its size and its bytes, streamed.
pub struct Download {
    pub size: u64,
    pub body: ByteStream,
}

/// A place that keeps artifacts. Paths are relative to its root; the root
/// itself is `""`.
#[async_trait::async_trait]
pub trait ArtifactStore: Send + Sync + std::fmt::Debug {
    /// Where the artifacts are: the folder, or `s3://bucket/prefix`.
    fn url(&self) -> String;

    /// The folder, when the artifacts are on this machine's disk.
    fn local_root(&self) -> Option<&Path> {
        None
    }

    /// Refuses a path that leads outside the root (a local folder also
    /// checks where the part of it that exists leads, through symlinks).
    async fn check(&self, path: &str) -> Result<()>;

    /// The entries directly in the folder `dir`, sorted by name; none when
    /// it does not exist.
    async fn list(&self, dir: &str) -> Result<Vec<Entry>>;

    /// Every file under `dir`, at any depth, with its path relative to
    /// `dir`, sorted by path; none when it does not exist or is a file.
    async fn files(&self, dir: &str) -> Result<Vec<Entry>>;

    /// Whether `path` is a folder that holds something.
    async fn is_dir(&self, path: &str) -> Result<bool>;

    /// The file at `path`: [`Error::NotFound`] when there is none,
    /// [`Error::IsDir`] when it is a folder.
    async fn get(&self, path: &str) -> Result<Download>;

    /// Stores `body` at `path`, replacing a file there; whole or not at all
    /// (a body that fails leaves what was there before). A folder at
    /// `path` is [`Error::IsDir`]. Returns the bytes stored.
    async fn put(&self, path: &str, body: ByteStream) -> Result<u64>;

    /// Removes the file or the folder (with everything in it) at `path`.
    async fn delete(&self, path: &str) -> Result<()>;

    /// The digest a registry records for the file or folder at `path`
    /// (`ferry_cache::stored_digest`'s, with every byte read).
    async fn digest(&self, path: &str) -> Result<Digest>;
}

/// The segments of a relative path, refusing any that could lead outside
/// the root: empty segments (`a//b`, a leading `/`), `.` and `..`,
/// backslashes, control characters. `""` is the root (no segments).
pub fn segments(path: &str) -> Result<Vec<&str>> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |s: &str| {
        s.is_empty() || s == "." || s == ".." || s.contains('\\') || s.chars().any(char::is_control)
    };
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|s| bad(s)) {
        return Err(Error::Invalid(path.escape_debug().to_string()));
    }
    Ok(parts)
}

/// `dir/name`, or `name` at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_root_are_refused() {
        for bad in [
            "..", "../x", "a/../b", "a/..", "./a", "a/./b", "/etc", "a//b", "a/", "a\\b", "a\0b",
            "a\nb",
        ] {
            assert!(segments(bad).is_err(), "{bad:?}");
        }
        assert_eq!(segments("").ok(), Some(vec![]));
        assert_eq!(segments("1/a..b/c d").ok(), Some(vec!["1", "a..b", "c d"]));
    }
}
