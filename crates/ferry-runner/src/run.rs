//! `status`, `run` and `gc`. A run is its setup (the run lock, what a dead
//! run left, the environment, the recorder, the pid file, the stages'
//! MLflow endpoint), the [`Scheduler`] over its stages, then its results,
//! gates and registration.

use crate::confine::Confine;
use crate::engine::{Engine, record_to_locked};
use crate::executor::{Executor, LocalProcesses};
use crate::gates::GateCtx;
use crate::orphans::{self, PidFile};
use crate::record::{Attachment, Local, Recorder, Remote, RunStart, Started};
use crate::report::*;
use crate::scheduler::{RunContext, Scheduled, Scheduler};
use crate::tracking::Tracking;
use crate::{Error, Project, Result};
use ferry_cache::{GcStats, OutRecord};
use ferry_core::{Digest, StageName, now_ms};
use ferry_env::{EnvRequest, Envs, PreparedEnv};
use ferry_executor::CancelToken;
use ferry_fs::FileLock;
use ferry_metadata::*;
use ferry_pipeline::LockedPath;
use ferry_spec::Stage;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stages to bring up to date (with what they need); empty means all.
    pub targets: Vec<String>,
    /// Only the targets, not the stages they need: their deps must be there.
    pub single: bool,
    pub force: bool,
    pub dry_run: bool,
    pub jobs: usize,
    /// What started the run: `cli`, `ci`, …
    pub trigger: String,
    /// Record to this `ferry server` (its URL) instead of the local store.
    pub server: Option<String>,
    /// A remote's run cache: stages the local cache cannot restore are
    /// looked up there before they run.
    pub shared: Option<std::sync::Arc<dyn crate::SharedCache>>,
    /// Send what stages that ran produced to `shared`.
    pub push: bool,
    /// Run even over the pipeline's budgets, for this reason (audited).
    pub over_budget: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            targets: vec![],
            single: false,
            force: false,
            dry_run: false,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            trigger: "cli".into(),
            server: None,
            shared: None,
            push: false,
            over_budget: None,
        }
    }
}

