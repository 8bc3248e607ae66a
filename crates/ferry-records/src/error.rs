//! The one error of every store operation, whatever the backend.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot open the store at `{}`: {source}",
        ferry_core::without_password(url)
    )]
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
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
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
