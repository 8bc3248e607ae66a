//! The one authentication and authorisation point of `ferry server`: a
//! middleware in front of every route, artifacts included.
//!
//! - **On when the store has users.** With none (one person on a laptop),
//!   every request passes, as before; `ferry admin create-user` turns it on
//!   for a running server within a second (the generation poll below).
//! - **Who**: HTTP Basic (what the stock client sends with
//!   `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`) or a Bearer ferry token
//!   (`MLFLOW_TRACKING_TOKEN`, `FERRY_TOKEN`). A password costs one argon2id
//!   check, then the credentials are recognised by a keyed tag that also
//!   covers the stored hash (a changed password is checked again) for a
//!   while; password checks run a few at a time so a flood of wrong ones
//!   cannot take the CPU, and each failure waits before it is answered.
//! - **What**: [`rules::route`] names what a route needs; the ids it names
//!   are resolved to their experiment or model and its workspace, and
//!   `ferry_auth::Subject` decides with the caller's grants in that
//!   workspace. Listings are answered and then filtered.
//! - **Caches** (users, tokens, grants, workspaces) are valid for one auth
//!   generation of the store: a change through this server drops them at
//!   once, one made elsewhere (the CLI on the same store) within the poll.
//! - **Audit**: every denial and every change the rules name is appended to
//!   the store's hash-chained log with actor, token, source and outcome.

mod api;
pub mod rules;

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use ferry_auth::audit::Event;
use ferry_auth::credentials::{self, Credentials};
use ferry_auth::{Action, Grant, Key, Permission, Policy, Requirement, ResourceType, Subject};
use ferry_metadata::{DEFAULT_WORKSPACE, MetadataStore, Token, User};
use rules::{Listing, Route, Rule};
use serde::Deserialize as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The header MLflow 3's clients name the workspace in.
pub const WORKSPACE_HEADER: &str = "x-mlflow-workspace";

/// How often the store's auth generation is read.
pub const POLL: Duration = Duration::from_secs(1);

/// How long verified Basic credentials are recognised without a new check.
const VERIFIED_TTL_MS: i64 = 5 * 60 * 1000;

/// How long a failed login waits before it is answered.
const FAILURE_DELAY: Duration = Duration::from_millis(250);

/// The largest JSON body the gate reads for the ids a rule needs (the
/// routes' own limit).
const MAX_BODY: usize = crate::MAX_JSON_BODY;

/// Who sent a request, once authenticated.
#[derive(Debug)]
pub struct Caller {
    pub user: Arc<User>,
    pub token: Option<Arc<Token>>,
    /// The workspace the request works in (header, token scope, the
    /// user's only workspace, else `default`).
    pub workspace: String,
    /// What this caller was allowed in this auth generation: by the id a
    /// rule named, the [`decision_code`]s.
    allowed: RwLock<HashMap<String, Vec<u16>>>,
}

impl Caller {
    fn new(user: Arc<User>, token: Option<Arc<Token>>, workspace: String) -> Self {
        Self {
            user,
            token,
            workspace,
            allowed: RwLock::new(HashMap::new()),
        }
    }

    fn was_allowed(&self, id: &str, code: u16) -> bool {
        self.allowed
            .read()
            .is_ok_and(|d| d.get(id).is_some_and(|codes| codes.contains(&code)))
    }

    fn allow(&self, id: &str, code: u16) {
        if let Ok(mut d) = self.allowed.write() {
            if d.len() >= MAX_DECISIONS {
                d.clear();
            }
            d.entry(id.to_owned()).or_default().push(code);
        }
    }
}

impl Clone for Caller {
    fn clone(&self) -> Self {
        Self::new(
            self.user.clone(),
            self.token.clone(),
            self.workspace.clone(),
        )
    }
}

/// Decisions kept per caller, at most.
const MAX_DECISIONS: usize = 10_000;

/// A rule and its action as a small number, for [`Caller::was_allowed`].
fn decision_code(rule: Rule) -> Option<u16> {
    let action = |a: Action| match a {
        Action::Read => 1,
        Action::Use => 2,
        Action::Update => 3,
        Action::Delete => 4,
        Action::Manage => 5,
        Action::NotDenied => 6,
    };
    Some(match rule {
        Rule::Experiment(a) => 0x100 | action(a),
        Rule::Run(a) => 0x200 | action(a),
        Rule::LoggedModel(a) => 0x300 | action(a),
        Rule::Model(a) => 0x400 | action(a),
        Rule::CreateIn => 0x500,
        _ => return None,
    })
}

impl Caller {
    /// A server admin (a token limited to a role is not one).
    pub fn is_admin(&self) -> bool {
        self.user.is_admin && self.token.as_ref().is_none_or(|t| t.role.is_none())
    }
}

