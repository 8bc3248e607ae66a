//! `ferry reproduce`: what differs between a registered version and the one
//! the same commit, data and environment build again. The comparison is
//! pure; the CLI checks the commit out, brings the data and runs.

use ferry_metadata::ModelVersion;

/// One way the rebuilt version differs from the recorded one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// `data` (an input file), `package`, `python`, `platform`, `param`.
    pub kind: &'static str,
    pub name: String,
    pub recorded: Option<String>,
    pub now: Option<String>,
}

/// What a reproduction found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reproduction {
    pub model: String,
    pub version: i64,
    pub identical: bool,
    pub recorded_digest: String,
    pub produced_digest: Option<String>,
    /// Every input, package or setting that differs, in that order.
    pub differences: Vec<Difference>,
}

/// Compares the `recorded` version with the one rebuilt (`produced`: none
/// when the rebuild registered nothing; then its artifact's digest).
pub fn compare(
    recorded: &ModelVersion,
    produced: Option<&ModelVersion>,
    produced_digest: Option<String>,
) -> Reproduction {
    let mut differences = Vec::new();
    if let Some(p) = produced {
        differ_maps(
            &mut differences,
            "data",
            &recorded.lineage["data"],
            &p.lineage["data"],
        );
        differ_maps(
            &mut differences,
            "param",
            &recorded.lineage["params"],
            &p.lineage["params"],
        );
        let (re, pe) = (&recorded.lineage["environment"], &p.lineage["environment"]);
        for key in ["python", "platform"] {
            let (a, b) = (re[key].as_str(), pe[key].as_str());
            if a != b {
                differences.push(Difference {
                    kind: if key == "python" {
                        "python"
                    } else {
                        "platform"
                    },
                    name: key.into(),
                    recorded: a.map(str::to_owned),
                    now: b.map(str::to_owned),
                });
            }
        }
        differ_packages(&mut differences, &re["packages"], &pe["packages"]);
    }
    let produced_digest = produced_digest.or_else(|| produced.map(|p| p.artifact_digest.clone()));
    Reproduction {
        model: recorded.model.clone(),
        version: recorded.version,
        identical: produced_digest.as_deref() == Some(recorded.artifact_digest.as_str()),
        recorded_digest: recorded.artifact_digest.clone(),
        produced_digest,
        differences,
    }
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn differ_maps(
    out: &mut Vec<Difference>,
    kind: &'static str,
    a: &serde_json::Value,
    b: &serde_json::Value,
) {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            out.push(Difference {
                kind,
                name: k.clone(),
                recorded: x.map(text),
                now: y.map(text),
            });
        }
    }
}

/// `name==version` lists, compared by name.
fn differ_packages(out: &mut Vec<Difference>, a: &serde_json::Value, b: &serde_json::Value) {
    let split = |v: &serde_json::Value| -> std::collections::BTreeMap<String, String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .map(|p| match p.split_once("==") {
                Some((n, v)) => (n.to_ascii_lowercase(), v.to_owned()),
                None => (p.to_ascii_lowercase(), String::new()),
            })
            .collect()
    };
    let (a, b) = (split(a), split(b));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    for n in names {
        if a.get(n) != b.get(n) {
            out.push(Difference {
                kind: "package",
                name: n.clone(),
                recorded: a.get(n).cloned(),
                now: b.get(n).cloned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(digest: &str, lineage: serde_json::Value) -> ModelVersion {
        ModelVersion {
            model: "m".into(),
            version: 1,
            artifact_digest: digest.into(),
            lineage,
            ..ModelVersion::default()
        }
    }

    #[test]
    fn identical_when_the_digests_match_and_every_difference_is_named() {
        let a = version(
            "aa",
            serde_json::json!({"data": {"d.csv": "1", "t.py": "2"}, "params": {"C": 1.0},
                "environment": {"python": "3.11.7", "platform": "linux", "packages": ["numpy==2.0", "sk==1"]}}),
        );
        let same = compare(&a, Some(&a), None);
        assert!(same.identical && same.differences.is_empty());
        let b = version(
            "bb",
            serde_json::json!({"data": {"d.csv": "9", "t.py": "2"}, "params": {"C": 1.0},
                "environment": {"python": "3.11.7", "platform": "linux", "packages": ["numpy==2.1", "sk==1", "new==1"]}}),
        );
        let r = compare(&a, Some(&b), None);
        assert!(!r.identical);
        let named: Vec<(&str, &str)> = r
            .differences
            .iter()
            .map(|d| (d.kind, d.name.as_str()))
            .collect();
        assert_eq!(
            named,
            vec![("data", "d.csv"), ("package", "new"), ("package", "numpy")]
        );
        let none = compare(&a, None, Some("aa".into()));
        assert!(none.identical, "the artifact's digest alone decides");
    }
}
