//! A ferry project on disk: its root, spec, lock file and `.ferry` folder
//! ([`Layout`], the one place their paths are spelled).

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
    layout: Layout,
}

/// Every path ferry keeps for a project: the spec and lock file beside the
/// project's files, and everything under `.ferry/`. The one place these
/// names are spelled; the runner, the CLI and the servers' defaults ask it.
/// Pure: it computes paths and touches nothing.
///
/// A checkout ([`Layout::checkout`]) is a commit's files in a worktree run
/// as the project they belong to: its files are the worktree's, what is
/// under `.ferry/` (store, cache, environments, artifacts, logs, the run
/// lock) is the project's, but the stat index, whose entries describe the
/// worktree's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    /// The project whose `.ferry/` a checkout uses; `None`: `root`'s own.
    home: Option<PathBuf>,
}

impl Layout {
    /// The layout of the project (or would-be project) at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            home: None,
        }
    }
    /// The files of another commit checked out at `root`, run as the
    /// project at `home`.
    pub fn checkout(root: impl Into<PathBuf>, home: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            home: Some(home.into()),
        }
    }
    /// The project folder (a checkout's: the worktree's).
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The project the runs are of: `root`, or the project a checkout was
    /// made from.
    pub fn home(&self) -> &Path {
        self.home.as_deref().unwrap_or(&self.root)
    }
    /// `ferry.yaml`.
    pub fn spec_file(&self) -> PathBuf {
        self.root.join(SPEC_FILE)
    }
    /// `ferry.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }
    /// `.ferry/`, where everything else lives (a checkout's: its home's).
    pub fn ferry_dir(&self) -> PathBuf {
        self.home().join(".ferry")
    }
    /// `.ferry/ferry.db`, the embedded store.
    pub fn db(&self) -> PathBuf {
        self.ferry_dir().join("ferry.db")
    }
    /// The embedded store's URL (`sqlite://…/.ferry/ferry.db`).
    pub fn store_url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }
    /// `.ferry/artifacts`: the artifact root of the embedded store (what
    /// `ferry server` and `ferry serve` default to).
    pub fn artifacts(&self) -> PathBuf {
        self.ferry_dir().join("artifacts")
    }
    /// A run's artifacts under the artifact root:
    /// `.ferry/artifacts/<experiment>/<run>/artifacts` (MLflow's
    /// `mlflow-artifacts:/<experiment>/<run>/artifacts`, as `ferry server`
    /// lays it out).
    pub fn run_artifacts(&self, experiment_id: &str, run_id: &str) -> PathBuf {
        self.artifacts()
            .join(experiment_id)
            .join(run_id)
            .join("artifacts")
    }
    /// `.ferry/logs`: stage logs, one folder per run.
    pub fn logs(&self) -> PathBuf {
        self.ferry_dir().join("logs")
    }
    /// `.ferry/logs/<run>/<stage>.log`.
    pub fn stage_log(&self, run_id: &str, stage: &str) -> PathBuf {
        self.logs().join(run_id).join(format!("{stage}.log"))
    }
    /// `.ferry/artifact-cache`: where `ferry serve` keeps versions from a
    /// bucket, by digest.
    pub fn artifact_cache(&self) -> PathBuf {
        self.ferry_dir().join("artifact-cache")
    }
    /// `.ferry/predictions`: `ferry serve`'s default prediction log.
    pub fn predictions(&self) -> PathBuf {
        self.ferry_dir().join("predictions")
    }
    /// `.ferry/cache`: objects and the run cache.
    pub fn cache(&self) -> PathBuf {
        self.ferry_dir().join("cache")
    }
    /// `.ferry/index`: the stat index, always the root's own (its entries
    /// are the root's files).
    pub fn index(&self) -> PathBuf {
        self.root.join(".ferry").join("index")
    }
    /// `.ferry/worktrees`: where the agent checks out the commits triggers
    /// name, one folder a run, removed after it.
    pub fn worktrees(&self) -> PathBuf {
        self.ferry_dir().join("worktrees")
    }
    /// `.ferry/envs`: Python environments.
    pub fn envs(&self) -> PathBuf {
        self.ferry_dir().join("envs")
    }
    /// `.ferry/run.lock`: held by a run or `gc`.
    pub fn run_lock(&self) -> PathBuf {
        self.ferry_dir().join("run.lock")
    }
    /// `.ferry/runs`: the stage groups of live runs (`<run>.pids`).
    pub fn runs(&self) -> PathBuf {
        self.ferry_dir().join("runs")
    }
    /// `.ferry/remotes`: what each remote is known to hold (`<name>.known`).
    pub fn remotes_state(&self) -> PathBuf {
        self.ferry_dir().join("remotes")
    }
    /// `.ferry/remotes.yaml`: this machine's settings for the remotes
    /// (an endpoint, a region, a profile), never committed.
    pub fn remotes_local(&self) -> PathBuf {
        self.ferry_dir().join("remotes.yaml")
    }
}

/// The project's files on disk, and (for a stage run away from its project)
/// the paths that are there but were not brought along.
struct DiskFiles<'a>(&'a Path, &'a [String]);

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
        self.0.join(path).exists() || self.1.iter().any(|p| p == path)
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
        Self::load_with(root, &[])
    }

    /// [`Project::load`] of a project that lacks `elsewhere` here: paths its
    /// spec names that exist where the project is (a stage's task brings
    /// only that stage's files).
    pub fn load_with(root: &Path, elsewhere: &[String]) -> Result<Self> {
        Self::load_layout(Layout::new(root), elsewhere)
    }

    /// Loads another commit's files checked out at `root` as the project
    /// at `home` ([`Layout::checkout`]): its runs are recorded in `home`'s
    /// store, with `home`'s cache and environments, and a spec without a
    /// `name:` names the pipeline after `home`'s folder, as there.
    pub fn load_checkout(root: &Path, home: &Path) -> Result<Self> {
        Self::load_layout(Layout::checkout(root, home), &[])
    }

    fn load_layout(layout: Layout, elsewhere: &[String]) -> Result<Self> {
        let root = layout.root().to_owned();
        let spec_path = layout.spec_file();
        let bytes = std::fs::read(&spec_path).map_err(|e| Error::Io {
            action: "read",
            path: spec_path.clone(),
            source: e,
        })?;
        let text = ferry_spec::spec_text(SPEC_FILE, &bytes).map_err(Error::Spec)?;
        let default_name = layout.home().file_name().map_or_else(
            || "pipeline".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let pipeline = ferry_spec::load(
            SPEC_FILE,
            &text,
            &default_name,
            &DiskFiles(&root, elsewhere),
        )
        .map_err(Error::Spec)?;
        Ok(Self {
            root,
            pipeline,
            layout,
        })
    }

    /// Where this project's files are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// The embedded store of the project at `root`.
pub fn store_url(root: &Path) -> String {
    Layout::new(root).store_url()
}
