//! Data checks: read tables (arrow-rs), profile a trusted batch into an
//! expectation suite, validate batches against a suite, and compare two
//! batches for drift, with JSON and self-contained HTML reports.
//!
//! Memory is bounded by the columns and sketch sizes, not by rows: tables
//! are read in record batches; statistics use the bounded state in
//! [`sketch`]; `unique` (the one rule that needs per-row state) spills to
//! temporary files ([`unique`]). Drift reads the columns it compares.
//!
//! [`job`] is one check as `ferry check` and a pipeline's check stage both
//! run it, reports written.

pub mod check;
pub mod column;
pub mod dialect;
pub mod drift;
pub mod failing;
pub mod job;
pub mod jsonl;
pub mod locate;
pub mod profile;
pub mod report;
pub mod sample;
pub mod show;
pub mod sketch;
pub mod source;
pub mod suite;
pub mod text;
pub mod time;
pub mod unique;

pub use check::{CheckReport, ExpectationResult, check};
pub use dialect::CsvOptions;
pub use drift::{DriftOptions, DriftReport, drift};
pub use profile::profile;
pub use source::{ColType, Format, Table, TableSpec};
pub use suite::Suite;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{pattern}: {why}")]
    NoFiles { pattern: String, why: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {detail}", path.display())]
    Read { path: PathBuf, detail: String },
    /// A line of a CSV or JSON lines file that cannot be read (`line`: the
    /// file's own 1-based line; `column`: the character within it, when
    /// known).
    #[error("{}:{line}{}: {detail}", path.display(), column.map(|c| format!(":{c}")).unwrap_or_default())]
    Line {
        path: PathBuf,
        line: u64,
        column: Option<u64>,
        detail: String,
    },
    /// A value that does not parse as its column's type (`line`: the
    /// file's own 1-based line).
    #[error("{}{}: column `{column}`: {detail}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        column: String,
        line: Option<u64>,
        detail: String,
    },
    #[error("{source_name}: the table has no rows")]
    Empty { source_name: String },
    #[error("cannot read the suite {name}: {source}")]
    SuiteUnreadable {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Suite(suite::SuiteErrors),
    #[error("{table}: no column `{column}` (needed by {what}); its columns: {available}")]
    MissingColumn {
        table: String,
        column: String,
        what: String,
        available: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// A report that cannot be written (`name`: as the user named it).
    #[error("cannot write {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: ferry_fs::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
