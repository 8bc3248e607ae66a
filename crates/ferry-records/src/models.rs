//! MLflow 3 logged models and registered models, and the [`ModelStore`]
//! interface over them and the registry's versions.

use crate::{Error, ModelVersion, Result, StoredFiles};
use ferry_core::ExperimentId;
use ferry_search::{Clause, OrderBy};

#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: ExperimentId,
    pub name: String,
    pub artifact_location: String,
    pub creation_ms: i64,
    pub last_updated_ms: i64,
    /// LOGGED_MODEL_PENDING, LOGGED_MODEL_READY, LOGGED_MODEL_UPLOAD_FAILED
    pub status: String,
    pub model_type: String,
    pub source_run_id: Option<String>,
    pub tags: Vec<(String, String)>,
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_ms: i64,
    pub last_updated_ms: i64,
    pub description: String,
    pub tags: Vec<(String, String)>,
    pub aliases: Vec<(String, i64)>,
    pub latest: Option<ModelVersion>,
}

/// The registered model tag naming its protected aliases, comma-separated
/// (`production,staging`; empty: none). Without it, [`DEFAULT_PROTECTED`].
/// Setting or removing it is a maintainer's (MANAGE), as moving a
/// protected alias by hand is.
pub const PROTECTED_ALIASES_TAG: &str = "ferry.protected_aliases";

/// The header a ferry client gives the reason for moving a protected alias
/// in, percent-encoded UTF-8 (the MLflow API has no field for it).
pub const REASON_HEADER: &str = "x-ferry-reason";

/// The aliases protected on a model that does not say otherwise.
pub const DEFAULT_PROTECTED: &[&str] = &["production"];

impl RegisteredModel {
    /// Whether `alias` is protected on this model: it moves only through a
    /// passing deployment or gate, or by a maintainer who gives a reason.
    pub fn protects(&self, alias: &str) -> bool {
        protects(&self.tags, alias)
    }
}

/// Whether `alias` is protected on a model with `tags` (see
/// [`PROTECTED_ALIASES_TAG`]).
pub fn protects(tags: &[(String, String)], alias: &str) -> bool {
    match tags.iter().find(|(k, _)| k == PROTECTED_ALIASES_TAG) {
        Some((_, v)) => v.split(',').map(str::trim).any(|a| a == alias),
        None => DEFAULT_PROTECTED.contains(&alias),
    }
}

/// MLflow models and registry, behind one interface every backend implements.
#[async_trait::async_trait]
pub trait ModelStore: Send + Sync {
    #[allow(clippy::too_many_arguments)]
    async fn create_logged_model(
        &self,
        experiment_id: ExperimentId,
        name: &str,
        model_type: &str,
        source_run_id: Option<&str>,
        params: &[(String, String)],
        tags: &[(String, String)],
        now_ms: i64,
    ) -> Result<LoggedModel>;
    async fn get_logged_model(&self, model_id: &str) -> Result<Option<LoggedModel>>;
    async fn set_logged_model_status(
        &self,
        model_id: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<LoggedModel>;
    async fn set_logged_model_tags(&self, model_id: &str, tags: &[(String, String)]) -> Result<()>;
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()>;
    async fn search_logged_models(
        &self,
        experiment_ids: &[ExperimentId],
        filter: &[Clause],
        order_by: &[OrderBy],
        max_results: i64,
        offset: i64,
    ) -> Result<(Vec<LoggedModel>, bool)>;
    async fn log_run_outputs(&self, run_id: &str, outputs: &[(String, i64)]) -> Result<()>;
    async fn run_outputs(&self, run_id: &str) -> Result<Vec<(String, i64)>>;

    async fn create_registered_model(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
        now_ms: i64,
    ) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, name: &str) -> Result<Option<RegisteredModel>>;
    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
        now_ms: i64,
    ) -> Result<RegisteredModel>;
    async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        now_ms: i64,
    ) -> Result<RegisteredModel>;
    async fn delete_registered_model(&self, name: &str) -> Result<()>;
    async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()>;
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;
    async fn search_registered_models(
        &self,
        filter: &[Clause],
        order_by: &[OrderBy],
        max_results: i64,
        offset: i64,
    ) -> Result<(Vec<RegisteredModel>, bool)>;
    #[allow(clippy::too_many_arguments)]
    async fn create_mlflow_version(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
        description: &str,
        tags: &[(String, String)],
        run_link: &str,
        stored: Option<&StoredFiles>,
        now_ms: i64,
    ) -> Result<ModelVersion>;
    /// The versions whose stored files are at `location` (an
    /// `mlflow-artifacts:/` URI), in a folder above it, or below it: what a
    /// write or delete there would change.
    async fn versions_storing(&self, location: &str) -> Result<Vec<(String, i64)>>;
    async fn update_version_description(
        &self,
        name: &str,
        version: i64,
        description: &str,
        now_ms: i64,
    ) -> Result<ModelVersion>;
    async fn delete_version(&self, name: &str, version: i64) -> Result<()>;
    async fn set_version_tag(&self, name: &str, version: i64, key: &str, value: &str)
    -> Result<()>;
    async fn delete_version_tag(&self, name: &str, version: i64, key: &str) -> Result<()>;
    async fn search_versions(
        &self,
        filter: &[Clause],
        order_by: &[OrderBy],
        max_results: i64,
        offset: i64,
    ) -> Result<(Vec<ModelVersion>, bool)>;
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()>;
}

/// Where a version's files are, as an artifact URI of the store's artifact
/// root (`mlflow-artifacts:/<experiment>/<run>/artifacts/<path>` for a
/// `runs:/` source, the logged model's location for `models:/`); any other
/// source is returned as it is.
pub async fn version_artifact_uri(
    store: &dyn crate::MetadataStore,
    v: &crate::ModelVersion,
) -> Result<String> {
    if let Some(stored) = &v.stored {
        return Ok(stored.location.clone());
    }
    source_location(store, &v.source).await
}

/// Where a version's `source` (`runs:/<run>/<path>`, `models:/<id>` or a
/// URI) keeps its files: the URI it resolves to now.
pub async fn source_location(store: &dyn crate::MetadataStore, source: &str) -> Result<String> {
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        let r = store
            .get_tracked_run(run)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Run with id={run} not found")))?;
        Ok(if path.is_empty() {
            r.info.artifact_uri
        } else {
            format!("{}/{path}", r.info.artifact_uri)
        })
    } else if let Some(id) = source.strip_prefix("models:/") {
        Ok(
            match store.get_logged_model(id.trim_end_matches('/')).await? {
                Some(m) => m.artifact_location,
                None => source.to_owned(),
            },
        )
    } else {
        Ok(source.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_is_protected_unless_the_model_names_its_own() {
        let tags = |v: &str| vec![(PROTECTED_ALIASES_TAG.to_owned(), v.to_owned())];
        assert!(protects(&[], "production"));
        assert!(!protects(&[], "staging"));
        assert!(protects(&tags("production, staging"), "staging"));
        assert!(!protects(&tags("staging"), "production"));
        assert!(!protects(&tags(""), "production"));
    }
}
