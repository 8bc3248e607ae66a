//! `ferry.lock`: what each stage last ran with and produced. Deterministic,
//! human-diffable YAML, meant to be committed.

use ferry_core::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const LOCK_SCHEMA: u32 = 1;

const HEADER: &str = "# ferry.lock: written by `ferry run`; commit it with your code.\n# It records what every stage ran with and produced. Do not edit by hand.\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPath {
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageLock {
    pub cmd: String,
    pub fingerprint: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Digest>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deps: BTreeMap<String, LockedPath>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outs: BTreeMap<String, LockedPath>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, serde_json::Value>,
}

impl From<crate::DepState> for LockedPath {
    fn from(d: crate::DepState) -> Self {
        Self {
            digest: d.digest,
            size: d.size,
            files: d.files,
        }
    }
}

impl From<LockedPath> for crate::DepState {
    fn from(l: LockedPath) -> Self {
        Self {
            digest: l.digest,
            size: l.size,
            files: l.files,
        }
    }
}

impl StageLock {
    /// The entry for a stage that ran (or was restored) with `inputs`,
    /// fingerprint `fingerprint`, and now has `outs` and `metrics`.
    pub fn new(
        inputs: &crate::StageInputs,
        fingerprint: Digest,
        outs: BTreeMap<String, LockedPath>,
        metrics: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        Self {
            cmd: inputs.cmd.clone(),
            fingerprint,
            env: inputs.env,
            deps: inputs
                .deps
                .iter()
                .map(|(k, d)| (k.clone(), LockedPath::from(*d)))
                .collect(),
            params: inputs.params.clone(),
            outs,
            metrics,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub schema: u32,
    #[serde(default)]
    pub stages: BTreeMap<String, StageLock>,
}

impl Default for LockFile {
    fn default() -> Self {
        Self {
            schema: LOCK_SCHEMA,
            stages: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("ferry.lock is not valid: {0}")]
    Parse(String),
    #[error("ferry.lock has schema {0}; this ferry reads schema {LOCK_SCHEMA}: upgrade ferry")]
    Schema(u32),
}

impl LockFile {
    pub fn parse(text: &str) -> Result<Self, LockError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let lock: LockFile = serde_saphyr::from_str(text).map_err(|e| {
            LockError::Parse(
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .to_owned(),
            )
        })?;
        if lock.schema != LOCK_SCHEMA {
            return Err(LockError::Schema(lock.schema));
        }
        Ok(lock)
    }

    pub fn render(&self) -> String {
        let body = serde_saphyr::to_string(self).unwrap_or_default();
        format!("{HEADER}{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_deterministically_and_round_trips() {
        let p = LockedPath {
            digest: Digest::of(b"x"),
            size: 3,
            files: None,
        };
        let mut lock = LockFile::default();
        lock.stages.insert(
            "train".into(),
            StageLock {
                cmd: "python train.py --c 1.0".into(),
                fingerprint: Digest::of(b"fp"),
                env: Some(Digest::of(b"env")),
                deps: BTreeMap::from([
                    ("train.py".into(), p),
                    (
                        "data".into(),
                        LockedPath {
                            files: Some(2),
                            ..p
                        },
                    ),
                ]),
                params: BTreeMap::from([
                    ("model.C".into(), serde_json::json!(1.0)),
                    ("name".into(), serde_json::json!("a: b")),
                ]),
                outs: BTreeMap::from([("model.onnx".into(), p)]),
                metrics: BTreeMap::from([("accuracy".into(), serde_json::json!(0.95))]),
            },
        );
        let text = lock.render();
        assert_eq!(text, lock.render());
        insta::assert_snapshot!(text);
        assert_eq!(LockFile::parse(&text).unwrap(), lock);
    }

    #[test]
    fn bad_lock_files_are_errors_not_panics() {
        assert!(matches!(
            LockFile::parse("schema: 99\n"),
            Err(LockError::Schema(99))
        ));
        assert!(LockFile::parse("schema: 1\nstages: {a: {cmd: x}}\n").is_err());
        assert!(LockFile::parse("[[[").is_err());
        assert_eq!(LockFile::parse("").unwrap(), LockFile::default());
    }
}