/// What is cached for one auth generation.
#[derive(Default)]
struct Cached {
    generation: i64,
    users: HashMap<String, Arc<User>>,
    tokens: HashMap<String, Arc<Token>>,
    /// Grants by (user id, workspace).
    grants: HashMap<(i64, String), Arc<Vec<Grant>>>,
    /// The workspaces a user has a role in.
    memberships: HashMap<i64, Arc<Vec<String>>>,
    workspaces: HashMap<(ResourceType, String), String>,
    /// Callers by a keyed tag of their `Authorization` and workspace
    /// headers, with until when they count.
    callers: HashMap<[u8; 32], (Arc<Caller>, i64)>,
}

/// Runs and logged models never move between experiments, so what they
/// resolve to is kept across generations (bounded).
#[derive(Default)]
struct Parents {
    runs: HashMap<String, String>,
    logged_models: HashMap<String, String>,
}

const MAX_PARENTS: usize = 100_000;

/// The gate's state, shared by every request.
pub struct Gate {
    store: Arc<dyn MetadataStore>,
    policy: Policy,
    on: AtomicBool,
    /// Credentials are needed even with no users (a server reachable
    /// beyond loopback): then nothing passes until an admin is made.
    required: bool,
    verified: ferry_auth::secret::VerifiedCache,
    /// Password checks at once.
    checks: tokio::sync::Semaphore,
    /// The key of the callers' tags (drawn at start-up, never stored).
    tag_key: [u8; 32],
    cached: RwLock<Cached>,
    parents: RwLock<Parents>,
}

impl Gate {
    /// A gate over `store`, on when it has users.
    pub async fn new(store: Arc<dyn MetadataStore>) -> Result<Arc<Self>, ferry_metadata::Error> {
        Self::with(store, false).await
    }

    /// A gate that is on whatever the store holds (`required`), or on when
    /// it has users.
    pub async fn with(
        store: Arc<dyn MetadataStore>,
        required: bool,
    ) -> Result<Arc<Self>, ferry_metadata::Error> {
        let verified = ferry_auth::secret::VerifiedCache::new(VERIFIED_TTL_MS, 10_000)
            .map_err(|e| ferry_metadata::Error::Invalid(e.to_string()))?;
        let gate = Arc::new(Self {
            store,
            policy: Policy::default(),
            on: AtomicBool::new(false),
            required,
            verified,
            checks: tokio::sync::Semaphore::new(2),
            tag_key: {
                let mut k = [0u8; 32];
                k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                k
            },
            cached: RwLock::new(Cached {
                generation: -1,
                ..Cached::default()
            }),
            parents: RwLock::new(Parents::default()),
        });
        gate.refresh().await?;
        Ok(gate)
    }

    /// Whether requests need credentials (the store has users).
    pub fn is_on(&self) -> bool {
        self.required || self.on.load(Ordering::Relaxed)
    }

    /// Reads the store's auth generation; when it moved, drops the caches
    /// and reads whether there are users.
    pub async fn refresh(&self) -> Result<(), ferry_metadata::Error> {
        let generation = self.store.auth_generation().await?;
        let current = self
            .cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation;
        if generation != current {
            let on = !self.store.list_users().await?.is_empty();
            *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Cached {
                generation,
                ..Cached::default()
            };
            self.on.store(on, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Polls [`Gate::refresh`] every [`POLL`] until the gate is dropped.
    pub fn spawn_poll(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                let Some(gate) = weak.upgrade() else { return };
                if let Err(e) = gate.refresh().await {
                    tracing::warn!("cannot read the auth generation: {e}");
                }
            }
        });
    }

    /// Forgets everything cached now (after this server changed users,
    /// grants or workspaces; the poll would see it within a second).
    async fn changed(&self) {
        if let Err(e) = self.refresh().await {
            tracing::warn!("cannot read the auth generation: {e}");
        }
    }

    /// What `get` finds in this generation's cache, else what `load`
    /// finds in the store, kept there by `put` (nothing found: not kept).
    async fn memo<V: Clone>(
        &self,
        get: impl FnOnce(&Cached) -> Option<V>,
        put: impl FnOnce(&mut Cached, V),
        load: impl std::future::Future<Output = Result<Option<V>, ferry_metadata::Error>>,
    ) -> Result<Option<V>, ferry_metadata::Error> {
        if let Some(v) = self.cached.read().ok().and_then(|c| get(&c)) {
            return Ok(Some(v));
        }
        let found = load.await?;
        if let (Some(v), Ok(mut c)) = (&found, self.cached.write()) {
            put(&mut c, v.clone());
        }
        Ok(found)
    }

    async fn user(&self, name: &str) -> Result<Option<Arc<User>>, ferry_metadata::Error> {
        self.memo(
            |c| c.users.get(name).cloned(),
            |c, u| drop(c.users.insert(name.to_owned(), u)),
            async { Ok(self.store.get_user(name).await?.map(Arc::new)) },
        )
        .await
    }

