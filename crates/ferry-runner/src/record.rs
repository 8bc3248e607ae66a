//! Where a run is recorded: the project's own store ([`Local`]) or a team's
//! `ferry server` over its MLflow API ([`Remote`], `ferry run --server`).
//!
//! Both record the same things in the same shape (an MLflow run in the
//! experiment named after the pipeline, a nested run per stage that did
//! something, params, metrics, `ferry.*` tags, a registered version with its
//! lineage), so a pipeline run looks the same to every MLflow client
//! wherever it was recorded. The local store keeps more (the pipeline's own
//! run and stage tables behind `ferry runs` and `ferry logs`).

use crate::{Project, Result};
use ferry_core::{ExperimentId, ModelRef, RunId, now_ms};
use ferry_metadata::*;

/// What a run starts with.
pub(crate) struct RunStart {
    pub pipeline: String,
    pub trigger: String,
    pub started_ms: i64,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub env_fingerprint: Option<String>,
    pub source_name: String,
    /// The workspace (team) of the pipeline, and its project (folder name).
    pub workspace: String,
    pub project: String,
}

/// A started run.
pub(crate) struct Started {
    pub run_id: String,
    pub experiment_id: ExperimentId,
}

/// The log file of a stage, when it ran and wrote one: kept as the
/// pipeline run's artifact `logs/<stage>.log` too, so `ferry logs` finds it
/// wherever the run was recorded.
fn stage_log(rec: &StageRecord) -> Option<&std::path::Path> {
    rec.log
        .as_deref()
        .map(std::path::Path::new)
        .filter(|p| p.is_file())
}

/// A model registry: the project's store or a server's.
pub trait Registry {
    fn list_models(&self) -> Result<Vec<ModelSummary>>;
    /// Every version of `model`, oldest first.
    fn versions(&self, model: &str) -> Result<Vec<ModelVersion>>;
    /// The version a reference names, if any.
    fn resolve(&self, r: &ModelRef) -> Result<Option<ModelVersion>>;
    /// What a bare model name picks for a person: the newest version of
    /// `model` that is not rejected (none when every version is), and the
    /// newer rejected versions passed over, newest first.
    fn latest_not_rejected(
        &self,
        model: &str,
    ) -> Result<(Option<ModelVersion>, Vec<ModelVersion>)> {
        let mut skipped = Vec::new();
        let mut versions = self.versions(model)?;
        while let Some(v) = versions.pop() {
            if v.rejected().is_none() {
                return Ok((Some(v), skipped));
            }
            skipped.push(v);
        }
        Ok((None, skipped))
    }
    /// Points `alias` at `version`; returns the version it pointed at before.
    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: i64,
        reason: Option<&str>,
    ) -> Result<Option<i64>>;
    /// Every alias move of `model`, oldest first.
    fn alias_history(&self, model: &str) -> Result<Vec<AliasEvent>>;
    /// What run `run_id` logged (a version's run): `None` if there is no
    /// such run.
    fn run_values(&self, run_id: &str) -> Result<Option<RunValues>>;
}

/// A run's latest metrics and its params (as MLflow keeps them: text).
#[derive(Debug, Default)]
pub struct RunValues {
    pub metrics: std::collections::BTreeMap<String, f64>,
    pub params: std::collections::BTreeMap<String, String>,
}

impl RunValues {
    fn of(r: &TrackedRun) -> Self {
        RunValues {
            metrics: r.metrics.iter().map(|m| (m.key.clone(), m.value)).collect(),
            params: r.params.iter().cloned().collect(),
        }
    }
}

/// The registry of the project's store.
pub fn local_registry(store: BlockingStore) -> Box<dyn Registry> {
    Box::new(Local {
        store,
        layout: crate::Layout::new(std::path::PathBuf::new()),
        syncing: Default::default(),
        cpu: None,
    })
}

/// The registry of the `ferry server` at `url`.
pub fn remote_registry(url: &str) -> Result<Box<dyn Registry>> {
    Ok(Box::new(Remote::new(url)?))
}

