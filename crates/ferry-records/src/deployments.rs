//! Deployments: a candidate version rolled out behind `ferry serve` (canary
//! or shadow), the decisions taken on it, the gateways' heartbeats, and the
//! [`DeploymentStore`] interface over them.
//!
//! Which phases exist and what moves between them is `ferry-gateway`'s
//! business; a phase is text plus whether the deployment is still active,
//! and every change is guarded by a revision number so the gateway's
//! controller and a person's `ferry deploy promote` cannot both win.

use crate::Result;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub model: String,
    pub candidate: i64,
    /// The version serving the rest of the traffic (None: nothing serves
    /// the model yet, the candidate takes all of it).
    pub stable: Option<i64>,
    pub strategy: String,
    /// The rollout's settings (steps, interval, analysis criteria), as the
    /// serving crate wrote them.
    pub spec: serde_json::Value,
    pub phase: String,
    pub weight: i64,
    pub created_ms: i64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub model: String,
    pub candidate: i64,
    pub stable: Option<i64>,
    pub strategy: String,
    pub spec: serde_json::Value,
    pub phase: String,
    pub active: bool,
    pub step: i64,
    pub weight: i64,
    pub reason: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub step_started_ms: i64,
    pub revision: i64,
    /// When a gateway first routed it (`None`: no gateway ever did).
    pub picked_up_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct DeploymentEvent {
    pub deployment_id: String,
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub phase: String,
    pub step: i64,
    pub weight: i64,
    pub reason: Option<String>,
    pub detail: serde_json::Value,
}

/// One decision: the new state, the event that records it, and what it does
/// to the registry, applied in one transaction.
#[derive(Debug, Clone)]
pub struct DeploymentChange {
    pub phase: String,
    pub active: bool,
    pub step: i64,
    pub weight: i64,
    pub step_started_ms: i64,
    pub reason: Option<String>,
    /// The event's kind (`advanced`, `waiting`, `promoted`, ...).
    pub kind: String,
    /// The analysis behind the decision.
    pub detail: serde_json::Value,
    pub now_ms: i64,
    /// Points this alias at the candidate (promotion), with the reason.
    pub move_alias: Option<String>,
    /// Tags the candidate version `ferry.rejected` = reason (rollback).
    pub reject: bool,
}

#[async_trait::async_trait]
pub trait DeploymentStore: Send + Sync {
    /// Records a new deployment and its `started` event. A model has at most
    /// one active deployment: another one is `AlreadyExists`.
    async fn create_deployment(&self, d: &NewDeployment) -> Result<Deployment>;
    async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>>;
    /// Newest first; only active ones when `active_only`.
    async fn list_deployments(
        &self,
        model: Option<&str>,
        active_only: bool,
    ) -> Result<Vec<Deployment>>;
    /// Applies `change` if the deployment is still at `revision` (else
    /// `Conflict`: someone else decided first) and returns the new row.
    async fn change_deployment(
        &self,
        id: &str,
        revision: i64,
        change: &DeploymentChange,
    ) -> Result<Deployment>;
    async fn deployment_events(&self, id: &str) -> Result<Vec<DeploymentEvent>>;
    /// Records that gateway `g.id` is alive and what it serves (its row is
    /// replaced), marks the deployments in `routing` picked up (the first
    /// time only), and drops the rows of gateways not heard from for
    /// [`GATEWAY_ROW_KEPT_MS`].
    async fn gateway_heartbeat(&self, g: &GatewayBeat, routing: &[String]) -> Result<()>;
    /// Removes a gateway's row (it stopped).
    async fn remove_gateway(&self, id: &str) -> Result<()>;
    /// Every gateway's last heartbeat, newest first (live or not: see
    /// [`GatewayBeat::live`]).
    async fn list_gateways(&self) -> Result<Vec<GatewayBeat>>;
    /// Records what gateway `w.gateway_id` measured of a rollout's step
    /// (its row for the deployment replaced).
    async fn report_window(&self, w: &RolloutWindow) -> Result<()>;
    /// What every gateway measured of the step that began at
    /// `step_started_ms` (a row of an earlier step is not one of them).
    async fn rollout_windows(
        &self,
        deployment_id: &str,
        step_started_ms: i64,
    ) -> Result<Vec<RolloutWindow>>;
    /// Takes or renews the lease to decide a rollout for `holder` until
    /// `now_ms + ttl_ms`: `true` when `holder` has it now (it was free,
    /// lapsed or already its own), `false` when another holds it. One
    /// statement, so two gateways never both hold it.
    async fn take_lease(
        &self,
        deployment_id: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool>;
}

/// What one gateway measured of a rollout's current step: the figures are
/// the gateway's (sums that add up across replicas), opaque to the store.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RolloutWindow {
    pub deployment_id: String,
    pub gateway_id: String,
    pub step_started_ms: i64,
    pub updated_ms: i64,
    pub figures: serde_json::Value,
}

/// One model a gateway serves: `selector` as given to `ferry serve`
/// (`iris@production`, `iris/3`, `iris`), `alias` when it names one, and
/// the version its stable route answers with.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct GatewayModel {
    pub model: String,
    pub selector: String,
    pub alias: Option<String>,
    pub version: Option<i64>,
    /// How each version of it did lately, as this gateway saw it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live: Vec<LiveFigures>,
    /// Its rollout's current step as this gateway judges it at each tick
    /// (what a decision is taken on, before one is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<LiveAnalysis>,
}

/// A served version's figures as one gateway measured them over its last
/// minute (`window_ms`), reported with each heartbeat: what the dashboard
/// shows of every model across gateways.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct LiveFigures {
    pub version: i64,
    /// `stable`, `canary` or `shadow`.
    pub role: String,
    pub window_ms: i64,
    /// Answered over the window (4xx, the client's, not counted), and
    /// failed on the server's side (5xx).
    pub requests: u64,
    pub errors: u64,
    pub p99_ms: Option<f64>,
    /// Labels received through `POST /feedback` since the gateway started,
    /// and how many its predictions matched.
    pub labelled: u64,
    pub correct: u64,
}

/// A rollout's current step as judged at `at_ms`: the verdict with each
/// criterion's value and limit, and both versions' windows (the JSON a
/// decision event's `detail` has).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LiveAnalysis {
    pub deployment_id: String,
    pub at_ms: i64,
    pub detail: serde_json::Value,
}

/// How long the row of a gateway no longer heard from is kept (a gateway
/// that stops removes its own; one that is killed cannot).
pub const GATEWAY_ROW_KEPT_MS: i64 = 24 * 3600 * 1000;

/// A running gateway as its last heartbeat described it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct GatewayBeat {
    pub id: String,
    pub host: String,
    pub addr: String,
    pub pid: i64,
    pub models: Vec<GatewayModel>,
    pub tick_ms: i64,
    pub started_ms: i64,
    pub last_seen_ms: i64,
}

impl GatewayBeat {
    /// Whether it was seen within three of its ticks (and two seconds of
    /// slack for a slow store) before `now_ms`.
    pub fn live(&self, now_ms: i64) -> bool {
        now_ms - self.last_seen_ms <= 3 * self.tick_ms.max(0) + 2000
    }

    /// Whether it serves `model` by `alias` (the alias a rollout promotes:
    /// only such a gateway carries the rollout out).
    pub fn serves_alias(&self, model: &str, alias: &str) -> bool {
        self.models
            .iter()
            .any(|m| m.model == model && m.alias.as_deref() == Some(alias))
    }
}
