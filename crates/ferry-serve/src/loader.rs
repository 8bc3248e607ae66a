//! From a registered version to a running [`Predictor`]: find the version's
//! files under the store's artifact root, then pick the runtime (an ONNX
//! file runs natively; a version tagged `ferry.serve.command` runs as a
//! process runtime).

use crate::predictor::{Fake, FakePredictor, Onnx, Predictor};
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

/// Loads versions recorded in a local store, files from its artifact root.
pub struct StoreLoader {
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: PathBuf,
    /// Versions tagged `ferry.fake` load as [`FakePredictor`]s (tests and
    /// demos of a misbehaving candidate); off unless asked for.
    pub allow_fakes: bool,
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
        let dir = confined(&self.artifacts, &uri).ok_or_else(|| {
            err(
                v,
                format!("its source `{uri}` is not in this store's artifact root, so it cannot be served from here"),
            )
        })?;
        if let Some((_, cmd)) = v.tags.iter().find(|(k, _)| k == "ferry.serve.command") {
            let p = crate::process::ProcessRuntime::start(&v.model, v.version, cmd, &dir)
                .await
                .map_err(|e| err(v, e))?;
            return Ok(p);
        }
        let file = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || find_onnx(&dir))
                .await
                .map_err(|e| err(v, format!("cannot search its files: {e}")))?
        };
        let Some(file) = file else {
            return Err(err(
                v,
                format!(
                    "no ONNX file in `{}`; ferry serves ONNX models natively, and any other model whose version has the tag `ferry.serve.command` (a command that serves HTTP on $PORT)",
                    dir.display()
                ),
            ));
        };
        let model = tokio::task::spawn_blocking(move || ferry_onnx::OnnxModel::from_file(&file))
            .await
            .map_err(|e| err(v, format!("the loading task failed: {e}")))?
            .map_err(|e| err(v, e.to_string()))?;
        Ok(Arc::new(Onnx(Arc::new(model))))
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
