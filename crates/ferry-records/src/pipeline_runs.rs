//! A pipeline run as MLflow keeps it, read back as one: the run that
//! `ferry run --server` records through the MLflow API (its `ferry.*` tags,
//! params, metrics, and a nested run per stage that did something) becomes
//! the [`RunSummary`] / [`RunDetail`] that `ferry runs` shows, whether it is
//! read from a server or from the store that server writes to. Pure: the
//! callers fetch the runs.

use crate::{GateRecord, MetricRecord, RunDetail, RunStatus, RunSummary, StageRecord, StageStatus};
use crate::{Metric, TrackedRun};

/// Tags of a pipeline run (the parent run).
pub const PIPELINE_TAG: &str = "ferry.pipeline";
pub const STATUS_TAG: &str = "ferry.status";
pub const MESSAGE_TAG: &str = "ferry.message";
pub const TRIGGER_TAG: &str = "ferry.trigger";
pub const GIT_DIRTY_TAG: &str = "ferry.git.dirty";
pub const ENV_TAG: &str = "ferry.env.fingerprint";
/// `true` on a run in which nothing happened (see [`RunSummary::noop`]).
pub const NOOP_TAG: &str = "ferry.noop";
/// Tags of a stage's nested run.
pub const STAGE_TAG: &str = "ferry.stage";
pub const STAGE_STATUS_TAG: &str = "ferry.stage.status";
pub const STAGE_REASON_TAG: &str = "ferry.stage.reason";
pub const STAGE_POSITION_TAG: &str = "ferry.stage.position";
pub const STAGE_EXIT_TAG: &str = "ferry.stage.exit_code";
pub const STAGE_ATTEMPTS_TAG: &str = "ferry.stage.attempts";
pub const STAGE_FINGERPRINT_TAG: &str = "ferry.stage.fingerprint";
/// A stage's cost (see `ferry_cost::StageCost`): metrics in US dollars,
/// tags for how it was charged, on its nested run; the pipeline run's
/// total cost is the same metric on the parent.
pub const COST_METRIC: &str = "ferry.cost_usd";
pub const COST_REQUESTED_METRIC: &str = "ferry.cost_requested_usd";
pub const COST_USED_METRIC: &str = "ferry.cost_used_usd";
pub const COST_BASIS_TAG: &str = "ferry.cost.basis";
pub const COST_MACHINE_TAG: &str = "ferry.cost.machine";
/// Where a stage's log is kept among its pipeline run's artifacts.
pub fn stage_log_artifact(stage: &str) -> String {
    format!("logs/{stage}.log")
}

/// A param's value from the text MLflow keeps (as `ferry run` wrote it: a
/// string as itself, anything else as its JSON text).
pub fn param_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

fn tag<'a>(r: &'a TrackedRun, key: &str) -> Option<&'a str> {
    r.tags
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Whether `r` is a pipeline run (not a stage's run, not a notebook's).
pub fn is_pipeline_run(r: &TrackedRun) -> bool {
    tag(r, PIPELINE_TAG).is_some() && tag(r, "mlflow.parentRunId").is_none()
}

/// The run's status: ferry's own word when it recorded one, else MLflow's.
fn status(r: &TrackedRun) -> RunStatus {
    if let Some(s) = tag(r, STATUS_TAG).and_then(RunStatus::parse) {
        return s;
    }
    match r.info.status.as_str() {
        "RUNNING" | "SCHEDULED" => RunStatus::Running,
        "FINISHED" => RunStatus::Succeeded,
        "KILLED" => RunStatus::Cancelled,
        _ => RunStatus::Failed,
    }
}

/// The summary of pipeline run `r` (see [`is_pipeline_run`]).
pub fn summary_of(r: &TrackedRun) -> RunSummary {
    RunSummary {
        run_id: r.info.run_id.clone(),
        pipeline: tag(r, PIPELINE_TAG).unwrap_or_default().to_owned(),
        status: status(r),
        trigger: tag(r, TRIGGER_TAG).unwrap_or("mlflow").to_owned(),
        started_ms: r.info.start_time,
        ended_ms: r.info.end_time,
        git_commit: tag(r, "mlflow.source.git.commit").map(str::to_owned),
        git_dirty: tag(r, GIT_DIRTY_TAG).and_then(|d| d.parse().ok()),
        message: tag(r, MESSAGE_TAG).map(str::to_owned),
        noop: tag(r, NOOP_TAG) == Some("true"),
        author: Some(r.info.user_id.clone()).filter(|u| !u.is_empty()),
    }
}

