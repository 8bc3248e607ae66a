//! Content hashing and the content-addressed cache.
//!
//! * [`Hasher`] digests files and folders (a folder is the digest of a sorted
//!   manifest of its files), trusting a persistent [`StatIndex`] for files whose
//!   size, mtime, ctime and inode have not changed since they were hashed, and
//!   rehashing "racily clean" files modified within the timestamp granularity
//!   of the moment they were hashed, as git does.
//! * [`Cache`] keeps stage outputs by content under `.ferry/cache/objects` and
//!   the outputs of each stage fingerprint under `.ferry/cache/runs`. Objects
//!   are written to a temporary file and renamed, and restored by copying, so
//!   an in-place edit of a restored file can never corrupt the cache.

mod error;
mod hash;
mod index;
mod store;

pub use error::{Error, Result};
pub use hash::{Hasher, Manifest, ManifestEntry, PathDigest};
pub use index::StatIndex;
pub use store::{Cache, GcStats, OutRecord, RunCacheEntry, write_atomic};
