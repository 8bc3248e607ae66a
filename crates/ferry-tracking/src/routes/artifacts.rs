//! `/api/2.0/mlflow-artifacts/artifacts/*`: list, download, upload (streamed),
//! delete; and the run-scoped `artifacts/list` and `/get-artifact`.

use crate::artifacts::{SafePath, check_path, store_error};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::{AppState, Shared};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json as Out, Response};
use ferry_artifacts::Error as StoreError;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

const PREFIX: &str = "/api/2.0/mlflow-artifacts/artifacts/";

/// The artifact path of a request, taken from the raw URI and decoded once.
fn path_of(req_uri: &axum::http::Uri) -> ApiResult<SafePath> {
    let raw = req_uri.path();
    let rest = raw
        .strip_prefix(PREFIX)
        .ok_or_else(|| ApiError::invalid("Invalid path"))?;
    check_path(rest, true)
}

/// Whose artifact folder a path is in: the run or logged model whose
/// `.../<id>/artifacts` (or `.../models/<id>/artifacts`) folder holds it, as
/// the store records that folder.
pub(crate) enum Owner {
    Run { id: String, status: String },
    Model { id: String, status: String },
}

async fn owner(st: &AppState, p: &SafePath) -> ApiResult<Option<Owner>> {
    Ok(owner_in(st.store.as_ref(), p).await?)
}

/// [`Owner`] of `p` in `store` (what the auth gate resolves a path to).
pub(crate) async fn owner_in(
    store: &dyn ferry_metadata::MetadataStore,
    p: &SafePath,
) -> Result<Option<Owner>, ferry_metadata::Error> {
    let segs: Vec<&str> = p.as_str().split('/').collect();
    for i in 1..segs.len() {
        if segs[i] != "artifacts" {
            continue;
        }
        let folder = format!("mlflow-artifacts:/{}", segs[..=i].join("/"));
        let id = segs[i - 1];
        if i >= 2 && segs[i - 2] == "models" {
            if let Some(m) = store.get_logged_model(id).await?
                && m.artifact_location.trim_end_matches('/') == folder
            {
                return Ok(Some(Owner::Model {
                    id: m.model_id,
                    status: m.status,
                }));
            }
        } else if let Some(r) = store.get_tracked_run(id).await?
            && r.info.artifact_uri.trim_end_matches('/') == folder
        {
            return Ok(Some(Owner::Run {
                id: r.info.run_id,
                status: r.info.status,
            }));
        }
    }
    Ok(None)
}

/// Whether `p` is at or inside a run's or a logged model's artifact folder.
pub(crate) async fn in_owned_folder(st: &AppState, p: &SafePath) -> ApiResult<bool> {
    Ok(owner(st, p).await?.is_some())
}

/// Refuses a write (or, with `delete`, a delete) at `p` that would change
/// what is fixed: the files of a registered model version (at, above or
/// below `p`), the artifacts of a finished run or of a finalized logged
/// model. A delete must also stay inside a run's or logged model's
/// artifact folder (no deleting experiments or other runs wholesale).
async fn check_writable(st: &AppState, p: &SafePath, delete: bool) -> ApiResult<()> {
    let uri = format!("mlflow-artifacts:/{}", p.as_str());
    if let Some((model, version)) = st.store.versions_storing(&uri).await?.first() {
        return Err(ApiError::immutable(format!(
            "{} holds files of the registered model version {model}/{version}, which cannot change",
            p.as_str()
        )));
    }
    match owner(st, p).await? {
        Some(Owner::Run { id, status }) if !matches!(status.as_str(), "RUNNING" | "SCHEDULED") => {
            Err(ApiError::immutable(format!(
                "{} belongs to run {id}, which has ended ({status}); the artifacts of an ended run cannot change",
                p.as_str()
            )))
        }
        Some(Owner::Model { id, status }) if status != "LOGGED_MODEL_PENDING" => {
            Err(ApiError::immutable(format!(
                "{} belongs to the logged model {id}, which is finalized ({status}); its artifacts cannot change",
                p.as_str()
            )))
        }
        Some(_) => Ok(()),
        None if delete => Err(ApiError::immutable(format!(
            "{} is not inside a run's or a logged model's artifact folder; only artifacts there can be deleted",
            p.as_str()
        ))),
        None => Ok(()),
    }
}

async fn list_dir(st: &AppState, p: &SafePath) -> ApiResult<Value> {
    let entries = st.artifacts.list(p.as_str()).await.map_err(store_error)?;
    let files: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut f = json!({ "path": e.path, "is_dir": e.is_dir });
            if !e.is_dir && e.size > 0 {
                f["file_size"] = e.size.into();
            }
            f
        })
        .collect();
    Ok(if files.is_empty() {
        json!({})
    } else {
        json!({ "files": files })
    })
}

