//! From a registered version to a running [`Predictor`]: find the version's
//! files under the store's artifact root, then pick the runtime. An ONNX
//! file runs natively; anything else runs as a process runtime, and only as
//! one the gateway's operator defined ([`crate::runtime`]): the version
//! names it (tag `ferry.serve.runtime`) or its MLflow flavour selects it.
//! Nothing stored in the registry is ever run as a command.

use crate::predictor::{Fake, FakePredictor, Onnx, Predictor};
use crate::runtime::{LEGACY_COMMAND_TAG, RUNTIME_TAG, RuntimeDef, Runtimes};
use ferry_metadata::{MetadataStore, ModelVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Store(#[from] ferry_metadata::Error),
    #[error("version {version} of `{model}`: {message}")]
    Version {
        model: String,
        version: i64,
        message: String,
    },
}

#[async_trait::async_trait]
pub trait Loader: Send + Sync {
    async fn load(&self, v: &ModelVersion) -> Result<Arc<dyn Predictor>, LoadError>;
}

/// Where a gateway finds versions' files.
#[derive(Debug, Clone)]
pub enum Artifacts {
    /// The store's artifact folder on this machine.
    Folder(PathBuf),
    /// A bucket (`ferry server --artifacts s3://…`), each version
    /// downloaded once into `cache`, by digest ([`crate::bucket`]).
    Bucket {
        store: Arc<dyn ferry_artifacts::ArtifactStore>,
        cache: PathBuf,
    },
}

impl From<PathBuf> for Artifacts {
    fn from(p: PathBuf) -> Self {
        Self::Folder(p)
    }
}

/// Loads versions recorded in a local store, files from its artifacts.
pub struct StoreLoader {
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: Artifacts,
    /// Versions tagged `ferry.fake` load as [`FakePredictor`]s (tests and
    /// demos of a misbehaving candidate); off unless asked for.
    pub allow_fakes: bool,
    /// The process runtimes this gateway may start (`ferry serve --runtime`).
    pub runtimes: Runtimes,
}

fn err(v: &ModelVersion, message: impl Into<String>) -> LoadError {
    LoadError::Version {
        model: v.model.clone(),
        version: v.version,
        message: message.into(),
    }
}

/// `mlflow-artifacts:/a/b` under `root`, refusing anything that could leave it.
pub fn confined(root: &Path, uri: &str) -> Option<PathBuf> {
    let rest = uri
        .strip_prefix("mlflow-artifacts:")?
        .trim_start_matches('/');
    let mut p = root.to_path_buf();
    for part in rest.split('/').filter(|s| !s.is_empty()) {
        if part == "."
            || part == ".."
            || part.contains('\\')
            || part.contains(':')
            || part.contains('\0')
        {
            return None;
        }
        p.push(part);
    }
    Some(p)
}

/// The ONNX file of a version: the path itself, `model.onnx` in it, or its
/// only `.onnx` file (searched two levels deep, as MLflow's onnx flavor nests it).
pub fn find_onnx(p: &Path) -> Option<PathBuf> {
    if p.is_file() {
        return (p.extension().is_some_and(|e| e == "onnx")).then(|| p.to_path_buf());
    }
    let mut found = Vec::new();
    let mut dirs = vec![(p.to_path_buf(), 0)];
    while let Some((d, depth)) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() && depth < 2 {
                dirs.push((path, depth + 1));
            } else if path.extension().is_some_and(|e| e == "onnx") {
                found.push(path);
            }
        }
    }
    found.sort();
    if let Some(m) = found
        .iter()
        .find(|f| f.file_name().is_some_and(|n| n == "model.onnx"))
    {
        return Some(m.clone());
    }
    (found.len() == 1).then(|| found.remove(0))
}

#[async_trait::async_trait]
impl Loader for StoreLoader {
    async fn load(&self, v: &ModelVersion) -> Result<Arc<dyn Predictor>, LoadError> {
        if let Some((_, spec)) = v.tags.iter().find(|(k, _)| k == "ferry.fake") {
            if !self.allow_fakes {
                return Err(err(
                    v,
                    "is a fake (tag ferry.fake); start the gateway with fakes allowed to serve it",
                ));
            }
            let f = Fake::parse(spec).map_err(|e| err(v, format!("tag ferry.fake: {e}")))?;
            tokio::time::sleep(f.load_delay).await;
            return Ok(Arc::new(FakePredictor::new(f)));
        }
        let uri = ferry_metadata::version_artifact_uri(self.store.as_ref(), v).await?;
        let dir = self.files_of(v, &uri).await?;
        verify(v, &dir).await?;
        let (file, mlmodel) = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                (find_onnx(&dir), crate::runtime::read_mlmodel(&dir))
            })
            .await
            .map_err(|e| err(v, format!("cannot search its files: {e}")))?
        };
        let mlmodel = mlmodel.map_err(|e| err(v, e))?.unwrap_or_default();
        if let Some(rt) = self.process_runtime(v, &mlmodel, file.is_some())? {
            tracing::info!(model = %v.model, version = v.version, runtime = %rt.name, "starting its process runtime");
            let sig = mlmodel.signature.clone();
            let p = crate::process::ProcessRuntime::start(&v.model, v.version, rt, &dir, sig)
                .await
                .map_err(|e| err(v, e))?;
            return Ok(p);
        }
        let Some(file) = file else {
            return Err(err(
                v,
                format!(
                    "no ONNX file in `{}` and no MLflow flavour that a runtime of this gateway serves (runtimes: {}); ferry serves ONNX natively, and other models through a runtime its operator defines (`ferry serve --runtime mlflow` for pyfunc models)",
                    dir.display(),
                    self.runtimes.names()
                ),
            ));
        };
        let model = tokio::task::spawn_blocking(move || ferry_onnx::OnnxModel::from_file(&file))
            .await
            .map_err(|e| err(v, format!("the loading task failed: {e}")))?
            .map_err(|e| err(v, e.to_string()))?;
        Ok(Arc::new(Onnx::new(Arc::new(model), mlmodel.signature)))
    }
}

