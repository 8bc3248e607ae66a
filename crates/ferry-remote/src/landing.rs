//! Where a downloaded key lands in the local cache: a temporary file beside
//! its place, written and checked on a blocking thread ([`Landing`]), then
//! made durable with the rest of its batch (one sync of the cache's
//! filesystem, not one per key) and only then renamed in ([`publish`]). A
//! corrupt download never enters the cache, and a crash never leaves a key
//! under its name whose bytes are not on disk: until the rename there is
//! only a `.tmp-<pid>-…` file, which the next run sweeps away.

use crate::{Error, Result};
use ferry_core::Digest;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Bytes read at a time from a local file (a folder remote's object).
const READ_BUF: usize = 1024 * 1024;

/// What is checked of a key's bytes before they are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A file's bytes, checked against its digest.
    Object,
    /// A folder's manifest, checked by recomputing the folder's digest.
    Manifest,
    /// A run-cache entry, checked by parsing.
    Run,
}

impl Kind {
    /// Whether `body` (whose BLAKE3 digest is `hash`, for an object) is
    /// what a key of this kind named by `digest` must hold.
    pub(crate) fn accepts(
        self,
        digest: &Digest,
        hash: impl FnOnce() -> Digest,
        body: &[u8],
    ) -> bool {
        match self {
            Self::Object => hash() == *digest,
            Self::Manifest => serde_json::from_slice::<ferry_cache::Manifest>(body)
                .is_ok_and(|m| m.digest() == *digest),
            Self::Run => serde_json::from_slice::<ferry_cache::RunCacheEntry>(body).is_ok(),
        }
    }
}

/// A temporary file that is removed when dropped, unless renamed in.
struct Temporary(Option<PathBuf>);

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One key being written to its temporary file, hashed on the way (an
/// object) or kept to be parsed (a manifest or run entry: small).
pub(crate) struct Landing {
    kind: Kind,
    digest: Digest,
    dest: PathBuf,
    tmp: Temporary,
    file: std::fs::File,
    hasher: blake3::Hasher,
    body: Vec<u8>,
    bytes: u64,
}

/// A checked temporary file, waiting for its batch's sync to be renamed in.
pub(crate) struct Landed {
    pub(crate) bytes: u64,
    dest: PathBuf,
    tmp: Temporary,
}

impl Landing {
    /// Creates the temporary file beside `dest`: `None` when `dest` is
    /// there already.
    pub(crate) fn open(kind: Kind, digest: Digest, dest: PathBuf) -> Result<Option<Self>> {
        if dest.exists() {
            return Ok(None);
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let path = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            &digest.to_hex()[..16]
        ));
        let file = std::fs::File::create(&path).map_err(io("create", &path))?;
        Ok(Some(Self {
            kind,
            digest,
            dest,
            tmp: Temporary(Some(path)),
            file,
            hasher: blake3::Hasher::new(),
            body: Vec::new(),
            bytes: 0,
        }))
    }

    pub(crate) fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.bytes += chunk.len() as u64;
        match self.kind {
            Kind::Object => {
                self.hasher.update(chunk);
            }
            Kind::Manifest | Kind::Run => self.body.extend_from_slice(chunk),
        }
        self.file.write_all(chunk).map_err(io("write", self.path()))
    }

    /// Writes all `len` bytes of `from` (a folder remote's file), a buffer
    /// at a time.
    pub(crate) fn copy_from(&mut self, from: impl Read, len: u64, source: &Path) -> Result<()> {
        let mut from = from.take(len);
        let mut buf = vec![0u8; usize::try_from(len).map_or(READ_BUF, |n| n.clamp(1, READ_BUF))];
        loop {
            let n = from.read(&mut buf).map_err(io("read", source))?;
            if n == 0 {
                return Ok(());
            }
            self.write(&buf[..n])?;
        }
    }

    /// Checks what was written: `None` when it is not what the key must
    /// hold (the temporary file is removed), else the file made read-only
    /// (a run entry stays writable, as the cache keeps it), not yet synced.
    pub(crate) fn finish(self) -> Result<Option<Landed>> {
        let Self {
            kind,
            digest,
            dest,
            tmp,
            file,
            hasher,
            body,
            bytes,
        } = self;
        let hash = || Digest::from_bytes(*hasher.finalize().as_bytes());
        if !kind.accepts(&digest, hash, &body) {
            return Ok(None);
        }
        let path = tmp.0.as_deref().unwrap_or(Path::new(""));
        if kind != Kind::Run {
            let mut perms = file.metadata().map_err(io("read", path))?.permissions();
            perms.set_readonly(true);
            file.set_permissions(perms).map_err(io("protect", path))?;
        }
        Ok(Some(Landed { bytes, dest, tmp }))
    }

    fn path(&self) -> &Path {
        self.tmp.0.as_deref().unwrap_or(Path::new(""))
    }
}

/// Syncs the batch's temporary files, all at once, renames each into
/// place, and syncs the renames (so that whatever records the keys as here
/// after this finds them after a crash too): one result per file, in
/// order. Blocking.
pub(crate) fn publish(batch: Vec<Landed>) -> Result<Vec<Result<u64>>> {
    let tmps: Vec<PathBuf> = batch.iter().filter_map(|l| l.tmp.0.clone()).collect();
    sync(&tmps)?;
    let mut dests = Vec::with_capacity(batch.len());
    let renamed: Vec<Result<u64>> = batch
        .into_iter()
        .map(|mut l| {
            let tmp = l.tmp.0.take().unwrap_or_default();
            match std::fs::rename(&tmp, &l.dest) {
                Ok(()) => {
                    dests.push(l.dest);
                    Ok(l.bytes)
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(io("rename into place", &l.dest)(e))
                }
            }
        })
        .collect();
    sync(&dests)?;
    Ok(renamed)
}

fn sync(files: &[PathBuf]) -> Result<()> {
    ferry_fs::sync_files(files).map_err(|e| Error::Io {
        what: e.action,
        path: e.path,
        source: e.source,
    })
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { what, path, source }
}
