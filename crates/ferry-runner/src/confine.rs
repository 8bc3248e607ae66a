//! Deps and outs stay inside the project, symlinks followed: ferry deletes
//! and writes outs, so a path that leads elsewhere (through a linked folder,
//! say) would let a run delete or overwrite a file outside the project.

use crate::{Error, Project, Result};
use ferry_spec::Stage;
use std::path::{Path, PathBuf};

pub(crate) struct Confine {
    root: PathBuf,
    /// The root with its own symlinks resolved; `None` if it cannot be.
    canonical: Option<PathBuf>,
}

impl Confine {
    pub fn new(project: &Project) -> Self {
        Self {
            root: project.root.clone(),
            canonical: std::fs::canonicalize(&project.root).ok(),
        }
    }

    /// Where `rel` leads, if that is outside the project. The longest part
    /// of the path that exists is resolved; the rest cannot hold a link.
    pub fn escape(&self, rel: &str) -> Option<PathBuf> {
        let canonical = self.canonical.as_ref()?;
        let abs = self.root.join(rel);
        let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
        let mut cur: &Path = &abs;
        loop {
            if let Ok(real) = std::fs::canonicalize(cur) {
                let mut to = real;
                to.extend(rest.iter().rev());
                return (!to.starts_with(canonical)).then_some(to);
            }
            rest.push(cur.file_name()?);
            cur = cur.parent()?;
        }
    }

    pub fn check(&self, rel: &str) -> Result<()> {
        match self.escape(rel) {
            Some(to) => Err(Error::OutsideProject {
                path: rel.to_owned(),
                leads_to: to,
            }),
            None => Ok(()),
        }
    }

    /// Every dep and out of `stage`.
    pub fn check_stage(&self, stage: &Stage) -> Result<()> {
        for p in stage.deps.iter().chain(&stage.outs) {
            self.check(p)?;
        }
        Ok(())
    }

    pub fn check_outs(&self, stage: &Stage) -> Result<()> {
        for p in &stage.outs {
            self.check(p)?;
        }
        Ok(())
    }
}
