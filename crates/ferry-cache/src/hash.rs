//! Digests of files and folders, through the stat index.

use crate::error::{Error, IoContext, Result};
use crate::index::{Stat, StatIndex, stat};
use ferry_core::{Digest, StableHasher};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One file of a folder's manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    /// Relative to the folder, `/`-separated. A path that is not UTF-8 is
    /// shown here with its stray bytes escaped (`caf\xe9.txt`) and kept
    /// exactly in `raw`.
    pub path: String,
    /// The path's exact bytes, when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Vec<u8>>,
    pub digest: Digest,
    pub size: u64,
}

impl ManifestEntry {
    /// The path relative to the folder, exactly as on disk.
    pub fn rel_path(&self) -> PathBuf {
        match &self.raw {
            Some(b) => PathBuf::from(std::ffi::OsStr::from_bytes(b)),
            None => PathBuf::from(&self.path),
        }
    }

    /// The stat index's key for this entry of the folder `dir` (relative to
    /// the project root).
    pub fn index_key(&self, dir: &str) -> String {
        match &self.raw {
            Some(b) => raw_key(dir, b),
            None => format!("{dir}/{}", self.path),
        }
    }
}

/// A path's bytes with those that are not UTF-8 escaped as `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out
}

/// The index key of a path that is not UTF-8: a NUL (which no path holds)
/// and the hex of its bytes, so no two paths share a key.
fn raw_key(dir: &str, rel: &[u8]) -> String {
    let mut k = format!("\0{dir}/");
    for x in rel {
        k.push_str(&format!("{x:02x}"));
    }
    k
}

