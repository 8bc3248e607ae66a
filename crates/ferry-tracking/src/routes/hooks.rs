//! `POST /hooks/github` and `POST /hooks/gitlab`: a forge's delivery
//! becomes a triggered run at its commit ([`crate::hooks`] reads and
//! decides; this reads the body and answers).
//!
//! No ferry credentials are asked for (a forge cannot send them): the
//! gate lets these two paths through (`auth::rules`), and each delivery is
//! authenticated here by its forge's signature or token before anything
//! in its body is read. In order:
//!
//! - the forge is not in `--hooks`: 404;
//! - a body declared or found larger than [`hooks::MAX_BODY`]: 413, before
//!   any of it is parsed; not `application/json`: 415;
//! - a missing or wrong signature (token): 401, audited, nothing done;
//! - no event or delivery id header: 400;
//! - a ping: 200; an event that is not acted on: 200 `ignored`;
//! - a body that is not what the event's is: 400 naming the field;
//! - a repository, branch or action that does not run: 200 `ignored`
//!   with the reason; a delivery already seen (the trigger's key is a
//!   digest of the signed body for GitHub, whose delivery id is not
//!   signed, and the delivery id for GitLab, so the store remembers it
//!   across restarts and replicas): 200 `duplicate`; else the run is
//!   queued: 202 `queued` with its id.
//!
//! Every delivery is appended to the audit log with what came of it
//! (`webhook.github.push`, `.pull_request`, `.ping`, `.other`; a refused
//! one as `webhook.github`, `denied`), but those refused before their
//! signature could be checked (404, 413, 415, 503).

use crate::error::{ApiError, ApiResult};
use crate::hooks::{self, Delivery, Forge, Kind};
use crate::{AppState, Shared, now_ms};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

type Answer = ApiResult<(StatusCode, Json<Value>)>;

pub async fn github(State(state): State<Shared>, req: Request) -> Answer {
    delivered(state, Kind::GitHub, req).await
}

pub async fn gitlab(State(state): State<Shared>, req: Request) -> Answer {
    delivered(state, Kind::GitLab, req).await
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON body as a forge sends it; anything else is refused before the
/// body is read.
fn json_body(h: &HeaderMap) -> ApiResult<()> {
    let ct = header(h, header::CONTENT_TYPE.as_str()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media(format!(
            "Unsupported content type '{}': set the webhook's content type to application/json",
            hooks::shown(&mime.to_ascii_lowercase())
        )))
    }
}

fn too_large() -> ApiError {
    ApiError::too_large(format!(
        "A webhook's body is at most {} bytes",
        hooks::MAX_BODY
    ))
}

async fn delivered(state: Shared, kind: Kind, req: Request) -> Answer {
    let forge = state.hooks.as_ref().and_then(|h| match kind {
        Kind::GitHub => h.github.as_ref(),
        Kind::GitLab => h.gitlab.as_ref(),
    });
    let Some(forge) = forge else {
        return Err(ApiError::no_endpoint(format!(
            "No endpoint {}: this server takes no {} webhooks (`ferry server --hooks FILE` with a `{}:` section)",
            req.uri().path(),
            kind.as_str(),
            kind.as_str()
        )));
    };
    let source = req.extensions().get::<ferry_http::Peer>().map(|p| p.0.ip());
    let (_held, headers, body) = admitted_body(&state, req).await?;
    let h = &headers;
    let verified = match kind {
        Kind::GitHub => {
            hooks::github_verified(&forge.secret, header(h, hooks::GITHUB_SIGNATURE), &body)
        }
        Kind::GitLab => hooks::gitlab_verified(&forge.secret, header(h, hooks::GITLAB_TOKEN)),
    };
    if let Err(why) = verified {
        tracing::warn!(forge = kind.as_str(), source = ?source, "webhook refused: {why}");
        audit(
            &state,
            kind,
            "anonymous",
            None,
            String::new(),
            &format!("denied: {why}"),
            source,
            None,
        )
        .await;
        return Err(ApiError::bad_signature(why));
    }
    let (event, id) = event_and_id(kind, h)?;
    if kind == Kind::GitHub && event == "ping" {
        let actor = kind.as_str();
        audit(
            &state,
            kind,
            actor,
            Some("ping"),
            String::new(),
            "pong",
            source,
            None,
        )
        .await;
        return Ok((
            StatusCode::OK,
            Json(json!({"outcome": "pong", "message": "ferry takes this webhook's deliveries"})),
        ));
    }
    let read = match kind {
        Kind::GitHub => hooks::github_delivery(event, &body),
        Kind::GitLab => hooks::gitlab_delivery(event, &body),
    }
    .map_err(|e| {
        ApiError::bad_request(format!(
            "{} `{}` event: {e}",
            kind.as_str(),
            hooks::shown(event)
        ))
    })?;
    let Some(delivery) = read else {
        let reason = format!("`{}` events do not run pipelines", hooks::shown(event));
        let outcome = format!("ignored: {reason}");
        let actor = kind.as_str();
        audit(
            &state,
            kind,
            actor,
            Some("other"),
            String::new(),
            &outcome,
            source,
            None,
        )
        .await;
        return Ok(ignored(reason));
    };
    let by = match &delivery {
        Delivery::Push { by, .. } | Delivery::Change { by, .. } => {
            format!("{}:{by}", kind.as_str())
        }
    };
    let action = match &delivery {
        Delivery::Push { .. } => "push",
        Delivery::Change { .. } => "pull_request",
    };
    // What the signature covers, so a captured delivery sent again under
    // a new id (GitHub does not sign the id) is still the same delivery.
    let signed = blake3::hash(&body).to_hex();
    let once = Once {
        id,
        signed: &signed.as_str()[..32],
    };
    fire(&state, forge, kind, &delivery, once, &by, action, source).await
}