pub(crate) trait Recorder: Registry {
    /// Starts the run (and its MLflow run).
    fn begin(&self, s: &RunStart) -> Result<Started>;
    /// Where stages send their own MLflow calls, if the recorder has a
    /// server already (the local one starts an embedded server instead).
    fn tracking_uri(&self) -> Option<String>;
    /// Records stage `rec` of `run`, and its log file if it ran; stages
    /// that did something also get a nested MLflow run with their resource
    /// use as metrics.
    fn stage(&self, run: &Started, rec: &StageRecord) -> Result<()>;
    /// The run's params, metrics and extra tags.
    fn results(
        &self,
        run: &Started,
        params: &[(String, serde_json::Value)],
        metrics: &[MetricRecord],
        tags: &[(String, String)],
    ) -> Result<()>;
    fn gates(&self, run: &Started, gates: &[GateRecord]) -> Result<()>;
    /// Publishes `artifact` (a file or folder of the project) as the run's
    /// `<model>` artifact, with `described` (MLflow's description of it: the
    /// `MLmodel` and what it names, as (relative path, contents)) beside it
    /// unless the artifact brings its own `MLmodel`, then registers `nv` with
    /// `runs:/<run>/<model>`.
    fn register(
        &self,
        run: &Started,
        project: &Project,
        artifact: &str,
        described: &[(String, String)],
        nv: NewModelVersion,
    ) -> Result<ModelVersion>;
    /// Ends the run; `noop` (nothing happened) is kept as its
    /// `ferry.noop` tag. Its hold on budgets is let go, and the alerts its
    /// budgets now owe come back.
    fn finish(
        &self,
        run: &Started,
        status: RunStatus,
        message: Option<&str>,
        noop: bool,
    ) -> Result<Vec<Alert>>;
    /// Whether a budget covers `run`, of `pipeline` in `workspace` (a
    /// server knows them from the run).
    fn has_budget(&self, run: &Started, pipeline: &str, workspace: &str) -> Result<bool>;
    /// What `stage` of `run`'s `pipeline` cost in its recent runs, newest
    /// first.
    fn recent_stage_costs(&self, run: &Started, pipeline: &str, stage: &str) -> Result<Vec<f64>>;
    /// Holds a run's estimate against its budgets (see
    /// [`ferry_metadata::CostStore::hold_budget`]); a hold `over` them is
    /// audited with its reason.
    fn hold_budget(&self, hold: &Hold, reason: Option<&str>) -> Result<Held>;
    /// Files of the project kept as artifacts of the run, under `dir/`
    /// (check reports under `checks/`).
    fn attach(
        &self,
        run: &Started,
        project: &Project,
        dir: &str,
        files: &[Attachment],
    ) -> Result<()>;
}

/// A file of the project to keep as an artifact of a run.
pub(crate) struct Attachment {
    /// Relative to the project root.
    pub path: String,
    /// The cache's object with the same bytes, when it has one: the local
    /// store links it rather than copying the file (see [`Local`]'s
    /// `attach`).
    pub cached: Option<std::path::PathBuf>,
}

fn run_tags(s: &RunStart) -> Vec<(String, String)> {
    let mut tags = vec![
        ("ferry.pipeline".to_owned(), s.pipeline.clone()),
        ("ferry.trigger".to_owned(), s.trigger.clone()),
        ("mlflow.source.type".to_owned(), "PROJECT".to_owned()),
        ("mlflow.source.name".to_owned(), s.source_name.clone()),
        ("ferry.workspace".to_owned(), s.workspace.clone()),
        ("ferry.project".to_owned(), s.project.clone()),
    ];
    if let Some(u) = ferry_metadata::login_name() {
        // Who started it, as the MLflow client records it; a server with
        // users records the authenticated one instead.
        tags.push(("mlflow.user".to_owned(), u));
    }
    if let Some(c) = &s.git_commit {
        tags.push(("mlflow.source.git.commit".to_owned(), c.clone()));
    }
    if let Some(e) = &s.env_fingerprint {
        tags.push(("ferry.env.fingerprint".to_owned(), e.clone()));
    }
    tags
}

/// The nested run of a stage: its tags, resource metrics and MLflow status.
fn stage_run(
    parent: &str,
    rec: &StageRecord,
) -> (Vec<(String, String)>, Vec<Metric>, &'static str, i64) {
    let started = rec.started_ms.unwrap_or_else(now_ms);
    let mut tags = vec![
        ("mlflow.parentRunId".to_owned(), parent.to_owned()),
        ("ferry.stage".to_owned(), rec.stage.clone()),
        (
            "ferry.stage.status".to_owned(),
            rec.status.as_str().to_owned(),
        ),
        (
            "ferry.stage.reason".to_owned(),
            rec.recorded_reason().unwrap_or_default(),
        ),
        (
            pipeline_runs::STAGE_POSITION_TAG.to_owned(),
            rec.position.to_string(),
        ),
        (
            pipeline_runs::STAGE_ATTEMPTS_TAG.to_owned(),
            rec.attempts.to_string(),
        ),
    ];
    if let Some(c) = rec.exit_code {
        tags.push((pipeline_runs::STAGE_EXIT_TAG.to_owned(), c.to_string()));
    }
    if let Some(f) = &rec.fingerprint {
        tags.push((pipeline_runs::STAGE_FINGERPRINT_TAG.to_owned(), f.clone()));
    }
    let mut metrics = Vec::new();
    let mut metric = |key: &str, v: Option<i64>, scale: f64| {
        if let Some(v) = v {
            metrics.push(Metric {
                key: key.to_owned(),
                value: v as f64 / scale,
                timestamp: started,
                step: 0,
            });
        }
    };
    metric("ferry.wall_seconds", rec.wall_ms, 1000.0);
    metric("ferry.user_cpu_seconds", rec.user_cpu_ms, 1000.0);
    metric("ferry.sys_cpu_seconds", rec.sys_cpu_ms, 1000.0);
    metric("ferry.max_rss_bytes", rec.max_rss_bytes, 1.0);
    if let Some(c) = &rec.cost {
        let dollars = [
            (pipeline_runs::COST_METRIC, Some(c.charged)),
            (pipeline_runs::COST_REQUESTED_METRIC, c.requested),
            (pipeline_runs::COST_USED_METRIC, Some(c.used)),
        ];
        for (key, v) in dollars {
            if let Some(v) = v {
                metrics.push(Metric {
                    key: key.to_owned(),
                    value: v,
                    timestamp: started,
                    step: 0,
                });
            }
        }
        tags.push((
            pipeline_runs::COST_BASIS_TAG.to_owned(),
            c.basis.as_str().to_owned(),
        ));
        tags.push((
            pipeline_runs::COST_MACHINE_TAG.to_owned(),
            c.machine.clone(),
        ));
    }
    let status = match rec.status {
        StageStatus::Ran | StageStatus::Restored => "FINISHED",
        StageStatus::Cancelled | StageStatus::Skipped => "KILLED",
        _ => "FAILED",
    };
    (tags, metrics, status, started)
}

