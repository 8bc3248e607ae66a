//! Budgets, holds, alerts, owners and serving costs: the [`CostStore`]
//! conformance suite, and runs racing for the last of a budget.

use super::*;
use ferry_cost::budget::{Budget, DEFAULT_ALERTS, Scope};

const H: i64 = 3_600_000;
/// 2026-12-01T00:00:00Z.
const DEC_1: i64 = 20_788 * 24 * H;
/// Mid-December: "now" for every call below.
const NOW: i64 = DEC_1 + 14 * 24 * H;

fn run_of(id: &str, pipeline: &str, workspace: &str, at: i64) -> NewRun {
    NewRun {
        pipeline: pipeline.into(),
        workspace: workspace.into(),
        project: format!("{pipeline}-repo"),
        ..new_run(id, at)
    }
}

fn ran(stage: &str, at: i64, charged: f64) -> StageRecord {
    StageRecord {
        started_ms: Some(at),
        ended_ms: Some(at + H / 2),
        cost: Some(ferry_cost::StageCost {
            charged,
            basis: ferry_cost::Basis::Used,
            requested: None,
            used: charged,
            machine: "aws-us-east-1".into(),
        }),
        ..StageRecord::new(stage, StageStatus::Ran, "never ran".into())
    }
}

fn budget(scope: &str, monthly: f64) -> Budget {
    Budget {
        scope: Scope::parse(scope).unwrap(),
        monthly_usd: monthly,
        alerts: DEFAULT_ALERTS.to_vec(),
        webhook: Some("https://hooks.example.com/x".into()),
    }
}

fn hold(run: &str, estimate: f64, over: bool) -> Hold {
    Hold {
        run_id: run.into(),
        pipeline: "iris".into(),
        workspace: "ml".into(),
        estimate_usd: estimate,
        over,
        now_ms: NOW,
    }
}

