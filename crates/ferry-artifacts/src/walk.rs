//! What any backend can do through the trait alone: digest a file or
//! folder as `ferry_cache::stored_digest` does, and copy one to a local
//! folder.

use crate::{ArtifactStore, Error, Result, join};
use ferry_cache::{Manifest, ManifestEntry};
use ferry_core::Digest;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The digest of the bytes of the file at `path`, read once, streamed.
async fn file_digest<S: ArtifactStore + ?Sized>(store: &S, path: &str) -> Result<(Digest, u64)> {
    let mut d = store.get(path).await?;
    let mut h = blake3::Hasher::new();
    let mut size = 0u64;
    while let Some(chunk) = d.body.next().await {
        let chunk = chunk.map_err(|e| Error::Backend {
            store: store.url(),
            op: "read",
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        size += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((Digest::from_bytes(*h.finalize().as_bytes()), size))
}

/// The digest of the file or folder at `path` with every byte read, as
/// `ferry_cache::stored_digest` gives it for the same files on disk: a
/// folder's is that of the manifest of its files, a file's that of its
/// bytes, nothing's that of an empty folder.
pub async fn stored_digest<S: ArtifactStore + ?Sized>(store: &S, path: &str) -> Result<Digest> {
    let files = store.files(path).await?;
    if files.is_empty() {
        return match file_digest(store, path).await {
            Ok((d, _)) => Ok(d),
            Err(Error::NotFound(_) | Error::IsDir(_)) => Ok(Manifest::default().digest()),
            Err(e) => Err(e),
        };
    }
    let mut m = Manifest::default();
    for f in files {
        let (digest, size) = file_digest(store, &join(path, &f.path)).await?;
        m.entries.push(ManifestEntry {
            path: f.path,
            raw: None,
            digest,
            size,
        });
    }
    Ok(m.digest())
}

/// Streams the file at `path` to `dest` (a new file).
async fn copy_file<S: ArtifactStore + ?Sized>(store: &S, path: &str, dest: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Backend {
        store: dest.display().to_string(),
        op: "write",
        path: path.to_owned(),
        message: e.to_string(),
    };
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
    }
    let mut d = store.get(path).await?;
    let mut out = tokio::fs::File::create(dest).await.map_err(io)?;
    while let Some(chunk) = d.body.next().await {
        out.write_all(&chunk.map_err(io)?).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    out.sync_all().await.map_err(io)
}

/// Copies the folder (or the file) at `path` into the local folder `dest`,
/// streamed file by file. Returns what stands for `path` there: `dest`
/// for a folder, `dest/<name>` for a file. Nothing at `path` is
/// [`Error::NotFound`].
pub async fn fetch<S: ArtifactStore + ?Sized>(
    store: &S,
    path: &str,
    dest: &Path,
) -> Result<PathBuf> {
    let files = store.files(path).await?;
    if files.is_empty() {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.is_empty() {
            return Err(Error::NotFound(path.to_owned()));
        }
        let file = dest.join(name);
        copy_file(store, path, &file).await?;
        return Ok(file);
    }
    for f in files {
        let mut local = dest.to_path_buf();
        local.extend(crate::segments(&f.path)?);
        copy_file(store, &join(path, &f.path), &local).await?;
    }
    Ok(dest.to_path_buf())
}