/// The tag that marks a run in which nothing happened (only on such runs).
fn noop_tag(noop: bool) -> Vec<(String, String)> {
    if noop {
        vec![(pipeline_runs::NOOP_TAG.to_owned(), "true".to_owned())]
    } else {
        Vec::new()
    }
}

/// MLflow keeps params as strings: a string as itself, anything else as its
/// JSON text (the local store does the same).
fn param_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------ local

/// The project's own store (`.ferry/ferry.db`).
pub(crate) struct Local {
    store: BlockingStore,
    /// The project's files (run artifacts under `.ferry/artifacts`); an
    /// empty root for a registry alone, which writes none.
    layout: crate::Layout,
    /// Folders of linked artifacts being synced (see `attach`), each in a
    /// thread of its own; the run finishes once they are.
    syncing: std::sync::Mutex<Vec<std::thread::JoinHandle<ferry_fs::Result<()>>>>,
    /// The CPU the store's connection thread is kept on, which the calling
    /// thread joins for each call (see [`Local::open`]).
    cpu: Option<usize>,
}

impl Local {
    /// Opens the project's store. Its SQLite connection lives in a thread
    /// of sqlx's, and every statement is a few hand-offs between that
    /// thread and this one: on a virtual machine whose CPUs idle between
    /// them, each wakes a CPU (10-25 us a hand-off, measured, against 1.5
    /// on one CPU), and a run makes some 50 statements. So the connection
    /// thread is started on this thread's CPU and kept there, and each call
    /// runs this thread on the same CPU (its own CPUs are given back when
    /// the call returns, so nothing it starts meanwhile is held to one).
    pub fn open(project: &Project) -> Result<Self> {
        let cpu = current_cpu();
        let store = {
            let _here = cpu.and_then(OnCpu::enter);
            BlockingStore::open(&project.layout().store_url())?
        };
        Ok(Self {
            store,
            layout: project.layout().clone(),
            syncing: Default::default(),
            cpu,
        })
    }

    /// One call to the store, on the CPU of its connection thread.
    fn call<'a, T>(
        &'a self,
        f: impl FnOnce(
            &'a dyn MetadataStore,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = ferry_metadata::Result<T>> + Send + 'a>,
        >,
    ) -> ferry_metadata::Result<T> {
        let _there = self.cpu.and_then(OnCpu::enter);
        self.store.call(f)
    }

    /// Waits for the folders `attach` is syncing; the first error, if any.
    fn synced(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.syncing.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first = Ok(());
        for t in pending {
            let r = t.join().unwrap_or_else(|_| {
                Err(ferry_fs::Error {
                    action: "sync",
                    path: std::path::PathBuf::from("artifacts"),
                    source: std::io::Error::other("the syncing thread panicked"),
                })
            });
            if first.is_ok() {
                first = r.map_err(crate::Error::from);
            }
        }
        first
    }
}

impl Registry for Local {
    fn list_models(&self) -> Result<Vec<ModelSummary>> {
        Ok(self.call(|s| Box::pin(async move { s.list_models().await }))?)
    }

    fn versions(&self, model: &str) -> Result<Vec<ModelVersion>> {
        let model = model.to_owned();
        Ok(self.call(|s| Box::pin(async move { s.list_versions(&model).await }))?)
    }

    fn resolve(&self, r: &ModelRef) -> Result<Option<ModelVersion>> {
        let r = r.clone();
        Ok(self.call(|s| {
            Box::pin(async move {
                match &r {
                    ModelRef::Alias(m, a) => s.resolve_alias(m.as_str(), a).await,
                    ModelRef::Version(m, v) => s.get_version(m.as_str(), *v as i64).await,
                    ModelRef::Latest(m) => s.latest_version(m.as_str()).await,
                }
            })
        })?)
    }

    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: i64,
        reason: Option<&str>,
    ) -> Result<Option<i64>> {
        let (m, a, r) = (
            model.to_owned(),
            alias.to_owned(),
            reason.map(str::to_owned),
        );
        let ev =
            self.call(|s| Box::pin(async move { set_alias_audited(s, &m, &a, version, r).await }))?;
        Ok(ev.previous)
    }

    fn alias_history(&self, model: &str) -> Result<Vec<AliasEvent>> {
        let model = model.to_owned();
        Ok(self.call(|s| Box::pin(async move { s.alias_events(&model).await }))?)
    }

    fn run_values(&self, run_id: &str) -> Result<Option<RunValues>> {
        let id = run_id.to_owned();
        let run = self.call(|s| Box::pin(async move { s.get_tracked_run(&id).await }))?;
        Ok(run.as_ref().map(RunValues::of))
    }
}

