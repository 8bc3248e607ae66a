//! What a change does to the model (`ferry report`): a pipeline run
//! compared with its base (the base branch's latest run, or the run of a
//! registered version), as a [`Review`]: params changed, metrics with their
//! deltas, gates and their values, the data checks and drift, which stages
//! ran and why, and the cost when it is known. [`render`] writes it for a
//! terminal or a pull-request comment; `Serialize` is the `--json` shape.
//!
//! Invariants: a review depends only on the two runs it is given (the same
//! runs give the same bytes in every rendering); nothing a run holds (a
//! param, a reason, a gate's message) is written into a comment unescaped,
//! so a run cannot add markup, mention anyone or end the comment's marker.

pub mod render;

use ferry_records::{GateRecord, MetricRecord, RunDetail, RunStatus, StageStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// The prefix of the check stages' verdicts among a run's metrics
/// (`checks.<stage>.<figure>`, as `ferry run` records them).
const CHECKS: &str = "checks.";

/// The base a run is compared with, and how it was chosen.
#[derive(Debug, Clone, Copy)]
pub struct Base<'a> {
    pub run: &'a RunDetail,
    /// How it was chosen, for a reader: `the latest run on origin/main`,
    /// `iris@production (version 3)`.
    pub chosen: &'a str,
}

/// A run as the review names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunLine {
    pub run_id: String,
    pub status: RunStatus,
    pub git_commit: Option<String>,
    /// What the run said of itself (`registered iris version 4`).
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaseLine {
    #[serde(flatten)]
    pub run: RunLine,
    pub chosen: String,
}

/// A param whose value differs from the base's (`None`: not set there).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamChange {
    pub key: String,
    pub base: Option<String>,
    pub value: Option<String>,
}

/// A figure of this run beside the base's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub key: String,
    pub value: Option<f64>,
    pub base: Option<f64>,
    /// `value - base`, when both are known.
    pub delta: Option<f64>,
}

impl Figure {
    fn new(key: &str, value: Option<f64>, base: Option<f64>) -> Self {
        Figure {
            key: key.to_owned(),
            value,
            base,
            delta: value.zip(base).map(|(v, b)| v - b),
        }
    }

    /// The delta relative to the base, when the base is not zero.
    pub fn relative(&self) -> Option<f64> {
        self.delta
            .zip(self.base)
            .filter(|(_, b)| *b != 0.0)
            .map(|(d, b)| d / b.abs())
    }
}

/// A check stage's verdict (`check: data` or `check: drift`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckLine {
    pub stage: String,
    /// Whether the check passed (`None`: it did not say).
    pub passed: Option<bool>,
    pub base_passed: Option<bool>,
    /// Whether the data drifted as a whole (drift checks).
    pub drift: Option<bool>,
    /// Its other figures (`failed`, `drifted`, `drifted_share`).
    pub figures: Vec<Figure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateLine {
    pub name: String,
    pub expr: String,
    pub passed: bool,
    /// The values it compared (`metrics.accuracy >= 0.9: 0.83 >= 0.9`).
    pub message: String,
    /// How the same gate came out on the base (`None`: not there).
    pub base_passed: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageLine {
    pub stage: String,
    pub status: StageStatus,
    pub reason: Option<String>,
}

/// What the run cost beside the base, in US dollars.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    pub charged: f64,
    pub base: Option<f64>,
}

/// A run compared with its base.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub pipeline: String,
    pub run: RunLine,
    pub base: Option<BaseLine>,
    /// The params that differ from the base's, by key.
    pub params: Vec<ParamChange>,
    /// Every metric of either run but the checks' verdicts, by key.
    pub metrics: Vec<Figure>,
    pub checks: Vec<CheckLine>,
    pub gates: Vec<GateLine>,
    /// Every stage of the run, in the pipeline's order.
    pub stages: Vec<StageLine>,
    pub cost: Option<CostLine>,
}

impl Review {
    /// Compares `run` with `base` (`None`: there is nothing to compare
    /// with, and the review says what the run did alone).
    pub fn new(run: &RunDetail, base: Option<Base<'_>>) -> Self {
        let params = param_changes(run, base.map(|b| b.run));
        let (metrics, checks) = figures(run, base.map(|b| b.run));
        let base_gates: BTreeMap<&str, bool> = base
            .map(|b| {
                b.run
                    .gates
                    .iter()
                    .map(|g| (g.name.as_str(), g.passed))
                    .collect()
            })
            .unwrap_or_default();
        let gates = run
            .gates
            .iter()
            .map(|g: &GateRecord| GateLine {
                name: g.name.clone(),
                expr: g.expr.clone(),
                passed: g.passed,
                message: g.message.clone(),
                base_passed: base_gates.get(g.name.as_str()).copied(),
            })
            .collect();
        let mut stages: Vec<&ferry_records::StageRecord> = run.stages.iter().collect();
        stages.sort_by_key(|s| s.position);
        let stages = stages
            .into_iter()
            .map(|s| StageLine {
                stage: s.stage.clone(),
                status: s.status,
                reason: s.recorded_reason(),
            })
            .collect();
        Review {
            pipeline: run.run.pipeline.clone(),
            run: run_line(run),
            base: base.map(|b| BaseLine {
                run: run_line(b.run),
                chosen: b.chosen.to_owned(),
            }),
            params,
            metrics,
            checks,
            gates,
            stages,
            cost: charged(run).map(|value| CostLine {
                charged: value,
                base: base.and_then(|b| charged(b.run)),
            }),
        }
    }

