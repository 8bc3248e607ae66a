//! The one authentication and authorisation point of `ferry server`: a
//! middleware in front of every route, artifacts included.
//!
//! - **Who** is calling, and the caches of what they hold, is
//!   `ferry_access::Access` (shared with the gateway): on when the store has
//!   users, Basic or Bearer credentials, caches per auth generation.
//! - **What**: [`rules::route`] names what a route needs; the ids it names
//!   are resolved to their experiment or model and its workspace, and
//!   `ferry_auth::Subject` decides with the caller's grants in that
//!   workspace. Listings are answered and then filtered.
//! - **Audit**: every denial and every change the rules name is appended to
//!   the store's hash-chained log with actor, token, source and outcome.

mod api;
pub mod rules;

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};
pub use ferry_access::{Access, Audited, Caller, POLL, WORKSPACE_HEADER};
use ferry_auth::{Action, Key, Requirement, ResourceType};
use ferry_http::guard::{Next, Routes};
use ferry_metadata::MetadataStore;
use rules::{Listing, Route, Rule};
use serde::Deserialize as _;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The largest JSON body the gate reads for the ids a rule needs (the
/// routes' own limit).
const MAX_BODY: usize = crate::MAX_JSON_BODY;

/// A rule and its action as a small number, for [`Caller::was_allowed`].
fn decision_code(rule: Rule) -> Option<u16> {
    Some(match rule {
        Rule::Experiment(a) => 0x100 | a.code(),
        Rule::Run(a) => 0x200 | a.code(),
        Rule::LoggedModel(a) => 0x300 | a.code(),
        Rule::Model(a) => 0x400 | a.code(),
        Rule::CreateIn => 0x500,
        _ => return None,
    })
}

/// Runs and logged models never move between experiments, so what they
/// resolve to is kept across generations (bounded).
#[derive(Default)]
struct Parents {
    runs: HashMap<String, String>,
    logged_models: HashMap<String, String>,
}

const MAX_PARENTS: usize = 100_000;

/// The gate's state, shared by every request: who is calling (the shared
/// [`Access`], which it dereferences to) and where runs and logged models
/// live.
pub struct Gate {
    access: Arc<Access>,
    parents: RwLock<Parents>,
}

impl std::ops::Deref for Gate {
    type Target = Access;
    fn deref(&self) -> &Access {
        &self.access
    }
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
        Self::with_oidc(store, required, None).await
    }

    /// [`Gate::with`], also accepting `oidc`'s ID tokens as Bearer.
    pub async fn with_oidc(
        store: Arc<dyn MetadataStore>,
        required: bool,
        oidc: Option<ferry_access::Sso>,
    ) -> Result<Arc<Self>, ferry_metadata::Error> {
        Ok(Arc::new(Self {
            access: Access::with_oidc(store, required, oidc).await?,
            parents: RwLock::new(Parents::default()),
        }))
    }

    /// Polls the store's auth generation until the gate is dropped.
    pub fn spawn_poll(&self) {
        self.access.spawn_poll();
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
        let Some(run) = self.store().get_tracked_run(run_id).await? else {
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
        let Some(m) = self.store().get_logged_model(model_id).await? else {
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
        Ok(subject.may(self.policy(), &req))
    }
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
    /// A tag's key (`set-tag`, `delete-tag`).
    key: Option<String>,
    /// How a deployment ends (`deployments/end`).
    action: Option<String>,
}

/// An experiment id as the routes parse it (trimmed, a number's digits),
/// so the gate decides on the experiment the route reaches; one that is no
/// number stays as it is (the route refuses it).
fn canonical_id(e: &str) -> String {
    e.trim()
        .parse::<i64>()
        .map_or_else(|_| e.to_owned(), |n| n.to_string())
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
    /// The ids in a JSON object, each as the route will see it: a string,
    /// a number's digits, else its JSON text.
    fn of_object(fields: &serde_json::Map<String, serde_json::Value>) -> Params {
        let field = |k: &str| {
            fields.get(k).and_then(|v| match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            })
        };
        Params {
            experiment_id: field("experiment_id").map(|e| canonical_id(&e)),
            experiment_name: field("experiment_name"),
            run_id: field("run_id"),
            run_uuid: field("run_uuid"),
            name: field("name"),
            path: field("path"),
            alias: field("alias"),
            key: field("key"),
            action: field("action"),
        }
    }

    /// With the experiment id as the routes parse it (`" 01"` is `1`).
    fn canonical(mut self) -> Params {
        self.experiment_id = self.experiment_id.map(|e| canonical_id(&e));
        self
    }

    fn run(&self) -> Option<&str> {
        self.run_id.as_deref().or(self.run_uuid.as_deref())
    }
}

/// What the gate learned while deciding, for the after-steps.
struct Decided {
    /// The resource named, for the audit log (`experiment:3`).
    resource: String,
    params: Params,
    /// Why, as the caller said ([`ferry_metadata::REASON_HEADER`]).
    reason: Option<String>,
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

impl ferry_http::guard::Guard for Gate {
    fn is_on(&self) -> bool {
        Access::is_on(self)
    }

    /// A request on a run, an experiment or a logged model, on a route that
    /// neither audits nor filters, by credentials this thread saw allowed
    /// the same on the same id (named in the path or the query string) in
    /// this auth generation, passes at once. One that names its id in a
    /// JSON body leaves the decision to the route's [`crate::extract::Json`]
    /// ([`InBody`]), which reads that body anyway: the body is read and
    /// parsed once, and the request needs no box. Registered models are
    /// left out: what they need can depend on the request (a protected
    /// alias or its tag), which [`protection`] decides first.
    fn passes_at_once(self: &Arc<Self>, req: &mut Request) -> bool {
        let route = rules::route(req.method().as_str(), req.uri().path());
        let Some(code) = at_once_code(route) else {
            return false;
        };
        let tag = self.tag(req.headers());
        let seen = |id: Option<&str>| id.is_some_and(|id| self.seen_allowed(&tag, id, code));
        match route.rule {
            Rule::LoggedModel(_) => seen(rules::logged_model_id(req.uri().path())),
            _ if req.method() == Method::GET => {
                let p = query_params(req.uri().query());
                seen(rule_id(route.rule, req.uri(), &p))
            }
            Rule::Run(_) | Rule::Experiment(_)
                if req.method() == Method::POST
                    && crate::extract::json_content_type(req.headers()).is_ok() =>
            {
                let in_body = InBody {
                    gate: self.clone(),
                    tag,
                    route,
                    code,
                };
                req.extensions_mut().insert(in_body);
                true
            }
            _ => false,
        }
    }

    fn guard<S: Routes>(self: Arc<Self>, req: Request, next: Next<S>) -> ferry_http::guard::Answer {
        Box::pin(guarded(self, req, next))
    }
}

/// A request while the gate is on: authenticate, decide, answer, then
/// record and filter.
async fn guarded<S: Routes>(gate: Arc<Gate>, req: Request, next: Next<S>) -> Response {
    let route = rules::route(req.method().as_str(), req.uri().path());
    if route.rule == Rule::Public {
        return next.run(req).await;
    }
    let tag = gate.tag(req.headers());
    let source = req.extensions().get::<ferry_http::Peer>().map(|p| p.0.ip());
    let caller = match gate.caller(req.headers(), source).await {
        Ok(c) => c,
        Err(refusal) => return ApiError::from(refusal).into_response(),
    };
    if route.rule == Rule::AuthApi {
        let mut req = req;
        req.extensions_mut().insert(caller.as_ref().clone());
        req.extensions_mut().insert(gate.clone());
        return next.run(req).await;
    }
    // ferry's own routes audit what they do with who asked; the
    // dashboard shows only the caller's workspaces; what is created is
    // recorded as theirs (a run's user_id).
    let mut req = req;
    if route.rule == Rule::CreateIn
        || req.uri().path().starts_with("/api/2.0/ferry/")
        || ferry_dashboard::serves(req.uri().path())
    {
        req.extensions_mut().insert(caller.as_ref().clone());
    }
    let (req, params) = match read_params(route.rule, req).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let asked = Asked {
        route,
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        source,
    };
    let decided = match decide(&gate, &caller, &tag, asked, params).await {
        Ok(d) => d,
        Err(refusal) => return refusal.into_response(),
    };
    let resp = next.run(req).await;
    after(&gate, &caller, route, decided, resp, source).await
}

/// What a request asks, for a decision.
#[derive(Clone, Copy)]
struct Asked<'a> {
    route: Route,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a axum::http::HeaderMap,
    source: Option<std::net::IpAddr>,
}

/// A decision the gate left to the route's JSON extractor
/// ([`Gate::passes_at_once`]): the extractor reads the body and calls
/// [`InBody::decide`] before the route does anything. Every route this is
/// left to takes its body through [`crate::extract::Json`]
/// (`rules::tests::decided_in_the_body` lists them; the permission matrix
/// refuses on each).
#[derive(Clone)]
pub struct InBody {
    gate: Arc<Gate>,
    tag: ferry_access::Tag,
    route: Route,
    code: u16,
}

/// The ids a run or experiment route names in its body, as borrowed as
/// they come: the fast path's parse (anything it cannot read, a number or
/// a repeated field, goes the whole way).
#[derive(serde::Deserialize)]
struct BodyIds<'a> {
    #[serde(borrow)]
    run_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    run_uuid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    experiment_id: Option<std::borrow::Cow<'a, str>>,
}