impl Recorder for Local {
    fn begin(&self, s: &RunStart) -> Result<Started> {
        let rid = RunId::generate().as_str().to_owned();
        let run = NewRun {
            run_id: rid.clone(),
            pipeline: s.pipeline.clone(),
            trigger: s.trigger.clone(),
            started_ms: s.started_ms,
            git_commit: s.git_commit.clone(),
            git_dirty: s.git_dirty,
            env_fingerprint: s.env_fingerprint.clone(),
            pid: i64::from(std::process::id()),
            host: host(),
            workspace: s.workspace.clone(),
            project: s.project.clone(),
        };
        let run_name = format!("{}-{}", s.pipeline, &rid[..8]);
        let tags = run_tags(s);
        let pipeline = s.pipeline.clone();
        let r = rid.clone();
        let exp = self.call(|st| {
            Box::pin(async move {
                // Runs whose process died (a crash, SIGKILL) are marked crashed.
                st.reap_dead_runs(&host(), &pid_alive).await?;
                st.begin_run(&run).await?;
                let exp = st.ensure_experiment(&pipeline, now_ms()).await?;
                st.attach_run(&r, exp, &run_name, &tags).await?;
                Ok(exp)
            })
        })?;
        Ok(Started {
            run_id: rid,
            experiment_id: exp,
        })
    }

    fn tracking_uri(&self) -> Option<String> {
        None
    }

    fn stage(&self, run: &Started, rec: &StageRecord) -> Result<()> {
        let child = (rec.status != StageStatus::UpToDate).then(|| stage_run(&run.run_id, rec));
        let owned = rec.clone();
        let rid = run.run_id.clone();
        let exp = run.experiment_id;
        self.call(|s| {
            Box::pin(async move {
                s.record_stage(&rid, &owned).await?;
                let Some((tags, metrics, status, started)) = child else {
                    return Ok(());
                };
                let child = RunId::generate();
                s.create_tracked_run(child.as_str(), exp, &owned.stage, "", started, &tags)
                    .await?;
                s.log_batch(child.as_str(), &metrics, &[], &[]).await?;
                s.update_tracked_run(child.as_str(), Some(status), owned.ended_ms, None)
                    .await?;
                Ok(())
            })
        })?;
        if let Some(log) = stage_log(rec) {
            let to = self
                .layout
                .run_artifacts(&run.experiment_id.to_string(), &run.run_id)
                .join(pipeline_runs::stage_log_artifact(&rec.stage));
            let bytes = std::fs::read(log).map_err(|source| crate::Error::Io {
                action: "read",
                path: log.to_owned(),
                source,
            })?;
            ferry_fs::write_atomic(&to, &bytes)?;
        }
        Ok(())
    }

    fn results(
        &self,
        run: &Started,
        params: &[(String, serde_json::Value)],
        metrics: &[MetricRecord],
        tags: &[(String, String)],
    ) -> Result<()> {
        let (rid, p, m, t) = (
            run.run_id.clone(),
            params.to_vec(),
            metrics.to_vec(),
            tags.to_vec(),
        );
        self.call(|s| {
            Box::pin(async move {
                s.record_params(&rid, &p).await?;
                s.record_metrics(&rid, &m).await?;
                s.log_batch(&rid, &[], &[], &t).await
            })
        })?;
        Ok(())
    }

    fn gates(&self, run: &Started, gates: &[GateRecord]) -> Result<()> {
        let (rid, recs) = (run.run_id.clone(), gates.to_vec());
        self.call(|s| Box::pin(async move { s.record_gates(&rid, &recs).await }))?;
        Ok(())
    }

    fn register(
        &self,
        run: &Started,
        project: &Project,
        artifact: &str,
        described: &[(String, String)],
        nv: NewModelVersion,
    ) -> Result<ModelVersion> {
        // The artifact goes under the run's artifacts in the project's
        // artifact folder (the one `ferry server` serves by default), so
        // MLflow clients can download the version.
        let dir = publish_artifact(
            project,
            run.experiment_id,
            &run.run_id,
            artifact,
            &nv.model,
            described,
        )?;
        // What the registry keeps, fixed now: loads verify this digest.
        let mut nv = nv;
        nv.stored = Some(ferry_metadata::StoredFiles {
            location: format!(
                "mlflow-artifacts:/{}/{}/artifacts/{}",
                run.experiment_id, run.run_id, nv.model
            ),
            digest: ferry_cache::stored_digest(&dir)?.to_hex(),
        });
        Ok(self.call(|s| Box::pin(async move { s.create_model_version(&nv).await }))?)
    }

