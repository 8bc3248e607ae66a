//! The gateway's state: which versions serve which model with what weight
//! (the route table), how it is rebuilt from the store, and the prediction
//! path every protocol shares.
//!
//! One code path for start-up and change: [`Gateway::reconcile`] reads the
//! store (aliases, versions, active deployments), loads what is not loaded
//! yet, builds a new table and swaps it in. A request holds the table (and
//! the versions in it) it started with, so a weight change, a promotion, a
//! rollback or a reload never drops a request in flight.

use crate::canary::{self, Phase, Plan, Strategy, Window};
use crate::loader::{LoadError, Loader};
use crate::predictor::{self, PredictError, Predictor};
use crate::predlog::PredLog;
use crate::rollout;
use crate::stats::{Snapshot, VersionStats};
use ferry_metadata::{Deployment, DeploymentChange, MetadataStore, ModelVersion};
use ferry_onnx::{Tensor, TensorData};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

/// A model the gateway serves, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSpec {
    pub name: String,
    pub selector: Selector,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Alias(String),
    Version(i64),
    Latest,
}

impl std::str::FromStr for ServeSpec {
    type Err = String;
    /// `iris@production`, `iris/3` or `iris` (its latest version).
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, selector) = if let Some((n, a)) = s.split_once('@') {
            if a.is_empty() {
                return Err(format!("`{s}`: an alias is missing after `@`"));
            }
            (n, Selector::Alias(a.to_owned()))
        } else if let Some((n, v)) = s.rsplit_once('/') {
            let v: i64 = v
                .parse()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| format!("`{s}`: `{v}` is not a version number"))?;
            (n, Selector::Version(v))
        } else {
            (s, Selector::Latest)
        };
        ferry_core::ModelName::new(name).map_err(|e| format!("`{s}`: {e}"))?;
        Ok(ServeSpec {
            name: name.to_owned(),
            selector,
        })
    }
}

impl std::fmt::Display for ServeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Alias(a) => write!(f, "{}@{a}", self.name),
            Selector::Version(v) => write!(f, "{}/{v}", self.name),
            Selector::Latest => write!(f, "{}", self.name),
        }
    }
}

/// One loaded version and its measurements.
pub struct Served {
    pub model: String,
    pub version: i64,
    pub predictor: Arc<dyn Predictor>,
    pub stats: VersionStats,
    pub git_commit: Option<String>,
    pub run_id: Option<String>,
    label: Option<usize>,
    numeric: Option<usize>,
}

impl Served {
    pub fn new(v: &ModelVersion, predictor: Arc<dyn Predictor>) -> Self {
        let label = predictor::label_output(predictor.outputs());
        let numeric = if label.is_some() {
            None
        } else {
            predictor::numeric_output(predictor.outputs())
        };
        Served {
            model: v.model.clone(),
            version: v.version,
            predictor,
            stats: VersionStats::default(),
            git_commit: v.git_commit.clone(),
            run_id: v.run_id.clone(),
            label,
            numeric,
        }
    }

    /// The predicted classes of an answer (classifiers): the signature's
    /// label output, or else a lone output of text or integers (a process
    /// runtime's signature is not known in advance).
    pub fn labels_of(&self, outputs: &[Tensor]) -> Option<Vec<String>> {
        if let Some(i) = self.label {
            let name = &self.predictor.outputs().get(i)?.name;
            return outputs
                .iter()
                .find(|t| &t.name == name)
                .or_else(|| outputs.get(i))
                .map(predictor::labels);
        }
        match outputs {
            [t] if matches!(
                t.data,
                TensorData::Str(_) | TensorData::I64(_) | TensorData::I32(_) | TensorData::Bool(_)
            ) && t.shape.len() == 1 =>
            {
                Some(predictor::labels(t))
            }
            _ => None,
        }
    }

    fn numbers_of(&self, outputs: &[Tensor]) -> Option<Vec<f64>> {
        let t = match self.numeric {
            Some(i) => outputs.get(i)?,
            None => match outputs {
                [t] => t,
                _ => return None,
            },
        };
        matches!(t.data, TensorData::F32(_) | TensorData::F64(_)).then(|| predictor::numbers(t))
    }
}

pub struct Canary {
    pub served: Arc<Served>,
    pub weight: u32,
    pub deployment: Deployment,
    pub plan: Plan,
}

pub struct ModelRoute {
    pub name: String,
    pub stable: Arc<Served>,
    /// A canary or a shadow (by `plan.strategy`).
    pub candidate: Option<Canary>,
}

impl ModelRoute {
    pub fn versions(&self) -> Vec<&Arc<Served>> {
        let mut v = vec![&self.stable];
        if let Some(c) = &self.candidate {
            v.push(&c.served);
        }
        v
    }
}

#[derive(Default)]
pub struct Table {
    pub models: Vec<ModelRoute>,
}