impl InBody {
    /// Allows the request (`Ok`), or the refusal, audited.
    pub async fn decide(
        self,
        parts: &axum::http::request::Parts,
        body: &[u8],
    ) -> Result<(), ApiError> {
        if self.seen(body) {
            return Ok(());
        }
        let gate = &self.gate;
        let source = parts.extensions.get::<ferry_http::Peer>().map(|p| p.0.ip());
        let caller = gate
            .caller(&parts.headers, source)
            .await
            .map_err(ApiError::from)?;
        let asked = Asked {
            route: self.route,
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            source,
        };
        let params = params_of_body(body, parts.uri.query());
        // The rules left here neither audit an allowed request nor filter.
        decide(gate, &caller, &self.tag, asked, params)
            .await
            .map(drop)
    }

    /// Whether this thread saw the same allowed on the id the body names.
    fn seen(&self, body: &[u8]) -> bool {
        let Ok(ids) = serde_json::from_slice::<BodyIds>(body) else {
            return false;
        };
        let id = match self.route.rule {
            Rule::Run(_) => ids.run_id.or(ids.run_uuid),
            Rule::Experiment(_) => ids.experiment_id.map(|e| canonical_id(&e).into()),
            _ => None,
        };
        id.is_some_and(|id| self.gate.seen_allowed(&self.tag, &id, self.code))
    }
}

