//! MLflow artifacts in a bucket (`ferry server --artifacts s3://…|gs://…`):
//! the [`ArtifactStore`] of `ferry-artifacts` over `object_store`. Every
//! key is the store's prefix followed by the checked segments of a path,
//! each one object-store path part (so no path can name a key outside the
//! prefix). Uploads stream: a body that fits in one part is sent with one
//! request, a larger one as a multipart upload with a bounded number of
//! parts in flight; downloads and listings stream back.

use bytes::Bytes;
use ferry_artifacts::{ArtifactStore, ByteStream, Download, Entry, Error, Result, segments};
use ferry_core::Digest;
use ferry_spec::remote::{Location, RemoteConfig};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The size of a multipart upload's parts, and the body above which an
/// upload is sent in parts (S3 wants 5 MiB or more but for the last).
pub const PART_SIZE: usize = 8 << 20;

/// The parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Artifacts under a prefix of a bucket.
pub struct ObjectArtifacts {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    url: String,
    part_size: usize,
}

impl std::fmt::Debug for ObjectArtifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectArtifacts")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a bucket cannot keep artifacts.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OpenError {
    pub message: String,
}

impl ObjectArtifacts {
    /// The bucket `url` names (`s3://BUCKET/PREFIX` or `gs://BUCKET/PREFIX`)
    /// with `options` as a remote takes them (`endpoint`, `region`,
    /// `profile`, `allow_http`), credentials from the cloud's standard chain
    /// (checked for before any request). Must be called inside a Tokio
    /// runtime. Nothing is requested yet: see [`ObjectArtifacts::probe`].
    pub fn open(url: &str, options: BTreeMap<String, String>) -> Result<Self, OpenError> {
        let fail = |message: String| OpenError { message };
        match Location::parse(url, std::path::Path::new("/")).map_err(fail)? {
            Location::Folder(_) => {
                return Err(fail(format!(
                    "`{url}` is not a bucket: give s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"
                )));
            }
            Location::S3 { .. } | Location::Gcs { .. } => {}
        }
        let cfg = RemoteConfig {
            name: url.to_owned(),
            url: url.to_owned(),
            default: false,
            options,
        };
        let (store, prefix) = crate::open::open(&cfg, std::path::Path::new("/")).map_err(|e| {
            fail(match e {
                crate::Error::Config { message, .. } => message,
                other => other.to_string(),
            })
        })?;
        Ok(Self::new(store, &prefix, url))
    }

    /// Artifacts in `store` under `prefix`, shown as `url`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        Self {
            store,
            prefix: Key::from_iter(prefix.split('/').filter(|s| !s.is_empty())),
            url: url.trim_end_matches('/').to_owned(),
            part_size: PART_SIZE,
        }
    }

    /// The same, with multipart uploads above `bytes` (tests).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// One listing of the prefix, so that a missing bucket, refused
    /// credentials or a service that does not answer fail at start-up,
    /// with the reason.
    pub async fn probe(&self) -> Result<(), OpenError> {
        match self.store.list_with_delimiter(Some(&self.prefix)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(OpenError {
                message: crate::unavailable(&e, &self.url),
            }),
        }
    }

    fn key(&self, path: &str) -> Result<Key> {
        let mut k = self.prefix.clone();
        for s in segments(path)? {
            k = k.join(s);
        }
        Ok(k)
    }

    fn failed(&self, op: &'static str, path: &str, e: &object_store::Error) -> Error {
        Error::Backend {
            store: self.url.clone(),
            op,
            path: path.to_owned(),
            message: e.to_string(),
        }
    }

    /// `key`'s path below `base`, decoded (`/`-separated).
    fn below(key: &Key, base: &Key) -> Option<String> {
        let parts: Vec<String> = key
            .prefix_match(base)?
            .map(|p| decode(p.as_ref()))
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// Sends what is left of `body` after `first` as a multipart upload.
    async fn put_parts(
        &self,
        key: &Key,
        path: &str,
        first: Vec<Bytes>,
        mut body: ByteStream,
    ) -> Result<u64> {
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| self.failed("upload", path, &e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut size = 0u64;
        for c in first {
            size += c.len() as u64;
            w.put(c);
        }
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(interrupted(path, &e));
                }
            };
            if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = w.abort().await;
                return Err(self.failed("upload", path, &e));
            }
            size += chunk.len() as u64;
            w.put(chunk);
        }
        w.finish()
            .await
            .map_err(|e| self.failed("upload", path, &e))?;
        Ok(size)
    }
}

