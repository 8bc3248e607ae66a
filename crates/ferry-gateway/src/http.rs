//! The HTTP face of the gateway: every protocol's routes on one port, one
//! error type rendered in the shape of the protocol that was spoken. Its
//! faults are the gateway's ([`Failure`]) or the transport's own
//! ([`Transport`]: a body too large, unreadable or of a type no protocol
//! takes, or no room for it), which never reach the gateway.

use crate::access::Admitted;
use crate::gateway::{Answer, Failure, Gateway, ModelRoute, Read, Reader, Routed, Served};
use crate::protocol::{self, AnswerShape};
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;

/// The largest request body, by default.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

pub use ferry_http::BodyBudget;

#[derive(Clone)]
pub struct HttpState {
    pub gw: Arc<Gateway>,
    pub max_body: usize,
    /// Request bodies held at once, for the whole gateway.
    pub bodies: BodyBudget,
}

/// The protocol a path speaks, for errors raised before its handler runs.
pub(crate) fn proto_of(path: &str) -> Proto {
    if path == "/invocations" {
        Proto::Mlflow
    } else if path.starts_with("/v2") {
        Proto::V2
    } else if path.starts_with("/v1") {
        Proto::V1
    } else {
        Proto::Plain
    }
}

/// Holds a request's share of [`BodyBudget`] while it is answered.
async fn body_budget(
    State(st): State<HttpState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    // Larger bodies are refused (413) before they are read in full.
    match st
        .bodies
        .admit(req.method().as_str(), length, st.max_body)
        .await
    {
        Ok(held) => {
            let resp = next.run(req).await;
            drop(held);
            resp
        }
        Err(ferry_http::Full) => ApiError::new(
            proto_of(req.uri().path()),
            Transport::Full(st.bodies.total_mib()),
        )
        .into_response(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Proto {
    Mlflow,
    V2,
    V1,
    Plain,
}

/// What went wrong before a request reached the gateway: the transport's
/// own refusals, rendered in the protocol's error shape like a [`Failure`].
#[derive(Debug, thiserror::Error)]
pub enum Transport {
    /// The body is larger than the gateway takes (413).
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// A content type no protocol on the route takes (415).
    #[error("{0}")]
    UnsupportedMedia(String),
    /// The body could not be read (400).
    #[error("cannot read the body: {0}")]
    Unreadable(String),
    /// The gateway holds as many request bodies (MiB) as it may: retry (503).
    #[error("the gateway holds {0} MiB of request bodies at most and is full; retry")]
    Full(u32),
}

/// Why a route answers with an error: the gateway's, the transport's, or
/// the caller's credentials or grants ([`crate::access`]).
#[derive(Debug)]
pub enum Fault {
    Domain(Failure),
    Transport(Transport),
    Refused(ferry_access::Refusal),
}

impl From<Failure> for Fault {
    fn from(f: Failure) -> Self {
        Fault::Domain(f)
    }
}

impl From<Transport> for Fault {
    fn from(t: Transport) -> Self {
        Fault::Transport(t)
    }
}

/// The one error type of the gateway's routes.
pub struct ApiError {
    pub proto: Proto,
    pub fault: Fault,
    pub request_id: Option<String>,
    pub version: Option<(String, i64)>,
}

impl ApiError {
    pub(crate) fn new(proto: Proto, fault: impl Into<Fault>) -> Self {
        Self {
            proto,
            fault: fault.into(),
            request_id: None,
            version: None,
        }
    }
}

impl Transport {
    /// Status, MLflow error code and message.
    fn rendered(self) -> (StatusCode, &'static str, String) {
        let status = match self {
            Transport::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Transport::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Transport::Unreadable(_) => StatusCode::BAD_REQUEST,
            Transport::Full(_) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "TEMPORARILY_UNAVAILABLE",
                    self.to_string(),
                );
            }
        };
        (status, "BAD_REQUEST", self.to_string())
    }
}

/// A refusal's status, MLflow error code and message (a store's failure
/// stays in the log).
fn refused(r: ferry_access::Refusal) -> (StatusCode, &'static str, String) {
    use ferry_access::Refusal;
    match r {
        Refusal::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.".to_owned(),
        ),
        Refusal::Forbidden => (
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Permission denied".to_owned(),
        ),
        Refusal::Store(e) => {
            tracing::error!("cannot read who may do what: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "the gateway cannot check credentials right now".to_owned(),
            )
        }
    }
}