    async fn token(&self, id: &str) -> Result<Option<Arc<Token>>, ferry_metadata::Error> {
        self.memo(
            |c| c.tokens.get(id).cloned(),
            |c, t| drop(c.tokens.insert(id.to_owned(), t)),
            async { Ok(self.store.get_token(id).await?.map(Arc::new)) },
        )
        .await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<Arc<User>>, ferry_metadata::Error> {
        let found = self
            .cached
            .read()
            .ok()
            .and_then(|c| c.users.values().find(|u| u.id == id).cloned());
        if found.is_some() {
            return Ok(found);
        }
        let Some(u) = self
            .store
            .list_users()
            .await?
            .into_iter()
            .find(|u| u.id == id)
        else {
            return Ok(None);
        };
        let u = Arc::new(u);
        if let Ok(mut c) = self.cached.write() {
            c.users.insert(u.username.clone(), u.clone());
        }
        Ok(Some(u))
    }

    /// The caller a request's credentials name, or why not. A caller seen
    /// with the same headers in this generation is recognised by a keyed
    /// tag of them (no secret is kept), until its credentials' time is up.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Caller>, ApiError> {
        let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        let named = headers.get(WORKSPACE_HEADER).map(|v| v.as_bytes());
        let tag = {
            let mut h = blake3::Hasher::new_keyed(&self.tag_key);
            let given = given.unwrap_or_default();
            h.update(&(given.len() as u64).to_le_bytes());
            h.update(given);
            h.update(named.unwrap_or_default());
            *h.finalize().as_bytes()
        };
        let now = ferry_core::now_ms();
        let seen = self
            .cached
            .read()
            .ok()
            .and_then(|c| c.callers.get(&tag).cloned());
        if let Some((caller, until)) = seen
            && now < until
        {
            return Ok(caller);
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let (user, token) = match credentials::parse_authorization(given) {
            None => return Err(ApiError::unauthenticated()),
            Some(Credentials::Basic { username, password }) => {
                (self.check_password(&username, &password).await?, None)
            }
            Some(Credentials::Bearer { token }) => {
                let (user, token) = self.check_token(&token).await?;
                (user, Some(token))
            }
        };
        let workspace = self
            .workspace_of_request(headers, &user, token.as_deref())
            .await?;
        let until = token
            .as_ref()
            .and_then(|t| t.expires_ms)
            .map_or(now + VERIFIED_TTL_MS, |e| e.min(now + VERIFIED_TTL_MS));
        let caller = Arc::new(Caller::new(user, token, workspace));
        if let Ok(mut c) = self.cached.write() {
            if c.callers.len() >= 10_000 {
                c.callers.retain(|_, (_, u)| now < *u);
            }
            c.callers.insert(tag, (caller.clone(), until));
        }
        Ok(caller)
    }

    async fn check_password(&self, username: &str, password: &str) -> Result<Arc<User>, ApiError> {
        let now = ferry_core::now_ms();
        let user = self.user(username).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        // The tag covers the stored hash: a changed password is checked anew.
        let tagged = format!("{}\u{0}{password}", stored.as_deref().unwrap_or(""));
        if let Some(u) = &user
            && stored.is_some()
            && self.verified.check(username, &tagged, now)
        {
            return Ok(u.clone());
        }
        let ok = {
            let _permit = self
                .checks
                .acquire()
                .await
                .map_err(|_| ApiError::unauthenticated())?;
            let password = password.to_owned();
            let stored = stored.clone();
            tokio::task::spawn_blocking(move || match stored {
                Some(h) => ferry_auth::secret::verify_password(&h, &password),
                None => ferry_auth::secret::verify_unknown(&password),
            })
            .await
            .unwrap_or(false)
        };
        match user {
            Some(u) if ok => {
                self.verified.remember(username, &tagged, now);
                Ok(u)
            }
            _ => {
                tokio::time::sleep(FAILURE_DELAY).await;
                Err(ApiError::unauthenticated())
            }
        }
    }

    async fn check_token(&self, text: &str) -> Result<(Arc<User>, Arc<Token>), ApiError> {
        let Some((id, secret)) = ferry_auth::secret::parse_token(text) else {
            return Err(ApiError::unauthenticated());
        };
        let token = self.token(id).await?;
        let live = token.as_ref().is_some_and(|t| {
            t.live(ferry_core::now_ms())
                && ferry_auth::secret::token_matches(&t.secret_hash, secret)
        });
        let (true, Some(token)) = (live, token) else {
            tokio::time::sleep(FAILURE_DELAY).await;
            return Err(ApiError::unauthenticated());
        };
        match self.user_by_id(token.user_id).await? {
            Some(u) => Ok((u, token)),
            None => Err(ApiError::unauthenticated()),
        }
    }

    /// The workspace a request works in: its `X-MLFLOW-WORKSPACE` header
    /// (which a token limited to one workspace must agree with), else the
    /// token's, else the user's only workspace, else `default`.
    async fn workspace_of_request(
        &self,
        headers: &HeaderMap,
        user: &User,
        token: Option<&Token>,
    ) -> Result<String, ApiError> {
        let named = headers
            .get(WORKSPACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let scoped = token.and_then(|t| t.workspace.as_deref());
        match (named, scoped) {
            // A token limited to one workspace works in no other.
            (Some(n), Some(s)) if n != s => Err(ApiError::forbidden()),
            (Some(n), _) => Ok(n.to_owned()),
            (None, Some(s)) => Ok(s.to_owned()),
            (None, None) => {
                let mine = self.memberships(user.id).await?;
                Ok(match mine.as_slice() {
                    [only] => only.clone(),
                    _ => DEFAULT_WORKSPACE.to_owned(),
                })
            }
        }
    }

    async fn memberships(&self, user_id: i64) -> Result<Arc<Vec<String>>, ferry_metadata::Error> {
        let load = async {
            let mut ws: Vec<String> = self
                .store
                .roles_of(user_id)
                .await?
                .into_iter()
                .map(|r| r.workspace)
                .collect();
            ws.sort();
            ws.dedup();
            Ok(Some(Arc::new(ws)))
        };
        let found = self.memo(
            |c| c.memberships.get(&user_id).cloned(),
            |c, m| drop(c.memberships.insert(user_id, m)),
            load,
        );
        Ok(found.await?.unwrap_or_default())
    }

    /// The caller's grants in `workspace` as a subject; a token limited to
    /// a role holds that role's grants there and nothing elsewhere.
    async fn subject(&self, caller: &Caller, workspace: &str) -> Result<Subject, ApiError> {
        if let Some(t) = &caller.token
            && let Some(role) = &t.role
        {
            let in_scope = t.workspace.as_deref().is_none_or(|w| w == workspace);
            let grants = match ferry_auth::builtin_role(role) {
                Some(g) if in_scope => g,
                _ => Vec::new(),
            };
            return Ok(Subject {
                is_admin: false,
                grants,
            });
        }
        let user = caller.user.id;
        let grants = self
            .memo(
                |c| c.grants.get(&(user, workspace.to_owned())).cloned(),
                |c, g| drop(c.grants.insert((user, workspace.to_owned()), g)),
                async { Ok(Some(Arc::new(self.store.grants_in(user, workspace).await?))) },
            )
            .await?
            .unwrap_or_default();
        Ok(Subject {
            is_admin: caller.is_admin(),
            grants: grants.as_ref().clone(),
        })
    }

    /// The workspace a resource was created in.
    async fn workspace(&self, rt: ResourceType, id: &str) -> Result<String, ferry_metadata::Error> {
        let found = self.memo(
            |c| c.workspaces.get(&(rt, id.to_owned())).cloned(),
            |c, w| drop(c.workspaces.insert((rt, id.to_owned()), w)),
            async { Ok(Some(self.store.workspace_of(rt, id).await?)) },
        );
        Ok(found.await?.unwrap_or_default())
    }

    /// The experiment a run is in; `None` when there is no such run.
    async fn run_experiment(&self, run_id: &str) -> Result<Option<String>, ferry_metadata::Error> {
        if let Some(e) = self
            .parents
            .read()
            .ok()
            .and_then(|p| p.runs.get(run_id).cloned())
        {
            return Ok(Some(e));
        }
        let Some(run) = self.store.get_tracked_run(run_id).await? else {
            return Ok(None);
        };
        let exp = run.info.experiment_id.to_string();
        if let Ok(mut p) = self.parents.write() {
            if p.runs.len() >= MAX_PARENTS {
                p.runs.clear();
            }
            p.runs.insert(run_id.to_owned(), exp.clone());
        }
        Ok(Some(exp))
    }

    async fn logged_model_experiment(
        &self,
        model_id: &str,
    ) -> Result<Option<String>, ferry_metadata::Error> {
        if let Some(e) = self
            .parents
            .read()
            .ok()
            .and_then(|p| p.logged_models.get(model_id).cloned())
        {
            return Ok(Some(e));
        }
        let Some(m) = self.store.get_logged_model(model_id).await? else {
            return Ok(None);
        };
        let exp = m.experiment_id.to_string();
        if let Ok(mut p) = self.parents.write() {
            if p.logged_models.len() >= MAX_PARENTS {
                p.logged_models.clear();
            }
            p.logged_models.insert(model_id.to_owned(), exp.clone());
        }
        Ok(Some(exp))
    }

    /// Whether the caller may do `action` on the experiment, its tier
    /// (`run`, `logged_model`) deciding first when one is named.
    async fn may_experiment(
        &self,
        caller: &Caller,
        exp: &str,
        tier: Option<ResourceType>,
        action: Action,
    ) -> Result<bool, ApiError> {
        let ws = self.workspace(ResourceType::Experiment, exp).await?;
        let subject = self.subject(caller, &ws).await?;
        let on_exp = Key::new(ResourceType::Experiment, exp);
        let req = match tier {
            Some(t) => Requirement::on(Key::new(t, "*"), action).or(on_exp),
            None => Requirement::on(on_exp, action),
        };
        Ok(subject.may(&self.policy, &req))
    }

    async fn may_model(
        &self,
        caller: &Caller,
        name: &str,
        action: Action,
    ) -> Result<bool, ApiError> {
        let ws = self.workspace(ResourceType::RegisteredModel, name).await?;
        let subject = self.subject(caller, &ws).await?;
        let req = Requirement::on(Key::new(ResourceType::RegisteredModel, name), action);
        Ok(subject.may(&self.policy, &req))
    }

    /// Whether the caller may create in their request's workspace: a
    /// member, and `kind` not denied there.
    async fn may_create(
        &self,
        caller: &Caller,
        kind: ResourceType,
        id: &str,
    ) -> Result<bool, ApiError> {
        let subject = self.subject(caller, &caller.workspace).await?;
        let not_denied = Requirement::on(Key::new(kind, id), Action::NotDenied);
        Ok(subject.is_member() && subject.may(&self.policy, &not_denied))
    }

    /// Appends one audit entry; a failure is logged, never the request's.
    async fn audit(&self, caller: Option<&Caller>, actor: &str, what: Audited<'_>) {
        let event = Event {
            time_ms: ferry_core::now_ms(),
            actor: caller.map_or_else(|| actor.to_owned(), |c| c.user.username.clone()),
            token_id: caller.and_then(|c| c.token.as_ref().map(|t| t.id.clone())),
            action: what.action.to_owned(),
            resource: what.resource,
            outcome: what.outcome.to_owned(),
            source: what.source.map(|ip| ip.to_string()).unwrap_or_default(),
            reason: None,
        };
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!("cannot append to the audit log: {e}");
        }
    }
}

/// One entry's variable part.
struct Audited<'a> {
    action: &'a str,
    resource: String,
    outcome: &'a str,
    /// The peer's address (formatted only when an entry is written).
    source: Option<std::net::IpAddr>,
}