impl Table {
    /// The names of the models served, in order.
    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&ModelRoute> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The route of `name`, or a 404 naming the models served.
    pub fn find(&self, name: &str) -> Result<&ModelRoute, Failure> {
        self.get(name).ok_or_else(|| {
            Failure::NotFound(format!(
                "model `{name}` is not served here (served: {})",
                self.models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

/// Gateway-wide counters (requests that reached no version).
#[derive(Default)]
pub struct GatewayCounters {
    pub unrouted: AtomicU64,
    pub feedback_unknown: AtomicU64,
}

/// The recent answers, for feedback: request id -> (model, version, labels).
struct FeedbackIndex {
    map: HashMap<String, (std::sync::Weak<Served>, Vec<String>)>,
    order: VecDeque<String>,
    cap: usize,
}

impl FeedbackIndex {
    fn insert(&mut self, id: String, served: std::sync::Weak<Served>, labels: Vec<String>) {
        if self.map.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        if self.map.insert(id.clone(), (served, labels)).is_none() {
            self.order.push_back(id);
        }
    }
}

/// An answer of ours: its sequence number, version and predicted labels.
type RingEntry = (u64, std::sync::Weak<Served>, Vec<String>);

/// The longest a prediction may take.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Requests remembered for `POST /feedback`.
pub const FEEDBACK_MEMORY: usize = 100_000;

/// The step window's starting point, per deployment.
struct Baseline {
    /// The step's start: a new step (or a restarted gateway) starts a new window.
    step_started_ms: i64,
    /// When this window began: the step's start, or later when the gateway
    /// (re)started during the step. The interval and the deadline count
    /// from here, so a restart never judges an empty window.
    since_ms: i64,
    candidate: Snapshot,
    stable: Snapshot,
    waited: bool,
}

/// How long a reconcile waits for a version to load before leaving it to
/// load in the background.
const QUICK_LOAD: std::time::Duration = std::time::Duration::from_millis(250);

/// A version loading in the background.
type Loading = tokio::task::JoinHandle<Result<Arc<dyn Predictor>, LoadError>>;

pub struct Gateway {
    pub specs: Vec<ServeSpec>,
    pub store: Arc<dyn MetadataStore>,
    loader: Arc<dyn Loader>,
    table: RwLock<Arc<Table>>,
    cache: tokio::sync::Mutex<HashMap<(String, i64), Arc<Served>>>,
    /// Versions loading in the background (after start-up a slow runtime,
    /// such as a process that takes minutes to answer its health check,
    /// must not hold up the controller's other routes and decisions).
    loading: Mutex<HashMap<(String, i64), Loading>>,
    route_n: AtomicU64,
    request_n: AtomicU64,
    boot: u64,
    feedback: Mutex<FeedbackIndex>,
    ring: Mutex<Vec<Option<RingEntry>>>,
    pub predlog: Option<PredLog>,
    baselines: Mutex<HashMap<String, Baseline>>,
    /// Each active rollout's current step as last judged (by deployment
    /// id): what the heartbeat reports for the dashboard.
    analyses: Mutex<HashMap<String, ferry_metadata::LiveAnalysis>>,
    pub counters: GatewayCounters,
    /// The longest a prediction may take ([`REQUEST_TIMEOUT`] by default).
    pub request_timeout: std::time::Duration,
    /// What `/metrics` shows of the store, as last read: the budgets and
    /// the latest monitor event of each check of each served model.
    from_store: Mutex<FromStore>,
    /// This gateway among the replicas serving a model: its heartbeat's
    /// id, the holder named in a rollout's lease.
    pub replica: String,
    /// The controller's tick, for how long a lease lasts unrenewed.
    tick_ms: std::sync::atomic::AtomicI64,
}

/// What one replica measured of a rollout's step, as it reports it to the
/// store: the candidate's and the stable version's counters since the step
/// began (here), and the stable version's since the gateway started.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct StepFigures {
    candidate: Snapshot,
    stable: Snapshot,
    stable_all: Snapshot,
}

impl StepFigures {
    fn add(&mut self, other: &StepFigures) {
        self.candidate.add(&other.candidate);
        self.stable.add(&other.stable);
        self.stable_all.add(&other.stable_all);
    }

    /// The candidate's and stable version's windows. At 100% the stable
    /// version gets no traffic: the candidate is then compared with
    /// everything the stable version answered.
    fn windows(&self) -> (Window, Window) {
        let mut sw = self.stable.window();
        if sw.classes.is_empty() && sw.numeric.is_none() {
            let all = self.stable_all.window();
            sw.classes = all.classes;
            sw.numeric = all.numeric;
        }
        (self.candidate.window(), sw)
    }
}

/// The store's figures `/metrics` shows, read again every
/// [`Gateway::STORE_EVERY_MS`] off the request path.
#[derive(Default)]
struct FromStore {
    read_ms: Option<i64>,
    budgets: Vec<ferry_cost::budget::Standing>,
    monitors: Vec<ferry_metadata::MonitorEvent>,
}

/// Why a prediction was not made; the handlers render it in their protocol.
#[derive(Debug)]
pub enum Failure {
    BadInput(String),
    NotFound(String),
    Unavailable(String),
    Failed(String),
}

/// A request's body read against one version: its input tensors, the
/// column names it gave (in the version's signature's order) and whatever
/// else its protocol carries (`rest`: the answer's shape, a V2 request's
/// id and outputs), which no version changes.
pub struct Read<T> {
    pub inputs: Vec<Tensor>,
    pub columns: Option<Vec<String>>,
    pub rest: T,
}

/// How a protocol reads a request's body against a version's inputs and
/// signature ([`Gateway::read`]; again for another version only when the
/// two read bodies differently).
pub type Reader<'r, T> =
    dyn Fn(&Served) -> Result<Read<T>, crate::protocol::BadInput> + Send + Sync + 'r;

/// A prediction request routed ([`Gateway::route`]): the version that
/// answers it, resolved once.
pub struct Routed<'t> {
    pub route: &'t ModelRoute,
    pub served: Arc<Served>,
    /// Asked for by number: no canary split, no fallback, no mirror.
    pinned: bool,
}

impl Routed<'_> {
    /// Routed to the canary for its share (whose failures the stable
    /// version answers).
    fn is_candidate(&self) -> bool {
        !self.pinned && !Arc::ptr_eq(&self.served, &self.route.stable)
    }
}

/// Whether two versions read a body alike (same inputs and signature), so
/// the tensors read for one serve the other.
fn same_reading(a: &Served, b: &Served) -> bool {
    Arc::ptr_eq(&a.predictor, &b.predictor)
        || (a.predictor.inputs() == b.predictor.inputs()
            && a.predictor.signature() == b.predictor.signature())
}

/// What every protocol's prediction handler gets back.
pub struct Answer {
    pub served: Arc<Served>,
    pub outputs: Vec<Tensor>,
    pub request_id: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gateway {
    /// A gateway serving `specs`; nothing is loaded until [`reconcile`].
    pub fn new(
        specs: Vec<ServeSpec>,
        store: Arc<dyn MetadataStore>,
        loader: Arc<dyn Loader>,
        predlog: Option<PredLog>,
    ) -> Self {
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            & 0xffff_ffff;
        Gateway {
            specs,
            store,
            loader,
            table: RwLock::new(Arc::new(Table::default())),
            cache: tokio::sync::Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            route_n: AtomicU64::new(0),
            request_n: AtomicU64::new(0),
            boot,
            feedback: Mutex::new(FeedbackIndex {
                map: HashMap::new(),
                order: VecDeque::new(),
                cap: FEEDBACK_MEMORY,
            }),
            ring: Mutex::new(Vec::new()),
            predlog,
            baselines: Mutex::new(HashMap::new()),
            analyses: Mutex::new(HashMap::new()),
            counters: GatewayCounters::default(),
            request_timeout: REQUEST_TIMEOUT,
            from_store: Mutex::default(),
            replica: ferry_core::RunId::generate().as_str().to_owned(),
            tick_ms: std::sync::atomic::AtomicI64::new(1000),
        }
    }

    /// The controller's tick (a lease lasts three of them, and two seconds).
    pub fn set_tick(&self, tick: std::time::Duration) {
        self.tick_ms
            .store(i64::try_from(tick.as_millis()).unwrap_or(i64::MAX), Relaxed);
    }

    fn lease_ttl_ms(&self) -> i64 {
        3 * self.tick_ms.load(Relaxed).max(1) + 2000
    }

    /// How often the store's figures are read again for `/metrics`.
    const STORE_EVERY_MS: i64 = 15_000;

    /// Reads the budgets and the served models' monitor events again when
    /// the last read is older than [`Gateway::STORE_EVERY_MS`]; a store
    /// error keeps the last of each.
    pub async fn refresh_from_store(&self, now_ms: i64) {
        let last = lock(&self.from_store).read_ms;
        if last.is_some_and(|l| now_ms.saturating_sub(l) < Self::STORE_EVERY_MS) {
            return;
        }
        let budgets = self.store.budgets(now_ms).await;
        let monitors = self.store.latest_monitor_events(None).await;
        let served = self.table().names();
        let mut st = lock(&self.from_store);
        st.read_ms = Some(now_ms);
        match budgets {
            Ok(b) => st.budgets = b,
            Err(e) => tracing::warn!("cannot read the budgets: {e}"),
        }
        match monitors {
            Ok(m) => {
                st.monitors = m
                    .into_iter()
                    .filter(|e| served.contains(&e.model))
                    .collect()
            }
            Err(e) => tracing::warn!("cannot read the monitor events: {e}"),
        }
    }

    /// The budgets as last read.
    pub fn budgets(&self) -> Vec<ferry_cost::budget::Standing> {
        lock(&self.from_store).budgets.clone()
    }

    /// The latest monitor event of each check of each served model, as last read.
    pub fn monitors(&self) -> Vec<ferry_metadata::MonitorEvent> {
        lock(&self.from_store).monitors.clone()
    }

    /// Every version loaded now.
    pub async fn loaded(&self) -> Vec<Arc<Served>> {
        self.cache.lock().await.values().cloned().collect()
    }

    /// The rollout `deployment_id`'s current step as last judged.
    pub fn analysis(&self, deployment_id: &str) -> Option<ferry_metadata::LiveAnalysis> {
        lock(&self.analyses).get(deployment_id).cloned()
    }

    pub fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn resolve(&self, spec: &ServeSpec) -> Result<ModelVersion, LoadError> {
        let v = match &spec.selector {
            Selector::Alias(a) => self.store.resolve_alias(&spec.name, a).await?,
            Selector::Version(n) => self.store.get_version(&spec.name, *n).await?,
            Selector::Latest => self.store.latest_version(&spec.name).await?,
        };
        v.ok_or_else(|| {
            LoadError::Store(ferry_metadata::Error::NotFound(format!(
                "no model version `{spec}` in the registry"
            )))
        })
    }

    /// `v` ready to serve, from the cache or loaded now (`wait`), or else
    /// loading in the background: `None` until a later call finds it done.
    async fn served(
        &self,
        cache: &mut HashMap<(String, i64), Arc<Served>>,
        v: &ModelVersion,
        wait: bool,
    ) -> Result<Option<Arc<Served>>, LoadError> {
        let key = (v.model.clone(), v.version);
        if let Some(s) = cache.get(&key) {
            return Ok(Some(s.clone()));
        }
        let pending = {
            let mut loading = lock(&self.loading);
            match loading.get(&key) {
                Some(h) if !h.is_finished() && !wait => return Ok(None),
                Some(_) => loading.remove(&key),
                None => None,
            }
        };
        let joined = match pending {
            Some(h) => h.await,
            None if wait => Ok(self.loader.load(v).await),
            None => {
                // Loads that are quick (ONNX in-process) finish within this
                // call; slow ones go on in the background.
                let (loader, v) = (self.loader.clone(), v.clone());
                let mut h = tokio::spawn(async move { loader.load(&v).await });
                match tokio::time::timeout(QUICK_LOAD, &mut h).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        tracing::info!(model = %key.0, version = key.1, "loading in the background");
                        lock(&self.loading).insert(key, h);
                        return Ok(None);
                    }
                }
            }
        };
        let p = joined.map_err(|e| LoadError::Version {
            model: v.model.clone(),
            version: v.version,
            message: format!("its loading stopped: {e}"),
        })??;
        let s = Arc::new(Served::new(v, p));
        tracing::info!(model = %v.model, version = v.version, platform = s.predictor.platform(), "loaded");
        cache.insert(key, s.clone());
        Ok(Some(s))
    }

    /// Drops every route and loaded version (shutdown): process runtimes
    /// stop with them.
    pub async fn unload_all(&self) {
        let mut cache = self.cache.lock().await;
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Table::default());
        cache.clear();
        // Loads still under way are abandoned: a process runtime that has
        // not answered yet is stopped with its task.
        for (_, h) in lock(&self.loading).drain() {
            h.abort();
        }
    }

    /// Rebuilds the route table from the store. With `strict`, any model
    /// that cannot be resolved or loaded is an error (start-up); otherwise
    /// that model keeps its previous routes and the error is logged.
    pub async fn reconcile(&self, strict: bool) -> Result<(), LoadError> {
        let mut cache = self.cache.lock().await;
        let old = self.table();
        let mut models = Vec::new();
        let mut wanted = std::collections::HashSet::new();
        for spec in &self.specs {
            let r = self.route_for(&mut cache, spec, strict, &mut wanted).await;
            let keep = match r {
                Ok(Some(r)) => {
                    models.push(r);
                    false
                }
                // Its new stable version is still loading.
                Ok(None) => true,
                Err(e) if strict => return Err(e),
                Err(e) => {
                    tracing::warn!(model = %spec.name, "keeping the current routes: {e}");
                    true
                }
            };
            if keep && let Some(prev) = old.get(&spec.name) {
                models.push(ModelRoute {
                    name: prev.name.clone(),
                    stable: prev.stable.clone(),
                    candidate: prev.candidate.as_ref().map(|c| Canary {
                        served: c.served.clone(),
                        weight: c.weight,
                        deployment: c.deployment.clone(),
                        plan: c.plan.clone(),
                    }),
                });
            }
        }
        // Versions no route uses any more are unloaded (requests still
        // holding them finish first: they own an Arc); background loads no
        // route wants any more are abandoned (a process runtime still
        // starting is stopped with its task).
        let used: std::collections::HashSet<(String, i64)> = models
            .iter()
            .flat_map(|m| m.versions())
            .map(|s| (s.model.clone(), s.version))
            .collect();
        cache.retain(|k, _| used.contains(k));
        lock(&self.loading).retain(|k, h| {
            let keep = wanted.contains(k);
            if !keep {
                h.abort();
            }
            keep
        });
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Table { models });
        Ok(())
    }

