//! Pure pipeline logic: stage fingerprints, the `ferry.lock` model, and the
//! decision (with reasons) of whether a stage is up to date, can be restored
//! from the cache, or must run. No IO: digests come in as values.

mod explain;
mod fingerprint;
mod lock;

pub use explain::{Change, Decision, explain};
pub use fingerprint::{DepState, StageInputs, canonical_json, fingerprint};
pub use lock::{LOCK_SCHEMA, LockError, LockFile, LockedPath, StageLock};
