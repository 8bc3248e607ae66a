//! Stages away from their project: `ferry stage run` (the stage mode a pod
//! runs), and the executors `ferry run --executor isolated|kubernetes`
//! hands stages to. The runner's `TaskExecutor` does the sending and the
//! bringing back; this module picks the launcher and spells the stage
//! mode's arguments.

use crate::cli::{ExecutorArg, StageRunArgs};
use crate::exit::{self, usage};
use anyhow::{Context, Result};
use ferry_executor::{CancelToken, Exit, Outcome, OutputSink};
use ferry_runner::{Executor, Launch, Launcher, LocalProcesses, Project, ResultLine, TaskResult};
use ferry_spec::{ExecutorKind, RemoteConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `ferry stage run TASK --remote URL`: the task's files fetched into the
/// work folder, its stage run, its outputs pushed; the result's line last
/// on stdout. Exits with the stage command's code (1 when it could not run).
pub(crate) fn run(args: &StageRunArgs) -> Result<u8> {
    let task: ferry_core::Digest = args.task.parse().map_err(|e| usage(format!("{e}")))?;
    let mut options = BTreeMap::new();
    if let Some(e) = &args.endpoint {
        options.insert("endpoint".to_owned(), e.clone());
    }
    if let Some(r) = &args.region {
        options.insert("region".to_owned(), r.clone());
    }
    if args.allow_http {
        options.insert("allow_http".to_owned(), "true".to_owned());
    }
    let cfg = RemoteConfig {
        name: "stage".into(),
        url: args.remote.clone(),
        default: true,
        options,
    };
    let workdir = match &args.workdir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    std::fs::create_dir_all(workdir.join(".ferry"))
        .with_context(|| format!("cannot create `{}`", workdir.display()))?;
    let shared = crate::remote::lazy(cfg, &workdir);
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        let _ = ctrlc::set_handler(move || cancel.cancel());
    }
    let term = Arc::new(crate::ui::Terminal::new(
        crate::ui::Style { color: false },
        false,
    ));
    let result = ferry_runner::run_task(&workdir, &task, shared, term.clone(), &cancel);
    term.finish();
    let result = match result {
        Ok(r) => r,
        Err(why) => {
            // The run that sent the task shows why, not a bare exit code.
            let r = TaskResult {
                stage: String::new(),
                exit_code: None,
                ok: false,
                error: Some(why.clone()),
                cpu_ms: None,
                max_rss_bytes: None,
            };
            println!("{}", r.line());
            return Err(anyhow::Error::msg(why));
        }
    };
    println!("{}", result.line());
    Ok(match (result.ok, result.exit_code) {
        (true, _) => exit::OK,
        (false, Some(c)) if (1..=255).contains(&c) => c as u8,
        (false, _) => 1,
    })
}

/// What runs the stage commands of `ferry run`: the flag, else ferry.yaml's
/// `executor:`. Isolated and Kubernetes stages move their files through the
/// run's remote (`shared`).
pub(crate) fn executor(
    project: &Project,
    arg: Option<ExecutorArg>,
    shared: Option<&Arc<dyn ferry_runner::SharedCache>>,
) -> Result<Arc<dyn Executor>> {
    let kind = arg.unwrap_or(match project.pipeline.executor {
        ExecutorKind::Local => ExecutorArg::Local,
        ExecutorKind::Kubernetes => ExecutorArg::Kubernetes,
    });
    if kind == ExecutorArg::Local {
        return Ok(Arc::new(LocalProcesses));
    }
    let k8s = project.pipeline.kubernetes.clone().unwrap_or_default();
    let (cfg, shared) = crate::remote::for_stages(project, k8s.remote.as_deref(), shared)?;
    let cache = ferry_cache::Cache::new(&project.layout().cache());
    let launcher: Arc<dyn Launcher> = match kind {
        ExecutorArg::Isolated => {
            // A folder remote, as this machine finds it from anywhere.
            let mut cfg = cfg.clone();
            if let Ok(ferry_spec::Location::Folder(dir)) =
                ferry_spec::Location::parse(&cfg.url, &project.root)
            {
                cfg.url = dir.display().to_string();
            }
            Arc::new(Isolated {
                args: stage_args(&cfg),
            })
        }
        _ => kubernetes(project, &k8s, &cfg)?,
    };
    Ok(Arc::new(ferry_runner::TaskExecutor {
        shared,
        launcher,
        cache,
        root: project.root.clone(),
        placement: k8s.placement,
    }))
}

/// The stage mode's arguments for the remote `cfg` (its settings, never a
/// credential: those come from the pod's environment).
fn stage_args(cfg: &RemoteConfig) -> Vec<String> {
    let mut args = vec!["--remote".to_owned(), cfg.url.clone()];
    for (key, flag) in [("endpoint", "--endpoint"), ("region", "--region")] {
        if let Some(v) = cfg.options.get(key) {
            args.extend([flag.to_owned(), v.clone()]);
        }
    }
    if cfg.options.get("allow_http").map(String::as_str) == Some("true") {
        args.push("--allow-http".to_owned());
    }
    args
}

