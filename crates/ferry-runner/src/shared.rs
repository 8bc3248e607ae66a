//! What a project shares through a remote: the outputs and run-cache
//! entries its lock file names (`ferry push`, `fetch`, `gc --remote`), and
//! putting the locked outputs back into the work tree from the cache
//! (`ferry checkout`, the second half of `ferry pull`).

use crate::engine::{Engine, to_record};
use crate::run::targets;
use crate::{Error, Project, Result};
use ferry_cache::{Cache, OutRecord};
use ferry_core::Digest;

/// A run cache shared across machines (a remote): a run looks a stage's
/// fingerprint up there when the local run cache has nothing for it, and
/// may send what its stages produced. The CLI implements it over
/// `ferry-remote`; the runner only knows this seam.
pub trait SharedCache: Send + Sync {
    /// The remote's name, for what the run reports.
    fn name(&self) -> &str;
    /// Brings the run-cache entry of `fingerprint` and every output it
    /// names into `cache`, each verified. `Ok(false)`: the remote has no
    /// such entry (or not all of its outputs).
    fn fetch_run(&self, cache: &Cache, fingerprint: &Digest) -> std::result::Result<bool, String>;
    /// Sends the run-cache entry of `fingerprint` and its outputs.
    fn push_run(&self, cache: &Cache, fingerprint: &Digest) -> std::result::Result<(), String>;
    /// Sends `files` (in `cache`) that the remote lacks.
    fn push_files(&self, cache: &Cache, files: &[OutRecord]) -> std::result::Result<(), String>;
    /// Brings `files` that `cache` lacks, each verified; an error names
    /// what the remote does not have.
    fn fetch_files(&self, cache: &Cache, files: &[OutRecord]) -> std::result::Result<(), String>;
}

impl std::fmt::Debug for dyn SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedCache({})", self.name())
    }
}

/// The outputs and stage fingerprints ferry.lock names, for `stages` (all
/// when empty; an unknown stage is an error naming it).
pub fn locked(project: &Project, stages: &[String]) -> Result<(Vec<OutRecord>, Vec<Digest>)> {
    let engine = Engine::open(project)?;
    let wanted = targets(project, stages)?;
    let mut outs = Vec::new();
    let mut runs = Vec::new();
    for stage in &project.pipeline.stages {
        if !wanted.is_empty() && !wanted.contains(&stage.name) {
            continue;
        }
        if let Some(lock) = engine.locked(stage.name.as_str()) {
            outs.extend(lock.outs.iter().map(|(p, l)| to_record(p, l)));
            runs.push(lock.fingerprint);
        }
    }
    if wanted.is_empty() {
        outs.extend(crate::pointers::all(project)?.iter().map(|p| p.out()));
    }
    Ok((outs, runs))
}

/// What a remote must keep for this project (`gc --remote`): what
/// [`crate::run::referenced`] keeps locally, and the run entries of the
/// stages ferry.lock names.
/// With `history`, also what the locks and pointer files of those commits
/// name (each stage's outputs and its run-cache entry). A record that
/// cannot be read is an error, never "nothing to keep".
pub fn remote_keep(
    project: &Project,
    history: &crate::Revisions,
) -> Result<(Vec<OutRecord>, Vec<Digest>)> {
    let engine = Engine::open(project)?;
    let (mut outs, mut runs) = crate::run::referenced(project, &engine, true)?;
    // The lock's own run entries, whatever the local run cache still holds.
    runs.extend(locked(project, &[])?.1);
    if !history.is_empty() {
        let files =
            crate::git::committed_records(&project.root, history).map_err(Error::History)?;
        for f in files {
            committed_keep(&f, &mut outs, &mut runs)?;
        }
    }
    Ok((outs, runs))
}

/// What one committed lock or pointer file names.
fn committed_keep(
    f: &crate::git::CommittedFile,
    outs: &mut Vec<OutRecord>,
    runs: &mut Vec<Digest>,
) -> Result<()> {
    let at = |why: String| Error::History(format!("{} at {}: {why}", f.path, short(&f.commit)));
    if f.path.ends_with(crate::pointers::POINTER_SUFFIX) {
        let p = crate::pointers::Pointer::parse(&f.path, &f.text).map_err(at)?;
        outs.push(p.out());
        return Ok(());
    }
    let lock = ferry_pipeline::LockFile::parse(&f.text).map_err(|e| at(e.to_string()))?;
    for stage in lock.stages.values() {
        runs.push(stage.fingerprint);
        outs.extend(stage.outs.iter().map(|(p, l)| to_record(p, l)));
    }
    Ok(())
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// What `checkout` did with one locked output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckedOut {
    pub stage: String,
    pub path: String,
    /// `unchanged`, `restored`, or `missing` (not in the local cache: fetch it).
    pub outcome: &'static str,
}

/// Puts the outputs ferry.lock names for `stages` (all when empty; then
/// also the data pointer files describe) back into the work tree where they
/// differ, from the local cache.
pub fn checkout(project: &Project, stages: &[String]) -> Result<Vec<CheckedOut>> {
    let mut engine = Engine::open(project)?;
    let wanted = targets(project, stages)?;
    let mut done = Vec::new();
    if wanted.is_empty() {
        for p in crate::pointers::all(project)? {
            let outcome = put_back(&mut engine, &p.path, &p.out())?;
            done.push(CheckedOut {
                stage: String::new(),
                path: p.path,
                outcome,
            });
        }
    }
    for stage in &project.pipeline.stages {
        if !wanted.is_empty() && !wanted.contains(&stage.name) {
            continue;
        }
        let Some(lock) = engine.locked(stage.name.as_str()).cloned() else {
            continue;
        };
        for (path, l) in &lock.outs {
            let outcome = put_back(&mut engine, path, &to_record(path, l))?;
            done.push(CheckedOut {
                stage: stage.name.to_string(),
                path: path.clone(),
                outcome,
            });
        }
    }
    engine.save_index();
    Ok(done)
}

/// `out` back at `path` unless it is there already.
fn put_back(engine: &mut Engine<'_>, path: &str, out: &OutRecord) -> Result<&'static str> {
    if engine.digest_path(path)?.map(|d| d.digest()) == Some(out.digest) {
        return Ok("unchanged");
    }
    Ok(match engine.restore_out(out)? {
        Ok(()) => "restored",
        Err(_) => "missing",
    })
}
