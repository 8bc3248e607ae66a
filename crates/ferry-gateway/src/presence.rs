//! The gateway's presence in the store: every tick it upserts a row saying
//! where it listens and what it serves (`gateways`), and marks the rollouts
//! it carries out as picked up. `ferry deploy` reads these rows to tell
//! whether any gateway will act on a rollout, and an abort of one that no
//! gateway ever picked up leaves its candidate unjudged (not rejected).

use crate::canary::{Plan, Strategy};
use crate::gateway::{Gateway, Selector};
use crate::stats::Snapshot;
use ferry_metadata::{GatewayBeat, GatewayModel, LiveFigures};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// The window the live figures of a heartbeat cover.
pub const LIVE_WINDOW_MS: i64 = 60_000;

/// Every served version's counters at one moment.
type Snapshots = HashMap<(String, i64), Snapshot>;

/// Who this gateway is, for its heartbeats.
pub struct Presence {
    pub id: String,
    addr: SocketAddr,
    tick: Duration,
    started_ms: i64,
    /// The counters at each beat of the last [`LIVE_WINDOW_MS`] (and the
    /// one before it): the front is what a beat's figures are measured from.
    history: Mutex<VecDeque<(i64, Snapshots)>>,
}

impl Presence {
    /// The presence of the gateway `id` (its [`crate::Gateway::replica`]).
    pub fn new(id: String, addr: SocketAddr, tick: Duration) -> Self {
        Presence {
            id,
            addr,
            tick,
            started_ms: ferry_core::now_ms(),
            history: Mutex::new(VecDeque::new()),
        }
    }

    /// Each served version's figures since the oldest beat of the window,
    /// by model.
    fn live(&self, gw: &Gateway, now_ms: i64) -> HashMap<String, Vec<LiveFigures>> {
        let table = gw.table();
        let mut now: Snapshots = HashMap::new();
        let mut roles = Vec::new();
        for r in &table.models {
            now.insert(
                (r.name.clone(), r.stable.version),
                r.stable.stats.snapshot(),
            );
            roles.push((r.name.clone(), r.stable.version, "stable"));
            if let Some(c) = &r.candidate {
                now.insert(
                    (r.name.clone(), c.served.version),
                    c.served.stats.snapshot(),
                );
                let role = match c.plan.strategy {
                    Strategy::Canary => "canary",
                    Strategy::Shadow => "shadow",
                };
                roles.push((r.name.clone(), c.served.version, role));
            }
        }
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        while h.len() > 1 && h[1].0 <= now_ms - LIVE_WINDOW_MS {
            h.pop_front();
        }
        // The first beat measures from the gateway's start.
        let (since_ms, base) = h
            .front()
            .map_or((self.started_ms, None), |(t, s)| (*t, Some(s)));
        let mut out: HashMap<String, Vec<LiveFigures>> = HashMap::new();
        for (model, version, role) in roles {
            let key = (model.clone(), version);
            let total = &now[&key];
            let window = match base.and_then(|b| b.get(&key)) {
                Some(b) => total.since(b).window(),
                None => total.window(),
            };
            out.entry(model).or_default().push(LiveFigures {
                version,
                role: role.into(),
                window_ms: now_ms - since_ms,
                requests: window.requests,
                errors: window.errors,
                p99_ms: window.p99_ms,
                labelled: total.labelled,
                correct: total.correct,
            });
        }
        h.push_back((now_ms, now));
        out
    }

    /// What the gateway serves now, as a heartbeat at `now_ms`.
    pub fn beat(&self, gw: &Gateway, now_ms: i64) -> GatewayBeat {
        let table = gw.table();
        let mut live = self.live(gw, now_ms);
        let models = gw
            .specs
            .iter()
            .map(|s| {
                let route = table.get(&s.name);
                GatewayModel {
                    model: s.name.clone(),
                    selector: s.to_string(),
                    alias: match &s.selector {
                        Selector::Alias(a) => Some(a.clone()),
                        _ => None,
                    },
                    version: route.map(|r| r.stable.version),
                    live: live.remove(&s.name).unwrap_or_default(),
                    analysis: route
                        .and_then(|r| r.candidate.as_ref())
                        .and_then(|c| gw.analysis(&c.deployment.id)),
                }
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