    /// A file the cache holds is linked to its object rather than copied
    /// and synced: the same bytes, durable once the folder is synced (the
    /// object's own bytes were synced when it was cached), which happens
    /// in a thread while the run records its results, and before it
    /// finishes. Neither side is ever written in place: objects are
    /// read-only and replaced by nothing, a run's artifacts are replaced by
    /// a rename when an MLflow client uploads one, and refused once the run
    /// has ended.
    fn attach(
        &self,
        run: &Started,
        project: &Project,
        dir: &str,
        files: &[Attachment],
    ) -> Result<()> {
        let to = project
            .layout()
            .run_artifacts(&run.experiment_id.to_string(), &run.run_id)
            .join(dir);
        let mut linked = false;
        for f in files {
            let src = project.root.join(&f.path);
            let dest = to.join(src.file_name().unwrap_or_default());
            if let Some(object) = &f.cached
                && ferry_fs::replace_with_link(object, &dest).is_ok()
            {
                linked = true;
                continue;
            }
            let bytes = std::fs::read(&src).map_err(|source| crate::Error::Io {
                action: "read",
                path: src.clone(),
                source,
            })?;
            ferry_fs::write_atomic(&dest, &bytes)?;
        }
        if linked {
            let sync = std::thread::spawn(move || ferry_fs::sync_dir(&to));
            self.syncing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sync);
        }
        Ok(())
    }

    fn finish(
        &self,
        run: &Started,
        status: RunStatus,
        message: Option<&str>,
        noop: bool,
    ) -> Result<Vec<Alert>> {
        // What the run kept is durable before it is recorded as finished;
        // should a sync fail, the run is recorded and then fails (its
        // caller records it as failed).
        let synced = self.synced();
        let rid = run.run_id.clone();
        let message = message.map(str::to_owned);
        let tags = noop_tag(noop);
        let alerts = self.call(|s| {
            Box::pin(async move {
                if !tags.is_empty() {
                    s.log_batch(&rid, &[], &[], &tags).await?;
                }
                s.finish_run(&rid, status, now_ms(), message.as_deref())
                    .await?;
                s.release_budget(&rid, now_ms()).await
            })
        })?;
        synced?;
        Ok(alerts)
    }

    fn has_budget(&self, _: &Started, pipeline: &str, workspace: &str) -> Result<bool> {
        let (p, w) = (pipeline.to_owned(), workspace.to_owned());
        Ok(self.call(|s| Box::pin(async move { s.has_budget(&p, &w).await }))?)
    }

    fn recent_stage_costs(&self, _: &Started, pipeline: &str, stage: &str) -> Result<Vec<f64>> {
        let (p, st) = (pipeline.to_owned(), stage.to_owned());
        Ok(self.call(|s| {
            Box::pin(async move {
                s.recent_stage_costs(&p, &st, ferry_cost::budget::HISTORY_RUNS)
                    .await
            })
        })?)
    }

    fn hold_budget(&self, hold: &Hold, reason: Option<&str>) -> Result<Held> {
        let h = hold.clone();
        let reason = reason.map(str::to_owned);
        Ok(self.call(|s| {
            Box::pin(async move {
                let held = s.hold_budget(&h).await?;
                if h.over && !held.short.is_empty() {
                    let e = ferry_auth::audit::Event {
                        time_ms: now_ms(),
                        actor: ferry_metadata::cli_actor(),
                        token_id: None,
                        action: "budget.override".into(),
                        resource: format!("run:{}", h.run_id),
                        outcome: "allowed".into(),
                        source: "local".into(),
                        reason,
                    };
                    s.append_audit(&e).await?;
                }
                Ok(held)
            })
        })?)
    }
}

/// Copies `artifact` (a file or folder of the project) into the folder
/// `.ferry/artifacts/<experiment>/<run>/artifacts/<model>/` (a file keeps its
/// name; a folder's contents go in), through a temporary name and a rename.
/// MLflow clients load a model from a folder, hence the folder, which is
/// returned.
fn publish_artifact(
    project: &Project,
    experiment_id: ExperimentId,
    rid: &str,
    artifact: &str,
    model: &str,
    described: &[(String, String)],
) -> Result<std::path::PathBuf> {
    use crate::Error;
    let io = |action: &'static str, path: &std::path::Path| {
        let path = path.to_owned();
        move |source: std::io::Error| Error::Io {
            action,
            path,
            source,
        }
    };
    let src = project.root.join(artifact);
    let dst = project
        .layout()
        .run_artifacts(&experiment_id.to_string(), rid)
        .join(model);
    let parent = dst.parent().unwrap_or(&dst).to_owned();
    std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    let tmp = parent.join(format!(".ferry-publish-{}", std::process::id()));
    fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        if from.is_dir() {
            std::fs::create_dir_all(to)?;
            for e in std::fs::read_dir(from)? {
                let e = e?;
                copy_tree(&e.path(), &to.join(e.file_name()))?;
            }
            Ok(())
        } else {
            std::fs::copy(from, to).map(|_| ())
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let target = if src.is_dir() {
        tmp.clone()
    } else {
        std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
        tmp.join(src.file_name().unwrap_or_default())
    };
    copy_tree(&src, &target).map_err(io("copy", &src))?;
    if !tmp.join("MLmodel").exists() {
        for (rel, text) in described {
            let path = tmp.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io("create", dir))?;
            }
            std::fs::write(&path, text).map_err(io("write", &path))?;
        }
    }
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::rename(&tmp, &dst).map_err(io("rename", &dst))?;
    Ok(dst)
}

