//! Digests of files and folders, through the stat index.

use crate::error::{IoContext, Result};
use crate::index::{Stat, StatIndex, stat};
use ferry_core::{Digest, StableHasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One file of a folder's manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    /// Relative to the folder, `/`-separated.
    pub path: String,
    pub digest: Digest,
    pub size: u64,
}

/// The files of a folder, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// The folder's digest: a versioned encoding of its sorted entries.
    pub fn digest(&self) -> Digest {
        let mut h = StableHasher::new("ferry.dir.v1");
        h.list(self.entries.len());
        for e in &self.entries {
            h.str(&e.path).digest(&e.digest).u64(e.size);
        }
        h.finish()
    }
    pub fn size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// The digest of a path in the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathDigest {
    File { digest: Digest, size: u64 },
    Dir { digest: Digest, manifest: Manifest },
}

impl PathDigest {
    pub fn digest(&self) -> Digest {
        match self {
            PathDigest::File { digest, .. } | PathDigest::Dir { digest, .. } => *digest,
        }
    }
    pub fn size(&self) -> u64 {
        match self {
            PathDigest::File { size, .. } => *size,
            PathDigest::Dir { manifest, .. } => manifest.size(),
        }
    }
    pub fn is_dir(&self) -> bool {
        matches!(self, PathDigest::Dir { .. })
    }
}

/// Hashes project paths, trusting the stat index where it can.
pub struct Hasher {
    root: PathBuf,
    index: StatIndex,
    threads: usize,
    /// Bytes actually read (for benchmarks and `--verbose`).
    pub bytes_hashed: u64,
}

/// A file's digest and its stat after reading.
type HashResult = Result<(Digest, Stat)>;

struct Pending {
    rel: String,
    stat: Stat,
}

impl Hasher {
    pub fn new(root: &Path, index: StatIndex) -> Self {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8);
        Self {
            root: root.to_owned(),
            index,
            threads,
            bytes_hashed: 0,
        }
    }

    pub fn index_mut(&mut self) -> &mut StatIndex {
        &mut self.index
    }

    /// Digests of `paths` (relative to the root); `None` for a path that does
    /// not exist. Files that need reading are read in parallel.
    pub fn digest_paths(&mut self, paths: &[String]) -> Result<Vec<Option<PathDigest>>> {
        // First pass: stat everything, collect the files to read.
        enum Plan {
            Missing,
            File(String, Stat, Option<Digest>),
            Dir(Vec<(String, Stat, Option<Digest>)>),
        }
        let mut plans = Vec::with_capacity(paths.len());
        let mut pending = Vec::new();
        for rel in paths {
            let abs = self.root.join(rel);
            match stat(&abs)? {
                None => plans.push(Plan::Missing),
                Some((meta, st)) if meta.is_dir() => {
                    let mut files = Vec::new();
                    walk(&abs, "", &mut files)?;
                    let mut entries = Vec::with_capacity(files.len());
                    for (sub, st) in files {
                        let full = format!("{rel}/{sub}");
                        let known = self.index.lookup(&full, &st);
                        if known.is_none() {
                            pending.push(Pending {
                                rel: full,
                                stat: st,
                            });
                        }
                        entries.push((sub, st, known));
                    }
                    plans.push(Plan::Dir(entries));
                    let _ = st;
                }
                Some((_, st)) => {
                    let known = self.index.lookup(rel, &st);
                    if known.is_none() {
                        pending.push(Pending {
                            rel: rel.clone(),
                            stat: st,
                        });
                    }
                    plans.push(Plan::File(rel.clone(), st, known));
                }
            }
        }
        let fresh = self.hash_pending(pending)?;
        let get = |rel: &str, known: Option<Digest>| -> Digest {
            known
                .or_else(|| fresh.get(rel).copied())
                .unwrap_or(Digest::from_bytes([0; 32]))
        };
        let mut out = Vec::with_capacity(plans.len());
        for (plan, rel) in plans.into_iter().zip(paths) {
            out.push(match plan {
                Plan::Missing => None,
                Plan::File(r, st, known) => Some(PathDigest::File {
                    digest: get(&r, known),
                    size: st.size,
                }),
                Plan::Dir(files) => {
                    let entries: Vec<ManifestEntry> = files
                        .into_iter()
                        .map(|(sub, st, known)| ManifestEntry {
                            digest: get(&format!("{rel}/{sub}"), known),
                            path: sub,
                            size: st.size,
                        })
                        .collect();
                    let manifest = Manifest { entries };
                    Some(PathDigest::Dir {
                        digest: manifest.digest(),
                        manifest,
                    })
                }
            });
        }
        Ok(out)
    }

    pub fn digest_path(&mut self, rel: &str) -> Result<Option<PathDigest>> {
        Ok(self.digest_paths(&[rel.to_owned()])?.pop().flatten())
    }

    fn hash_pending(
        &mut self,
        pending: Vec<Pending>,
    ) -> Result<std::collections::HashMap<String, Digest>> {
        let mut out = std::collections::HashMap::with_capacity(pending.len());
        if pending.is_empty() {
            return Ok(out);
        }
        let started = StatIndex::now_ns();
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, HashResult)>> = Mutex::new(Vec::new());
        let total: u64 = pending.iter().map(|p| p.stat.size).sum();
        let threads = if pending.len() == 1 || total < 256 * 1024 {
            1
        } else {
            self.threads.min(pending.len())
        };
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = pending.get(i) else { break };
                        let r = hash_file(&self.root.join(&p.rel), &mut buf);
                        if let Ok(mut g) = results.lock() {
                            g.push((i, r));
                        }
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_default();
        for (i, r) in results {
            let (digest, st_after) = r?;
            let p = &pending[i];
            // Only remember digests of files that did not change while read.
            if st_after == p.stat {
                self.index.insert(p.rel.clone(), p.stat, digest, started);
            }
            self.bytes_hashed += p.stat.size;
            out.insert(p.rel.clone(), digest);
        }
        Ok(out)
    }

    /// Records the digest of a file ferry itself just wrote (a restore), so it
    /// is not read again.
    pub fn remember(&mut self, rel: &str, digest: Digest) -> Result<()> {
        if let Some((_, st)) = stat(&self.root.join(rel))? {
            self.index
                .insert(rel.to_owned(), st, digest, StatIndex::now_ns());
        }
        Ok(())
    }

    pub fn save_index(&mut self) -> Result<()> {
        self.index.save()
    }
}

