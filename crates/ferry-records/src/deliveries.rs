//! Webhooks out (schema 21): the registry's and rollouts' changes, read
//! back from the store's append-only histories (versions, alias events,
//! deployment events, registered models), and the deliveries of each to
//! the endpoints an operator configured (`ferry server --hooks FILE`,
//! `deliver:`). What an event looks like on the wire, and who posts it,
//! is `ferry-tracking`'s; here are only the records and the interface.
//!
//! A delivery is one (endpoint, event) pair, enqueued once however many
//! servers read the event ([`DeliveryStore::enqueue_delivery`] inserts only
//! if absent); a server delivers it only while it holds its lease
//! ([`DeliveryStore::claim_deliveries`]), so two replicas never post one
//! event at once; every attempt is kept ([`WebhookAttempt`]).

use crate::Result;
use serde::{Deserialize, Serialize};

/// One change of the registry or of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEvent {
    /// Stable however often it is read: `registered_model:<name>:<created_ms>`,
    /// `model_version:<name>:<version>:<created_ms>`, `alias:<event id>`,
    /// `deployment:<event id>`.
    pub id: String,
    /// When it happened (the store's record of it).
    pub at_ms: i64,
    /// The model's workspace (`default` when it was put in none).
    pub workspace: String,
    pub change: RegistryChange,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum RegistryChange {
    ModelCreated {
        name: String,
        description: Option<String>,
        tags: Vec<(String, String)>,
    },
    VersionCreated {
        name: String,
        version: i64,
        source: String,
        run_id: Option<String>,
        description: Option<String>,
        tags: Vec<(String, String)>,
    },
    /// An alias set (new, moved, or set again).
    AliasSet {
        name: String,
        alias: String,
        version: i64,
        previous: Option<i64>,
        reason: Option<String>,
    },
    AliasDeleted {
        name: String,
        alias: String,
        previous: Option<i64>,
        reason: Option<String>,
    },
    /// A rollout started or ended: `kind` is the deployment event's
    /// (`started`, `promoted`, `rolled_back`, `aborted`; the steps between
    /// are not delivered).
    Rollout {
        deployment_id: String,
        kind: String,
        model: String,
        candidate: i64,
        stable: Option<i64>,
        strategy: String,
        reason: Option<String>,
    },
}

/// The deployment events read as [`RegistryChange::Rollout`].
pub const ROLLOUT_KINDS: &[&str] = &["started", "promoted", "rolled_back", "aborted"];

/// An endpoint as the store knows it: since when it exists (no event
/// before is delivered to it) and up to when its events were enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCursor {
    pub started_ms: i64,
    pub scanned_ms: i64,
}

/// A delivery to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhookDelivery {
    pub endpoint: String,
    pub event_id: String,
    /// The `X-MLflow-Delivery-Id` of every attempt.
    pub delivery_id: String,
    /// `model_version.created`, `rollout.promoted`, ...
    pub event: String,
    pub event_ms: i64,
    /// The JSON body every attempt posts, byte for byte.
    pub body: String,
    pub now_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet: due at `next_attempt_ms`.
    Pending,
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }
}

/// One event to one endpoint, and how its delivery went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub endpoint: String,
    pub event_id: String,
    pub delivery_id: String,
    pub event: String,
    pub event_ms: i64,
    #[serde(skip_serializing)]
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    /// The server holding (or that last held) it.
    pub lease_holder: Option<String>,
    pub lease_until_ms: i64,
    /// The last attempt's HTTP status (none: no answer).
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub delivered_ms: Option<i64>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookAttempt {
    pub endpoint: String,
    pub event_id: String,
    /// 1 for the first.
    pub attempt: u32,
    pub at_ms: i64,
    pub duration_ms: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    /// The server that made it.
    pub holder: String,
}

/// What an attempt decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Tried again at this time.
    Retry {
        next_attempt_ms: i64,
    },
    /// Not tried again.
    Failed,
}

/// An attempt to record, by the holder of the delivery's lease.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub endpoint: String,
    pub event_id: String,
    pub holder: String,
    pub at_ms: i64,
    pub duration_ms: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub endpoint: Option<String>,
    pub state: Option<DeliveryState>,
    pub limit: usize,
}

/// Webhooks out, a part of every store.
#[async_trait::async_trait]
pub trait DeliveryStore: Send + Sync {
    /// The endpoint's cursor, made the first time it is asked for (its
    /// start and scan at `now_ms`).
    async fn webhook_cursor(&self, endpoint: &str, now_ms: i64) -> Result<WebhookCursor>;
    /// Moves the endpoint's scan forward to `scanned_ms` (never back).
    async fn advance_webhook_cursor(&self, endpoint: &str, scanned_ms: i64) -> Result<()>;
    /// The registry's and rollouts' changes at or after `since_ms`, oldest
    /// first (then by id), at most `limit`.
    async fn registry_events(&self, since_ms: i64, limit: usize) -> Result<Vec<RegistryEvent>>;
    /// Enqueues a delivery unless one of this event to this endpoint is
    /// there already; whether it was new.
    async fn enqueue_delivery(&self, d: &NewWebhookDelivery) -> Result<bool>;
    /// Takes the lease of up to `limit` pending deliveries to `endpoints`
    /// that are due at `now_ms` and that no one holds (oldest due first),
    /// until `now_ms + lease_ms`. Each is taken by one holder only.
    async fn claim_deliveries(
        &self,
        endpoints: &[String],
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Records an attempt and its outcome, and gives the lease back; false
    /// (and nothing recorded) when `holder` no longer holds it.
    async fn record_attempt(&self, a: &AttemptRecord) -> Result<bool>;
    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<WebhookDelivery>>;
    /// A delivery's attempts, first first.
    async fn delivery_attempts(
        &self,
        endpoint: &str,
        event_id: &str,
    ) -> Result<Vec<WebhookAttempt>>;
}