/// A delivery's body, read within [`hooks::MAX_BODY`] while it holds its
/// share of the server's body budget (returned, to be held until answered),
/// with the request's headers.
async fn admitted_body(
    state: &AppState,
    req: Request,
) -> ApiResult<(
    Option<tokio::sync::OwnedSemaphorePermit>,
    HeaderMap,
    axum::body::Bytes,
)> {
    let declared = header(req.headers(), header::CONTENT_LENGTH.as_str());
    if declared
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > hooks::MAX_BODY as u64)
    {
        return Err(too_large());
    }
    json_body(req.headers())?;
    let held = state
        .bodies
        .admit("POST", declared, hooks::MAX_BODY)
        .await
        .map_err(|ferry_http::Full| {
            ApiError::busy(format!(
                "the server holds {} MiB of request bodies at most and is full; retry",
                state.bodies.total_mib()
            ))
        })?;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, hooks::MAX_BODY)
        .await
        .map_err(|e| {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                too_large()
            } else {
                ApiError::bad_request(format!("Cannot read the request body: {e}"))
            }
        })?;
    Ok((held, parts.headers, body))
}

/// The delivery's event and its id, from the forge's headers.
fn event_and_id(kind: Kind, h: &HeaderMap) -> ApiResult<(&str, Option<&str>)> {
    let (event_header, id) = match kind {
        Kind::GitHub => (hooks::GITHUB_EVENT, header(h, hooks::GITHUB_DELIVERY)),
        Kind::GitLab => (
            hooks::GITLAB_EVENT,
            header(h, hooks::IDEMPOTENCY_KEY).or(header(h, hooks::GITLAB_UUID)),
        ),
    };
    let event = header(h, event_header)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("Missing header {event_header}")))?;
    let id = match id {
        Some(raw) => Some(hooks::delivery_id(raw).ok_or_else(|| {
            ApiError::bad_request(format!(
                "The delivery id `{}` is not one (letters, digits, `-`, `_`, `.`, `:`; at most 128)",
                hooks::shown(raw)
            ))
        })?),
        // GitHub always says which delivery it is: that is what replays
        // are told apart by.
        None if kind == Kind::GitHub => {
            return Err(ApiError::bad_request(format!(
                "Missing header {}",
                hooks::GITHUB_DELIVERY
            )));
        }
        None => None,
    };
    Ok((event, id))
}

fn ignored(reason: String) -> (StatusCode, Json<Value>) {
    (
        StatusCode::OK,
        Json(json!({"outcome": "ignored", "reason": reason})),
    )
}

/// What makes a delivery the same delivery: its id, and a digest of the
/// body its signature covers.
#[derive(Clone, Copy)]
struct Once<'a> {
    id: Option<&'a str>,
    signed: &'a str,
}

