//! The content-addressed cache: objects by digest, and the outputs each stage
//! fingerprint produced ("run cache").

use crate::error::{Error, IoContext, Result};
use crate::hash::{Hasher, Manifest, PathDigest};
use ferry_core::{Digest, LinkMode};
use ferry_fs::write_atomic;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One stage output as recorded in the lock file and the run cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutRecord {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    /// Number of files for a folder; absent for a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// What one stage fingerprint produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunCacheEntry {
    pub stage: String,
    pub outs: Vec<OutRecord>,
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
    pub created_ms: i64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcStats {
    pub objects_removed: u64,
    pub bytes_removed: u64,
    pub runs_removed: u64,
}

/// The cache under `.ferry/cache`.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    link: LinkMode,
}

impl Cache {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            link: LinkMode::Copy,
        }
    }

    /// The same cache restoring with `link` (see [`LinkMode`]).
    pub fn with_link(mut self, link: LinkMode) -> Self {
        self.link = link;
        self
    }

    pub fn link(&self) -> LinkMode {
        self.link
    }

    /// `hasher`, dropping this cache's objects that an edit through a hard
    /// link reached (see [`Hasher::guarding`]).
    pub fn guard(&self, hasher: Hasher) -> Hasher {
        hasher.guarding(&self.root)
    }

    /// Where the object with digest `d` is kept (present or not).
    pub fn object_path(&self, d: &Digest) -> PathBuf {
        self.root.join(crate::layout::object_key(d))
    }

    /// Where the manifest of the folder with digest `d` is kept.
    pub fn manifest_path(&self, d: &Digest) -> PathBuf {
        self.root.join(crate::layout::manifest_key(d))
    }

    /// Where the run-cache entry of `fingerprint` is kept.
    pub fn run_path(&self, fingerprint: &Digest) -> PathBuf {
        self.root.join(crate::layout::run_key(fingerprint))
    }

    /// The stored copy of the object with digest `d`, if present.
    pub fn object(&self, d: &Digest) -> Option<PathBuf> {
        let p = self.object_path(d);
        p.exists().then_some(p)
    }

    /// Copies `src` into the cache under a temporary name, verifies it and
    /// makes it read-only; not synced yet, not renamed in ([`Self::publish`]
    /// does both). `None`: the object is there already.
    fn stage_file(&self, src: &Path, d: &Digest) -> Result<Option<Staged>> {
        let dst = self.object_path(d);
        if dst.exists() {
            return Ok(None);
        }
        let dir = dst.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).ctx("create", dir)?;
        let staged = Staged {
            tmp: dir.join(format!(".tmp-{}-{}", std::process::id(), &d.to_hex()[..16])),
            dst,
            renamed: false,
        };
        {
            let _ = std::fs::remove_file(&staged.tmp);
            let mut from = std::fs::File::open(src).ctx("open", src)?;
            let mut to = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&staged.tmp)
                .ctx("create", &staged.tmp)?;
            std::io::copy(&mut from, &mut to).ctx("copy into the cache", src)?;
            let mode = from
                .metadata()
                .ctx("read the metadata of", src)?
                .permissions();
            to.set_permissions(mode)
                .ctx("set permissions of", &staged.tmp)?;
        }
        // Verify what landed: the source may have changed since it was hashed.
        let got = Digest::from_bytes(
            *blake3::Hasher::new()
                .update_mmap(&staged.tmp)
                .ctx("read", &staged.tmp)?
                .finalize()
                .as_bytes(),
        );
        if got != *d {
            return Err(Error::Corrupt {
                path: src.to_owned(),
                reason: "the file changed while it was being cached".into(),
            });
        }
        let mut perms = std::fs::metadata(&staged.tmp)
            .ctx("read", &staged.tmp)?
            .permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&staged.tmp, perms).ctx("protect", &staged.tmp)?;
        Ok(Some(staged))
    }

    /// Makes the staged objects durable at once (a crash must not leave an
    /// object under its digest whose bytes never reached the disk), renames
    /// each into place, and makes the renames durable.
    fn publish(staged: Vec<Staged>) -> Result<()> {
        let tmps: Vec<PathBuf> = staged.iter().map(|s| s.tmp.clone()).collect();
        ferry_fs::sync_files(&tmps)?;
        let mut done = Vec::with_capacity(staged.len());
        for mut s in staged {
            std::fs::rename(&s.tmp, &s.dst).ctx("rename into place", &s.dst)?;
            s.renamed = true;
            done.push(s.dst.clone());
        }
        Ok(ferry_fs::sync_files(&done)?)
    }

    /// Stores the objects `(source, digest)`, each once, copied on a few
    /// threads; on an error none is renamed in and no temporary is left.
    fn put_files(&self, files: &[(PathBuf, Digest)]) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<&(PathBuf, Digest)> =
            files.iter().filter(|(_, d)| seen.insert(*d)).collect();
        let staged = ferry_core::par::map(
            &unique,
            ferry_core::par::threads(),
            || (),
            |(src, d), ()| self.stage_file(src, d),
        );
        let mut ok = Vec::with_capacity(staged.len());
        let mut first_error = None;
        for s in staged {
            match s {
                Ok(Some(s)) => ok.push(s),
                Ok(None) => {}
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        // On an error, what was staged is removed as `ok` drops.
        match first_error {
            Some(e) => Err(e),
            None => Self::publish(ok),
        }
    }

    /// Stores the output at `abs` (already digested as `pd`) in the cache.
    pub fn store(&self, abs: &Path, pd: &PathDigest) -> Result<()> {
        match pd {
            PathDigest::File { digest, .. } => self.put_files(&[(abs.to_owned(), *digest)]),
            PathDigest::Dir { digest, manifest } => {
                let files: Vec<(PathBuf, Digest)> = manifest
                    .entries
                    .iter()
                    .map(|e| (abs.join(e.rel_path()), e.digest))
                    .collect();
                self.put_files(&files)?;
                let json = serde_json::to_vec(manifest).unwrap_or_default();
                let p = self.manifest_path(digest);
                if !p.exists() {
                    write_atomic(&p, &json)?;
                }
                Ok(())
            }
        }
    }

    /// The manifest of a stored folder.
    pub fn manifest(&self, d: &Digest) -> Result<Option<Manifest>> {
        let p = self.manifest_path(d);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt {
                    path: p,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("read", &p),
        }
    }

    /// True when everything needed to restore `out` is in the cache.
    pub fn has(&self, out: &OutRecord) -> bool {
        if out.files.is_some() {
            match self.manifest(&out.digest) {
                Ok(Some(m)) => m
                    .entries
                    .iter()
                    .all(|e| self.object_path(&e.digest).exists()),
                _ => false,
            }
        } else {
            self.object_path(&out.digest).exists()
        }
    }

    /// Puts `out` back at `root/out.path` from the cache, by the cache's
    /// [`LinkMode`] (a copy unless told otherwise: with a hard link, an
    /// in-place edit of the restored file reaches the cached object, which is
    /// why linked files stay read-only). Returns every file written.
    pub fn restore(&self, root: &Path, out: &OutRecord) -> Result<Vec<Restored>> {
        let target = root.join(&out.path);
        let missing = || Error::MissingObject {
            path: out.path.clone(),
            digest: out.digest.to_hex(),
        };
        if out.files.is_some() {
            let manifest = self.manifest(&out.digest)?.ok_or_else(missing)?;
            // Build the folder beside the target, then swap it in.
            let staging = sibling(&target, "restore");
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging).ctx("create", &staging)?;
            let folders: std::collections::BTreeSet<PathBuf> = manifest
                .entries
                .iter()
                .filter_map(|e| e.rel_path().parent().map(|p| staging.join(p)))
                .collect();
            for f in &folders {
                std::fs::create_dir_all(f).ctx("create", f)?;
            }
            // The files are copied on a few threads: most of a folder of
            // small files is waiting on the filesystem, per file.
            let copied = ferry_core::par::map(
                &manifest.entries,
                ferry_core::par::threads(),
                || (),
                |e, ()| {
                    let rel = e.rel_path();
                    place_out(&self.object_path(&e.digest), &staging.join(&rel), self.link)
                        .map_err(|e| match e {
                            Error::Io {
                                action: "open",
                                source,
                                ..
                            } if source.kind() == std::io::ErrorKind::NotFound => missing(),
                            e => e,
                        })?;
                    Ok(Restored {
                        key: e.index_key(&out.path),
                        path: Path::new(&out.path).join(rel),
                        digest: e.digest,
                    })
                },
            );
            let written = copied.into_iter().collect::<Result<Vec<Restored>>>()?;
            remove_any(&target)?;
            std::fs::rename(&staging, &target).ctx("rename into place", &target)?;
            Ok(written)
        } else {
            let src = self.object(&out.digest).ok_or_else(missing)?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).ctx("create", parent)?;
            }
            let tmp = sibling(&target, "restore");
            let _ = std::fs::remove_file(&tmp);
            place_out(&src, &tmp, self.link)?;
            if target.is_dir() {
                remove_any(&target)?;
            }
            std::fs::rename(&tmp, &target).ctx("rename into place", &target)?;
            Ok(vec![Restored {
                key: out.path.clone(),
                path: PathBuf::from(&out.path),
                digest: out.digest,
            }])
        }
    }

    pub fn run_entry(&self, fingerprint: &Digest) -> Result<Option<RunCacheEntry>> {
        let p = self.run_path(fingerprint);
        match std::fs::read(&p) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("read", &p),
        }
    }

    pub fn put_run_entry(&self, fingerprint: &Digest, entry: &RunCacheEntry) -> Result<()> {
        let json = serde_json::to_vec_pretty(entry).unwrap_or_default();
        Ok(write_atomic(&self.run_path(fingerprint), &json)?)
    }

    /// Removes every object not reachable from `keep` (digests of outs that
    /// are still referenced) and every run-cache entry not in `keep_runs`.
    /// Removes every object and run-cache entry not in `keep`/`keep_runs`;
    /// with `dry_run`, only counts what it would remove.
    pub fn gc(&self, keep: &[OutRecord], keep_runs: &[Digest], dry_run: bool) -> Result<GcStats> {
        let mut live = std::collections::HashSet::new();
        for o in keep {
            live.insert(o.digest.to_hex());
            if o.files.is_some()
                && let Some(m) = self.manifest(&o.digest)?
            {
                live.extend(m.entries.iter().map(|e| e.digest.to_hex()));
            }
        }
        let mut stats = GcStats::default();
        let objects = self.root.join("objects");
        for (name, path, size) in list_two_level(&objects)? {
            let hex = name.trim_end_matches(".dir");
            if !live.contains(hex) {
                if !dry_run {
                    std::fs::remove_file(&path).ctx("remove", &path)?;
                }
                stats.objects_removed += 1;
                stats.bytes_removed += size;
            }
        }
        let keep_runs: std::collections::HashSet<String> =
            keep_runs.iter().map(Digest::to_hex).collect();
        for (name, path, _) in list_two_level(&self.root.join("runs"))? {
            if !keep_runs.contains(&name) {
                if !dry_run {
                    std::fs::remove_file(&path).ctx("remove", &path)?;
                }
                stats.runs_removed += 1;
            }
        }
        Ok(stats)
    }

    /// Every run-cache entry, with its fingerprint.
    pub fn run_entries(&self) -> Result<Vec<(Digest, RunCacheEntry)>> {
        let mut out = Vec::new();
        for (name, path, _) in list_two_level(&self.root.join("runs"))? {
            if let (Ok(d), Ok(bytes)) = (name.parse::<Digest>(), std::fs::read(&path))
                && let Ok(e) = serde_json::from_slice(&bytes)
            {
                out.push((d, e));
            }
        }
        Ok(out)
    }
}

