//! Webhooks out (schema 21): the registry's events read back by time, and
//! the deliveries' queue: enqueued once, claimed by one holder, every
//! attempt and its backoff recorded, listed newest first.

use super::*;
use std::sync::Arc;

fn new(endpoint: &str, event_id: &str, now_ms: i64) -> NewWebhookDelivery {
    NewWebhookDelivery {
        endpoint: endpoint.into(),
        event_id: event_id.into(),
        delivery_id: format!("d-{endpoint}-{event_id}"),
        event: "model_version.created".into(),
        event_ms: now_ms - 5,
        body: format!("{{\"event\": \"{event_id}\"}}"),
        now_ms,
    }
}

fn attempt(d: &WebhookDelivery, holder: &str, at: i64, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        endpoint: d.endpoint.clone(),
        event_id: d.event_id.clone(),
        holder: holder.into(),
        at_ms: at,
        duration_ms: 12,
        status: Some(500),
        error: Some("HTTP 500".into()),
        outcome,
    }
}

pub(crate) async fn conformance(s: &dyn MetadataStore) {
    events(s).await;
    cursors(s).await;
    queue(s).await;
}

async fn events(s: &dyn MetadataStore) {
    s.create_registered_model(
        "churn",
        "predicts churn",
        &[("team".into(), "ml".into())],
        1_000,
    )
    .await
    .unwrap();
    s.set_workspace(
        ferry_auth::ResourceType::RegisteredModel,
        "churn",
        "research",
    )
    .await
    .unwrap();
    let mut v = version("churn", "d1", None);
    v.created_ms = 2_000;
    v.source = Some("models:/m-123".into());
    s.create_model_version(&v).await.unwrap();
    s.set_version_tag("churn", 1, "stage", "candidate")
        .await
        .unwrap();
    s.set_alias("churn", "production", 1, Some("first"), 3_000)
        .await
        .unwrap();
    s.delete_alias("churn", "production").await.unwrap();
    // Deleting an alias that is not there records nothing.
    s.delete_alias("churn", "production").await.unwrap();
    let mut v2 = version("churn", "d2", None);
    v2.created_ms = 4_000;
    s.create_model_version(&v2).await.unwrap();
    let d = s
        .create_deployment(&NewDeployment {
            model: "churn".into(),
            candidate: 2,
            stable: Some(1),
            strategy: "canary".into(),
            spec: serde_json::json!({}),
            phase: "progressing".into(),
            weight: 10,
            created_ms: 5_000,
            reason: Some("by test".into()),
        })
        .await
        .unwrap();
    let step = DeploymentChange {
        phase: "progressing".into(),
        active: true,
        step: 1,
        weight: 50,
        step_started_ms: 6_000,
        reason: None,
        kind: "advanced".into(),
        detail: serde_json::json!({}),
        now_ms: 6_000,
        move_alias: None,
        reject: false,
    };
    let d = s.change_deployment(&d.id, d.revision, &step).await.unwrap();
    let end = DeploymentChange {
        phase: "rolled_back".into(),
        active: false,
        reason: Some("error rate".into()),
        kind: "rolled_back".into(),
        now_ms: 7_000,
        reject: true,
        ..step
    };
    s.change_deployment(&d.id, d.revision, &end).await.unwrap();

    let all = s.registry_events(0, 100).await.unwrap();
    let kinds: Vec<(&str, i64)> = all
        .iter()
        .map(|e| {
            let k = match &e.change {
                RegistryChange::ModelCreated { .. } => "model",
                RegistryChange::VersionCreated { .. } => "version",
                RegistryChange::AliasSet { .. } => "alias_set",
                RegistryChange::AliasDeleted { .. } => "alias_deleted",
                RegistryChange::Rollout { kind, .. } => kind.as_str(),
            };
            (k, e.at_ms.min(1_000_000))
        })
        .collect();
    // The deletion is timed by the store (now), so it comes last; the
    // rollout's steps between start and end are not events.
    assert_eq!(
        kinds,
        [
            ("model", 1_000),
            ("version", 2_000),
            ("alias_set", 3_000),
            ("version", 4_000),
            ("started", 5_000),
            ("rolled_back", 7_000),
            ("alias_deleted", 1_000_000),
        ],
        "{all:#?}"
    );
    assert!(all.iter().all(|e| e.workspace == "research"), "{all:#?}");
    assert_eq!(
        all[0].change,
        RegistryChange::ModelCreated {
            name: "churn".into(),
            description: Some("predicts churn".into()),
            tags: vec![("team".into(), "ml".into())],
        }
    );
    assert_eq!(all[0].id, "registered_model:churn:1000");
    let RegistryChange::VersionCreated {
        version,
        source,
        run_id,
        tags,
        ..
    } = &all[1].change
    else {
        panic!("{:?}", all[1]);
    };
    assert_eq!(
        (*version, source.as_str(), run_id.as_deref()),
        (1, "models:/m-123", Some("0000aaaa"))
    );
    assert!(
        tags.contains(&("stage".into(), "candidate".into())),
        "{tags:?}"
    );
    assert_eq!(all[1].id, "model_version:churn:1:2000");
    assert!(matches!(
        &all[2].change,
        RegistryChange::AliasSet { alias, version: 1, previous: None, reason: Some(r), .. }
            if alias == "production" && r == "first"
    ));
    assert!(matches!(
        &all[6].change,
        RegistryChange::AliasDeleted { alias, previous: Some(1), .. } if alias == "production"
    ));
    assert!(matches!(
        &all[5].change,
        RegistryChange::Rollout { candidate: 2, stable: Some(1), strategy, reason: Some(r), deployment_id, .. }
            if strategy == "canary" && r == "error rate" && *deployment_id == d.id
    ));
    // Read again: the same ids (a cursor's overlap enqueues nothing twice).
    let again = s.registry_events(0, 100).await.unwrap();
    assert_eq!(again, all);
    // From a time, and at most a limit: the first of all.
    let from = s.registry_events(3_000, 100).await.unwrap();
    assert_eq!(from, all[2..]);
    let first = s.registry_events(0, 3).await.unwrap();
    assert_eq!(first, all[..3]);
}

