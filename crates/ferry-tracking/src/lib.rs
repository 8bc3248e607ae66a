//! `ferry server`: the MLflow REST API over ferry's store, so the official
//! `mlflow` client works unchanged against it.
//!
//! This is the only crate that knows HTTP and MLflow's wire shapes
//! ([`wire`]); it talks to the store through `ferry_metadata`'s traits and to
//! artifacts only through an [`ferry_artifacts::ArtifactStore`] (a local
//! folder or a bucket), which confines every path under its root. One error type ([`error::ApiError`]) maps to status codes in one
//! place.

pub mod artifacts;
pub mod auth;
pub mod deliver;
pub mod error;
pub mod extract;
pub mod hooks;
mod routes;
pub mod wire;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{delete, get, patch, post};
use ferry_metadata::MetadataStore;
use std::net::SocketAddr;
use std::sync::Arc;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: Arc<dyn ferry_artifacts::ArtifactStore>,
    /// JSON request bodies held at once, for the whole server (artifact
    /// uploads stream to the artifact store and take none).
    pub bodies: ferry_http::BodyBudget,
    /// The hosts budget alerts may be posted to (`ferry server
    /// --webhook-host`): a budget naming another is refused, and nothing
    /// else is ever fetched on a client's say.
    pub webhook_hosts: Arc<[String]>,
    /// What the dashboard reads besides the store (the prediction log).
    pub dashboard: ferry_dashboard::Settings,
    /// The forges whose webhooks trigger runs (`ferry server --hooks`);
    /// `None`: `/hooks/*` answers 404.
    pub hooks: Option<Arc<hooks::Hooks>>,
}

/// What handlers get of [`AppState`]: one reference count for the whole
/// state, so a request's clones touch one counter instead of one per field.
pub(crate) type Shared = Arc<AppState>;

pub(crate) fn now_ms() -> i64 {
    ferry_core::now_ms()
}