/// The ids a rule reads from a request: the query string, or a JSON body.
#[derive(Debug, Default, serde::Deserialize)]
struct Params {
    #[serde(default, deserialize_with = "id")]
    experiment_id: Option<String>,
    experiment_name: Option<String>,
    run_id: Option<String>,
    run_uuid: Option<String>,
    name: Option<String>,
    path: Option<String>,
    alias: Option<String>,
}

/// An id sent as a string or a number.
fn id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(i64),
    }
    Ok(match Option::<Id>::deserialize(d)? {
        Some(Id::S(s)) => Some(s),
        Some(Id::N(n)) => Some(n.to_string()),
        None => None,
    })
}

impl Params {
    fn run(&self) -> Option<&str> {
        self.run_id.as_deref().or(self.run_uuid.as_deref())
    }
}

/// What the gate learned while deciding, for the after-steps.
struct Decided {
    /// The resource named, for the audit log (`experiment:3`).
    resource: String,
    params: Params,
}

pub use api::routes;

/// In front of the auth API: without users, there is no one to be (the
/// first admin is made with `ferry admin create-user`, never over HTTP).
pub async fn needs_gate(req: Request, next: axum::middleware::Next) -> Response {
    if req.extensions().get::<Caller>().is_none() {
        return ApiError::not_found(
            "authentication is off on this server (its store has no users); \
             `ferry admin create-user NAME --admin --password-stdin` on the store turns it on",
        )
        .into_response();
    }
    next.run(req).await
}