    /// The route of `spec` as the store has it now; `None` while its stable
    /// version is loading in the background (`wait` loads in place). Every
    /// version it asks for goes into `wanted`.
    async fn route_for(
        &self,
        cache: &mut HashMap<(String, i64), Arc<Served>>,
        spec: &ServeSpec,
        wait: bool,
        wanted: &mut std::collections::HashSet<(String, i64)>,
    ) -> Result<Option<ModelRoute>, LoadError> {
        let dep = self
            .store
            .list_deployments(Some(&spec.name), true)
            .await?
            .into_iter()
            .next();
        // A deployment applies to a gateway that serves the model by the
        // alias it promotes (`iris@production` for `--alias production`);
        // one serving a pinned version or another alias ignores it.
        let dep = match dep {
            Some(d) => match serde_json::from_value::<Plan>(d.spec.clone()) {
                Ok(plan) if spec.selector == Selector::Alias(plan.alias.clone()) => Some((d, plan)),
                Ok(_) => None,
                Err(e) => {
                    let reason = format!("the deployment's plan is unreadable: {e}");
                    let _ = self
                        .finish(&d, Phase::RolledBack, &reason, Value::Null)
                        .await;
                    None
                }
            },
            None => None,
        };
        let stable_v = match dep.as_ref().and_then(|(d, _)| d.stable) {
            Some(n) => match self.store.get_version(&spec.name, n).await? {
                Some(v) => v,
                None => self.resolve(spec).await?,
            },
            None => self.resolve(spec).await?,
        };
        wanted.insert((stable_v.model.clone(), stable_v.version));
        let Some(stable) = self.served(cache, &stable_v, wait).await? else {
            return Ok(None);
        };
        let candidate = match dep {
            Some((d, plan)) => {
                let loaded = match self.store.get_version(&spec.name, d.candidate).await? {
                    Some(v) => {
                        wanted.insert((v.model.clone(), v.version));
                        self.served(cache, &v, wait)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    None => Err(format!("version {} was deleted", d.candidate)),
                };
                match loaded {
                    // Still loading: stable answers everything meanwhile.
                    Ok(None) => None,
                    Ok(Some(served)) => Some(Canary {
                        served,
                        weight: d.weight.clamp(0, 100) as u32,
                        deployment: d,
                        plan,
                    }),
                    Err(e) => {
                        // A candidate that cannot even load is rolled back.
                        let reason = format!("the candidate failed to load: {e}");
                        tracing::warn!(model = %spec.name, "{reason}");
                        let _ = self
                            .finish(&d, Phase::RolledBack, &reason, Value::Null)
                            .await;
                        None
                    }
                }
            }
            None => None,
        };
        Ok(Some(ModelRoute {
            name: spec.name.clone(),
            stable,
            candidate,
        }))
    }

    /// Ends a deployment (rollback, abort or promotion) in the store.
    pub async fn finish(
        &self,
        d: &Deployment,
        phase: Phase,
        reason: &str,
        detail: Value,
    ) -> Result<Deployment, ferry_metadata::Error> {
        let change = rollout::ending(d, phase, reason, detail, ferry_core::now_ms());
        let ended = self
            .store
            .change_deployment(&d.id, d.revision, &change)
            .await?;
        let action = format!("deployment.{}", rollout::phase_action(phase));
        let by = rollout::By::local("gateway");
        rollout::audit(self.store.as_ref(), &by, &action, &ended, reason).await;
        Ok(ended)
    }

    /// A prediction with a deadline: a runtime that hangs answers 503 (and
    /// a hung canary counts as failing) instead of holding requests forever.
    /// One computed on this task cannot be interrupted: it gets no timer.
    async fn bounded(
        &self,
        served: &Served,
        inputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>, PredictError> {
        let inputs = match served.predictor.predict_inline(inputs) {
            Ok(computed) => return computed,
            Err(inputs) => inputs,
        };
        tokio::time::timeout(self.request_timeout, served.predictor.predict(inputs))
            .await
            .unwrap_or_else(|_| {
                Err(PredictError::Unavailable(format!(
                    "{}/{} did not answer within {:?}",
                    served.model, served.version, self.request_timeout
                )))
            })
    }

    fn next_request_id(&self) -> (String, u64) {
        let n = self.request_n.fetch_add(1, Relaxed);
        (request_id(self.boot, n), n)
    }

    /// The sequence number inside one of our own request ids.
    fn own_sequence(&self, id: &str) -> Option<u64> {
        let (boot, n) = id.split_once('-')?;
        (u64::from_str_radix(boot, 16).ok()? == self.boot && n.len() == 12)
            .then(|| u64::from_str_radix(n, 16).ok())
            .flatten()
    }

    /// Whether this request goes to a candidate that takes `percent` of
    /// the traffic ([`canary::in_share`], counted over the gateway's routed requests).
    fn split(&self, percent: u32) -> bool {
        canary::in_share(self.route_n.fetch_add(1, Relaxed), percent)
    }

    /// The route a prediction for `name` takes; a request for a model not
    /// served here reaches no version and is counted as unrouted.
    pub fn model<'t>(&self, table: &'t Table, name: &str) -> Result<&'t ModelRoute, Failure> {
        table.find(name).inspect_err(|_| {
            self.counters.unrouted.fetch_add(1, Relaxed);
        })
    }

