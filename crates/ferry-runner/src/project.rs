//! A ferry project on disk: its root, spec, lock file and `.ferry` folder.

use crate::{Error, Result};
use ferry_spec::{Files, Pipeline};
use std::path::{Path, PathBuf};

pub const SPEC_FILE: &str = "ferry.yaml";
pub const LOCK_FILE: &str = "ferry.lock";

/// A loaded, validated project.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub pipeline: Pipeline,
}

struct DiskFiles<'a>(&'a Path);

impl Files for DiskFiles<'_> {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        match std::fs::read(self.0.join(path)) {
            Ok(b) => ferry_spec::spec_text(path, &b).map(Some).map_err(|d| {
                d.items
                    .first()
                    .map(|d| d.message.clone())
                    .unwrap_or_default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn exists(&self, path: &str) -> bool {
        self.0.join(path).exists()
    }
}

impl Project {
    /// The nearest folder at or above `start` that holds a ferry.yaml.
    pub fn discover(start: &Path) -> Result<PathBuf> {
        let start = std::fs::canonicalize(start).map_err(|e| Error::Io {
            action: "open",
            path: start.to_owned(),
            source: e,
        })?;
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            if d.join(SPEC_FILE).is_file() {
                return Ok(d.to_owned());
            }
            dir = d.parent();
        }
        Err(Error::NoProject(start))
    }

    /// Loads and validates the project at `root`.
    pub fn load(root: &Path) -> Result<Self> {
        let spec_path = root.join(SPEC_FILE);
        let bytes = std::fs::read(&spec_path).map_err(|e| Error::Io {
            action: "read",
            path: spec_path.clone(),
            source: e,
        })?;
        let text = ferry_spec::spec_text(SPEC_FILE, &bytes).map_err(Error::Spec)?;
        let default_name = root.file_name().map_or_else(
            || "pipeline".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let pipeline = ferry_spec::load(SPEC_FILE, &text, &default_name, &DiskFiles(root))
            .map_err(Error::Spec)?;
        Ok(Self {
            root: root.to_owned(),
            pipeline,
        })
    }

    pub fn ferry_dir(&self) -> PathBuf {
        self.root.join(".ferry")
    }
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.ferry_dir().join("cache")
    }
    pub fn index_path(&self) -> PathBuf {
        self.ferry_dir().join("index")
    }
    pub fn envs_dir(&self) -> PathBuf {
        self.ferry_dir().join("envs")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.ferry_dir().join("logs")
    }
    /// The embedded store's URL.
    pub fn store_url(&self) -> String {
        store_url(&self.root)
    }
}

/// The embedded store of the project at `root`.
pub fn store_url(root: &Path) -> String {
    format!(
        "sqlite://{}",
        root.join(".ferry").join("ferry.db").display()
    )
}