fn hash_file(path: &Path, buf: &mut [u8]) -> Result<(Digest, Stat)> {
    let mut f = std::fs::File::open(path).ctx("open", path)?;
    let mut h = blake3::Hasher::new();
    let meta = f.metadata().ctx("read the metadata of", path)?;
    if meta.len() >= 16 * 1024 * 1024 {
        // Large files: memory-mapped, the work split across cores.
        h.update_mmap_rayon(path).ctx("read", path)?;
    } else {
        loop {
            let n = f.read(buf).ctx("read", path)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    let after = Stat::of(&f.metadata().ctx("read the metadata of", path)?);
    Ok((Digest::from_bytes(*h.finalize().as_bytes()), after))
}

/// Every file under `dir`, with paths relative to it, sorted.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Stat)>) -> Result<()> {
    let mut names: Vec<(String, std::fs::DirEntry)> = Vec::new();
    for e in std::fs::read_dir(dir).ctx("list", dir)? {
        let e = e.ctx("list", dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        names.push((name, e));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, e) in names {
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = e.path();
        let ft = e.file_type().ctx("read the type of", &path)?;
        let meta = if ft.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => continue, // a dangling link holds no content
            }
        } else {
            e.metadata().ctx("read the metadata of", &path)?
        };
        if meta.is_dir() {
            walk(&path, &rel, out)?;
        } else if meta.is_file() {
            out.push((rel, Stat::of(&meta)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(dir: &Path) -> Hasher {
        std::fs::create_dir_all(dir.join(".ferry")).unwrap();
        Hasher::new(dir, StatIndex::load(&dir.join(".ferry/index")))
    }

    #[test]
    fn files_and_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("d/sub")).unwrap();
        std::fs::write(root.join("d/a.txt"), "a").unwrap();
        std::fs::write(root.join("d/sub/b.txt"), "b").unwrap();
        std::fs::write(root.join("f.txt"), "hello").unwrap();
        let mut h = hasher(root);
        let r = h
            .digest_paths(&["f.txt".into(), "d".into(), "nope".into()])
            .unwrap();
        assert_eq!(r[0].as_ref().unwrap().digest(), Digest::of(b"hello"));
        let PathDigest::Dir { manifest, .. } = r[1].as_ref().unwrap() else {
            panic!()
        };
        let paths: Vec<_> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "sub/b.txt"]);
        assert!(r[2].is_none());
        let d1 = r[1].as_ref().unwrap().digest();
        // Changing a file inside changes the folder's digest, even with the same size.
        std::fs::write(root.join("d/sub/b.txt"), "c").unwrap();
        let d2 = h.digest_path("d").unwrap().unwrap().digest();
        assert_ne!(d1, d2);
    }

    #[test]
    fn index_avoids_rereading_but_catches_edits() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let f = root.join("data.bin");
        std::fs::write(&f, vec![1u8; 1000]).unwrap();
        // Make the file old, so it is not racily clean.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut h = hasher(root);
        h.digest_path("data.bin").unwrap();
        assert_eq!(h.bytes_hashed, 1000);
        h.save_index().unwrap();
        let mut h = hasher(root);
        h.digest_path("data.bin").unwrap();
        assert_eq!(h.bytes_hashed, 0, "unchanged file must come from the index");
        // Same size, new content, mtime forced back to the old value: ctime still moves.
        std::fs::write(&f, vec![2u8; 1000]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let d = h.digest_path("data.bin").unwrap().unwrap().digest();
        assert_eq!(d, Digest::of(&[2u8; 1000]));
    }

    #[test]
    fn racily_clean_file_is_rehashed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let f = root.join("x");
        std::fs::write(&f, "one").unwrap();
        let mut h = hasher(root);
        h.digest_path("x").unwrap();
        // Rewrite at once: same size, and maybe the same mtime tick.
        std::fs::write(&f, "two").unwrap();
        let d = h.digest_path("x").unwrap().unwrap().digest();
        assert_eq!(d, Digest::of(b"two"));
    }
}