#[cfg(feature = "kubernetes")]
fn kubernetes(
    project: &Project,
    k8s: &ferry_spec::Kubernetes,
    cfg: &RemoteConfig,
) -> Result<Arc<dyn Launcher>> {
    let unplaced: Vec<&str> = project
        .pipeline
        .stages
        .iter()
        .filter(|s| s.check.is_none())
        .filter(|s| {
            k8s.placement
                .merged(s.placement.as_ref())
                .image
                .or_else(|| k8s.image.clone())
                .is_none()
        })
        .map(|s| s.name.as_str())
        .collect();
    if !unplaced.is_empty() {
        return Err(usage(format!(
            "ferry.yaml: no image for stage{} {} to run in: set `kubernetes.image` (an image with ferry and Python, see the repository's Dockerfile)",
            if unplaced.len() == 1 { "" } else { "s" },
            unplaced.join(", ")
        )));
    }
    let launcher = ferry_k8s::jobs::JobLauncher::connect(k8s, stage_args(cfg))
        .map_err(|e| usage(e.to_string()))?;
    Ok(Arc::new(launcher))
}

#[cfg(not(feature = "kubernetes"))]
fn kubernetes(
    _project: &Project,
    _k8s: &ferry_spec::Kubernetes,
    _cfg: &RemoteConfig,
) -> Result<Arc<dyn Launcher>> {
    Err(usage(
        "this ferry was built without Kubernetes (cargo feature `kubernetes`); use the release binary or the image",
    ))
}

/// Each task as a `ferry stage run` process of this binary, in a folder of
/// its own (removed after): what a pod does, on this machine.
struct Isolated {
    args: Vec<String>,
}

impl Launcher for Isolated {
    fn launch(&self, launch: &Launch, sink: Arc<dyn OutputSink>, cancel: &CancelToken) -> Outcome {
        let work = std::env::temp_dir().join(format!(
            "ferry-stage-{}-{}-{}",
            launch.stage,
            std::process::id(),
            launch.task.short(12)
        ));
        // This very binary, even when a new build has replaced its file
        // (this process's, not the shell's that starts it).
        let proc_exe = std::path::PathBuf::from(format!("/proc/{}/exe", std::process::id()));
        let exe = match std::env::current_exe() {
            _ if proc_exe.exists() => proc_exe,
            Ok(e) => e,
            Err(e) => return failed(format!("cannot find this ferry: {e}")),
        };
        let mut argv = vec![
            exe.display().to_string(),
            "stage".into(),
            "run".into(),
            launch.task.to_hex(),
            "--workdir".into(),
            work.display().to_string(),
        ];
        argv.extend(self.args.iter().cloned());
        let job = ferry_executor::Job {
            stage: launch.stage.clone(),
            cmd: argv
                .iter()
                .map(|a| ferry_executor::shell_word(a))
                .collect::<Vec<_>>()
                .join(" "),
            cwd: std::env::temp_dir(),
            env: vec![],
            timeout: launch.timeout,
            log_path: launch.log_path.clone(),
            watch: None,
        };
        let tee = Arc::new(Tee {
            inner: sink,
            result: ResultLine::default(),
        });
        let outcome = ferry_executor::run(&job, tee.clone(), cancel);
        let _ = std::fs::remove_dir_all(&work);
        TaskResult::tell(outcome, tee.result.get().as_ref())
    }
}

fn failed(why: String) -> Outcome {
    Outcome::of(Exit::Failed(why), std::time::Duration::ZERO)
}

/// Output lines passed on, the result line kept (and not shown).
struct Tee {
    inner: Arc<dyn OutputSink>,
    result: ResultLine,
}

impl OutputSink for Tee {
    fn line(&self, stage: &str, stream: ferry_executor::Stream, line: &str) {
        if !self.result.take(line) {
            self.inner.line(stage, stream, line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_tells_the_outcome() {
        let base = || Outcome {
            exit: Exit::Code(7),
            ..failed(String::new())
        };
        let r = |ok, code, error: Option<&str>| TaskResult {
            stage: "train".into(),
            exit_code: code,
            ok,
            error: error.map(str::to_owned),
            cpu_ms: Some(1500),
            max_rss_bytes: Some(1 << 20),
        };
        let o = TaskResult::tell(base(), Some(&r(false, Some(7), None)));
        assert_eq!(o.exit, Exit::Code(7));
        assert_eq!(o.user_cpu.as_millis(), 1500);
        assert_eq!(o.max_rss_bytes, 1 << 20);
        let o = TaskResult::tell(base(), Some(&r(false, None, Some("fetch failed"))));
        assert_eq!(o.exit, Exit::Failed("fetch failed".into()));
        let ok = Outcome {
            exit: Exit::Code(0),
            ..failed(String::new())
        };
        assert_eq!(
            TaskResult::tell(ok.clone(), None).exit,
            Exit::Failed("the stage mode printed no result".into())
        );
        assert_eq!(
            TaskResult::tell(ok, Some(&r(true, Some(0), None))).exit,
            Exit::Code(0)
        );
    }
}