/// The largest JSON request body.
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// Every route of the server.
/// Every route, behind `gate` when given (`None`: a server that never asks,
/// the one a `ferry run` starts for its own stages). The gate is not part
/// of [`AppState`], which every handler shares.
pub fn router(state: AppState, gate: Option<Arc<auth::Gate>>) -> Router {
    let state: Shared = Arc::new(state);
    use routes::{artifacts as a, experiments as e, models as m, registry as g, runs as r};
    let mlflow = Router::new()
        .route("/experiments/create", post(e::create))
        .route("/experiments/get", get(e::get))
        .route("/experiments/get-by-name", get(e::get_by_name))
        .route("/experiments/search", post(e::search).get(e::search_get))
        .route("/experiments/update", post(e::update))
        .route("/experiments/set-experiment-tag", post(e::set_tag))
        .route("/experiments/delete-experiment-tag", post(e::delete_tag))
        .route("/experiments/delete", post(e::delete))
        .route("/experiments/restore", post(e::restore))
        .route("/runs/create", post(r::create))
        .route("/runs/get", get(r::get))
        .route("/runs/update", post(r::update))
        .route("/runs/delete", post(r::delete))
        .route("/runs/restore", post(r::restore))
        .route("/runs/log-metric", post(r::log_metric))
        .route("/runs/log-parameter", post(r::log_param))
        .route("/runs/set-tag", post(r::set_tag))
        .route("/runs/delete-tag", post(r::delete_tag))
        .route("/runs/log-batch", post(r::log_batch))
        .route("/runs/log-inputs", post(r::log_inputs))
        .route("/runs/search", post(r::search))
        .route("/metrics/get-history", get(r::history))
        .route("/artifacts/list", get(a::run_list))
        .route("/runs/outputs", post(m::run_outputs))
        .route("/logged-models", post(m::create))
        .route("/logged-models/search", post(m::search))
        .route("/logged-models/{model_id}", get(m::get).patch(m::finalize))
        .route("/logged-models/{model_id}/tags", patch(m::set_tags))
        .route(
            "/logged-models/{model_id}/tags/{key}",
            delete(m::delete_tag),
        )
        .route("/registered-models/create", post(g::create_model))
        .route("/registered-models/get", get(g::get_model))
        .route("/registered-models/update", patch(g::update_model))
        .route("/registered-models/rename", post(g::rename_model))
        .route("/registered-models/delete", delete(g::delete_model))
        .route("/registered-models/set-tag", post(g::set_model_tag))
        .route("/registered-models/delete-tag", delete(g::delete_model_tag))
        .route(
            "/registered-models/get-latest-versions",
            post(g::latest_versions),
        )
        .route(
            "/registered-models/alias",
            post(g::set_alias).get(g::get_alias).delete(g::delete_alias),
        )
        .route("/registered-models/search", get(g::search_models))
        .route("/model-versions/create", post(g::create_version))
        .route("/model-versions/get", get(g::get_version))
        .route("/model-versions/update", patch(g::update_version))
        .route("/model-versions/delete", delete(g::delete_version))
        .route("/model-versions/set-tag", post(g::set_version_tag))
        .route("/model-versions/delete-tag", delete(g::delete_version_tag))
        .route("/model-versions/search", get(g::search_versions))
        .route("/model-versions/get-download-uri", get(g::download_uri))
        .layer(axum::middleware::from_fn_with_state(
            state.bodies.clone(),
            json_budget,
        ))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
    // Uploads stream to disk, so no body limit applies to them.
    let artifact_file = get(a::download)
        .put(a::upload)
        .delete(a::delete)
        .layer(DefaultBodyLimit::disable());
    use routes::costs as c;
    use routes::deployments as d;
    // ferry's own API: rollouts started and ended through the server.
    let ferry = Router::new()
        .route("/deployments/create", post(d::create))
        .route("/deployments/end", post(d::end))
        .route("/deployments/get", get(d::get))
        .route("/deployments/list", get(d::list))
        .route("/costs/stage", post(c::stage))
        .route("/costs/finish", post(c::finish))
        .route("/costs/recent", get(c::recent))
        .route("/costs/report", get(c::report))
        .route("/budgets/covers", get(c::covers))
        .route("/budgets/hold", post(c::hold))
        .route("/budgets/override", post(c::over))
        .route("/budgets/set", post(c::set))
        .route("/budgets/remove", post(c::remove))
        .route("/budgets/list", get(c::list))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
    let auth_api = auth::routes().layer(axum::middleware::from_fn(auth::needs_gate));
    // Forges' webhooks: authenticated by their signature, not by the gate;
    // they read their own body, within `hooks::MAX_BODY`.
    use routes::hooks as h;
    let webhooks = Router::new()
        .route("/hooks/github", post(h::github))
        .route("/hooks/gitlab", post(h::gitlab))
        .layer(DefaultBodyLimit::disable());
    let app = Router::new()
        .nest("/api/2.0/mlflow", mlflow)
        .nest("/api/2.0/ferry", ferry)
        .merge(auth_api)
        .merge(webhooks)
        .route("/api/2.0/mlflow-artifacts/artifacts", get(a::list))
        .route("/api/2.0/mlflow-artifacts/artifacts/{*path}", artifact_file)
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/get-artifact", get(a::get_artifact))
        .route("/health", get(health))
        .route("/version", get(version))
        .fallback(not_found)
        .with_state(state.clone())
        // The dashboard, at `/` and under `/ui/` (`ferry-dashboard`).
        .merge(ferry_dashboard::router(
            state.store.clone(),
            state.dashboard.clone(),
        ));
    // The gate goes outside everything: no route, known or not, runs first.
    match gate {
        Some(g) => app.layer(ferry_http::guard::GuardLayer(g)),
        None => app,
    }
}

/// Holds a JSON request's share of [`AppState::bodies`] while it is answered.
async fn json_budget(
    axum::extract::State(bodies): axum::extract::State<ferry_http::BodyBudget>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let length = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    match bodies
        .admit(req.method().as_str(), length, MAX_JSON_BODY)
        .await
    {
        Ok(held) => {
            let resp = next.run(req).await;
            drop(held);
            resp
        }
        Err(ferry_http::Full) => error::ApiError::busy(format!(
            "the server holds {} MiB of request bodies at most and is full; retry",
            bodies.total_mib()
        ))
        .into_response(),
    }
}

async fn health() -> &'static str {
    "OK"
}

async fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

async fn server_info() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "features_enabled": {},
    }))
}

async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    let body = serde_json::json!({
        "error_code": "ENDPOINT_NOT_FOUND",
        "message": format!("No endpoint {}", uri.path()),
    });
    (StatusCode::NOT_FOUND, Json(body))
}

/// Where `ferry server` listens and what it serves.
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub store_url: String,
    /// Where artifacts are kept: a local folder or a bucket.
    pub artifacts: Arc<dyn ferry_artifacts::ArtifactStore>,
    /// JSON request bodies held at once, in bytes.
    pub body_budget: usize,
    /// Connections, header deadline, body rate.
    pub limits: ferry_http::ConnLimits,
    /// Every request needs credentials, even while the store has no users
    /// (a server other machines can reach); else only once it has some.
    pub require_auth: bool,
    /// Single sign-on: an identity provider whose ID tokens are accepted.
    pub oidc: Option<ferry_access::Sso>,
    /// See [`AppState::webhook_hosts`].
    pub webhook_hosts: Vec<String>,
    /// The prediction log the dashboard looks request ids up in.
    pub predictions: Option<std::path::PathBuf>,
    /// The stage logs of runs made on this machine (a project's).
    pub logs: Option<std::path::PathBuf>,
    /// What measures drift on the dashboard's Monitoring page.
    pub drift: Option<std::sync::Arc<dyn ferry_dashboard::monitoring::DriftEngine>>,
    /// See [`AppState::hooks`].
    pub hooks: Option<hooks::Hooks>,
    /// Where the registry's and rollouts' events are delivered (`ferry
    /// server --hooks FILE`, `deliver:`): a background task when any.
    pub deliver: Vec<deliver::Endpoint>,
}