    /// A request body that does not fit `served` (read against its inputs
    /// and signature): counted as its 400.
    pub fn rejected(&self, served: &Served, e: crate::protocol::BadInput) -> Failure {
        served.stats.record(400, 0.0);
        Failure::BadInput(e.0)
    }

    /// Picks the version for a request: the canary for its weight's share
    /// (spread evenly: every 100 requests, `weight` go to the canary).
    fn pick<'a>(&self, route: &'a ModelRoute) -> &'a Arc<Served> {
        if let Some(c) = &route.candidate
            && c.plan.strategy == Strategy::Canary
            && c.weight > 0
            && self.split(c.weight)
        {
            return &c.served;
        }
        &route.stable
    }

    /// Resolves, once per request, the version that answers it: `version`
    /// when the client names one, else the canary for its share of the
    /// traffic or the stable version.
    pub fn route<'t>(
        &self,
        route: &'t ModelRoute,
        version: Option<i64>,
    ) -> Result<Routed<'t>, Failure> {
        let served = match version {
            None => self.pick(route).clone(),
            Some(v) => route
                .versions()
                .into_iter()
                .find(|s| s.version == v)
                .cloned()
                .ok_or_else(|| {
                    Failure::NotFound(format!("version {v} of `{}` is not served", route.name))
                })?,
        };
        Ok(Routed {
            route,
            served,
            pinned: version.is_some(),
        })
    }

    /// Reads a request's body against the version it is routed to. A
    /// canary that refuses what the stable version takes is charged with a
    /// failure and the request goes to the stable version; a body that no
    /// version takes is a 400 of the stable one (or of the version asked for).
    pub fn read<T>(&self, to: &mut Routed<'_>, reader: &Reader<'_, T>) -> Result<Read<T>, Failure> {
        let e = match reader(&to.served) {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        if !to.is_candidate() {
            return Err(self.rejected(&to.served, e));
        }
        let stable = to.route.stable.clone();
        let read = reader(&stable);
        if read.is_ok() {
            to.served.stats.record(500, 0.0);
        }
        to.served = stable;
        read.map_err(|e| self.rejected(&to.served, e))
    }

    /// The whole prediction path for a routed request whose body was read
    /// against its version: predict (the stable version answers what a
    /// canary fails), measure, log, mirror. `reader` reads the body again
    /// for a version that reads it differently.
    pub async fn predict<T>(
        self: &Arc<Self>,
        to: Routed<'_>,
        inputs: Vec<Tensor>,
        columns: Option<Vec<String>>,
        reader: &Reader<'_, T>,
        request_id: Option<String>,
    ) -> Result<Answer, (Option<Arc<Served>>, Failure)> {
        let candidate = to.is_candidate();
        let Routed {
            route,
            mut served,
            pinned,
        } = to;
        let (request_id, seq) = match request_id {
            Some(id) => (id, None),
            None => {
                let (id, n) = self.next_request_id();
                (id, Some(n))
            }
        };
        let mut t0 = std::time::Instant::now();
        let mirror = match &route.candidate {
            Some(c) if c.plan.strategy == Strategy::Shadow && !pinned => {
                self.split(c.plan.mirror_percent).then(|| {
                    let ins = if same_reading(&served, &c.served) {
                        Ok(inputs.clone())
                    } else {
                        reader(&c.served).map(|r| r.inputs)
                    };
                    (c.served.clone(), ins)
                })
            }
            _ => None,
        };
        let sampled = self.predlog.as_ref().is_some_and(|l| l.sampled());
        let mut log_inputs = sampled.then(|| inputs.clone());
        // A canary that fails a request (5xx) is charged with the failure,
        // and the request is answered by the stable version: predictions
        // are idempotent, and clients should not pay for a bad candidate.
        let fallback = (candidate && same_reading(&served, &route.stable)).then(|| inputs.clone());
        let mut result = self.bounded(&served, inputs).await;
        let mut columns = columns;
        // Any failure of the canary counts against it, inputs it rejects
        // too (it was sent what the stable version accepts).
        if candidate && let Err(e) = &result {
            let status = match e {
                PredictError::Input(_) => 500,
                e => status_of(e),
            };
            served.stats.record(status, t0.elapsed().as_secs_f64());
            served = route.stable.clone();
            let ins = match fallback {
                Some(ins) => ins,
                // The stable version reads the body its own way.
                None => match reader(&served) {
                    Ok(r) => {
                        columns = r.columns;
                        log_inputs = sampled.then(|| r.inputs.clone());
                        r.inputs
                    }
                    Err(e) => {
                        let f = self.rejected(&served, e);
                        return Err((Some(served), f));
                    }
                },
            };
            t0 = std::time::Instant::now();
            result = self.bounded(&served, ins).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        match result {
            Ok(outputs) => {
                served.stats.record(200, secs);
                let labels = self.remember(&served, &outputs, &request_id, seq, mirror.is_some());
                if let (Some(log), Some(ins)) = (&self.predlog, log_inputs) {
                    log.predictions(
                        &served.model,
                        ferry_core::now_ms(),
                        log_lines(&served, &request_id, &ins, &outputs, columns.as_deref()),
                    );
                }
                if let Some((shadow, ins)) = mirror {
                    let stable_numbers = served.numbers_of(&outputs);
                    self.mirror(shadow, ins, labels, stable_numbers);
                }
                Ok(Answer {
                    served,
                    outputs,
                    request_id,
                })
            }
            Err(e) => {
                served.stats.record(status_of(&e), secs);
                let f = match e {
                    PredictError::Input(m) => Failure::BadInput(m),
                    PredictError::Failed(m) => Failure::Failed(m),
                    PredictError::Unavailable(m) => Failure::Unavailable(m),
                };
                Err((Some(served), f))
            }
        }
    }

    /// Measures an answer's predictions and remembers a classifier's labels
    /// for feedback; returns them when `keep` (a shadow compares them).
    fn remember(
        &self,
        served: &Arc<Served>,
        outputs: &[Tensor],
        request_id: &str,
        seq: Option<u64>,
        keep: bool,
    ) -> Option<Vec<String>> {
        let labels = served.labels_of(outputs);
        if let Some(l) = labels {
            served.stats.record_classes(l.iter().map(String::as_str));
            let kept = keep.then(|| l.clone());
            match seq {
                // Our own ids index a ring: no hashing, no eviction.
                Some(n) => {
                    let mut ring = lock(&self.ring);
                    let slot = (n % FEEDBACK_MEMORY as u64) as usize;
                    if ring.len() <= slot {
                        ring.resize_with(slot + 1, || None);
                    }
                    ring[slot] = Some((n, Arc::downgrade(served), l));
                }
                None => {
                    lock(&self.feedback).insert(request_id.to_owned(), Arc::downgrade(served), l)
                }
            }
            return kept;
        }
        if let Some(n) = served.numbers_of(outputs) {
            served.stats.record_numeric(n.into_iter());
        }
        None
    }

    /// Sends a request to the shadow in the background and measures how
    /// its answer agrees with the stable version's (`ins`: the body as the
    /// shadow reads it).
    fn mirror(
        &self,
        shadow: Arc<Served>,
        ins: Result<Vec<Tensor>, crate::protocol::BadInput>,
        stable_labels: Option<Vec<String>>,
        stable_numbers: Option<Vec<f64>>,
    ) {
        let ins = match ins {
            Ok(ins) => ins,
            // A body the shadow cannot read: a request it refused.
            Err(_) => {
                shadow.stats.record(400, 0.0);
                shadow.stats.record_comparison(false);
                return;
            }
        };
        let timeout = self.request_timeout;
        tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            match tokio::time::timeout(timeout, shadow.predictor.predict(ins))
                .await
                .unwrap_or_else(|_| Err(PredictError::Unavailable("the shadow timed out".into())))
            {
                Ok(out) => {
                    shadow.stats.record(200, t0.elapsed().as_secs_f64());
                    let l = shadow.labels_of(&out);
                    if let Some(l) = &l {
                        shadow.stats.record_classes(l.iter().map(String::as_str));
                    }
                    let agreed =
                        match (&l, &stable_labels, shadow.numbers_of(&out), &stable_numbers) {
                            (Some(a), Some(b), _, _) => a == b,
                            (None, None, Some(a), Some(b)) => {
                                a.len() == b.len()
                                    && a.iter()
                                        .zip(b)
                                        .all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + y.abs()))
                            }
                            _ => false,
                        };
                    shadow.stats.record_comparison(agreed);
                }
                Err(e) => {
                    shadow
                        .stats
                        .record(status_of(&e), t0.elapsed().as_secs_f64());
                    shadow.stats.record_comparison(false);
                }
            }
        });
    }

    /// Labels arriving later: request id -> true label(s).
    /// The version that answered `request_id` and what it predicted, while
    /// remembered and still served.
    fn remembered(&self, request_id: &str) -> Option<(Arc<Served>, Vec<String>)> {
        let found = match self.own_sequence(request_id) {
            Some(n) => lock(&self.ring)
                .get((n % FEEDBACK_MEMORY as u64) as usize)
                .and_then(|e| e.as_ref())
                .filter(|e| e.0 == n)
                .map(|e| (e.1.clone(), e.2.clone())),
            None => lock(&self.feedback).map.get(request_id).cloned(),
        };
        found.and_then(|(w, p)| Some((w.upgrade()?, p)))
    }

    /// The model that answered `request_id`, while remembered.
    pub fn answered_by(&self, request_id: &str) -> Option<String> {
        self.remembered(request_id).map(|(s, _)| s.model.clone())
    }

    pub fn feedback(&self, request_id: &str, truth: &[String]) -> Result<Value, Failure> {
        let seq = self.own_sequence(request_id);
        // A version no longer served has no counters to score.
        let Some((served, predicted)) = self.remembered(request_id) else {
            self.counters.feedback_unknown.fetch_add(1, Relaxed);
            return Err(Failure::NotFound(format!(
                "unknown request id `{request_id}` (the gateway remembers the last {FEEDBACK_MEMORY} classified requests)"
            )));
        };
        if truth.len() != predicted.len() {
            return Err(Failure::BadInput(format!(
                "request `{request_id}` predicted {} rows; got {} labels",
                predicted.len(),
                truth.len()
            )));
        }
        // Scored once: a retried POST /feedback finds nothing.
        match seq {
            Some(n) => {
                if let Some(e) = lock(&self.ring).get_mut((n % FEEDBACK_MEMORY as u64) as usize) {
                    *e = None;
                }
            }
            None => {
                lock(&self.feedback).map.remove(request_id);
            }
        }
        let correct = predicted.iter().zip(truth).filter(|(p, t)| p == t).count() as u64;
        served.stats.record_feedback(truth.len() as u64, correct);
        if let Some(log) = &self.predlog {
            let mut row = Map::new();
            row.insert("ts".into(), ferry_core::now_ms().into());
            row.insert("request_id".into(), request_id.into());
            row.insert("model".into(), served.model.clone().into());
            row.insert("version".into(), served.version.into());
            row.insert("labels".into(), truth.into());
            row.insert("predicted".into(), predicted.clone().into());
            row.insert("correct".into(), correct.into());
            log.feedback(&served.model, ferry_core::now_ms(), row);
        }
        Ok(serde_json::json!({
            "request_id": request_id,
            "model": served.model,
            "version": served.version,
            "labelled": truth.len(),
            "correct": correct,
        }))
    }

    /// What this gateway measured of a rollout's current step (since the
    /// step began here; a new step or a restart starts it now), whether the
    /// step has waited already, and since when the windows run.
    fn step_figures(&self, route: &ModelRoute, c: &Canary, now: i64) -> (StepFigures, bool, i64) {
        let d = &c.deployment;
        let mut b = lock(&self.baselines);
        let base = b.entry(d.id.clone()).or_insert_with(|| Baseline {
            step_started_ms: i64::MIN,
            since_ms: i64::MIN,
            candidate: Snapshot::default(),
            stable: Snapshot::default(),
            waited: false,
        });
        if base.step_started_ms != d.step_started_ms {
            // A new step (or a restart): the window starts now.
            *base = Baseline {
                step_started_ms: d.step_started_ms,
                since_ms: now.max(d.step_started_ms),
                candidate: c.served.stats.snapshot(),
                stable: route.stable.stats.snapshot(),
                waited: false,
            };
        }
        let stable_all = route.stable.stats.snapshot();
        let figures = StepFigures {
            candidate: c.served.stats.snapshot().since(&base.candidate),
            stable: stable_all.since(&base.stable),
            stable_all,
        };
        (figures, base.waited, base.since_ms)
    }

    /// The step's figures over every replica serving the rollout (each
    /// reported its own, this one just now), and whether this replica
    /// decides: it holds the rollout's lease. Should the store fail, this
    /// replica judges by its own figures and decides nothing.
    async fn shared_figures(
        &self,
        d: &Deployment,
        mine: StepFigures,
        now: i64,
    ) -> (StepFigures, bool) {
        if !self.report_figures(d, &mine, now).await {
            return (mine, false);
        }
        let rows = match self.store.rollout_windows(&d.id, d.step_started_ms).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(deployment = %d.id, "cannot read the replicas' windows: {e}");
                return (mine, false);
            }
        };
        let mut sum = StepFigures::default();
        for r in &rows {
            match serde_json::from_value::<StepFigures>(r.figures.clone()) {
                Ok(f) => sum.add(&f),
                Err(e) => tracing::warn!(gateway = %r.gateway_id, "unreadable rollout window: {e}"),
            }
        }
        let decides = match self
            .store
            .take_lease(&d.id, &self.replica, now, self.lease_ttl_ms())
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(deployment = %d.id, "cannot take the rollout's lease: {e}");
                false
            }
        };
        (sum, decides)
    }

    /// Writes what this gateway measured of `d`'s step to the store;
    /// whether it could.
    async fn report_figures(&self, d: &Deployment, mine: &StepFigures, now: i64) -> bool {
        let report = ferry_metadata::RolloutWindow {
            deployment_id: d.id.clone(),
            gateway_id: self.replica.clone(),
            step_started_ms: d.step_started_ms,
            updated_ms: now,
            figures: serde_json::to_value(mine).unwrap_or_default(),
        };
        match self.store.report_window(&report).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(deployment = %d.id, "cannot report this gateway's window: {e}");
                false
            }
        }
    }

    /// Reports what this gateway measured of every rollout it serves,
    /// deciding nothing: what a stopping gateway does last, so the replica
    /// that decides counts every request it answered.
    pub async fn report(&self) {
        let table = self.table();
        let now = ferry_core::now_ms();
        for route in &table.models {
            if let Some(c) = &route.candidate {
                let (mine, _, _) = self.step_figures(route, c, now);
                self.report_figures(&c.deployment, &mine, now).await;
            }
        }
    }

    /// One controller step: rebuild routes, then judge every active
    /// deployment and record what follows. Returns the decisions taken.
    pub async fn tick(&self) -> Vec<(String, canary::Decision)> {
        if let Err(e) = self.reconcile(false).await {
            tracing::warn!("reconcile: {e}");
        }
        let table = self.table();
        let mut out = Vec::new();
        let now = ferry_core::now_ms();
        lock(&self.analyses).retain(|id, _| {
            table
                .models
                .iter()
                .any(|r| r.candidate.as_ref().is_some_and(|c| &c.deployment.id == id))
        });
        for route in &table.models {
            let Some(c) = &route.candidate else { continue };
            let d = &c.deployment;
            let (mine, waited, since_ms) = self.step_figures(route, c, now);
            // Every replica's traffic, judged by the one holding the lease.
            let (figures, decides) = self.shared_figures(d, mine, now).await;
            let (cw, sw) = figures.windows();
            let verdict = canary::analyse(&c.plan.criteria, &cw, &sw);
            let state = canary::State {
                phase: Phase::parse(&d.phase).unwrap_or(Phase::Progressing),
                step: d.step.max(0) as usize,
                step_started_ms: since_ms.max(d.step_started_ms),
            };
            let decision = canary::decide(&c.plan, &state, now, &verdict);
            let mut detail = serde_json::json!({
                "verdict": verdict,
                "candidate": cw,
                "stable": sw,
            });
            if decides {
                // Which replica judged (the one holding the lease).
                detail["decided_by"] = serde_json::json!(self.replica);
            }
            lock(&self.analyses).insert(
                d.id.clone(),
                ferry_metadata::LiveAnalysis {
                    deployment_id: d.id.clone(),
                    at_ms: now,
                    detail: detail.clone(),
                },
            );
            if !decides {
                continue;
            }
            let res = match &decision {
                canary::Decision::Hold => continue,
                canary::Decision::Wait { reason } => {
                    if waited {
                        continue;
                    }
                    lock(&self.baselines)
                        .entry(d.id.clone())
                        .and_modify(|b| b.waited = true);
                    // Recorded once per step (the step and its window go on).
                    self.store
                        .change_deployment(
                            &d.id,
                            d.revision,
                            &DeploymentChange {
                                phase: d.phase.clone(),
                                active: true,
                                step: d.step,
                                weight: d.weight,
                                step_started_ms: d.step_started_ms,
                                reason: Some(reason.clone()),
                                kind: "waiting".into(),
                                detail,
                                now_ms: now,
                                move_alias: None,
                                reject: false,
                            },
                        )
                        .await
                }
                canary::Decision::Advance { step, weight } => {
                    self.store
                        .change_deployment(
                            &d.id,
                            d.revision,
                            &DeploymentChange {
                                phase: Phase::Progressing.as_str().into(),
                                active: true,
                                step: *step as i64,
                                weight: i64::from(*weight),
                                step_started_ms: now,
                                reason: Some(format!("step {} passed", d.step + 1)),
                                kind: "advanced".into(),
                                detail,
                                now_ms: now,
                                move_alias: None,
                                reject: false,
                            },
                        )
                        .await
                }
                canary::Decision::Promote { reason } => {
                    self.finish(d, Phase::Promoted, reason, detail).await
                }
                canary::Decision::Rollback { reason } => {
                    self.finish(d, Phase::RolledBack, reason, detail).await
                }
            };
            match res {
                Ok(new) => {
                    if let canary::Decision::Advance { .. } = decision {
                        // The next step's window starts with the decision.
                        lock(&self.baselines).insert(
                            d.id.clone(),
                            Baseline {
                                step_started_ms: new.step_started_ms,
                                since_ms: new.step_started_ms,
                                candidate: c.served.stats.snapshot(),
                                stable: route.stable.stats.snapshot(),
                                waited: false,
                            },
                        );
                    }
                    out.push((route.name.clone(), decision))
                }
                Err(ferry_metadata::Error::Conflict(m)) => {
                    tracing::info!(model = %route.name, "deployment changed meanwhile: {m}")
                }
                Err(e) => tracing::warn!(model = %route.name, "cannot record a decision: {e}"),
            }
        }
        if out
            .iter()
            .any(|(_, d)| !matches!(d, canary::Decision::Wait { .. }))
        {
            // Decisions take effect at once (a rollback must not wait a tick).
            if let Err(e) = self.reconcile(false).await {
                tracing::warn!("reconcile: {e}");
            }
        }
        out
    }
}

