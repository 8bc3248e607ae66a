//! Who may use the gateway, when its store has users (or it listens beyond
//! loopback): one guard in front of every route, asking the shared
//! `ferry_access::Access` who is calling and deciding with what the route
//! needs ([`need`]).
//!
//! - **Probes are open**: `/ping`, `/health`, `/version`, `/v2`,
//!   `/v2/health/*` say only that the gateway is up (load balancers and
//!   Kubernetes probes carry no credentials).
//! - **Predicting needs USE** on the registered model a request reaches
//!   (MLflow's level between READ and EDIT): an editor or more of the
//!   model's workspace, or a token limited to the `predictor` role (USE on
//!   models, which reads them too, and nothing else).
//! - **Reading a model's metadata needs READ**; `/v1/models` lists only the
//!   served models the caller may read. `/metrics` (every served model's
//!   counters) needs READ on each one's deployment: a viewer, a monitoring
//!   account, not a predict-only token.
//! - **Feedback needs EDIT** on the model that answered the request it
//!   labels: a predict-only token cannot score the model it uses.
//! - A refusal is 401 (no or wrong credentials) or 403, in the protocol's
//!   error shape, and recorded in the audit log with the model it named.

use crate::http::{ApiError, Fault, Proto, proto_of};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use ferry_access::{Access, Audited, Caller, Refusal};
use ferry_auth::{Action, ResourceType};
use ferry_http::guard::{Next, Routes};
use std::sync::Arc;

/// What a request needs from its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// Nothing: a liveness or version probe.
    Open,
    /// `action` on the registered model `name`.
    Model(String, Action),
    /// READ on the deployment of every model served (`/metrics`).
    EveryDeployment,
    /// Authenticated; the route shows only what the caller may read
    /// (`/v1/models`) or checks the model it reaches itself (`/feedback`).
    Caller,
}

/// What `method path` needs; `/invocations` reaches the first model
/// served (as its handler does), which `first` names (asked only then).
pub fn need(method: &str, path: &str, first: impl FnOnce() -> Option<String>) -> Need {
    // A name as the route's own extractor will see it (percent-decoded),
    // so that `ir%69s` is decided as `iris`; one that does not decode is
    // the route's to refuse.
    let decoded = |seg: &str| {
        percent_encoding::percent_decode_str(seg)
            .decode_utf8()
            .ok()
            .map(|n| n.into_owned())
    };
    let model = |name: &str, action| match decoded(name) {
        Some(n) => Need::Model(n, action),
        None => Need::Caller,
    };
    // The path's segments, without allocating (no route has more than 6).
    let mut parts = [""; 7];
    let mut n = 0;
    for seg in path.trim_start_matches('/').split('/') {
        if n == parts.len() {
            return Need::Caller;
        }
        parts[n] = seg;
        n += 1;
    }
    match (method, &parts[..n]) {
        (_, ["ping" | "health" | "version" | "v2"]) | (_, ["v2", "health", ..]) => Need::Open,
        ("POST", ["invocations"]) => match first() {
            Some(name) => Need::Model(name, Action::Use),
            None => Need::Caller,
        },
        ("POST", ["v2", "models", name, "infer"])
        | ("POST", ["v2", "models", name, "versions", _, "infer"]) => model(name, Action::Use),
        // `:predict` is stripped after decoding, as the handler does.
        ("POST", ["v1", "models", target]) => match decoded(target) {
            Some(t) => Need::Model(
                t.strip_suffix(":predict").unwrap_or(&t).to_owned(),
                Action::Use,
            ),
            None => Need::Caller,
        },
        (_, ["v2", "models", name, ..]) | (_, ["v1", "models", name]) => model(name, Action::Read),
        (_, ["metrics"]) => Need::EveryDeployment,
        _ => Need::Caller,
    }
}

/// The audit log's name for what a request does.
fn audited_action(need: &Need) -> &'static str {
    match need {
        Need::Model(_, Action::Use) => "gateway.predict",
        Need::Model(..) => "gateway.read",
        Need::EveryDeployment => "gateway.metrics",
        _ => "gateway.request",
    }
}

/// A decision's code for the caller's per-generation memory of what it
/// was allowed (`Caller::was_allowed`).
fn code(rt: ResourceType, action: Action) -> u16 {
    let on = if rt == ResourceType::Deployment {
        0x700
    } else {
        0x600
    };
    on | action.code()
}

/// Whether `caller` may do `action` on the model `name` (`rt`
/// `RegisteredModel`) or its deployment, remembered for this auth
/// generation once allowed.
pub async fn may(
    access: &Access,
    caller: &Caller,
    name: &str,
    rt: ResourceType,
    action: Action,
) -> Result<bool, Refusal> {
    let code = code(rt, action);
    if caller.was_allowed(name, code) {
        return Ok(true);
    }
    let ok = access.may_for_model(caller, name, rt, action).await?;
    if ok {
        caller.allow(name, code);
    }
    Ok(ok)
}

/// The caller of a request that passed the gate, for routes that decide
/// more themselves.
#[derive(Clone)]
pub struct Admitted {
    pub access: Arc<Access>,
    pub caller: Arc<Caller>,
    pub source: Option<std::net::IpAddr>,
}

impl Admitted {
    /// Whether the caller may do `action` on the model `name`.
    pub async fn may(&self, name: &str, action: Action) -> Result<bool, Refusal> {
        may(
            &self.access,
            &self.caller,
            name,
            ResourceType::RegisteredModel,
            action,
        )
        .await
    }

