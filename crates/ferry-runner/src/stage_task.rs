//! A stage run away from the project (a Kubernetes pod; any other machine):
//! the task it is handed and the two halves that use it.
//!
//! The coordinator (`ferry run` with a [`TaskExecutor`]) decides as always.
//! For a stage that must run it stores the stage's files (the spec, the
//! params file, the environment's requirements and every dep) in its
//! cache, sends them with the [`StageTask`] naming them to the remote, and
//! has a [`Launcher`] start `ferry stage run` on the task somewhere. There
//! ([`run_task`]) the files are fetched by digest and verified, the project
//! they make is loaded, and the one stage is run by the same `run_with` a
//! laptop uses (forced, without its upstream, its outputs pushed to the
//! remote's run cache under the coordinator's fingerprint). Back home the
//! executor fetches that run-cache entry and puts the outputs into the work
//! tree; the run then settles the stage as if it had run here: its outputs
//! hashed, cached, locked. So only what changed runs, and everything is
//! restored by digest.

use crate::engine::Engine;
use crate::executor::{Executor, StageCommand};
use crate::report::Reporter;
use crate::{Project, RunOptions, SharedCache};
use ferry_cache::{Cache, OutRecord};
use ferry_core::Digest;
use ferry_executor::{CancelToken, Exit, Outcome, OutputSink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The task format this ferry writes and reads.
pub const TASK_FORMAT: u32 = 1;

/// The path a task has among the files it is sent with (never a project
/// file: `.ferry` is ferry's own).
pub const TASK_PATH: &str = ".ferry/task.json";

/// The marker before the result line `ferry stage run` prints last.
pub const RESULT_MARKER: &str = "ferry-stage-result: ";

/// What a stage pod is handed: everything one stage needs, by digest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageTask {
    pub format: u32,
    pub pipeline: String,
    pub stage: String,
    /// The stage's fingerprint where the run decided it: its outputs are
    /// pushed to the remote's run cache under it.
    pub fingerprint: Digest,
    /// The spec, the params file, the requirements and every dep, at their
    /// project paths.
    pub files: Vec<OutRecord>,
    /// The run that sent it (the stage's pod runs a run of its own, which
    /// its log names beside this one).
    pub run_id: String,
    /// Other stages' deps that exist in the project but are not sent: the
    /// spec is checked as it was there.
    #[serde(default)]
    pub elsewhere: Vec<String>,
}

impl StageTask {
    /// The task as the bytes that are sent, and their digest (the task's name).
    pub fn encode(&self) -> (Vec<u8>, Digest) {
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        let digest = Digest::of(&bytes);
        (bytes, digest)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("the task is not JSON: {e}"))?;
        let format = v.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
        if format != u64::from(TASK_FORMAT) {
            return Err(format!(
                "the task is in format {format}; this ferry reads format {TASK_FORMAT} (run the same ferry version in the image as on the coordinator)"
            ));
        }
        let task: Self = serde_json::from_value(v).map_err(|e| format!("the task: {e}"))?;
        for f in &task.files {
            // Restored under the work folder: a path must stay inside it.
            if !is_relative_inside(&f.path) || f.path.split('/').next() == Some(".ferry") {
                return Err(format!("the task names the path `{}`", f.path));
            }
        }
        Ok(task)
    }
}

/// Whether `path` stays inside the folder it is taken from: relative, no
/// empty, `.` or `..` segment, no backslash or control character.
fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && !path.chars().any(|c| c == '\\' || c.is_control())
}

/// How the stage ended, as `ferry stage run` reports it on its last line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskResult {
    pub stage: String,
    /// The command's exit code (none when it was killed by a signal, timed
    /// out, or never started).
    pub exit_code: Option<i32>,
    pub ok: bool,
    pub error: Option<String>,
    pub cpu_ms: Option<i64>,
    pub max_rss_bytes: Option<i64>,
}