/// The decision code of a route a thread's memory may pass at once: on a
/// run, an experiment or a logged model, neither audited nor filtered.
fn at_once_code(route: Route) -> Option<u16> {
    let eligible = matches!(
        route.rule,
        Rule::Run(_) | Rule::Experiment(_) | Rule::LoggedModel(_)
    );
    decision_code(route.rule).filter(|_| eligible && route.audit.is_none())
}

/// The id a rule decides on, from the request.
fn rule_id<'a>(rule: Rule, uri: &'a Uri, p: &'a Params) -> Option<&'a str> {
    match rule {
        Rule::Experiment(_) | Rule::CreateIn => p.experiment_id.as_deref(),
        Rule::Run(_) => p.run(),
        Rule::Model(_) => p.name.as_deref(),
        Rule::LoggedModel(_) => rules::logged_model_id(uri.path()),
        _ => None,
    }
}

/// Decides on what was asked; a refusal is audited with the resource it
/// named.
async fn decide(
    gate: &Gate,
    caller: &Caller,
    tag: &ferry_access::Tag,
    asked: Asked<'_>,
    params: Params,
) -> Result<Decided, ApiError> {
    let Asked {
        route,
        method,
        uri,
        headers,
        source,
    } = asked;
    let wanted = route.audit.is_some();
    let reason = reason_of(headers);
    let (rule, protects) = protection(gate, route.rule, uri.path(), &params).await?;
    let (resource, allowed) =
        check(gate, (caller, tag), rule, (method, uri), &params, wanted).await?;
    let refusal = if !allowed {
        ApiError::forbidden()
    } else if let (Some(why), None) = (protects, &reason) {
        ApiError::invalid(why)
    } else {
        return Ok(Decided {
            resource,
            params,
            reason,
        });
    };
    let what = Audited {
        action: route.audit.unwrap_or("request"),
        resource,
        outcome: "denied",
        source,
        reason: None,
    };
    gate.audit(Some(caller), "", what).await;
    Err(refusal)
}