/// A failure's status, MLflow error code and message (a runtime's details
/// stay in the log).
fn rendered(f: Failure) -> (StatusCode, &'static str, String) {
    match f {
        Failure::BadInput(m) => (StatusCode::BAD_REQUEST, "BAD_REQUEST", m),
        Failure::NotFound(m) => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", m),
        Failure::Unavailable(m) => {
            tracing::warn!("unavailable: {m}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "the model is not available right now".to_owned(),
            )
        }
        Failure::Failed(m) => {
            // Details stay in the log.
            tracing::error!("prediction failed: {m}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "the model failed on this request".to_owned(),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = matches!(self.fault, Fault::Transport(Transport::Full(_)));
        let (status, code, msg) = match self.fault {
            Fault::Domain(f) => rendered(f),
            Fault::Transport(t) => t.rendered(),
            Fault::Refused(r) => refused(r),
        };
        let mut resp = match self.proto {
            // MLflow answers an unsupported media type in plain text.
            Proto::Mlflow if status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                (status, msg).into_response()
            }
            Proto::Mlflow => (
                status,
                axum::Json(json!({"error_code": code, "message": msg})),
            )
                .into_response(),
            Proto::V2 | Proto::V1 => (status, axum::Json(json!({"error": msg}))).into_response(),
            Proto::Plain => (status, msg).into_response(),
        };
        add_headers(
            resp.headers_mut(),
            self.request_id.as_deref(),
            self.version.as_ref().map(|(m, v)| (m.as_str(), *v)),
            None,
        );
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ferry\""),
            );
        }
        resp
    }
}

/// The answer to a request whose body arrived too slowly (the connection
/// layer does not know the protocol: the body carries both MLflow's and the
/// inference protocols' error fields).
pub fn too_slow() -> Response {
    let msg = "the request body arrived too slowly; send it again";
    (
        StatusCode::REQUEST_TIMEOUT,
        axum::Json(json!({"error_code": "REQUEST_TIMEOUT", "message": msg, "error": msg})),
    )
        .into_response()
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_MODEL: HeaderName = HeaderName::from_static("x-ferry-model");
static X_VERSION: HeaderName = HeaderName::from_static("x-ferry-model-version");
static X_COMMIT: HeaderName = HeaderName::from_static("x-ferry-git-commit");

fn add_headers(h: &mut HeaderMap, id: Option<&str>, mv: Option<(&str, i64)>, commit: Option<&str>) {
    if let Some(v) = id.and_then(|i| HeaderValue::from_str(i).ok()) {
        h.insert(X_REQUEST_ID.clone(), v);
    }
    if let Some((m, v)) = mv {
        if let Ok(x) = HeaderValue::from_str(m) {
            h.insert(X_MODEL.clone(), x);
        }
        h.insert(X_VERSION.clone(), HeaderValue::from(v));
    }
    if let Some(v) = commit.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert(X_COMMIT.clone(), v);
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

fn answered(v: Value, a: &Answer) -> Response {
    let mut r = json_response(StatusCode::OK, &v);
    add_headers(
        r.headers_mut(),
        Some(&a.request_id),
        Some((&a.served.model, a.served.version)),
        a.served.git_commit.as_deref(),
    );
    r
}

/// A client's own request id, when it is a sensible header value.
fn client_request_id(h: &HeaderMap) -> Option<String> {
    let v = h.get(&X_REQUEST_ID)?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_owned())
}

async fn read_body(body: Body, max: usize, proto: Proto) -> Result<bytes::Bytes, ApiError> {
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::new(proto, Transport::TooLarge(max)))
        }
        Err(e) => Err(ApiError::new(proto, Transport::Unreadable(e.to_string()))),
    }
}

