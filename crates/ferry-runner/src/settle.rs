//! The one path every stage outcome takes ([`Scheduler::settle`]): record
//! it, report it, keep it, set the stage's state; and what a finished
//! command leaves (its outs and metrics committed, or why it failed).

use crate::engine::{Origin, Verdict};
use crate::report::Event;
use crate::scheduler::{Scheduler, St, Worker};
use crate::{Project, Result};
use ferry_core::{Digest, now_ms};
use ferry_executor::Exit;
use ferry_metadata::{StageRecord, StageStatus};
use ferry_pipeline::StageInputs;
use ferry_spec::Stage;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a stage may run: its `timeout`, or less when its `max_cost`
/// runs out first at what its requests cost an hour (then `true`).
pub(crate) fn time_limit(cost: &ferry_spec::CostConfig, stage: &Stage) -> (Option<Duration>, bool) {
    let by_cost = match (&stage.resources, stage.max_cost) {
        (Some(r), Some(max)) => ferry_cost::time_for(&cost.prices, &cost.machine, r, max)
            .ok()
            .flatten(),
        _ => None,
    };
    match (stage.timeout, by_cost) {
        (Some(t), Some(c)) if c < t => (Some(c), true),
        (None, Some(c)) => (Some(c), true),
        (t, _) => (t, false),
    }
}

/// What a settled stage cost: nothing when it ran nothing (up to date,
/// restored), its requests or its use when its command or check ran,
/// `None` when it never got that far (skipped, not started).
fn cost_of(
    cost: &ferry_spec::CostConfig,
    stage: &Stage,
    o: &StageRecord,
) -> Option<ferry_cost::StageCost> {
    let requested = stage.resources.as_ref();
    let machine = requested
        .and_then(|r| r.machine.as_deref())
        .unwrap_or(&cost.machine);
    match o.status {
        StageStatus::UpToDate | StageStatus::Restored => {
            Some(ferry_cost::StageCost::restored(machine))
        }
        _ => {
            let used = ferry_cost::Used {
                wall_ms: o.wall_ms?,
                cpu_ms: o.user_cpu_ms.unwrap_or(0) + o.sys_cpu_ms.unwrap_or(0),
                max_rss_bytes: o.max_rss_bytes.unwrap_or(0),
            };
            // The spec's names were checked against the prices at load.
            ferry_cost::stage_cost(&cost.prices, &cost.machine, requested, &used).ok()
        }
    }
}

/// How far a stage got before its outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reached {
    /// Not decided: skipped, or its deps or outs could not be used.
    Undecided,
    /// Decided under this fingerprint: up to date, restored (or its restore
    /// failed).
    Decided(Digest),
    /// Its command or check ran (started at this time, ms).
    Ran(Digest, i64),
    /// Never started (the run was cancelled first): recorded, not reported.
    NotStarted,
}