/// The reason a request gives ([`ferry_metadata::REASON_HEADER`],
/// percent-encoded UTF-8), when it gives a non-empty one.
pub fn reason_of(headers: &axum::http::HeaderMap) -> Option<String> {
    let raw = headers.get(ferry_metadata::REASON_HEADER)?.as_bytes();
    let text = percent_encoding::percent_decode(raw).decode_utf8_lossy();
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(1000).collect())
}

/// `rule`, raised to MANAGE when it moves or removes one of the model's
/// protected aliases (`ferry_metadata::protects`: `production` unless the
/// model's `ferry.protected_aliases` tag says otherwise) or changes that
/// tag. For a protected alias, also what to say when the request gives no
/// reason (a 400 once the caller is allowed): promotions by a passing
/// deployment or gate go through ferry itself and record theirs.
async fn protection(
    gate: &Gate,
    rule: Rule,
    path: &str,
    p: &Params,
) -> Result<(Rule, Option<String>), ApiError> {
    let Rule::Model(Action::Update | Action::Delete) = rule else {
        return Ok((rule, None));
    };
    let tag_route = matches!(
        path,
        "/api/2.0/mlflow/registered-models/set-tag"
            | "/api/2.0/mlflow/registered-models/delete-tag"
    );
    if tag_route && p.key.as_deref() == Some(ferry_metadata::PROTECTED_ALIASES_TAG) {
        return Ok((Rule::Model(Action::Manage), None));
    }
    // Promoting a rollout by hand moves its alias by hand: a maintainer's,
    // with a reason.
    if path == "/api/2.0/ferry/deployments/end" && p.action.as_deref() == Some("promote") {
        let name = p.name.as_deref().unwrap_or_default();
        let why = format!(
            "promoting `{name}` by hand moves a protected alias: a maintainer's, with a reason \
             (`ferry deploy promote {name} --reason TEXT`, or the {} header)",
            ferry_metadata::REASON_HEADER
        );
        return Ok((Rule::Model(Action::Manage), Some(why)));
    }
    // Renaming a model that holds a protected alias takes the alias with
    // it (its old name could then be made again without): a maintainer's.
    if path == "/api/2.0/mlflow/registered-models/rename"
        && let Some(name) = p.name.as_deref()
        && let Some(m) = gate.store().get_registered_model(name).await?
        && m.aliases.iter().any(|(a, _)| m.protects(a))
    {
        return Ok((Rule::Model(Action::Manage), None));
    }
    let (true, Some(name), Some(alias)) = (
        path == "/api/2.0/mlflow/registered-models/alias",
        p.name.as_deref(),
        p.alias.as_deref(),
    ) else {
        return Ok((rule, None));
    };
    let tags = match gate.store().get_registered_model(name).await? {
        Some(m) => m.tags,
        // No such model: the route answers that.
        None => return Ok((rule, None)),
    };
    if !ferry_metadata::protects(&tags, alias) {
        return Ok((rule, None));
    }
    let why = format!(
        "`{alias}` is a protected alias of `{name}`: it moves through a passing `ferry deploy` \
         or gate, or by a maintainer who gives a reason (`ferry models alias ... --reason TEXT`, \
         or the {} header)",
        ferry_metadata::REASON_HEADER
    );
    Ok((Rule::Model(Action::Manage), Some(why)))
}

/// The request's [`Params`]: from the query string for a GET, from the
/// JSON body otherwise (artifact uploads are not read: their path says it).
async fn read_params(rule: Rule, req: Request) -> Result<(Request, Params), ApiError> {
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
        let query = query_params(req.uri().query());
        return Ok((req, query));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("Cannot read the request body: {e}")))?;
    let params = params_of_body(&bytes, parts.uri.query());
    Ok((Request::from_parts(parts, Body::from(bytes)), params))
}

/// The ids the route will read from a JSON body: a JSON object's fields,
/// whatever else it holds (a field of another type is kept as its JSON
/// text, which the route refuses). Only a request with no JSON object (a
/// DELETE naming its ids in the query string) is decided on the query
/// string: a body never borrows ids from it.
fn params_of_body(bytes: &[u8], query: Option<&str>) -> Params {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(fields)) => Params::of_object(&fields),
        Ok(_) => Params::default(),
        Err(_) if bytes.iter().all(u8::is_ascii_whitespace) => query_params(query),
        // A body the route would refuse is the route's to refuse.
        Err(_) => Params::default(),
    }
}

