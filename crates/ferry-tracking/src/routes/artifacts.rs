//! `/api/2.0/mlflow-artifacts/artifacts/*`: list, download, upload (streamed),
//! delete; and the run-scoped `artifacts/list` and `/get-artifact`.

use crate::AppState;
use crate::artifacts::{SafePath, check_path};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json as Out, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PREFIX: &str = "/api/2.0/mlflow-artifacts/artifacts/";

/// The artifact path of a request, taken from the raw URI and decoded once.
fn path_of(req_uri: &axum::http::Uri) -> ApiResult<SafePath> {
    let raw = req_uri.path();
    let rest = raw
        .strip_prefix(PREFIX)
        .ok_or_else(|| ApiError::invalid("Invalid path"))?;
    check_path(rest, true)
}

fn io_err(e: std::io::Error) -> ApiError {
    ApiError::internal(e)
}

/// Whose artifact folder a path is in: the run or logged model whose
/// `.../<id>/artifacts` (or `.../models/<id>/artifacts`) folder holds it, as
/// the store records that folder.
enum Owner {
    Run { id: String, status: String },
    Model { id: String, status: String },
}

async fn owner(st: &AppState, p: &SafePath) -> ApiResult<Option<Owner>> {
    let segs: Vec<&str> = p.as_str().split('/').collect();
    for i in 1..segs.len() {
        if segs[i] != "artifacts" {
            continue;
        }
        let folder = format!("mlflow-artifacts:/{}", segs[..=i].join("/"));
        let id = segs[i - 1];
        if i >= 2 && segs[i - 2] == "models" {
            if let Some(m) = st.store.get_logged_model(id).await?
                && m.artifact_location.trim_end_matches('/') == folder
            {
                return Ok(Some(Owner::Model {
                    id: m.model_id,
                    status: m.status,
                }));
            }
        } else if let Some(r) = st.store.get_tracked_run(id).await?
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
    let dir = st.artifacts.resolve(p)?;
    let mut files = Vec::new();
    let mut rd = match tokio::fs::read_dir(&dir).await {
        Ok(rd) => rd,
        Err(_) => return Ok(json!({})),
    };
    while let Some(e) = rd.next_entry().await.map_err(io_err)? {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".ferry-upload-") {
            continue;
        }
        let meta = e.metadata().await.map_err(io_err)?;
        let mut f = json!({ "path": name, "is_dir": meta.is_dir() });
        if meta.is_file() && meta.len() > 0 {
            f["file_size"] = meta.len().into();
        }
        files.push(f);
    }
    files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
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
pub async fn list(State(st): State<AppState>, Query(q): Query<ListQ>) -> ApiResult<Out<Value>> {
    // Query values are already decoded once by the query parser.
    let p = check_path(q.path.as_deref().unwrap_or(""), false)?;
    Ok(Out(list_dir(&st, &p).await?))
}

/// `GET .../artifacts/{path}`: the file's bytes, streamed.
pub async fn download(State(st): State<AppState>, req: Request) -> ApiResult<Response> {
    let p = path_of(req.uri())?;
    let full = st.artifacts.resolve(&p)?;
    let file = match tokio::fs::File::open(&full).await {
        Ok(f) => f,
        Err(_) => {
            return Err(ApiError::not_found(format!(
                "File {} not found",
                p.as_str()
            )));
        }
    };
    let meta = file.metadata().await.map_err(io_err)?;
    if meta.is_dir() {
        return Err(ApiError::not_found(format!(
            "{} is a directory",
            p.as_str()
        )));
    }
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&meta.len().to_string()) {
        resp.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    Ok(resp)
}

/// `PUT .../artifacts/{path}`: the raw body, streamed to a temporary file
/// beside the target, then renamed into place.
pub async fn upload(State(st): State<AppState>, req: Request) -> ApiResult<Out<Value>> {
    let p = path_of(req.uri())?;
    if p.is_root() {
        return Err(ApiError::invalid("Invalid path"));
    }
    check_writable(&st, &p, false).await?;
    let full = st.artifacts.resolve(&p)?;
    let parent = full
        .parent()
        .ok_or_else(|| ApiError::invalid("Invalid path"))?
        .to_owned();
    tokio::fs::create_dir_all(&parent).await.map_err(io_err)?;
    // Re-check after creating folders: nothing may have led outside.
    st.artifacts.resolve(&p)?;
    let tmp = parent.join(format!(".ferry-upload-{}", uuid::Uuid::new_v4().simple()));
    let mut out = tokio::fs::File::create(&tmp).await.map_err(io_err)?;
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(ApiError::bad_request(format!(
                    "The upload was interrupted: {e}"
                )));
            }
        };
        if let Err(e) = out.write_all(&chunk).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_err(e));
        }
    }
    out.flush().await.map_err(io_err)?;
    drop(out);
    if tokio::fs::metadata(&full).await.is_ok_and(|m| m.is_dir()) {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ApiError::invalid("Invalid path: a directory exists there"));
    }
    tokio::fs::rename(&tmp, &full).await.map_err(io_err)?;
    Ok(Out(json!({})))
}

/// `DELETE .../artifacts/{path}`
pub async fn delete(State(st): State<AppState>, req: Request) -> ApiResult<Out<Value>> {
    let p = path_of(req.uri())?;
    if p.is_root() {
        return Err(ApiError::invalid("Invalid path"));
    }
    check_writable(&st, &p, true).await?;
    let full = st.artifacts.resolve(&p)?;
    match tokio::fs::symlink_metadata(&full).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&full).await.map_err(io_err)?,
        Ok(_) => tokio::fs::remove_file(&full).await.map_err(io_err)?,
        Err(_) => return Err(ApiError::not_found(format!("{} not found", p.as_str()))),
    }
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
    State(st): State<AppState>,
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

/// `GET /get-artifact?run_id&path` (the web UI's endpoint)
pub async fn get_artifact(
    State(st): State<AppState>,
    Query(q): Query<RunArtifactQ>,
) -> ApiResult<Response> {
    let (p, _, _) = run_path(&st, &q).await?;
    let full = st.artifacts.resolve(&p)?;
    match tokio::fs::read(&full).await {
        Ok(bytes) => Ok(bytes.into_response()),
        Err(_) => Err(ApiError::not_found(format!(
            "File {} not found",
            p.as_str()
        ))),
    }
}
