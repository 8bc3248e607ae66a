//! `status`, `run` and `gc`.

use crate::confine::Confine;
use crate::engine::{Engine, Verdict, record_to_locked, to_locked, to_record};
use crate::orphans::{self, PidFile};
use crate::record::{Local, Recorder, Remote, RunStart, StageRun, Started};
use crate::report::*;
use crate::{Error, Project, Result};
use ferry_cache::{GcStats, OutRecord, RunCacheEntry};
use ferry_core::{Digest, StageName, now_ms};
use ferry_env::{EnvRequest, Envs, FileLock, PreparedEnv};
use ferry_executor::{CancelToken, Exit, Job};
use ferry_gates::{Context, Lookup, Value};
use ferry_metadata::*;
use ferry_pipeline::{LockedPath, StageInputs};
use ferry_spec::Stage;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, mpsc};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stages to bring up to date (with what they need); empty means all.
    pub targets: Vec<String>,
    pub force: bool,
    pub dry_run: bool,
    pub jobs: usize,
    /// What started the run: `cli`, `ci`, …
    pub trigger: String,
    /// Record to this `ferry server` (its URL) instead of the local store.
    pub server: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            targets: vec![],
            force: false,
            dry_run: false,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            trigger: "cli".into(),
            server: None,
        }
    }
}