fn query_params(q: Option<&str>) -> Params {
    let Some(q) = q else {
        return Params::default();
    };
    let Ok(uri) = format!("/?{q}").parse::<axum::http::Uri>() else {
        return Params::default();
    };
    axum::extract::Query::<Params>::try_from_uri(&uri)
        .map(|axum::extract::Query(p)| p.canonical())
        .unwrap_or_default()
}

/// [`decide_rule`], with what was allowed remembered per caller for the
/// rules that name one id.
async fn check(
    gate: &Gate,
    (caller, tag): (&Caller, &ferry_access::Tag),
    rule: Rule,
    asked: (&Method, &Uri),
    p: &Params,
    wanted: bool,
) -> Result<(String, bool), ApiError> {
    let id = rule_id(rule, asked.1, p);
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
        // Allowed on another thread: this one remembers it too.
        gate.note_allowed(tag, caller, id, code);
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
    let (resource, decision) = decide_rule(gate, caller, rule, asked, p).await?;
    // Only what was allowed of what exists: a refusal may be of something
    // that does not exist yet (an experiment id made later, by a process
    // that does not bump the generation), refusals are rare and audited
    // anyway, and what does not exist may be made in another workspace.
    if let Some((id, code)) = key
        && decision == Decision::Allowed
    {
        caller.allow(id, code);
        gate.note_allowed(tag, caller, id, code);
    }
    Ok((resource, decision != Decision::Denied))
}

/// What [`decide_rule`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allowed,
    Denied,
    /// The run, logged model or registered model named does not exist:
    /// the route answers 404 itself (as MLflow's auth app lets it), and the
    /// decision is not remembered.
    Missing,
}

impl From<bool> for Decision {
    fn from(ok: bool) -> Self {
        if ok {
            Decision::Allowed
        } else {
            Decision::Denied
        }
    }
}

/// Whether the caller may do what the rule says, and the resource it
/// named (for the audit log).
async fn decide_rule(
    gate: &Gate,
    caller: &Caller,
    rule: Rule,
    (method, uri): (&Method, &Uri),
    p: &Params,
) -> Result<(String, Decision), ApiError> {
    let (resource, ok) = match rule {
        Rule::Run(_) | Rule::LoggedModel(_) | Rule::Model(_) | Rule::CreateVersion => {
            return decide_on_member(gate, caller, rule, uri, p).await;
        }
        _ => decide_other(gate, caller, rule, (method, uri), p).await?,
    };
    Ok((resource, ok.into()))
}

/// The rules on a run, a logged model or a registered model, which may
/// name one that does not exist.
async fn decide_on_member(
    gate: &Gate,
    caller: &Caller,
    rule: Rule,
    uri: &Uri,
    p: &Params,
) -> Result<(String, Decision), ApiError> {
    let missing = ApiError::missing;
    use ResourceType as T;
    let on_exp = |exp: Option<String>, tier, action| async move {
        Ok::<_, ApiError>(match exp {
            Some(exp) => gate
                .may_experiment(caller, &exp, Some(tier), action)
                .await?
                .into(),
            None => Decision::Missing,
        })
    };
    Ok(match rule {
        Rule::Run(action) => {
            let run = p.run().ok_or_else(|| missing("run_id"))?;
            let exp = gate.run_experiment(run).await?;
            (format!("run:{run}"), on_exp(exp, T::Run, action).await?)
        }
        Rule::LoggedModel(action) => {
            let id = rules::logged_model_id(uri.path()).unwrap_or_default();
            // The id is read from the raw path: one the route would decode
            // into another (`m-%61bc`) is never taken for a missing one.
            if id.is_empty() || id.contains('%') {
                return Ok((format!("logged_model:{id}"), Decision::Denied));
            }
            let exp = gate.logged_model_experiment(id).await?;
            (
                format!("logged_model:{id}"),
                on_exp(exp, T::LoggedModel, action).await?,
            )
        }
        Rule::Model(action) => {
            let name = p.name.as_deref().ok_or_else(|| missing("name"))?;
            let d = if gate.store().get_registered_model(name).await?.is_none() {
                Decision::Missing
            } else {
                gate.may_model(caller, name, action).await?.into()
            };
            (format!("registered_model:{name}"), d)
        }
        Rule::CreateVersion => {
            let name = p.name.as_deref().ok_or_else(|| missing("name"))?;
            if gate.store().get_registered_model(name).await?.is_none() {
                return Ok((format!("registered_model:{name}"), Decision::Missing));
            }
            let mut d: Decision = gate.may_model(caller, name, Action::Update).await?.into();
            if let Some(run) = p.run().filter(|r| !r.is_empty())
                && d == Decision::Allowed
            {
                // The version's run must be readable, and exist.
                let exp = gate.run_experiment(run).await?;
                d = match on_exp(exp, T::Run, Action::Read).await? {
                    Decision::Missing => Decision::Denied,
                    other => other,
                };
            }
            (format!("registered_model:{name}"), d)
        }
        // decide_rule sends only the four above; anything else is denied.
        _ => (String::new(), Decision::Denied),
    })
}