/// The files of `artifact` (a file, or every file under a folder), each
/// with its path relative to what the model folder should hold.
fn artifact_files(
    root: &std::path::Path,
    artifact: &str,
) -> Result<Vec<(String, std::path::PathBuf)>> {
    use crate::Error;
    let src = root.join(artifact);
    let mut out = Vec::new();
    if src.is_dir() {
        let mut stack = vec![(String::new(), src.clone())];
        while let Some((prefix, dir)) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io {
                action: "read",
                path: dir.clone(),
                source,
            })?;
            for e in entries {
                let e = e.map_err(|source| Error::Io {
                    action: "read",
                    path: dir.clone(),
                    source,
                })?;
                let name = e.file_name().to_string_lossy().into_owned();
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                if e.path().is_dir() {
                    stack.push((rel, e.path()));
                } else {
                    out.push((rel, e.path()));
                }
            }
        }
        out.sort();
    } else {
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "artifact".into());
        out.push((name, src));
    }
    Ok(out)
}

// ----------------------------------------------------------------- remote

/// A team's `ferry server`, over its MLflow REST API.
pub(crate) struct Remote {
    client: ferry_client::Client,
    /// The sum of the costs of the stages recorded so far: the run's cost,
    /// logged as a metric of its MLflow run when it finishes.
    cost: std::sync::Mutex<Option<f64>>,
    /// The run's project, as its stages' costs name it.
    project: std::sync::OnceLock<String>,
}

impl Remote {
    pub fn new(url: &str) -> Result<Self> {
        Ok(Self {
            client: ferry_client::Client::new(url)?,
            cost: std::sync::Mutex::new(None),
            project: std::sync::OnceLock::new(),
        })
    }
}

/// A call to the server's cost API that an older server (without it)
/// answers with 404: nothing is recorded there, and the run goes on.
fn unless_missing<T>(r: ferry_client::Result<T>, otherwise: T) -> Result<T> {
    match r {
        Err(e) if e.is_not_found() => Ok(otherwise),
        other => Ok(other?),
    }
}

impl Registry for Remote {
    fn list_models(&self) -> Result<Vec<ModelSummary>> {
        Ok(self.client.list_models()?)
    }

    fn versions(&self, model: &str) -> Result<Vec<ModelVersion>> {
        Ok(self.client.list_versions(model)?)
    }

    fn resolve(&self, r: &ModelRef) -> Result<Option<ModelVersion>> {
        Ok(match r {
            ModelRef::Alias(m, a) => self.client.resolve_alias(m.as_str(), a)?,
            ModelRef::Version(m, v) => self.client.get_version(m.as_str(), *v as i64)?,
            ModelRef::Latest(m) => self.client.latest_version(m.as_str())?,
        })
    }

    /// The reason travels beside the MLflow request (a ferry header).
    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: i64,
        reason: Option<&str>,
    ) -> Result<Option<i64>> {
        let before = self.client.resolve_alias(model, alias)?.map(|v| v.version);
        self.client.set_alias(model, alias, version, reason)?;
        Ok(before)
    }

    fn alias_history(&self, _model: &str) -> Result<Vec<AliasEvent>> {
        Err(crate::Error::Unsupported(
            "alias history is not part of the MLflow API: run `ferry models history` where the server's store is",
        ))
    }

    fn run_values(&self, run_id: &str) -> Result<Option<RunValues>> {
        Ok(self.client.get_run(run_id)?.as_ref().map(RunValues::of))
    }
}

impl Recorder for Remote {
    fn begin(&self, s: &RunStart) -> Result<Started> {
        let exp = self.client.experiment(&s.pipeline)?;
        let mut tags = run_tags(s);
        if let Some(d) = s.git_dirty {
            tags.push(("ferry.git.dirty".to_owned(), d.to_string()));
        }
        // The server names the run; the name follows once the id is known.
        let (rid, _) = self
            .client
            .create_run(&exp, &s.pipeline, s.started_ms, &tags)?;
        let name = format!("{}-{}", s.pipeline, &rid[..rid.len().min(8)]);
        self.client
            .log_batch(&rid, &[], &[], &[("mlflow.runName".to_owned(), name)])?;
        let _ = self.project.set(s.project.clone());
        Ok(Started {
            run_id: rid,
            experiment_id: exp,
        })
    }

    fn tracking_uri(&self) -> Option<String> {
        Some(self.client.url().to_owned())
    }