fn targets(project: &Project, names: &[String]) -> Result<Vec<StageName>> {
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

fn env_request(engine: &mut Engine<'_>) -> Result<Option<EnvRequest>> {
    let Some(env) = engine.project.pipeline.env.clone() else {
        return Ok(None);
    };
    let Some(digest) = engine.requirements_digest()? else {
        return Err(Error::Io {
            action: "read",
            path: engine.project.root.join(&env.requirements),
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
    if let Some(req) = env_request(&mut engine)? {
        env = Envs::new(&project.envs_dir()).lookup(&req)?;
        engine.env_fp = env.as_ref().map(|e: &PreparedEnv| e.fingerprint);
    }
    let mut predicted: HashMap<String, LockedPath> = HashMap::new();
    let mut actions: HashMap<String, Action> = HashMap::new();
    let mut out = Vec::new();
    for stage in project.pipeline.closure(&wanted) {
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
    let _ = engine.hasher.save_index();
    Ok(StatusReport {
        pipeline: project.pipeline.name.clone(),
        stages: out,
        env: env.map(|e| e.fingerprint.to_hex()),
    })
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
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

struct Worker {
    stage: usize,
    outcome: ferry_executor::Outcome,
    attempts: u32,
    started_ms: i64,
}

/// The values gates see.
struct GateCtx<'a> {
    metrics: &'a BTreeMap<String, serde_json::Value>,
    /// Check stages' reports, flattened (see `checks::flatten`), by stage.
    checks: &'a BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    params: &'a serde_json::Value,
    recorder: Option<&'a dyn Recorder>,
}

fn json_to_value(v: &serde_json::Value) -> Option<Value> {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map(Value::Num),
        serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
        serde_json::Value::String(s) => Some(Value::Str(s.clone())),
        _ => None,
    }
}

fn lookup_in(map: &BTreeMap<String, serde_json::Value>, key: &str, what: &str) -> Lookup {
    match map.get(key).and_then(json_to_value) {
        Some(v) => Lookup::Found(v),
        None => {
            let known: Vec<&str> = map.keys().map(String::as_str).take(12).collect();
            Lookup::Missing(if known.is_empty() {
                format!("no stage wrote {what}")
            } else {
                format!("known {what}: {}", known.join(", "))
            })
        }
    }
}

impl Context for GateCtx<'_> {
    fn lookup(&self, path: &[String]) -> Lookup {
        let key = path[1..].join(".");
        match path[0].as_str() {
            "metrics" => lookup_in(self.metrics, &key, "metrics"),
            "params" => {
                let mut cur = self.params;
                for p in &path[1..] {
                    match cur.get(p) {
                        Some(v) => cur = v,
                        None => return Lookup::Missing(format!("no param `{key}`")),
                    }
                }
                match json_to_value(cur) {
                    Some(v) => Lookup::Found(v),
                    None => {
                        Lookup::Missing(format!("param `{key}` is not a number, string or boolean"))
                    }
                }
            }
            "checks" => match self.checks.get(&path[1]) {
                Some(m) => lookup_in(
                    m,
                    &path[2..].join("."),
                    &format!("values of check `{}`", path[1]),
                ),
                None => Lookup::Missing(format!(
                    "check stage `{}` left no report in this run",
                    path[1]
                )),
            },
            other => Lookup::Missing(format!("unknown root `{other}`")),
        }
    }

    fn model(
        &self,
        reference: &str,
        path: &[String],
    ) -> std::result::Result<Option<Lookup>, String> {
        let r: ferry_core::ModelRef = reference
            .parse()
            .map_err(|e: ferry_core::ModelRefParseError| e.to_string())?;
        let Some(recorder) = self.recorder else {
            return Ok(None);
        };
        let found = recorder.resolve(&r).map_err(|e| e.to_string())?;
        let Some(v) = found else { return Ok(None) };
        let key = path[1..].join(".");
        let (section, what) = match path[0].as_str() {
            "metrics" => (&v.lineage["metrics"], "metric"),
            "params" => (&v.lineage["params"], "param"),
            other => {
                return Err(format!(
                    "`model(...)` has `metrics` and `params`, not `{other}`"
                ));
            }
        };
        // The version's values: what its pipeline's stages wrote (lineage),
        // else what its run logged (a version an MLflow client registered,
        // or one whose lineage did not travel).
        if let Some(x) = section.get(&key).and_then(json_to_value) {
            return Ok(Some(Lookup::Found(x)));
        }
        if let Some(run) = &v.run_id
            && let Some(vals) = recorder.run_values(run).map_err(|e| e.to_string())?
        {
            let found = match what {
                "metric" => vals.metrics.get(&key).map(|x| Value::Num(*x)),
                _ => vals.params.get(&key).map(|p| param_value(p)),
            };
            if let Some(x) = found {
                return Ok(Some(Lookup::Found(x)));
            }
        }
        // No comparison possible: the gate is skipped, saying why.
        Ok(Some(Lookup::Found(Value::Absent(format!(
            "{reference} has no {what} {key}"
        )))))
    }
}

/// A param as MLflow keeps it (text) as a gate value: a number or boolean
/// when it reads as one.
fn param_value(p: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(p) {
        Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            json_to_value(&v).unwrap_or_else(|| Value::Str(p.to_owned()))
        }
        _ => Value::Str(p.to_owned()),
    }
}

/// Brings the pipeline up to date, gates it, registers the model, records
/// the run. A failed stage, a failed gate or a cancellation is reported in
/// the returned [`RunReport`]'s status, not as an `Err`.
pub fn run(
    project: &Project,
    opts: &RunOptions,
    reporter: Arc<dyn Reporter>,
    cancel: &CancelToken,
) -> Result<RunReport> {
    let wanted = targets(project, &opts.targets)?;
    std::fs::create_dir_all(project.ferry_dir()).map_err(|e| Error::Io {
        action: "create",
        path: project.ferry_dir(),
        source: e,
    })?;
    let lock_path = project.ferry_dir().join("run.lock");
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
    for stage in project.pipeline.closure(&wanted) {
        confine.check_stage(stage)?;
    }
    if opts.dry_run {
        let st = status(project, &opts.targets)?;
        return Ok(RunReport {
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
                    StageOutcome::new(&s.stage, status, reason)
                })
                .collect(),
            gates: vec![],
            metrics: BTreeMap::new(),
            registered: None,
            model_unchanged: None,
            model_rejected: None,
            noop: false,
        });
    }

    let mut engine = Engine::open(project)?;
    let recorder: Box<dyn Recorder + '_> = match &opts.server {
        Some(url) => Box::new(Remote::new(url)?),
        None => Box::new(Local::open(project)?),
    };

    // The environment comes first: every fingerprint depends on it.
    let mut env: Option<PreparedEnv> = None;
    if let Some(req) = env_request(&mut engine)? {
        let envs = Envs::new(&project.envs_dir());
        env = match envs.lookup(&req)? {
            Some(e) => {
                reporter.event(Event::EnvReady {
                    fingerprint: &e.fingerprint.short(12),
                    built: false,
                });
                Some(e)
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
                Some(e)
            }
        };
        engine.env_fp = env.as_ref().map(|e| e.fingerprint);
    }

    // The run is also an MLflow run in the experiment named after the pipeline.
    let started = recorder.begin(&RunStart {
        pipeline: project.pipeline.name.clone(),
        trigger: opts.trigger.clone(),
        started_ms: now_ms(),
        git_commit: crate::git::head_commit(&project.root),
        git_dirty: crate::git::is_dirty(&project.root),
        env_fingerprint: env.as_ref().map(|e| e.fingerprint.to_hex()),
        source_name: project.root.display().to_string(),
    })?;
    let rid = started.run_id.clone();
    let experiment_id = started.experiment_id.clone();
    let pids = match PidFile::create(project, &rid) {
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
        done: false,
    };
    let stages: Vec<&Stage> = project.pipeline.closure(&wanted);
    let n = stages.len();
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum St {
        Pending,
        Running,
        Ok,
        Bad,
    }
    let mut state = vec![St::Pending; n];
    let mut outcomes: Vec<Option<StageOutcome>> = vec![None; n];
    let mut inputs_of: Vec<Option<(StageInputs, Verdict)>> = (0..n).map(|_| None).collect();
    let index: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut all_metrics: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let (tx, rx) = mpsc::channel::<Worker>();
    let mut running = 0usize;
    let jobs = opts.jobs.max(1);
    let mut env_vars: Vec<(String, String)> =
        env.as_ref().map(PreparedEnv::vars).unwrap_or_default();
    env_vars.push(("FERRY_RUN_ID".into(), rid.clone()));
    env_vars.push((
        "FERRY_PROJECT_ROOT".into(),
        project.root.display().to_string(),
    ));

    let mut tracking: Option<ferry_server::Embedded> = None;
    let mut tracking_tried = false;
    let record = |pos: usize, o: &StageOutcome, fp: Option<Digest>, started_ms: Option<i64>| {
        let rec = StageRecord {
            stage: o.stage.clone(),
            position: pos as i64,
            status: o.status,
            reason: Some(
                o.error
                    .clone()
                    .map_or_else(|| o.reason.clone(), |e| format!("{}: {e}", o.reason)),
            ),
            fingerprint: fp.map(|f| f.to_hex()),
            started_ms,
            ended_ms: Some(now_ms()),
            wall_ms: o.wall_ms,
            user_cpu_ms: o.user_cpu_ms,
            sys_cpu_ms: o.sys_cpu_ms,
            max_rss_bytes: o.max_rss_bytes,
            exit_code: o.exit_code,
            attempts: o.attempts,
        };
        recorder.stage(
            &started,
            &StageRun {
                record: &rec,
                wall_ms: o.wall_ms,
                user_cpu_ms: o.user_cpu_ms,
                sys_cpu_ms: o.sys_cpu_ms,
                max_rss_bytes: o.max_rss_bytes,
                log: o.log.as_ref().map(std::path::PathBuf::from),
            },
        )
    };
    // A check stage that found problems (and is not warn_only) holds back
    // the stages that read what it checked; the run then ends on its gate.
    let blocks = |stage: &Stage| -> bool {
        let Some(c) = stage.check.as_ref().filter(|c| !c.warn_only) else {
            return false;
        };
        let Ok(text) = std::fs::read_to_string(project.root.join(&c.report)) else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v["passed"] == false || v["dataset_drift"] == true
    };
    let simple =
        |stage: &Stage, status: StageStatus, reason: String, error: Option<String>| StageOutcome {
            error,
            ..StageOutcome::new(stage.name.as_str(), status, reason)
        };

    loop {
        // Start (or settle) every stage whose upstream is done.
        let mut progressed = true;
        while progressed && !cancel.is_cancelled() {
            progressed = false;
            for i in 0..n {
                if state[i] != St::Pending || running >= jobs {
                    continue;
                }
                let stage = stages[i];
                let ups: Vec<usize> = stage
                    .upstream
                    .iter()
                    .filter_map(|u| index.get(u.as_str()).copied())
                    .collect();
                if let Some(&u) = ups.iter().find(|&&u| state[u] == St::Bad) {
                    let why = if stages[u].check.is_some()
                        && outcomes[u].as_ref().is_some_and(|o| o.error.is_none())
                    {
                        format!("check `{}` failed", stages[u].name)
                    } else {
                        "an upstream stage failed".into()
                    };
                    let o = simple(stage, StageStatus::Skipped, why, None);
                    record(i, &o, None, None)?;
                    reporter.event(Event::StageFinished(&o));
                    outcomes[i] = Some(o);
                    state[i] = St::Bad;
                    progressed = true;
                    continue;
                }
                if ups.iter().any(|&u| state[u] != St::Ok) {
                    continue;
                }
                progressed = true;
                let fail = |e: Error| {
                    let o = simple(
                        stage,
                        StageStatus::Failed,
                        "its deps or outs cannot be used".into(),
                        Some(e.to_string()),
                    );
                    record(i, &o, None, None)?;
                    reporter.event(Event::StageFinished(&o));
                    Ok::<_, Error>(o)
                };
                // A dep that cannot be hashed (a FIFO, say) fails the stage,
                // as does a path that leads outside the project through a
                // link an upstream stage made since the run began.
                let checked = confine.check_stage(stage).and_then(|()| {
                    let inputs = engine.inputs(stage, &HashMap::new())?;
                    let verdict = match &inputs {
                        Ok(inputs) => Some(engine.decide(stage, inputs, opts.force)?),
                        Err(_) => None,
                    };
                    Ok((inputs, verdict))
                });
                let (inputs, verdict) = match checked {
                    Ok(x) => x,
                    Err(e) => {
                        outcomes[i] = Some(fail(e)?);
                        state[i] = St::Bad;
                        continue;
                    }
                };
                let inputs = match inputs {
                    Ok(i) => i,
                    Err(missing) => {
                        let o = simple(
                            stage,
                            StageStatus::Failed,
                            format!("dep {missing} missing"),
                            Some(format!("dependency `{missing}` does not exist")),
                        );
                        record(i, &o, None, None)?;
                        reporter.event(Event::StageFinished(&o));
                        outcomes[i] = Some(o);
                        state[i] = St::Bad;
                        continue;
                    }
                };
                let Some(verdict) = verdict else { continue };
                match verdict.action {
                    Action::UpToDate => {
                        if let Some(l) = engine.lock.stages.get(stage.name.as_str()) {
                            all_metrics.extend(l.metrics.clone());
                        }
                        let o = simple(stage, StageStatus::UpToDate, "up to date".into(), None);
                        record(i, &o, Some(verdict.fingerprint), None)?;
                        reporter.event(Event::StageFinished(&o));
                        outcomes[i] = Some(o);
                        state[i] = if blocks(stage) { St::Bad } else { St::Ok };
                    }
                    Action::Restore => {
                        let entry = verdict.cached.clone().unwrap_or_else(|| RunCacheEntry {
                            stage: stage.name.to_string(),
                            outs: vec![],
                            metrics: BTreeMap::new(),
                            created_ms: 0,
                        });
                        let started = std::time::Instant::now();
                        let mut err = None;
                        for out in &entry.outs {
                            match engine.cache.restore(&project.root, out) {
                                Ok(written) => {
                                    for w in written {
                                        engine.hasher.remember_at(&w.key, &w.path, w.digest)?;
                                    }
                                }
                                Err(e) => {
                                    err = Some(e.to_string());
                                    break;
                                }
                            }
                        }
                        let reason = verdict.reason();
                        if let Some(e) = err {
                            let o = simple(stage, StageStatus::Failed, reason, Some(e));
                            record(i, &o, Some(verdict.fingerprint), None)?;
                            reporter.event(Event::StageFinished(&o));
                            outcomes[i] = Some(o);
                            state[i] = St::Bad;
                            continue;
                        }
                        all_metrics.extend(entry.metrics.clone());
                        let lock_entry = engine.lock_entry(
                            &inputs,
                            verdict.fingerprint,
                            &entry.outs,
                            entry.metrics.clone(),
                        );
                        engine
                            .lock
                            .stages
                            .insert(stage.name.to_string(), lock_entry);
                        engine.save_lock()?;
                        let mut o = simple(stage, StageStatus::Restored, reason, None);
                        o.wall_ms = Some(ms(started.elapsed()));
                        record(i, &o, Some(verdict.fingerprint), None)?;
                        reporter.event(Event::StageFinished(&o));
                        outcomes[i] = Some(o);
                        state[i] = if blocks(stage) { St::Bad } else { St::Ok };
                    }
                    Action::Run => {
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
                        // The first stage that runs gets an MLflow endpoint for the
                        // pipeline's run (FERRY_NO_TRACKING=1 turns it off).
                        if !tracking_tried && std::env::var_os("FERRY_NO_TRACKING").is_none() {
                            tracking_tried = true;
                            let endpoint = match recorder.tracking_uri() {
                                Some(uri) => Ok((uri, None)),
                                None => ferry_server::Embedded::start(
                                    &project.store_url(),
                                    &project.ferry_dir().join("artifacts"),
                                )
                                .map(|srv| (srv.url(), Some(srv))),
                            };
                            match endpoint {
                                Ok((uri, srv)) => {
                                    env_vars.push(("MLFLOW_TRACKING_URI".into(), uri));
                                    env_vars.push(("MLFLOW_RUN_ID".into(), rid.clone()));
                                    env_vars.push((
                                        "MLFLOW_EXPERIMENT_ID".into(),
                                        experiment_id.to_string(),
                                    ));
                                    tracking = srv;
                                }
                                Err(e) => {
                                    reporter.line(
                                        "ferry",
                                        ferry_executor::Stream::Stderr,
                                        &format!("MLflow endpoint for stages not started: {e}"),
                                    );
                                }
                            }
                        }
                        let reason = verdict.reason();
                        reporter.event(Event::StageStarted {
                            stage: stage.name.as_str(),
                            reason: &reason,
                            attempt: 1,
                        });
                        let mut vars = env_vars.clone();
                        vars.push(("FERRY_STAGE".into(), stage.name.to_string()));
                        let watch: Arc<dyn ferry_executor::GroupWatch> = pids.clone();
                        let job = Job {
                            watch: Some(watch),
                            stage: stage.name.to_string(),
                            cmd: stage.cmd.clone(),
                            cwd: project.root.clone(),
                            env: vars,
                            timeout: stage.timeout,
                            log_path: project
                                .logs_dir()
                                .join(&rid)
                                .join(format!("{}.log", stage.name)),
                        };
                        if let Some(check) = stage.check.clone() {
                            // Built-in checks run here, in a thread of their own.
                            let (tx, sink, root) =
                                (tx.clone(), reporter.clone(), project.root.clone());
                            let started_ms = now_ms();
                            std::thread::spawn(move || {
                                let outcome = crate::checks::run(
                                    &root,
                                    &job.stage,
                                    &check,
                                    &job.log_path,
                                    sink.as_ref(),
                                );
                                let _ = tx.send(Worker {
                                    stage: i,
                                    outcome,
                                    attempts: 1,
                                    started_ms,
                                });
                            });
                            inputs_of[i] = Some((inputs, verdict));
                            state[i] = St::Running;
                            running += 1;
                            continue;
                        }
                        let retries = stage.retries;
                        let (tx, sink, cancel, rep) = (
                            tx.clone(),
                            reporter.clone(),
                            cancel.clone(),
                            reporter.clone(),
                        );
                        let started_ms = now_ms();
                        std::thread::spawn(move || {
                            let mut attempts = 0;
                            let outcome = loop {
                                attempts += 1;
                                let o = ferry_executor::run(&job, sink.clone(), &cancel);
                                if o.exit.success()
                                    || attempts > retries
                                    || matches!(o.exit, Exit::Cancelled)
                                {
                                    break o;
                                }
                                rep.event(Event::StageStarted {
                                    stage: &job.stage,
                                    reason: &format!("retry after it {}", o.exit.describe()),
                                    attempt: attempts + 1,
                                });
                            };
                            let _ = tx.send(Worker {
                                stage: i,
                                outcome,
                                attempts,
                                started_ms,
                            });
                        });
                        inputs_of[i] = Some((inputs, verdict));
                        state[i] = St::Running;
                        running += 1;
                    }
                }
            }
        }
        if running == 0 {
            break;
        }
        let w = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(w) => w,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        running -= 1;
        let i = w.stage;
        let stage = stages[i];
        let Some((inputs, verdict)) = inputs_of[i].take() else {
            continue;
        };
        let log = project
            .logs_dir()
            .join(&rid)
            .join(format!("{}.log", stage.name));
        let mut o = StageOutcome {
            stage: stage.name.to_string(),
            status: StageStatus::Ran,
            reason: verdict.reason(),
            wall_ms: Some(ms(w.outcome.wall)),
            user_cpu_ms: Some(ms(w.outcome.user_cpu)),
            sys_cpu_ms: Some(ms(w.outcome.sys_cpu)),
            max_rss_bytes: Some(w.outcome.max_rss_bytes as i64),
            exit_code: w.outcome.exit.code().map(i64::from),
            attempts: i64::from(w.attempts),
            error: None,
            log: Some(log.display().to_string()),
        };
        let mut finish = |o: &mut StageOutcome,
                          engine: &mut Engine<'_>|
         -> Result<std::result::Result<(), String>> {
            match &w.outcome.exit {
                Exit::Cancelled => {
                    o.status = StageStatus::Cancelled;
                    return Ok(Err("cancelled".into()));
                }
                e if !e.success() => {
                    o.status = StageStatus::Failed;
                    return Ok(Err(format!("the command {}", e.describe())));
                }
                _ => {}
            }
            // Outputs: inside the project (the stage may have made links),
            // regular files or folders, every declared one present; then
            // cache them.
            let digests = match confine
                .check_outs(stage)
                .and_then(|()| Ok(engine.hasher.digest_paths(&stage.outs)?))
            {
                Ok(d) => d,
                Err(e) => {
                    o.status = StageStatus::Failed;
                    return Ok(Err(e.to_string()));
                }
            };
            let mut outs = Vec::with_capacity(stage.outs.len());
            for (path, d) in stage.outs.iter().zip(digests) {
                let Some(d) = d else {
                    o.status = StageStatus::Failed;
                    return Ok(Err(format!(
                        "the command succeeded but did not write its out `{path}`"
                    )));
                };
                engine.cache.store(&project.root.join(path), &d)?;
                outs.push(to_record(path, &to_locked(&d)));
            }
            let metrics = match read_metrics(project, stage) {
                Ok(m) => m,
                Err(e) => {
                    o.status = StageStatus::Failed;
                    return Ok(Err(e));
                }
            };
            engine.cache.put_run_entry(
                &verdict.fingerprint,
                &RunCacheEntry {
                    stage: stage.name.to_string(),
                    outs: outs.clone(),
                    metrics: metrics.clone(),
                    created_ms: now_ms(),
                },
            )?;
            all_metrics.extend(metrics.clone());
            let entry = engine.lock_entry(&inputs, verdict.fingerprint, &outs, metrics);
            engine.lock.stages.insert(stage.name.to_string(), entry);
            engine.save_lock()?;
            Ok(Ok(()))
        };
        match finish(&mut o, &mut engine)? {
            Ok(()) => state[i] = if blocks(stage) { St::Bad } else { St::Ok },
            Err(e) => {
                o.error = Some(e);
                state[i] = St::Bad;
            }
        }
        record(i, &o, Some(verdict.fingerprint), Some(w.started_ms))?;
        reporter.event(Event::StageFinished(&o));
        outcomes[i] = Some(o);
    }
    // Every stage is done: the stages' MLflow endpoint stops here.
    drop(tracking);
    // Stages never started (cancelled before their turn).
    for i in 0..n {
        if outcomes[i].is_none() {
            let o = simple(
                stages[i],
                StageStatus::Cancelled,
                "not started".into(),
                None,
            );
            record(i, &o, None, None)?;
            outcomes[i] = Some(o);
        }
    }
    let _ = engine.hasher.save_index();
    let outcomes: Vec<StageOutcome> = outcomes.into_iter().flatten().collect();

    // Params and metrics of the run.
    let mut params: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for s in &stages {
        params.extend(s.params.clone());
    }
    // Check stages' reports: values for gates, and their verdicts as metrics
    // of the run (`checks.<stage>.passed`, `checks.<stage>.drifted_share`, ...).
    let mut check_values: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    for (st, o) in stages.iter().zip(&outcomes) {
        let Some(c) = &st.check else { continue };
        if matches!(
            o.status,
            StageStatus::Failed | StageStatus::Cancelled | StageStatus::Skipped
        ) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(project.root.join(&c.report)) else {
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
                all_metrics.insert(format!("checks.{}.{k}", st.name), v.clone());
            }
        }
        check_values.insert(st.name.to_string(), flat);
        // The reports are kept with the run, where MLflow clients see them.
        let files: Vec<String> = std::iter::once(c.report.clone())
            .chain(c.html.clone())
            .collect();
        recorder.attach(&started, project, "checks", &files)?;
    }
    let numeric: BTreeMap<String, f64> = all_metrics
        .iter()
        .filter_map(|(k, v)| crate::metric_number(v).map(|f| (k.clone(), f)))
        .collect();
    // The source data each stage read, as tags of the MLflow run.
    {
        let mut tags: Vec<(String, String)> = Vec::new();
        for st in &stages {
            if let Some(l) = engine.lock.stages.get(st.name.as_str()) {
                for (dep, d) in &l.deps {
                    let produced = project.pipeline.stages.iter().any(|s| {
                        s.outs.iter().any(|o| {
                            ferry_spec::path_within(dep, o) || ferry_spec::path_within(o, dep)
                        })
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
        recorder.results(&started, &p, &m, &tags)?;
    }

    let cancelled =
        cancel.is_cancelled() || outcomes.iter().any(|o| o.status == StageStatus::Cancelled);
    let failed = outcomes.iter().any(|o| o.status == StageStatus::Failed);
    let mut report = RunReport {
        run_id: Some(rid.clone()),
        pipeline: project.pipeline.name.clone(),
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
    };
    // Whether registration changed the registry (a version, an alias move).
    let mut registry_changed = false;

    // Gates and registration judge the whole pipeline, so only a full run does them.
    let full = wanted.is_empty();
    if report.status == RunStatus::Succeeded && full {
        let ctx = GateCtx {
            metrics: &all_metrics,
            checks: &check_values,
            params: &project.pipeline.params,
            recorder: Some(recorder.as_ref()),
        };
        // Each check stage is a gate of its own, unless it only warns.
        for st in &stages {
            let Some(c) = &st.check else { continue };
            let source = crate::checks::gate_source(st.name.as_str(), c);
            let Ok(expr) = ferry_gates::parse(&source) else {
                continue;
            };
            let ev = expr.evaluate(&ctx);
            if c.warn_only {
                if !ev.passed {
                    reporter.line(
                        st.name.as_str(),
                        ferry_executor::Stream::Stderr,
                        &format!(
                            "warning: check `{}` failed (warn_only): see {}",
                            st.name, c.report
                        ),
                    );
                }
                continue;
            }
            let outcome = GateOutcome {
                name: format!("check {}", st.name),
                expr: source.clone(),
                passed: ev.passed,
                skipped: false,
                message: if ev.passed {
                    ev.message()
                } else {
                    format!("check `{}` failed: see {}", st.name, c.report)
                },
            };
            reporter.event(Event::Gate(&outcome));
            report.gates.push(outcome);
        }
        for g in &project.pipeline.gates {
            let ev = g.expr.evaluate(&ctx);
            let outcome = GateOutcome {
                name: g.name.clone(),
                expr: g.source.clone(),
                passed: ev.passed,
                skipped: ev.skipped.is_some(),
                message: ev.message(),
            };
            reporter.event(Event::Gate(&outcome));
            report.gates.push(outcome);
        }
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
        {
            recorder.gates(&started, &recs)?;
        }
        if report.gates.iter().any(|g| !g.passed) {
            report.status = RunStatus::GateFailed;
        } else if let Some(reg) = &project.pipeline.register {
            registry_changed = register(
                project,
                &mut engine,
                recorder.as_ref(),
                &started,
                reg,
                &params,
                &all_metrics,
                env.as_ref(),
                &mut report,
                reporter.as_ref(),
            )?;
        }
    }

    let message = match report.status {
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
    };
    report.noop = report.status == RunStatus::Succeeded
        && !registry_changed
        && report
            .stages
            .iter()
            .all(|s| s.status == StageStatus::UpToDate);
    recorder.finish(&started, report.status, message.as_deref(), report.noop)?;
    abort.done = true;
    Ok(report)
}

/// Ends a run that leaves `run` early: cancels its stages, waits for their
/// groups to go, records the run as failed. Removes the run's pid file.
struct Abort<'a> {
    recorder: &'a dyn Recorder,
    started: &'a Started,
    cancel: &'a CancelToken,
    pids: Arc<PidFile>,
    done: bool,
}

impl Drop for Abort<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cancel.cancel();
            self.pids
                .wait_empty(ferry_executor::KILL_GRACE + Duration::from_secs(2));
            let _ = self.recorder.finish(
                self.started,
                RunStatus::Failed,
                Some("ferry stopped on an error before the run finished (see its output)"),
                false,
            );
        }
        self.pids.close();
    }
}

