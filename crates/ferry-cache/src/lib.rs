//! Content hashing and the content-addressed cache.
//!
//! * [`Hasher`] digests files and folders (a folder is the digest of a sorted
//!   manifest of its files), trusting a persistent [`StatIndex`] for files whose
//!   size, mtime, ctime and inode have not changed since they were hashed, and
//!   rehashing "racily clean" files modified within the timestamp granularity
//!   of the moment they were hashed, as git does.
//! * [`Cache`] keeps stage outputs by content under `.ferry/cache/objects` and
//!   the outputs of each stage fingerprint under `.ferry/cache/runs`. Objects
//!   are written to a temporary file, synced and renamed, and restored by
//!   copying (with the stage's permissions, under the umask), so an in-place
//!   edit of a restored file can never corrupt the cache.
//!
//! Only regular files and folders are hashed: a FIFO, socket or device is an
//! error naming it (reading one could block or never end).

mod error;
mod hash;
mod index;
mod store;

pub use error::{Error, Result};
pub use hash::{Hasher, Manifest, ManifestEntry, PathDigest, escape_bytes};
pub use index::StatIndex;
pub use store::{Cache, GcStats, OutRecord, Restored, RunCacheEntry, write_atomic};
