//! Filesystem primitives shared by the crates that keep files (the cache,
//! the Python environments, the runner, the CLI): [`write_atomic`], the one
//! way a file that must survive a crash is written ([`replace`] and
//! [`replace_with_link`] where atomic is enough), [`sync_files`] for a
//! batch of temporary files about to be renamed in, and [`FileLock`], an
//! exclusive advisory lock on a file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A filesystem operation that failed, with what was being done and where.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} `{}`: {source}", path.display())]
pub struct Error {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

trait Context<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| Error {
            action,
            path: path.to_owned(),
            source,
        })
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder
/// (`.<name>.tmp-<pid>`, a name the runner's sweep knows), fsync, rename over
/// the target, then fsync of the folder so the rename itself is durable.
/// Creates the folder when it is missing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = write_and_rename(path, bytes, true)?;
    sync_dir(&dir)
}

/// Replaces `path` with `bytes` atomically (a reader sees the old contents
/// or the new, never a mix) but not durably: nothing is fsynced. For files
/// that only matter while the machine stays up, such as a run's pid file,
/// whose processes die with the machine; rewritten at every stage start and
/// end, it would otherwise cost two fsyncs each time.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    write_and_rename(path, bytes, false).map(drop)
}

/// Replaces `path` with a hard link to the file `target`, atomically (a
/// temporary name, then a rename) but not durably: [`sync_dir`] of the
/// folder makes it so. The same bytes as a copy without writing them, for
/// a file that neither side changes in place (a cache object kept as a
/// run's artifact). Fails where links cannot be made (another filesystem):
/// the caller copies instead.
pub fn replace_with_link(target: &Path, path: &Path) -> Result<()> {
    let (_, tmp) = temporary_beside(path)?;
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(target, &tmp).ctx("link", &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).ctx("rename into place", path);
    }
    Ok(())
}

/// The folder of `path` (created when missing) and the temporary name
/// beside `path` that its writer uses, `.<name>.tmp-<pid>-<n>`: `n` tells
/// apart two threads of one process writing the same file at once.
fn temporary_beside(path: &Path) -> Result<(PathBuf, PathBuf)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).ctx("create", dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().map_or("f".into(), |n| n.to_string_lossy()),
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    Ok((dir.to_owned(), tmp))
}

/// The temporary file, synced when `durable`, renamed over `path`; returns
/// the folder.
fn write_and_rename(path: &Path, bytes: &[u8], durable: bool) -> Result<PathBuf> {
    let (dir, tmp) = temporary_beside(path)?;
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(bytes).ctx("write", &tmp)?;
        if durable {
            f.sync_all().ctx("sync", &tmp)?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).ctx("rename into place", path)?;
    Ok(dir)
}

/// Makes the entries of `dir` (a rename into it) durable. Filesystems that
/// cannot sync a folder (they answer `EINVAL`) are taken as having nothing
/// to sync.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).ctx("open", dir)?;
    match f.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.ctx("sync", dir),
    }
}

/// Up to this many files, [`sync_files`] syncs each.
const FEW_FILES: usize = 16;

/// Makes `files` durable, their contents and their entries in their
/// folders: for a batch of temporary files about to be renamed into place,
/// and again for the renamed batch. On Linux, one `syncfs` of each
/// filesystem holding them: a single flush of the whole batch, where an
/// fsync each would commit the filesystem's journal once per file (10,000
/// small files: most of a transfer's time). Elsewhere, or for a few files
/// (a flush of the whole filesystem would also wait for other programs'
/// writes), an fsync of each file and each folder.
pub fn sync_files(files: &[PathBuf]) -> Result<()> {
    #[cfg(target_os = "linux")]
    if files.len() > FEW_FILES {
        use std::os::unix::fs::MetadataExt;
        let folders: std::collections::BTreeSet<&Path> =
            files.iter().filter_map(|f| f.parent()).collect();
        let mut synced = std::collections::BTreeSet::new();
        for dir in folders {
            let dev = std::fs::metadata(dir).ctx("read", dir)?.dev();
            if synced.insert(dev) {
                sync_filesystem(dir)?;
            }
        }
        return Ok(());
    }
    {
        for f in files {
            std::fs::File::open(f)
                .and_then(|h| h.sync_all())
                .ctx("sync", f)?;
        }
        let folders: std::collections::BTreeSet<&Path> =
            files.iter().filter_map(|f| f.parent()).collect();
        folders.into_iter().try_for_each(sync_dir)
    }
}

/// Flushes everything written to the filesystem that holds `dir` (Linux:
/// `syncfs`; elsewhere `sync`, every filesystem): what makes a batch of
/// files written by another library (a folder remote's objects) durable
/// before anything claims them.
pub fn sync_filesystem(dir: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let f = std::fs::File::open(dir).ctx("open", dir)?;
        // SAFETY: syncfs on a file descriptor we own.
        let r = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) };
        if r != 0 {
            return Err(std::io::Error::last_os_error()).ctx("sync the filesystem of", dir);
        }
    }
    #[cfg(not(target_os = "linux"))]
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe {
        let _ = dir;
        libc::sync();
    }
    Ok(())
}