/// The gate as a layer in front of every route: with the gate off, a
/// request goes straight through (no boxing, no lookups).
#[derive(Clone)]
pub struct GateLayer(pub Arc<Gate>);

impl<S> tower::Layer<S> for GateLayer {
    type Service = GateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GateService {
            gate: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct GateService<S> {
    gate: Arc<Gate>,
    inner: S,
}

type Boxed = futures_util::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

impl<S> tower::Service<Request> for GateService<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<S::Future, Boxed>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if !self.gate.is_on() {
            return futures_util::future::Either::Left(self.inner.call(req));
        }
        // The service that was polled ready goes with the request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        futures_util::future::Either::Right(Box::pin(async move {
            Ok(guarded(gate, req, Inner(inner)).await)
        }))
    }
}

/// The service behind the gate, run once.
struct Inner<S>(S);

impl<S> Inner<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    async fn run(self, req: Request) -> Response {
        use tower::ServiceExt as _;
        match self.0.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

/// A request while the gate is on: authenticate, decide, answer, then
/// record and filter.
async fn guarded<S>(gate: Arc<Gate>, req: Request, next: Inner<S>) -> Response
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    let route = rules::route(req.method().as_str(), req.uri().path());
    if route.rule == Rule::Public {
        return next.run(req).await;
    }
    let source = req.extensions().get::<ferry_http::Peer>().map(|p| p.0.ip());
    let caller = match gate.authenticate(req.headers()).await {
        Ok(c) => c,
        Err(refusal) => {
            let actor = claimed_user(req.headers());
            let what = Audited {
                action: "auth.login",
                resource: String::new(),
                outcome: "denied",
                source,
            };
            gate.audit(None, &actor, what).await;
            return refusal.into_response();
        }
    };
    if route.rule == Rule::AuthApi {
        let mut req = req;
        req.extensions_mut().insert(caller.as_ref().clone());
        req.extensions_mut().insert(gate.clone());
        return next.run(req).await;
    }
    let (req, decided) = match decide(&gate, &caller, route, req).await {
        Ok(d) => d,
        Err((refusal, resource)) => {
            let action = route.audit.unwrap_or("request");
            let what = Audited {
                action,
                resource,
                outcome: "denied",
                source,
            };
            gate.audit(Some(&caller), "", what).await;
            return refusal.into_response();
        }
    };
    let resp = next.run(req).await;
    after(&gate, &caller, route, decided, resp, source).await
}

