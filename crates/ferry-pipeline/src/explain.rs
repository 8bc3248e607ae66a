//! Why a stage must run: the difference between what it would run with now
//! and what `ferry.lock` says it last ran with.

use crate::fingerprint::{StageInputs, canonical_json};
use crate::lock::StageLock;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The stage is not in ferry.lock.
    NeverRan,
    Forced,
    CmdChanged,
    DepChanged(String),
    DepAdded(String),
    DepRemoved(String),
    ParamChanged {
        key: String,
        old: serde_json::Value,
        new: serde_json::Value,
    },
    ParamAdded(String, serde_json::Value),
    ParamRemoved(String),
    EnvChanged,
    /// The pipeline's environment has not been built yet.
    EnvNotBuilt,
    OutsChanged,
    /// An upstream stage will run, so this stage's inputs are not known yet.
    UpstreamWillRun(String),
    OutMissing(String),
    OutModified(String),
}

fn short(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => canonical_json(other),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::NeverRan => f.write_str("never ran"),
            Change::Forced => f.write_str("forced"),
            Change::CmdChanged => f.write_str("command changed"),
            Change::DepChanged(p) => write!(f, "dep {p} changed"),
            Change::DepAdded(p) => write!(f, "dep {p} added"),
            Change::DepRemoved(p) => write!(f, "dep {p} removed"),
            Change::ParamChanged { key, old, new } => {
                write!(f, "param {key} {} -> {}", short(old), short(new))
            }
            Change::ParamAdded(k, v) => write!(f, "param {k} added ({})", short(v)),
            Change::ParamRemoved(k) => write!(f, "param {k} removed"),
            Change::EnvChanged => f.write_str("environment changed"),
            Change::EnvNotBuilt => f.write_str("environment not built yet"),
            Change::OutsChanged => f.write_str("outs changed"),
            Change::UpstreamWillRun(s) => write!(f, "upstream stage {s} will run"),
            Change::OutMissing(p) => write!(f, "out {p} missing"),
            Change::OutModified(p) => write!(f, "out {p} modified"),
        }
    }
}

/// The verdict for one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Why the stage's inputs differ from the lock (empty: same inputs).
    pub changes: Vec<Change>,
}

impl Decision {
    pub fn up_to_date(&self) -> bool {
        self.changes.is_empty()
    }
    pub fn reason(&self) -> String {
        self.changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Compares a stage's inputs now with its lock entry. `outs_now` gives the
/// current digest of each declared out (`None` when missing). Deps whose
/// producer will run are passed in `upstream_running`.
pub fn explain(
    inputs: &StageInputs,
    lock: Option<&StageLock>,
    outs_now: &[(String, Option<ferry_core::Digest>)],
    upstream_running: &[String],
) -> Decision {
    let mut changes = Vec::new();
    let Some(lock) = lock else {
        return Decision {
            changes: vec![Change::NeverRan],
        };
    };
    if inputs.cmd != lock.cmd {
        changes.push(Change::CmdChanged);
    }
    for (p, d) in &inputs.deps {
        match lock.deps.get(p) {
            None => changes.push(Change::DepAdded(p.clone())),
            Some(l) if l.digest != d.digest => changes.push(Change::DepChanged(p.clone())),
            Some(_) => {}
        }
    }
    for p in lock.deps.keys() {
        if !inputs.deps.contains_key(p) {
            changes.push(Change::DepRemoved(p.clone()));
        }
    }
    for (k, v) in &inputs.params {
        match lock.params.get(k) {
            None => changes.push(Change::ParamAdded(k.clone(), v.clone())),
            Some(old) if canonical_json(old) != canonical_json(v) => {
                changes.push(Change::ParamChanged {
                    key: k.clone(),
                    old: old.clone(),
                    new: v.clone(),
                })
            }
            Some(_) => {}
        }
    }
    for k in lock.params.keys() {
        if !inputs.params.contains_key(k) {
            changes.push(Change::ParamRemoved(k.clone()));
        }
    }
    if inputs.env != lock.env {
        changes.push(Change::EnvChanged);
    }
    let mut locked_outs: Vec<&String> = lock.outs.keys().collect();
    locked_outs.sort();
    let mut declared: Vec<&String> = inputs.outs.iter().collect();
    declared.sort();
    if locked_outs != declared {
        changes.push(Change::OutsChanged);
    }
    changes.extend(
        upstream_running
            .iter()
            .map(|s| Change::UpstreamWillRun(s.clone())),
    );
    if changes.is_empty() {
        for (p, now) in outs_now {
            match (now, lock.outs.get(p)) {
                (None, _) => changes.push(Change::OutMissing(p.clone())),
                (Some(d), Some(l)) if *d != l.digest => {
                    changes.push(Change::OutModified(p.clone()))
                }
                _ => {}
            }
        }
    }
    Decision { changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{DepState, fingerprint};
    use crate::lock::LockedPath;
    use ferry_core::Digest;
    use std::collections::BTreeMap;

    fn inputs() -> StageInputs {
        StageInputs {
            cmd: "python train.py".into(),
            deps: BTreeMap::from([(
                "train.py".into(),
                DepState {
                    digest: Digest::of(b"a"),
                    size: 1,
                    files: None,
                },
            )]),
            params: BTreeMap::from([("model.C".into(), serde_json::json!(1.0))]),
            env: None,
            outs: vec!["model.onnx".into()],
        }
    }

    fn lock_of(i: &StageInputs) -> StageLock {
        let outs = BTreeMap::from([(
            "model.onnx".into(),
            LockedPath {
                digest: Digest::of(b"m"),
                size: 1,
                files: None,
            },
        )]);
        StageLock::new(i, fingerprint(i), outs, BTreeMap::new())
    }

    #[test]
    fn reasons_read_like_the_docs() {
        let i = inputs();
        let l = lock_of(&i);
        let outs = vec![("model.onnx".to_string(), Some(Digest::of(b"m")))];
        assert!(explain(&i, Some(&l), &outs, &[]).up_to_date());
        assert_eq!(explain(&i, None, &outs, &[]).reason(), "never ran");

        let mut j = inputs();
        j.deps.get_mut("train.py").unwrap().digest = Digest::of(b"b");
        j.params.insert("model.C".into(), serde_json::json!(0.5));
        j.env = Some(Digest::of(b"e"));
        assert_eq!(
            explain(&j, Some(&l), &outs, &[]).reason(),
            "dep train.py changed, param model.C 1.0 -> 0.5, environment changed"
        );
        let missing = vec![("model.onnx".to_string(), None)];
        assert_eq!(
            explain(&i, Some(&l), &missing, &[]).reason(),
            "out model.onnx missing"
        );
        let modified = vec![("model.onnx".to_string(), Some(Digest::of(b"x")))];
        assert_eq!(
            explain(&i, Some(&l), &modified, &[]).reason(),
            "out model.onnx modified"
        );
        assert_eq!(
            explain(&i, Some(&l), &outs, &["prepare".into()]).reason(),
            "upstream stage prepare will run"
        );
    }
}