/// The other rules: on experiments, creations, listings and artifacts.
async fn decide_other(
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
        Rule::Admin | Rule::Deny => (uri.path().to_owned(), false),
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
            match gate.store().get_experiment_by_name(name).await? {
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
        Rule::CreateModel => {
            let name = p.name.as_deref().ok_or_else(|| missing("name"))?;
            let ok = gate.may_create(caller, T::RegisteredModel, name).await?;
            (format!("registered_model:{name}"), ok)
        }
        Rule::Artifact => artifact(gate, caller, (method, uri), p).await?,
        // decide_on_member decides these; here they are denied.
        Rule::Run(_) | Rule::LoggedModel(_) | Rule::Model(_) | Rule::CreateVersion => {
            (String::new(), false)
        }
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
    let owner = crate::routes::artifacts::owner_in(gate.store().as_ref(), &safe).await?;
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
            reason: decided.reason.as_deref(),
        };
        gate.audit(Some(caller), "", what).await;
    }
    resp
}

/// The creator of a resource manages it, in the workspace it was made in.
async fn owned(gate: &Gate, caller: &Caller, rt: ResourceType, id: &str) {
    let grant = ferry_auth::Grant::new(rt, id, ferry_auth::Permission::Manage);
    let set = gate.store().set_workspace(rt, id, &caller.workspace).await;
    let granted = gate
        .store()
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
        Listing::Deployments => "deployments",
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
        Listing::Models | Listing::Versions | Listing::Deployments => {
            let field = if listing == Listing::Deployments {
                "model"
            } else {
                "name"
            };
            let Some(name) = s(&row[field]) else {
                return Ok(false);
            };
            return Ok(gate.may_model(caller, &name, Action::Read).await?);
        }
    };
    match exp {
        Some(e) => gate.may_experiment(caller, &e, None, Action::Read).await,
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes whose decision the gate leaves to the JSON extractor
    /// ([`InBody`]). Each handler takes its body through
    /// `crate::extract::Json`, which makes the decision; a route added here
    /// must too (the permission matrix refuses on every route, and fails
    /// for one whose handler does not decide).
    #[test]
    fn decided_in_the_body() {
        let left: Vec<&str> = rules::MLFLOW
            .iter()
            .filter(|(m, _, route)| {
                *m == "POST"
                    && at_once_code(*route).is_some()
                    && matches!(route.rule, Rule::Run(_) | Rule::Experiment(_))
            })
            .map(|(_, p, _)| *p)
            .collect();
        assert_eq!(
            left,
            [
                "experiments/set-experiment-tag",
                "experiments/delete-experiment-tag",
                "runs/update",
                "runs/log-metric",
                "runs/log-parameter",
                "runs/set-tag",
                "runs/delete-tag",
                "runs/log-batch",
                "runs/log-inputs",
                "runs/outputs",
            ]
        );
    }

    #[test]
    fn the_fast_parse_reads_the_ids_the_routes_read_or_nothing() {
        fn ids(b: &str) -> Option<BodyIds<'_>> {
            serde_json::from_str(b).ok()
        }
        let i = ids(r#"{"run_id":"a\u0062","value":1,"key":"k"}"#).unwrap();
        assert_eq!(i.run_id.as_deref(), Some("ab"));
        // A repeated field, or an id that is no string, goes the whole way.
        assert!(ids(r#"{"run_id":"a","run_id":"b"}"#).is_none());
        assert!(ids(r#"{"experiment_id":1}"#).is_none());
    }
}
