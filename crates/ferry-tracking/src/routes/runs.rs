//! `/api/2.0/mlflow/runs/*` and `metrics/get-history`.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::routes::experiments::{parse_experiment_id, view_type};
use crate::wire::{KeyValue, WireDatasetInput, WireRun, WireRunInfo, page_token, parse_page_token};
use crate::{Shared, now_ms};
use axum::extract::State;
use axum::response::Json as Out;
use ferry_core::ExperimentId;
use ferry_metadata::{Dataset, DatasetInput, Metric, RunQuery};
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_KEY: usize = 250;
const MAX_PARAM_VALUE: usize = 6000;
const MAX_TAG_VALUE: usize = 8000;
const MAX_RUN_ID: usize = 64;

fn check_key(kind: &str, key: &str) -> ApiResult<()> {
    if key.is_empty() {
        return Err(ApiError::invalid(format!(
            "Missing value for required parameter 'key' of {kind}"
        )));
    }
    if key.len() > MAX_KEY {
        return Err(ApiError::invalid(format!(
            "{kind} name '{}…' exceeds the maximum length of {MAX_KEY}",
            &key[..20.min(key.len())]
        )));
    }
    if key.starts_with('/') || key.split('/').any(|p| p == ".." || p == ".") {
        return Err(ApiError::invalid(format!(
            "Invalid {kind} name: '{key}'. Names may not be absolute or contain '..' or '.' segments"
        )));
    }
    Ok(())
}

fn run_id(run_id: Option<String>, run_uuid: Option<String>) -> ApiResult<String> {
    let id = run_id
        .or(run_uuid)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("run_id"))?;
    if id.len() > MAX_RUN_ID {
        return Err(ApiError::invalid("Invalid run id"));
    }
    Ok(id)
}

/// A metric value as proto-JSON sends it: a number, or "NaN", "Infinity".
fn metric_value(v: &Value) -> ApiResult<f64> {
    let x = match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| ApiError::invalid("Invalid metric value"))?,
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => f64::NAN,
            "Infinity" | "inf" => f64::INFINITY,
            "-Infinity" | "-inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .map_err(|_| ApiError::invalid(format!("Invalid metric value '{other}'")))?,
        },
        _ => return Err(ApiError::missing("value")),
    };
    Ok(x)
}

fn int(v: &Option<Value>, default: i64) -> ApiResult<i64> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::invalid("Expected an integer")),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ApiError::invalid(format!("Expected an integer, got '{s}'"))),
        Some(_) => Err(ApiError::invalid("Expected an integer")),
    }
}

const ADJECTIVES: &[&str] = &[
    "bright", "calm", "bold", "clever", "gentle", "keen", "lucid", "merry", "nimble", "quiet",
    "rapid", "sunny", "swift", "vivid", "wise",
];
const NOUNS: &[&str] = &[
    "ferry", "harbor", "river", "delta", "tide", "current", "pier", "canal", "lagoon", "reef",
    "shoal", "strait", "wave", "wharf", "buoy",
];

fn random_run_name(id: &str) -> String {
    let b = id.as_bytes();
    let n = |i: usize| b.get(i).copied().unwrap_or(0) as usize;
    format!(
        "{}-{}-{}",
        ADJECTIVES[n(0) % ADJECTIVES.len()],
        NOUNS[n(1) % NOUNS.len()],
        n(2) * 7 % 1000
    )
}