impl TaskResult {
    /// The result line, marker first.
    pub fn line(&self) -> String {
        format!(
            "{RESULT_MARKER}{}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// A result line's result.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line.trim().strip_prefix(RESULT_MARKER)?).ok()
    }

    /// The outcome of the process or pod that ran a task, told by its
    /// result line: the stage command's exit code (or why the stage mode
    /// could not run it) and resources, not those of the ferry around it.
    /// Only an exit code is reinterpreted: a timeout, a cancellation or a
    /// cluster's reason stays.
    pub fn tell(mut outcome: Outcome, result: Option<&TaskResult>) -> Outcome {
        if let Some(r) = result {
            if let Some(cpu) = r.cpu_ms {
                outcome.user_cpu = Duration::from_millis(cpu.max(0) as u64);
                outcome.sys_cpu = Duration::ZERO;
            }
            if let Some(rss) = r.max_rss_bytes {
                outcome.max_rss_bytes = rss.max(0) as u64;
            }
        }
        outcome.exit = match (outcome.exit, result) {
            (Exit::Code(0), Some(r)) if r.ok => Exit::Code(0),
            (Exit::Code(0), None) => Exit::Failed("the stage mode printed no result".into()),
            (Exit::Code(c), Some(r)) if !r.ok => match (r.exit_code, &r.error) {
                (Some(code), _) if code != 0 => Exit::Code(code),
                (_, Some(e)) => Exit::Failed(e.clone()),
                _ => Exit::Code(c),
            },
            (exit, _) => exit,
        };
        outcome
    }
}

/// The result line among a task's output lines, kept once seen (and never
/// shown with the stage's output).
#[derive(Debug, Default)]
pub struct ResultLine(std::sync::Mutex<Option<TaskResult>>);

impl ResultLine {
    /// Whether `line` is the result line (then kept).
    pub fn take(&self, line: &str) -> bool {
        let Some(r) = TaskResult::parse(line) else {
            return false;
        };
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(r);
        }
        true
    }

    pub fn get(&self) -> Option<TaskResult> {
        self.0.lock().ok().and_then(|r| r.clone())
    }
}

/// The task of `cmd`'s stage in `project`, its files stored in the cache.
pub(crate) fn make_task(
    project: &Project,
    engine: &mut Engine<'_>,
    stage: &ferry_spec::Stage,
    fingerprint: Digest,
    run_id: String,
) -> crate::Result<StageTask> {
    let p = &project.pipeline;
    let mut paths: Vec<String> = vec![crate::SPEC_FILE.to_owned()];
    if project.root.join(&p.params_file).exists() {
        paths.push(p.params_file.clone());
    }
    if let Some(env) = &p.env {
        paths.push(env.requirements.clone());
    }
    paths.extend(stage.deps.iter().cloned());
    paths.sort();
    paths.dedup();
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        if let Some(out) = engine.stash(path)? {
            files.push(out);
        }
    }
    let mut elsewhere: Vec<String> = p
        .stages
        .iter()
        .flat_map(|s| &s.deps)
        .filter(|d| !paths.contains(d))
        .filter(|d| {
            project.root.join(d).exists()
                || project
                    .root
                    .join(format!("{d}{}", crate::POINTER_SUFFIX))
                    .exists()
        })
        .cloned()
        .collect();
    elsewhere.sort();
    elsewhere.dedup();
    Ok(StageTask {
        format: TASK_FORMAT,
        pipeline: p.name.clone(),
        stage: stage.name.to_string(),
        fingerprint,
        files,
        run_id,
        elsewhere,
    })
}

/// What starts `ferry stage run` on a task somewhere: a Kubernetes Job, a
/// local process (`--executor isolated`, and the tests).
pub trait Launcher: Send + Sync {
    /// Runs the task named `task` (sent to the remote already) to its end,
    /// its output lines to `sink` as they come; stopped once `cancel` is set
    /// or after `launch.timeout`. Its exit (`Exit::Code` of the stage's
    /// command when the task ran; `Exit::Failed` with the reason when it
    /// could not, such as a pod that cannot be scheduled).
    fn launch(&self, launch: &Launch, sink: Arc<dyn OutputSink>, cancel: &CancelToken) -> Outcome;
}

/// One attempt of a task, as a launcher gets it.
#[derive(Debug, Clone)]
pub struct Launch {
    pub stage: String,
    pub task: Digest,
    pub run_id: String,
    /// The stage's `resources:` and placement, for a launcher that asks a
    /// cluster for them.
    pub resources: Option<ferry_cost::Requested>,
    pub placement: ferry_spec::Placement,
    pub timeout: Option<Duration>,
    pub log_path: PathBuf,
}

/// The [`Executor`] that runs stages as tasks: sends each stage's files and
/// task to `shared`, has `launcher` run it, and brings the outputs back.
pub struct TaskExecutor {
    pub shared: Arc<dyn SharedCache>,
    pub launcher: Arc<dyn Launcher>,
    pub cache: Cache,
    pub root: PathBuf,
    pub placement: ferry_spec::Placement,
}

impl Executor for TaskExecutor {
    fn wants_task(&self) -> bool {
        true
    }

