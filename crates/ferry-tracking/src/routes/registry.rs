//! The model registry: `registered-models/*` and `model-versions/*`.

use crate::artifacts::check_path;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::wire::{KeyValue, WireModelVersion, WireRegisteredModel, page_token, parse_page_token};
use crate::{AppState, Shared, now_ms};
use axum::extract::State;
use axum::response::Json as Out;
use ferry_metadata::StoredFiles;
use ferry_metadata::lineage_tags;
use ferry_search::Grammar;
use serde::Deserialize;
use serde_json::{Value, json};

fn name_of(n: Option<String>) -> ApiResult<String> {
    let n = n
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::missing("name"))?;
    if n.len() > 256 {
        return Err(ApiError::invalid(
            "Registered model name exceeds the maximum length of 256",
        ));
    }
    // `*` is every model to a grant: no model is named so.
    if n.trim() == "*" {
        return Err(ApiError::invalid("Registered model name `*` is reserved"));
    }
    Ok(n)
}

fn version_of(v: Option<Value>) -> ApiResult<i64> {
    match v {
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ApiError::invalid(format!("Invalid model version '{s}'"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::invalid("Invalid model version")),
        _ => Err(ApiError::missing("version")),
    }
    .and_then(|v| {
        if v >= 1 {
            Ok(v)
        } else {
            Err(ApiError::invalid(format!("Invalid model version '{v}'")))
        }
    })
}

fn pairs(v: Vec<KeyValue>) -> Vec<(String, String)> {
    v.into_iter().map(|t| (t.key, t.value)).collect()
}

/// Sources a client may register: the server's own artifact locations only.
/// Everything is checked for traversal; `file:`, `http:`, cloud URIs and
/// bare paths are refused (CVE-2023-1177 and its bypasses).
fn check_source(source: &str) -> ApiResult<()> {
    let bad = || {
        ApiError::invalid(format!(
            "Invalid model version source: '{source}'. Sources must be runs:/, models:/ or mlflow-artifacts:/ URIs without '..'"
        ))
    };
    if source.contains(['?', '#', '\\']) {
        return Err(bad());
    }
    let rest = if let Some(r) = source.strip_prefix("runs:/") {
        r
    } else if let Some(r) = source.strip_prefix("models:/") {
        r
    } else if let Some(r) = source.strip_prefix("mlflow-artifacts:/") {
        r
    } else {
        return Err(bad());
    };
    check_path(rest, true).map_err(|_| bad())?;
    Ok(())
}

#[derive(Deserialize)]
pub struct Create {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    description: Option<String>,
}

pub async fn create_model(
    State(st): State<Shared>,
    Json(b): Json<Create>,
) -> ApiResult<Out<Value>> {
    let name = name_of(b.name)?;
    let m = st
        .store
        .create_registered_model(
            &name,
            b.description.as_deref().unwrap_or(""),
            &pairs(b.tags),
            now_ms(),
        )
        .await?;
    Ok(Out(
        json!({ "registered_model": WireRegisteredModel::from(&m) }),
    ))
}

#[derive(Deserialize)]
pub struct NameQ {
    name: Option<String>,
}

pub async fn get_model(State(st): State<Shared>, Query(q): Query<NameQ>) -> ApiResult<Out<Value>> {
    let name = name_of(q.name)?;
    let m = st.store.get_registered_model(&name).await?.ok_or_else(|| {
        ApiError::not_found(format!("Registered Model with name={name} not found"))
    })?;
    Ok(Out(
        json!({ "registered_model": WireRegisteredModel::from(&m) }),
    ))
}

#[derive(Deserialize)]
pub struct Update {
    name: Option<String>,
    description: Option<String>,
}

pub async fn update_model(
    State(st): State<Shared>,
    Json(b): Json<Update>,
) -> ApiResult<Out<Value>> {
    let name = name_of(b.name)?;
    let m = st
        .store
        .update_registered_model(&name, b.description.as_deref().unwrap_or(""), now_ms())
        .await?;
    Ok(Out(
        json!({ "registered_model": WireRegisteredModel::from(&m) }),
    ))
}

#[derive(Deserialize)]
pub struct Rename {
    name: Option<String>,
    new_name: Option<String>,
}

pub async fn rename_model(
    State(st): State<Shared>,
    Json(b): Json<Rename>,
) -> ApiResult<Out<Value>> {
    let name = name_of(b.name)?;
    let new_name = name_of(b.new_name)?;
    let m = st
        .store
        .rename_registered_model(&name, &new_name, now_ms())
        .await?;
    Ok(Out(
        json!({ "registered_model": WireRegisteredModel::from(&m) }),
    ))
}

pub async fn delete_model(State(st): State<Shared>, Json(b): Json<NameQ>) -> ApiResult<Out<Value>> {
    st.store.delete_registered_model(&name_of(b.name)?).await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct Tag {
    name: Option<String>,
    version: Option<Value>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_model_tag(State(st): State<Shared>, Json(b): Json<Tag>) -> ApiResult<Out<Value>> {
    let key = b.key.ok_or_else(|| ApiError::missing("key"))?;
    st.store
        .set_registered_model_tag(&name_of(b.name)?, &key, b.value.as_deref().unwrap_or(""))
        .await?;
    Ok(Out(json!({})))
}

pub async fn delete_model_tag(
    State(st): State<Shared>,
    Json(b): Json<Tag>,
) -> ApiResult<Out<Value>> {
    let key = b.key.ok_or_else(|| ApiError::missing("key"))?;
    st.store
        .delete_registered_model_tag(&name_of(b.name)?, &key)
        .await?;
    Ok(Out(json!({})))
}

pub async fn latest_versions(
    State(st): State<Shared>,
    Json(b): Json<NameQ>,
) -> ApiResult<Out<Value>> {
    let name = name_of(b.name)?;
    let m = st.store.get_registered_model(&name).await?.ok_or_else(|| {
        ApiError::not_found(format!("Registered Model with name={name} not found"))
    })?;
    Ok(Out(
        json!({ "model_versions": m.latest.iter().map(WireModelVersion::from).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
pub struct Alias {
    name: Option<String>,
    alias: Option<String>,
    version: Option<Value>,
}

fn alias_of(a: Option<String>) -> ApiResult<String> {
    let a = a
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::missing("alias"))?;
    let lower = a.to_ascii_lowercase();
    if lower == "latest"
        || (lower.starts_with('v')
            && lower[1..].chars().all(|c| c.is_ascii_digit())
            && lower.len() > 1)
    {
        return Err(ApiError::invalid(format!(
            "'{a}' is reserved and cannot be used as an alias"
        )));
    }
    if a.len() > 255
        || !a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ApiError::invalid(format!("Invalid alias '{a}'")));
    }
    Ok(a)
}

pub async fn set_alias(
    State(st): State<Shared>,
    headers: axum::http::HeaderMap,
    Json(b): Json<Alias>,
) -> ApiResult<Out<Value>> {
    let name = name_of(b.name)?;
    let alias = alias_of(b.alias)?;
    let version = version_of(b.version)?;
    // The reason a ferry client gave (a protected alias needs one), else
    // where the move came from.
    let reason = crate::auth::reason_of(&headers);
    st.store
        .set_alias(
            &name,
            &alias,
            version,
            Some(reason.as_deref().unwrap_or("set through the MLflow API")),
            now_ms(),
        )
        .await?;
    Ok(Out(json!({})))
}

pub async fn get_alias(State(st): State<Shared>, Query(q): Query<Alias>) -> ApiResult<Out<Value>> {
    let name = name_of(q.name)?;
    let alias = q.alias.ok_or_else(|| ApiError::missing("alias"))?;
    let v = st
        .store
        .resolve_alias(&name, &alias)
        .await?
        .ok_or_else(|| ApiError::invalid(format!("Registered model alias {alias} not found.")))?;
    Ok(Out(json!({ "model_version": WireModelVersion::from(&v) })))
}

pub async fn delete_alias(State(st): State<Shared>, Json(b): Json<Alias>) -> ApiResult<Out<Value>> {
    let name = name_of(b.name)?;
    let alias = b.alias.ok_or_else(|| ApiError::missing("alias"))?;
    st.store.delete_alias(&name, &alias).await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct SearchQ {
    filter: Option<String>,
    max_results: Option<i64>,
    order_by: Option<String>,
    page_token: Option<String>,
}

fn search_args(
    q: &SearchQ,
    grammar: Grammar,
) -> ApiResult<(
    Vec<ferry_search::Clause>,
    Vec<ferry_search::OrderBy>,
    i64,
    i64,
)> {
    let max = q.max_results.unwrap_or(100);
    let limit = if grammar == Grammar::ModelVersions {
        200_000
    } else {
        1000
    };
    if !(1..=limit).contains(&max) {
        return Err(ApiError::invalid(format!(
            "Invalid value for max_results. It must be at most {limit}, but got value {max}"
        )));
    }
    let filter = ferry_search::parse_filter(q.filter.as_deref().unwrap_or(""), grammar)?;
    let orders: Vec<String> = q
        .order_by
        .iter()
        .filter(|o| !o.is_empty())
        .cloned()
        .collect();
    let order = ferry_search::parse_order_by(&orders, grammar)?;
    Ok((
        filter,
        order,
        max,
        parse_page_token(q.page_token.as_deref())?,
    ))
}

pub async fn search_models(
    State(st): State<Shared>,
    Query(q): Query<SearchQ>,
) -> ApiResult<Out<Value>> {
    let (filter, order, max, offset) = search_args(&q, Grammar::RegisteredModels)?;
    let (models, more) = st
        .store
        .search_registered_models(&filter, &order, max, offset)
        .await?;
    let mut out = json!({ "registered_models": models.iter().map(WireRegisteredModel::from).collect::<Vec<_>>() });
    if more {
        out["next_page_token"] = page_token(offset + max).into();
    }
    Ok(Out(out))
}

#[derive(Deserialize)]
pub struct CreateVersion {
    name: Option<String>,
    model_id: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    run_link: Option<String>,
    description: Option<String>,
}

pub async fn create_version(
    State(st): State<Shared>,
    Json(b): Json<CreateVersion>,
) -> ApiResult<Out<Value>> {
    let name = name_of(b.name)?;
    let source = b
        .source
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("source"))?;
    check_source(&source)?;
    // MLflow 3 sends the logged model; its run is the version's run.
    let mut run_id = b.run_id.filter(|r| !r.is_empty());
    if run_id.is_none()
        && let Some(m) = b.model_id.as_deref().filter(|m| !m.is_empty())
    {
        run_id = st
            .store
            .get_logged_model(m)
            .await?
            .and_then(|m| m.source_run_id);
    }
    let stored = stored_files(&st, &source).await?;
    let mut tags = pairs(b.tags);
    if stored.is_some() && st.artifacts.local_root().is_none() {
        tags.retain(|(k, _)| k != lineage_tags::ARTIFACT_STORE);
        tags.push((lineage_tags::ARTIFACT_STORE.to_owned(), st.artifacts.url()));
    }
    let v = st
        .store
        .create_mlflow_version(
            &name,
            &source,
            run_id.as_deref(),
            b.description.as_deref().unwrap_or(""),
            &tags,
            b.run_link.as_deref().unwrap_or(""),
            stored.as_ref(),
            now_ms(),
        )
        .await?;
    Ok(Out(json!({ "model_version": WireModelVersion::from(&v) })))
}

/// What the registry keeps for a new version of `source`: where its files
/// are under the artifact root and their digest, fixed from now on. `None`
/// for a source that does not resolve under the root (nothing here to keep).
async fn stored_files(st: &AppState, source: &str) -> ApiResult<Option<StoredFiles>> {
    let location = ferry_metadata::source_location(st.store.as_ref(), source).await?;
    let Some(rel) = location.strip_prefix("mlflow-artifacts:/") else {
        return Ok(None);
    };
    let p = check_path(rel, false)?;
    let digest = st
        .artifacts
        .digest(p.as_str())
        .await
        .map_err(crate::artifacts::store_error)?;
    Ok(Some(StoredFiles {
        location: format!("mlflow-artifacts:/{}", p.as_str()),
        digest: digest.to_hex(),
    }))
}

#[derive(Deserialize)]
pub struct VersionQ {
    name: Option<String>,
    version: Option<Value>,
    description: Option<String>,
}

async fn load_version(
    st: &AppState,
    name: &str,
    version: i64,
) -> ApiResult<ferry_metadata::ModelVersion> {
    st.store.get_version(name, version).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Model Version (name={name}, version={version}) not found"
        ))
    })
}

pub async fn get_version(
    State(st): State<Shared>,
    Query(q): Query<VersionQ>,
) -> ApiResult<Out<Value>> {
    let name = name_of(q.name)?;
    let v = load_version(&st, &name, version_of(q.version)?).await?;
    Ok(Out(json!({ "model_version": WireModelVersion::from(&v) })))
}

pub async fn update_version(
    State(st): State<Shared>,
    Json(b): Json<VersionQ>,
) -> ApiResult<Out<Value>> {
    let name = name_of(b.name)?;
    let v = st
        .store
        .update_version_description(
            &name,
            version_of(b.version)?,
            b.description.as_deref().unwrap_or(""),
            now_ms(),
        )
        .await?;
    Ok(Out(json!({ "model_version": WireModelVersion::from(&v) })))
}

pub async fn delete_version(
    State(st): State<Shared>,
    Json(b): Json<VersionQ>,
) -> ApiResult<Out<Value>> {
    st.store
        .delete_version(&name_of(b.name)?, version_of(b.version)?)
        .await?;
    Ok(Out(json!({})))
}

pub async fn set_version_tag(
    State(st): State<Shared>,
    Json(b): Json<Tag>,
) -> ApiResult<Out<Value>> {
    let key = b.key.ok_or_else(|| ApiError::missing("key"))?;
    st.store
        .set_version_tag(
            &name_of(b.name)?,
            version_of(b.version)?,
            &key,
            b.value.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(Out(json!({})))
}

pub async fn delete_version_tag(
    State(st): State<Shared>,
    Json(b): Json<Tag>,
) -> ApiResult<Out<Value>> {
    let key = b.key.ok_or_else(|| ApiError::missing("key"))?;
    st.store
        .delete_version_tag(&name_of(b.name)?, version_of(b.version)?, &key)
        .await?;
    Ok(Out(json!({})))
}

pub async fn search_versions(
    State(st): State<Shared>,
    Query(q): Query<SearchQ>,
) -> ApiResult<Out<Value>> {
    let max_given = q.max_results.is_some();
    let q = SearchQ {
        max_results: if max_given { q.max_results } else { Some(1000) },
        ..q
    };
    let (filter, order, max, offset) = search_args(&q, Grammar::ModelVersions)?;
    let (versions, more) = st
        .store
        .search_versions(&filter, &order, max, offset)
        .await?;
    let mut out = json!({ "model_versions": versions.iter().map(WireModelVersion::from).collect::<Vec<_>>() });
    if more {
        out["next_page_token"] = page_token(offset + max).into();
    }
    Ok(Out(out))
}

/// Where a client downloads a version from: the source, resolved to this
/// server's artifact locations.
pub async fn download_uri(
    State(st): State<Shared>,
    Query(q): Query<VersionQ>,
) -> ApiResult<Out<Value>> {
    let name = name_of(q.name)?;
    let v = load_version(&st, &name, version_of(q.version)?).await?;
    let uri = ferry_metadata::version_artifact_uri(st.store.as_ref(), &v).await?;
    Ok(Out(json!({ "artifact_uri": uri })))
}

#[cfg(test)]
mod tests {
    use super::check_source;

    #[test]
    fn sources_are_confined() {
        for ok in [
            "runs:/0123abcd/model",
            "models:/m-0123",
            "mlflow-artifacts:/1/models/m-1/artifacts",
        ] {
            assert!(check_source(ok).is_ok(), "{ok}");
        }
        for bad in [
            "file:///etc/",
            "file://./etc",
            "/etc/passwd",
            "s3://bucket/x",
            "http:///?/../../../../etc/",
            "http:///#/../../../etc/",
            "runs:/abc/../../../etc",
            "mlflow-artifacts:/../../etc",
            "runs:/abc/..\\..\\etc",
            "models:/m-1/%2e%2e/%2e%2e",
            "dbfs:/",
            "RUNS:/x",
            "",
        ] {
            assert!(check_source(bad).is_err(), "{bad}");
        }
    }
}