async fn cursors(s: &dyn MetadataStore) {
    let c = s.webhook_cursor("ci", 10_000).await.unwrap();
    assert_eq!((c.started_ms, c.scanned_ms), (10_000, 10_000));
    // Its start is the first one's, whoever asks later.
    let c = s.webhook_cursor("ci", 20_000).await.unwrap();
    assert_eq!((c.started_ms, c.scanned_ms), (10_000, 10_000));
    s.advance_webhook_cursor("ci", 15_000).await.unwrap();
    s.advance_webhook_cursor("ci", 12_000).await.unwrap();
    let c = s.webhook_cursor("ci", 30_000).await.unwrap();
    assert_eq!((c.started_ms, c.scanned_ms), (10_000, 15_000), "never back");
}

async fn queue(s: &dyn MetadataStore) {
    const T: i64 = 100_000;
    assert!(s.enqueue_delivery(&new("ci", "e1", T)).await.unwrap());
    let mut other = new("ci", "e1", T + 1);
    other.delivery_id = "someone-else".into();
    assert!(
        !s.enqueue_delivery(&other).await.unwrap(),
        "an event is enqueued once per endpoint"
    );
    assert!(s.enqueue_delivery(&new("audit", "e1", T)).await.unwrap());
    assert!(s.enqueue_delivery(&new("ci", "e2", T + 10)).await.unwrap());
    let ci = vec!["ci".to_owned()];

    // Not due before it was enqueued; then both of ci's, oldest first.
    assert!(
        s.claim_deliveries(&ci, "a", T - 1, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let got = s
        .claim_deliveries(&ci, "a", T + 10, 1_000, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = got.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2"]);
    assert_eq!(
        got[0].delivery_id, "d-ci-e1",
        "the first enqueue's id stands"
    );
    assert_eq!(got[0].body, "{\"event\": \"e1\"}");
    assert_eq!(
        (got[0].lease_holder.as_deref(), got[0].lease_until_ms),
        (Some("a"), T + 1_010)
    );
    // Held: no one else takes them until the lease lapses.
    assert!(
        s.claim_deliveries(&ci, "b", T + 500, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A failed attempt, retried later.
    let e1 = &got[0];
    let retry = AttemptOutcome::Retry {
        next_attempt_ms: T + 2_000,
    };
    assert!(
        s.record_attempt(&attempt(e1, "a", T + 20, retry))
            .await
            .unwrap()
    );
    // Someone not holding it records nothing.
    assert!(
        !s.record_attempt(&attempt(e1, "b", T + 21, retry))
            .await
            .unwrap()
    );
    // e2's lease lapses: b takes it; a's attempt no longer counts.
    let got_b = s
        .claim_deliveries(&ci, "b", T + 1_010, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(got_b.len(), 1);
    assert_eq!(got_b[0].event_id, "e2");
    assert!(
        !s.record_attempt(&attempt(&got[1], "a", T + 1_020, AttemptOutcome::Delivered))
            .await
            .unwrap()
    );
    let mut ok = attempt(&got_b[0], "b", T + 1_030, AttemptOutcome::Delivered);
    ok.status = Some(204);
    ok.error = None;
    assert!(s.record_attempt(&ok).await.unwrap());
    // e1 is due again at its backoff, not before.
    assert!(
        s.claim_deliveries(&ci, "b", T + 1_999, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s
        .claim_deliveries(&ci, "b", T + 2_000, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (
            again[0].attempts,
            again[0].last_status,
            again[0].last_error.as_deref()
        ),
        (1, Some(500), Some("HTTP 500"))
    );
    assert!(
        s.record_attempt(&attempt(&again[0], "b", T + 2_010, AttemptOutcome::Failed))
            .await
            .unwrap()
    );
    // Ended deliveries are never claimed again.
    assert!(
        s.claim_deliveries(&ci, "c", T + 99_000, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let attempts = s.delivery_attempts("ci", "e1").await.unwrap();
    let seen: Vec<(u32, i64, &str, Option<i64>)> = attempts
        .iter()
        .map(|a| (a.attempt, a.at_ms, a.holder.as_str(), a.status))
        .collect();
    assert_eq!(
        seen,
        [(1, T + 20, "a", Some(500)), (2, T + 2_010, "b", Some(500))]
    );

    let list = |endpoint: Option<&str>, state: Option<DeliveryState>| {
        let q = DeliveryQuery {
            endpoint: endpoint.map(Into::into),
            state,
            limit: 10,
        };
        async move { s.deliveries(&q).await.unwrap() }
    };
    let all = list(None, None).await;
    let shown: Vec<(&str, &str, DeliveryState, u32)> = all
        .iter()
        .map(|d| {
            (
                d.endpoint.as_str(),
                d.event_id.as_str(),
                d.state,
                d.attempts,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("ci", "e2", DeliveryState::Delivered, 1),
            ("ci", "e1", DeliveryState::Failed, 2),
            ("audit", "e1", DeliveryState::Pending, 0),
        ]
    );
    assert_eq!(all[0].delivered_ms, Some(T + 1_030));
    assert_eq!(all[0].last_status, Some(204));
    assert_eq!(list(Some("audit"), None).await.len(), 1);
    let failed = list(None, Some(DeliveryState::Failed)).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event_id, "e1");
    let q = DeliveryQuery {
        limit: 1,
        ..Default::default()
    };
    assert_eq!(s.deliveries(&q).await.unwrap().len(), 1);
    // Another endpoint's deliveries are claimed only by name.
    let audit = s
        .claim_deliveries(&["audit".to_owned()], "a", T + 5_000, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
}

/// Two servers claiming the same due deliveries at once: each is taken
/// by exactly one.
pub(crate) async fn race(one: Arc<SqlStore>, two: Arc<SqlStore>) {
    const T: i64 = 1_000_000;
    for i in 0..20 {
        one.enqueue_delivery(&new("ci", &format!("e{i:02}"), T))
            .await
            .unwrap();
    }
    let grab = |s: Arc<SqlStore>, holder: &'static str| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                let ds = s
                    .claim_deliveries(&["ci".to_owned()], holder, T, 60_000, 3)
                    .await
                    .unwrap();
                got.extend(ds.into_iter().map(|d| d.event_id));
            }
            got
        })
    };
    let (a, b) = (grab(one.clone(), "a"), grab(two.clone(), "b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(n, all.len(), "a delivery claimed twice: a {a:?} b {b:?}");
    assert_eq!(n, 20, "every one claimed");
}