fn route<'a>(
    table: &'a crate::gateway::Table,
    name: &str,
    proto: Proto,
) -> Result<&'a ModelRoute, ApiError> {
    table.find(name).map_err(|f| ApiError::new(proto, f))
}

/// A request routed and read ([`Gateway::read`]) answered by the gateway.
async fn run<T>(
    st: &HttpState,
    to: Routed<'_>,
    inputs: Vec<ferry_onnx::Tensor>,
    columns: Option<Vec<String>>,
    reader: &Reader<'_, T>,
    request_id: Option<String>,
    proto: Proto,
) -> Result<Answer, ApiError> {
    st.gw
        .predict(to, inputs, columns, reader, request_id.clone())
        .await
        .map_err(|(served, failure)| ApiError {
            proto,
            fault: Fault::Domain(failure),
            request_id,
            version: served.map(|s| (s.model.clone(), s.version)),
        })
}

// ---- MLflow scoring

async fn invocations(
    State(st): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let p = Proto::Mlflow;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mut parts = ct.split(';').map(str::trim);
    let mime = parts.next().unwrap_or_default();
    for param in parts {
        let ok = param.split_once('=').is_some_and(|(k, c)| {
            k.trim().eq_ignore_ascii_case("charset")
                && c.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        });
        if !ok {
            return Err(ApiError::new(
                p,
                Transport::UnsupportedMedia(format!(
                    "This predictor only supports UTF-8 JSON or CSV; got content type `{ct}`"
                )),
            ));
        }
    }
    let csv = if mime.eq_ignore_ascii_case("application/json") {
        false
    } else if mime.eq_ignore_ascii_case("text/csv") {
        true
    } else {
        return Err(ApiError::new(
            p,
            Transport::UnsupportedMedia(format!(
                "This predictor only supports the following content types: ['text/csv', 'application/json']; got `{mime}`"
            )),
        ));
    };
    let bytes = read_body(body, st.max_body, p).await?;
    let table = st.gw.table();
    let route = table
        .models
        .first()
        .ok_or_else(|| ApiError::new(p, Failure::Unavailable("no model is served".into())))?;
    let mut to = st.gw.route(route, None).map_err(|f| ApiError::new(p, f))?;
    let reader = |s: &Served| -> Result<Read<AnswerShape>, protocol::BadInput> {
        let (specs, sig) = (s.predictor.inputs(), s.predictor.signature());
        let ((inputs, columns), rest) = if csv {
            (
                protocol::mlflow_csv(&bytes, specs, sig)?,
                AnswerShape::Predict,
            )
        } else if let Some(read) = protocol::mlflow_numeric_split(&bytes, specs, sig) {
            (read, AnswerShape::Predict)
        } else {
            let v = serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| protocol::BadInput(format!("the body is not valid JSON: {e}")))?;
            let shape = AnswerShape::from_params(v.get("params"), "params")?;
            (protocol::mlflow_value(v, specs, sig)?, shape)
        };
        Ok(Read {
            inputs,
            columns,
            rest,
        })
    };
    let read = st.gw.read(&mut to, &reader).map_err(|f| {
        let mut err = ApiError::new(p, f);
        err.version = Some((to.served.model.clone(), to.served.version));
        err
    })?;
    let rid = client_request_id(&headers);
    let a = run(&st, to, read.inputs, read.columns, &reader, rid, p).await?;
    shaped(&a, read.rest, p)
}

/// A prediction in MLflow's shape (also KServe V1's), as the request asked.
fn shaped(a: &Answer, shape: AnswerShape, p: Proto) -> Result<Response, ApiError> {
    let body = protocol::mlflow_answer(&a.outputs, shape, a.served.predictor.classes())
        .map_err(|e| ApiError::new(p, Failure::BadInput(e.0)))?;
    Ok(answered(body, a))
}

async fn ping(State(st): State<HttpState>) -> Response {
    let t = st.gw.table();
    let ready = t.models.first().is_some_and(|m| m.stable.predictor.ready());
    if ready {
        (StatusCode::OK, "\n").into_response()
    } else {
        (StatusCode::NOT_FOUND, "\n").into_response()
    }
}

