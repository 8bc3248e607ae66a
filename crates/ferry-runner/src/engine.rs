//! The one decision procedure `status` and `run` share: hash a stage's
//! inputs, fingerprint them, compare with ferry.lock and the run cache; and
//! the one way a stage's result is kept ([`Engine::commit`]).

use crate::report::Action;
use crate::shared::SharedCache;
use crate::{Project, Result};
use ferry_cache::{Cache, GcStats, Hasher, OutRecord, PathDigest, RunCacheEntry, StatIndex};
use ferry_core::Digest;
use ferry_pipeline::{
    Change, DepState, LockFile, LockedPath, StageInputs, StageLock, explain, fingerprint,
};
use ferry_spec::Stage;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(crate) struct Engine<'p> {
    project: &'p Project,
    hasher: Hasher,
    cache: Cache,
    lock: LockFile,
    /// The environment's fingerprint; `None` with an env means not built yet.
    env_fp: Option<Digest>,
    has_env: bool,
    /// A remote's run cache, looked up when the local one misses.
    shared: Option<Arc<dyn SharedCache>>,
    /// Whether results of stages that ran go to `shared`.
    push: bool,
}

/// How a stage's result came to be, for [`Engine::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Its command ran: the result also becomes a run-cache entry.
    Ran,
    /// Restored from the run cache, which has it already.
    Restored,
}

pub(crate) struct Verdict {
    pub action: Action,
    pub changes: Vec<Change>,
    pub fingerprint: Digest,
    pub cached: Option<RunCacheEntry>,
    /// The shared cache a restore's entry came from (`None`: the local one).
    pub from: Option<String>,
    /// Why the shared cache could not be asked (the stage then runs).
    pub shared_error: Option<String>,
}

impl Verdict {
    pub fn reason(&self) -> String {
        let why = self.why();
        match &self.from {
            Some(remote) => format!("{why}; from remote `{remote}`"),
            None => why,
        }
    }

