//! The closed loop's records on every backend: monitor events, alert
//! decisions, and the triggered runs' queue (cooldown, duplicates,
//! concurrency, leases that lapse, two agents racing).

use ferry_metadata::*;
use std::sync::Arc;

const T0: i64 = 1_795_000_000_000;
const MIN: i64 = 60_000;

fn event(id: &str, model: &str, check: &str, status: CheckStatus, at: i64) -> MonitorEvent {
    MonitorEvent {
        event_id: id.into(),
        model: model.into(),
        version: Some(1),
        check: check.into(),
        status,
        value: Some(0.31),
        threshold: Some(0.1),
        rows: 12_480,
        window_start_ms: at - 60 * MIN,
        window_end_ms: at,
        at_ms: at,
        summary: format!("{check} at {at}"),
        detail: serde_json::json!({"columns": [{"column": "petal_length", "value": 0.31}]}),
    }
}

fn firing(key: &str, kind: &str, at: i64) -> Firing {
    Firing {
        pipeline: "iris".into(),
        kind: kind.into(),
        key: key.into(),
        evidence: format!("{kind} fired ({key})"),
        commit: None,
        now_ms: at,
        cooldown_ms: 60 * MIN,
    }
}

fn claim(agent: &str, at: i64) -> Claim {
    Claim {
        pipeline: "iris".into(),
        agent: agent.into(),
        now_ms: at,
        lease_ms: MIN,
        concurrency: 1,
        retries: 1,
    }
}

pub(crate) async fn conformance(s: &dyn MetadataStore) {
    events(s).await;
    alerts(s).await;
    queue(s).await;
    commits(s).await;
}

async fn events(s: &dyn MetadataStore) {
    use CheckStatus::*;
    s.record_monitor_events(&[
        event("e1", "iris", "drift", Ok, T0),
        event("e2", "iris", "accuracy", Insufficient, T0),
        event("e3", "wine", "drift", Ok, T0),
    ])
    .await
    .unwrap();
    s.record_monitor_events(&[event("e4", "iris", "drift", Failing, T0 + MIN)])
        .await
        .unwrap();
    let all = s.monitor_events(None, None, 10).await.unwrap();
    assert_eq!(all[0].event_id, "e4", "newest first");
    assert_eq!(all.len(), 4);
    assert_eq!(all[0], event("e4", "iris", "drift", Failing, T0 + MIN));
    let iris = s
        .monitor_events(Some("iris"), Some(T0 + MIN), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = iris.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["e2", "e1"], "before a time, one model's");
    let latest = s.latest_monitor_events(None).await.unwrap();
    let ids: Vec<(&str, &str)> = latest
        .iter()
        .map(|e| (e.model.as_str(), e.event_id.as_str()))
        .collect();
    assert_eq!(ids, [("iris", "e2"), ("iris", "e4"), ("wine", "e3")]);
    assert_eq!(
        s.latest_monitor_events(Some("wine")).await.unwrap().len(),
        1
    );
}

async fn alerts(s: &dyn MetadataStore) {
    use CheckStatus::*;
    let step = |status, at| s.alert_transition("iris", "drift", status, at, 60 * MIN);
    assert_eq!(step(Ok, T0).await.unwrap(), None);
    let (n, st) = step(Failing, T0).await.unwrap().unwrap();
    assert_eq!((n, st.since_ms), (Notice::Failing, T0));
    assert_eq!(step(Failing, T0 + MIN).await.unwrap(), None, "deduplicated");
    let (n, _) = step(Failing, T0 + 61 * MIN).await.unwrap().unwrap();
    assert_eq!(n, Notice::StillFailing, "told again after the cooldown");
    let (n, _) = step(Ok, T0 + 62 * MIN).await.unwrap().unwrap();
    assert_eq!(n, Notice::Recovered);
    assert_eq!(step(Ok, T0 + 63 * MIN).await.unwrap(), None);
    let st = s.alert_state("iris", "drift").await.unwrap().unwrap();
    assert_eq!((st.failing, st.since_ms), (false, T0 + 62 * MIN));
    assert_eq!(s.alert_state("iris", "p99_ms").await.unwrap(), None);
    // Another check of the model has a state of its own.
    let other = s
        .alert_transition("iris", "accuracy", Failing, T0, 60 * MIN)
        .await
        .unwrap();
    assert_eq!(other.map(|o| o.0), Some(Notice::Failing));
}