/// Decides on a delivery and offers its firing to the store.
#[allow(clippy::too_many_arguments)]
async fn fire(
    state: &AppState,
    forge: &Forge,
    kind: Kind,
    delivery: &Delivery,
    once: Once<'_>,
    by: &str,
    action: &str,
    source: Option<std::net::IpAddr>,
) -> Answer {
    let repository = match delivery {
        Delivery::Push { repository, .. } | Delivery::Change { repository, .. } => {
            format!("repository:{}", hooks::shown(repository))
        }
    };
    let id = once.id;
    let f = match hooks::decide(forge, kind, delivery, id) {
        Ok(f) => f,
        Err(reason) => {
            audit(
                state,
                kind,
                by,
                Some(action),
                repository,
                &format!("ignored: {reason}"),
                source,
                None,
            )
            .await;
            return Ok(ignored(reason));
        }
    };
    // A GitHub delivery is known by what its signature covers (its
    // body), so a replay under its own id or a new one (or a second
    // replica that got it) queues nothing; a GitLab one by its id, or
    // without one by what it is about and its commit.
    let key = match (kind, id) {
        (Kind::GitHub, _) => format!("github:{}", once.signed),
        (_, Some(id)) => format!("{}:{id}", kind.as_str()),
        (_, None) => format!("{}:{}:{}", kind.as_str(), f.about, f.commit),
    };
    let firing = ferry_metadata::Firing {
        pipeline: f.pipeline.clone(),
        kind: f.kind.to_owned(),
        key,
        evidence: f.evidence.clone(),
        commit: Some(f.commit.clone()),
        now_ms: now_ms(),
        // Every push runs: a pipeline's cooldown holds back what fires by
        // itself (drift, a schedule), not what people push.
        cooldown_ms: 0,
    };
    let resource = format!("pipeline:{}", f.pipeline);
    let fired = state.store.fire_trigger(&firing).await?;
    let (status, body, outcome) = match &fired {
        ferry_metadata::Fired::Queued { trigger } => (
            StatusCode::ACCEPTED,
            json!({"outcome": "queued", "pipeline": trigger.pipeline, "trigger_id": trigger.trigger_id,
                   "commit": trigger.commit, "evidence": trigger.evidence}),
            format!("queued {}", trigger.trigger_id),
        ),
        ferry_metadata::Fired::Ignored { trigger, after } => (
            StatusCode::OK,
            json!({"outcome": "ignored", "pipeline": trigger.pipeline, "trigger_id": trigger.trigger_id,
                   "reason": trigger.note, "after": after}),
            format!("ignored {}", trigger.trigger_id),
        ),
        ferry_metadata::Fired::Duplicate => (
            StatusCode::OK,
            json!({"outcome": "duplicate", "pipeline": f.pipeline,
                   "reason": "this delivery was taken before: nothing new is queued"}),
            "duplicate".to_owned(),
        ),
    };
    tracing::info!(forge = kind.as_str(), pipeline = %f.pipeline, commit = %f.commit, "webhook: {outcome}: {}", f.evidence);
    audit(
        state,
        kind,
        by,
        Some(action),
        resource,
        &outcome,
        source,
        Some(&f.evidence),
    )
    .await;
    Ok((status, Json(body)))
}

/// Appends a delivery to the audit log; a failure is logged, never the
/// delivery's.
#[allow(clippy::too_many_arguments)]
async fn audit(
    state: &AppState,
    kind: Kind,
    actor: &str,
    event: Option<&str>,
    resource: String,
    outcome: &str,
    source: Option<std::net::IpAddr>,
    reason: Option<&str>,
) {
    let event = ferry_auth::audit::Event {
        time_ms: now_ms(),
        actor: actor.to_owned(),
        token_id: None,
        // `webhook.github.push`; a refused delivery: `webhook.github`.
        action: match event {
            Some(e) => format!("webhook.{}.{e}", kind.as_str()),
            None => format!("webhook.{}", kind.as_str()),
        },
        resource,
        outcome: outcome.to_owned(),
        source: source.map(|ip| ip.to_string()).unwrap_or_default(),
        reason: reason.map(str::to_owned),
    };
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::error!("cannot append to the audit log: {e}");
    }
}
