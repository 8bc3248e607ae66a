//! A blocking client for the MLflow REST API of a `ferry server`: what
//! `ferry run --server URL` records (runs, nested stage runs, params,
//! metrics, tags, artifacts, model versions and aliases) and what
//! `ferry models --server URL` reads.
//!
//! It speaks only the public MLflow endpoints, so the recorded runs and
//! versions look to every MLflow client exactly like the ones a local
//! `ferry run` writes. Lineage, which MLflow has no fields for, travels as
//! `ferry.*` version tags ([`ferry_records::lineage_tags`]).
//!
//! Responses are parsed as JSON values, reading only the fields needed here:
//! the wire types themselves belong to `ferry-tracking`.

pub mod credentials;
pub mod forge;

pub use credentials::Credentials;
use ferry_core::ExperimentId;
use ferry_records::{
    Metric, ModelSummary, ModelVersion, NewModelVersion, RunInfo, TrackedRun, lineage_tags,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid server URL `{url}`: {why}")]
    Url { url: String, why: &'static str },
    #[error("{endpoint}: cannot reach the server: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Api {
        endpoint: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{endpoint}: unexpected answer: {detail}")]
    BadResponse { endpoint: String, detail: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A refusal's text, with what to do about it.
fn refusal_hint(status: u16, text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    if status == 401 {
        format!(
            "{first}\nhint: set FERRY_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or run `ferry login URL`"
        )
    } else {
        format!("{first} (ask an admin of the workspace for a role that allows it)")
    }
}

impl Error {
    /// The server answered that the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { code, .. } if code == "RESOURCE_DOES_NOT_EXIST")
    }
    fn is_already_exists(&self) -> bool {
        matches!(self, Error::Api { code, .. } if code == "RESOURCE_ALREADY_EXISTS")
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// MLflow's `log-batch` limits per request.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS_OR_TAGS: usize = 100;

/// A document an operator named by URL (an identity provider's JWKS), read
/// once: a 2xx body of at most 1 MiB, within 10 s.
pub fn fetch_document(url: &str) -> std::result::Result<String, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("`{url}` is not an http:// or https:// URL"));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    resp.body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())
}

/// Posts `body` as JSON to a webhook an operator configured (a budget's
/// alerts): within 5 s, redirects not followed, any 2xx is delivered.
pub fn post_webhook(url: &str, body: &serde_json::Value) -> std::result::Result<(), String> {
    post_webhook_with(url, body.to_string().as_bytes(), &[])
}

/// [`post_webhook`] of a body already serialised, with more headers (a
/// signature over those very bytes): any 2xx is delivered.
pub fn post_webhook_with(
    url: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> std::result::Result<(), String> {
    match post_webhook_status(url, body, headers, Duration::from_secs(5))? {
        s if (200..300).contains(&s) => Ok(()),
        s => Err(format!("http status: {s}")),
    }
}

/// The one procedure that posts to a webhook an operator configured:
/// the status the receiver answered with (`Err`: no answer, and why).
/// Redirects are not followed (a 3xx is the answer); the connection is
/// given at most 3 s, the whole request `timeout`; the answer's body is
/// not read. The URL (which often carries a secret) is never in an error.
pub fn post_webhook_status(
    url: &str,
    body: &[u8],
    headers: &[(&str, String)],
    timeout: Duration,
) -> std::result::Result<u16, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("the webhook is not an http:// or https:// URL".into());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(3))))
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send(body)
        .map(|resp| resp.status().as_u16())
        .map_err(|e| e.to_string().replace(url, "<the webhook's URL>"))
}

