//! Artifacts in a local folder: every path resolved under the folder with
//! symlinks checked, uploads streamed to a temporary file beside their
//! place and renamed in.

use crate::{ArtifactStore, ByteStream, Download, Entry, Error, Result, segments};
use bytes::Bytes;
use ferry_core::Digest;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The prefix of an upload's temporary file (never listed).
pub const UPLOAD_PREFIX: &str = ".ferry-upload-";

/// The chunk a download is read in.
const CHUNK: usize = 256 * 1024;

/// A local folder that holds every artifact.
#[derive(Debug, Clone)]
pub struct LocalArtifacts {
    root: PathBuf,
}

impl LocalArtifacts {
    /// The folder `root`, created when missing.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: std::fs::canonicalize(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The filesystem path of `path`, checked against the root after
    /// resolving what exists of it (so a symlink cannot lead outside).
    pub fn resolve(&self, path: &str) -> Result<PathBuf> {
        let mut full = self.root.clone();
        full.extend(segments(path)?);
        let mut existing = full.as_path();
        while !existing.exists() {
            existing = existing
                .parent()
                .ok_or_else(|| Error::Invalid(path.into()))?;
        }
        let canon = std::fs::canonicalize(existing).map_err(|_| Error::Invalid(path.into()))?;
        if !canon.starts_with(&self.root) {
            return Err(Error::Invalid(path.into()));
        }
        Ok(full)
    }

    fn failed(&self, op: &'static str, path: &str, e: &std::io::Error) -> Error {
        Error::Backend {
            store: self.root.display().to_string(),
            op,
            path: path.to_owned(),
            message: e.to_string(),
        }
    }

    /// Streams `body` into a new temporary file in `dir`.
    async fn receive(
        &self,
        dir: &Path,
        path: &str,
        mut body: ByteStream,
    ) -> Result<(PathBuf, u64)> {
        let tmp = dir.join(format!("{UPLOAD_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| self.failed("write", path, &e))?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let written = match chunk {
                Ok(c) => out.write_all(&c).await.map(|()| c.len() as u64),
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(Error::Interrupted {
                        path: path.to_owned(),
                        message: e.to_string(),
                    });
                }
            };
            match written {
                Ok(n) => size += n,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(self.failed("write", path, &e));
                }
            }
        }
        if let Err(e) = out.flush().await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(self.failed("write", path, &e));
        }
        Ok((tmp, size))
    }
}

/// The bytes of `file`, in chunks.
fn chunks(file: tokio::fs::File) -> ByteStream {
    futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
    .boxed()
}

/// Every regular file under `dir`, relative to it (temporary uploads left
/// out; symlinks are not followed).
fn walk(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(UPLOAD_PREFIX) {
                continue;
            }
            let t = e.file_type()?;
            let path = crate::join(&rel, &name);
            if t.is_dir() {
                todo.push((e.path(), path));
            } else if t.is_file() {
                let size = e.metadata()?.len();
                out.push(Entry {
                    path,
                    is_dir: false,
                    size,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[async_trait::async_trait]
impl ArtifactStore for LocalArtifacts {
    fn url(&self) -> String {
        self.root.display().to_string()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    async fn check(&self, path: &str) -> Result<()> {
        self.resolve(path).map(drop)
    }

    async fn list(&self, dir: &str) -> Result<Vec<Entry>> {
        let full = self.resolve(dir)?;
        let Ok(mut rd) = tokio::fs::read_dir(&full).await else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let io = |e: std::io::Error| self.failed("list", dir, &e);
        while let Some(e) = rd.next_entry().await.map_err(io)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(UPLOAD_PREFIX) {
                continue;
            }
            let meta = e.metadata().await.map_err(io)?;
            out.push(Entry {
                path: name,
                is_dir: meta.is_dir(),
                size: if meta.is_file() { meta.len() } else { 0 },
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn files(&self, dir: &str) -> Result<Vec<Entry>> {
        let full = self.resolve(dir)?;
        if !full.is_dir() {
            return Ok(Vec::new());
        }
        tokio::task::spawn_blocking(move || walk(&full))
            .await
            .map_err(|e| self.failed("list", dir, &std::io::Error::other(e)))?
            .map_err(|e| self.failed("list", dir, &e))
    }

    async fn is_dir(&self, path: &str) -> Result<bool> {
        let full = self.resolve(path)?;
        Ok(tokio::fs::metadata(&full).await.is_ok_and(|m| m.is_dir()))
    }

    async fn get(&self, path: &str) -> Result<Download> {
        let full = self.resolve(path)?;
        let Ok(file) = tokio::fs::File::open(&full).await else {
            return Err(Error::NotFound(path.to_owned()));
        };
        let meta = file
            .metadata()
            .await
            .map_err(|e| self.failed("read", path, &e))?;
        if meta.is_dir() {
            return Err(Error::IsDir(path.to_owned()));
        }
        Ok(Download {
            size: meta.len(),
            body: chunks(file),
        })
    }

    async fn put(&self, path: &str, body: ByteStream) -> Result<u64> {
        let full = self.resolve(path)?;
        let parent = match full.parent() {
            Some(p) if !segments(path)?.is_empty() => p.to_owned(),
            _ => return Err(Error::Invalid(path.to_owned())),
        };
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| self.failed("write", path, &e))?;
        // Again after creating folders: nothing may have led outside.
        self.resolve(path)?;
        let (tmp, size) = self.receive(&parent, path, body).await?;
        if tokio::fs::metadata(&full).await.is_ok_and(|m| m.is_dir()) {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Error::IsDir(path.to_owned()));
        }
        tokio::fs::rename(&tmp, &full)
            .await
            .map_err(|e| self.failed("write", path, &e))?;
        Ok(size)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        if segments(path)?.is_empty() {
            return Err(Error::Invalid(path.to_owned()));
        }
        let full = self.resolve(path)?;
        let removed = match tokio::fs::symlink_metadata(&full).await {
            Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&full).await,
            Ok(_) => tokio::fs::remove_file(&full).await,
            Err(_) => return Err(Error::NotFound(path.to_owned())),
        };
        removed.map_err(|e| self.failed("delete", path, &e))
    }

    async fn digest(&self, path: &str) -> Result<Digest> {
        let full = self.resolve(path)?;
        tokio::task::spawn_blocking(move || ferry_cache::stored_digest(&full))
            .await
            .map_err(|e| self.failed("read", path, &std::io::Error::other(e)))?
            .map_err(|e| self.failed("read", path, &std::io::Error::other(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_local_folder_conforms() {
        let t = ok(tempfile::tempdir());
        let s = ok(LocalArtifacts::new(&t.path().join("root")));
        crate::conformance::run(&s, 3 << 20).await;
    }

    #[tokio::test]
    async fn symlinks_out_of_the_root_are_refused() {
        let t = ok(tempfile::tempdir());
        let outside = ok(tempfile::tempdir());
        ok(std::fs::write(outside.path().join("x"), b"secret"));
        let s = ok(LocalArtifacts::new(&t.path().join("root")));
        ok(std::os::unix::fs::symlink(
            outside.path(),
            s.root().join("link"),
        ));
        assert!(matches!(s.get("link/x").await, Err(Error::Invalid(_))));
        assert!(matches!(s.check("link/y").await, Err(Error::Invalid(_))));
        let put = s.put("link/y", crate::conformance::body(b"y", 1)).await;
        assert!(matches!(put, Err(Error::Invalid(_))));
        assert!(!outside.path().join("y").exists());
        assert!(s.check("fine/x").await.is_ok());
    }
}