fn metric(r: &TrackedRun, key: &str, scale: f64) -> Option<i64> {
    r.metrics
        .iter()
        .find(|m| m.key == key)
        .map(|m| (m.value * scale).round() as i64)
}

/// A stage's cost as its nested run recorded it.
fn cost_of(c: &TrackedRun) -> Option<ferry_cost::StageCost> {
    let value = |key: &str| c.metrics.iter().find(|m| m.key == key).map(|m| m.value);
    let basis = ferry_cost::Basis::parse(tag(c, COST_BASIS_TAG)?)?;
    Some(ferry_cost::StageCost {
        charged: value(COST_METRIC)?,
        basis,
        requested: value(COST_REQUESTED_METRIC),
        used: value(COST_USED_METRIC).unwrap_or(0.0),
        machine: tag(c, COST_MACHINE_TAG).unwrap_or_default().to_owned(),
    })
}

/// A stage as its nested run recorded it; `None` for a run that is not a
/// stage's.
pub fn stage_of(c: &TrackedRun) -> Option<StageRecord> {
    let stage = tag(c, STAGE_TAG)?.to_owned();
    Some(StageRecord {
        stage,
        position: tag(c, STAGE_POSITION_TAG)
            .and_then(|p| p.parse().ok())
            .unwrap_or(i64::MAX),
        status: tag(c, STAGE_STATUS_TAG)
            .and_then(StageStatus::parse)
            .unwrap_or(StageStatus::Failed),
        reason: tag(c, STAGE_REASON_TAG)
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        fingerprint: tag(c, STAGE_FINGERPRINT_TAG).map(str::to_owned),
        started_ms: Some(c.info.start_time),
        ended_ms: c.info.end_time,
        wall_ms: metric(c, "ferry.wall_seconds", 1000.0),
        user_cpu_ms: metric(c, "ferry.user_cpu_seconds", 1000.0),
        sys_cpu_ms: metric(c, "ferry.sys_cpu_seconds", 1000.0),
        max_rss_bytes: metric(c, "ferry.max_rss_bytes", 1.0),
        exit_code: tag(c, STAGE_EXIT_TAG).and_then(|e| e.parse().ok()),
        attempts: tag(c, STAGE_ATTEMPTS_TAG)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1),
        // In the reason, and the run's artifact `logs/<stage>.log`.
        error: None,
        log: None,
        cost: cost_of(c),
    })
}

/// A gate as its `ferry.gate.<n>` tag recorded it: `passed: ...`,
/// `failed: ...` or `skipped: ...` (the message keeps `skipped: `, as the
/// local store's does).
fn gate_of(n: usize, text: &str) -> GateRecord {
    let (verdict, rest) = text.split_once(": ").unwrap_or(("failed", text));
    let name = format!("gate {n}");
    GateRecord {
        expr: name.clone(),
        name,
        passed: verdict != "failed",
        message: if verdict == "skipped" {
            format!("skipped: {rest}")
        } else {
            rest.to_owned()
        },
    }
}

/// The detail of pipeline run `r`, with `children` (its nested runs; any
/// that is not a stage's is left out).
pub fn detail_of(r: &TrackedRun, children: &[TrackedRun]) -> RunDetail {
    let mut stages: Vec<StageRecord> = children.iter().filter_map(stage_of).collect();
    stages.sort_by_key(|s| (s.position, s.started_ms));
    let mut gates: Vec<(usize, GateRecord)> = r
        .tags
        .iter()
        .filter_map(|(k, v)| {
            let n: usize = k.strip_prefix("ferry.gate.")?.parse().ok()?;
            Some((n, gate_of(n, v)))
        })
        .collect();
    gates.sort_by_key(|(n, _)| *n);
    RunDetail {
        run: summary_of(r),
        env_fingerprint: tag(r, ENV_TAG).map(str::to_owned),
        stages,
        params: r
            .params
            .iter()
            .map(|(k, v)| (k.clone(), param_value(v)))
            .collect(),
        // The run's cost is its stages' (shown from them), not a result.
        metrics: r
            .metrics
            .iter()
            .filter(|m| m.key != COST_METRIC)
            .map(|m: &Metric| MetricRecord {
                key: m.key.clone(),
                value: m.value,
                stage: None,
                step: m.step,
                ts_ms: m.timestamp,
            })
            .collect(),
        gates: gates.into_iter().map(|(_, g)| g).collect(),
    }
}