/// The user name a request claims (for the audit entry of a failed login;
/// never the password or token).
fn claimed_user(headers: &HeaderMap) -> String {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match credentials::parse_authorization(given) {
        Some(Credentials::Basic { username, .. }) => username,
        Some(Credentials::Bearer { token }) => ferry_auth::secret::parse_token(&token)
            .map_or_else(|| "token".to_owned(), |(id, _)| format!("token:{id}")),
        None => "anonymous".to_owned(),
    }
}

type Denied = (ApiError, String);

/// Reads what the rule needs and decides; the request comes back whole
/// (its body re-made from the bytes read), or the refusal with the
/// resource it named.
async fn decide(
    gate: &Gate,
    caller: &Caller,
    route: Route,
    req: Request,
) -> Result<(Request, Decided), Denied> {
    let (req, params) = read_params(route.rule, req)
        .await
        .map_err(|e| (e, String::new()))?;
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let wanted = route.audit.is_some();
    let rule = protected(route.rule, uri.path(), &params);
    let (resource, allowed) =
        match check(gate, caller, rule, (&method, &uri), &params, wanted).await {
            Ok(v) => v,
            Err(r) => return Err((r, String::new())),
        };
    if !allowed {
        return Err((ApiError::forbidden(), resource));
    }
    Ok((req, Decided { resource, params }))
}

/// Aliases only a maintainer (MANAGE) moves or removes by hand; an editor
/// may move the others. Promotions by a passing gate or deployment go
/// through ferry itself.
pub const PROTECTED_ALIASES: &[&str] = &["production"];

/// `rule`, raised to MANAGE when it moves or removes a protected alias.
fn protected(rule: Rule, path: &str, p: &Params) -> Rule {
    let moves_alias = path == "/api/2.0/mlflow/registered-models/alias";
    match rule {
        Rule::Model(Action::Update | Action::Delete)
            if moves_alias
                && p.alias
                    .as_deref()
                    .is_some_and(|a| PROTECTED_ALIASES.contains(&a)) =>
        {
            Rule::Model(Action::Manage)
        }
        other => other,
    }
}

/// The request's [`Params`]: from the query string for a GET, from the
/// JSON body otherwise (artifact uploads are not read: their path says it).
async fn read_params(rule: Rule, req: Request) -> Result<(Request, Params), ApiError> {
    let query = query_params(req.uri().query());
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if req.method() == axum::http::Method::GET || rule == Rule::Artifact || !json {
        return Ok((req, query));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("Cannot read the request body: {e}")))?;
    // A body the route would refuse is the route's to refuse.
    let body: Params = serde_json::from_slice(&bytes).unwrap_or_default();
    // A DELETE may name its ids in the query string instead.
    let params = Params {
        experiment_id: body.experiment_id.or(query.experiment_id),
        experiment_name: body.experiment_name.or(query.experiment_name),
        run_id: body.run_id.or(query.run_id),
        run_uuid: body.run_uuid.or(query.run_uuid),
        name: body.name.or(query.name),
        path: body.path.or(query.path),
        alias: body.alias.or(query.alias),
    };
    Ok((Request::from_parts(parts, Body::from(bytes)), params))
}

fn query_params(q: Option<&str>) -> Params {
    let Some(q) = q else {
        return Params::default();
    };
    let Ok(uri) = format!("/?{q}").parse::<axum::http::Uri>() else {
        return Params::default();
    };
    axum::extract::Query::<Params>::try_from_uri(&uri)
        .map(|axum::extract::Query(p)| p)
        .unwrap_or_default()
}

/// [`decide_rule`], with what was allowed remembered per caller for the
/// rules that name one id.
async fn check(
    gate: &Gate,
    caller: &Caller,
    rule: Rule,
    asked: (&Method, &Uri),
    p: &Params,
    wanted: bool,
) -> Result<(String, bool), ApiError> {
    let id = match rule {
        Rule::Experiment(_) | Rule::CreateIn => p.experiment_id.as_deref(),
        Rule::Run(_) => p.run(),
        Rule::Model(_) => p.name.as_deref(),
        Rule::LoggedModel(_) => rules::logged_model_id(asked.1.path()),
        _ => None,
    };
    if caller.is_admin() {
        // An admin may do all; the resource's name only for the audit log.
        let resource = if wanted {
            p.run()
                .map(|r| format!("run:{r}"))
                .or_else(|| p.experiment_id.as_ref().map(|e| format!("experiment:{e}")))
                .or_else(|| p.name.as_ref().map(|n| format!("registered_model:{n}")))
                .unwrap_or_default()
        } else {
            String::new()
        };
        return Ok((resource, true));
    }
    let key = id.zip(decision_code(rule));
    if let Some((id, code)) = key
        && caller.was_allowed(id, code)
    {
        // The resource's name is for the audit log: made only when wanted.
        if !wanted {
            return Ok((String::new(), true));
        }
        let kind = match rule {
            Rule::Run(_) => "run",
            Rule::Model(_) => "registered_model",
            Rule::LoggedModel(_) => "logged_model",
            _ => "experiment",
        };
        return Ok((format!("{kind}:{id}"), true));
    }
    let (resource, ok) = decide_rule(gate, caller, rule, asked, p).await?;
    // Only what was allowed: a refusal may be of something that does not
    // exist yet (an experiment id made later, by a process that does not
    // bump the generation), and refusals are rare and audited anyway.
    if let Some((id, code)) = key
        && ok
    {
        caller.allow(id, code);
    }
    Ok((resource, ok))
}