async fn queue(s: &dyn MetadataStore) {
    let Fired::Queued { trigger: first } = s
        .fire_trigger(&firing("drift:1", "drift", T0))
        .await
        .unwrap()
    else {
        panic!("the first firing queues");
    };
    assert_eq!(first.state, TriggerState::Queued);
    assert_eq!(
        s.fire_trigger(&firing("drift:1", "drift", T0 + MIN))
            .await
            .unwrap(),
        Fired::Duplicate,
        "one cause fires once"
    );
    let Fired::Ignored { trigger, after } = s
        .fire_trigger(&firing("schedule:1", "schedule", T0 + 2 * MIN))
        .await
        .unwrap()
    else {
        panic!("within the cooldown: ignored");
    };
    assert_eq!(after, first.trigger_id);
    assert_eq!(trigger.state, TriggerState::Ignored);
    assert!(trigger.note.unwrap().contains("within the cooldown (1h)"));
    // A person's trigger is never held back by the cooldown.
    let Fired::Queued { trigger: manual } = s
        .fire_trigger(&firing("manual:1", "manual", T0 + 3 * MIN))
        .await
        .unwrap()
    else {
        panic!("manual queues");
    };

    // One runs at a time: the oldest first.
    let got = s
        .claim_trigger(&claim("a", T0 + 4 * MIN))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.trigger_id, first.trigger_id);
    assert_eq!((got.state, got.attempts), (TriggerState::Running, 1));
    assert_eq!(got.agent.as_deref(), Some("a"));
    assert!(
        s.claim_trigger(&claim("b", T0 + 4 * MIN))
            .await
            .unwrap()
            .is_none(),
        "concurrency 1"
    );
    s.trigger_started(&got.trigger_id, "a", "run0001")
        .await
        .unwrap();
    assert!(
        s.renew_trigger(&got.trigger_id, "a", T0 + 6 * MIN)
            .await
            .unwrap()
    );
    assert!(
        !s.renew_trigger(&got.trigger_id, "b", T0 + 6 * MIN)
            .await
            .unwrap(),
        "not b's"
    );
    assert!(
        s.finish_trigger(
            &got.trigger_id,
            "a",
            TriggerState::Succeeded,
            None,
            T0 + 5 * MIN
        )
        .await
        .unwrap()
    );
    let of_run = s.trigger_of_run("run0001").await.unwrap().unwrap();
    assert_eq!(
        (of_run.state, of_run.ended_ms),
        (TriggerState::Succeeded, Some(T0 + 5 * MIN))
    );

    // The manual run: its agent dies; the lease lapses and it is queued
    // again once, then abandoned.
    let m = s
        .claim_trigger(&claim("a", T0 + 6 * MIN))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.trigger_id, manual.trigger_id);
    let again = s
        .claim_trigger(&claim("b", T0 + 8 * MIN))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.trigger_id.as_str(), again.attempts),
        (m.trigger_id.as_str(), 2)
    );
    assert!(again.note.as_deref().unwrap().contains("queued again"));
    assert!(
        !s.finish_trigger(
            &m.trigger_id,
            "a",
            TriggerState::Succeeded,
            None,
            T0 + 8 * MIN
        )
        .await
        .unwrap(),
        "a lost its claim"
    );
    assert!(
        s.claim_trigger(&claim("c", T0 + 10 * MIN))
            .await
            .unwrap()
            .is_none()
    );
    let runs = s.triggered_runs(Some("iris"), 10).await.unwrap();
    let gone = runs.iter().find(|t| t.trigger_id == m.trigger_id).unwrap();
    assert_eq!(gone.state, TriggerState::Abandoned);
    assert_eq!(runs.len(), 3);
    assert!(s.triggered_runs(Some("wine"), 10).await.unwrap().is_empty());
}

