//! Shared vocabulary of ferry: content digests, ids and validated names.
//!
//! This crate is pure: no IO, no clocks except [`now_ms`], which callers use at
//! the edges and pass down as values.

mod digest;
mod names;

pub use digest::{Digest, DigestParseError, StableHasher};
pub use names::{ModelName, ModelRef, ModelRefParseError, NameError, RunId, StageName};

/// Milliseconds since the Unix epoch, the one timestamp unit of ferry's records.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
