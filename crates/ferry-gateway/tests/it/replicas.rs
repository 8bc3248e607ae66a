//! Replicated gateways sharing one rollout: each reports what it measured
//! of the step to the store every tick, the one holding the rollout's lease
//! judges the sum and decides, and when it dies the lease moves once it
//! lapses. Three gateways given some traffic decide what one gateway given
//! the same traffic decides, one of them killed in the middle of the step
//! included, and no client request fails.

use super::*;
use crate::canary::{criteria, deploy, plan, traffic};
use ferry_metadata::Deployment;
use std::time::Duration;

/// What a rollout came to: the deployment, its events' kinds, the requests
/// its last decision judged, and the requests sent.
struct Outcome {
    deployment: Deployment,
    kinds: Vec<String>,
    judged: u64,
    sent: u64,
    /// The replica that decided last, and the one killed.
    decided_by: String,
    killed: Option<String>,
}

/// Rolls version 2 of `m` (`fake`) out at 50% (one step) behind `replicas` gateways,
/// `per_round` requests a round spread over the live ones; with `kill`,
/// the first gateway (the lease's holder: it ticks first) is gone from
/// that round on, its figures left in the store as a killed process leaves
/// them.
async fn rollout(
    env: &Env,
    fake: &str,
    replicas: usize,
    per_round: usize,
    kill: Option<usize>,
) -> Outcome {
    env.version("m", None, Some("ok"), Some("production")).await;
    env.version("m", None, Some(fake), None).await;
    let mut gws = Vec::new();
    for _ in 0..replicas {
        let gw = env.gateway(&["m@production"], false).await;
        gw.set_tick(Duration::from_millis(50));
        gws.push(gw);
    }
    let mut c = criteria();
    c.min_requests = 30;
    let id = deploy(env, "m", 2, &plan(&[50], 400, c)).await;
    for gw in &gws {
        gw.tick().await;
    }
    let mut sent = 0u64;
    let mut killed = None;
    for round in 0..200 {
        if kill == Some(round) {
            // Killed after its last tick: everything it answered, it reported.
            killed = Some(gws.remove(0).replica.clone());
        }
        let apps: Vec<axum::Router> = gws.iter().map(app).collect();
        for (i, app) in apps.iter().enumerate() {
            // The remainder to the first, so one gateway or three get the same.
            let n = per_round / apps.len() + usize::from(i < per_round % apps.len());
            let statuses = traffic(app, n).await;
            assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
            sent += n as u64;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Every replica's figures in, then the ticks: the one holding the
        // lease judges all of them.
        for gw in &gws {
            gw.report().await;
        }
        for gw in &gws {
            gw.tick().await;
        }
        let d = env.store.get_deployment(&id).await.unwrap().unwrap();
        if !d.active {
            let events = env.store.deployment_events(&id).await.unwrap();
            let detail = &events.last().unwrap().detail;
            let judged = detail["candidate"]["requests"].as_u64().unwrap()
                + detail["stable"]["requests"].as_u64().unwrap();
            let decided_by = detail["decided_by"].as_str().unwrap().to_owned();
            return Outcome {
                decided_by,
                killed,
                deployment: d,
                kinds: events.into_iter().map(|e| e.kind).collect(),
                judged,
                sent,
            };
        }
    }
    panic!("the rollout never ended");
}

#[test]
fn three_gateways_judge_their_summed_traffic_as_one_gateway_would() {
    rt().block_on(async {
        let one = rollout(&Env::new().await, "ok", 1, 12, None).await;
        let three = rollout(&Env::new().await, "ok", 3, 12, None).await;
        for o in [&one, &three] {
            assert_eq!(o.deployment.phase, "promoted");
            assert_eq!(o.kinds, ["started", "promoted"]);
            // The decision judged every request (the candidate's half and
            // the stable version's), whichever replica took it.
            assert_eq!(o.judged, o.sent);
        }
    });
}

#[test]
fn the_lease_moves_when_its_holder_dies_and_nothing_it_saw_is_lost() {
    rt().block_on(async {
        let env = Env::new().await;
        let started = std::time::Instant::now();
        let o = rollout(&env, "ok", 3, 12, Some(1)).await;
        assert_eq!(o.deployment.phase, "promoted");
        assert_eq!(o.kinds, ["started", "promoted"]);
        assert_eq!(o.judged, o.sent, "the dead replica's requests still count");
        // Another replica took the lease over and decided.
        assert_ne!(Some(&o.decided_by), o.killed.as_ref());
        // Not before the dead holder's lease lapsed (three ticks and 2 s).
        assert!(started.elapsed() >= Duration::from_millis(2_150));
    });
}

#[test]
fn a_failing_candidate_is_rolled_back_on_the_replicas_sum() {
    rt().block_on(async {
        // Every 4th call fails: 25% over every replica's traffic.
        let one = rollout(&Env::new().await, "errors=4", 1, 12, None).await;
        let three = rollout(&Env::new().await, "errors=4", 3, 12, Some(2)).await;
        for o in [&one, &three] {
            assert_eq!(o.deployment.phase, "rolled_back");
            let reason = o.deployment.reason.clone().unwrap();
            assert!(reason.contains("error_rate 0.2"), "{reason}");
        }
    });
}

/// The same on PostgreSQL (`FERRY_TEST_POSTGRES_URL`), where the replicas
/// of a real deployment keep their store.
#[cfg(feature = "postgres")]
#[test]
fn replicas_share_a_rollout_on_postgresql() {
    rt().block_on(async {
        let admin = std::env::var("FERRY_TEST_POSTGRES_URL")
            .expect("the postgres feature needs FERRY_TEST_POSTGRES_URL");
        let url = ferry_metadata::SqlStore::scratch_database(&admin, "ferry_replicas")
            .await
            .unwrap();
        let o = rollout(&Env::on(&url).await, "ok", 3, 12, Some(1)).await;
        assert_eq!(o.deployment.phase, "promoted");
        assert_eq!(o.judged, o.sent);
    });
}