#[allow(clippy::too_many_arguments)]
fn register(
    project: &Project,
    engine: &mut Engine<'_>,
    recorder: &dyn Recorder,
    started: &Started,
    reg: &ferry_spec::Register,
    params: &BTreeMap<String, serde_json::Value>,
    metrics: &BTreeMap<String, serde_json::Value>,
    env: Option<&PreparedEnv>,
    report: &mut RunReport,
    reporter: &dyn Reporter,
) -> Result<bool> {
    // The artifact's digest: an out itself, or a file inside a folder out.
    let producer = engine.lock.stages.get(reg.producer.as_str());
    let artifact = match producer.and_then(|p| p.outs.get(&reg.artifact)) {
        Some(l) => Some(*l),
        None => engine
            .hasher
            .digest_path(&reg.artifact)?
            .map(|d| to_locked(&d)),
    };
    let Some(artifact) = artifact else {
        return Ok(false);
    };
    let model = reg.model.to_string();
    let versions = recorder.versions(&model)?;
    // The same artifact as an existing version (nothing changed, or inputs
    // reverted to an old state): no new version; the alias follows it.
    if let Some(same) = versions
        .iter()
        .rev()
        .find(|v| v.artifact_digest == artifact.digest.to_hex())
    {
        let msg = format!("{}/{}", same.model, same.version);
        // A rejected version stays rejected: an unchanged run does not
        // point an alias back at it.
        if let Some(why) = same.rejected() {
            reporter.event(Event::ModelRejected(&msg, why));
            report.model_unchanged = Some(msg);
            report.model_rejected = Some(why.to_owned());
            return Ok(false);
        }
        let mut moved = false;
        if let Some(alias) = reg.alias.as_ref().filter(|a| !same.aliases.contains(*a)) {
            recorder.set_alias(
                &same.model,
                alias,
                same.version,
                Some("the pipeline's output equals this version"),
            )?;
            moved = true;
        }
        reporter.event(Event::ModelUnchanged(&msg));
        report.model_unchanged = Some(msg);
        return Ok(moved);
    }
    // Lineage: every source dep (a dep no stage produces) upstream of the
    // artifact's producer, with its digest.
    let mut chain: Vec<&str> = vec![reg.producer.as_str()];
    let mut data = serde_json::Map::new();
    let mut i = 0;
    while i < chain.len() {
        if let Some(stage) = project.pipeline.stage(chain[i]) {
            for u in &stage.upstream {
                if !chain.contains(&u.as_str()) {
                    chain.push(u.as_str());
                }
            }
            if let Some(l) = engine.lock.stages.get(stage.name.as_str()) {
                for (dep, d) in &l.deps {
                    let produced = project.pipeline.stages.iter().any(|s| {
                        s.outs.iter().any(|o| {
                            ferry_spec::path_within(dep, o) || ferry_spec::path_within(o, dep)
                        })
                    });
                    if !produced {
                        data.insert(dep.clone(), serde_json::Value::String(d.digest.to_hex()));
                    }
                }
            }
        }
        i += 1;
    }
    let lineage = serde_json::json!({
        "pipeline": project.pipeline.name,
        "stages": chain,
        "data": data,
        "params": params,
        "metrics": metrics,
        "environment": env.map(|e| serde_json::json!({
            "fingerprint": e.fingerprint.to_hex(),
            "python": e.python_version,
            "platform": e.platform,
            "packages": e.packages,
        })),
    });
    let nv = NewModelVersion {
        model: model.clone(),
        run_id: Some(started.run_id.clone()),
        artifact_path: reg.artifact.clone(),
        artifact_digest: artifact.digest.to_hex(),
        artifact_size: artifact.size as i64,
        git_commit: crate::git::head_commit(&project.root),
        git_dirty: crate::git::is_dirty(&project.root),
        env_fingerprint: env.map(|e| e.fingerprint.to_hex()),
        lineage,
        created_ms: now_ms(),
        alias: reg.alias.clone(),
        source: Some(format!("runs:/{}/{}", started.run_id, reg.model)),
        stored: None,
    };
    let signature = match &reg.signature {
        None => None,
        Some(ferry_spec::SignatureSpec::Columns(s)) => Some(s.clone()),
        Some(ferry_spec::SignatureSpec::From { table, exclude }) => {
            Some(signature_of_table(project, table, exclude)?)
        }
    };
    let mlmodel = mlmodel_for(&reg.artifact, signature.as_ref(), &started.run_id);
    let v = recorder.register(started, project, &reg.artifact, mlmodel.as_deref(), nv)?;
    reporter.event(Event::Registered(&v));
    report.registered = Some(v);
    Ok(true)
}