    /// Whether the run holds the change back: it failed, or a gate or
    /// check did.
    pub fn holds_back(&self) -> bool {
        self.run.status != RunStatus::Succeeded
            || self.gates.iter().any(|g| !g.passed)
            || self.checks.iter().any(|c| c.passed == Some(false))
    }
}

fn run_line(r: &RunDetail) -> RunLine {
    RunLine {
        run_id: r.run.run_id.clone(),
        status: r.run.status,
        git_commit: r.run.git_commit.clone(),
        message: r.run.message.clone(),
    }
}

/// A param's value as people write it: a string as itself, anything else
/// as JSON.
fn param_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn param_changes(run: &RunDetail, base: Option<&RunDetail>) -> Vec<ParamChange> {
    let Some(base) = base else {
        return Vec::new();
    };
    let now: BTreeMap<&str, String> = run
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), param_text(v)))
        .collect();
    let then: BTreeMap<&str, String> = base
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), param_text(v)))
        .collect();
    let mut keys: Vec<&str> = now.keys().chain(then.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter(|k| now.get(k) != then.get(k))
        .map(|k| ParamChange {
            key: k.to_owned(),
            base: then.get(k).cloned(),
            value: now.get(k).cloned(),
        })
        .collect()
}

/// Each metric's last value: the highest step, the latest of that step.
fn last_values(metrics: &[MetricRecord]) -> BTreeMap<&str, f64> {
    let mut last: BTreeMap<&str, (i64, i64, f64)> = BTreeMap::new();
    for m in metrics {
        let e = last
            .entry(m.key.as_str())
            .or_insert((m.step, m.ts_ms, m.value));
        if (m.step, m.ts_ms) >= (e.0, e.1) {
            *e = (m.step, m.ts_ms, m.value);
        }
    }
    last.into_iter().map(|(k, (_, _, v))| (k, v)).collect()
}

/// The run's metrics beside the base's, and its check stages' verdicts.
fn figures(run: &RunDetail, base: Option<&RunDetail>) -> (Vec<Figure>, Vec<CheckLine>) {
    let now = last_values(&run.metrics);
    let then = base.map(|b| last_values(&b.metrics)).unwrap_or_default();
    let mut keys: Vec<&str> = now.keys().chain(then.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let own_checks: std::collections::BTreeSet<&str> = now
        .keys()
        .filter_map(|k| check_key(k))
        .map(|(s, _)| s)
        .collect();
    let mut metrics = Vec::new();
    let mut checks: BTreeMap<&str, CheckLine> = BTreeMap::new();
    for key in keys {
        let value = now.get(key).copied();
        let was = then.get(key).copied();
        let Some((stage, figure)) = check_key(key) else {
            metrics.push(Figure::new(key, value, was));
            continue;
        };
        // Only the run's own checks: one the base had and this run has not
        // is not this run's to report.
        if !own_checks.contains(stage) {
            continue;
        }
        let line = checks.entry(stage).or_insert_with(|| CheckLine {
            stage: stage.to_owned(),
            passed: None,
            base_passed: None,
            drift: None,
            figures: Vec::new(),
        });
        match figure {
            "passed" => {
                line.passed = value.map(|v| v != 0.0);
                line.base_passed = was.map(|v| v != 0.0);
            }
            "dataset_drift" => line.drift = value.map(|v| v != 0.0),
            _ => line.figures.push(Figure::new(figure, value, was)),
        }
    }
    (metrics, checks.into_values().collect())
}

/// A check stage's verdict among the metrics: its stage and figure.
fn check_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(CHECKS)?.rsplit_once('.')
}

