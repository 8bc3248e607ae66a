//! Registered model versions as the store keeps them, their aliases, and
//! the tags that carry a version's lineage through the MLflow API.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct NewModelVersion {
    pub model: String,
    pub run_id: Option<String>,
    pub artifact_path: String,
    pub artifact_digest: String,
    pub artifact_size: i64,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub env_fingerprint: Option<String>,
    /// Data hashes, params and metrics the version was built from.
    pub lineage: serde_json::Value,
    pub created_ms: i64,
    pub alias: Option<String>,
    /// Where clients download it from (an MLflow URI); by default the cache.
    pub source: Option<String>,
    /// Its files as stored when it is registered (see [`StoredFiles`]).
    pub stored: Option<StoredFiles>,
}

/// What the registry keeps for a version, fixed at registration: where its
/// files are (`mlflow-artifacts:/...`, under the artifact root) and the
/// digest of those files (`ferry_cache::stored_digest`). Writes there are
/// refused from then on, and every load checks the digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFiles {
    pub location: String,
    pub digest: String,
}

/// A registered version. `Default` is an empty one, for tests and builders.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelVersion {
    pub model: String,
    pub version: i64,
    pub run_id: Option<String>,
    pub artifact_path: String,
    pub artifact_digest: String,
    pub artifact_size: i64,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub env_fingerprint: Option<String>,
    pub lineage: serde_json::Value,
    pub created_ms: i64,
    pub status: String,
    pub aliases: Vec<String>,
    pub source: String,
    pub description: String,
    pub last_updated_ms: i64,
    pub tags: Vec<(String, String)>,
    /// `None` for versions registered before ferry recorded it, or whose
    /// files were not under the artifact root.
    pub stored: Option<StoredFiles>,
}

/// The version tag that marks a version rejected, with the reason as its
/// value: a rollout rolled it back or someone aborted it. A rejected
/// version is never re-pointed by an unchanged run and is deployed again
/// only when asked explicitly.
pub const REJECTED_TAG: &str = "ferry.rejected";

impl ModelVersion {
    /// Why the version was rejected, if it was (see [`REJECTED_TAG`]).
    pub fn rejected(&self) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == REJECTED_TAG)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub name: String,
    pub created_ms: i64,
    pub latest_version: Option<i64>,
    pub versions: i64,
    pub aliases: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AliasEvent {
    pub model: String,
    pub alias: String,
    pub version: Option<i64>,
    pub previous: Option<i64>,
    pub changed_ms: i64,
    pub reason: Option<String>,
}

/// Tags that carry a version's lineage through the MLflow API, which has no
/// fields for it: `ferry run --server` sends them with the version, the store
/// lifts them into the version's own columns, and remote readers fill a
/// [`ModelVersion`] back from them.
pub mod lineage_tags {
    use super::{ModelVersion, NewModelVersion};

    pub const ARTIFACT_PATH: &str = "ferry.artifact_path";
    pub const ARTIFACT_DIGEST: &str = "ferry.artifact_digest";
    pub const ARTIFACT_SIZE: &str = "ferry.artifact_size";
    pub const GIT_COMMIT: &str = "ferry.git_commit";
    pub const GIT_DIRTY: &str = "ferry.git_dirty";
    pub const ENV: &str = "ferry.env_fingerprint";
    pub const LINEAGE: &str = "ferry.lineage";
    /// Where a version's files are kept when not in the server's own folder
    /// (`s3://bucket/prefix`): set by `ferry server` at registration, with
    /// the digest it recorded, and checked by `ferry serve`.
    pub const ARTIFACT_STORE: &str = "ferry.artifact_store";

    /// Whether `key` is one of the lineage tags (shown as lineage, not as a tag).
    pub fn is_lineage(key: &str) -> bool {
        [
            ARTIFACT_PATH,
            ARTIFACT_DIGEST,
            ARTIFACT_SIZE,
            GIT_COMMIT,
            GIT_DIRTY,
            ENV,
            LINEAGE,
            ARTIFACT_STORE,
        ]
        .contains(&key)
    }

    /// The tags for `nv` (absent values are left out).
    pub fn of(nv: &NewModelVersion) -> Vec<(String, String)> {
        let mut t = vec![
            (ARTIFACT_PATH.to_owned(), nv.artifact_path.clone()),
            (ARTIFACT_DIGEST.to_owned(), nv.artifact_digest.clone()),
            (ARTIFACT_SIZE.to_owned(), nv.artifact_size.to_string()),
            (LINEAGE.to_owned(), nv.lineage.to_string()),
        ];
        if let Some(c) = &nv.git_commit {
            t.push((GIT_COMMIT.to_owned(), c.clone()));
        }
        if let Some(d) = nv.git_dirty {
            t.push((GIT_DIRTY.to_owned(), d.to_string()));
        }
        if let Some(e) = &nv.env_fingerprint {
            t.push((ENV.to_owned(), e.clone()));
        }
        t
    }

    /// Lineage read back from `tags`; fields without a tag are unchanged.
    /// A malformed value (a size that is not a number, lineage that is not
    /// JSON) is ignored: tags are user-editable.
    pub fn apply(v: &mut ModelVersion, tags: &[(String, String)]) {
        for (k, val) in tags {
            match k.as_str() {
                ARTIFACT_PATH => v.artifact_path = val.clone(),
                ARTIFACT_DIGEST => v.artifact_digest = val.clone(),
                ARTIFACT_SIZE => {
                    if let Ok(n) = val.parse() {
                        v.artifact_size = n;
                    }
                }
                GIT_COMMIT => v.git_commit = Some(val.clone()),
                GIT_DIRTY => v.git_dirty = val.parse().ok(),
                ENV => v.env_fingerprint = Some(val.clone()),
                LINEAGE => {
                    if let Ok(l) = serde_json::from_str(val) {
                        v.lineage = l;
                    }
                }
                _ => {}
            }
        }
    }
}