pub(crate) fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl Scheduler<'_, '_> {
    /// Settles stage `i` with `o`: records it (the stage's row and nested
    /// MLflow run), reports it, keeps it for the run's report, and sets the
    /// stage's state, which decides whether its dependents go on.
    pub(crate) fn settle(&mut self, i: usize, mut o: StageRecord, reached: Reached) -> Result<()> {
        (o.fingerprint, o.started_ms) = match reached {
            Reached::Undecided | Reached::NotStarted => (None, None),
            Reached::Decided(fp) => (Some(fp.to_hex()), None),
            Reached::Ran(fp, at) => (Some(fp.to_hex()), Some(at)),
        };
        o.position = i as i64;
        o.ended_ms = Some(now_ms());
        o.cost = cost_of(&self.cx.project.pipeline.cost, self.stages[i], &o);
        self.cx.recorder.stage(self.cx.started, &o)?;
        if !matches!(reached, Reached::NotStarted) {
            self.cx.reporter.event(Event::StageFinished(&o));
        }
        let done = matches!(
            o.status,
            StageStatus::UpToDate | StageStatus::Restored | StageStatus::Ran
        );
        self.state[i] = if done && !blocks(self.cx.project, self.stages[i]) {
            St::Ok
        } else {
            St::Bad
        };
        self.outcomes[i] = Some(o);
        Ok(())
    }

    /// Settles a stage whose command (or check) ended.
    pub(crate) fn finished(&mut self, w: Worker) -> Result<()> {
        self.running -= 1;
        let i = w.stage;
        let stage = self.stages[i];
        let Some((inputs, verdict)) = self.launched[i].take() else {
            return Ok(());
        };
        let mut o = StageRecord {
            wall_ms: Some(ms(w.outcome.wall)),
            user_cpu_ms: Some(ms(w.outcome.user_cpu)),
            sys_cpu_ms: Some(ms(w.outcome.sys_cpu)),
            max_rss_bytes: Some(w.outcome.max_rss_bytes as i64),
            exit_code: w.outcome.exit.code().map(i64::from),
            attempts: i64::from(w.attempts),
            log: Some(self.log_path(stage).display().to_string()),
            ..StageRecord::new(stage.name.as_str(), StageStatus::Ran, verdict.reason())
        };
        if let Err((status, error)) =
            self.keep_results(stage, &w.outcome.exit, &inputs, &verdict)?
        {
            o.status = status;
            o.error = Some(error);
        }
        self.settle(i, o, Reached::Ran(verdict.fingerprint, w.started_ms))
    }

    /// Commits what a command that exited left: its outs (inside the
    /// project, the stage may have made links; regular files or folders;
    /// every declared one present) cached, its metrics read. `Ok(Err(..))`:
    /// the stage did not succeed, with its status and why.
    fn keep_results(
        &mut self,
        stage: &Stage,
        exit: &Exit,
        inputs: &StageInputs,
        verdict: &Verdict,
    ) -> Result<std::result::Result<(), (StageStatus, String)>> {
        let failed = |why: String| Ok(Err((StageStatus::Failed, why)));
        match exit {
            Exit::Cancelled => return Ok(Err((StageStatus::Cancelled, "cancelled".into()))),
            Exit::TimedOut if time_limit(&self.cx.project.pipeline.cost, stage).1 => {
                return failed(format!(
                    "the command was stopped: it reached its max_cost of ${} (what it asked for costs ${:.4} an hour)",
                    stage.max_cost.unwrap_or_default(),
                    stage
                        .resources
                        .as_ref()
                        .and_then(|r| {
                            let c = &self.cx.project.pipeline.cost;
                            ferry_cost::hourly_rate(&c.prices, &c.machine, r).ok()
                        })
                        .unwrap_or_default()
                ));
            }
            e if !e.success() => return failed(format!("the command {}", e.describe())),
            _ => {}
        }
        if let Err(e) = self.confine.check_outs(stage) {
            return failed(e.to_string());
        }
        let outs = match self.engine.cache_outs(stage)? {
            Ok(outs) => outs,
            Err(why) => return failed(why),
        };
        let metrics = match read_metrics(self.cx.project, stage) {
            Ok(m) => m,
            Err(why) => return failed(why),
        };
        self.metrics.extend(metrics.clone());
        self.engine.commit(
            stage,
            inputs,
            verdict.fingerprint,
            &outs,
            metrics,
            Origin::Ran,
        )?;
        if let Some(shared) = self.engine.share(&verdict.fingerprint) {
            let outcome = match &shared {
                Ok(remote) => Ok(remote.as_str()),
                Err(why) => Err(why.as_str()),
            };
            self.cx.reporter.event(Event::Shared {
                stage: stage.name.as_str(),
                outcome,
            });
        }
        Ok(Ok(()))
    }
}

/// A check stage that found problems (and is not warn_only) holds back the
/// stages that read what it checked; the run then ends on its gate.
fn blocks(project: &Project, stage: &Stage) -> bool {
    let Some(c) = stage.check.as_ref().filter(|c| !c.warn_only) else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(project.root.join(&c.report)) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["passed"] == false || v["dataset_drift"] == true
}

fn flatten_metrics(
    prefix: &str,
    v: &serde_json::Value,
    out: &mut BTreeMap<String, serde_json::Value>,
) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_metrics(&key, v, out);
            }
        }
        serde_json::Value::Array(_) | serde_json::Value::Null => {}
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// Reads a stage's metrics file into flat `key -> value` pairs.
fn read_metrics(
    project: &Project,
    stage: &Stage,
) -> std::result::Result<BTreeMap<String, serde_json::Value>, String> {
    let Some(path) = &stage.metrics else {
        return Ok(BTreeMap::new());
    };
    let text = std::fs::read_to_string(project.root.join(path))
        .map_err(|e| format!("cannot read metrics file `{path}`: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("metrics file `{path}` is not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err(format!("metrics file `{path}` must hold a JSON object"));
    }
    let mut out = BTreeMap::new();
    flatten_metrics("", &v, &mut out);
    Ok(out)
}
