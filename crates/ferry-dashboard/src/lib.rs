//! The dashboard `ferry server` serves at `/` on its own port: server-rendered
//! HTML (minijinja templates compiled into the binary, with HTML escaping on
//! for every value), charts drawn as SVG on the server ([`svg`]), one small
//! script of its own (local times, live refresh) and one stylesheet (light
//! and dark, readable without colour). No build chain, no CDN: it works on
//! a network with no internet.
//!
//! The pages sit behind the tracking server's gate like the API: with users,
//! every page needs credentials (a browser's Basic prompt), and each page
//! shows only the workspaces the caller holds a role in ([`view::Viewer`]);
//! a server admin, or a server with no users, sees all of them.
//!
//! Pages read the store through `ferry-metadata`'s interfaces only; nothing
//! here writes.

mod audit;
mod checks;
mod compare;
mod cost;
mod error;
pub mod live;
mod logs;
mod models;
pub mod monitoring;
mod pages;
pub mod requests;
mod rollouts;
pub mod svg;
pub mod view;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferry_metadata::MetadataStore;
use std::path::PathBuf;
use std::sync::Arc;

pub use error::DashError;

/// What the server tells the dashboard besides its store.
#[derive(Clone, Default)]
pub struct Settings {
    /// The prediction log's folder (`ferry serve --log-dir`), where
    /// request ids are looked up; `None`: the lookup says it has no log.
    pub predictions: Option<PathBuf>,
    /// The stage logs of runs on this machine (a project's `.ferry/logs`).
    pub logs: Option<PathBuf>,
    /// The server's artifacts: the logs of runs recorded through it.
    pub artifacts: Option<Arc<dyn ferry_artifacts::ArtifactStore>>,
    /// What measures drift between windows of the prediction log.
    pub drift: Option<Arc<dyn monitoring::DriftEngine>>,
}

/// What every page handler has: the store, the templates, the settings.
#[derive(Clone)]
pub struct Dash {
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) templates: Arc<minijinja::Environment<'static>>,
    pub(crate) predictions: Option<Arc<PathBuf>>,
    pub(crate) logs: Option<Arc<PathBuf>>,
    pub(crate) artifacts: Option<Arc<dyn ferry_artifacts::ArtifactStore>>,
    pub(crate) drift: Option<Arc<dyn monitoring::DriftEngine>>,
    /// What was read of the prediction log, kept across views.
    pub(crate) monitoring: Arc<monitoring::Memory>,
}

impl Dash {
    pub fn new(store: Arc<dyn MetadataStore>, settings: Settings) -> Self {
        Self {
            store,
            templates: Arc::new(pages::templates()),
            predictions: settings.predictions.map(Arc::new),
            logs: settings.logs.map(Arc::new),
            artifacts: settings.artifacts,
            drift: settings.drift,
            monitoring: Arc::default(),
        }
    }
}

/// The paths the dashboard answers: `/`, and everything under `/ui/`.
pub fn serves(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// The dashboard's routes, to merge into the server's router (under its
/// gate).
pub fn router(store: Arc<dyn MetadataStore>, settings: Settings) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/ui/runs", get(pages::runs))
        .route("/ui/runs/{id}", get(pages::run))
        .route("/ui/runs/{id}/logs/{stage}", get(logs::log))
        .route("/ui/runs/{id}/checks/{name}", get(checks::report))
        .route("/ui/compare", get(compare::compare))
        .route("/ui/models", get(models::models))
        .route("/ui/models/{name}", get(models::model))
        .route("/ui/models/{name}/{version}", get(models::version))
        .route("/ui/requests", get(requests::request))
        .route("/ui/monitoring", get(monitoring::models))
        .route("/ui/monitoring/{name}", get(monitoring::model))
        .route("/ui/cost", get(cost::cost))
        .route("/ui/audit", get(audit::audit))
        .route("/ui/rollouts", get(rollouts::rollouts))
        .route("/ui/rollouts/{id}", get(rollouts::rollout))
        .route("/ui/rollouts/{id}/live", get(rollouts::rollout_live))
        // Pages name no icon (`data:`), but a browser may still ask.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route("/ui/static/app.css", get(css))
        .route("/ui/static/app.js", get(js))
        .with_state(Dash::new(store, settings))
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset(include_str!("../static/app.css"), "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(
        include_str!("../static/app.js"),
        "text/javascript; charset=utf-8",
    )
}
