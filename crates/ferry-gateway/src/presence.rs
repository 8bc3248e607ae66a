//! The gateway's presence in the store: every tick it upserts a row saying
//! where it listens and what it serves (`gateways`), and marks the rollouts
//! it carries out as picked up. `ferry deploy` reads these rows to tell
//! whether any gateway will act on a rollout, and an abort of one that no
//! gateway ever picked up leaves its candidate unjudged (not rejected).

use crate::canary::Plan;
use crate::gateway::{Gateway, Selector};
use ferry_metadata::{GatewayBeat, GatewayModel};
use std::net::SocketAddr;
use std::time::Duration;

/// Who this gateway is, for its heartbeats.
pub struct Presence {
    pub id: String,
    addr: SocketAddr,
    tick: Duration,
    started_ms: i64,
}

impl Presence {
    pub fn new(addr: SocketAddr, tick: Duration) -> Self {
        Presence {
            id: ferry_core::RunId::generate().as_str().to_owned(),
            addr,
            tick,
            started_ms: ferry_core::now_ms(),
        }
    }

    /// What the gateway serves now, as a heartbeat at `now_ms`.
    pub fn beat(&self, gw: &Gateway, now_ms: i64) -> GatewayBeat {
        let table = gw.table();
        let models = gw
            .specs
            .iter()
            .map(|s| GatewayModel {
                model: s.name.clone(),
                selector: s.to_string(),
                alias: match &s.selector {
                    Selector::Alias(a) => Some(a.clone()),
                    _ => None,
                },
                version: table.get(&s.name).map(|r| r.stable.version),
            })
            .collect();
        GatewayBeat {
            id: self.id.clone(),
            host: host(),
            addr: self.addr.to_string(),
            pid: i64::from(std::process::id()),
            models,
            tick_ms: self.tick.as_millis().min(i64::MAX as u128) as i64,
            started_ms: self.started_ms,
            last_seen_ms: now_ms,
        }
    }

    /// Records a heartbeat, with the active rollouts this gateway carries
    /// out: those of a model it serves by the alias the rollout promotes
    /// (the rule `Gateway::reconcile` routes by). A store error is logged;
    /// the gateway keeps serving.
    pub async fn heartbeat(&self, gw: &Gateway) {
        let beat = self.beat(gw, ferry_core::now_ms());
        let mut routing = Vec::new();
        for s in &gw.specs {
            let Selector::Alias(alias) = &s.selector else {
                continue;
            };
            match gw.store.list_deployments(Some(&s.name), true).await {
                Ok(ds) => routing.extend(
                    ds.into_iter()
                        .filter(|d| {
                            serde_json::from_value::<Plan>(d.spec.clone())
                                .is_ok_and(|p| &p.alias == alias)
                        })
                        .map(|d| d.id),
                ),
                Err(e) => tracing::warn!(model = %s.name, "cannot read deployments: {e}"),
            }
        }
        if let Err(e) = gw.store.gateway_heartbeat(&beat, &routing).await {
            tracing::warn!("cannot record the gateway's heartbeat: {e}");
        }
    }

    /// Removes this gateway's row (it is stopping).
    pub async fn leave(&self, gw: &Gateway) {
        if let Err(e) = gw.store.remove_gateway(&self.id).await {
            tracing::warn!("cannot remove the gateway's row: {e}");
        }
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