fn interrupted(path: &str, e: &std::io::Error) -> Error {
    Error::Interrupted {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// A key's part as the path segment it was made from.
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// The first chunks of `body`, until they hold more than `limit` bytes or
/// it ends (`true`: it ended).
async fn head_of(body: &mut ByteStream, limit: usize, path: &str) -> Result<(Vec<Bytes>, bool)> {
    let mut held = Vec::new();
    let mut size = 0;
    while size <= limit {
        match body.next().await {
            None => return Ok((held, true)),
            Some(Err(e)) => return Err(interrupted(path, &e)),
            Some(Ok(c)) => {
                size += c.len();
                held.push(c);
            }
        }
    }
    Ok((held, false))
}

#[async_trait::async_trait]
impl ArtifactStore for ObjectArtifacts {
    fn url(&self) -> String {
        self.url.clone()
    }

    async fn check(&self, path: &str) -> Result<()> {
        self.key(path).map(drop)
    }

    async fn list(&self, dir: &str) -> Result<Vec<Entry>> {
        let base = self.key(dir)?;
        let found = self
            .store
            .list_with_delimiter(Some(&base))
            .await
            .map_err(|e| self.failed("list", dir, &e))?;
        let dirs = found.common_prefixes.iter().filter_map(|p| {
            Some(Entry {
                path: Self::below(p, &base)?,
                is_dir: true,
                size: 0,
            })
        });
        let files = found.objects.iter().filter_map(|o| {
            Some(Entry {
                path: Self::below(&o.location, &base)?,
                is_dir: false,
                size: o.size,
            })
        });
        let mut out: Vec<Entry> = dirs.chain(files).collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn files(&self, dir: &str) -> Result<Vec<Entry>> {
        let base = self.key(dir)?;
        let metas: Vec<_> = self
            .store
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|e| self.failed("list", dir, &e))?;
        let mut out: Vec<Entry> = metas
            .iter()
            .filter_map(|o| {
                Some(Entry {
                    path: Self::below(&o.location, &base)?,
                    is_dir: false,
                    size: o.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn is_dir(&self, path: &str) -> Result<bool> {
        let base = self.key(path)?;
        match self.store.list(Some(&base)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(self.failed("list", path, &e)),
        }
    }

    async fn get(&self, path: &str) -> Result<Download> {
        let key = self.key(path)?;
        match self.store.get(&key).await {
            Ok(got) => Ok(Download {
                size: got.meta.size,
                body: got.into_stream().map_err(std::io::Error::other).boxed(),
            }),
            Err(object_store::Error::NotFound { .. }) if self.is_dir(path).await? => {
                Err(Error::IsDir(path.to_owned()))
            }
            Err(object_store::Error::NotFound { .. }) => Err(Error::NotFound(path.to_owned())),
            Err(e) => Err(self.failed("download", path, &e)),
        }
    }

    async fn put(&self, path: &str, mut body: ByteStream) -> Result<u64> {
        let key = self.key(path)?;
        if segments(path)?.is_empty() {
            return Err(Error::Invalid(path.to_owned()));
        }
        if self.is_dir(path).await? {
            return Err(Error::IsDir(path.to_owned()));
        }
        let (first, ended) = head_of(&mut body, self.part_size, path).await?;
        if !ended {
            return self.put_parts(&key, path, first, body).await;
        }
        let size = first.iter().map(|c| c.len() as u64).sum();
        self.store
            .put(&key, PutPayload::from_iter(first))
            .await
            .map_err(|e| self.failed("upload", path, &e))?;
        Ok(size)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let key = self.key(path)?;
        if segments(path)?.is_empty() {
            return Err(Error::Invalid(path.to_owned()));
        }
        match self.store.head(&key).await {
            Ok(_) => {
                return self
                    .store
                    .delete(&key)
                    .await
                    .map_err(|e| self.failed("delete", path, &e));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failed("delete", path, &e)),
        }
        let inside = self.store.list(Some(&key)).map_ok(|m| m.location).boxed();
        let removed: Vec<Key> = self
            .store
            .delete_stream(inside)
            .try_collect()
            .await
            .map_err(|e| self.failed("delete", path, &e))?;
        if removed.is_empty() {
            return Err(Error::NotFound(path.to_owned()));
        }
        Ok(())
    }

    async fn digest(&self, path: &str) -> Result<Digest> {
        ferry_artifacts::stored_digest(self, path).await
    }
}