    fn stage(&self, run: &Started, rec: &StageRecord) -> Result<()> {
        if let Some(c) = &rec.cost {
            let mut total = self.cost.lock().unwrap_or_else(|e| e.into_inner());
            *total = Some(total.unwrap_or(0.0) + c.charged);
        }
        if rec.status == StageStatus::UpToDate {
            return Ok(());
        }
        if let Some(cost) = &rec.cost {
            let body = serde_json::json!({
                "run_id": run.run_id,
                "stage": rec.stage,
                "position": rec.position,
                "status": rec.status.as_str(),
                "started_ms": rec.started_ms,
                "ended_ms": rec.ended_ms,
                "cost": cost,
                "project": self.project.get(),
            });
            unless_missing(self.client.record_stage_cost(&body), ())?;
        }
        let (tags, metrics, status, started) = stage_run(&run.run_id, rec);
        let (child, _) = self
            .client
            .create_run(&run.experiment_id, &rec.stage, started, &tags)?;
        self.client.log_batch(&child, &metrics, &[], &[])?;
        self.client
            .finish_run(&child, status, rec.ended_ms.unwrap_or_else(now_ms))?;
        if let Some(log) = stage_log(rec) {
            let dest = format!(
                "{}/{}/artifacts/{}",
                run.experiment_id,
                run.run_id,
                pipeline_runs::stage_log_artifact(&rec.stage)
            );
            self.client.upload_artifact(&dest, log)?;
        }
        Ok(())
    }

    fn results(
        &self,
        run: &Started,
        params: &[(String, serde_json::Value)],
        metrics: &[MetricRecord],
        tags: &[(String, String)],
    ) -> Result<()> {
        let p: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.clone(), param_text(v)))
            .collect();
        let m: Vec<Metric> = metrics
            .iter()
            .map(|m| Metric {
                key: m.key.clone(),
                value: m.value,
                timestamp: m.ts_ms,
                step: m.step,
            })
            .collect();
        self.client.log_batch(&run.run_id, &m, &p, tags)?;
        Ok(())
    }

    fn gates(&self, run: &Started, gates: &[GateRecord]) -> Result<()> {
        // MLflow has no gate records: each gate is a tag of the run,
        // `ferry.gate.<n>` (gate names may hold characters tag keys cannot).
        let tags: Vec<(String, String)> = gates
            .iter()
            .enumerate()
            .map(|(i, g)| {
                // A skipped gate's message says so (`skipped: ...`).
                let verdict = match (g.passed, g.message.starts_with("skipped: ")) {
                    (true, true) => "skipped",
                    (true, false) => "passed",
                    (false, _) => "failed",
                };
                let message = g.message.strip_prefix("skipped: ").unwrap_or(&g.message);
                let named = if g.name == g.expr {
                    String::new()
                } else {
                    format!("{}: ", g.name)
                };
                let text: String = format!("{verdict}: {named}{message}")
                    .chars()
                    .take(5000)
                    .collect();
                (format!("ferry.gate.{}", i + 1), text)
            })
            .collect();
        self.client.log_batch(&run.run_id, &[], &[], &tags)?;
        Ok(())
    }

    fn register(
        &self,
        run: &Started,
        project: &Project,
        artifact: &str,
        described: &[(String, String)],
        nv: NewModelVersion,
    ) -> Result<ModelVersion> {
        // Every file goes up before the version exists, so a version never
        // points at a partial upload.
        let files = artifact_files(&project.root, artifact)?;
        let folder = format!(
            "{}/{}/artifacts/{}",
            run.experiment_id, run.run_id, nv.model
        );
        for (rel, path) in &files {
            self.client
                .upload_artifact(&format!("{folder}/{rel}"), path)?;
        }
        if !files.iter().any(|(rel, _)| rel == "MLmodel") {
            for (rel, text) in described {
                let tmp = project
                    .layout()
                    .ferry_dir()
                    .join(format!(".ferry-described-{}", std::process::id()));
                ferry_fs::write_atomic(&tmp, text.as_bytes())?;
                let sent = self
                    .client
                    .upload_artifact(&format!("{folder}/{rel}"), &tmp);
                let _ = std::fs::remove_file(&tmp);
                sent?;
            }
        }
        let source = format!("runs:/{}/{}", run.run_id, nv.model);
        Ok(self.client.create_model_version(&nv, &source)?)
    }

    fn attach(
        &self,
        run: &Started,
        project: &Project,
        dir: &str,
        files: &[Attachment],
    ) -> Result<()> {
        for f in files {
            let src = project.root.join(&f.path);
            let name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dest = format!(
                "{}/{}/artifacts/{dir}/{name}",
                run.experiment_id, run.run_id
            );
            self.client.upload_artifact(&dest, &src)?;
        }
        Ok(())
    }

    fn finish(
        &self,
        run: &Started,
        status: RunStatus,
        message: Option<&str>,
        noop: bool,
    ) -> Result<Vec<Alert>> {
        let mut tags = vec![("ferry.status".to_owned(), status.as_str().to_owned())];
        tags.extend(noop_tag(noop));
        if let Some(m) = message {
            tags.push(("ferry.message".to_owned(), m.chars().take(5000).collect()));
        }
        let cost = *self.cost.lock().unwrap_or_else(|e| e.into_inner());
        let metrics: Vec<Metric> = cost
            .map(|c| Metric {
                key: pipeline_runs::COST_METRIC.to_owned(),
                value: c,
                timestamp: now_ms(),
                step: 0,
            })
            .into_iter()
            .collect();
        self.client.log_batch(&run.run_id, &metrics, &[], &tags)?;
        let mlflow = match status {
            RunStatus::Succeeded => "FINISHED",
            RunStatus::Cancelled => "KILLED",
            _ => "FAILED",
        };
        self.client.finish_run(&run.run_id, mlflow, now_ms())?;
        // The server posts the alerts to their webhooks.
        let ended = unless_missing(
            self.client.finish_costs(
                &run.run_id,
                status.as_str(),
                self.project.get().map(String::as_str),
            ),
            serde_json::Value::Null,
        )?;
        let mut alerts: Vec<Alert> =
            serde_json::from_value(ended["alerts"].clone()).unwrap_or_default();
        for a in &mut alerts {
            a.webhook = None;
        }
        Ok(alerts)
    }

    // The server knows the run's pipeline and workspace (its experiment's
    // name and workspace): the spec's are not asked.
    fn has_budget(&self, run: &Started, _: &str, _: &str) -> Result<bool> {
        unless_missing(self.client.budget_covers(&run.run_id), false)
    }

    fn recent_stage_costs(&self, run: &Started, _: &str, stage: &str) -> Result<Vec<f64>> {
        Ok(self.client.recent_stage_costs(&run.run_id, stage)?)
    }

    fn hold_budget(&self, hold: &Hold, reason: Option<&str>) -> Result<Held> {
        let v = self.client.hold_budget(
            &hold.run_id,
            hold.estimate_usd,
            self.project.get().map(String::as_str),
            reason.filter(|_| hold.over),
        )?;
        serde_json::from_value(v).map_err(|e| {
            crate::Error::Remote(ferry_client::Error::BadResponse {
                endpoint: "POST /api/2.0/ferry/budgets/hold".into(),
                detail: e.to_string(),
            })
        })
    }
}