/// What the run's stages were charged, when any was priced.
fn charged(r: &RunDetail) -> Option<f64> {
    let costs: Vec<f64> = r
        .stages
        .iter()
        .filter_map(|s| s.cost.as_ref().map(|c| c.charged))
        .collect();
    (!costs.is_empty()).then(|| costs.iter().sum())
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Two Iris runs, the base and a change, that each test bends its way.

    use ferry_records::{
        GateRecord, MetricRecord, RunDetail, RunStatus, RunSummary, StageRecord, StageStatus,
    };

    fn stage(name: &str, position: i64, status: StageStatus, reason: &str) -> StageRecord {
        StageRecord {
            position,
            ..StageRecord::new(name, status, reason.to_owned())
        }
    }

    fn metric(key: &str, value: f64) -> MetricRecord {
        MetricRecord {
            key: key.to_owned(),
            value,
            stage: None,
            step: 0,
            ts_ms: 1_700_000_000_000,
        }
    }

    pub fn run(id: &str, commit: &str) -> RunDetail {
        RunDetail {
            run: RunSummary {
                run_id: id.to_owned(),
                pipeline: "iris".into(),
                status: RunStatus::Succeeded,
                trigger: "ci".into(),
                started_ms: 1_700_000_000_000,
                ended_ms: Some(1_700_000_060_000),
                git_commit: Some(commit.to_owned()),
                git_dirty: Some(false),
                message: None,
                noop: false,
                author: None,
            },
            env_fingerprint: Some("e".repeat(64)),
            stages: vec![
                stage("prepare", 0, StageStatus::UpToDate, "up to date"),
                stage("validate", 1, StageStatus::UpToDate, "up to date"),
                stage("drift", 2, StageStatus::UpToDate, "up to date"),
                stage("train", 3, StageStatus::UpToDate, "up to date"),
            ],
            params: vec![
                ("train.C".into(), serde_json::json!(1.0)),
                ("train.max_iter".into(), serde_json::json!(200)),
                ("prepare.split".into(), serde_json::json!("stratified")),
            ],
            metrics: vec![
                metric("accuracy", 0.9667),
                metric("f1_macro", 0.9664),
                metric("checks.validate.passed", 1.0),
                metric("checks.validate.failed", 0.0),
                metric("checks.drift.passed", 1.0),
                metric("checks.drift.drifted", 0.0),
                metric("checks.drift.drifted_share", 0.0),
                metric("checks.drift.dataset_drift", 0.0),
            ],
            gates: vec![GateRecord {
                name: "accuracy".into(),
                expr: "metrics.accuracy >= 0.9".into(),
                passed: true,
                message: "metrics.accuracy >= 0.9: 0.9667 >= 0.9".into(),
            }],
        }
    }

    pub fn set_metric(r: &mut RunDetail, key: &str, value: f64) {
        r.metrics.retain(|m| m.key != key);
        r.metrics.push(metric(key, value));
    }

    pub fn set_stage(r: &mut RunDetail, name: &str, status: StageStatus, reason: &str) {
        for s in &mut r.stages {
            if s.stage == name {
                s.status = status;
                s.reason = Some(reason.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn only_changed_params_are_reported_with_both_values() {
        let base = run("b", "1111111");
        let mut head = run("h", "2222222");
        head.params[0].1 = serde_json::json!(0.1);
        head.params.remove(1);
        head.params
            .push(("train.penalty".into(), serde_json::json!("l2")));
        let r = Review::new(
            &head,
            Some(Base {
                run: &base,
                chosen: "main",
            }),
        );
        let keys: Vec<(&str, Option<&str>, Option<&str>)> = r
            .params
            .iter()
            .map(|p| (p.key.as_str(), p.base.as_deref(), p.value.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("train.C", Some("1.0"), Some("0.1")),
                ("train.max_iter", Some("200"), None),
                ("train.penalty", None, Some("l2")),
            ]
        );
    }

    #[test]
    fn a_metric_is_its_last_step_and_checks_are_apart() {
        let base = run("b", "1111111");
        let mut head = run("h", "2222222");
        head.metrics.push(MetricRecord {
            key: "accuracy".into(),
            value: 0.5,
            stage: None,
            step: 3,
            ts_ms: 1,
        });
        let r = Review::new(
            &head,
            Some(Base {
                run: &base,
                chosen: "main",
            }),
        );
        let acc = r.metrics.iter().find(|m| m.key == "accuracy").unwrap();
        assert_eq!(acc.value, Some(0.5));
        assert!((acc.delta.unwrap() - (0.5 - 0.9667)).abs() < 1e-12);
        assert!(r.metrics.iter().all(|m| !m.key.starts_with("checks.")));
        let stages: Vec<&str> = r.checks.iter().map(|c| c.stage.as_str()).collect();
        assert_eq!(stages, ["drift", "validate"]);
        assert!(!r.holds_back());
    }

    #[test]
    fn a_failed_gate_or_check_holds_the_change_back() {
        let mut head = run("h", "2222222");
        set_metric(&mut head, "checks.validate.passed", 0.0);
        assert!(Review::new(&head, None).holds_back());
        let mut head = run("h", "2222222");
        head.gates[0].passed = false;
        assert!(Review::new(&head, None).holds_back());
    }

    #[test]
    fn without_a_base_nothing_is_a_change() {
        let r = Review::new(&run("h", "2222222"), None);
        assert!(r.params.is_empty());
        assert!(
            r.metrics
                .iter()
                .all(|m| m.base.is_none() && m.delta.is_none())
        );
    }
}