async fn version() -> Response {
    (StatusCode::OK, concat!("ferry ", env!("CARGO_PKG_VERSION"))).into_response()
}

// ---- Open Inference Protocol (KServe V2)

async fn v2_live() -> Response {
    json_response(StatusCode::OK, &json!({"live": true}))
}

async fn v2_ready(State(st): State<HttpState>) -> Response {
    let t = st.gw.table();
    let ready = !t.models.is_empty() && t.models.iter().all(|m| m.stable.predictor.ready());
    json_response(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({"ready": ready}),
    )
}

async fn v2_server() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"name": "ferry", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}),
    )
}

fn v2_pick<'a>(
    route: &'a ModelRoute,
    version: Option<&str>,
) -> Result<&'a Arc<crate::gateway::Served>, ApiError> {
    match version {
        None => Ok(&route.stable),
        Some(v) => route
            .versions()
            .into_iter()
            .find(|s| s.version.to_string() == v)
            .ok_or_else(|| {
                ApiError::new(
                    Proto::V2,
                    Failure::NotFound(format!("version {v} of `{}` is not served", route.name)),
                )
            }),
    }
}

fn v2_metadata(st: &HttpState, name: &str, version: Option<&str>) -> Result<Response, ApiError> {
    let table = st.gw.table();
    let route = route(&table, name, Proto::V2)?;
    let s = v2_pick(route, version)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "name": route.name,
            "versions": route.versions().iter().map(|s| s.version.to_string()).collect::<Vec<_>>(),
            "platform": s.predictor.platform(),
            "inputs": protocol::v2_inputs(s.predictor.inputs(), s.predictor.signature()),
            "outputs": protocol::v2_outputs(s.predictor.outputs(), s.predictor.classes()),
        }),
    ))
}

async fn v2_model(
    State(st): State<HttpState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    v2_metadata(&st, &name, None)
}

async fn v2_model_version(
    State(st): State<HttpState>,
    Path((name, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    v2_metadata(&st, &name, Some(&v))
}

fn v2_model_ready_impl(
    st: &HttpState,
    name: &str,
    version: Option<&str>,
) -> Result<Response, ApiError> {
    let table = st.gw.table();
    let route = route(&table, name, Proto::V2)?;
    let s = v2_pick(route, version)?;
    let ready = s.predictor.ready();
    Ok(json_response(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({"name": route.name, "ready": ready}),
    ))
}

async fn v2_model_ready(
    State(st): State<HttpState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    v2_model_ready_impl(&st, &name, None)
}

async fn v2_model_version_ready(
    State(st): State<HttpState>,
    Path((name, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    v2_model_ready_impl(&st, &name, Some(&v))
}

async fn v2_infer_impl(
    st: HttpState,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let p = Proto::V2;
    let bytes = read_body(body, st.max_body, p).await?;
    let table = st.gw.table();
    let route = st
        .gw
        .model(&table, &name)
        .map_err(|f| ApiError::new(p, f))?;
    let version = match version {
        None => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            ApiError::new(
                p,
                Failure::NotFound(format!("`{v}` is not a version of `{name}`")),
            )
        })?),
    };
    let mut to = st
        .gw
        .route(route, version)
        .map_err(|f| ApiError::new(p, f))?;
    let header_len = match headers.get("inference-header-content-length") {
        None => None,
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        p,
                        Failure::BadInput(
                            "Inference-Header-Content-Length must be a byte count".into(),
                        ),
                    )
                })?,
        ),
    };
    let reader = |s: &Served| -> Result<Read<protocol::V2Request>, protocol::BadInput> {
        let mut rest = protocol::v2_request(&bytes, header_len, s.predictor.inputs())?;
        Ok(Read {
            inputs: std::mem::take(&mut rest.inputs),
            columns: None,
            rest,
        })
    };
    let Read {
        inputs, rest: req, ..
    } = st
        .gw
        .read(&mut to, &reader)
        .map_err(|f| ApiError::new(p, f))?;
    // Outputs the version does not have are the client's mistake, found
    // (once) before anything runs.
    let outs = to.served.predictor.outputs();
    if let Some(missing) = req
        .outputs
        .iter()
        .find(|o| !outs.iter().any(|s| &&s.name == o))
    {
        return Err(ApiError::new(
            p,
            Failure::BadInput(format!("the model has no output `{missing}`")),
        ));
    }
    let rid = client_request_id(&headers);
    let a = run(&st, to, inputs, None, &reader, rid, p).await?;
    let mut raw = Vec::new();
    let outputs: Vec<Value> = a
        .outputs
        .iter()
        .filter(|t| req.outputs.is_empty() || req.outputs.contains(&t.name))
        .map(|t| {
            if req.all_binary || req.binary_outputs.contains(&t.name) {
                let (v, bytes) = protocol::v2_tensor_binary(t);
                raw.extend(bytes);
                v
            } else {
                protocol::v2_tensor(t)
            }
        })
        .collect();
    let mut v = json!({
        "model_name": route.name,
        "model_version": a.served.version.to_string(),
        "id": req.id.clone().unwrap_or_else(|| a.request_id.clone()),
        "outputs": outputs,
    });
    if req.id.is_none() {
        v["id"] = Value::String(a.request_id.clone());
    }
    if raw.is_empty() {
        return Ok(answered(v, &a));
    }
    // Binary outputs follow the JSON header (Triton's binary tensor data).
    let mut body = v.to_string().into_bytes();
    let json_len = body.len();
    body.extend(raw);
    let mut r = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                HeaderName::from_static("inference-header-content-length"),
                HeaderValue::from(json_len),
            ),
        ],
        body,
    )
        .into_response();
    add_headers(
        r.headers_mut(),
        Some(&a.request_id),
        Some((&a.served.model, a.served.version)),
        a.served.git_commit.as_deref(),
    );
    Ok(r)
}

