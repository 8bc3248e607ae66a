//! The team server's deployments API (`/api/2.0/ferry/deployments/*`):
//! `ferry deploy --server` starts, follows and ends rollouts here with the
//! caller's credentials instead of the store's. The gate decides as on
//! the registry: an editor of the model starts and aborts a rollout, a
//! reader follows it, a promotion by hand is a maintainer's and needs a
//! reason (the `X-Ferry-Reason` header). What a rollout may be is
//! `ferry_rollout`'s, the same rules `ferry deploy` follows on a store;
//! every start and end is audited with who asked, their token and address.

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Json as Out;
use ferry_rollout::canary::Phase;
use ferry_rollout::rollout::{self, By};
use serde::Deserialize;
use serde_json::{Value, json};

/// Who asked, for the audit log: the gate's caller (none while the
/// server has no users) and the request's address.
pub struct Asker(pub By);

impl<S: Send + Sync> FromRequestParts<S> for Asker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let caller = parts.extensions.get::<ferry_access::Caller>();
        let source = parts
            .extensions
            .get::<ferry_http::Peer>()
            .map_or_else(|| "local".to_owned(), |p| p.0.ip().to_string());
        Ok(Asker(By {
            actor: caller.map_or_else(|| "anonymous".to_owned(), |c| c.user.username.clone()),
            token_id: caller.and_then(|c| c.token.as_ref().map(|t| t.id.clone())),
            source,
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// The model (what the gate decides on); the rollout's reference must
    /// name the same.
    name: Option<String>,
    #[serde(default)]
    rollout: rollout::Request,
}

/// `POST deployments/create`: starts a rollout.
pub async fn create(
    State(st): State<Shared>,
    Asker(by): Asker,
    Json(b): Json<Create>,
) -> ApiResult<Out<Value>> {
    let name = b.name.ok_or_else(|| ApiError::missing("name"))?;
    let r = rollout::plan(&b.rollout)?;
    if r.model != name {
        return Err(ApiError::invalid(format!(
            "rollout.candidate names model `{}`, not `{name}`",
            r.model
        )));
    }
    let started = rollout::start(st.store.as_ref(), &r, &by).await?;
    Ok(Out(json!(started)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    name: Option<String>,
    /// `promote` or `abort`.
    action: Option<String>,
}

/// `POST deployments/end`: promotes or aborts the model's active rollout;
/// why is the `X-Ferry-Reason` header.
pub async fn end(
    State(st): State<Shared>,
    Asker(by): Asker,
    headers: axum::http::HeaderMap,
    Json(b): Json<End>,
) -> ApiResult<Out<Value>> {
    let name = b.name.ok_or_else(|| ApiError::missing("name"))?;
    let phase = match b.action.as_deref() {
        Some("promote") => Phase::Promoted,
        Some("abort") => Phase::Aborted,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "action `{other}`: use promote or abort"
            )));
        }
        None => return Err(ApiError::missing("action")),
    };
    let reason = crate::auth::reason_of(&headers);
    let ended = rollout::end(st.store.as_ref(), &name, phase, reason, &by).await?;
    Ok(Out(json!(ended)))
}

#[derive(Deserialize)]
pub struct Get {
    name: Option<String>,
}

/// `GET deployments/get?name=M`: the model's last deployment, its events
/// and the gateways that serve it.
pub async fn get(State(st): State<Shared>, Query(q): Query<Get>) -> ApiResult<Out<Value>> {
    let name = q.name.ok_or_else(|| ApiError::missing("name"))?;
    let status = rollout::status(st.store.as_ref(), &name).await?;
    Ok(Out(json!(status)))
}

/// `GET deployments/list`: the active deployments (filtered by the gate to
/// the models the caller may read).
pub async fn list(State(st): State<Shared>) -> ApiResult<Out<Value>> {
    let all = st.store.list_deployments(None, true).await?;
    Ok(Out(json!({ "deployments": all })))
}
