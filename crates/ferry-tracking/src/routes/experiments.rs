//! `/api/2.0/mlflow/experiments/*`

use crate::artifacts::check_path;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::wire::{KeyValue, WireExperiment, page_token, parse_page_token};
use crate::{AppState, Shared, now_ms};
use axum::extract::State;
use axum::response::Json as Out;
use ferry_core::ExperimentId;
use ferry_metadata::ViewType;
use serde::Deserialize;
use serde_json::{Value, json};

/// An experiment id as a request gives it (a string, spaces around it
/// allowed), parsed here once; anything else is MLflow's 400
/// `INVALID_PARAMETER_VALUE`, in its words.
pub fn parse_experiment_id(s: &str) -> ApiResult<ExperimentId> {
    s.trim()
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid experiment ID: '{s}'")))
}

pub fn view_type(s: Option<&str>) -> ApiResult<ViewType> {
    match s.unwrap_or("ACTIVE_ONLY") {
        "ACTIVE_ONLY" | "1" => Ok(ViewType::ActiveOnly),
        "DELETED_ONLY" | "2" => Ok(ViewType::DeletedOnly),
        "ALL" | "3" => Ok(ViewType::All),
        other => Err(ApiError::invalid(format!("Invalid view_type '{other}'"))),
    }
}

const MAX_NAME: usize = 500;

#[derive(Deserialize)]
pub struct Create {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(State(st): State<Shared>, Json(b): Json<Create>) -> ApiResult<Out<Value>> {
    let name = b
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::missing("name"))?;
    if name.len() > MAX_NAME {
        return Err(ApiError::invalid(format!(
            "Experiment name exceeds the maximum length of {MAX_NAME}"
        )));
    }
    let location = match b.artifact_location.as_deref().filter(|l| !l.is_empty()) {
        Some(loc) => Some(artifact_location(&st, loc).await?),
        None => None,
    };
    let tags: Vec<(String, String)> = b.tags.into_iter().map(|t| (t.key, t.value)).collect();
    let id = st
        .store
        .create_experiment(&name, location.as_deref(), &tags, now_ms())
        .await?;
    Ok(Out(json!({ "experiment_id": id.to_string() })))
}

/// A client's `artifact_location`, accepted only as a folder under this
/// server's artifact root (`mlflow-artifacts:/<path>`, the form the client
/// itself uses), checked like every client path, resolved with symlinks
/// followed and not inside a run's or logged model's artifact folder. Any
/// other scheme or path is refused with the reason.
async fn artifact_location(st: &AppState, loc: &str) -> ApiResult<String> {
    let refuse =
        |why: &str| ApiError::invalid(format!("artifact_location '{loc}' is not allowed: {why}"));
    let Some(rest) = loc.strip_prefix("mlflow-artifacts:") else {
        return Err(refuse(
            "ferry server stores artifacts under its own root; give `mlflow-artifacts:/<path>` or leave it out",
        ));
    };
    let Some(rel) = rest.strip_prefix('/').filter(|r| !r.starts_with('/')) else {
        return Err(refuse(
            "only `mlflow-artifacts:/<path>` (this server, no host) is served here",
        ));
    };
    let p = check_path(rel, false).map_err(|_| {
        refuse("the path must stay under the artifact root (no `..`, `.`, empty segments, absolute paths, backslashes, `%` or control characters)")
    })?;
    if p.is_root() {
        return Err(refuse(
            "it names the artifact root itself; give a folder under it",
        ));
    }
    st.artifacts
        .check(p.as_str())
        .await
        .map_err(|_| refuse("it leads outside the artifact root"))?;
    if crate::routes::artifacts::in_owned_folder(st, &p).await? {
        return Err(refuse(
            "it is inside a run's or a logged model's artifact folder",
        ));
    }
    Ok(format!("mlflow-artifacts:/{}", p.as_str()))
}

#[derive(Deserialize)]
pub struct GetQ {
    experiment_id: Option<String>,
}

pub async fn get(State(st): State<Shared>, Query(q): Query<GetQ>) -> ApiResult<Out<Value>> {
    let raw = q
        .experiment_id
        .ok_or_else(|| ApiError::missing("experiment_id"))?;
    let id = parse_experiment_id(&raw)?;
    let e = st
        .store
        .get_experiment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No Experiment with id={id} exists")))?;
    Ok(Out(json!({ "experiment": WireExperiment::from(&e) })))
}

#[derive(Deserialize)]
pub struct ByNameQ {
    experiment_name: Option<String>,
}

pub async fn get_by_name(
    State(st): State<Shared>,
    Query(q): Query<ByNameQ>,
) -> ApiResult<Out<Value>> {
    let name = q
        .experiment_name
        .ok_or_else(|| ApiError::missing("experiment_name"))?;
    let e = st
        .store
        .get_experiment_by_name(&name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("Could not find experiment with name '{name}'"))
        })?;
    Ok(Out(json!({ "experiment": WireExperiment::from(&e) })))
}

#[derive(Deserialize)]
pub struct Search {
    max_results: Option<i64>,
    filter: Option<String>,
    view_type: Option<String>,
    page_token: Option<String>,
    order_by: Option<OrderByIn>,
}

