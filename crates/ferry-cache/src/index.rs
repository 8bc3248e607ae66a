//! The persistent stat index: (path, size, mtime, ctime, inode) -> digest.

use crate::error::{IoContext, Result};
use ferry_core::Digest;
use ferry_fs::write_atomic;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FRYIDX01";

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl Stat {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            ino: meta.ino(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    stat: Stat,
    digest: Digest,
    /// When the content was read (ns since the epoch).
    hashed_at_ns: i64,
}

/// The index of file digests by stat, kept in `.ferry/index`.
#[derive(Debug, Default)]
pub struct StatIndex {
    path: PathBuf,
    entries: HashMap<String, Entry>,
    dirty: bool,
}

fn now_ns() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl StatIndex {
    /// Loads the index at `path`; a missing or damaged index is an empty one
    /// (it is only a cache of digests).
    pub fn load(path: &Path) -> Self {
        let mut idx = Self {
            path: path.to_owned(),
            ..Self::default()
        };
        if let Ok(bytes) = std::fs::read(path)
            && let Some(entries) = decode(&bytes)
        {
            idx.entries = entries;
        }
        idx
    }

    /// The digest of `rel` if its stat is unchanged since it was hashed and it
    /// was not modified within the timestamp granularity of that moment.
    pub fn lookup(&self, rel: &str, stat: &Stat) -> Option<Digest> {
        let e = self.entries.get(rel)?;
        if e.stat != *stat {
            return None;
        }
        // Racily clean: modified so close to when it was read that a later
        // write within the same timestamp tick would leave mtime unchanged.
        let granularity = if stat.mtime_ns % 1_000_000_000 == 0 {
            2_000_000_000
        } else {
            50_000_000
        };
        if stat.mtime_ns >= e.hashed_at_ns - granularity {
            return None;
        }
        Some(e.digest)
    }

    /// What the index last recorded for `rel`, changed since or not.
    pub fn recorded(&self, rel: &str) -> Option<(Stat, Digest)> {
        self.entries.get(rel).map(|e| (e.stat, e.digest))
    }

    /// Records a digest for a file read at `hashed_at_ns` (taken *before* the
    /// read began).
    pub fn insert(&mut self, rel: String, stat: Stat, digest: Digest, hashed_at_ns: i64) {
        self.entries.insert(
            rel,
            Entry {
                stat,
                digest,
                hashed_at_ns,
            },
        );
        self.dirty = true;
    }

    pub fn now_ns() -> i64 {
        now_ns()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the index if it changed (atomically: temp file and rename).
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        // Drop entries whose file is gone, so the index does not grow forever.
        let root = self
            .path
            .parent()
            .and_then(Path::parent)
            .map(Path::to_owned);
        if let Some(root) = root
            && self.entries.len() > 1024
        {
            self.entries.retain(|rel, _| root.join(rel).exists());
        }
        let bytes = encode(&self.entries);
        write_atomic(&self.path, &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

fn encode(entries: &HashMap<String, Entry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * 96);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    let mut keys: Vec<&String> = entries.keys().collect();
    keys.sort();
    for k in keys {
        let e = &entries[k];
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&e.stat.size.to_le_bytes());
        out.extend_from_slice(&e.stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.stat.ino.to_le_bytes());
        out.extend_from_slice(&e.hashed_at_ns.to_le_bytes());
        out.extend_from_slice(e.digest.as_bytes());
    }
    let check = blake3::hash(&out);
    out.extend_from_slice(&check.as_bytes()[..8]);
    out
}

fn decode(bytes: &[u8]) -> Option<HashMap<String, Entry>> {
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return None;
    }
    let (body, check) = bytes.split_at(bytes.len() - 8);
    if &blake3::hash(body).as_bytes()[..8] != check {
        return None;
    }
    let mut r = Reader { b: body, i: 8 };
    let n = r.u64()? as usize;
    let mut map = HashMap::with_capacity(n.min(1 << 24));
    for _ in 0..n {
        let len = r.u32()? as usize;
        let key = std::str::from_utf8(r.take(len)?).ok()?.to_owned();
        let stat = Stat {
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
            ino: r.u64()?,
        };
        let hashed_at_ns = r.u64()? as i64;
        let digest = Digest::from_bytes(r.take(32)?.try_into().ok()?);
        map.insert(
            key,
            Entry {
                stat,
                digest,
                hashed_at_ns,
            },
        );
    }
    Some(map)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i + n)?;
        self.i += n;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// Reads the stat of `path`, following symlinks.
pub(crate) fn stat(path: &Path) -> Result<Option<(std::fs::Metadata, Stat)>> {
    match std::fs::metadata(path) {
        Ok(m) => {
            let s = Stat::of(&m);
            Ok(Some((m, s)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("read the metadata of", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_racy_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".ferry/index");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut idx = StatIndex::load(&p);
        let st = Stat {
            size: 3,
            mtime_ns: 1_000_000_123,
            ctime_ns: 1_000_000_123,
            ino: 7,
        };
        let d = Digest::of(b"abc");
        idx.insert("a".into(), st, d, 10_000_000_000);
        // hashed long after the mtime: trusted
        assert_eq!(idx.lookup("a", &st), Some(d));
        // a different stat: not trusted
        assert_eq!(idx.lookup("a", &Stat { size: 4, ..st }), None);
        // hashed within the granularity of the mtime: racily clean, not trusted
        idx.insert("b".into(), st, d, 1_000_000_200);
        assert_eq!(idx.lookup("b", &st), None);
        idx.save().unwrap();
        let back = StatIndex::load(&p);
        assert_eq!(back.lookup("a", &st), Some(d));
        assert_eq!(back.len(), 2);
        // A damaged index is an empty one, never an error.
        std::fs::write(&p, b"FRYIDX01garbage-garbage-garbage").unwrap();
        assert!(StatIndex::load(&p).is_empty());
    }
}