/// A connection to one server (`http://host:port`, no path).
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// The `Authorization` header sent with every request.
    auth: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// A client for the server at `url`, with the credentials
    /// [`Credentials::find`] finds for it.
    pub fn new(url: &str) -> Result<Self> {
        let mut c = Self::anonymous(url)?;
        c.auth = Credentials::find(&c.base).map(|c| c.header());
        Ok(c)
    }

    /// A client for `url` that sends `credentials` (`ferry login` checks a
    /// token with one before keeping it).
    pub fn with_credentials(url: &str, credentials: &Credentials) -> Result<Self> {
        let mut c = Self::anonymous(url)?;
        c.auth = Some(credentials.header());
        Ok(c)
    }

    fn anonymous(url: &str) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        let bad = |why| Error::Url {
            url: url.to_owned(),
            why,
        };
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| bad("it must start with http:// or https://"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("it has no host"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("it must not have a query or fragment"));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(600)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            base,
            agent,
            auth: None,
        })
    }

    /// The server's URL, as MLflow clients want it in `MLFLOW_TRACKING_URI`.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn answer(
        &self,
        endpoint: &str,
        sent: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut resp = sent.map_err(|e| Error::Transport {
            endpoint: endpoint.to_owned(),
            source: Box::new(e),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| Error::Transport {
                endpoint: endpoint.to_owned(),
                source: Box::new(e),
            })?;
        let body: Value = if text.trim().is_empty() {
            json!({})
        } else if matches!(status, 401 | 403) {
            // MLflow's refusals are plain text.
            return Err(Error::Api {
                endpoint: endpoint.to_owned(),
                status,
                code: if status == 401 {
                    "UNAUTHENTICATED"
                } else {
                    "PERMISSION_DENIED"
                }
                .into(),
                message: refusal_hint(status, &text),
            });
        } else {
            serde_json::from_str(&text).map_err(|e| Error::BadResponse {
                endpoint: endpoint.to_owned(),
                detail: format!("HTTP {status}, not JSON ({e})"),
            })?
        };
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(Error::Api {
            endpoint: endpoint.to_owned(),
            status,
            code: body["error_code"].as_str().unwrap_or("").to_owned(),
            message: body["message"].as_str().unwrap_or(&text).to_owned(),
        })
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(h) => req.header("Authorization", h),
            None => req,
        }
    }

    /// Who the server says the credentials are (`users/current`).
    pub fn whoami(&self) -> Result<String> {
        let v = self.get("users/current", &[])?;
        self.string("GET /api/2.0/mlflow/users/current", &v, "/user/username")
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.post_to("mlflow", path, body, None)
    }

    /// POSTs `body` to `/api/2.0/{api}/{path}`, saying why when given (a
    /// protected alias on a team server needs a reason, sent as
    /// `ferry_records::REASON_HEADER`).
    fn post_to(&self, api: &str, path: &str, body: &Value, reason: Option<&str>) -> Result<Value> {
        let endpoint = format!("POST /api/2.0/{api}/{path}");
        let mut req = self
            .auth(
                self.agent
                    .post(format!("{}/api/2.0/{api}/{path}", self.base)),
            )
            .header("Content-Type", "application/json");
        if let Some(r) = reason {
            let encoded =
                percent_encoding::utf8_percent_encode(r, percent_encoding::NON_ALPHANUMERIC);
            req = req.header(ferry_records::REASON_HEADER, encoded.to_string());
        }
        self.answer(&endpoint, req.send(body.to_string()))
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        self.get_from("mlflow", path, query)
    }

    fn get_from(&self, api: &str, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let endpoint = format!("GET /api/2.0/{api}/{path}");
        let mut req = self.auth(
            self.agent
                .get(format!("{}/api/2.0/{api}/{path}", self.base)),
        );
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        self.answer(&endpoint, req.call())
    }

    /// Starts a rollout of `model` through the server's deployments API
    /// (`rollout`: what `ferry deploy` was asked); the answer is the
    /// deployment and the gateways that will carry it out.
    pub fn start_deployment(&self, model: &str, rollout: &Value) -> Result<Value> {
        let body = json!({ "name": model, "rollout": rollout });
        self.post_to("ferry", "deployments/create", &body, None)
    }

    /// Ends `model`'s active rollout: `promote` or `abort`, saying why.
    pub fn end_deployment(&self, model: &str, action: &str, reason: Option<&str>) -> Result<Value> {
        let body = json!({ "name": model, "action": action });
        self.post_to("ferry", "deployments/end", &body, reason)
    }

    /// `model`'s last deployment, its events and the gateways serving it.
    pub fn deployment(&self, model: &str) -> Result<Value> {
        self.get_from("ferry", "deployments/get", &[("name", model)])
    }

    /// The active deployments the caller may read.
    pub fn active_deployments(&self) -> Result<Value> {
        self.get_from("ferry", "deployments/list", &[])
    }

    // ------------------------------------------------------------ costs

    /// Records what a stage of the pipeline run `run_id` cost (`body`:
    /// the stage, its status, times and cost, the project).
    pub fn record_stage_cost(&self, body: &Value) -> Result<()> {
        self.post_to("ferry", "costs/stage", body, None).map(drop)
    }

    /// The pipeline run ended: its hold on the budgets goes; the alerts its
    /// budgets now owe (the server posts them to their webhooks). `project`
    /// names the run's owner when no stage of it was priced before.
    pub fn finish_costs(&self, run_id: &str, status: &str, project: Option<&str>) -> Result<Value> {
        let body = json!({ "run_id": run_id, "status": status, "project": project });
        self.post_to("ferry", "costs/finish", &body, None)
    }

    /// Whether a budget covers the run's pipeline.
    pub fn budget_covers(&self, run_id: &str) -> Result<bool> {
        let v = self.get_from("ferry", "budgets/covers", &[("run_id", run_id)])?;
        Ok(v["covered"].as_bool().unwrap_or(false))
    }

    /// What `stage` cost in the run's pipeline's recent runs, newest first.
    pub fn recent_stage_costs(&self, run_id: &str, stage: &str) -> Result<Vec<f64>> {
        let v = self.get_from(
            "ferry",
            "costs/recent",
            &[("run_id", run_id), ("stage", stage)],
        )?;
        Ok(v["costs"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default())
    }

    /// Holds the run's estimate against its budgets; with a reason, even
    /// over them (a maintainer's, audited).
    pub fn hold_budget(
        &self,
        run_id: &str,
        estimate_usd: f64,
        project: Option<&str>,
        over: Option<&str>,
    ) -> Result<Value> {
        let body = json!({ "run_id": run_id, "estimate_usd": estimate_usd, "project": project });
        let path = match over {
            Some(_) => "budgets/override",
            None => "budgets/hold",
        };
        self.post_to("ferry", path, &body, over)
    }

    /// Sets a budget (a server admin's).
    pub fn set_budget(&self, budget: &Value) -> Result<Value> {
        self.post_to("ferry", "budgets/set", budget, None)
    }

    /// Removes a budget (a server admin's).
    pub fn remove_budget(&self, target: &str) -> Result<Value> {
        self.post_to(
            "ferry",
            "budgets/remove",
            &json!({ "target": target }),
            None,
        )
    }

    /// Every budget and where it stands this month.
    pub fn budgets(&self) -> Result<Value> {
        self.get_from("ferry", "budgets/list", &[])
    }

    /// What `ferry cost` shows, summed on the server: `{"lines": [...]}`,
    /// or `{"versions": [...]}` by model.
    pub fn cost_report(
        &self,
        by: &str,
        since_ms: i64,
        until_ms: i64,
        offset_minutes: i32,
    ) -> Result<Value> {
        let (since, until, offset) = (
            since_ms.to_string(),
            until_ms.to_string(),
            offset_minutes.to_string(),
        );
        self.get_from(
            "ferry",
            "costs/report",
            &[
                ("by", by),
                ("since_ms", &since),
                ("until_ms", &until),
                ("utc_offset_minutes", &offset),
            ],
        )
    }

    fn field<'a>(&self, endpoint: &str, v: &'a Value, ptr: &str) -> Result<&'a Value> {
        v.pointer(ptr).ok_or_else(|| Error::BadResponse {
            endpoint: endpoint.to_owned(),
            detail: format!("no `{ptr}` in the answer"),
        })
    }

    /// An experiment id (MLflow sends it as a string), parsed here once.
    fn experiment_id(&self, endpoint: &str, v: &Value, ptr: &str) -> Result<ExperimentId> {
        self.string(endpoint, v, ptr)?
            .parse()
            .map_err(|e: ferry_core::ExperimentIdError| Error::BadResponse {
                endpoint: endpoint.to_owned(),
                detail: format!("`{ptr}`: {e}"),
            })
    }

    fn string(&self, endpoint: &str, v: &Value, ptr: &str) -> Result<String> {
        let f = self.field(endpoint, v, ptr)?;
        f.as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::BadResponse {
                endpoint: endpoint.to_owned(),
                detail: format!("`{ptr}` is not a string"),
            })
    }

    // ------------------------------------------------------------ tracking

    /// The id of the experiment called `name`, created if there is none.
    pub fn experiment(&self, name: &str) -> Result<ExperimentId> {
        let by_name = || self.get("experiments/get-by-name", &[("experiment_name", name)]);
        match by_name() {
            Ok(v) => {
                return self.experiment_id(
                    "experiments/get-by-name",
                    &v,
                    "/experiment/experiment_id",
                );
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        match self.post("experiments/create", &json!({ "name": name })) {
            Ok(v) => self.experiment_id("experiments/create", &v, "/experiment_id"),
            // Somebody else created it meanwhile.
            Err(e) if e.is_already_exists() => {
                let v = by_name()?;
                self.experiment_id("experiments/get-by-name", &v, "/experiment/experiment_id")
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a run; returns its id and artifact URI.
    pub fn create_run(
        &self,
        experiment_id: &ExperimentId,
        run_name: &str,
        start_ms: i64,
        tags: &[(String, String)],
    ) -> Result<(String, String)> {
        let v = self.post(
            "runs/create",
            &json!({
                "experiment_id": experiment_id.to_string(),
                "run_name": run_name,
                "start_time": start_ms,
                "tags": kvs(tags),
            }),
        )?;
        Ok((
            self.string("runs/create", &v, "/run/info/run_id")?,
            self.string("runs/create", &v, "/run/info/artifact_uri")?,
        ))
    }

    /// Logs metrics, params and tags, in as many requests as MLflow's
    /// per-request limits need.
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        for chunk in params.chunks(MAX_PARAMS_OR_TAGS) {
            self.post(
                "runs/log-batch",
                &json!({ "run_id": run_id, "params": kvs(chunk) }),
            )?;
        }
        for chunk in tags.chunks(MAX_PARAMS_OR_TAGS) {
            self.post(
                "runs/log-batch",
                &json!({ "run_id": run_id, "tags": kvs(chunk) }),
            )?;
        }
        for chunk in metrics.chunks(MAX_METRICS) {
            let ms: Vec<Value> = chunk
                .iter()
                .map(|m| {
                    json!({
                        "key": m.key,
                        "value": metric_value(m.value),
                        "timestamp": m.timestamp,
                        "step": m.step,
                    })
                })
                .collect();
            self.post(
                "runs/log-batch",
                &json!({ "run_id": run_id, "metrics": ms }),
            )?;
        }
        Ok(())
    }

    /// Sets a run's status (`FINISHED`, `FAILED`, `KILLED`) and end time.
    pub fn finish_run(&self, run_id: &str, status: &str, end_ms: i64) -> Result<()> {
        self.post(
            "runs/update",
            &json!({ "run_id": run_id, "status": status, "end_time": end_ms }),
        )?;
        Ok(())
    }

    /// Uploads `file` to `path` under the server's artifact root (the part
    /// of an `mlflow-artifacts:/` URI after the scheme), streaming it.
    pub fn upload_artifact(&self, path: &str, file: &Path) -> Result<()> {
        let encoded: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(encode_segment)
            .collect();
        let endpoint = format!("PUT /api/2.0/mlflow-artifacts/artifacts/{path}");
        let f = std::fs::File::open(file).map_err(|source| Error::Io {
            path: file.to_owned(),
            source,
        })?;
        let req = self.auth(self.agent.put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.base,
            encoded.join("/")
        )));
        self.answer(&endpoint, req.send(f))?;
        Ok(())
    }

    /// A run with its latest metrics, params and tags; `None` if the
    /// server has no such run.
    pub fn get_run(&self, run_id: &str) -> Result<Option<TrackedRun>> {
        match self.get("runs/get", &[("run_id", run_id)]) {
            Ok(v) => Ok(Some(self.run_from("runs/get", &v["run"])?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ids of every active experiment.
    pub fn experiment_ids(&self) -> Result<Vec<ExperimentId>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut body = json!({ "max_results": 1000 });
            if !token.is_empty() {
                body["page_token"] = json!(token);
            }
            let v = self.post("experiments/search", &body)?;
            for e in v["experiments"].as_array().into_iter().flatten() {
                out.push(self.experiment_id("experiments/search", e, "/experiment_id")?);
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_owned(),
                _ => return Ok(out),
            }
        }
    }

    /// Runs of `experiment_ids` matching MLflow's `filter`, newest first, at
    /// most `max` of them.
    pub fn search_runs(
        &self,
        experiment_ids: &[ExperimentId],
        filter: &str,
        max: usize,
    ) -> Result<Vec<TrackedRun>> {
        let mut out = Vec::new();
        if experiment_ids.is_empty() {
            return Ok(out);
        }
        let mut token = String::new();
        while out.len() < max {
            let mut body = json!({
                "experiment_ids": experiment_ids.iter().map(ExperimentId::to_string).collect::<Vec<_>>(),
                "filter": filter,
                "order_by": ["attributes.start_time DESC"],
                "max_results": (max - out.len()).min(1000),
            });
            if !token.is_empty() {
                body["page_token"] = json!(token);
            }
            let v = self.post("runs/search", &body)?;
            for r in v["runs"].as_array().into_iter().flatten() {
                out.push(self.run_from("runs/search", r)?);
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_owned(),
                _ => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// The bytes of the artifact at `path` under the server's artifact root
    /// (as [`Client::upload_artifact`] takes it); `None` if there is none.
    pub fn download_artifact(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let encoded: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(encode_segment)
            .collect();
        let endpoint = format!("GET /api/2.0/mlflow-artifacts/artifacts/{path}");
        let req = self.auth(self.agent.get(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.base,
            encoded.join("/")
        )));
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(e) => {
                return Err(Error::Transport {
                    endpoint,
                    source: Box::new(e),
                });
            }
        };
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|e| Error::Transport {
                endpoint: endpoint.clone(),
                source: Box::new(e),
            })?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            return Err(Error::Api {
                endpoint,
                status,
                code: v["error_code"].as_str().unwrap_or("").to_owned(),
                message: v["message"].as_str().unwrap_or(&text).to_owned(),
            });
        }
        Ok(Some(body))
    }

    fn run_from(&self, endpoint: &str, r: &Value) -> Result<TrackedRun> {
        let info = &r["info"];
        let pairs = |v: &Value| -> Vec<(String, String)> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some((
                        t["key"].as_str()?.to_owned(),
                        t["value"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        };
        let int = |v: &Value| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let metrics = r["data"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some(Metric {
                    key: m["key"].as_str()?.to_owned(),
                    value: match &m["value"] {
                        Value::Number(n) => n.as_f64()?,
                        Value::String(s) => match s.as_str() {
                            "NaN" => f64::NAN,
                            "Infinity" => f64::INFINITY,
                            "-Infinity" => f64::NEG_INFINITY,
                            other => other.parse().ok()?,
                        },
                        _ => return None,
                    },
                    timestamp: int(&m["timestamp"]).unwrap_or(0),
                    step: int(&m["step"]).unwrap_or(0),
                })
            })
            .collect();
        Ok(TrackedRun {
            info: RunInfo {
                run_id: info["run_id"]
                    .as_str()
                    .ok_or_else(|| Error::BadResponse {
                        endpoint: endpoint.to_owned(),
                        detail: "a run without `info.run_id`".into(),
                    })?
                    .to_owned(),
                experiment_id: self.experiment_id(endpoint, r, "/info/experiment_id")?,
                run_name: info["run_name"].as_str().unwrap_or_default().to_owned(),
                user_id: info["user_id"].as_str().unwrap_or_default().to_owned(),
                status: info["status"].as_str().unwrap_or("RUNNING").to_owned(),
                start_time: int(&info["start_time"]).unwrap_or(0),
                end_time: int(&info["end_time"]),
                artifact_uri: info["artifact_uri"].as_str().unwrap_or_default().to_owned(),
                lifecycle_stage: info["lifecycle_stage"]
                    .as_str()
                    .unwrap_or("active")
                    .to_owned(),
            },
            metrics,
            params: pairs(&r["data"]["params"]),
            tags: pairs(&r["data"]["tags"]),
            inputs: Vec::new(),
            outputs: Vec::new(),
        })
    }

    // ------------------------------------------------------------ registry

    /// Every registered model, by name.
    pub fn list_models(&self) -> Result<Vec<ModelSummary>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q = vec![("max_results", "1000")];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let v = self.get("registered-models/search", &q)?;
            for m in v["registered_models"].as_array().into_iter().flatten() {
                let name = m["name"].as_str().unwrap_or_default().to_owned();
                let versions = self.list_versions(&name)?;
                out.push(ModelSummary {
                    created_ms: m["creation_timestamp"].as_i64().unwrap_or(0),
                    latest_version: versions.last().map(|v| v.version),
                    versions: versions.len() as i64,
                    aliases: m["aliases"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| {
                            Some((
                                a["alias"].as_str()?.to_owned(),
                                a["version"].as_str()?.parse().ok()?,
                            ))
                        })
                        .collect(),
                    name,
                });
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_owned(),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every version of `model`, oldest first (none if there is no such model).
    pub fn list_versions(&self, model: &str) -> Result<Vec<ModelVersion>> {
        let filter = format!("name = {}", quote(model));
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q = vec![("filter", filter.as_str()), ("max_results", "10000")];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let v = self.get("model-versions/search", &q)?;
            for mv in v["model_versions"].as_array().into_iter().flatten() {
                out.push(self.version_from("model-versions/search", mv)?);
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_owned(),
                _ => break,
            }
        }
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    pub fn get_version(&self, model: &str, version: i64) -> Result<Option<ModelVersion>> {
        let v = version.to_string();
        match self.get(
            "model-versions/get",
            &[("name", model), ("version", v.as_str())],
        ) {
            Ok(a) => Ok(Some(
                self.version_from("model-versions/get", &a["model_version"])?,
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The version `alias` points at. Read from the model's alias list:
    /// MLflow answers a missing alias with a 400, not a 404.
    pub fn resolve_alias(&self, model: &str, alias: &str) -> Result<Option<ModelVersion>> {
        let m = match self.get("registered-models/get", &[("name", model)]) {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let version = m["registered_model"]["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["alias"].as_str() == Some(alias))
            .and_then(|a| a["version"].as_str()?.parse().ok());
        match version {
            Some(v) => self.get_version(model, v),
            None => Ok(None),
        }
    }

    pub fn latest_version(&self, model: &str) -> Result<Option<ModelVersion>> {
        Ok(self.list_versions(model)?.pop())
    }

    /// Points `alias` at `version`, saying why (a protected alias on a
    /// team server needs a reason, sent as `ferry_records::REASON_HEADER`).
    pub fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: i64,
        reason: Option<&str>,
    ) -> Result<()> {
        let body = json!({ "name": model, "alias": alias, "version": version.to_string() });
        self.post_to("mlflow", "registered-models/alias", &body, reason)?;
        Ok(())
    }

    /// Registers a version of `nv.model` (creating the model if needed)
    /// whose files are at `source` (e.g. `runs:/<run>/<model>`), with its
    /// lineage as tags, and points `nv.alias` at it.
    pub fn create_model_version(&self, nv: &NewModelVersion, source: &str) -> Result<ModelVersion> {
        match self.post("registered-models/create", &json!({ "name": nv.model })) {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
        let mut body = json!({
            "name": nv.model,
            "source": source,
            "tags": kvs(&lineage_tags::of(nv)),
        });
        if let Some(r) = &nv.run_id {
            body["run_id"] = json!(r);
        }
        let v = self.post("model-versions/create", &body)?;
        let mut mv = self.version_from("model-versions/create", &v["model_version"])?;
        if let Some(alias) = &nv.alias {
            let why = "registered by `ferry run`: the pipeline's gates passed";
            self.set_alias(&nv.model, alias, mv.version, Some(why))?;
            mv.aliases.push(alias.clone());
        }
        Ok(mv)
    }

    fn version_from(&self, endpoint: &str, v: &Value) -> Result<ModelVersion> {
        let bad = |detail: &str| Error::BadResponse {
            endpoint: endpoint.to_owned(),
            detail: detail.to_owned(),
        };
        let version = match &v["version"] {
            Value::String(s) => s.parse().map_err(|_| bad("`version` is not a number"))?,
            Value::Number(n) => n.as_i64().ok_or_else(|| bad("`version` is not a number"))?,
            _ => return Err(bad("no `version` in the model version")),
        };
        let tags: Vec<(String, String)> = v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t["key"].as_str()?.to_owned(),
                    t["value"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let source = v["source"].as_str().unwrap_or_default().to_owned();
        let mut mv = ModelVersion {
            model: v["name"]
                .as_str()
                .ok_or_else(|| bad("no `name` in the model version"))?
                .to_owned(),
            version,
            run_id: v["run_id"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            artifact_path: source.clone(),
            artifact_digest: String::new(),
            artifact_size: 0,
            git_commit: None,
            git_dirty: None,
            env_fingerprint: None,
            lineage: json!({}),
            created_ms: v["creation_timestamp"].as_i64().unwrap_or(0),
            status: v["status"].as_str().unwrap_or("READY").to_ascii_lowercase(),
            aliases: v["aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            source,
            description: v["description"].as_str().unwrap_or_default().to_owned(),
            last_updated_ms: v["last_updated_timestamp"].as_i64().unwrap_or(0),
            tags: vec![],
            stored: None,
        };
        lineage_tags::apply(&mut mv, &tags);
        mv.tags = tags;
        Ok(mv)
    }
}

fn kvs(pairs: &[(String, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

/// MLflow's JSON spells the special floats as strings.
fn metric_value(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

/// A string literal of the search filter grammar.
fn quote(s: &str) -> String {
    if s.contains('\'') {
        format!("\"{s}\"")
    } else {
        format!("'{s}'")
    }
}

/// Percent-encodes one path segment (unreserved characters stay).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_webhooks_url_is_never_in_its_error() {
        for url in [
            "http://127.0.0.1:9/hooks/T000/B000/s3cretToken",
            "http://bad host/hooks/s3cretToken",
        ] {
            let err = post_webhook_with(url, b"{}", &[]).unwrap_err();
            assert!(!err.contains("s3cretToken"), "{err}");
        }
    }

    /// One answer per connection, read off a local listener.
    fn answer_once(status_line: &'static str) -> (String, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "{status_line}\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        });
        (url, t)
    }

    #[test]
    fn a_webhooks_answer_is_its_status_and_redirects_are_not_followed() {
        for (line, want) in [
            ("HTTP/1.1 204 No Content", 204),
            ("HTTP/1.1 500 Internal Server Error", 500),
            ("HTTP/1.1 302 Found", 302),
        ] {
            let (url, t) = answer_once(line);
            let got = post_webhook_status(&url, b"{}", &[], Duration::from_secs(5));
            assert_eq!(got, Ok(want), "{line}");
            t.join().unwrap();
        }
        let (url, t) = answer_once("HTTP/1.1 302 Found");
        let err = post_webhook_with(&url, b"{}", &[]).unwrap_err();
        assert_eq!(err, "http status: 302");
        t.join().unwrap();
    }

    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(Client::new("http://127.0.0.1:5000").is_ok());
        assert!(Client::new("https://ml.example.com/").is_ok());
        for bad in ["127.0.0.1:5000", "ftp://x", "http://", "http://h/?q=1"] {
            assert!(matches!(Client::new(bad), Err(Error::Url { .. })), "{bad}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("model.onnx"), "model.onnx");
        assert_eq!(encode_segment("a b%2F"), "a%20b%252F");
    }

    #[test]
    fn experiment_ids_in_answers_are_parsed_once() {
        let c = Client::new("http://127.0.0.1:9").unwrap();
        let run = |id: Value| json!({"info": {"run_id": "r1", "experiment_id": id}});
        let ok = c.run_from("runs/get", &run(json!("7"))).unwrap();
        assert_eq!(ok.info.experiment_id.get(), 7);
        for (bad, why) in [
            (
                json!("x"),
                "`/info/experiment_id`: experiment id `x` is not a non-negative integer",
            ),
            (
                json!("-1"),
                "`/info/experiment_id`: experiment id `-1` is not a non-negative integer",
            ),
            (json!(7), "`/info/experiment_id` is not a string"),
            (Value::Null, "`/info/experiment_id` is not a string"),
        ] {
            let e = c.run_from("runs/get", &run(bad.clone())).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("runs/get: unexpected answer: {why}"),
                "{bad}"
            );
        }
        let e = c
            .experiment_id("experiments/create", &json!({}), "/experiment_id")
            .unwrap_err();
        assert!(e.to_string().contains("no `/experiment_id`"), "{e}");
    }

    #[test]
    fn special_floats_use_mlflow_spelling() {
        assert_eq!(metric_value(f64::NAN), json!("NaN"));
        assert_eq!(metric_value(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(metric_value(0.5), json!(0.5));
    }
}
