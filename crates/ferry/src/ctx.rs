//! What every command is given: the folder it works in and how the
//! terminal shows things. A leaf: commands, `place.rs` and `serve.rs` all
//! use it, and it uses none of them.

use crate::ui::Style;
use anyhow::Result;
use ferry_runner::Project;
use std::path::PathBuf;

pub(crate) struct Ctx {
    pub(crate) cwd: PathBuf,
    pub(crate) style: Style,
}

impl Ctx {
    pub(crate) fn project(&self) -> Result<Project> {
        let root = ferry_runner::Project::discover(&self.cwd)?;
        Ok(Project::load(&root)?)
    }
}