/// The files of a folder, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// The folder's digest: a versioned encoding of its sorted entries. A
    /// path that is not UTF-8 goes in as bytes (`bytes`, another tag than
    /// `str`), so no such path can collide with a UTF-8 one and the digests
    /// of folders with UTF-8 paths are those of before.
    pub fn digest(&self) -> Digest {
        let mut h = StableHasher::new("ferry.dir.v1");
        h.list(self.entries.len());
        for e in &self.entries {
            match &e.raw {
                Some(b) => h.bytes(b),
                None => h.str(&e.path),
            };
            h.digest(&e.digest).u64(e.size);
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
    /// The root of the cache whose hard-linked objects an in-place edit
    /// would reach.
    guarded: Option<PathBuf>,
    /// Bytes actually read (for benchmarks and `--verbose`).
    pub bytes_hashed: u64,
}

/// A file's digest and its stat after reading.
type HashResult = Result<(Digest, Stat)>;

struct Pending {
    /// The stat index's key.
    key: String,
    abs: PathBuf,
    stat: Stat,
}

/// A file found in a folder.
struct Found {
    /// Relative to the folder, as shown.
    path: String,
    /// The exact bytes, when not UTF-8.
    raw: Option<Vec<u8>>,
    stat: Stat,
}

impl Hasher {
    pub fn new(root: &Path, index: StatIndex) -> Self {
        let threads = ferry_core::par::threads();
        Self {
            root: root.to_owned(),
            index,
            threads,
            guarded: None,
            bytes_hashed: 0,
        }
    }

    /// Watches for files hard-linked to the objects of the cache under
    /// `cache_root` being edited in place: such an edit changed the cached
    /// object too, which is then no longer what its digest says and is
    /// dropped from the cache (a fetch or the run that made it brings it
    /// back). See `Cache::guard`.
    pub fn guarding(mut self, cache_root: &Path) -> Self {
        self.guarded = Some(cache_root.to_owned());
        self
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
            File(Stat, Option<Digest>),
            Dir(Vec<(Found, String, Option<Digest>)>),
        }
        let mut plans = Vec::with_capacity(paths.len());
        let mut pending = Vec::new();
        for rel in paths {
            let abs = self.root.join(rel);
            match stat(&abs)? {
                None => plans.push(Plan::Missing),
                Some((meta, _)) if meta.is_dir() => {
                    let mut files = Vec::new();
                    walk(&abs, rel, &[], &mut files)?;
                    let mut entries = Vec::with_capacity(files.len());
                    for f in files {
                        let (key, sub) = match &f.raw {
                            Some(b) => (raw_key(rel, b), abs.join(std::ffi::OsStr::from_bytes(b))),
                            None => (format!("{rel}/{}", f.path), abs.join(&f.path)),
                        };
                        let known = self.index.lookup(&key, &f.stat);
                        if known.is_none() {
                            pending.push(Pending {
                                key: key.clone(),
                                abs: sub,
                                stat: f.stat,
                            });
                        }
                        entries.push((f, key, known));
                    }
                    plans.push(Plan::Dir(entries));
                }
                Some((meta, st)) => {
                    if !meta.is_file() {
                        return Err(not_regular(rel.clone(), &meta));
                    }
                    let known = self.index.lookup(rel, &st);
                    if known.is_none() {
                        pending.push(Pending {
                            key: rel.clone(),
                            abs,
                            stat: st,
                        });
                    }
                    plans.push(Plan::File(st, known));
                }
            }
        }
        let fresh = self.hash_pending(pending)?;
        let get = |key: &str, known: Option<Digest>| -> Digest {
            known
                .or_else(|| fresh.get(key).copied())
                .unwrap_or(Digest::from_bytes([0; 32]))
        };
        let mut out = Vec::with_capacity(plans.len());
        for (plan, rel) in plans.into_iter().zip(paths) {
            out.push(match plan {
                Plan::Missing => None,
                Plan::File(st, known) => Some(PathDigest::File {
                    digest: get(rel, known),
                    size: st.size,
                }),
                Plan::Dir(files) => {
                    let entries: Vec<ManifestEntry> = files
                        .into_iter()
                        .map(|(f, key, known)| ManifestEntry {
                            digest: get(&key, known),
                            path: f.path,
                            raw: f.raw,
                            size: f.stat.size,
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
        let total: u64 = pending.iter().map(|p| p.stat.size).sum();
        let threads = if pending.len() == 1 || total < 256 * 1024 {
            1
        } else {
            self.threads
        };
        let results: Vec<HashResult> = ferry_core::par::map(
            &pending,
            threads,
            || vec![0u8; 256 * 1024],
            |p, buf| hash_file(&p.abs, &p.key, buf),
        );
        for (p, r) in pending.iter().zip(results) {
            let (digest, st_after) = r?;
            self.drop_edited_link(p, digest);
            // Only remember digests of files that did not change while read.
            if st_after == p.stat {
                self.index.insert(p.key.clone(), p.stat, digest, started);
            }
            self.bytes_hashed += p.stat.size;
            out.insert(p.key.clone(), digest);
        }
        Ok(out)
    }

    /// When `p` was edited in place (same inode as when last hashed, other
    /// bytes) and that inode is also the cached object of its old digest,
    /// the object is corrupt: it goes.
    fn drop_edited_link(&self, p: &Pending, digest: Digest) {
        use std::os::unix::fs::MetadataExt;
        let Some(cache_root) = &self.guarded else {
            return;
        };
        let Some((old, old_digest)) = self.index.recorded(&p.key) else {
            return;
        };
        if old.ino != p.stat.ino || old_digest == digest {
            return;
        }
        let object = cache_root.join(crate::layout::object_key(&old_digest));
        let (Ok(obj), Ok(file)) = (std::fs::metadata(&object), std::fs::metadata(&p.abs)) else {
            return;
        };
        if obj.ino() == file.ino() && obj.dev() == file.dev() {
            // Best effort: a read-only command does not fail over it.
            let _ = std::fs::remove_file(&object);
        }
    }

    /// Records the digest of a file ferry itself just wrote (a restore), so it
    /// is not read again.
    pub fn remember(&mut self, rel: &str, digest: Digest) -> Result<()> {
        self.remember_at(rel, Path::new(rel), digest)
    }

    /// [`Hasher::remember`] for a file whose index key (see
    /// [`ManifestEntry::index_key`]) is not its path.
    pub fn remember_at(&mut self, key: &str, rel: &Path, digest: Digest) -> Result<()> {
        if let Some((_, st)) = stat(&self.root.join(rel))? {
            self.index
                .insert(key.to_owned(), st, digest, StatIndex::now_ns());
        }
        Ok(())
    }

    pub fn save_index(&mut self) -> Result<()> {
        self.index.save()
    }
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

fn not_regular(path: String, meta: &std::fs::Metadata) -> Error {
    Error::NotRegular {
        path,
        kind: kind_of(meta.file_type()),
    }
}

fn hash_file(path: &Path, shown: &str, buf: &mut [u8]) -> Result<(Digest, Stat)> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so a file that became a FIFO since it was listed cannot
    // hang the open; it is refused below.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ctx("open", path)?;
    let mut h = blake3::Hasher::new();
    let meta = f.metadata().ctx("read the metadata of", path)?;
    if !meta.is_file() {
        return Err(not_regular(display_key(shown), &meta));
    }
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

/// An index key as a path to show.
fn display_key(key: &str) -> String {
    match key.strip_prefix('\0') {
        Some(k) => {
            let (dir, hex) = k.split_once('/').unwrap_or(("", k));
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            format!("{dir}/{}", escape_bytes(&bytes))
        }
        None => key.to_owned(),
    }
}

/// Every file under `dir`, with paths relative to it, sorted by their bytes.
/// `shown` is `dir` relative to the project, for messages; `prefix` the
/// bytes of `dir` relative to the walk's root.
fn walk(dir: &Path, shown: &str, prefix: &[u8], out: &mut Vec<Found>) -> Result<()> {
    let mut names: Vec<(std::ffi::OsString, std::fs::DirEntry)> = Vec::new();
    for e in std::fs::read_dir(dir).ctx("list", dir)? {
        let e = e.ctx("list", dir)?;
        names.push((e.file_name(), e));
    }
    names.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, e) in names {
        let mut rel = prefix.to_vec();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
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
            walk(&path, shown, &rel, out)?;
        } else if meta.is_file() {
            let (path, raw) = match String::from_utf8(rel) {
                Ok(s) => (s, None),
                Err(e) => (escape_bytes(e.as_bytes()), Some(e.into_bytes())),
            };
            out.push(Found {
                path,
                raw,
                stat: Stat::of(&meta),
            });
        } else {
            return Err(not_regular(
                format!("{shown}/{}", escape_bytes(&rel)),
                &meta,
            ));
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

    #[test]
    fn names_that_are_not_utf8_are_hashed_by_their_bytes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let d = root.join("d");
        std::fs::create_dir_all(&d).unwrap();
        // Both names read as `a\u{fffd}` through a lossy conversion.
        std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"a\xe9")), "one").unwrap();
        std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"a\xe8")), "two").unwrap();
        std::fs::write(d.join("plain"), "three").unwrap();
        let mut h = hasher(root);
        let PathDigest::Dir { digest, manifest } = h.digest_path("d").unwrap().unwrap() else {
            panic!()
        };
        let shown: Vec<_> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(shown, ["a\\xe8", "a\\xe9", "plain"]);
        assert_eq!(
            manifest.entries[1].rel_path().as_os_str().as_bytes(),
            b"a\xe9"
        );
        assert_eq!(manifest.entries[1].digest, Digest::of(b"one"));
        assert_eq!(manifest.entries[2].raw, None);
        // A UTF-8 name spelled like the escape is another entry, another digest.
        let lookalike = Manifest {
            entries: vec![ManifestEntry {
                path: "a\\xe9".into(),
                raw: None,
                ..manifest.entries[1].clone()
            }],
        };
        let only = Manifest {
            entries: vec![manifest.entries[1].clone()],
        };
        assert_ne!(lookalike.digest(), only.digest());
        // The index keeps them apart, and an edit is seen.
        h.save_index().unwrap();
        std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"a\xe9")), "ONE").unwrap();
        let mut h = hasher(root);
        assert_ne!(h.digest_path("d").unwrap().unwrap().digest(), digest);
    }

    #[test]
    fn special_files_are_refused_not_read() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("d/sub")).unwrap();
        let fifo = |p: &Path| {
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        };
        fifo(&root.join("p"));
        fifo(&root.join("d/sub/q"));
        std::os::unix::fs::symlink("/dev/null", root.join("null")).unwrap();
        let mut h = hasher(root);
        let mut msg = |rel: &str| match h.digest_path(rel) {
            Err(e @ Error::NotRegular { .. }) => e.to_string(),
            other => panic!("{rel}: {other:?}"),
        };
        assert_eq!(
            msg("p"),
            "`p` is a FIFO, not a regular file or folder; only files and folders can be deps or outs"
        );
        assert!(msg("d").starts_with("`d/sub/q` is a FIFO"));
        assert!(msg("null").starts_with("`null` is a character device"));
    }

    #[test]
    fn folder_digests_of_utf8_names_are_those_of_before() {
        // Pinned with the code from before names could be raw bytes: a
        // change here changes every folder digest (bump `ferry.dir.v1`).
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("d/sub")).unwrap();
        std::fs::write(root.join("d/a.txt"), "a").unwrap();
        std::fs::write(root.join("d/sub/b.txt"), "b").unwrap();
        std::fs::write(root.join("d/café.txt"), "é").unwrap();
        let d = hasher(root).digest_path("d").unwrap().unwrap().digest();
        assert_eq!(
            d.to_hex(),
            "d4c4bf9aeee56d0ed1872bc4442a60635ce3b58dbacd1398431edb0531805ff5"
        );
    }
}