/// The signature a table of the project gives: its columns but `exclude`,
/// in order, with their types (`register.signature.from`).
fn signature_of_table(
    project: &Project,
    table: &str,
    exclude: &[String],
) -> Result<ferry_mlmodel::Signature> {
    use ferry_data::ColType as T;
    use ferry_mlmodel::ColType as M;
    let path = project.root.join(table);
    let bad = |message: String| Error::Signature {
        table: table.to_owned(),
        message,
    };
    let t = ferry_data::Table::open(&ferry_data::TableSpec::new(path.to_string_lossy()))
        .map_err(|e| bad(e.to_string()))?;
    for e in exclude {
        if t.schema.field_with_name(e).is_err() {
            return Err(bad(format!("it has no column `{e}` to exclude")));
        }
    }
    let mut inputs = Vec::new();
    for f in t.schema.fields() {
        if exclude.iter().any(|e| e == f.name()) {
            continue;
        }
        let ty = match T::of(f.data_type()) {
            Some(T::Int) => M::Long,
            Some(T::Float) => M::Double,
            Some(T::String) => M::String,
            Some(T::Bool) => M::Boolean,
            Some(T::Timestamp | T::Date) => M::Datetime,
            None => {
                return Err(bad(format!(
                    "its column `{}` has a type a signature cannot name ({})",
                    f.name(),
                    f.data_type()
                )));
            }
        };
        inputs.push(ferry_mlmodel::Column {
            name: f.name().clone(),
            ty,
            required: true,
        });
    }
    if inputs.is_empty() {
        return Err(bad("no column is left for the signature".into()));
    }
    Ok(ferry_mlmodel::Signature { inputs })
}