/// (full hex name, path, size) of every file `root/xx/yyyy`.
fn list_two_level(root: &Path) -> Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return Ok(out);
    };
    for shard in rd.flatten() {
        let prefix = shard.file_name().to_string_lossy().into_owned();
        if prefix.len() != 2 {
            continue;
        }
        for f in std::fs::read_dir(shard.path())
            .ctx("list", &shard.path())?
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((format!("{prefix}{name}"), f.path(), size));
        }
    }
    Ok(out)
}

fn sibling(target: &Path, what: &str) -> PathBuf {
    let name = target
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy());
    target.with_file_name(format!(".{name}.ferry-{what}-{}", std::process::id()))
}

/// Puts the object `src` at `dst` (which must not exist) by `link`.
fn place_out(src: &Path, dst: &Path, link: LinkMode) -> Result<()> {
    if link == LinkMode::Hardlink {
        match std::fs::hard_link(src, dst) {
            Ok(()) => return Ok(()),
            // Not possible here (another filesystem, too many links, a
            // filesystem without links): a copy does.
            Err(e) if link_unsupported(&e) => {}
            Err(e) => return Err(e).ctx("open", src),
        }
    }
    copy_out(src, dst, link == LinkMode::Reflink)
}

/// Errors that say "this filesystem cannot link or clone here", after which
/// a copy is the answer rather than a failure.
fn link_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EXDEV
                | libc::EMLINK
                | libc::EPERM
                | libc::EOPNOTSUPP
                | libc::ENOTTY
                | libc::EINVAL
                | libc::ENOSYS
        )
    )
}