async fn v2_infer(
    State(st): State<HttpState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    v2_infer_impl(st, name, None, headers, body).await
}

async fn v2_infer_version(
    State(st): State<HttpState>,
    Path((name, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    v2_infer_impl(st, name, Some(v), headers, body).await
}

// ---- KServe V1

async fn v1_models(
    State(st): State<HttpState>,
    admitted: Option<Extension<Admitted>>,
) -> Result<Response, ApiError> {
    let mut names = st.gw.table().names();
    // Only what the caller may read is listed.
    if let Some(Extension(a)) = admitted {
        let mut readable = Vec::with_capacity(names.len());
        for n in names {
            if a.may(&n, ferry_auth::Action::Read)
                .await
                .map_err(|r| ApiError::new(Proto::V1, Fault::Refused(r)))?
            {
                readable.push(n);
            }
        }
        names = readable;
    }
    Ok(json_response(StatusCode::OK, &json!({"models": names})))
}

async fn v1_model(
    State(st): State<HttpState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let table = st.gw.table();
    let r = route(&table, &name, Proto::V1)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": r.name, "ready": r.stable.predictor.ready()}),
    ))
}

async fn v1_predict(
    State(st): State<HttpState>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let p = Proto::V1;
    let Some(name) = target.strip_suffix(":predict") else {
        return Err(ApiError::new(
            p,
            Failure::NotFound(format!(
                "no route `POST /v1/models/{target}` (use `:predict`)"
            )),
        ));
    };
    let bytes = read_body(body, st.max_body, p).await?;
    let table = st.gw.table();
    let route = st.gw.model(&table, name).map_err(|f| ApiError::new(p, f))?;
    // V1 takes `instances` (or `inputs`): the MLflow parser reads both.
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            p,
            Failure::BadInput(format!("the body is not valid JSON: {e}")),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::new(
            p,
            Failure::BadInput("the body must be an object with `instances`".into()),
        ));
    };
    let key = if obj.contains_key("instances") {
        "instances"
    } else {
        "inputs"
    };
    let shape = AnswerShape::from_params(obj.get("parameters"), "parameters")
        .map_err(|e| ApiError::new(p, Failure::BadInput(e.0)))?;
    let mut to = st.gw.route(route, None).map_err(|f| ApiError::new(p, f))?;
    let reader = |s: &Served| -> Result<Read<()>, protocol::BadInput> {
        let inner = json!({ key: obj.get(key).cloned().unwrap_or(Value::Null) });
        let (inputs, columns) =
            protocol::mlflow_value(inner, s.predictor.inputs(), s.predictor.signature())?;
        Ok(Read {
            inputs,
            columns,
            rest: (),
        })
    };
    let read = st
        .gw
        .read(&mut to, &reader)
        .map_err(|f| ApiError::new(p, f))?;
    let rid = client_request_id(&headers);
    let a = run(&st, to, read.inputs, read.columns, &reader, rid, p).await?;
    shaped(&a, shape, p)
}