/// The answer to a request whose body arrived too slowly (the mlflow
/// client retries a 408 by itself).
fn too_slow() -> axum::response::Response {
    error::ApiError::too_slow().into_response()
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] ferry_metadata::Error),
    #[error("cannot use the artifact folder `{}`: {source}", path.display())]
    Artifacts {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr}: {source}\nhint: {}",
        ferry_http::bind_hint(source)
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs the server until Ctrl-C or SIGTERM, then finishes in-flight requests.
pub async fn serve(cfg: ServerConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let store = ferry_metadata::SqlStore::open(&cfg.store_url)
        .await?
        .with_group_commit();
    let store: Arc<dyn MetadataStore> = Arc::new(store);
    if !cfg.deliver.is_empty() {
        let d = deliver::Deliverer::new(
            store.clone(),
            cfg.deliver,
            Arc::new(ferry_core::clock::SystemClock),
            deliver::Settings::default(),
        );
        tokio::spawn(d.run(std::future::pending()));
    }
    let gate = auth::Gate::with_oidc(store.clone(), cfg.require_auth, cfg.oidc).await?;
    gate.spawn_poll();
    if gate.is_on() {
        tracing::info!("the store has users: every request needs credentials");
    }
    let state = AppState {
        store,
        artifacts: cfg.artifacts.clone(),
        bodies: ferry_http::BodyBudget::new(cfg.body_budget, std::time::Duration::from_secs(10)),
        webhook_hosts: cfg.webhook_hosts.into(),
        dashboard: ferry_dashboard::Settings {
            predictions: cfg.predictions,
            logs: cfg.logs,
            artifacts: Some(cfg.artifacts),
            drift: cfg.drift,
        },
        hooks: cfg.hooks.map(Arc::new),
    };
    let app = router(state, Some(gate)).layer(axum::middleware::from_fn(log_requests));
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    ready(local);
    ferry_http::serve(listener, app, cfg.limits, too_slow, async {
        ferry_http::shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
    .await
    .map_err(ServeError::Serve)
}

/// One structured log line per request.
async fn log_requests(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // The URI shares the request's bytes: no copy of the path or query.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let query = uri.query().unwrap_or("");
    let query = query
        .char_indices()
        .nth(200)
        .map_or(query, |(end, _)| &query[..end]);
    tracing::info!(
        method = %method,
        path = %uri.path(),
        query = %query,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// A server on a private loopback port for the length of a `ferry run`, so
/// stages can log to the pipeline's run with the stock mlflow client.
/// Dropping it stops the server.
pub struct Embedded {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Embedded {
    /// Starts serving `store_url` with artifacts under `artifacts`.
    pub fn start(store_url: &str, artifacts: &std::path::Path) -> Result<Self, ServeError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, ServeError>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let url = store_url.to_owned();
        let art = artifacts.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(ServeError::Serve(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let started = async {
                    let store = ferry_metadata::SqlStore::open(&url)
                        .await?
                        .with_group_commit();
                    let artifacts = artifacts::ArtifactRoot::new(&art).map_err(|source| {
                        ServeError::Artifacts {
                            path: art.clone(),
                            source,
                        }
                    })?;
                    let state = AppState {
                        store: Arc::new(store),
                        artifacts: Arc::new(artifacts),
                        bodies: ferry_http::BodyBudget::default(),
                        webhook_hosts: Arc::new([]),
                        dashboard: Default::default(),
                        hooks: None,
                    };
                    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(|source| ServeError::Bind { addr, source })?;
                    Ok::<_, ServeError>((router(state, None), listener))
                };
                match started.await {
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                    Ok((app, listener)) => {
                        match listener.local_addr() {
                            Ok(a) => {
                                let _ = ready_tx.send(Ok(a));
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(ServeError::Serve(e)));
                                return;
                            }
                        }
                        let stop = async {
                            let _ = stop_rx.await;
                        };
                        let limits = ferry_http::ConnLimits::default();
                        let _ = ferry_http::serve(listener, app, limits, too_slow, stop).await;
                    }
                }
            });
        });
        let addr = ready_rx.recv().map_err(|_| {
            ServeError::Serve(std::io::Error::other(
                "the embedded server stopped while starting",
            ))
        })??;
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