#[derive(Deserialize)]
pub struct Create {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    start_time: Option<Value>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(
    State(st): State<Shared>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Json(b): Json<Create>,
) -> ApiResult<Out<Value>> {
    // None given: MLflow's Default experiment.
    let exp = match b.experiment_id.as_deref() {
        Some(id) => parse_experiment_id(id)?,
        None => ExperimentId::DEFAULT,
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut tags: Vec<(String, String)> = Vec::with_capacity(b.tags.len());
    for t in b.tags {
        check_key("tag", &t.key)?;
        tags.push((t.key, t.value));
    }
    let name = b
        .run_name
        .filter(|n| !n.is_empty())
        .or_else(|| {
            tags.iter()
                .find(|(k, _)| k == "mlflow.runName")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| random_run_name(&id));
    // Who started it: on a server with users, the authenticated one (what
    // a client says is not who it is), in the tag the MLflow UI shows too.
    let user = match caller {
        Some(c) => {
            let name = c.user.username.clone();
            tags.retain(|(k, _)| k != "mlflow.user");
            tags.push(("mlflow.user".to_owned(), name.clone()));
            name
        }
        None => b
            .user_id
            .or_else(|| {
                tags.iter()
                    .find(|(k, _)| k == "mlflow.user")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default(),
    };
    let start = int(&b.start_time, now_ms())?;
    let run = st
        .store
        .create_tracked_run(&id, exp, &name, &user, start, &tags)
        .await?;
    Ok(Out(json!({ "run": WireRun::from(&run) })))
}

#[derive(Deserialize)]
pub struct GetQ {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

pub async fn get(State(st): State<Shared>, Query(q): Query<GetQ>) -> ApiResult<Out<Value>> {
    let id = run_id(q.run_id, q.run_uuid)?;
    let run = st
        .store
        .get_tracked_run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Run with id={id} not found")))?;
    Ok(Out(json!({ "run": WireRun::from(&run) })))
}

#[derive(Deserialize)]
pub struct Update {
    run_id: Option<String>,
    run_uuid: Option<String>,
    status: Option<String>,
    end_time: Option<Value>,
    run_name: Option<String>,
}

pub async fn update(State(st): State<Shared>, Json(b): Json<Update>) -> ApiResult<Out<Value>> {
    let id = run_id(b.run_id, b.run_uuid)?;
    let end = match &b.end_time {
        None | Some(Value::Null) => None,
        v => Some(int(v, 0)?),
    };
    let info = st
        .store
        .update_tracked_run(
            &id,
            b.status.as_deref(),
            end,
            b.run_name.as_deref().filter(|n| !n.is_empty()),
        )
        .await?;
    Ok(Out(json!({ "run_info": WireRunInfo::from(&info) })))
}

#[derive(Deserialize)]
pub struct IdOnly {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

pub async fn delete(State(st): State<Shared>, Json(b): Json<IdOnly>) -> ApiResult<Out<Value>> {
    st.store
        .set_run_stage(&run_id(b.run_id, b.run_uuid)?, true)
        .await?;
    Ok(Out(json!({})))
}

pub async fn restore(State(st): State<Shared>, Json(b): Json<IdOnly>) -> ApiResult<Out<Value>> {
    st.store
        .set_run_stage(&run_id(b.run_id, b.run_uuid)?, false)
        .await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct WireMetricIn {
    key: Option<String>,
    value: Option<Value>,
    timestamp: Option<Value>,
    step: Option<Value>,
}

fn metric_in(m: WireMetricIn) -> ApiResult<Metric> {
    let key = m.key.ok_or_else(|| ApiError::missing("key"))?;
    check_key("metric", &key)?;
    Ok(Metric {
        value: metric_value(m.value.as_ref().unwrap_or(&Value::Null))?,
        timestamp: int(&m.timestamp, now_ms())?,
        step: int(&m.step, 0)?,
        key,
    })
}

fn param_in(p: KeyValue) -> ApiResult<(String, String)> {
    check_key("param", &p.key)?;
    if p.value.len() > MAX_PARAM_VALUE {
        return Err(ApiError::invalid(format!(
            "Param value for '{}' had length {}, which exceeded length limit of {MAX_PARAM_VALUE}",
            p.key,
            p.value.len()
        )));
    }
    Ok((p.key, p.value))
}

fn tag_in(t: KeyValue) -> ApiResult<(String, String)> {
    check_key("tag", &t.key)?;
    if t.value.len() > MAX_TAG_VALUE {
        return Err(ApiError::invalid(format!(
            "Tag value for '{}' exceeds the maximum length of {MAX_TAG_VALUE}",
            t.key
        )));
    }
    Ok((t.key, t.value))
}

#[derive(Deserialize)]
pub struct LogMetric {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(flatten)]
    metric: WireMetricIn,
}

pub async fn log_metric(
    State(st): State<Shared>,
    Json(b): Json<LogMetric>,
) -> ApiResult<Out<Value>> {
    let id = run_id(b.run_id, b.run_uuid)?;
    let m = metric_in(b.metric)?;
    st.store.log_batch(&id, &[m], &[], &[]).await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct LogParam {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn log_param(State(st): State<Shared>, Json(b): Json<LogParam>) -> ApiResult<Out<Value>> {
    let id = run_id(b.run_id, b.run_uuid)?;
    let p = param_in(KeyValue {
        key: b.key.ok_or_else(|| ApiError::missing("key"))?,
        value: b.value.ok_or_else(|| ApiError::missing("value"))?,
    })?;
    st.store.log_batch(&id, &[], &[p], &[]).await?;
    Ok(Out(json!({})))
}

pub async fn set_tag(State(st): State<Shared>, Json(b): Json<LogParam>) -> ApiResult<Out<Value>> {
    let id = run_id(b.run_id, b.run_uuid)?;
    let t = tag_in(KeyValue {
        key: b.key.ok_or_else(|| ApiError::missing("key"))?,
        value: b.value.unwrap_or_default(),
    })?;
    st.store.log_batch(&id, &[], &[], &[t]).await?;
    Ok(Out(json!({})))
}

pub async fn delete_tag(
    State(st): State<Shared>,
    Json(b): Json<LogParam>,
) -> ApiResult<Out<Value>> {
    let id = run_id(b.run_id, b.run_uuid)?;
    let key = b.key.ok_or_else(|| ApiError::missing("key"))?;
    st.store.delete_run_tag(&id, &key).await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct LogBatch {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<WireMetricIn>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn log_batch(State(st): State<Shared>, Json(b): Json<LogBatch>) -> ApiResult<Out<Value>> {
    let id = run_id(b.run_id, b.run_uuid)?;
    let metrics = b
        .metrics
        .into_iter()
        .map(metric_in)
        .collect::<ApiResult<Vec<_>>>()?;
    let params = b
        .params
        .into_iter()
        .map(param_in)
        .collect::<ApiResult<Vec<_>>>()?;
    let tags = b
        .tags
        .into_iter()
        .map(tag_in)
        .collect::<ApiResult<Vec<_>>>()?;
    st.store.log_batch(&id, &metrics, &params, &tags).await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct LogInputs {
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<WireDatasetInput>,
}

pub async fn log_inputs(
    State(st): State<Shared>,
    Json(b): Json<LogInputs>,
) -> ApiResult<Out<Value>> {
    let id = run_id(b.run_id, None)?;
    let inputs: Vec<DatasetInput> = b
        .datasets
        .into_iter()
        .map(|d| DatasetInput {
            tags: d.tags.into_iter().map(|t| (t.key, t.value)).collect(),
            dataset: Dataset {
                name: d.dataset.name,
                digest: d.dataset.digest,
                source_type: d.dataset.source_type,
                source: d.dataset.source,
                schema: d.dataset.schema,
                profile: d.dataset.profile,
            },
        })
        .collect();
    st.store.log_inputs(&id, &inputs).await?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct Search {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    run_view_type: Option<String>,
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

pub async fn search(State(st): State<Shared>, Json(b): Json<Search>) -> ApiResult<Out<Value>> {
    let max = b.max_results.unwrap_or(1000);
    if !(1..=50_000).contains(&max) {
        return Err(ApiError::invalid(format!(
            "Invalid value {max} for parameter 'max_results' supplied. It must be at most 50000 and positive"
        )));
    }
    let q = RunQuery {
        experiment_ids: b
            .experiment_ids
            .iter()
            .map(|e| parse_experiment_id(e))
            .collect::<ApiResult<_>>()?,
        filter: ferry_search::parse_filter(
            b.filter.as_deref().unwrap_or(""),
            ferry_search::Grammar::Runs,
        )?,
        order_by: ferry_search::parse_order_by(&b.order_by, ferry_search::Grammar::Runs)?,
        view: view_type(b.run_view_type.as_deref())?,
        max_results: max,
        offset: parse_page_token(b.page_token.as_deref())?,
    };
    let (runs, more) = st.store.search_tracked_runs(&q).await?;
    #[derive(serde::Serialize)]
    struct Page {
        runs: Vec<WireRun>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page_token: Option<String>,
    }
    let page = Page {
        runs: runs.iter().map(WireRun::from).collect(),
        next_page_token: more.then(|| page_token(q.offset + max)),
    };
    Ok(Out(serde_json::to_value(page).map_err(ApiError::internal)?))
}

#[derive(Deserialize)]
pub struct HistoryQ {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// The history page, serialized straight from the points (no JSON tree).
#[derive(serde::Serialize)]
pub struct HistoryPage<'a> {
    metrics: Vec<HistoryPoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

#[derive(serde::Serialize)]
struct HistoryPoint<'a> {
    key: &'a str,
    value: crate::wire::Double,
    timestamp: i64,
    step: i64,
}

pub async fn history(
    State(st): State<Shared>,
    Query(q): Query<HistoryQ>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id = run_id(q.run_id, q.run_uuid)?;
    let key = q
        .metric_key
        .ok_or_else(|| ApiError::missing("metric_key"))?;
    let points = st.store.metric_history(&id, &key).await?;
    let offset = parse_page_token(q.page_token.as_deref())? as usize;
    let max = q.max_results.unwrap_or(25_000).clamp(1, 25_000) as usize;
    let page = HistoryPage {
        metrics: points
            .iter()
            .skip(offset)
            .take(max)
            .map(|m| HistoryPoint {
                key: &key,
                value: crate::wire::Double(m.value),
                timestamp: m.timestamp,
                step: m.step,
            })
            .collect(),
        next_page_token: (offset + max < points.len()).then(|| page_token((offset + max) as i64)),
    };
    Ok(Out(page).into_response())
}