/// Where the artifacts of run `r` are under the artifact root (the part
/// of its `mlflow-artifacts:/` URI after the scheme), if that is where.
pub fn artifact_dir(r: &TrackedRun) -> Option<&str> {
    r.info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:/")
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunInfo;

    fn run(id: &str, status: &str, tags: &[(&str, &str)], metrics: &[(&str, f64)]) -> TrackedRun {
        TrackedRun {
            info: RunInfo {
                run_id: id.into(),
                experiment_id: "1".parse().unwrap(),
                run_name: id.into(),
                user_id: String::new(),
                status: status.into(),
                start_time: 1_000,
                end_time: Some(3_500),
                artifact_uri: format!("mlflow-artifacts:/1/{id}/artifacts"),
                lifecycle_stage: "active".into(),
            },
            metrics: metrics
                .iter()
                .map(|(k, v)| Metric {
                    key: (*k).into(),
                    value: *v,
                    timestamp: 1,
                    step: 0,
                })
                .collect(),
            params: vec![("seed".into(), "1".into()), ("name".into(), "x y".into())],
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            inputs: vec![],
            outputs: vec![],
        }
    }

    #[test]
    fn a_remote_pipeline_run_reads_back_as_one() {
        let parent = run(
            "p",
            "FAILED",
            &[
                ("ferry.pipeline", "iris"),
                ("ferry.trigger", "ci"),
                ("ferry.status", "gate_failed"),
                ("ferry.message", "too low"),
                ("mlflow.source.git.commit", "abc"),
                ("ferry.git.dirty", "true"),
                ("ferry.gate.2", "skipped: no model m@production"),
                ("ferry.gate.1", "failed: metrics.a >= 0.9: 0.5 >= 0.9"),
            ],
            &[("accuracy", 0.5)],
        );
        assert!(is_pipeline_run(&parent));
        let train = run(
            "c2",
            "FAILED",
            &[
                ("mlflow.parentRunId", "p"),
                ("ferry.stage", "train"),
                ("ferry.stage.status", "failed"),
                ("ferry.stage.reason", "dep changed: exit 3"),
                ("ferry.stage.position", "1"),
                ("ferry.stage.exit_code", "3"),
            ],
            &[("ferry.wall_seconds", 2.5), ("ferry.max_rss_bytes", 1024.0)],
        );
        assert!(!is_pipeline_run(&train));
        let prep = run(
            "c1",
            "FINISHED",
            &[
                ("mlflow.parentRunId", "p"),
                ("ferry.stage", "prep"),
                ("ferry.stage.status", "restored"),
                ("ferry.stage.position", "0"),
            ],
            &[],
        );
        let other = run("c3", "FINISHED", &[("mlflow.parentRunId", "p")], &[]);
        let d = detail_of(&parent, &[train, other, prep]);
        assert_eq!(d.run.pipeline, "iris");
        assert_eq!(d.run.status, RunStatus::GateFailed);
        assert_eq!(d.run.trigger, "ci");
        assert_eq!(d.run.git_dirty, Some(true));
        assert_eq!(d.run.message.as_deref(), Some("too low"));
        let stages: Vec<_> = d
            .stages
            .iter()
            .map(|s| (s.stage.as_str(), s.status, s.exit_code, s.wall_ms))
            .collect();
        assert_eq!(
            stages,
            [
                ("prep", StageStatus::Restored, None, None),
                ("train", StageStatus::Failed, Some(3), Some(2500)),
            ]
        );
        assert_eq!(d.stages[1].max_rss_bytes, Some(1024));
        assert_eq!(d.params[0], ("seed".into(), serde_json::json!(1)));
        assert_eq!(d.params[1], ("name".into(), serde_json::json!("x y")));
        assert_eq!(d.gates.len(), 2);
        assert!(!d.gates[0].passed);
        assert_eq!(d.gates[0].message, "metrics.a >= 0.9: 0.5 >= 0.9");
        assert!(d.gates[1].passed);
        assert_eq!(d.gates[1].message, "skipped: no model m@production");
        assert_eq!(artifact_dir(&parent), Some("1/p/artifacts"));
    }

    #[test]
    fn without_ferry_status_the_mlflow_status_counts() {
        let r = run("p", "KILLED", &[("ferry.pipeline", "iris")], &[]);
        assert_eq!(summary_of(&r).status, RunStatus::Cancelled);
        let r = run("p", "RUNNING", &[("ferry.pipeline", "iris")], &[]);
        assert_eq!(summary_of(&r).status, RunStatus::Running);
        assert_eq!(summary_of(&r).trigger, "mlflow");
    }
}