    fn execute(
        &self,
        cmd: &StageCommand,
        sink: Arc<dyn OutputSink>,
        cancel: &CancelToken,
    ) -> Outcome {
        let started = std::time::Instant::now();
        let failed = |why: String| Outcome::of(Exit::Failed(why), started.elapsed());
        let Some(task) = &cmd.task else {
            return failed("no task was made for this stage".into());
        };
        let (bytes, digest) = task.encode();
        let mut files = task.files.clone();
        match self.stash_task(&bytes, digest) {
            Ok(rec) => files.push(rec),
            Err(why) => return failed(why),
        }
        if let Err(why) = self.shared.push_files(&self.cache, &files) {
            return failed(format!(
                "sending the stage's files to remote `{}`: {why}",
                self.shared.name()
            ));
        }
        let launch = Launch {
            stage: cmd.stage.clone(),
            task: digest,
            run_id: task.run_id.clone(),
            resources: cmd.resources.clone(),
            placement: self.placement.merged(cmd.placement.as_ref()),
            timeout: cmd.timeout,
            log_path: cmd.log_path.clone(),
        };
        let outcome = self.launcher.launch(&launch, sink, cancel);
        if !outcome.exit.success() {
            return outcome;
        }
        match self.bring_back(task) {
            Ok(()) => outcome,
            Err(why) => Outcome {
                exit: Exit::Failed(why),
                ..outcome
            },
        }
    }
}