/// Copies an object out of the cache with the permissions the stage gave
/// it: the object keeps them without the write bits, which come back where
/// the read bits are, and the umask applies (the file is created with that
/// mode, not chmod-ed to it). With `clone`, the bytes are shared
/// copy-on-write where the filesystem can (`FICLONE`), copied where not.
fn copy_out(src: &Path, dst: &Path, clone: bool) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut from = std::fs::File::open(src).ctx("open", src)?;
    let mode = from
        .metadata()
        .ctx("read the metadata of", src)?
        .permissions()
        .mode();
    let mode = (mode & 0o555) | ((mode & 0o444) >> 1);
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(dst)
        .ctx("create", dst)?;
    if clone {
        match reflink(&from, &to) {
            Ok(()) => return Ok(()),
            Err(e) if link_unsupported(&e) => {}
            Err(e) => return Err(e).ctx("clone out of the cache", src),
        }
    }
    std::io::copy(&mut from, &mut to).ctx("copy out of the cache", src)?;
    Ok(())
}

/// `to` becomes a copy-on-write clone of `from` (Linux `FICLONE`).
#[cfg(target_os = "linux")]
fn reflink(from: &std::fs::File, to: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open for the duration of the call, and
    // FICLONE takes the source descriptor by value.
    let rc = unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn reflink(_: &std::fs::File, _: &std::fs::File) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// An object copied into the cache under a temporary name, waiting to be
/// synced and renamed to its digest; its temporary file goes when it is
/// dropped before that.
struct Staged {
    tmp: PathBuf,
    dst: PathBuf,
    renamed: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// One file a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Its key in the stat index (see [`crate::ManifestEntry::index_key`]).
    pub key: String,
    /// Relative to the project root.
    pub path: PathBuf,
    pub digest: Digest,
}

fn remove_any(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).ctx("remove", p),
        Ok(_) => std::fs::remove_file(p).ctx("remove", p),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::StatIndex;

    /// A cache holding `model.bin` ("M1") and `out/` (two files), with
    /// their records; the work tree's copies removed.
    fn stored(root: &Path, link: LinkMode) -> (Cache, OutRecord, OutRecord) {
        let cache = Cache::new(&root.join(".ferry/cache")).with_link(link);
        std::fs::create_dir_all(root.join("out/sub")).unwrap();
        std::fs::write(root.join("out/a"), "A").unwrap();
        std::fs::write(root.join("out/sub/b"), "B").unwrap();
        std::fs::write(root.join("model.bin"), "M1").unwrap();
        let mut h = Hasher::new(root, StatIndex::default());
        let pd = h.digest_paths(&["out".into(), "model.bin".into()]).unwrap();
        let (dir, file) = (pd[0].clone().unwrap(), pd[1].clone().unwrap());
        cache.store(&root.join("out"), &dir).unwrap();
        cache.store(&root.join("model.bin"), &file).unwrap();
        std::fs::remove_dir_all(root.join("out")).unwrap();
        std::fs::remove_file(root.join("model.bin")).unwrap();
        let rec = |path: &str, d: &PathDigest, files| OutRecord {
            path: path.into(),
            digest: d.digest(),
            size: d.size(),
            files,
        };
        (
            cache,
            rec("out", &dir, Some(2)),
            rec("model.bin", &file, None),
        )
    }

    fn ino(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn hardlinks_share_the_objects_read_only() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let (cache, dir, file) = stored(root, LinkMode::Hardlink);
        cache.restore(root, &dir).unwrap();
        cache.restore(root, &file).unwrap();
        let restored = root.join("model.bin");
        assert_eq!(std::fs::read_to_string(&restored).unwrap(), "M1");
        assert_eq!(ino(&restored), ino(&cache.object_path(&file.digest)));
        assert!(
            std::fs::metadata(&restored)
                .unwrap()
                .permissions()
                .readonly()
        );
        let manifest = cache.manifest(&dir.digest).unwrap().unwrap();
        let b = manifest.entries.iter().find(|e| e.path == "sub/b").unwrap();
        assert_eq!(
            ino(&root.join("out/sub/b")),
            ino(&cache.object_path(&b.digest))
        );
        // Restoring again over a linked file replaces the name, not the bytes.
        cache.restore(root, &file).unwrap();
        assert_eq!(
            std::fs::read_to_string(cache.object_path(&file.digest)).unwrap(),
            "M1"
        );
    }

    #[test]
    fn reflink_clones_or_copies_and_the_copy_is_the_work_trees() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let (cache, _, file) = stored(root, LinkMode::Reflink);
        cache.restore(root, &file).unwrap();
        let restored = root.join("model.bin");
        assert_ne!(ino(&restored), ino(&cache.object_path(&file.digest)));
        assert!(
            !std::fs::metadata(&restored)
                .unwrap()
                .permissions()
                .readonly()
        );
        std::fs::write(&restored, "edited").unwrap();
        assert_eq!(
            std::fs::read_to_string(cache.object_path(&file.digest)).unwrap(),
            "M1"
        );
    }

    #[test]
    fn an_in_place_edit_of_a_linked_file_drops_the_object_it_reached() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let (cache, _, file) = stored(root, LinkMode::Hardlink);
        let mut h = cache.guard(Hasher::new(root, StatIndex::default()));
        for w in cache.restore(root, &file).unwrap() {
            h.remember_at(&w.key, &w.path, w.digest).unwrap();
        }
        // What a user forcing a write does: make it writable, write in place.
        let restored = root.join("model.bin");
        let mut perms = std::fs::metadata(&restored).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&restored, perms).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&restored, "M2, through the link").unwrap();
        let now = h.digest_path("model.bin").unwrap().unwrap();
        assert_ne!(now.digest(), file.digest);
        assert!(!cache.has(&file), "the object the edit reached is gone");
        // An edit that replaces the file (a new inode) leaves the cache be.
        let (cache, _, file) = stored(&root.join("again"), LinkMode::Hardlink);
        let root = root.join("again");
        let mut h = cache.guard(Hasher::new(&root, StatIndex::default()));
        for w in cache.restore(&root, &file).unwrap() {
            h.remember_at(&w.key, &w.path, w.digest).unwrap();
        }
        std::fs::remove_file(root.join("model.bin")).unwrap();
        std::fs::write(root.join("model.bin"), "M3").unwrap();
        h.digest_path("model.bin").unwrap();
        assert!(cache.has(&file));
    }

    #[test]
    fn store_restore_and_edits_do_not_reach_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let cache = Cache::new(&root.join(".ferry/cache"));
        std::fs::create_dir_all(root.join("out/sub")).unwrap();
        std::fs::write(root.join("out/a"), "A").unwrap();
        std::fs::write(root.join("out/sub/b"), "B").unwrap();
        std::fs::write(root.join("model.bin"), "M1").unwrap();
        let mut h = Hasher::new(root, StatIndex::default());
        let pd = h.digest_paths(&["out".into(), "model.bin".into()]).unwrap();
        let (dir, file) = (pd[0].clone().unwrap(), pd[1].clone().unwrap());
        cache.store(&root.join("out"), &dir).unwrap();
        cache.store(&root.join("model.bin"), &file).unwrap();
        let rec_dir = OutRecord {
            path: "out".into(),
            digest: dir.digest(),
            size: dir.size(),
            files: Some(2),
        };
        let rec_file = OutRecord {
            path: "model.bin".into(),
            digest: file.digest(),
            size: 2,
            files: None,
        };
        assert!(cache.has(&rec_dir) && cache.has(&rec_file));
        std::fs::remove_dir_all(root.join("out")).unwrap();
        std::fs::write(root.join("model.bin"), "M2-changed").unwrap();
        cache.restore(root, &rec_dir).unwrap();
        cache.restore(root, &rec_file).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("out/sub/b")).unwrap(),
            "B"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("model.bin")).unwrap(),
            "M1"
        );
        // Edit the restored file in place: the cached object must not change.
        std::fs::write(root.join("model.bin"), "edited").unwrap();
        let obj = cache.object(&file.digest()).unwrap();
        assert_eq!(std::fs::read_to_string(obj).unwrap(), "M1");
        // gc keeps what is referenced, drops the rest.
        let dry = cache
            .gc(std::slice::from_ref(&rec_file), &[], true)
            .unwrap();
        let stats = cache
            .gc(std::slice::from_ref(&rec_file), &[], false)
            .unwrap();
        assert_eq!(dry, stats, "a dry run counts what a real one removes");
        assert_eq!(stats.objects_removed, 3); // a, b, and the manifest
        assert!(cache.has(&rec_file) && !cache.has(&rec_dir));
    }

    #[test]
    fn a_folder_missing_one_object_is_not_restored_and_the_target_stays() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let cache = Cache::new(&root.join(".ferry/cache"));
        std::fs::create_dir_all(root.join("out/sub")).unwrap();
        for i in 0..50 {
            std::fs::write(root.join(format!("out/sub/{i}")), format!("row {i}")).unwrap();
        }
        let mut h = Hasher::new(root, StatIndex::default());
        let pd = h.digest_path("out").unwrap().unwrap();
        cache.store(&root.join("out"), &pd).unwrap();
        let rec = OutRecord {
            path: "out".into(),
            digest: pd.digest(),
            size: pd.size(),
            files: Some(50),
        };
        let restored = cache.restore(root, &rec).unwrap();
        assert_eq!(restored.len(), 50);
        assert_eq!(
            restored[7].path,
            Path::new("out/sub/15"),
            "in the manifest's order"
        );
        let gone = cache.object_path(&Digest::of(b"row 42"));
        std::fs::remove_file(&gone).unwrap();
        std::fs::write(root.join("out/sub/0"), "edited").unwrap();
        let e = cache.restore(root, &rec).unwrap_err();
        assert!(matches!(e, Error::MissingObject { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(root.join("out/sub/0")).unwrap(),
            "edited",
            "the target is left as it was"
        );
    }

    /// Every file under `dir`, temporaries included.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    todo.push(e.path());
                } else {
                    found.push(e.path());
                }
            }
        }
        found
    }

    #[test]
    fn a_folder_is_stored_whole_or_not_at_all() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let cache = Cache::new(&root.join(".ferry/cache"));
        std::fs::create_dir_all(root.join("out")).unwrap();
        for i in 0..40 {
            // Pairs of files with the same bytes: one object each pair.
            std::fs::write(root.join(format!("out/{i}")), format!("row {}", i / 2)).unwrap();
        }
        let mut h = Hasher::new(root, StatIndex::default());
        let pd = h.digest_path("out").unwrap().unwrap();
        // A pair late in the manifest's order: before, the objects ahead
        // of it were in the cache when the store failed.
        std::fs::write(root.join("out/38"), "changed after hashing").unwrap();
        let e = cache.store(&root.join("out"), &pd).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        assert_eq!(
            files_under(&root.join(".ferry/cache")),
            Vec::<PathBuf>::new()
        );
        std::fs::write(root.join("out/38"), "row 19").unwrap();
        cache.store(&root.join("out"), &pd).unwrap();
        let objects = files_under(&root.join(".ferry/cache/objects"));
        assert_eq!(
            objects.len(),
            21,
            "20 objects and the manifest: {objects:?}"
        );
        assert!(
            objects
                .iter()
                .all(|p| !p.to_string_lossy().contains(".tmp-"))
        );
    }

    #[test]
    fn run_entries_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path());
        let fp = Digest::of(b"fp");
        assert!(cache.run_entry(&fp).unwrap().is_none());
        let e = RunCacheEntry {
            stage: "train".into(),
            outs: vec![],
            metrics: BTreeMap::from([("acc".into(), serde_json::json!(0.9))]),
            created_ms: 1,
        };
        cache.put_run_entry(&fp, &e).unwrap();
        assert_eq!(cache.run_entry(&fp).unwrap(), Some(e));
        assert_eq!(cache.run_entries().unwrap().len(), 1);
    }
}