/// A webhook's firing names the commit to run at; the store keeps it
/// through the claim and the listing, refuses anything but a full commit
/// id, and one delivery (its key) queues once.
async fn commits(s: &dyn MetadataStore) {
    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
    let pushed = Firing {
        pipeline: "churn".into(),
        commit: Some(SHA.into()),
        cooldown_ms: 0,
        ..firing("github:72d3162e-cc78-11e3-81ab-4c9367dc0958", "push", T0)
    };
    let Fired::Queued { trigger } = s.fire_trigger(&pushed).await.unwrap() else {
        panic!("a push queues");
    };
    assert_eq!(trigger.commit.as_deref(), Some(SHA));
    assert_eq!(
        s.fire_trigger(&Firing {
            now_ms: T0 + MIN,
            ..pushed.clone()
        })
        .await
        .unwrap(),
        Fired::Duplicate,
        "a delivery replayed queues nothing"
    );
    // Without a cooldown a second push queues at once.
    let next = Firing {
        key: "github:second".into(),
        commit: None,
        now_ms: T0 + 1,
        ..pushed.clone()
    };
    assert!(matches!(
        s.fire_trigger(&next).await.unwrap(),
        Fired::Queued { .. }
    ));
    for bad in [
        "0D1A26E67D8F5EAF1F6BA5C57FC3C7D91AC0FD1C",
        "0d1a26e",
        "--upload-pack=x",
        "main",
    ] {
        let f = Firing {
            key: format!("github:{bad}"),
            commit: Some(bad.into()),
            ..pushed.clone()
        };
        assert!(
            matches!(s.fire_trigger(&f).await, Err(Error::Invalid(_))),
            "{bad} is refused"
        );
    }
    let claim = Claim {
        pipeline: "churn".into(),
        ..claim("a", T0 + 2 * MIN)
    };
    let got = s.claim_trigger(&claim).await.unwrap().unwrap();
    assert_eq!(
        (got.trigger_id.as_str(), got.commit.as_deref()),
        (trigger.trigger_id.as_str(), Some(SHA))
    );
    s.trigger_started(&got.trigger_id, "a", "run-churn")
        .await
        .unwrap();
    let of_run = s.trigger_of_run("run-churn").await.unwrap().unwrap();
    assert_eq!(of_run.commit.as_deref(), Some(SHA));
    let listed = s.triggered_runs(Some("churn"), 10).await.unwrap();
    let commits: Vec<Option<&str>> = listed.iter().map(|t| t.commit.as_deref()).collect();
    assert_eq!(commits, [None, Some(SHA)], "newest first");
}

/// Two agents (two connections) claim at once: each queued run goes to
/// one of them.
pub(crate) async fn race(one: Arc<SqlStore>, two: Arc<SqlStore>) {
    for round in 0..6 {
        let pipeline = format!("race{round}");
        let f = Firing {
            pipeline: pipeline.clone(),
            ..firing(&format!("manual:{round}"), "manual", T0)
        };
        one.fire_trigger(&f).await.unwrap();
        let grab = |s: Arc<SqlStore>, agent: &'static str, p: String| {
            tokio::spawn(async move {
                let c = Claim {
                    pipeline: p,
                    concurrency: 4,
                    ..claim(agent, T0 + MIN)
                };
                s.claim_trigger(&c).await.unwrap().is_some()
            })
        };
        let x = grab(one.clone(), "a", pipeline.clone());
        let y = grab(two.clone(), "b", pipeline.clone());
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert!(x ^ y, "round {round}: claimed by a {x}, by b {y}");
    }
}
