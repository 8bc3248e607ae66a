//! The dashboard's reads: a page of runs by filters and cursor, and each
//! pipeline's health.

use super::*;

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
const NOW: i64 = 20_790 * D;

fn run(i: usize, pipeline: &str, workspace: &str, at: i64) -> NewRun {
    NewRun {
        pipeline: pipeline.into(),
        workspace: workspace.into(),
        project: pipeline.into(),
        git_commit: Some(format!("{:040x}", i)),
        ..new_run(&format!("{i:032x}"), at)
    }
}

pub(crate) async fn conformance(s: &dyn MetadataStore) {
    seed(s).await;
    pages_and_filters(s).await;
    orders(s).await;
    grammar_and_author(s).await;
    health(s).await;
}

/// A page of at most 100 runs.
async fn page(s: &dyn MetadataStore, q: RunPage) -> Vec<RunSummary> {
    s.page_runs(&RunPage { limit: 100, ..q }).await.unwrap()
}

async fn seed(s: &dyn MetadataStore) {
    // iris (team ml): a run a day for 20 days, every third failed, each
    // taking (i + 1) minutes; churn (team growth): 3 runs today.
    for i in 0..20usize {
        let at = NOW - (i as i64) * D - H;
        s.begin_run(&run(i, "iris", "ml", at)).await.unwrap();
        let status = if i % 3 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        // Its stage first, as a run records it: a run's stages are
        // counted when it finishes.
        let stage = if i % 2 == 0 {
            StageStatus::Ran
        } else {
            StageStatus::Restored
        };
        s.record_stage(
            &format!("{i:032x}"),
            &StageRecord::new("train", stage, "x".into()),
        )
        .await
        .unwrap();
        s.finish_run(
            &format!("{i:032x}"),
            status,
            at + (i as i64 + 1) * 60_000,
            None,
        )
        .await
        .unwrap();
    }
    for i in 100..103usize {
        s.begin_run(&run(i, "churn", "growth", NOW - H + i as i64))
            .await
            .unwrap();
    }
}