pub(crate) fn targets(project: &Project, names: &[String]) -> Result<Vec<StageName>> {
    names
        .iter()
        .map(|n| {
            project
                .pipeline
                .stage(n)
                .map(|s| s.name.clone())
                .ok_or_else(|| Error::UnknownStage {
                    name: n.clone(),
                    known: project
                        .pipeline
                        .stages
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

fn env_request(project: &Project, engine: &mut Engine<'_>) -> Result<Option<EnvRequest>> {
    let Some(env) = project.pipeline.env.clone() else {
        return Ok(None);
    };
    let Some(digest) = engine.requirements_digest()? else {
        return Err(Error::Io {
            action: "read",
            path: project.root.join(&env.requirements),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    };
    Ok(Some(EnvRequest {
        requirements: env.requirements,
        requirements_digest: digest,
        interpreter: env.python,
    }))
}

/// What every stage would do now, and why. Reads files; runs nothing.
pub fn status(project: &Project, stage_names: &[String]) -> Result<StatusReport> {
    let wanted = targets(project, stage_names)?;
    let confine = Confine::new(project);
    for stage in project.pipeline.closure(&wanted) {
        confine.check_stage(stage)?;
    }
    let mut engine = Engine::open(project)?;
    let mut env = None;
    if let Some(req) = env_request(project, &mut engine)? {
        env = Envs::new(&project.layout().envs()).lookup(&req)?;
        engine.set_env(env.as_ref().map(|e: &PreparedEnv| e.fingerprint));
    }
    let out = predict(&mut engine, &project.pipeline.closure(&wanted))?;
    let mut data = Vec::new();
    for p in crate::pointers::all(project)? {
        let state = match engine.digest_path(&p.path)? {
            Some(d) if d.digest() == p.digest => continue,
            Some(_) => "changed",
            None => "missing",
        };
        data.push(crate::report::DataStatus {
            path: p.path,
            state,
        });
    }
    engine.save_index();
    Ok(StatusReport {
        pipeline: project.pipeline.name.clone(),
        stages: out,
        env: env.map(|e| e.fingerprint.to_hex()),
        data,
    })
}

/// What each of `stages` (in order) would do now, and why: a stage whose
/// upstream will run will run; the others are decided on their inputs as
/// they are, or as a restore upstream would leave them.
pub(crate) fn predict(
    engine: &mut Engine<'_>,
    stages: &[&Stage],
) -> Result<Vec<StageStatusReport>> {
    let mut predicted: HashMap<String, LockedPath> = HashMap::new();
    let mut actions: HashMap<String, Action> = HashMap::new();
    let mut out = Vec::new();
    for stage in stages.iter().copied() {
        let running_up: Vec<String> = stage
            .upstream
            .iter()
            .filter(|u| actions.get(u.as_str()) == Some(&Action::Run))
            .map(ToString::to_string)
            .collect();
        let report = if !running_up.is_empty() {
            StageStatusReport {
                stage: stage.name.to_string(),
                action: Action::Run,
                reasons: running_up
                    .iter()
                    .map(|u| format!("upstream stage {u} will run"))
                    .collect(),
            }
        } else {
            match engine.inputs(stage, &predicted)? {
                Err(missing) => StageStatusReport {
                    stage: stage.name.to_string(),
                    action: Action::Run,
                    reasons: vec![format!("dep {missing} missing")],
                },
                Ok(inputs) => {
                    let v = engine.decide(stage, &inputs, false)?;
                    if let (Action::Restore, Some(entry)) = (v.action, &v.cached) {
                        for o in &entry.outs {
                            predicted.insert(o.path.clone(), record_to_locked(o));
                        }
                    }
                    StageStatusReport {
                        stage: stage.name.to_string(),
                        action: v.action,
                        reasons: v.changes.iter().map(ToString::to_string).collect(),
                    }
                }
            }
        };
        actions.insert(report.stage.clone(), report.action);
        out.push(report);
    }
    Ok(out)
}

/// Brings the pipeline up to date, gates it, registers the model, records
/// the run. A failed stage, a failed gate or a cancellation is reported in
/// the returned [`RunReport`]'s status, not as an `Err`. Stage commands run
/// as local process groups ([`LocalProcesses`]).
pub fn run(
    project: &Project,
    opts: &RunOptions,
    reporter: Arc<dyn Reporter>,
    cancel: &CancelToken,
) -> Result<RunReport> {
    run_with(project, opts, Arc::new(LocalProcesses), reporter, cancel)
}

/// [`run`], with stage commands run by `executor`.
pub fn run_with(
    project: &Project,
    opts: &RunOptions,
    executor: Arc<dyn Executor>,
    reporter: Arc<dyn Reporter>,
    cancel: &CancelToken,
) -> Result<RunReport> {
    // Whether the work tree is dirty, recorded when the run begins: `git
    // status` takes a few milliseconds, so it runs while the run takes its
    // lock and opens its store.
    let dirty = (!opts.dry_run).then(|| crate::git::DirtyProbe::start(&project.root));
    let wanted = targets(project, &opts.targets)?;
    std::fs::create_dir_all(project.layout().ferry_dir()).map_err(|e| Error::Io {
        action: "create",
        path: project.layout().ferry_dir(),
        source: e,
    })?;
    let lock_path = project.layout().run_lock();
    let _guard = match FileLock::try_acquire(&lock_path)? {
        Some(g) => g,
        None => return Err(Error::Busy(lock_path)),
    };
    // A run that died (SIGKILL, a crash) may have left stages running and
    // temporary files half written: end and remove them first.
    if orphans::reap(project) {
        orphans::sweep_temp(project, false);
    }
    let confine = Confine::new(project);
    let stages: Vec<&Stage> = if opts.single {
        project
            .pipeline
            .stages
            .iter()
            .filter(|s| wanted.contains(&s.name))
            .collect()
    } else {
        project.pipeline.closure(&wanted)
    };
    for stage in &stages {
        confine.check_stage(stage)?;
    }
    if opts.dry_run {
        return dry_run(project, opts);
    }

    let mut engine = Engine::open(project)?;
    engine.set_shared(opts.shared.clone(), opts.push);
    let recorder: Box<dyn Recorder + '_> = match &opts.server {
        Some(url) => Box::new(Remote::new(url)?),
        None => Box::new(Local::open(project)?),
    };
    // The environment comes first: every fingerprint depends on it.
    let env = prepare_env(project, &mut engine, &reporter, cancel)?;

    // The run is also an MLflow run in the experiment named after the pipeline.
    let started = recorder.begin(&RunStart {
        pipeline: project.pipeline.name.clone(),
        trigger: opts.trigger.clone(),
        started_ms: now_ms(),
        git_commit: crate::git::head_commit(&project.root),
        git_dirty: dirty.and_then(crate::git::DirtyProbe::wait),
        env_fingerprint: env.as_ref().map(|e| e.fingerprint.to_hex()),
        source_name: project.layout().home().display().to_string(),
        workspace: project.pipeline.workspace.clone(),
        project: project_name(project),
    })?;
    let pids = match PidFile::create(project, &started.run_id) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            let _ = recorder.finish(&started, RunStatus::Failed, Some(&e.to_string()), false);
            return Err(e);
        }
    };
    // Should the run leave early with an error (or a panic), its stages are
    // stopped and it is recorded as failed.
    let mut abort = Abort {
        recorder: recorder.as_ref(),
        started: &started,
        cancel,
        pids: pids.clone(),
        reporter: reporter.clone(),
        done: false,
    };
    let mut env_vars: Vec<(String, String)> =
        env.as_ref().map(PreparedEnv::vars).unwrap_or_default();
    env_vars.push(("FERRY_RUN_ID".into(), started.run_id.clone()));
    env_vars.push((
        "FERRY_PROJECT_ROOT".into(),
        project.root.display().to_string(),
    ));
    let cx = RunContext {
        project,
        recorder: recorder.as_ref(),
        started: &started,
        reporter,
        cancel,
        executor,
        pids,
        env_vars,
        force: opts.force,
        jobs: opts.jobs.max(1),
    };
    let budget = match crate::budget::hold(
        project,
        &mut engine,
        &stages,
        opts.force,
        recorder.as_ref(),
        &started,
        opts.over_budget.as_deref(),
    ) {
        Err(e @ Error::OverBudget(_)) => {
            // Recorded as refused, with the budget that refused it.
            let why = e.to_string();
            let first = why.lines().next().unwrap_or_default();
            let alerts = recorder.finish(&started, RunStatus::Failed, Some(first), false)?;
            abort.done = true;
            crate::budget::send_alerts(&alerts, cx.reporter.as_ref());
            return Err(e);
        }
        b => b?,
    };
    if let Some(b) = &budget {
        cx.reporter.event(Event::Budget(b));
    }
    // The endpoint stages log to starts with the first stage that runs.
    let tracking = Tracking::new(project, recorder.as_ref(), &started);
    let scheduled = Scheduler::new(&cx, &mut engine, confine, tracking, stages.clone()).run()?;
    engine.save_index();

    // Gates and registration judge the whole pipeline, so only a full run does them.
    let full = wanted.is_empty();
    let mut report = conclude(&cx, &mut engine, &stages, scheduled, env.as_ref(), full)?;
    report.estimate = budget.map(|b| b.estimate);
    let alerts = recorder.finish(
        &started,
        report.status,
        finish_message(&report).as_deref(),
        report.noop,
    )?;
    abort.done = true;
    crate::budget::send_alerts(&alerts, cx.reporter.as_ref());
    Ok(report)
}

/// The project's name: its folder's (a checkout's: its home's).
fn project_name(project: &Project) -> String {
    project.layout().home().file_name().map_or_else(
        || "project".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What `run --dry-run` reports: what `status` predicts, as outcomes.
fn dry_run(project: &Project, opts: &RunOptions) -> Result<RunReport> {
    let st = status(project, &opts.targets)?;
    Ok(RunReport {
        run_id: None,
        pipeline: st.pipeline,
        status: RunStatus::Succeeded,
        dry_run: true,
        stages: st
            .stages
            .into_iter()
            .map(|s| {
                let status = match s.action {
                    Action::UpToDate => StageStatus::UpToDate,
                    Action::Restore => StageStatus::Restored,
                    Action::Run => StageStatus::Ran,
                };
                let reason = if s.reasons.is_empty() {
                    "up to date".into()
                } else {
                    s.reasons.join(", ")
                };
                StageRecord::new(&s.stage, status, reason)
            })
            .collect(),
        gates: vec![],
        metrics: BTreeMap::new(),
        registered: None,
        model_unchanged: None,
        model_rejected: None,
        noop: false,
        estimate: None,
    })
}

/// Finds (or builds) the pipeline's Python environment and gives its
/// fingerprint to the engine.
fn prepare_env(
    project: &Project,
    engine: &mut Engine<'_>,
    reporter: &Arc<dyn Reporter>,
    cancel: &CancelToken,
) -> Result<Option<PreparedEnv>> {
    let Some(req) = env_request(project, engine)? else {
        return Ok(None);
    };
    let envs = Envs::new(&project.layout().envs());
    let env = match envs.lookup(&req)? {
        Some(e) => {
            reporter.event(Event::EnvReady {
                fingerprint: &e.fingerprint.short(12),
                built: false,
            });
            e
        }
        None => {
            reporter.event(Event::EnvBuilding {
                requirements: &req.requirements,
            });
            let e = envs.ensure(&project.root, &req, reporter.clone(), cancel)?;
            reporter.event(Event::EnvReady {
                fingerprint: &e.fingerprint.short(12),
                built: true,
            });
            e
        }
    };
    engine.set_env(Some(env.fingerprint));
    Ok(Some(env))
}

/// The run's results once its stages are done: params, metrics and check
/// reports recorded; then, for a full run that succeeded, the gates and the
/// registration.
fn conclude(
    cx: &RunContext<'_>,
    engine: &mut Engine<'_>,
    stages: &[&Stage],
    scheduled: Scheduled,
    env: Option<&PreparedEnv>,
    full: bool,
) -> Result<RunReport> {
    let Scheduled {
        outcomes,
        mut metrics,
    } = scheduled;
    // Params and metrics of the run.
    let mut params: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for s in stages {
        params.extend(s.params.clone());
    }
    let check_values = check_results(cx, engine, stages, &outcomes, &mut metrics)?;
    let numeric: BTreeMap<String, f64> = metrics
        .iter()
        .filter_map(|(k, v)| crate::metric_number(v).map(|f| (k.clone(), f)))
        .collect();
    record_results(cx, engine, stages, &params, &numeric)?;

    let cancelled =
        cx.cancel.is_cancelled() || outcomes.iter().any(|o| o.status == StageStatus::Cancelled);
    let failed = outcomes.iter().any(|o| o.status == StageStatus::Failed);
    let mut report = RunReport {
        run_id: Some(cx.started.run_id.clone()),
        pipeline: cx.project.pipeline.name.clone(),
        status: if cancelled {
            RunStatus::Cancelled
        } else if failed {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        },
        dry_run: false,
        stages: outcomes,
        gates: vec![],
        metrics: numeric,
        registered: None,
        model_unchanged: None,
        model_rejected: None,
        noop: false,
        estimate: None,
    };
    // Whether registration changed the registry (a version, an alias move).
    let mut registry_changed = false;
    if report.status == RunStatus::Succeeded && full {
        let ctx = GateCtx {
            metrics: &metrics,
            checks: &check_values,
            params: &cx.project.pipeline.params,
            recorder: Some(cx.recorder),
        };
        report.gates = crate::gates::evaluate(
            stages,
            &cx.project.pipeline.gates,
            &ctx,
            cx.reporter.as_ref(),
        );
        let recs: Vec<GateRecord> = report
            .gates
            .iter()
            .map(|g| GateRecord {
                name: g.name.clone(),
                expr: g.expr.clone(),
                passed: g.passed,
                message: g.message.clone(),
            })
            .collect();
        cx.recorder.gates(cx.started, &recs)?;
        if report.gates.iter().any(|g| !g.passed) {
            report.status = RunStatus::GateFailed;
        } else if let Some(reg) = &cx.project.pipeline.register {
            registry_changed =
                crate::register::register(cx, engine, reg, &params, &metrics, env, &mut report)?;
        }
    }
    report.noop = report.status == RunStatus::Succeeded
        && !registry_changed
        && report
            .stages
            .iter()
            .all(|s| s.status == StageStatus::UpToDate);
    Ok(report)
}

/// Check stages' reports: values for gates (returned, by stage), and their
/// verdicts as metrics of the run (`checks.<stage>.passed`,
/// `checks.<stage>.drifted_share`, ...); the reports are kept with the run,
/// where MLflow clients see them.
fn check_results(
    cx: &RunContext<'_>,
    engine: &mut Engine<'_>,
    stages: &[&Stage],
    outcomes: &[StageRecord],
    metrics: &mut BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, BTreeMap<String, serde_json::Value>>> {
    let mut check_values = BTreeMap::new();
    for (st, o) in stages.iter().zip(outcomes) {
        let Some(c) = &st.check else { continue };
        if matches!(
            o.status,
            StageStatus::Failed | StageStatus::Cancelled | StageStatus::Skipped
        ) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(cx.project.root.join(&c.report)) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let flat = crate::checks::flatten(&v);
        for k in [
            "passed",
            "failed",
            "drifted",
            "drifted_share",
            "dataset_drift",
        ] {
            if let Some(v) = flat.get(k) {
                metrics.insert(format!("checks.{}.{k}", st.name), v.clone());
            }
        }
        check_values.insert(st.name.to_string(), flat);
        // The reports are outs of the stage, so the cache has them (one
        // that changed since, or cannot be hashed, is copied as it is).
        let files: Vec<Attachment> = std::iter::once(&c.report)
            .chain(&c.html)
            .map(|path| Attachment {
                path: path.clone(),
                cached: engine.cached_copy(path).unwrap_or_default(),
            })
            .collect();
        cx.recorder
            .attach(cx.started, cx.project, "checks", &files)?;
    }
    Ok(check_values)
}

/// Records the run's params, numeric metrics, and the source data each
/// stage read (as `ferry.data.<path>` tags of the MLflow run).
fn record_results(
    cx: &RunContext<'_>,
    engine: &Engine<'_>,
    stages: &[&Stage],
    params: &BTreeMap<String, serde_json::Value>,
    numeric: &BTreeMap<String, f64>,
) -> Result<()> {
    let project = cx.project;
    let mut tags: Vec<(String, String)> = Vec::new();
    for st in stages {
        if let Some(l) = engine.locked(st.name.as_str()) {
            for (dep, d) in &l.deps {
                let produced = project.pipeline.stages.iter().any(|s| {
                    s.outs
                        .iter()
                        .any(|o| ferry_spec::path_within(dep, o) || ferry_spec::path_within(o, dep))
                });
                let key = format!("ferry.data.{dep}");
                if !produced && !tags.iter().any(|(k, _)| *k == key) {
                    tags.push((key, d.digest.to_hex()));
                }
            }
        }
    }
    tags.truncate(100);
    let p: Vec<(String, serde_json::Value)> = params.clone().into_iter().collect();
    let now = now_ms();
    let m: Vec<MetricRecord> = numeric
        .iter()
        .map(|(k, v)| MetricRecord {
            key: k.clone(),
            value: *v,
            stage: None,
            step: 0,
            ts_ms: now,
        })
        .collect();
    cx.recorder.results(cx.started, &p, &m, &tags)
}

/// The message a finished run is recorded with: the failed gates, or the
/// first failed stage.
fn finish_message(report: &RunReport) -> Option<String> {
    match report.status {
        RunStatus::GateFailed => Some(
            report
                .gates
                .iter()
                .filter(|g| !g.passed)
                .map(|g| g.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        RunStatus::Failed => report
            .stages
            .iter()
            .find(|s| s.status == StageStatus::Failed)
            .map(|s| {
                format!(
                    "stage {} failed: {}",
                    s.stage,
                    s.error.clone().unwrap_or_default()
                )
            }),
        _ => None,
    }
}

/// Ends a run that leaves `run` early: cancels its stages, waits for their
/// groups to go, records the run as failed. Removes the run's pid file.
struct Abort<'a> {
    recorder: &'a dyn Recorder,
    started: &'a Started,
    cancel: &'a CancelToken,
    pids: Arc<PidFile>,
    reporter: Arc<dyn Reporter>,
    done: bool,
}

impl Drop for Abort<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cancel.cancel();
            self.pids
                .wait_empty(ferry_executor::KILL_GRACE + Duration::from_secs(2));
            if let Ok(alerts) = self.recorder.finish(
                self.started,
                RunStatus::Failed,
                Some("ferry stopped on an error before the run finished (see its output)"),
                false,
            ) {
                crate::budget::send_alerts(&alerts, self.reporter.as_ref());
            }
        }
        self.pids.close();
    }
}

/// What must be kept: the outputs ferry.lock names, every registered
/// version's artifact and, with `run_cache`, the run-cache entries of the
/// pipeline's stages with their outputs. The one answer for `gc` and
/// `gc --remote`.
pub fn referenced(
    project: &Project,
    engine: &Engine<'_>,
    run_cache: bool,
) -> Result<(Vec<OutRecord>, Vec<Digest>)> {
    let mut keep: Vec<OutRecord> = engine.locked_outs();
    keep.extend(crate::pointers::all(project)?.iter().map(|p| p.out()));
    let store = BlockingStore::open(&project.layout().store_url())?;
    let models = store.call(|s| Box::pin(async move { s.list_models().await }))?;
    for m in models {
        let name = m.name.clone();
        let versions = store.call(|s| Box::pin(async move { s.list_versions(&name).await }))?;
        for v in versions {
            if let Ok(d) = v.artifact_digest.parse::<Digest>() {
                keep.push(OutRecord {
                    path: v.artifact_path.clone(),
                    digest: d,
                    size: v.artifact_size as u64,
                    files: None,
                });
            }
        }
    }
    let mut keep_runs = Vec::new();
    if run_cache {
        for (fp, entry) in engine.run_entries()? {
            if project.pipeline.stage(&entry.stage).is_some() {
                keep.extend(entry.outs.iter().cloned());
                keep_runs.push(fp);
            }
        }
    }
    Ok((keep, keep_runs))
}

/// Removes cached outputs nothing needs any more (with `dry_run`, only
/// counts them; nothing is touched, not even a dead run's leftovers).
pub fn gc(project: &Project, keep_run_cache: bool, dry_run: bool) -> Result<GcStats> {
    let engine = Engine::open(project)?;
    let lock_path = project.layout().run_lock();
    let _guard = match FileLock::try_acquire(&lock_path)? {
        Some(g) => g,
        None => return Err(Error::Busy(lock_path)),
    };
    // No run is writing (the lock): what dead ones left can go.
    if !dry_run {
        orphans::reap(project);
        orphans::sweep_temp(project, true);
    }
    let (keep, keep_runs) = referenced(project, &engine, keep_run_cache)?;
    engine.gc(&keep, &keep_runs, dry_run)
}