/// `order_by`: a JSON list (POST) or one query value (GET).
#[derive(Deserialize)]
#[serde(untagged)]
enum OrderByIn {
    One(String),
    Many(Vec<String>),
}

impl OrderByIn {
    fn items(self) -> Vec<String> {
        match self {
            OrderByIn::One(s) => vec![s],
            OrderByIn::Many(v) => v,
        }
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect()
    }
}

pub async fn search(State(st): State<Shared>, Json(b): Json<Search>) -> ApiResult<Out<Value>> {
    search_with(st, b).await
}

/// `GET experiments/search?max_results=...`: MLflow serves the search on
/// both methods (readiness probes use GET).
pub async fn search_get(
    State(st): State<Shared>,
    Query(b): Query<Search>,
) -> ApiResult<Out<Value>> {
    search_with(st, b).await
}

async fn search_with(st: Shared, b: Search) -> ApiResult<Out<Value>> {
    let max = b.max_results.unwrap_or(1000);
    if !(1..=50_000).contains(&max) {
        return Err(ApiError::invalid(format!(
            "Invalid value {max} for parameter 'max_results' supplied. It must be at most 50000 and positive"
        )));
    }
    let filter = ferry_search::parse_filter(
        b.filter.as_deref().unwrap_or(""),
        ferry_search::Grammar::Experiments,
    )?;
    let order_by = ferry_search::parse_order_by(
        &b.order_by.map(OrderByIn::items).unwrap_or_default(),
        ferry_search::Grammar::Experiments,
    )?;
    let offset = parse_page_token(b.page_token.as_deref())?;
    let view = view_type(b.view_type.as_deref())?;
    let mut found = st
        .store
        .search_experiments(view, &filter, &order_by, max + 1, offset)
        .await?;
    let more = found.len() as i64 > max;
    found.truncate(max as usize);
    let mut out =
        json!({ "experiments": found.iter().map(WireExperiment::from).collect::<Vec<_>>() });
    if more {
        out["next_page_token"] = page_token(offset + max).into();
    }
    Ok(Out(out))
}

#[derive(Deserialize)]
pub struct Update {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

pub async fn update(State(st): State<Shared>, Json(b): Json<Update>) -> ApiResult<Out<Value>> {
    let id = parse_experiment_id(
        &b.experiment_id
            .ok_or_else(|| ApiError::missing("experiment_id"))?,
    )?;
    let name = b
        .new_name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::missing("new_name"))?;
    st.store
        .rename_experiment(id, &name, now_ms())
        .await
        .map_err(|e| match e {
            ferry_metadata::Error::AlreadyExists(m) => ApiError::bad_request(m),
            other => other.into(),
        })?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct Tag {
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_tag(State(st): State<Shared>, Json(b): Json<Tag>) -> ApiResult<Out<Value>> {
    let id = parse_experiment_id(
        &b.experiment_id
            .ok_or_else(|| ApiError::missing("experiment_id"))?,
    )?;
    let key = b.key.ok_or_else(|| ApiError::missing("key"))?;
    st.store
        .set_experiment_tag(id, &key, &b.value.unwrap_or_default())
        .await?;
    Ok(Out(json!({})))
}

pub async fn delete_tag(State(st): State<Shared>, Json(b): Json<Tag>) -> ApiResult<Out<Value>> {
    let id = parse_experiment_id(
        &b.experiment_id
            .ok_or_else(|| ApiError::missing("experiment_id"))?,
    )?;
    let key = b.key.ok_or_else(|| ApiError::missing("key"))?;
    st.store.delete_experiment_tag(id, &key).await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct IdOnly {
    experiment_id: Option<String>,
}

pub async fn delete(State(st): State<Shared>, Json(b): Json<IdOnly>) -> ApiResult<Out<Value>> {
    let id = parse_experiment_id(
        &b.experiment_id
            .ok_or_else(|| ApiError::missing("experiment_id"))?,
    )?;
    st.store.set_experiment_stage(id, true, now_ms()).await?;
    Ok(Out(json!({})))
}

pub async fn restore(State(st): State<Shared>, Json(b): Json<IdOnly>) -> ApiResult<Out<Value>> {
    let id = parse_experiment_id(
        &b.experiment_id
            .ok_or_else(|| ApiError::missing("experiment_id"))?,
    )?;
    st.store.set_experiment_stage(id, false, now_ms()).await?;
    Ok(Out(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_ids_are_parsed_at_the_edge() {
        assert_eq!(parse_experiment_id("12").ok(), ExperimentId::new(12));
        assert_eq!(parse_experiment_id(" 0 ").ok(), Some(ExperimentId::DEFAULT));
        for bad in ["", "x", "-1", "1.5", "99999999999999999999"] {
            let e = parse_experiment_id(bad).err().map(|e| (e.code, e.message));
            let refused = (
                crate::error::Code::InvalidParameterValue,
                format!("Invalid experiment ID: '{bad}'"),
            );
            assert_eq!(e, Some(refused));
        }
    }
}
