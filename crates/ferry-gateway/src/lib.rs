//! `ferry serve`: the model gateway. It serves registered versions (ONNX
//! natively through `ferry-onnx`, anything else as a supervised process) on
//! three protocols at once (MLflow scoring, the Open Inference Protocol,
//! KServe V1), routes a canary's share of traffic or mirrors a shadow,
//! judges the candidate each tick ([`canary`]: pure; the rules for
//! creating a rollout beside it in [`rollout`]), and records every
//! decision in the store, from which it rebuilds its routes
//! ([`gateway::Gateway::reconcile`]: one code path for start and change).
//!
//! This crate knows the serving protocols' wire shapes ([`protocol`],
//! [`http`]); the store is reached only through `ferry_metadata`'s traits.

pub mod access;
pub mod bucket;
pub mod gateway;
pub mod http;
pub mod loader;
pub mod metrics;
pub mod predictor;
pub mod predlog;
pub mod presence;
pub mod process;
pub mod protocol;
pub mod runtime;
pub mod stats;
pub mod usage;

pub use ferry_rollout::{canary, rollout};
pub use gateway::{Gateway, Selector, ServeSpec};
pub use http::{HttpState, router};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct ServeConfig {
    pub addr: SocketAddr,
    pub max_body: usize,
    /// Request bodies held at once, in bytes (see [`http::BodyBudget`]).
    pub body_budget: usize,
    /// How often the controller reconciles routes and judges deployments.
    pub tick: Duration,
    /// Connections, header deadline, body rate.
    pub limits: ferry_http::ConnLimits,
    /// Who may do what ([`access`]); `None` asks no one.
    pub access: Option<Arc<ferry_access::Access>>,
    /// What a vCPU-hour of the machine the gateway runs on costs: what its
    /// CPU time spent answering is priced at ([`usage`]).
    pub vcpu_hour: f64,
}

/// Serves until Ctrl-C / SIGTERM: loads every model (an error if one
/// cannot be), then answers and runs the controller.
pub async fn serve(
    cfg: ServeConfig,
    gw: Arc<Gateway>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    gw.reconcile(true).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(cfg.addr).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e}\nhint: {}",
            cfg.addr,
            ferry_http::bind_hint(&e)
        )
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    on_ready(addr);
    gw.set_tick(cfg.tick);
    let presence = Arc::new(presence::Presence::new(gw.replica.clone(), addr, cfg.tick));
    let usage = usage::Usage::new(cfg.vcpu_hour);
    let controller = {
        let gw = gw.clone();
        let presence = presence.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(cfg.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                for (model, d) in gw.tick().await {
                    tracing::info!(model, decision = ?d, "deployment");
                }
                presence.heartbeat(&gw).await;
                let used = usage.collect(&gw.loaded().await, ferry_core::now_ms());
                if let Err(e) = gw.store.add_serving_usage(&used).await {
                    tracing::warn!("cannot record what serving cost: {e}");
                }
                gw.refresh_from_store(ferry_core::now_ms()).await;
            }
        })
    };
    if let Some(a) = &cfg.access {
        a.spawn_poll();
    }
    let app = router(
        HttpState {
            gw: gw.clone(),
            max_body: cfg.max_body,
            bodies: http::BodyBudget::new(cfg.body_budget, gw.request_timeout),
        },
        cfg.access.clone(),
    );
    let r = ferry_http::serve(
        listener,
        app,
        cfg.limits,
        http::too_slow,
        ferry_http::shutdown_signal(),
    )
    .await
    .map_err(|e| format!("the gateway stopped: {e}"));
    controller.abort();
    let _ = controller.await;
    // What it answered counts after it is gone: the replica that decides
    // next reads it.
    gw.report().await;
    presence.leave(&gw).await;
    gw.unload_all().await;
    // Whatever process runtimes are left (their supervisors end with the
    // runtime) stop now, in the foreground.
    tokio::task::block_in_place(|| process::stop_all(Duration::from_secs(2)));
    if let Some(l) = &gw.predlog {
        l.flush();
    }
    r
}