async fn pages_and_filters(s: &dyn MetadataStore) {
    // Pages of 7 cover every run once, newest first.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .page_runs(&RunPage {
                before: before.clone(),
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        before = Some((last.started_ms, last.run_id.clone()));
        seen.extend(page.into_iter().map(|r| (r.started_ms, r.run_id)));
    }
    assert_eq!(seen.len(), 23);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no run twice");

    // Filters: status, pipeline, commit prefix, workspaces, since.
    let failed = page(
        s,
        RunPage {
            status: Some("failed".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(failed.len(), 7);
    assert!(failed.iter().all(|r| r.status == RunStatus::Failed));
    let growth = page(
        s,
        RunPage {
            workspaces: Some(vec!["growth".into()]),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(growth.len(), 3);
    assert!(growth.iter().all(|r| r.pipeline == "churn"));
    let nobody = page(
        s,
        RunPage {
            workspaces: Some(vec![]),
            ..Default::default()
        },
    )
    .await;
    assert!(nobody.is_empty());
    let by_commit = page(
        s,
        RunPage {
            commit: Some(format!("{:040x}", 10)[..39].to_owned()),
            ..Default::default()
        },
    )
    .await;
    // A prefix of 39 of the 40: runs 0..=15 share it (…00 to …0f).
    assert_eq!(by_commit.len(), 16);
    let recent = page(
        s,
        RunPage {
            pipeline: Some("iris".into()),
            since_ms: Some(NOW - 3 * D),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(recent.len(), 3);
}

async fn orders(s: &dyn MetadataStore) {
    // Orders: oldest first, and slowest (runs still going last), paged by
    // the same kind of cursor.
    let oldest = page(
        s,
        RunPage {
            order: RunOrder::Oldest,
            limit: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(oldest[0].run_id, format!("{:032x}", 19));
    let mut slow = Vec::new();
    let mut before = None;
    loop {
        let got = s
            .page_runs(&RunPage {
                order: RunOrder::Slowest,
                before: before.clone(),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = got.last() else { break };
        before = Some((RunOrder::Slowest.key(last), last.run_id.clone()));
        slow.extend(got.into_iter().map(|r| r.run_id));
    }
    let want: Vec<String> = (0..20)
        .rev()
        .map(|i| format!("{i:032x}"))
        .chain((100..103).rev().map(|i| format!("{i:032x}")))
        .collect();
    assert_eq!(slow, want, "the longest first, each once, runs going last");
}

async fn grammar_and_author(s: &dyn MetadataStore) {
    // MLflow's grammar (an attribute, a tag, a metric) and the author.
    s.attach_run(
        &format!("{:032x}", 4),
        ferry_core::ExperimentId::DEFAULT,
        "iris-4",
        &[("mlflow.user".into(), "ana".into())],
    )
    .await
    .unwrap();
    s.log_batch(
        &format!("{:032x}", 4),
        &[Metric {
            key: "acc".into(),
            value: 0.97,
            timestamp: NOW,
            step: 0,
        }],
        &[],
        &[],
    )
    .await
    .unwrap();
    let grammar = |f: &str| ferry_search::parse_filter(f, ferry_search::Grammar::Runs).unwrap();
    let ids = |runs: Vec<RunSummary>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let four = vec![format!("{:032x}", 4)];
    for f in [
        "metrics.acc > 0.9",
        "tags.mlflow.user = 'ana'",
        "attributes.user_id = 'ana' and metrics.acc >= 0.97",
    ] {
        let got = page(
            s,
            RunPage {
                filter: grammar(f),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(ids(got), four, "{f}");
    }
    let failed_or_not = page(
        s,
        RunPage {
            filter: grammar("attributes.status = 'FAILED'"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(failed_or_not.len(), 7);
    let by_author = page(
        s,
        RunPage {
            author: Some("ana".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(by_author.clone()), four);
    assert_eq!(by_author[0].author.as_deref(), Some("ana"));
}

async fn health(s: &dyn MetadataStore) {
    // Health: iris over 7 and 30 days, churn running.
    let health = s.pipeline_health(NOW, None).await.unwrap();
    assert_eq!(health.len(), 2);
    let iris = health.iter().find(|h| h.pipeline == "iris").unwrap();
    assert_eq!(iris.workspace, "ml");
    assert_eq!(iris.last_run_id, format!("{:032x}", 0));
    assert_eq!(iris.last_status, "failed");
    // Days 0..=6 started within 7 days (i = 0..6): 0, 3, 6 failed.
    assert_eq!((iris.ended_7d, iris.succeeded_7d), (7, 4));
    assert_eq!((iris.ended_30d, iris.succeeded_30d), (20, 13));
    // Durations 1..=7 minutes: median 4; the week before 8..=14: 11.
    assert_eq!(iris.median_ms_7d, Some(4 * 60_000));
    assert_eq!(iris.median_ms_prev_7d, Some(11 * 60_000));
    assert_eq!((iris.stages_ran_30d, iris.stages_restored_30d), (10, 10));
    let churn = health.iter().find(|h| h.pipeline == "churn").unwrap();
    assert_eq!(
        (churn.last_status.as_str(), churn.ended_30d),
        ("running", 0)
    );
    // A run finished again (a later verdict) is counted once, as it ends.
    s.finish_run(&format!("{:032x}", 0), RunStatus::Succeeded, NOW, None)
        .await
        .unwrap();
    let health = s.pipeline_health(NOW, None).await.unwrap();
    let iris = health.iter().find(|h| h.pipeline == "iris").unwrap();
    assert_eq!((iris.ended_30d, iris.succeeded_30d), (20, 14));
    assert_eq!((iris.stages_ran_30d, iris.stages_restored_30d), (10, 10));
    let only = s
        .pipeline_health(NOW, Some(&["growth".to_owned()]))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].pipeline, "churn");
}
