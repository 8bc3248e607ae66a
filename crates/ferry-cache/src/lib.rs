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
pub mod layout;
mod store;

pub use error::{Error, Result};
pub use hash::{Hasher, Manifest, ManifestEntry, PathDigest, escape_bytes};
pub use index::StatIndex;
pub use store::{Cache, GcStats, OutRecord, Restored, RunCacheEntry};

/// The digest of what a registry keeps for a model version: the file or
/// folder at `path` with every byte read (no stat index: nothing is taken
/// on trust), or, when nothing is there, that of an empty folder. The one
/// procedure that records a version's digest at registration and checks it
/// at every load.
pub fn stored_digest(path: &std::path::Path) -> Result<ferry_core::Digest> {
    let empty = || Manifest::default().digest();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(empty());
    };
    let mut h = Hasher::new(parent, StatIndex::default());
    Ok(h.digest_path(&name.to_string_lossy())?
        .map_or_else(empty, |d| d.digest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_digests_change_with_any_byte_and_read_everything() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let m = d.path().join("model");
        let empty = stored_digest(&m).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(m.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored_digest(&m).ok(), Some(empty), "an empty folder");
        std::fs::write(m.join("model.onnx"), b"weights").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(m.join("sub/MLmodel"), b"flavors: {}").unwrap_or_else(|e| panic!("{e}"));
        let first = stored_digest(&m).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(first, empty);
        // Same size, same mtime second: only reading every byte sees it.
        let mtime = std::fs::metadata(m.join("model.onnx"))
            .and_then(|x| x.modified())
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(m.join("model.onnx"), b"WEIGHTS").unwrap_or_else(|e| panic!("{e}"));
        std::fs::File::options()
            .write(true)
            .open(m.join("model.onnx"))
            .and_then(|f| f.set_modified(mtime))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(stored_digest(&m).ok(), Some(first));
        // A single file is its own content's digest.
        assert_eq!(
            stored_digest(&m.join("model.onnx")).ok(),
            Some(ferry_core::Digest::of(b"WEIGHTS"))
        );
    }
}