/// The CPU this thread runs on now, if the system says.
fn current_cpu() -> Option<usize> {
    // SAFETY: no arguments; returns -1 on failure.
    usize::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// This thread held to one CPU until dropped, then given back the CPUs it
/// could run on before.
struct OnCpu {
    before: libc::cpu_set_t,
}

impl OnCpu {
    /// `None` (and nothing changed) when the thread may not run on `cpu`
    /// or its CPUs cannot be set.
    fn enter(cpu: usize) -> Option<Self> {
        // SAFETY: cpu_set_t is plain data; the calls get its size and
        // pointers to sets this function owns; 0 is this thread.
        unsafe {
            let mut before: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut before) != 0
                || cpu >= libc::CPU_SETSIZE as usize
                || !libc::CPU_ISSET(cpu, &before)
            {
                return None;
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            (libc::sched_setaffinity(0, size, &one) == 0).then_some(Self { before })
        }
    }
}

impl Drop for OnCpu {
    fn drop(&mut self) {
        // SAFETY: restores the set read in `enter`, for this thread.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.before);
        }
    }
}

fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn pid_alive(pid: i64) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

/// An alias moved on the store itself, as a team's rules say: on a store
/// with users, a protected alias (`ferry_metadata::protects`) moves only
/// with a reason; every move is appended to the audit log (who, why, and
/// the action), in the store's own order.
async fn set_alias_audited(
    s: &dyn ferry_metadata::MetadataStore,
    model: &str,
    alias: &str,
    version: i64,
    reason: Option<String>,
) -> std::result::Result<AliasEvent, ferry_metadata::Error> {
    if reason.is_none()
        && !s.list_users().await?.is_empty()
        && s.get_registered_model(model)
            .await?
            .is_some_and(|m| m.protects(alias))
    {
        return Err(ferry_metadata::Error::Invalid(format!(
            "`{alias}` is a protected alias of `{model}`: it moves through a passing `ferry deploy` or gate, or by hand with a reason (`--reason TEXT`)"
        )));
    }
    let ev = s
        .set_alias(model, alias, version, reason.as_deref(), now_ms())
        .await?;
    let e = ferry_auth::audit::Event {
        time_ms: now_ms(),
        actor: ferry_metadata::cli_actor(),
        token_id: None,
        action: "registered_model.alias.set".into(),
        resource: format!("registered_model:{model}"),
        outcome: "allowed".into(),
        source: "local".into(),
        reason,
    };
    s.append_audit(&e).await?;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus() -> Vec<usize> {
        // SAFETY: reads this thread's set into one this function owns.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
            (0..libc::CPU_SETSIZE as usize)
                .filter(|c| libc::CPU_ISSET(*c, &set))
                .collect()
        }
    }

    #[test]
    fn a_thread_is_held_to_one_cpu_and_given_its_cpus_back() {
        let before = cpus();
        let cpu = current_cpu().unwrap_or(before[0]);
        {
            let held = OnCpu::enter(cpu);
            assert!(held.is_some());
            assert_eq!(cpus(), [cpu]);
        }
        assert_eq!(cpus(), before);
        // A CPU it may not run on: nothing changes.
        assert!(OnCpu::enter(libc::CPU_SETSIZE as usize).is_none());
        assert_eq!(cpus(), before);
    }
}
