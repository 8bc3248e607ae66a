//! The scheduler of a run: walks the stages in topological order and, as
//! soon as a stage's upstream is done, decides it through the engine, then
//! leaves it up to date, restores it, or starts its command through the
//! [`Executor`] (at most `jobs` at once, retrying as the stage allows). A
//! failed stage holds back only the stages that need it. Every outcome is
//! settled through one path (`settle.rs`).

use crate::confine::Confine;
use crate::engine::{Engine, Origin, Verdict};
use crate::executor::{Executor, StageCommand};
use crate::orphans::PidFile;
use crate::record::{Recorder, Started};
use crate::report::{Action, Event, Reporter};
use crate::settle::Reached;
use crate::tracking::Tracking;
use crate::{Project, Result};
use ferry_cache::RunCacheEntry;
use ferry_core::now_ms;
use ferry_executor::{CancelToken, Exit, Outcome};
use ferry_metadata::{StageRecord, StageStatus};
use ferry_pipeline::StageInputs;
use ferry_spec::Stage;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// What a run's stages are scheduled with: made by the run's setup.
pub(crate) struct RunContext<'s> {
    pub project: &'s Project,
    pub recorder: &'s dyn Recorder,
    pub started: &'s Started,
    pub reporter: Arc<dyn Reporter>,
    pub cancel: &'s CancelToken,
    pub executor: Arc<dyn Executor>,
    /// Hears of the process groups stages start.
    pub pids: Arc<PidFile>,
    /// Variables every stage gets: the Python environment's, `FERRY_RUN_ID`,
    /// `FERRY_PROJECT_ROOT`.
    pub env_vars: Vec<(String, String)>,
    pub force: bool,
    /// The most stages running at once (at least 1).
    pub jobs: usize,
}

/// Where a stage is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum St {
    Pending,
    Running,
    /// Done, and its dependents may go on.
    Ok,
    /// Failed, skipped, cancelled, or a check that holds its dependents back.
    Bad,
}

/// A stage's command (or check) that ended, from its thread.
pub(crate) struct Worker {
    pub stage: usize,
    pub outcome: Outcome,
    pub attempts: u32,
    pub started_ms: i64,
}

/// What the scheduler leaves: an outcome per stage, in the stages' order,
/// and the metrics of the stages that are done.
pub(crate) struct Scheduled {
    pub outcomes: Vec<StageRecord>,
    pub metrics: BTreeMap<String, serde_json::Value>,
}

pub(crate) struct Scheduler<'s, 'p> {
    pub(crate) cx: &'s RunContext<'s>,
    pub(crate) engine: &'s mut Engine<'p>,
    pub(crate) confine: Confine,
    tracking: Tracking<'s>,
    pub(crate) stages: Vec<&'p Stage>,
    index: HashMap<&'p str, usize>,
    pub(crate) state: Vec<St>,
    pub(crate) outcomes: Vec<Option<StageRecord>>,
    /// The inputs and verdict of each running stage.
    pub(crate) launched: Vec<Option<(StageInputs, Verdict)>>,
    pub(crate) metrics: BTreeMap<String, serde_json::Value>,
    pub(crate) running: usize,
    tx: mpsc::Sender<Worker>,
    rx: mpsc::Receiver<Worker>,
}

/// Whether a pending stage can be decided.
enum Readiness {
    /// Its upstream is not done yet.
    Wait,
    Go,
    /// An upstream stage failed (or holds it back): skipped, saying why.
    Skip(String),
}

impl<'s, 'p> Scheduler<'s, 'p> {
    pub fn new(
        cx: &'s RunContext<'s>,
        engine: &'s mut Engine<'p>,
        confine: Confine,
        tracking: Tracking<'s>,
        stages: Vec<&'p Stage>,
    ) -> Self {
        let n = stages.len();
        let index = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let (tx, rx) = mpsc::channel();
        Self {
            cx,
            engine,
            confine,
            tracking,
            stages,
            index,
            state: vec![St::Pending; n],
            outcomes: vec![None; n],
            launched: (0..n).map(|_| None).collect(),
            metrics: BTreeMap::new(),
            running: 0,
            tx,
            rx,
        }
    }

