//! `--artifacts` of `ferry server` and `ferry serve`: a folder, or a bucket
//! (`s3://`, `gs://`) opened through `ferry-remote` and probed once, so a
//! wrong URL, missing credentials or a missing bucket stop the command at
//! start-up with what to set.

use crate::cli::ArtifactArgs;
use crate::exit::usage;
use anyhow::{Context, Result};
use ferry_artifacts::{ArtifactStore, LocalArtifacts};
use ferry_remote::ObjectArtifacts;
use std::path::PathBuf;
use std::sync::Arc;

/// Where `--artifacts` points.
pub enum Place {
    Folder(PathBuf),
    Bucket(String),
}

/// Reads `--artifacts` (`default` when it is not given).
pub fn place(a: &ArtifactArgs, default: PathBuf) -> Result<Place> {
    let Some(arg) = a.artifacts.as_deref() else {
        return Ok(Place::Folder(default));
    };
    if arg.starts_with("s3://") || arg.starts_with("gs://") {
        return Ok(Place::Bucket(arg.to_owned()));
    }
    if let Some((scheme, _)) = arg.split_once("://") {
        return Err(usage(format!(
            "--artifacts `{arg}`: ferry keeps artifacts in a folder, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX, not `{scheme}://`"
        )));
    }
    if a.artifacts_endpoint.is_some() || a.artifacts_region.is_some() {
        return Err(usage(
            "--artifacts-endpoint and --artifacts-region are for a bucket (s3://, gs://), not a folder",
        ));
    }
    Ok(Place::Folder(PathBuf::from(arg)))
}

/// Opens the bucket `url` and lists its prefix once. Call inside the
/// command's Tokio runtime.
pub async fn bucket(url: &str, a: &ArtifactArgs) -> Result<Arc<ObjectArtifacts>> {
    let mut options = std::collections::BTreeMap::new();
    if let Some(e) = &a.artifacts_endpoint {
        options.insert("endpoint".to_owned(), e.clone());
    }
    if let Some(r) = &a.artifacts_region {
        options.insert("region".to_owned(), r.clone());
    }
    let store = ObjectArtifacts::open(url, options)
        .map_err(|e| usage(format!("--artifacts {url}: {e}")))?;
    store
        .probe()
        .await
        .map_err(|e| usage(format!("--artifacts {url}: {e}")))?;
    Ok(Arc::new(store))
}

/// The store `ferry server` keeps artifacts in.
pub async fn open(place: &Place, a: &ArtifactArgs) -> Result<Arc<dyn ArtifactStore>> {
    match place {
        Place::Folder(dir) => Ok(Arc::new(LocalArtifacts::new(dir).with_context(|| {
            format!("cannot use the artifact folder `{}`", dir.display())
        })?)),
        Place::Bucket(url) => Ok(bucket(url, a).await?),
    }
}