/// MLflow's `MLmodel` for a registered ONNX file (the `onnx` and
/// `python_function` flavours, and the declared signature), so the stock
/// mlflow client loads ferry's versions; `None` for other artifacts.
fn mlmodel_for(
    artifact: &str,
    signature: Option<&ferry_mlmodel::Signature>,
    run_id: &str,
) -> Option<String> {
    let name = std::path::Path::new(artifact).file_name()?.to_str()?;
    if !name.ends_with(".onnx") {
        return None;
    }
    let ms = now_ms();
    let (y, m, d) = ferry_core::civil_from_days(ms.div_euclid(86_400_000));
    let t = ms.rem_euclid(86_400_000);
    let created = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}000",
        t / 3_600_000,
        t / 60_000 % 60,
        t / 1000 % 60,
        t % 1000
    );
    Some(ferry_mlmodel::render_onnx(
        name,
        signature,
        &ferry_mlmodel::Provenance {
            run_id: Some(run_id),
            utc_time_created: &created,
            model_uuid: ferry_core::RunId::generate().as_str(),
        },
    ))
}

/// Removes cached outputs nothing needs any more (with `dry_run`, only
/// counts them; nothing is touched, not even a dead run's leftovers).
pub fn gc(project: &Project, keep_run_cache: bool, dry_run: bool) -> Result<GcStats> {
    let engine = Engine::open(project)?;
    let lock_path = project.ferry_dir().join("run.lock");
    let _guard = match FileLock::try_acquire(&lock_path)? {
        Some(g) => g,
        None => return Err(Error::Busy(lock_path)),
    };
    // No run is writing (the lock): what dead ones left can go.
    if !dry_run {
        orphans::reap(project);
        orphans::sweep_temp(project, true);
    }
    let mut keep: Vec<OutRecord> = Vec::new();
    for s in engine.lock.stages.values() {
        keep.extend(s.outs.iter().map(|(p, l)| to_record(p, l)));
    }
    let store = BlockingStore::open(&project.store_url())?;
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
    if keep_run_cache {
        for (fp, entry) in engine.cache.run_entries()? {
            if project.pipeline.stage(&entry.stage).is_some() {
                keep.extend(entry.outs.iter().cloned());
                keep_runs.push(fp);
            }
        }
    }
    Ok(engine.cache.gc(&keep, &keep_runs, dry_run)?)
}
