//! Python environments for stages.
//!
//! An environment lives in `.ferry/envs/<key>`, where the key is a digest of
//! the requirements file's content and the interpreter's version. It is built
//! with `uv` when `uv` is on PATH (else `python -m venv` and pip;
//! `FERRY_ENV_TOOL=uv|pip` chooses) and is
//! complete only once its `ferry-env.json` marker has been written, last and
//! atomically; a half-built folder from a killed run is rebuilt.
//!
//! Its fingerprint (interpreter version, the resolved package list, OS and
//! architecture) feeds every stage fingerprint and the model lineage, so a
//! changed pin reruns what depends on it, while a requirements edit that
//! resolves to the same packages does not.

use ferry_core::{Digest, StableHasher};
use ferry_executor::{CancelToken, Job, OutputSink};
use ferry_fs::FileLock;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{0}` was not found on PATH")]
    NoInterpreter(String),
    #[error("cannot ask `{interpreter}` for its version: {detail}")]
    Version { interpreter: String, detail: String },
    #[error("building the environment from `{requirements}` failed: `{step}` {detail} (log: {})", log.display())]
    Build {
        requirements: String,
        step: String,
        detail: String,
        log: PathBuf,
    },
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building the environment was cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ferry_fs::Error> for Error {
    fn from(e: ferry_fs::Error) -> Self {
        Error::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// What the pipeline asks for.
#[derive(Debug, Clone)]
pub struct EnvRequest {
    /// The requirements file, relative to the project root (for messages).
    pub requirements: String,
    pub requirements_digest: Digest,
    /// The interpreter to build from, e.g. `python3`.
    pub interpreter: String,
}

/// A built environment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PreparedEnv {
    pub dir: PathBuf,
    pub fingerprint: Digest,
    pub python_version: String,
    pub packages: Vec<String>,
    pub platform: String,
    pub tool: String,
}

impl PreparedEnv {
    /// Variables that make a stage run inside the environment.
    pub fn vars(&self) -> Vec<(String, String)> {
        let bin = self.dir.join("bin");
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            ("VIRTUAL_ENV".into(), self.dir.display().to_string()),
            ("PATH".into(), format!("{}:{path}", bin.display())),
            ("PYTHONNOUSERSITE".into(), "1".into()),
        ]
    }
}

/// The platform part of the fingerprint.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The environment fingerprint from its parts.
pub fn fingerprint(python_version: &str, packages: &[String], platform: &str) -> Digest {
    let mut sorted: Vec<String> = packages
        .iter()
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    sorted.sort();
    let mut h = StableHasher::new("ferry.env.v1");
    h.str(python_version).str(platform).list(sorted.len());
    for p in &sorted {
        h.str(p);
    }
    h.finish()
}

/// Finds `name` on PATH (or takes it as a path if it has a `/`).
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file() && std::fs::metadata(p).is_ok_and(|m| m.mode() & 0o111 != 0))
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct InterpreterCache {
    entries: Vec<InterpreterEntry>,
}

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct InterpreterEntry {
    path: String,
    size: u64,
    mtime_ns: i64,
    pyenv_version: Option<String>,
    version: String,
}

/// Manages the environments under one folder (`.ferry/envs`).
pub struct Envs {
    root: PathBuf,
}

impl Envs {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The interpreter's version, cached by the interpreter file's stat so a
    /// no-op `ferry status` starts no process.
    pub fn interpreter_version(&self, interpreter: &str) -> Result<String> {
        let path =
            which(interpreter).ok_or_else(|| Error::NoInterpreter(interpreter.to_owned()))?;
        let meta = std::fs::metadata(&path).map_err(io("read", &path))?;
        let key = InterpreterEntry {
            path: path.display().to_string(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            pyenv_version: std::env::var("PYENV_VERSION").ok(),
            version: String::new(),
        };
        let cache_path = self.root.join("interpreters.json");
        let mut cache: InterpreterCache = std::fs::read(&cache_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let same = |e: &InterpreterEntry| {
            e.path == key.path
                && e.size == key.size
                && e.mtime_ns == key.mtime_ns
                && e.pyenv_version == key.pyenv_version
        };
        if let Some(e) = cache.entries.iter().find(|e| same(e)) {
            return Ok(e.version.clone());
        }
        let out = std::process::Command::new(&path)
            .args([
                "-c",
                "import sys, platform; print(platform.python_version())",
            ])
            .output()
            .map_err(|e| Error::Version {
                interpreter: interpreter.to_owned(),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::Version {
                interpreter: interpreter.to_owned(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        cache.entries.retain(|e| e.path != key.path);
        cache.entries.push(InterpreterEntry {
            version: version.clone(),
            ..key
        });
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        if let Ok(bytes) = serde_json::to_vec_pretty(&cache) {
            // Only a cache: a failed write costs a probe next time.
            let _ = ferry_fs::write_atomic(&cache_path, &bytes);
        }
        Ok(version)
    }

    /// The folder key for a request.
    pub fn key(&self, req: &EnvRequest, python_version: &str) -> Digest {
        StableHasher::new("ferry.envkey.v1")
            .digest(&req.requirements_digest)
            .str(python_version)
            .str(&platform())
            .finish()
    }

    fn dir(&self, key: &Digest) -> PathBuf {
        self.root.join(key.short(16))
    }

    /// The environment for `req` if it is already built (no process started
    /// when the interpreter's version is cached).
    pub fn lookup(&self, req: &EnvRequest) -> Result<Option<PreparedEnv>> {
        let version = self.interpreter_version(&req.interpreter)?;
        let dir = self.dir(&self.key(req, &version));
        Ok(read_marker(&dir))
    }

    /// The environment for `req`, built if needed. Output of the build goes
    /// to `sink` and to a log beside the environment.
    pub fn ensure(
        &self,
        project_root: &Path,
        req: &EnvRequest,
        sink: Arc<dyn OutputSink>,
        cancel: &CancelToken,
    ) -> Result<PreparedEnv> {
        let version = self.interpreter_version(&req.interpreter)?;
        let key = self.key(req, &version);
        let dir = self.dir(&key);
        if let Some(env) = read_marker(&dir) {
            return Ok(env);
        }
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        // One builder at a time per environment.
        let lock_path = self.root.join(format!("{}.lock", key.short(16)));
        let _lock = FileLock::acquire(&lock_path)?;
        if let Some(env) = read_marker(&dir) {
            return Ok(env);
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io("remove the half-built environment", &dir))?;
        }
        let log = self.root.join(format!("{}.log", key.short(16)));
        let req_abs = project_root.join(&req.requirements);
        let interp =
            which(&req.interpreter).ok_or_else(|| Error::NoInterpreter(req.interpreter.clone()))?;
        let q = |p: &Path| ferry_executor::shell_word(&p.display().to_string());
        let uv = match std::env::var("FERRY_ENV_TOOL").as_deref() {
            Ok("pip") => None,
            Ok("uv") => Some(
                which("uv").ok_or_else(|| Error::NoInterpreter("uv (FERRY_ENV_TOOL=uv)".into()))?,
            ),
            _ => which("uv"),
        };
        let (tool, steps): (&str, Vec<String>) = match uv {
            Some(uv) => (
                "uv",
                vec![
                    format!(
                        "{} venv --quiet --python {} {}",
                        q(&uv),
                        q(&interp),
                        q(&dir)
                    ),
                    format!(
                        "{} pip install --python {} -r {}",
                        q(&uv),
                        q(&dir.join("bin/python")),
                        q(&req_abs)
                    ),
                ],
            ),
            None => (
                "pip",
                vec![
                    format!("{} -m venv {}", q(&interp), q(&dir)),
                    format!(
                        "{} -m pip install --disable-pip-version-check -r {}",
                        q(&dir.join("bin/python")),
                        q(&req_abs)
                    ),
                ],
            ),
        };
        for step in &steps {
            let outcome = ferry_executor::run(
                &Job {
                    stage: "env".into(),
                    cmd: step.clone(),
                    cwd: project_root.to_owned(),
                    env: vec![],
                    timeout: Some(std::time::Duration::from_secs(3600)),
                    log_path: log.clone(),
                    watch: None,
                },
                sink.clone(),
                cancel,
            );
            if outcome.exit == ferry_executor::Exit::Cancelled {
                return Err(Error::Cancelled);
            }
            if !outcome.exit.success() {
                return Err(Error::Build {
                    requirements: req.requirements.clone(),
                    step: step.clone(),
                    detail: outcome.exit.describe(),
                    log,
                });
            }
        }
        let freeze = if tool == "uv" {
            std::process::Command::new(which("uv").unwrap_or_else(|| "uv".into()))
                .args(["pip", "freeze", "--python"])
                .arg(dir.join("bin/python"))
                .output()
        } else {
            std::process::Command::new(dir.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "freeze",
                    "--all",
                    "--disable-pip-version-check",
                ])
                .output()
        }
        .map_err(io("list the packages of", &dir))?;
        if !freeze.status.success() {
            return Err(Error::Build {
                requirements: req.requirements.clone(),
                step: "freeze".into(),
                detail: String::from_utf8_lossy(&freeze.stderr).trim().to_owned(),
                log,
            });
        }
        let packages: Vec<String> = String::from_utf8_lossy(&freeze.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            // pip, setuptools and wheel come with the venv tool, not the pins.
            .filter(|l| {
                !["pip==", "setuptools==", "wheel=="]
                    .iter()
                    .any(|p| l.to_ascii_lowercase().starts_with(p))
            })
            .map(str::to_owned)
            .collect();
        let platform = platform();
        let env = PreparedEnv {
            fingerprint: fingerprint(&version, &packages, &platform),
            dir: dir.clone(),
            python_version: version,
            packages,
            platform,
            tool: tool.to_owned(),
        };
        write_marker(&dir, &env)?;
        Ok(env)
    }
}

const MARKER: &str = "ferry-env.json";

fn read_marker(dir: &Path) -> Option<PreparedEnv> {
    let bytes = std::fs::read(dir.join(MARKER)).ok()?;
    let env: PreparedEnv = serde_json::from_slice(&bytes).ok()?;
    // The marker is trusted only if the interpreter is still there.
    dir.join("bin/python").exists().then_some(env)
}

/// The marker is what makes an environment complete, so it is written
/// atomically (temp file, fsync, rename, fsync of the folder): a crash
/// leaves either no marker or a whole one.
fn write_marker(dir: &Path, env: &PreparedEnv) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(env).unwrap_or_default();
    Ok(ferry_fs::write_atomic(&dir.join(MARKER), &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_pins_not_order() {
        let a = fingerprint(
            "3.11.7",
            &["numpy==2.0".into(), "scikit-learn==1.5".into()],
            "linux-x86_64",
        );
        let b = fingerprint(
            "3.11.7",
            &["scikit-learn==1.5".into(), "NumPy==2.0".into()],
            "linux-x86_64",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint(
                "3.11.7",
                &["numpy==2.1".into(), "scikit-learn==1.5".into()],
                "linux-x86_64"
            )
        );
        assert_ne!(
            a,
            fingerprint(
                "3.12.1",
                &["numpy==2.0".into(), "scikit-learn==1.5".into()],
                "linux-x86_64"
            )
        );
    }

    #[test]
    fn interpreter_version_is_cached() {
        let t = tempfile::tempdir().unwrap();
        let envs = Envs::new(t.path());
        let v = envs.interpreter_version("python3").unwrap();
        assert!(v.starts_with('3'), "{v}");
        assert!(t.path().join("interpreters.json").exists());
        assert_eq!(envs.interpreter_version("python3").unwrap(), v);
        assert!(matches!(
            envs.interpreter_version("no-such-python-xyz"),
            Err(Error::NoInterpreter(_))
        ));
    }

    #[test]
    fn file_lock_excludes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.lock");
        let held = FileLock::try_acquire(&p).unwrap();
        assert!(held.is_some());
        assert!(FileLock::try_acquire(&p).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_acquire(&p).unwrap().is_some());
    }
}