pub(crate) async fn conformance(s: &dyn MetadataStore) {
    let (a, b, c, nov) = (
        "00b1aaaa000000000000000000000000",
        "00b2aaaa000000000000000000000000",
        "00b3aaaa000000000000000000000000",
        "00b0aaaa000000000000000000000000",
    );
    // No budget: nothing is held, and a run asks once.
    assert!(!s.has_budget("iris", "ml").await.unwrap());
    s.begin_run(&run_of(a, "iris", "ml", NOW)).await.unwrap();
    let none = s.hold_budget(&hold(a, 5.0, false)).await.unwrap();
    assert!(none.standings.is_empty() && !none.held);

    // $0.50 spent this month, $7 last month (not counted).
    s.record_stage(a, &ran("train", NOW, 0.5)).await.unwrap();
    s.begin_run(&run_of(nov, "iris", "ml", DEC_1 - 5 * H))
        .await
        .unwrap();
    s.record_stage(nov, &ran("train", DEC_1 - 5 * H, 7.0))
        .await
        .unwrap();
    s.finish_run(nov, RunStatus::Succeeded, DEC_1 - 4 * H, None)
        .await
        .unwrap();
    // Another team's pipeline spends too: not ml's.
    s.begin_run(&run_of(c, "churn", "growth", NOW))
        .await
        .unwrap();
    s.record_stage(c, &ran("fit", NOW, 2.0)).await.unwrap();

    s.set_budget(&budget("ml", 1.0), NOW).await.unwrap();
    assert!(s.has_budget("iris", "ml").await.unwrap());
    assert!(!s.has_budget("churn", "growth").await.unwrap());
    let owners = s.pipeline_owners().await.unwrap();
    assert_eq!(owners["iris"].workspace, "ml");
    assert_eq!(owners["churn"].project, "churn-repo");

    // Run a holds $0.30 of what is left ($0.50).
    let h = s.hold_budget(&hold(a, 0.3, false)).await.unwrap();
    assert!(h.held && h.short.is_empty());
    assert_eq!(h.standings.len(), 1);
    assert_eq!(h.standings[0].period, "2026-12");
    assert!((h.standings[0].spent_usd - 0.5).abs() < 1e-9);
    assert_eq!(h.standings[0].reserved_usd, 0.0);
    // Run b does not fit beside it ($0.50 + $0.30 + $0.30 > $1)...
    s.begin_run(&run_of(b, "iris", "ml", NOW)).await.unwrap();
    let refused = s.hold_budget(&hold(b, 0.3, false)).await.unwrap();
    assert!(!refused.held);
    assert_eq!(refused.short, [Scope::Workspace("ml".into())]);
    assert!((refused.standings[0].reserved_usd - 0.3).abs() < 1e-9);
    // ...and nothing of it was held.
    let st = s.budgets(NOW).await.unwrap();
    assert!((st[0].reserved_usd - 0.3).abs() < 1e-9);
    // Let over, it is held even so.
    let over = s.hold_budget(&hold(b, 0.3, true)).await.unwrap();
    assert!(over.held && !over.short.is_empty());
    let st = s.budgets(NOW).await.unwrap();
    assert!((st[0].reserved_usd - 0.6).abs() < 1e-9);
    assert!((st[0].left_usd() - (1.0 - 0.5 - 0.6)).abs() < 1e-9);
    // A day on, holds of runs still running have lapsed.
    let later = s.budgets(NOW + 25 * H).await.unwrap();
    assert_eq!(later[0].reserved_usd, 0.0);

    // A pipeline's own budget stands beside its workspace's.
    s.set_budget(&budget("pipeline:iris", 0.55), NOW)
        .await
        .unwrap();
    let both = s.budgets(NOW).await.unwrap();
    assert_eq!(
        both.iter()
            .map(|b| b.budget.scope.to_string())
            .collect::<Vec<_>>(),
        ["pipeline:iris", "workspace:ml"]
    );

    // Run a ends: its hold goes, and its budgets owe their alerts: ml at
    // 50% ($0.50 of $1), iris at 50% and 80% ($0.50 of $0.55).
    s.finish_run(a, RunStatus::Succeeded, NOW + H, None)
        .await
        .unwrap();
    let alerts = s.release_budget(a, NOW + H).await.unwrap();
    let mut sent: Vec<(String, u32)> = alerts
        .iter()
        .map(|a| (a.budget.clone(), a.threshold_percent))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("pipeline:iris".into(), 50),
            ("pipeline:iris".into(), 80),
            ("workspace:ml".into(), 50)
        ]
    );
    assert_eq!(
        alerts[0].webhook.as_deref(),
        Some("https://hooks.example.com/x")
    );
    // Once each a month.
    assert!(s.release_budget(a, NOW + H).await.unwrap().is_empty());
    // A run no longer running holds nothing, even left unreleased (it
    // crashed): b is finished without a release.
    s.finish_run(b, RunStatus::Crashed, NOW + H, None)
        .await
        .unwrap();
    let st = s.budgets(NOW).await.unwrap();
    assert!(st.iter().all(|b| b.reserved_usd == 0.0));

    // Removing a budget; removing it again says there was none.
    assert!(
        s.remove_budget(&Scope::Pipeline("iris".into()))
            .await
            .unwrap()
    );
    assert!(
        !s.remove_budget(&Scope::Pipeline("iris".into()))
            .await
            .unwrap()
    );
    let bad = Budget {
        monthly_usd: f64::NAN,
        ..budget("ml", 1.0)
    };
    assert!(matches!(
        s.set_budget(&bad, NOW).await,
        Err(Error::Invalid(_))
    ));

    // The estimate's history: newest first, restored stages not counted.
    s.record_stage(b, &ran("train", NOW + 2 * H, 0.25))
        .await
        .unwrap();
    let restored = StageRecord {
        cost: Some(ferry_cost::StageCost::restored("aws-us-east-1")),
        ..StageRecord::new("train", StageStatus::Restored, "cached".into())
    };
    let d = "00b4aaaa000000000000000000000000";
    s.begin_run(&run_of(d, "iris", "ml", NOW + 3 * H))
        .await
        .unwrap();
    s.record_stage(d, &restored).await.unwrap();
    assert_eq!(
        s.recent_stage_costs("iris", "train", 10).await.unwrap(),
        [0.25, 0.5, 7.0]
    );
    assert_eq!(
        s.recent_stage_costs("iris", "train", 2).await.unwrap(),
        [0.25, 0.5]
    );

    // A version's cost: the run that built it, and what serving it cost.
    let mut v = version("iris", "sha256:b1", None);
    v.run_id = Some(a.into());
    v.created_ms = NOW;
    s.create_model_version(&v).await.unwrap();
    let day = NOW / (24 * H);
    for _ in 0..2 {
        s.add_serving_usage(&[ServingUsage {
            day,
            model: "iris".into(),
            version: 1,
            predictions: 5_000,
            cpu_seconds: 2.0,
            cost_usd: 0.01,
        }])
        .await
        .unwrap();
    }
    let costs = s.version_costs(DEC_1, NOW + 24 * H).await.unwrap();
    assert_eq!(costs.len(), 1);
    let vc = &costs[0];
    assert_eq!((vc.model.as_str(), vc.version), ("iris", 1));
    assert!((vc.build_usd - 0.5).abs() < 1e-9);
    assert_eq!(vc.predictions, 10_000);
    assert!((vc.serving_usd - 0.02).abs() < 1e-9);
    assert!((vc.per_1k_predictions_usd.unwrap() - 0.002).abs() < 1e-12);
    // Outside the window: neither built nor served then.
    assert!(s.version_costs(0, DEC_1).await.unwrap().is_empty());

    // What the registry keeps, by model, with its workspace.
    let kept = s.registry_storage().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].name.as_str(), kept[0].workspace.as_str()),
        ("iris", "default")
    );
    assert_eq!((kept[0].objects, kept[0].bytes), (1, 10));
    let priced = kept[0].clone().priced(0.023);
    assert!((priced.usd_month - 10.0 / 1073741824.0 * 0.023).abs() < 1e-18);
}