#[derive(Deserialize)]
pub struct ListQ {
    path: Option<String>,
}

/// `GET /api/2.0/mlflow-artifacts/artifacts?path=X`
pub async fn list(State(st): State<Shared>, Query(q): Query<ListQ>) -> ApiResult<Out<Value>> {
    // Query values are already decoded once by the query parser.
    let p = check_path(q.path.as_deref().unwrap_or(""), false)?;
    Ok(Out(list_dir(&st, &p).await?))
}

/// A file of the store, streamed, as `application/octet-stream`.
async fn stream_file(st: &AppState, p: &SafePath) -> ApiResult<Response> {
    let d = st.artifacts.get(p.as_str()).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found(format!("File {} not found", p.as_str())),
        e => store_error(e),
    })?;
    let mut resp = Body::from_stream(d.body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&d.size.to_string()) {
        resp.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    Ok(resp)
}

/// `GET .../artifacts/{path}`: the file's bytes, streamed.
pub async fn download(State(st): State<Shared>, req: Request) -> ApiResult<Response> {
    let p = path_of(req.uri())?;
    stream_file(&st, &p).await
}

/// `PUT .../artifacts/{path}`: the raw body, streamed to the store (a
/// local folder writes a temporary file beside the target and renames it
/// into place; a bucket sends it in parts when it is large).
pub async fn upload(State(st): State<Shared>, req: Request) -> ApiResult<Out<Value>> {
    let p = path_of(req.uri())?;
    if p.is_root() {
        return Err(ApiError::invalid("Invalid path"));
    }
    check_writable(&st, &p, false).await?;
    let body = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    st.artifacts
        .put(p.as_str(), body)
        .await
        .map_err(|e| match e {
            StoreError::IsDir(_) => ApiError::invalid("Invalid path: a directory exists there"),
            e => store_error(e),
        })?;
    Ok(Out(json!({})))
}

/// `DELETE .../artifacts/{path}`
pub async fn delete(State(st): State<Shared>, req: Request) -> ApiResult<Out<Value>> {
    let p = path_of(req.uri())?;
    if p.is_root() {
        return Err(ApiError::invalid("Invalid path"));
    }
    check_writable(&st, &p, true).await?;
    st.artifacts.delete(p.as_str()).await.map_err(store_error)?;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
pub struct RunArtifactQ {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

/// The artifact-root path of a run's `path`, for the run-scoped endpoints:
/// that path, the path asked for (relative to the run's artifacts) and the
/// run's artifact URI.
async fn run_path(st: &AppState, q: &RunArtifactQ) -> ApiResult<(SafePath, SafePath, String)> {
    let rel = check_path(q.path.as_deref().unwrap_or(""), false)?;
    let id = q
        .run_id
        .clone()
        .or(q.run_uuid.clone())
        .ok_or_else(|| ApiError::missing("run_id"))?;
    let run = st
        .store
        .get_tracked_run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Run with id={id} not found")))?;
    let base = run
        .info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:/")
        .ok_or_else(|| ApiError::invalid("The run's artifacts are not served by this server"))?;
    let joined = if rel.is_root() {
        base.to_owned()
    } else {
        format!("{base}/{}", rel.as_str())
    };
    Ok((check_path(&joined, false)?, rel, run.info.artifact_uri))
}

/// `GET /api/2.0/mlflow/artifacts/list?run_id&path`: as MLflow answers it
/// for a proxied run, each path relative to the run's artifact root
/// (`d/r.txt` for `path=d`) and `root_uri` the run's artifact URI. (The
/// proxy's own list, above, names entries relative to the listed folder.)
pub async fn run_list(
    State(st): State<Shared>,
    Query(q): Query<RunArtifactQ>,
) -> ApiResult<Out<Value>> {
    let (p, rel, root_uri) = run_path(&st, &q).await?;
    let mut v = list_dir(&st, &p).await?;
    if !rel.is_root()
        && let Some(files) = v.get_mut("files").and_then(Value::as_array_mut)
    {
        for f in files {
            if let Some(name) = f["path"].as_str() {
                f["path"] = json!(format!("{}/{name}", rel.as_str()));
            }
        }
    }
    v["root_uri"] = json!(root_uri);
    Ok(Out(v))
}

/// `GET /get-artifact?run_id&path` (the web UI's endpoint), streamed.
pub async fn get_artifact(
    State(st): State<Shared>,
    Query(q): Query<RunArtifactQ>,
) -> ApiResult<Response> {
    let (p, _, _) = run_path(&st, &q).await?;
    stream_file(&st, &p).await.map_err(|e| match e.code {
        crate::error::Code::ResourceDoesNotExist => {
            ApiError::not_found(format!("File {} not found", p.as_str()))
        }
        _ => e,
    })
}