fn status_of(e: &PredictError) -> u16 {
    match e {
        PredictError::Input(_) => 400,
        PredictError::Failed(_) => 500,
        PredictError::Unavailable(_) => 503,
    }
}

/// The most characters of one text value (a text model's input, a label)
/// the prediction log keeps: its first 1,000 characters (Unicode scalar
/// values, never a split one), the rest dropped without a marker. Enough
/// for drift on text (lengths, vocabulary, languages) and for reading what
/// was asked, while one pasted book cannot make a line megabytes long.
pub const LOGGED_TEXT_CHARS: usize = 1_000;

/// `s` cut to [`LOGGED_TEXT_CHARS`] characters.
fn logged_text(s: &str) -> &str {
    // Short texts (most) are returned without counting: fewer bytes than
    // the bound cannot hold more characters.
    if s.len() <= LOGGED_TEXT_CHARS {
        return s;
    }
    match s.char_indices().nth(LOGGED_TEXT_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Prediction-log lines: one JSON object per predicted row, inputs
/// flattened to columns named as the version's signature names them,
/// whatever the request's format (`columns`: the names a request gave,
/// already in the signature's order; unnamed rows are in that order too);
/// `<input>_<j>` only without a signature. Outputs are named the same for
/// every runtime ([`predictor::output_columns`]). Written straight to
/// text: this runs on the request path.
fn log_lines(
    served: &Served,
    request_id: &str,
    inputs: &[Tensor],
    outputs: &[Tensor],
    columns: Option<&[String]>,
) -> String {
    use std::fmt::Write;
    let n = crate::protocol::batch(outputs)
        .max(crate::protocol::batch(inputs))
        .min(10_000);
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let signed: Option<Vec<String>> = served
        .predictor
        .signature()
        .map(|s| s.names().into_iter().map(str::to_owned).collect());
    let columns = columns.or(signed.as_deref());
    // Each input tensor's column keys, quoted once per request.
    let keys = |t: &Tensor, names: Option<&[String]>| -> Vec<String> {
        let per: usize = t.shape.iter().skip(1).product();
        if t.shape.len() <= 1 || per == 1 {
            vec![q(names.and_then(|n| n.first()).map_or(&t.name, |v| v))]
        } else {
            (0..per)
                .map(|j| match names.and_then(|n| n.get(j)) {
                    Some(c) => q(c),
                    None => q(&format!("{}_{j}", t.name)),
                })
                .collect()
        }
    };
    let named = predictor::output_columns(outputs, served.predictor.classes());
    let cols: Vec<(&Tensor, Vec<String>)> = inputs
        .iter()
        .map(|t| (t, keys(t, if inputs.len() == 1 { columns } else { None })))
        .chain(
            outputs
                .iter()
                .zip(named)
                .map(|(t, ks)| (t, ks.iter().map(|k| q(k)).collect())),
        )
        .collect();
    let head = format!(
        "{{\"ts\":{},\"request_id\":{},\"model\":{},\"version\":{}",
        ferry_core::now_ms(),
        q(request_id),
        q(&served.model),
        served.version
    );
    let mut out = String::with_capacity(n * (head.len() + 96));
    for r in 0..n {
        out.push_str(&head);
        for (t, ks) in &cols {
            let per = ks.len();
            for (j, k) in ks.iter().enumerate() {
                let i = r * per + j;
                out.push(',');
                out.push_str(k);
                out.push(':');
                match &t.data {
                    // Single-precision values as written (5.1, not 5.099999904632568).
                    TensorData::F32(v) => match v.get(i) {
                        Some(x) if x.is_finite() => {
                            let _ = write!(out, "{x}");
                        }
                        _ => out.push_str("null"),
                    },
                    TensorData::F64(v) => match v.get(i) {
                        Some(x) if x.is_finite() => {
                            let _ = write!(out, "{x}");
                        }
                        _ => out.push_str("null"),
                    },
                    TensorData::I64(v) => {
                        let _ = write!(out, "{}", v.get(i).copied().unwrap_or_default());
                    }
                    TensorData::I32(v) => {
                        let _ = write!(out, "{}", v.get(i).copied().unwrap_or_default());
                    }
                    TensorData::Bool(v) => out.push_str(if v.get(i).copied().unwrap_or_default() {
                        "true"
                    } else {
                        "false"
                    }),
                    TensorData::Str(v) => {
                        out.push_str(&q(logged_text(v.get(i).map_or("", String::as_str))))
                    }
                }
            }
        }
        out.push_str("}\n");
    }
    out
}

/// `format!("{boot:08x}-{n:012x}")` without the formatting machinery
/// (every request gets one: 1% of the server's time at 64 connections).
fn request_id(boot: u64, n: u64) -> String {
    let mut s = String::with_capacity(30);
    push_hex(&mut s, boot, 8);
    s.push('-');
    push_hex(&mut s, n, 12);
    s
}

/// `v` in lower-case hex, zero-padded to at least `width` digits.
fn push_hex(s: &mut String, v: u64, width: usize) {
    let digits = (64 - v.leading_zeros() as usize).div_ceil(4);
    for i in (0..digits.max(width)).rev() {
        let d = v.checked_shr(4 * i as u32).unwrap_or(0) & 0xf;
        s.push(char::from_digit(d as u32, 16).unwrap_or('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_what_format_would_write() {
        for (boot, n) in [
            (0, 0),
            (0x1234, 1),
            (0xdead_beef, 0xfff_ffff_ffff),
            (u64::MAX, u64::MAX),
            (1 << 40, 1 << 50),
        ] {
            assert_eq!(request_id(boot, n), format!("{boot:08x}-{n:012x}"));
        }
    }

    /// A text input is logged as a JSON string, escaped, and cut to
    /// [`LOGGED_TEXT_CHARS`] characters on a character boundary.
    #[test]
    fn text_inputs_are_logged_as_escaped_bounded_strings() {
        let served = Served::new(
            &ModelVersion {
                model: "reviews".into(),
                version: 2,
                ..Default::default()
            },
            Arc::new(crate::predictor::FakePredictor::new(Default::default())),
        );
        let long = "é".repeat(LOGGED_TEXT_CHARS + 5);
        let texts = vec![
            "great \"product\"\n\tback\\slash \u{1F600}".to_owned(),
            long.clone(),
        ];
        let inputs = [Tensor {
            name: "text".into(),
            shape: vec![2, 1],
            data: TensorData::Str(texts.clone()),
        }];
        let outputs = [Tensor {
            name: "label".into(),
            shape: vec![2],
            data: TensorData::Str(vec!["positive".into(), "negative".into()]),
        }];
        let text = log_lines(&served, "r1", &inputs, &outputs, Some(&["text".into()]));
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["text"], texts[0].as_str());
        assert_eq!(lines[0]["prediction"], "positive");
        let cut = lines[1]["text"].as_str().unwrap_or_default();
        assert_eq!(cut.chars().count(), LOGGED_TEXT_CHARS);
        assert!(long.starts_with(cut));
        assert_eq!(logged_text("short"), "short");
        // A multi-byte text under the bound in characters but over it in
        // bytes is kept whole.
        let under = "é".repeat(LOGGED_TEXT_CHARS - 1);
        assert_eq!(logged_text(&under), under);
    }

    #[test]
    fn serve_specs_parse() {
        let p = |s: &str| s.parse::<ServeSpec>();
        assert_eq!(
            p("iris@production")
                .unwrap_or_else(|e| panic!("{e}"))
                .selector,
            Selector::Alias("production".into())
        );
        assert_eq!(
            p("iris/3").unwrap_or_else(|e| panic!("{e}")).selector,
            Selector::Version(3)
        );
        assert_eq!(
            p("iris").unwrap_or_else(|e| panic!("{e}")).selector,
            Selector::Latest
        );
        assert!(p("iris@").is_err());
        assert!(p("iris/x").is_err());
        assert!(p("iris/0").is_err());
        assert!(p("bad name@x").is_err());
    }
}