/// Whether the caller may do what the rule says, and the resource it
/// named (for the audit log).
async fn decide_rule(
    gate: &Gate,
    caller: &Caller,
    rule: Rule,
    (method, uri): (&Method, &Uri),
    p: &Params,
) -> Result<(String, bool), ApiError> {
    let missing = ApiError::missing;
    use ResourceType as T;
    Ok(match rule {
        Rule::Public | Rule::Authenticated | Rule::AuthApi => (String::new(), true),
        Rule::Deny => (uri.path().to_owned(), false),
        Rule::Search(_) => (String::new(), true),
        Rule::Experiment(action) => {
            let exp = p
                .experiment_id
                .as_deref()
                .ok_or_else(|| missing("experiment_id"))?;
            let tier = (action == Action::Delete).then_some(T::Run);
            let ok = gate.may_experiment(caller, exp, tier, action).await?;
            (format!("experiment:{exp}"), ok)
        }
        Rule::ExperimentByName => {
            let name = p
                .experiment_name
                .as_deref()
                .ok_or_else(|| missing("experiment_name"))?;
            match gate.store.get_experiment_by_name(name).await? {
                // The route answers 404 itself, as MLflow's does.
                None => (format!("experiment:{name}"), true),
                Some(e) => {
                    let exp = e.experiment_id.to_string();
                    let ok = gate
                        .may_experiment(caller, &exp, None, Action::Read)
                        .await?;
                    (format!("experiment:{exp}"), ok)
                }
            }
        }
        Rule::CreateExperiment => {
            let ok = gate.may_create(caller, T::Experiment, "*").await?;
            (format!("workspace:{}", caller.workspace), ok)
        }
        Rule::CreateIn => {
            let exp = p
                .experiment_id
                .as_deref()
                .ok_or_else(|| missing("experiment_id"))?;
            let ok = gate
                .may_experiment(caller, exp, None, Action::Update)
                .await?;
            (format!("experiment:{exp}"), ok)
        }
        Rule::Run(action) => {
            let run = p.run().ok_or_else(|| missing("run_id"))?;
            let ok = match gate.run_experiment(run).await? {
                Some(exp) => {
                    gate.may_experiment(caller, &exp, Some(T::Run), action)
                        .await?
                }
                None => false,
            };
            (format!("run:{run}"), ok)
        }
        Rule::LoggedModel(action) => {
            let id = rules::logged_model_id(uri.path()).unwrap_or_default();
            let ok = match gate.logged_model_experiment(id).await? {
                Some(exp) => {
                    gate.may_experiment(caller, &exp, Some(T::LoggedModel), action)
                        .await?
                }
                None => false,
            };
            (format!("logged_model:{id}"), ok)
        }
        Rule::Model(action) => {
            let name = p.name.as_deref().ok_or_else(|| missing("name"))?;
            let ok = gate.may_model(caller, name, action).await?;
            (format!("registered_model:{name}"), ok)
        }
        Rule::CreateModel => {
            let name = p.name.as_deref().ok_or_else(|| missing("name"))?;
            let ok = gate.may_create(caller, T::RegisteredModel, name).await?;
            (format!("registered_model:{name}"), ok)
        }
        Rule::CreateVersion => {
            let name = p.name.as_deref().ok_or_else(|| missing("name"))?;
            let mut ok = gate.may_model(caller, name, Action::Update).await?;
            if let Some(run) = p.run().filter(|r| !r.is_empty()) {
                ok = ok
                    && match gate.run_experiment(run).await? {
                        Some(exp) => {
                            gate.may_experiment(caller, &exp, Some(T::Run), Action::Read)
                                .await?
                        }
                        None => false,
                    };
            }
            (format!("registered_model:{name}"), ok)
        }
        Rule::Artifact => artifact(gate, caller, (method, uri), p).await?,
    })
}