    /// Brings every stage to an outcome: done, failed, skipped or cancelled
    /// (those never started when the run is cancelled).
    pub fn run(mut self) -> Result<Scheduled> {
        loop {
            self.start_ready()?;
            if self.running == 0 {
                break;
            }
            match self.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(w) => self.finished(w)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // Every stage is done: the stages' MLflow endpoint stops here.
        self.tracking.stop();
        for i in 0..self.stages.len() {
            if self.outcomes[i].is_none() {
                let o = StageRecord::new(
                    self.stages[i].name.as_str(),
                    StageStatus::Cancelled,
                    "not started".into(),
                );
                self.settle(i, o, Reached::NotStarted)?;
            }
        }
        Ok(Scheduled {
            outcomes: self.outcomes.into_iter().flatten().collect(),
            metrics: self.metrics,
        })
    }

    /// Starts (or settles) every stage whose upstream is done, while a slot
    /// is free, until nothing more can go.
    fn start_ready(&mut self) -> Result<()> {
        let mut progressed = true;
        while progressed && !self.cx.cancel.is_cancelled() {
            progressed = false;
            for i in 0..self.stages.len() {
                if self.state[i] != St::Pending || self.running >= self.cx.jobs {
                    continue;
                }
                match self.readiness(i) {
                    Readiness::Wait => {}
                    Readiness::Skip(why) => {
                        let o = StageRecord::new(
                            self.stages[i].name.as_str(),
                            StageStatus::Skipped,
                            why,
                        );
                        self.settle(i, o, Reached::Undecided)?;
                        progressed = true;
                    }
                    Readiness::Go => {
                        progressed = true;
                        self.start(i)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether stage `i`'s upstream lets it be decided now.
    fn readiness(&self, i: usize) -> Readiness {
        let ups: Vec<usize> = self.stages[i]
            .upstream
            .iter()
            .filter_map(|u| self.index.get(u.as_str()).copied())
            .collect();
        if let Some(&u) = ups.iter().find(|&&u| self.state[u] == St::Bad) {
            // A check that ran and found problems, or a stage that failed.
            let found = self.stages[u].check.is_some()
                && self.outcomes[u].as_ref().is_some_and(|o| o.error.is_none());
            return Readiness::Skip(if found {
                format!("check `{}` failed", self.stages[u].name)
            } else {
                "an upstream stage failed".into()
            });
        }
        if ups.iter().any(|&u| self.state[u] != St::Ok) {
            return Readiness::Wait;
        }
        Readiness::Go
    }

    /// Decides stage `i` and acts on the verdict.
    fn start(&mut self, i: usize) -> Result<()> {
        let stage = self.stages[i];
        let failed = |reason: String, error: String| StageRecord {
            error: Some(error),
            ..StageRecord::new(stage.name.as_str(), StageStatus::Failed, reason)
        };
        let (inputs, verdict) = match self.decide(stage) {
            Ok(Ok(decided)) => decided,
            Ok(Err(missing)) => {
                let o = failed(
                    format!("dep {missing} missing"),
                    format!("dependency `{missing}` does not exist"),
                );
                return self.settle(i, o, Reached::Undecided);
            }
            Err(e) => {
                let o = failed("its deps or outs cannot be used".into(), e.to_string());
                return self.settle(i, o, Reached::Undecided);
            }
        };
        if let Some(why) = &verdict.shared_error {
            self.cx.reporter.event(Event::Shared {
                stage: stage.name.as_str(),
                outcome: Err(why),
            });
        }
        match verdict.action {
            Action::UpToDate => {
                if let Some(l) = self.engine.locked(stage.name.as_str()) {
                    self.metrics.extend(l.metrics.clone());
                }
                let o = StageRecord::new(
                    stage.name.as_str(),
                    StageStatus::UpToDate,
                    "up to date".into(),
                );
                self.settle(i, o, Reached::Decided(verdict.fingerprint))
            }
            Action::Restore => self.restore(i, inputs, verdict),
            Action::Run => {
                self.launch(i, verdict.reason(), verdict.fingerprint);
                self.launched[i] = Some((inputs, verdict));
                self.state[i] = St::Running;
                self.running += 1;
                Ok(())
            }
        }
    }

    /// The stage's inputs and verdict; `Ok(Err(path))` names a missing dep.
    /// A dep that cannot be hashed (a FIFO, say) is an error, as is a path
    /// that leads outside the project through a link an upstream stage made
    /// since the run began: both fail the stage.
    fn decide(
        &mut self,
        stage: &Stage,
    ) -> Result<std::result::Result<(StageInputs, Verdict), String>> {
        self.confine.check_stage(stage)?;
        let inputs = match self.engine.inputs(stage, &HashMap::new())? {
            Ok(inputs) => inputs,
            Err(missing) => return Ok(Err(missing)),
        };
        let verdict = self.engine.decide(stage, &inputs, self.cx.force)?;
        Ok(Ok((inputs, verdict)))
    }

    /// Copies the outputs the run cache has for these inputs back, and
    /// commits them as the stage's result.
    fn restore(&mut self, i: usize, inputs: StageInputs, verdict: Verdict) -> Result<()> {
        let stage = self.stages[i];
        let entry = verdict.cached.clone().unwrap_or_else(|| RunCacheEntry {
            stage: stage.name.to_string(),
            outs: vec![],
            metrics: BTreeMap::new(),
            created_ms: 0,
        });
        let started = Instant::now();
        let restored = self.engine.restore(&entry)?;
        let reason = verdict.reason();
        let fingerprint = verdict.fingerprint;
        if let Err(e) = restored {
            let o = StageRecord {
                error: Some(e),
                ..StageRecord::new(stage.name.as_str(), StageStatus::Failed, reason)
            };
            return self.settle(i, o, Reached::Decided(fingerprint));
        }
        self.metrics.extend(entry.metrics.clone());
        self.engine.commit(
            stage,
            &inputs,
            fingerprint,
            &entry.outs,
            entry.metrics,
            Origin::Restored,
        )?;
        let mut o = StageRecord::new(stage.name.as_str(), StageStatus::Restored, reason);
        o.wall_ms = Some(crate::settle::ms(started.elapsed()));
        self.settle(i, o, Reached::Decided(fingerprint))
    }

    /// Starts stage `i`'s command (or built-in check) in a thread of its
    /// own, which reports back through the channel.
    fn launch(&mut self, i: usize, reason: String, fingerprint: ferry_core::Digest) {
        let stage = self.stages[i];
        let project = self.cx.project;
        // Stale outputs must not pass for new ones.
        for out in &stage.outs {
            let p = project.root.join(out);
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
            if let Some(parent) = p.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
        }
        let mut env = self.cx.env_vars.clone();
        env.extend_from_slice(self.tracking.vars(self.cx.reporter.as_ref()));
        self.cx.reporter.event(Event::StageStarted {
            stage: stage.name.as_str(),
            reason: &reason,
            attempt: 1,
        });
        env.push(("FERRY_STAGE".into(), stage.name.to_string()));
        let watch: Arc<dyn ferry_executor::GroupWatch> = self.cx.pids.clone();
        // A command run elsewhere takes its files along, by digest.
        let task = if stage.check.is_none() && self.cx.executor.wants_task() {
            let run_id = self.cx.started.run_id.clone();
            match crate::stage_task::make_task(project, self.engine, stage, fingerprint, run_id) {
                Ok(t) => Some(t),
                Err(e) => {
                    let o = StageRecord {
                        error: Some(e.to_string()),
                        ..StageRecord::new(stage.name.as_str(), StageStatus::Failed, reason)
                    };
                    let _ = self.tx.send(Worker {
                        stage: i,
                        outcome: Outcome::of(
                            Exit::Failed(o.error.clone().unwrap_or_default()),
                            Duration::ZERO,
                        ),
                        attempts: 1,
                        started_ms: now_ms(),
                    });
                    return;
                }
            }
        } else {
            None
        };
        let cmd = StageCommand {
            task,
            resources: stage.resources.clone(),
            placement: stage.placement.clone(),
            watch: Some(watch),
            stage: stage.name.to_string(),
            cmd: stage.cmd.clone(),
            cwd: project.root.clone(),
            env,
            timeout: crate::settle::time_limit(&project.pipeline.cost, stage).0,
            log_path: self.log_path(stage),
        };
        let (tx, reporter) = (self.tx.clone(), self.cx.reporter.clone());
        let started_ms = now_ms();
        if let Some(check) = stage.check.clone() {
            // Built-in checks run here, in a thread of their own.
            let root = project.root.clone();
            std::thread::spawn(move || {
                let outcome =
                    crate::checks::run(&root, &cmd.stage, &check, &cmd.log_path, reporter.as_ref());
                let _ = tx.send(Worker {
                    stage: i,
                    outcome,
                    attempts: 1,
                    started_ms,
                });
            });
            return;
        }
        let (retries, executor, cancel) = (
            stage.retries,
            self.cx.executor.clone(),
            self.cx.cancel.clone(),
        );
        std::thread::spawn(move || {
            let (outcome, attempts) = attempt(executor.as_ref(), &cmd, retries, &reporter, &cancel);
            let _ = tx.send(Worker {
                stage: i,
                outcome,
                attempts,
                started_ms,
            });
        });
    }

    /// Where a stage's log goes in this run.
    pub(crate) fn log_path(&self, stage: &Stage) -> PathBuf {
        self.cx
            .project
            .layout()
            .stage_log(&self.cx.started.run_id, stage.name.as_str())
    }
}

/// Runs `cmd` until it succeeds, is cancelled, or has had `retries` more
/// attempts; each retry is announced. The last attempt's outcome and the
/// number of attempts.
fn attempt(
    executor: &dyn Executor,
    cmd: &StageCommand,
    retries: u32,
    reporter: &Arc<dyn Reporter>,
    cancel: &CancelToken,
) -> (Outcome, u32) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let o = executor.execute(cmd, reporter.clone(), cancel);
        if o.exit.success() || attempts > retries || matches!(o.exit, Exit::Cancelled) {
            return (o, attempts);
        }
        reporter.event(Event::StageStarted {
            stage: &cmd.stage,
            reason: &format!("retry after it {}", o.exit.describe()),
            attempt: attempts + 1,
        });
    }
}
