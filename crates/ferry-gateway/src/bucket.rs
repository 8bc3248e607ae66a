//! Versions whose files are in a bucket (`ferry serve --artifacts
//! s3://…`): downloaded once into a local folder named by the digest
//! recorded at registration, verified before they are kept, and found there
//! again by a later load or a restarted gateway (which verifies them again,
//! as every load does).

use ferry_artifacts::ArtifactStore;
use ferry_core::Digest;
use ferry_metadata::{ModelVersion, lineage_tags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where one version's copy is kept: `<cache>/<digest>/folder` for a
/// folder, `<cache>/<digest>/file/<name>` for a single file.
const FOLDER: &str = "folder";
/// The prefix of a download in progress: `.download-<pid>-<n>-<digest>`.
const TMP: &str = ".download-";
const FILE: &str = "file";

/// The local copy of `v`'s files from `store` (at `uri`, an
/// `mlflow-artifacts:/` location), downloaded into `cache` unless it is
/// there already. The error says why it cannot be served.
pub async fn local_copy(
    store: &dyn ArtifactStore,
    cache: &Path,
    v: &ModelVersion,
    uri: &str,
) -> Result<PathBuf, String> {
    let rel = uri
        .strip_prefix("mlflow-artifacts:/")
        .filter(|r| ferry_artifacts::segments(r).is_ok())
        .ok_or_else(|| {
            format!(
                "its source `{uri}` is not under the artifact store `{}`",
                store.url()
            )
        })?;
    let recorded = recorded_store(v);
    if let Some(at) = recorded.filter(|at| *at != store.url()) {
        return Err(format!(
            "its files are kept in `{at}` (tag {}), and this gateway reads `{}`: start it with `--artifacts {at}`",
            lineage_tags::ARTIFACT_STORE,
            store.url()
        ));
    }
    let digest = recorded_digest(v, store)?;
    let kept = cache.join(digest.to_hex());
    if let Some(found) = kept_copy(&kept) {
        return Ok(found);
    }
    download(store, rel, cache, &digest).await?;
    kept_copy(&kept).ok_or_else(|| format!("its copy in `{}` is incomplete", kept.display()))
}

fn recorded_store(v: &ModelVersion) -> Option<&str> {
    v.tags
        .iter()
        .find(|(k, _)| k == lineage_tags::ARTIFACT_STORE)
        .map(|(_, x)| x.as_str())
}

/// The digest recorded at registration: the only name a copy is kept by.
fn recorded_digest(v: &ModelVersion, store: &dyn ArtifactStore) -> Result<Digest, String> {
    let stored = v.stored.as_ref().ok_or_else(|| {
        format!(
            "it was registered without a digest, so its files in `{}` cannot be verified; register it again",
            store.url()
        )
    })?;
    stored.digest.parse().map_err(|_| {
        format!(
            "its recorded digest `{}` is malformed",
            stored.digest.escape_debug()
        )
    })
}

/// The copy in `kept`, if one was made.
fn kept_copy(kept: &Path) -> Option<PathBuf> {
    let folder = kept.join(FOLDER);
    if folder.is_dir() {
        return Some(folder);
    }
    let mut files = std::fs::read_dir(kept.join(FILE)).ok()?.flatten();
    let one = files.next()?.path();
    files.next().is_none().then_some(one)
}

/// Downloads the files at `rel` into a temporary folder of `cache`,
/// verifies them against `digest`, and renames them into `<cache>/<digest>`.
async fn download(
    store: &dyn ArtifactStore,
    rel: &str,
    cache: &Path,
    digest: &Digest,
) -> Result<(), String> {
    let shown = format!("{}/{rel}", store.url());
    sweep(cache);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = cache.join(format!(
        "{TMP}{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        digest.short(16)
    ));
    let local = |e: std::io::Error| format!("cannot keep a copy in `{}`: {e}", tmp.display());
    std::fs::create_dir_all(&tmp).map_err(local)?;
    let got = fetch(store, rel, &tmp).await;
    let verified = match got {
        Ok(path) => check(&path, digest, &shown).await,
        Err(e) => Err(format!("cannot download `{shown}`: {e}")),
    };
    if let Err(e) = verified {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    tracing::info!(files = %shown, digest = %digest.short(16), "downloaded and verified");
    let kept = cache.join(digest.to_hex());
    if std::fs::rename(&tmp, &kept).is_err() && kept_copy(&kept).is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("cannot keep a copy in `{}`", kept.display()));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Removes the downloads that gateways which are gone left half-done
/// (`.download-<pid>-…` of a process that no longer runs).
fn sweep(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(TMP)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

async fn fetch(
    store: &dyn ArtifactStore,
    rel: &str,
    tmp: &Path,
) -> Result<PathBuf, ferry_artifacts::Error> {
    let folder = !store.files(rel).await?.is_empty();
    let dest = tmp.join(if folder { FOLDER } else { FILE });
    ferry_artifacts::fetch(store, rel, &dest).await
}

/// Refuses a copy whose digest is not the one recorded.
async fn check(path: &Path, digest: &Digest, shown: &str) -> Result<(), String> {
    let p = path.to_owned();
    let found = tokio::task::spawn_blocking(move || ferry_cache::stored_digest(&p))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if found != *digest {
        return Err(format!(
            "the files at `{shown}` do not match the digest recorded at registration ({} recorded, {} found); refusing to serve them",
            digest.short(16),
            found.short(16)
        ));
    }
    Ok(())
}
