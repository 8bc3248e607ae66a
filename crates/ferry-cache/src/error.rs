//! The cache crate's one error type: each variant names the path or object it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cache object for `{path}` ({digest}) is missing or damaged")]
    MissingObject { path: String, digest: String },
    #[error("cache entry `{}` is damaged: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// Only regular files and folders are hashed: reading a FIFO or a device
    /// could block forever or never end.
    #[error(
        "`{path}` is {kind}, not a regular file or folder; only files and folders can be deps or outs"
    )]
    NotRegular { path: String, kind: &'static str },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ferry_fs::Error> for Error {
    fn from(e: ferry_fs::Error) -> Self {
        Error::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}

pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.to_owned(),
            source,
        })
    }
}