    fn why(&self) -> String {
        if self.changes.is_empty() {
            return match self.action {
                Action::UpToDate => "up to date".into(),
                _ => "inputs changed".into(),
            };
        }
        self.changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub(crate) fn to_locked(pd: &PathDigest) -> LockedPath {
    LockedPath {
        digest: pd.digest(),
        size: pd.size(),
        files: match pd {
            PathDigest::Dir { manifest, .. } => Some(manifest.entries.len() as u64),
            PathDigest::File { .. } => None,
        },
    }
}

pub(crate) fn record_to_locked(o: &OutRecord) -> LockedPath {
    LockedPath {
        digest: o.digest,
        size: o.size,
        files: o.files,
    }
}

pub(crate) fn to_record(path: &str, l: &LockedPath) -> OutRecord {
    OutRecord {
        path: path.to_owned(),
        digest: l.digest,
        size: l.size,
        files: l.files,
    }
}

impl<'p> Engine<'p> {
    pub fn open(project: &'p Project) -> Result<Self> {
        let lock = match std::fs::read_to_string(project.layout().lock_file()) {
            Ok(text) => LockFile::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockFile::default(),
            Err(e) => {
                return Err(crate::Error::Io {
                    action: "read",
                    path: project.layout().lock_file(),
                    source: e,
                });
            }
        };
        let cache = Cache::new(&project.layout().cache()).with_link(project.pipeline.link);
        Ok(Self {
            project,
            hasher: cache.guard(Hasher::new(
                &project.root,
                StatIndex::load(&project.layout().index()),
            )),
            cache,
            lock,
            env_fp: None,
            has_env: project.pipeline.env.is_some(),
            shared: None,
            push: false,
        })
    }

    /// Sets the environment's fingerprint (`None`: not built yet), which
    /// every stage's fingerprint covers.
    pub fn set_env(&mut self, fingerprint: Option<Digest>) {
        self.env_fp = fingerprint;
    }

    /// The lock entry of `stage`, if it has one.
    pub fn locked(&self, stage: &str) -> Option<&StageLock> {
        self.lock.stages.get(stage)
    }

    /// The digest of a file or folder of the project (`None`: it does not exist).
    pub fn digest_path(&mut self, path: &str) -> Result<Option<PathDigest>> {
        Ok(self.hasher.digest_path(path)?)
    }

    /// The cache's object holding the bytes the file at `path` has now, if
    /// the cache has one (an out of a stage that is done, say).
    pub fn cached_copy(&mut self, path: &str) -> Result<Option<std::path::PathBuf>> {
        Ok(match self.hasher.digest_path(path)? {
            Some(PathDigest::File { digest, .. }) => self.cache.object(&digest),
            _ => None,
        })
    }

    /// The file or folder at `path` stored in the cache, as a record (`None`
    /// when it does not exist).
    pub fn stash(&mut self, path: &str) -> Result<Option<OutRecord>> {
        let Some(pd) = self.hasher.digest_path(path)? else {
            return Ok(None);
        };
        self.cache.store(&self.project.root.join(path), &pd)?;
        let l = to_locked(&pd);
        Ok(Some(to_record(path, &l)))
    }

    /// Keeps what the stat index learned for the next run (best effort).
    pub fn save_index(&mut self) {
        let _ = self.hasher.save_index();
    }

    /// The digest of the requirements file, for the environment's key.
    pub fn requirements_digest(&mut self) -> Result<Option<Digest>> {
        let Some(env) = &self.project.pipeline.env else {
            return Ok(None);
        };
        let req = env.requirements.clone();
        Ok(self.hasher.digest_path(&req)?.map(|d| d.digest()))
    }

    /// A stage's inputs from the files as they are now, except for deps
    /// listed in `predicted` (outputs an upstream restore will bring back).
    /// `Err(path)` names a dep that does not exist.
    pub fn inputs(
        &mut self,
        stage: &Stage,
        predicted: &HashMap<String, LockedPath>,
    ) -> Result<std::result::Result<StageInputs, String>> {
        let to_hash: Vec<String> = stage
            .deps
            .iter()
            .filter(|d| !predicted.contains_key(*d))
            .cloned()
            .collect();
        let digests = self.hasher.digest_paths(&to_hash)?;
        let mut deps = BTreeMap::new();
        for (path, d) in to_hash.iter().zip(digests) {
            let Some(d) = d else {
                return Ok(Err(path.clone()));
            };
            deps.insert(path.clone(), DepState::from(to_locked(&d)));
        }
        for d in &stage.deps {
            if let Some(l) = predicted.get(d) {
                deps.insert(d.clone(), DepState::from(*l));
            }
        }
        Ok(Ok(StageInputs {
            cmd: stage.cmd.clone(),
            deps,
            params: stage.params.clone(),
            env: self.env_fp,
            outs: stage.outs.clone(),
        }))
    }

    /// Up to date, restorable, or must run, and why.
    pub fn decide(&mut self, stage: &Stage, inputs: &StageInputs, force: bool) -> Result<Verdict> {
        let fp = fingerprint(inputs);
        if force {
            return Ok(Verdict {
                action: Action::Run,
                changes: vec![Change::Forced],
                fingerprint: fp,
                cached: None,
                from: None,
                shared_error: None,
            });
        }
        if self.has_env && self.env_fp.is_none() {
            return Ok(Verdict {
                action: Action::Run,
                changes: vec![Change::EnvNotBuilt],
                fingerprint: fp,
                cached: None,
                from: None,
                shared_error: None,
            });
        }
        let lock = self.lock.stages.get(stage.name.as_str()).cloned();
        let mut outs_now = Vec::with_capacity(stage.outs.len());
        if lock.as_ref().is_some_and(|l| l.fingerprint == fp) {
            let digests = self.hasher.digest_paths(&stage.outs)?;
            for (o, d) in stage.outs.iter().zip(digests) {
                outs_now.push((o.clone(), d.map(|d| d.digest())));
            }
        }
        let decision = explain(inputs, lock.as_ref(), &outs_now, &[]);
        if decision.up_to_date() && lock.as_ref().is_some_and(|l| l.fingerprint == fp) {
            return Ok(Verdict {
                action: Action::UpToDate,
                changes: vec![],
                fingerprint: fp,
                cached: None,
                from: None,
                shared_error: None,
            });
        }
        let mut changes = decision.changes;
        if changes.is_empty() {
            // Same inputs by every visible measure, yet another fingerprint:
            // the encoding changed (a ferry upgrade).
            changes.push(Change::NeverRan);
        }
        if let Some(entry) = self.cache.run_entry(&fp)?
            && entry.outs.iter().all(|o| self.cache.has(o))
            && entry.outs.len() == stage.outs.len()
        {
            return Ok(Verdict {
                action: Action::Restore,
                changes,
                fingerprint: fp,
                cached: Some(entry),
                from: None,
                shared_error: None,
            });
        }
        let shared_error = match self.lookup_shared(stage, &fp) {
            Ok(Some(entry)) => {
                let from = self.shared.as_ref().map(|s| s.name().to_owned());
                return Ok(Verdict {
                    action: Action::Restore,
                    changes,
                    fingerprint: fp,
                    cached: Some(entry),
                    from,
                    shared_error: None,
                });
            }
            Ok(None) => None,
            Err(e) => Some(e),
        };
        Ok(Verdict {
            action: Action::Run,
            changes,
            fingerprint: fp,
            cached: None,
            from: None,
            shared_error,
        })
    }

    /// The entry the shared cache has for `fp`, brought into the local
    /// cache with its outputs (`None`: no shared cache, or it has nothing
    /// whole for this stage; a failed lookup is a miss, never a failure:
    /// the stage then runs, and the run says why).
    fn lookup_shared(
        &self,
        stage: &Stage,
        fp: &Digest,
    ) -> std::result::Result<Option<RunCacheEntry>, String> {
        let Some(shared) = self.shared.as_ref() else {
            return Ok(None);
        };
        if !shared.fetch_run(&self.cache, fp)? {
            return Ok(None);
        }
        let entry = self.cache.run_entry(fp).map_err(|e| e.to_string())?;
        Ok(entry.filter(|e| {
            e.outs.len() == stage.outs.len() && e.outs.iter().all(|o| self.cache.has(o))
        }))
    }

    /// Looks stages up in `shared` when the local run cache misses; with
    /// `push`, sends what stages that ran produced.
    pub fn set_shared(&mut self, shared: Option<Arc<dyn SharedCache>>, push: bool) {
        self.shared = shared;
        self.push = push;
    }

    /// Sends the result of a stage that ran to the shared cache, when asked
    /// to: `None` when there is nothing to say, else what happened.
    pub fn share(&self, fingerprint: &Digest) -> Option<std::result::Result<String, String>> {
        let shared = self.shared.as_ref().filter(|_| self.push)?;
        Some(
            shared
                .push_run(&self.cache, fingerprint)
                .map(|()| shared.name().to_owned()),
        )
    }

    /// Copies a run-cache entry's outputs back into the project (and tells
    /// the stat index their digests). `Ok(Err(why))`: an out could not be
    /// restored, so the stage fails; `Err`: the index could not keep it.
    pub fn restore(&mut self, entry: &RunCacheEntry) -> Result<std::result::Result<(), String>> {
        for out in &entry.outs {
            if let Err(why) = self.restore_out(out)? {
                return Ok(Err(why));
            }
        }
        Ok(Ok(()))
    }

    /// Copies one output back from the cache (see [`Engine::restore`]).
    pub fn restore_out(&mut self, out: &OutRecord) -> Result<std::result::Result<(), String>> {
        match self.cache.restore(&self.project.root, out) {
            Ok(written) => {
                for w in written {
                    self.hasher.remember_at(&w.key, &w.path, w.digest)?;
                }
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    /// Hashes the outs a stage's command wrote and stores them in the cache.
    /// `Ok(Err(why))`: an out cannot be hashed or was not written, so the
    /// stage fails; `Err`: the cache could not store one.
    pub fn cache_outs(
        &mut self,
        stage: &Stage,
    ) -> Result<std::result::Result<Vec<OutRecord>, String>> {
        let digests = match self.hasher.digest_paths(&stage.outs) {
            Ok(d) => d,
            Err(e) => return Ok(Err(crate::Error::from(e).to_string())),
        };
        let mut outs = Vec::with_capacity(stage.outs.len());
        for (path, d) in stage.outs.iter().zip(digests) {
            let Some(d) = d else {
                return Ok(Err(format!(
                    "the command succeeded but did not write its out `{path}`"
                )));
            };
            self.cache.store(&self.project.root.join(path), &d)?;
            outs.push(to_record(path, &to_locked(&d)));
        }
        Ok(Ok(outs))
    }

    /// Makes `outs` (in the cache already) and `metrics` the result of
    /// `stage` for these inputs: a run-cache entry when it ran, then its
    /// entry in ferry.lock, which is saved.
    pub fn commit(
        &mut self,
        stage: &Stage,
        inputs: &StageInputs,
        fingerprint: Digest,
        outs: &[OutRecord],
        metrics: BTreeMap<String, serde_json::Value>,
        origin: Origin,
    ) -> Result<()> {
        if origin == Origin::Ran {
            self.cache.put_run_entry(
                &fingerprint,
                &RunCacheEntry {
                    stage: stage.name.to_string(),
                    outs: outs.to_vec(),
                    metrics: metrics.clone(),
                    created_ms: ferry_core::now_ms(),
                },
            )?;
        }
        let locked = outs
            .iter()
            .map(|o| (o.path.clone(), record_to_locked(o)))
            .collect();
        let entry = StageLock::new(inputs, fingerprint, locked, metrics);
        self.lock.stages.insert(stage.name.to_string(), entry);
        self.save_lock()
    }

    /// The outputs ferry.lock names (which `gc` keeps).
    pub fn locked_outs(&self) -> Vec<OutRecord> {
        self.lock
            .stages
            .values()
            .flat_map(|s| s.outs.iter().map(|(p, l)| to_record(p, l)))
            .collect()
    }

    /// Every run-cache entry, by fingerprint.
    pub fn run_entries(&self) -> Result<Vec<(Digest, RunCacheEntry)>> {
        Ok(self.cache.run_entries()?)
    }

    /// Removes cached objects and run-cache entries but `keep` and `keep_runs`.
    pub fn gc(&self, keep: &[OutRecord], keep_runs: &[Digest], dry_run: bool) -> Result<GcStats> {
        Ok(self.cache.gc(keep, keep_runs, dry_run)?)
    }

    fn save_lock(&self) -> Result<()> {
        let text = self.lock.render();
        let path = self.project.layout().lock_file();
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        ferry_fs::write_atomic(&path, text.as_bytes())?;
        Ok(())
    }
}
