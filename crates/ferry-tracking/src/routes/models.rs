//! MLflow 3 logged models (`/logged-models*`) and `runs/outputs`.

use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::experiments::parse_experiment_id;
use crate::wire::{KeyValue, WireLoggedModel, page_token, parse_page_token};
use crate::{Shared, now_ms};
use axum::extract::{Path, State};
use axum::response::Json as Out;
use ferry_search::{Attr, Entity, Grammar, OrderBy};
use serde::Deserialize;
use serde_json::{Value, json};

fn check_id(id: &str) -> ApiResult<()> {
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::invalid(format!("Invalid model id '{id}'")));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct Create {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(State(st): State<Shared>, Json(b): Json<Create>) -> ApiResult<Out<Value>> {
    let exp = parse_experiment_id(
        &b.experiment_id
            .ok_or_else(|| ApiError::missing("experiment_id"))?,
    )?;
    let name = b
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".into());
    let params: Vec<(String, String)> = b.params.into_iter().map(|p| (p.key, p.value)).collect();
    let tags: Vec<(String, String)> = b.tags.into_iter().map(|t| (t.key, t.value)).collect();
    let m = st
        .store
        .create_logged_model(
            exp,
            &name,
            b.model_type.as_deref().unwrap_or(""),
            b.source_run_id.as_deref().filter(|s| !s.is_empty()),
            &params,
            &tags,
            now_ms(),
        )
        .await?;
    Ok(Out(json!({ "model": WireLoggedModel::from(&m) })))
}

pub async fn get(State(st): State<Shared>, Path(id): Path<String>) -> ApiResult<Out<Value>> {
    check_id(&id)?;
    let m =
        st.store.get_logged_model(&id).await?.ok_or_else(|| {
            ApiError::not_found(format!("Logged model with ID '{id}' not found."))
        })?;
    Ok(Out(json!({ "model": WireLoggedModel::from(&m) })))
}

#[derive(Deserialize)]
pub struct Finalize {
    status: Option<String>,
}

pub async fn finalize(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<Finalize>,
) -> ApiResult<Out<Value>> {
    check_id(&id)?;
    let status = match b.status.as_deref().unwrap_or("LOGGED_MODEL_READY") {
        s @ ("LOGGED_MODEL_READY" | "LOGGED_MODEL_UPLOAD_FAILED" | "LOGGED_MODEL_PENDING") => {
            s.to_owned()
        }
        "READY" => "LOGGED_MODEL_READY".into(),
        "FAILED" => "LOGGED_MODEL_UPLOAD_FAILED".into(),
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid logged model status '{other}'"
            )));
        }
    };
    let m = st
        .store
        .set_logged_model_status(&id, &status, now_ms())
        .await?;
    Ok(Out(json!({ "model": WireLoggedModel::from(&m) })))
}

#[derive(Deserialize)]
pub struct Tags {
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn set_tags(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<Tags>,
) -> ApiResult<Out<Value>> {
    check_id(&id)?;
    let tags: Vec<(String, String)> = b.tags.into_iter().map(|t| (t.key, t.value)).collect();
    st.store.set_logged_model_tags(&id, &tags).await?;
    Ok(Out(json!({})))
}

pub async fn delete_tag(
    State(st): State<Shared>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Out<Value>> {
    check_id(&id)?;
    st.store.delete_logged_model_tag(&id, &key).await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct OrderIn {
    field_name: Option<String>,
    ascending: Option<bool>,
}

#[derive(Deserialize)]
pub struct Search {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<OrderIn>,
    page_token: Option<String>,
}

pub async fn search(State(st): State<Shared>, Json(b): Json<Search>) -> ApiResult<Out<Value>> {
    let max = b.max_results.unwrap_or(100).clamp(1, 10_000);
    let ids = b
        .experiment_ids
        .iter()
        .map(|e| parse_experiment_id(e))
        .collect::<ApiResult<Vec<_>>>()?;
    let filter =
        ferry_search::parse_filter(b.filter.as_deref().unwrap_or(""), Grammar::LoggedModels)?;
    let mut order = Vec::new();
    for o in b.order_by {
        let field = o.field_name.unwrap_or_default();
        let entity = match field.as_str() {
            "creation_timestamp" | "creation_time" => Entity::Attribute(Attr::CreationTime),
            "last_updated_timestamp" => Entity::Attribute(Attr::LastUpdatedTime),
            "name" => Entity::Attribute(Attr::Name),
            "model_id" => Entity::Attribute(Attr::ModelId),
            other => {
                return Err(ApiError::invalid(format!(
                    "Invalid order_by field '{other}'"
                )));
            }
        };
        order.push(OrderBy {
            entity,
            ascending: o.ascending.unwrap_or(true),
        });
    }
    let offset = parse_page_token(b.page_token.as_deref())?;
    let (models, more) = st
        .store
        .search_logged_models(&ids, &filter, &order, max, offset)
        .await?;
    let mut out = json!({ "models": models.iter().map(WireLoggedModel::from).collect::<Vec<_>>() });
    if more {
        out["next_page_token"] = page_token(offset + max).into();
    }
    Ok(Out(out))
}

#[derive(Deserialize)]
pub struct ModelOutput {
    model_id: String,
    step: Option<Value>,
}

#[derive(Deserialize)]
pub struct Outputs {
    run_id: Option<String>,
    #[serde(default)]
    models: Vec<ModelOutput>,
}

pub async fn run_outputs(
    State(st): State<Shared>,
    Json(b): Json<Outputs>,
) -> ApiResult<Out<Value>> {
    let run = b.run_id.ok_or_else(|| ApiError::missing("run_id"))?;
    if st.store.get_tracked_run(&run).await?.is_none() {
        return Err(ApiError::not_found(format!("Run with id={run} not found")));
    }
    let mut outs = Vec::new();
    for m in b.models {
        check_id(&m.model_id)?;
        let step = match m.step {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            _ => 0,
        };
        outs.push((m.model_id, step));
    }
    st.store.log_run_outputs(&run, &outs).await?;
    Ok(Out(json!({})))
}