    /// Records a refusal the route decided, and answers it.
    pub async fn refuse(&self, proto: Proto, action: &str, model: &str) -> ApiError {
        deny_audit(&self.access, &self.caller, action, model, self.source).await;
        ApiError::new(proto, Fault::Refused(Refusal::Forbidden))
    }
}

async fn deny_audit(
    access: &Access,
    caller: &Caller,
    action: &str,
    model: &str,
    source: Option<std::net::IpAddr>,
) {
    let what = Audited {
        action,
        resource: format!("{}:{model}", ResourceType::RegisteredModel.as_str()),
        outcome: "denied",
        source,
        reason: None,
    };
    access.audit(Some(caller), "", what).await;
}

/// The gateway's guard (`ferry_http::guard`): free while access is off,
/// else authenticates and decides by [`need`].
pub struct GatewayGuard {
    pub access: Arc<Access>,
    pub gw: Arc<crate::Gateway>,
}

impl ferry_http::guard::Guard for GatewayGuard {
    fn is_on(&self) -> bool {
        self.access.is_on()
    }

    /// A prediction by credentials this thread saw allowed on the model,
    /// in this auth generation and within their time.
    fn passes_at_once(self: &Arc<Self>, req: &mut Request) -> bool {
        let first = || self.gw.table().models.first().map(|m| m.name.clone());
        match need(req.method().as_str(), req.uri().path(), first) {
            Need::Model(name, action) => {
                let code = code(ResourceType::RegisteredModel, action);
                self.access
                    .seen_allowed(&self.access.tag(req.headers()), &name, code)
            }
            _ => false,
        }
    }

    fn guard<S: Routes>(self: Arc<Self>, req: Request, next: Next<S>) -> ferry_http::guard::Answer {
        Box::pin(async move { self.decide(req, next).await })
    }
}

impl GatewayGuard {
    async fn decide<S: Routes>(&self, mut req: Request, next: Next<S>) -> Response {
        let access = &self.access;
        let path = req.uri().path();
        let proto = proto_of(path);
        let first = || self.gw.table().models.first().map(|m| m.name.clone());
        let need = need(req.method().as_str(), path, first);
        if need == Need::Open {
            return next.run(req).await;
        }
        // (A prediction this thread saw allowed passed at once, before.)
        let tag = access.tag(req.headers());
        let refused = |r| ApiError::new(proto, Fault::Refused(r)).into_response();
        let source = req.extensions().get::<ferry_http::Peer>().map(|p| p.0.ip());
        let caller = match access.caller(req.headers(), source).await {
            Ok(c) => c,
            Err(r) => return refused(r),
        };
        let denied = match &need {
            Need::Model(name, action) => {
                match may(
                    access,
                    &caller,
                    name,
                    ResourceType::RegisteredModel,
                    *action,
                )
                .await
                {
                    Ok(true) => {
                        let code = code(ResourceType::RegisteredModel, *action);
                        access.note_allowed(&tag, &caller, name, code);
                        None
                    }
                    Ok(false) => Some(name.clone()),
                    Err(r) => return refused(r),
                }
            }
            Need::EveryDeployment => {
                let names = self.gw.table().names();
                let mut denied = None;
                for name in names {
                    match may(
                        access,
                        &caller,
                        &name,
                        ResourceType::Deployment,
                        Action::Read,
                    )
                    .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            denied = Some(name);
                            break;
                        }
                        Err(r) => return refused(r),
                    }
                }
                denied
            }
            Need::Caller | Need::Open => None,
        };
        if let Some(model) = denied {
            deny_audit(access, &caller, audited_action(&need), &model, source).await;
            return refused(Refusal::Forbidden);
        }
        // Only the routes that decide more themselves get the caller.
        if need == Need::Caller {
            req.extensions_mut().insert(Admitted {
                access: access.clone(),
                caller,
                source,
            });
        }
        next.run(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_what_its_kind_of_work_is() {
        let t = || None;
        let m = |n: &str, a| Need::Model(n.to_owned(), a);
        let cases = [
            ("GET", "/ping", Need::Open),
            ("GET", "/health", Need::Open),
            ("GET", "/version", Need::Open),
            ("GET", "/v2", Need::Open),
            ("GET", "/v2/health/live", Need::Open),
            ("GET", "/v2/health/ready", Need::Open),
            ("POST", "/v2/models/iris/infer", m("iris", Action::Use)),
            (
                "POST",
                "/v2/models/iris/versions/3/infer",
                m("iris", Action::Use),
            ),
            ("POST", "/v1/models/iris:predict", m("iris", Action::Use)),
            // Decided on the name the route decodes.
            ("POST", "/v2/models/ir%69s/infer", m("iris", Action::Use)),
            ("GET", "/v1/models/ir%69s", m("iris", Action::Read)),
            ("POST", "/v2/models/%FF/infer", Need::Caller),
            ("POST", "/v1/models/iris%3Apredict", m("iris", Action::Use)),
            ("GET", "/v2/models/iris", m("iris", Action::Read)),
            ("GET", "/v2/models/iris/ready", m("iris", Action::Read)),
            (
                "GET",
                "/v2/models/iris/versions/3/ready",
                m("iris", Action::Read),
            ),
            ("GET", "/v1/models/iris", m("iris", Action::Read)),
            ("GET", "/v1/models", Need::Caller),
            ("POST", "/feedback", Need::Caller),
            ("GET", "/metrics", Need::EveryDeployment),
            // No model served: the handler answers, after authentication.
            ("POST", "/invocations", Need::Caller),
            ("GET", "/nowhere", Need::Caller),
        ];
        for (method, path, want) in cases {
            assert_eq!(need(method, path, t), want, "{method} {path}");
        }
    }
}