/// Checks the files of `v` in `dir` against the digest recorded when it was
/// registered: a version whose bytes changed since is refused, loudly.
async fn verify(v: &ModelVersion, dir: &Path) -> Result<(), LoadError> {
    let Some(stored) = &v.stored else {
        tracing::warn!(model = %v.model, version = v.version, "registered before ferry recorded digests: its files are not verified");
        return Ok(());
    };
    let found = {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || ferry_cache::stored_digest(&dir))
            .await
            .map_err(|e| err(v, format!("cannot verify its files: {e}")))?
            .map_err(|e| err(v, format!("cannot verify its files: {e}")))?
    };
    if found.to_hex() != stored.digest {
        let message = format!(
            "its files in `{}` changed since it was registered (digest {} recorded, {} found); refusing to serve them",
            dir.display(),
            &stored.digest[..stored.digest.len().min(16)],
            found.short(16)
        );
        tracing::error!(model = %v.model, version = v.version, "{message}");
        return Err(err(v, message));
    }
    Ok(())
}

impl StoreLoader {
    /// The local folder (or file) that holds `v`'s files, found at `uri`.
    async fn files_of(&self, v: &ModelVersion, uri: &str) -> Result<PathBuf, LoadError> {
        match &self.artifacts {
            Artifacts::Folder(root) => confined(root, uri).ok_or_else(|| {
                err(
                    v,
                    format!("its source `{uri}` is not in this store's artifact root, so it cannot be served from here"),
                )
            }),
            Artifacts::Bucket { store, cache } => {
                crate::bucket::local_copy(store.as_ref(), cache, v, uri)
                    .await
                    .map_err(|m| {
                        tracing::error!(model = %v.model, version = v.version, "{m}");
                        err(v, m)
                    })
            }
        }
    }

    /// The operator-defined runtime that serves `v`, if any: the one its tag
    /// `ferry.serve.runtime` names (which must exist), else, when it has no
    /// ONNX file, the one its `MLmodel` flavours select. A version that
    /// carries a command of its own is refused.
    fn process_runtime(
        &self,
        v: &ModelVersion,
        mlmodel: &ferry_mlmodel::MlModel,
        has_onnx: bool,
    ) -> Result<Option<&RuntimeDef>, LoadError> {
        let tag = |key: &str| {
            v.tags
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, x)| x.as_str())
        };
        if tag(LEGACY_COMMAND_TAG).is_some() {
            return Err(err(
                v,
                format!(
                    "it has the tag `{LEGACY_COMMAND_TAG}`, and a gateway never runs a command taken from the registry; the operator defines runtimes (`ferry serve --runtime NAME=...`) and a version names one with the tag `{RUNTIME_TAG}` (this gateway's runtimes: {})",
                    self.runtimes.names()
                ),
            ));
        }
        if let Some(name) = tag(RUNTIME_TAG) {
            return match self.runtimes.get(name) {
                Some(rt) => Ok(Some(rt)),
                None => Err(err(
                    v,
                    format!(
                        "its tag `{RUNTIME_TAG}` names the runtime `{}`, which this gateway does not define (its runtimes: {}; the operator adds one with `ferry serve --runtime`)",
                        name.escape_debug(),
                        self.runtimes.names()
                    ),
                )),
            };
        }
        if has_onnx {
            return Ok(None);
        }
        Ok(self
            .runtimes
            .for_flavors(mlmodel.flavors.iter().map(String::as_str)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_under_the_root() {
        let root = Path::new("/srv/a");
        assert_eq!(
            confined(root, "mlflow-artifacts:/1/r/artifacts/iris"),
            Some(PathBuf::from("/srv/a/1/r/artifacts/iris"))
        );
        for bad in [
            "mlflow-artifacts:/../etc",
            "mlflow-artifacts:/1/../../etc",
            "mlflow-artifacts:/1/..\\..\\etc",
            "file:///etc/passwd",
            "/etc/passwd",
            "s3://b/k",
            "mlflow-artifacts:/1/c:/x",
        ] {
            assert_eq!(confined(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn onnx_files_are_found() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find_onnx(d.path()), None);
        let nested = d.path().join("model");
        std::fs::create_dir_all(&nested).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(nested.join("x.onnx"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find_onnx(d.path()), Some(nested.join("x.onnx")));
        std::fs::write(d.path().join("y.onnx"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            find_onnx(d.path()),
            None,
            "two candidates, neither model.onnx"
        );
        std::fs::write(d.path().join("model.onnx"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find_onnx(d.path()), Some(d.path().join("model.onnx")));
    }
}