/// Two runs racing for the last of a budget: exactly one is held, however
/// their transactions interleave (on two connections of their own).
pub(crate) async fn race(one: std::sync::Arc<SqlStore>, two: std::sync::Arc<SqlStore>) {
    for round in 0..6 {
        let pipeline = format!("race{round}");
        let scope = format!("pipeline:{pipeline}");
        one.set_budget(&budget(&scope, 1.0), NOW).await.unwrap();
        let ids = [
            format!("{round:04}ccc1000000000000000000000000"),
            format!("{round:04}ccc2000000000000000000000000"),
        ];
        for id in &ids {
            one.begin_run(&run_of(id, &pipeline, "race", NOW))
                .await
                .unwrap();
        }
        let hold_on = |s: std::sync::Arc<SqlStore>, id: String, p: String| {
            tokio::spawn(async move {
                s.hold_budget(&Hold {
                    run_id: id,
                    pipeline: p,
                    workspace: "race".into(),
                    estimate_usd: 0.6,
                    over: false,
                    now_ms: NOW,
                })
                .await
                .unwrap()
                .held
            })
        };
        let x = hold_on(one.clone(), ids[0].clone(), pipeline.clone());
        let y = hold_on(two.clone(), ids[1].clone(), pipeline.clone());
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert!(x ^ y, "round {round}: held {x} and {y}");
        let st = one.budgets(NOW).await.unwrap();
        let mine = st
            .iter()
            .find(|b| b.budget.scope.to_string() == scope)
            .unwrap();
        assert!((mine.reserved_usd - 0.6).abs() < 1e-9);
    }
}