/// An exclusive advisory lock on a file (`flock`), released on drop. The
/// file and its folder are created when missing.
pub struct FileLock {
    file: std::fs::File,
}

impl FileLock {
    /// Waits for the lock.
    pub fn acquire(path: &Path) -> Result<Self> {
        let file = Self::open(path)?;
        // SAFETY: flock on a file descriptor we own.
        let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
        if r != 0 {
            return Err(std::io::Error::last_os_error()).ctx("lock", path);
        }
        Ok(Self { file })
    }

    /// The lock if nobody else holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>> {
        let file = Self::open(path)?;
        // SAFETY: flock on a file descriptor we own.
        let r = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(e).ctx("lock", path);
        }
        Ok(Some(Self { file }))
    }

    fn open(path: &Path) -> Result<std::fs::File> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).ctx("create", p)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ctx("open", path)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor.
        unsafe {
            libc::flock(std::os::fd::AsRawFd::as_raw_fd(&self.file), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_is_synced_by_any_folder_on_it_and_a_missing_one_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), "x").unwrap();
        assert!(sync_filesystem(d.path()).is_ok());
        let gone = d.path().join("gone");
        let e = sync_filesystem(&gone).unwrap_err().to_string();
        assert!(e.contains("gone"), "{e}");
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporary() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = d.path().join("sub/file.json");
        write_atomic(&p, b"one").unwrap_or_else(|e| panic!("{e}"));
        write_atomic(&p, b"two").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&p).ok().as_deref(), Some(&b"two"[..]));
        let names: Vec<_> = std::fs::read_dir(d.path().join("sub"))
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["file.json"]);
    }

    #[test]
    fn sync_files_syncs_a_batch_and_names_what_it_cannot_open() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(d.path().join("a")).unwrap_or_else(|e| panic!("{e}"));
        // A few files (an fsync each) and many (one flush, on Linux).
        for n in [3, FEW_FILES + 4] {
            let files: Vec<PathBuf> = (0..n).map(|i| d.path().join(format!("a/{i}"))).collect();
            for f in &files {
                std::fs::write(f, b"x").unwrap_or_else(|e| panic!("{e}"));
            }
            sync_files(&files).unwrap_or_else(|e| panic!("{e}"));
            let gone: Vec<PathBuf> = (0..n).map(|i| d.path().join(format!("gone/{i}"))).collect();
            let e = sync_files(&gone).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("gone")),
                "{n}: {e:?}"
            );
        }
    }

    #[test]
    fn replace_swaps_whole_files_too() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = d.path().join("run.pids");
        replace(&p, b"one").unwrap_or_else(|e| panic!("{e}"));
        replace(&p, b"two two").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&p).ok().as_deref(), Some(&b"two two"[..]));
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["run.pids"]);
    }

    #[test]
    fn a_link_replaces_the_file_with_the_same_bytes_and_no_temporary() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let object = d.path().join("object");
        std::fs::write(&object, b"report").unwrap_or_else(|e| panic!("{e}"));
        let p = d.path().join("run/checks/report.json");
        write_atomic(&p, b"old").unwrap_or_else(|e| panic!("{e}"));
        replace_with_link(&object, &p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&p).ok().as_deref(), Some(&b"report"[..]));
        let ino = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).ok();
        assert_eq!(ino(&p), ino(&object));
        let names: Vec<_> = std::fs::read_dir(d.path().join("run/checks"))
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["report.json"]);
        // Nothing to link: an error naming the temporary, the old file kept.
        let e = replace_with_link(&d.path().join("missing"), &p).err();
        assert!(e.is_some_and(|e| e.action == "link"));
        assert_eq!(std::fs::read(&p).ok().as_deref(), Some(&b"report"[..]));
    }

    #[test]
    fn a_failed_write_names_the_path_and_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = d.path().join("f");
        write_atomic(&p, b"old").unwrap_or_else(|e| panic!("{e}"));
        // A folder where the file should go: the rename fails.
        let blocked = d.path().join("dir");
        std::fs::create_dir_all(blocked.join("x")).unwrap_or_else(|e| panic!("{e}"));
        let e = write_atomic(&blocked, b"new").err();
        assert!(
            e.is_some_and(|e| e.to_string().contains("rename into place")),
            "the error says what failed"
        );
        assert_eq!(std::fs::read(&p).ok().as_deref(), Some(&b"old"[..]));
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = d.path().join("locks/run.lock");
        let held = FileLock::try_acquire(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(held.is_some());
        assert!(matches!(FileLock::try_acquire(&p), Ok(None)));
        drop(held);
        assert!(matches!(FileLock::try_acquire(&p), Ok(Some(_))));
    }
}