// ---- feedback, metrics, status

async fn feedback(
    State(st): State<HttpState>,
    admitted: Option<Extension<Admitted>>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, 1 << 20, Proto::V1).await?;
    let bad = |m: &str| ApiError::new(Proto::V1, Failure::BadInput(m.to_owned()));
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad(&format!("the body is not valid JSON: {e}")))?;
    let id = v
        .get("request_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`request_id` (a string) is required"))?;
    let text = |x: &Value| match x {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let truth: Vec<String> = match (v.get("label"), v.get("labels")) {
        (Some(l), None) => {
            vec![text(l).ok_or_else(|| bad("`label` must be a string or a number"))?]
        }
        (None, Some(Value::Array(ls))) => ls
            .iter()
            .map(|l| text(l).ok_or_else(|| bad("`labels` must hold strings or numbers")))
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(bad(
                "give `label` (one row) or `labels` (a list, one per row)",
            ));
        }
    };
    // Labels score a model: EDIT on the one that answered. A request id
    // this gateway does not remember is answered 404 below either way.
    if let (Some(Extension(a)), Some(model)) = (admitted, st.gw.answered_by(id)) {
        let ok = a
            .may(&model, ferry_auth::Action::Update)
            .await
            .map_err(|r| ApiError::new(Proto::V1, Fault::Refused(r)))?;
        if !ok {
            return Err(a.refuse(Proto::V1, "gateway.feedback", &model).await);
        }
    }
    let out = st
        .gw
        .feedback(id, &truth)
        .map_err(|f| ApiError::new(Proto::V1, f))?;
    Ok(json_response(StatusCode::OK, &out))
}

async fn metrics(State(st): State<HttpState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        crate::metrics::render(&st.gw),
    )
        .into_response()
}

async fn fallback() -> ApiError {
    ApiError::new(Proto::Plain, Failure::NotFound("no such route".into()))
}

/// Every route of the gateway, behind its guard when `access` is given
/// (`None`: no one is asked, as in tests of the protocols). The guard is
/// not part of [`HttpState`], which every handler clones.
pub fn router(st: HttpState, access: Option<Arc<ferry_access::Access>>) -> Router {
    let guard = access.map(|access| {
        ferry_http::guard::GuardLayer(Arc::new(crate::access::GatewayGuard {
            access,
            gw: st.gw.clone(),
        }))
    });
    let app = Router::new()
        .route("/invocations", post(invocations))
        .route("/ping", get(ping))
        .route("/health", get(ping))
        .route("/version", get(version))
        .route("/v2", get(v2_server))
        .route("/v2/health/live", get(v2_live))
        .route("/v2/health/ready", get(v2_ready))
        .route("/v2/models/{name}", get(v2_model))
        .route("/v2/models/{name}/ready", get(v2_model_ready))
        .route("/v2/models/{name}/infer", post(v2_infer))
        .route("/v2/models/{name}/versions/{v}", get(v2_model_version))
        .route(
            "/v2/models/{name}/versions/{v}/ready",
            get(v2_model_version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{v}/infer",
            post(v2_infer_version),
        )
        .route("/v1/models", get(v1_models))
        .route("/v1/models/{name}", get(v1_model).post(v1_predict))
        .route("/feedback", post(feedback))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            body_budget,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(st);
    // Outermost: who is asking is known before a body is admitted.
    match guard {
        Some(g) => app.layer(g),
        None => app,
    }
}