impl TaskExecutor {
    /// The task's bytes as a cache object, to be sent with its files.
    fn stash_task(&self, bytes: &[u8], digest: Digest) -> Result<OutRecord, String> {
        let path = self
            .root
            .join(format!(".ferry/task-{}.json", digest.short(16)));
        ferry_fs::write_atomic(&path, bytes).map_err(|e| e.to_string())?;
        let pd = ferry_cache::PathDigest::File {
            digest,
            size: bytes.len() as u64,
        };
        let stored = self.cache.store(&path, &pd).map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&path);
        stored?;
        Ok(OutRecord {
            path: TASK_PATH.into(),
            digest,
            size: bytes.len() as u64,
            files: None,
        })
    }

    /// The outputs the task left in the remote's run cache, in the work tree.
    fn bring_back(&self, task: &StageTask) -> Result<(), String> {
        let found = self
            .shared
            .fetch_run(&self.cache, &task.fingerprint)
            .map_err(|e| {
                format!(
                    "fetching the stage's outputs from remote `{}`: {e}",
                    self.shared.name()
                )
            })?;
        let entry = match self.cache.run_entry(&task.fingerprint) {
            Ok(Some(entry)) if found => entry,
            Ok(_) => {
                return Err(format!(
                    "the stage ended but remote `{}` has no outputs for it (run-cache entry {})",
                    self.shared.name(),
                    task.fingerprint.short(12)
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        for out in &entry.outs {
            self.cache
                .restore(&self.root, out)
                .map_err(|e| format!("restoring `{}`: {e}", out.path))?;
        }
        Ok(())
    }
}

/// Runs the task named `task` from `shared` in `workdir` (empty, or left by
/// an earlier attempt): `ferry stage run`. Output goes to `reporter`; the
/// result says how the stage's command ended.
pub fn run_task(
    workdir: &Path,
    task: &Digest,
    shared: Arc<dyn SharedCache>,
    reporter: Arc<dyn Reporter>,
    cancel: &CancelToken,
) -> Result<TaskResult, String> {
    let cache = Cache::new(&workdir.join(".ferry/cache"));
    let task_rec = OutRecord {
        path: TASK_PATH.into(),
        digest: *task,
        size: 0,
        files: None,
    };
    shared
        .fetch_files(&cache, std::slice::from_ref(&task_rec))
        .map_err(|e| {
            format!(
                "fetching the task {} from `{}`: {e}",
                task.short(12),
                shared.name()
            )
        })?;
    let bytes = cache
        .object(task)
        .and_then(|p| std::fs::read(p).ok())
        .ok_or_else(|| format!("the task {} is not on `{}`", task.short(12), shared.name()))?;
    let task = StageTask::decode(&bytes)?;
    shared
        .fetch_files(&cache, &task.files)
        .map_err(|e| format!("fetching the stage's files from `{}`: {e}", shared.name()))?;
    for f in &task.files {
        cache
            .restore(workdir, f)
            .map_err(|e| format!("restoring `{}`: {e}", f.path))?;
    }
    let project = Project::load_with(workdir, &task.elsewhere).map_err(|e| e.to_string())?;
    eprintln!(
        "stage `{}` of run {} of pipeline `{}`: {} files fetched",
        task.stage,
        task.run_id,
        task.pipeline,
        task.files.len()
    );
    let opts = RunOptions {
        targets: vec![task.stage.clone()],
        single: true,
        force: true,
        jobs: 1,
        trigger: "stage".into(),
        shared: Some(shared.clone()),
        push: true,
        ..RunOptions::default()
    };
    let report = crate::run(&project, &opts, reporter, cancel).map_err(|e| e.to_string())?;
    let stage = report
        .stages
        .iter()
        .find(|s| s.stage == task.stage)
        .ok_or_else(|| format!("the run did not reach stage `{}`", task.stage))?;
    let ok = stage.status == ferry_metadata::StageStatus::Ran;
    let mut result = TaskResult {
        stage: task.stage.clone(),
        exit_code: stage.exit_code.and_then(|c| i32::try_from(c).ok()),
        ok,
        error: stage.error.clone(),
        cpu_ms: match (stage.user_cpu_ms, stage.sys_cpu_ms) {
            (Some(u), Some(s)) => Some(u + s),
            _ => None,
        },
        max_rss_bytes: stage.max_rss_bytes,
    };
    if ok && let Err(e) = share_as(&project, &cache, &task, shared.as_ref()) {
        result.ok = false;
        result.error = Some(e);
    }
    Ok(result)
}

/// The stage's run-cache entry here, also under the coordinator's
/// fingerprint on the remote (they differ when the pod's environment does).
fn share_as(
    project: &Project,
    cache: &Cache,
    task: &StageTask,
    shared: &dyn SharedCache,
) -> Result<(), String> {
    let engine = Engine::open(project).map_err(|e| e.to_string())?;
    let here = engine
        .locked(&task.stage)
        .map(|l| l.fingerprint)
        .ok_or_else(|| format!("stage `{}` left no lock entry", task.stage))?;
    if here == task.fingerprint {
        return Ok(());
    }
    // Deps, command and params are the coordinator's: only the environment
    // can differ.
    eprintln!(
        "note: this pod's Python environment differs from the run's (stage fingerprint {} here, {} there); its outputs are kept under the run's",
        here.short(12),
        task.fingerprint.short(12)
    );
    let entry = cache
        .run_entry(&here)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("stage `{}` left no run-cache entry", task.stage))?;
    cache
        .put_run_entry(&task.fingerprint, &entry)
        .map_err(|e| e.to_string())?;
    shared.push_run(cache, &task.fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(paths: &[&str]) -> StageTask {
        StageTask {
            format: TASK_FORMAT,
            pipeline: "iris".into(),
            stage: "train".into(),
            fingerprint: Digest::of(b"fp"),
            files: paths
                .iter()
                .map(|p| OutRecord {
                    path: (*p).into(),
                    digest: Digest::of(p.as_bytes()),
                    size: 1,
                    files: None,
                })
                .collect(),
            run_id: "r1".into(),
            elsewhere: vec![],
        }
    }

    #[test]
    fn a_task_round_trips_under_its_digest() {
        let t = task(&["ferry.yaml", "work/train.csv"]);
        let (bytes, digest) = t.encode();
        assert_eq!(digest, Digest::of(&bytes));
        assert_eq!(StageTask::decode(&bytes).unwrap(), t);
    }

    #[test]
    fn a_task_that_names_a_path_outside_its_folder_is_refused() {
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a//b",
            "a/./b",
            ".ferry/ferry.db",
            "a\\b",
        ] {
            let (bytes, _) = task(&["ferry.yaml", bad]).encode();
            let e = StageTask::decode(&bytes).unwrap_err();
            assert!(e.contains("names the path"), "{bad}: {e}");
        }
    }

    #[test]
    fn another_format_is_refused_with_what_to_do() {
        let mut v = serde_json::to_value(task(&["ferry.yaml"])).unwrap();
        v["format"] = serde_json::json!(2);
        let e = StageTask::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            e.contains("format 2") && e.contains("same ferry version"),
            "{e}"
        );
        assert!(StageTask::decode(b"not json").is_err());
    }

    #[test]
    fn the_result_line_is_found_among_output() {
        let r = TaskResult {
            stage: "train".into(),
            exit_code: Some(3),
            ok: false,
            error: None,
            cpu_ms: Some(5),
            max_rss_bytes: None,
        };
        assert_eq!(TaskResult::parse(&r.line()), Some(r));
        assert_eq!(TaskResult::parse("epoch 1 loss 0.3"), None);
        assert_eq!(TaskResult::parse("ferry-stage-result: {broken"), None);
    }
}
