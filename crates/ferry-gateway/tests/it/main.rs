//! The gateway through its router (no sockets) over a real store: every
//! protocol route, bad input in each protocol's error shape, the canary
//! state machine with misbehaving candidates, load during promotion and
//! rollback, a restart that resumes, metrics checked by promtool.

#![allow(clippy::unwrap_used)]

mod access;
mod bucket;
mod canary;
mod integrity;
mod process;
mod replicas;
mod routes;
mod text;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ferry_gateway::loader::StoreLoader;
use ferry_gateway::predlog::{PredLog, PredLogConfig};
use ferry_gateway::{Gateway, HttpState, ServeSpec};
use ferry_metadata::{MetadataStore, NewModelVersion, SqlStore};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn MetadataStore>,
    /// The process runtimes its gateways may start (none unless a test
    /// defines some).
    pub runtimes: ferry_gateway::runtime::Runtimes,
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ferry-onnx/tests/fixtures")
        .join(name)
}

impl Env {
    pub async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        Env::with(dir, &url).await
    }

    /// An environment on the store at `url` (artifacts in a new folder).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub async fn on(url: &str) -> Env {
        Env::with(tempfile::tempdir().unwrap(), url).await
    }

    async fn with(dir: tempfile::TempDir, url: &str) -> Env {
        let store: Arc<dyn MetadataStore> = Arc::new(SqlStore::open(url).await.unwrap());
        Env {
            dir,
            store,
            runtimes: Default::default(),
        }
    }

    pub fn artifacts(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    /// Registers a version whose files are `onnx` (copied into the
    /// artifact root) or, with `fake`, a misbehaving fake.
    pub async fn version(
        &self,
        model: &str,
        onnx: Option<&str>,
        fake: Option<&str>,
        alias: Option<&str>,
    ) -> i64 {
        self.version_signed(model, onnx, fake, alias, &[]).await
    }

    /// [`Env::version`] with an `MLmodel` whose signature is `columns`
    /// (doubles), as `ferry run` writes one (none when `columns` is empty).
    pub async fn version_signed(
        &self,
        model: &str,
        onnx: Option<&str>,
        fake: Option<&str>,
        alias: Option<&str>,
        columns: &[&str],
    ) -> i64 {
        let sig = ferry_mlmodel::Signature {
            inputs: columns
                .iter()
                .map(|c| ferry_mlmodel::Column {
                    name: (*c).into(),
                    ty: ferry_mlmodel::ColType::Double,
                    required: true,
                })
                .collect(),
        };
        let sig = (!columns.is_empty()).then_some(sig);
        self.version_with(model, onnx, fake, alias, sig.as_ref())
            .await
    }

    /// [`Env::version`] with an `MLmodel` whose signature is `sig` (its
    /// columns typed as given: a text model's `text: string`).
    pub async fn version_with(
        &self,
        model: &str,
        onnx: Option<&str>,
        fake: Option<&str>,
        alias: Option<&str>,
        sig: Option<&ferry_mlmodel::Signature>,
    ) -> i64 {
        let n = self
            .store
            .latest_version(model)
            .await
            .unwrap()
            .map_or(1, |v| v.version + 1);
        let rel = format!("models/{model}/{n}");
        let d = self.artifacts().join(&rel);
        if let Some(f) = onnx {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(fixture(f), d.join("model.onnx")).unwrap();
        }
        if let Some(sig) = sig {
            let text = ferry_mlmodel::render_onnx(
                "model.onnx",
                Some(sig),
                &ferry_mlmodel::Provenance {
                    run_id: None,
                    utc_time_created: "2026-12-02 00:00:00.000000",
                    model_uuid: "0123456789abcdef0123456789abcdef",
                },
            );
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("MLmodel"), text).unwrap();
        }
        let v = self
            .store
            .create_model_version(&NewModelVersion {
                model: model.into(),
                run_id: None,
                artifact_path: "model.onnx".into(),
                artifact_digest: format!("d{n}"),
                artifact_size: 1,
                git_commit: Some(format!("c0ffee{n}")),
                git_dirty: Some(false),
                env_fingerprint: None,
                lineage: serde_json::json!({}),
                created_ms: 1,
                alias: alias.map(Into::into),
                source: Some(format!("mlflow-artifacts:/{rel}")),
                stored: Some(ferry_metadata::StoredFiles {
                    location: format!("mlflow-artifacts:/{rel}"),
                    digest: ferry_cache::stored_digest(&d).unwrap().to_hex(),
                }),
            })
            .await
            .unwrap();
        if let Some(f) = fake {
            self.store
                .set_version_tag(model, v.version, "ferry.fake", f)
                .await
                .unwrap();
        }
        v.version
    }

    pub async fn gateway(&self, specs: &[&str], log: bool) -> Arc<Gateway> {
        self.gateway_with(specs, log, ferry_gateway::gateway::REQUEST_TIMEOUT)
            .await
    }

    pub async fn gateway_with(
        &self,
        specs: &[&str],
        log: bool,
        timeout: std::time::Duration,
    ) -> Arc<Gateway> {
        let loader = Arc::new(StoreLoader {
            store: self.store.clone(),
            artifacts: self.artifacts().into(),
            allow_fakes: true,
            runtimes: self.runtimes.clone(),
        });
        let predlog = log.then(|| {
            PredLog::start(PredLogConfig::new(self.dir.path().join("predictions"))).unwrap()
        });
        let mut gw = Gateway::new(
            specs
                .iter()
                .map(|s| s.parse::<ServeSpec>().unwrap())
                .collect(),
            self.store.clone(),
            loader,
            predlog,
        );
        gw.request_timeout = timeout;
        let gw = Arc::new(gw);
        gw.reconcile(true).await.unwrap();
        gw
    }
}

pub fn app(gw: &Arc<Gateway>) -> axum::Router {
    ferry_gateway::router(
        HttpState {
            gw: gw.clone(),
            max_body: 1 << 16,
            bodies: ferry_gateway::http::BodyBudget::default(),
        },
        None,
    )
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
    pub fn header(&self, h: &str) -> Option<&str> {
        self.headers.get(h).and_then(|v| v.to_str().ok())
    }
}

pub async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    ct: Option<&str>,
    body: &str,
) -> Resp {
    let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
    call_with(app, method, uri, &headers, body).await
}

/// [`call`] with any `headers`.
pub async fn call_with(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = app
        .clone()
        .oneshot(b.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn post_json(app: &axum::Router, uri: &str, body: &str) -> Resp {
    call(app, "POST", uri, Some("application/json"), body).await
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The Grafana dashboard the repository ships reads only series the
/// gateway's `/metrics` exports (a renamed metric breaks this, not a
/// user's dashboard), and `ferry monitor rules` the same.
#[test]
fn the_grafana_dashboard_reads_series_the_gateway_exports() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("docs/grafana/ferry.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exported = include_str!("../../src/metrics.rs");
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 10);
    let mut seen = 0;
    for e in &exprs {
        for (i, _) in e.match_indices("ferry_") {
            let name: String = e[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                exported.contains(&format!("\"{family}\"")),
                "the dashboard reads `{name}`, which /metrics does not export"
            );
            seen += 1;
        }
    }
    assert!(seen >= exprs.len());
}
