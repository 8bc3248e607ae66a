//! A stage's fingerprint: a versioned, stable encoding of everything that
//! determines its outputs.

use ferry_core::{Digest, StableHasher};
use std::collections::BTreeMap;

/// The state of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepState {
    pub digest: Digest,
    pub size: u64,
    /// Number of files if a folder.
    pub files: Option<u64>,
}

/// Everything that goes into a stage fingerprint, resolved to values.
#[derive(Debug, Clone, PartialEq)]
pub struct StageInputs {
    pub cmd: String,
    /// Dependencies by path (sorted by the map). Upstream outputs are deps.
    pub deps: BTreeMap<String, DepState>,
    pub params: BTreeMap<String, serde_json::Value>,
    /// The environment's fingerprint, if the pipeline has one.
    pub env: Option<Digest>,
    /// Declared outs (sorted), so that changing them reruns the stage.
    pub outs: Vec<String>,
}

/// JSON with object keys sorted, so equal values encode equally.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&String, serde_json::Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

/// The fingerprint of a stage: its outputs are a function of it.
pub fn fingerprint(i: &StageInputs) -> Digest {
    let mut h = StableHasher::new("ferry.stage.v1");
    h.str(&i.cmd);
    h.list(i.deps.len());
    for (path, d) in &i.deps {
        h.str(path).digest(&d.digest);
    }
    h.list(i.params.len());
    for (k, v) in &i.params {
        h.str(k).str(&canonical_json(v));
    }
    match &i.env {
        Some(e) => h.u64(1).digest(e),
        None => h.u64(0),
    };
    let mut outs = i.outs.clone();
    outs.sort();
    h.list(outs.len());
    for o in &outs {
        h.str(o);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> StageInputs {
        StageInputs {
            cmd: "python train.py".into(),
            deps: BTreeMap::from([(
                "train.py".into(),
                DepState {
                    digest: Digest::of(b"code"),
                    size: 4,
                    files: None,
                },
            )]),
            params: BTreeMap::from([("model".into(), serde_json::json!({"b": 1, "a": 2.5}))]),
            env: Some(Digest::of(b"env")),
            outs: vec!["model.onnx".into()],
        }
    }

    #[test]
    fn every_input_moves_the_fingerprint() {
        let base = fingerprint(&inputs());
        let mut i = inputs();
        i.cmd.push(' ');
        assert_ne!(fingerprint(&i), base);
        let mut i = inputs();
        i.deps.get_mut("train.py").unwrap().digest = Digest::of(b"code2");
        assert_ne!(fingerprint(&i), base);
        let mut i = inputs();
        i.params
            .insert("model".into(), serde_json::json!({"b": 1, "a": 2.6}));
        assert_ne!(fingerprint(&i), base);
        let mut i = inputs();
        i.env = Some(Digest::of(b"env2"));
        assert_ne!(fingerprint(&i), base);
        let mut i = inputs();
        i.env = None;
        assert_ne!(fingerprint(&i), base);
        let mut i = inputs();
        i.outs.push("x".into());
        assert_ne!(fingerprint(&i), base);
        // Key order inside a param value does not matter; the size of a dep
        // is not content.
        let mut i = inputs();
        i.params
            .insert("model".into(), serde_json::json!({"a": 2.5, "b": 1}));
        i.deps.get_mut("train.py").unwrap().size = 99;
        assert_eq!(fingerprint(&i), base);
    }

    #[test]
    fn encoding_is_pinned() {
        // If this changes, every user's cache is invalidated: bump the
        // domain's version on purpose, never by accident.
        assert_eq!(fingerprint(&inputs()).short(16), "8221aaa81989d6f2");
    }
}