/// An artifact path is allowed only through the run or logged model whose
/// folder holds it; a path that resolves to neither is denied.
async fn artifact(
    gate: &Gate,
    caller: &Caller,
    (method, uri): (&Method, &Uri),
    p: &Params,
) -> Result<(String, bool), ApiError> {
    const PREFIX: &str = "/api/2.0/mlflow-artifacts/artifacts";
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or("");
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    let path = if raw.is_empty() {
        p.path.as_deref().unwrap_or("")
    } else {
        raw
    };
    let action = rules::artifact_action(method.as_str());
    let Ok(safe) = crate::artifacts::check_path(path, true) else {
        return Ok((format!("artifact:{path}"), false));
    };
    let resource = format!("artifact:{}", safe.as_str());
    let owner = crate::routes::artifacts::owner_in(gate.store.as_ref(), &safe).await?;
    let ok = match owner {
        Some(crate::routes::artifacts::Owner::Run { id, .. }) => {
            match gate.run_experiment(&id).await? {
                Some(exp) => {
                    gate.may_experiment(caller, &exp, Some(ResourceType::Run), action)
                        .await?
                }
                None => false,
            }
        }
        Some(crate::routes::artifacts::Owner::Model { id, .. }) => {
            match gate.logged_model_experiment(&id).await? {
                Some(exp) => {
                    gate.may_experiment(caller, &exp, Some(ResourceType::LoggedModel), action)
                        .await?
                }
                None => false,
            }
        }
        None => false,
    };
    Ok((resource, ok))
}

/// After the handler: the creator's grant and workspace on what was made,
/// the audit entry of a change, and a listing filtered.
async fn after(
    gate: &Gate,
    caller: &Caller,
    route: Route,
    decided: Decided,
    resp: Response,
    source: Option<std::net::IpAddr>,
) -> Response {
    let ok = resp.status().is_success();
    let (resp, resource) = match (route.rule, ok) {
        (Rule::CreateExperiment, true) => {
            let (resp, body) = body_json(resp).await;
            let id = body
                .as_ref()
                .and_then(|b| b["experiment_id"].as_str().map(str::to_owned));
            if let Some(id) = &id {
                owned(gate, caller, ResourceType::Experiment, id).await;
            }
            (
                resp,
                id.map_or(decided.resource, |i| format!("experiment:{i}")),
            )
        }
        (Rule::CreateModel, true) => {
            if let Some(name) = &decided.params.name {
                owned(gate, caller, ResourceType::RegisteredModel, name).await;
            }
            (resp, decided.resource)
        }
        (Rule::Search(listing), true) if !caller.is_admin() => {
            (filter(gate, caller, listing, resp).await, decided.resource)
        }
        _ => (resp, decided.resource),
    };
    if let Some(action) = route.audit {
        let outcome = if ok {
            "allowed".to_owned()
        } else {
            format!("failed: {}", resp.status().as_u16())
        };
        let what = Audited {
            action,
            resource,
            outcome: &outcome,
            source,
        };
        gate.audit(Some(caller), "", what).await;
    }
    resp
}

/// The creator of a resource manages it, in the workspace it was made in.
async fn owned(gate: &Gate, caller: &Caller, rt: ResourceType, id: &str) {
    let grant = Grant::new(rt, id, Permission::Manage);
    let set = gate.store.set_workspace(rt, id, &caller.workspace).await;
    let granted = gate
        .store
        .grant_user(caller.user.id, &caller.workspace, &grant)
        .await;
    for e in [set.err(), granted.err()].into_iter().flatten() {
        if !matches!(e, ferry_metadata::Error::AlreadyExists(_)) {
            tracing::error!("cannot record the owner of {rt} {id}: {e}");
        }
    }
    gate.changed().await;
}

/// A response's JSON body, and the response made again from it.
async fn body_json(resp: Response) -> (Response, Option<serde_json::Value>) {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (Response::from_parts(parts, Body::empty()), None);
    };
    let v = serde_json::from_slice(&bytes).ok();
    (Response::from_parts(parts, Body::from(bytes)), v)
}

/// A listing without the rows the caller may not read.
async fn filter(gate: &Gate, caller: &Caller, listing: Listing, resp: Response) -> Response {
    let (resp, body) = body_json(resp).await;
    let Some(mut body) = body else { return resp };
    let field = match listing {
        Listing::Experiments => "experiments",
        Listing::Runs => "runs",
        Listing::LoggedModels => "models",
        Listing::Models => "registered_models",
        Listing::Versions => "model_versions",
    };
    let Some(rows) = body.get_mut(field).and_then(|v| v.as_array_mut()) else {
        return resp;
    };
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows.drain(..) {
        if readable(gate, caller, listing, &row).await.unwrap_or(false) {
            kept.push(row);
        }
    }
    *rows = kept;
    let (parts, _) = resp.into_parts();
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = Response::from_parts(parts, Body::from(bytes));
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp
}

async fn readable(
    gate: &Gate,
    caller: &Caller,
    listing: Listing,
    row: &serde_json::Value,
) -> Result<bool, ApiError> {
    let s = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let exp = match listing {
        Listing::Experiments => s(&row["experiment_id"]),
        Listing::Runs => s(&row["info"]["experiment_id"]),
        Listing::LoggedModels => s(&row["info"]["experiment_id"]),
        Listing::Models | Listing::Versions => {
            let Some(name) = s(&row["name"]) else {
                return Ok(false);
            };
            return gate.may_model(caller, &name, Action::Read).await;
        }
    };
    match exp {
        Some(e) => gate.may_experiment(caller, &e, None, Action::Read).await,
        None => Ok(false),
    }
}
