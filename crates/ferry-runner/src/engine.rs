//! The one decision procedure `status` and `run` share: hash a stage's
//! inputs, fingerprint them, compare with ferry.lock and the run cache.

use crate::report::Action;
use crate::{Project, Result};
use ferry_cache::{Cache, Hasher, OutRecord, PathDigest, RunCacheEntry, StatIndex};
use ferry_core::Digest;
use ferry_pipeline::{
    Change, DepState, LockFile, LockedPath, StageInputs, StageLock, explain, fingerprint,
};
use ferry_spec::Stage;
use std::collections::{BTreeMap, HashMap};

pub(crate) struct Engine<'p> {
    pub project: &'p Project,
    pub hasher: Hasher,
    pub cache: Cache,
    pub lock: LockFile,
    /// The environment's fingerprint; `None` with an env means not built yet.
    pub env_fp: Option<Digest>,
    pub has_env: bool,
}

pub(crate) struct Verdict {
    pub action: Action,
    pub changes: Vec<Change>,
    pub fingerprint: Digest,
    pub cached: Option<RunCacheEntry>,
}

impl Verdict {
    pub fn reason(&self) -> String {
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
        let lock = match std::fs::read_to_string(project.lock_path()) {
            Ok(text) => LockFile::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockFile::default(),
            Err(e) => {
                return Err(crate::Error::Io {
                    action: "read",
                    path: project.lock_path(),
                    source: e,
                });
            }
        };
        Ok(Self {
            project,
            hasher: Hasher::new(&project.root, StatIndex::load(&project.index_path())),
            cache: Cache::new(&project.cache_dir()),
            lock,
            env_fp: None,
            has_env: project.pipeline.env.is_some(),
        })
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
            });
        }
        if self.has_env && self.env_fp.is_none() {
            return Ok(Verdict {
                action: Action::Run,
                changes: vec![Change::EnvNotBuilt],
                fingerprint: fp,
                cached: None,
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
            });
        }
        Ok(Verdict {
            action: Action::Run,
            changes,
            fingerprint: fp,
            cached: None,
        })
    }

    /// The lock entry for a stage that now has `outs` and `metrics`.
    pub fn lock_entry(
        &self,
        inputs: &StageInputs,
        fp: Digest,
        outs: &[OutRecord],
        metrics: BTreeMap<String, serde_json::Value>,
    ) -> StageLock {
        let outs = outs
            .iter()
            .map(|o| (o.path.clone(), record_to_locked(o)))
            .collect();
        StageLock::new(inputs, fp, outs, metrics)
    }

    pub fn save_lock(&self) -> Result<()> {
        let text = self.lock.render();
        let path = self.project.lock_path();
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        ferry_cache::write_atomic(&path, text.as_bytes())?;
        Ok(())
    }
}
