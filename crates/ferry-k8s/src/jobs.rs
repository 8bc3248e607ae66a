//! Stages as Kubernetes Jobs (`ferry run --executor kubernetes`): the
//! [`JobLauncher`] makes one Job per attempt of a stage, running `ferry
//! stage run` on the stage's task, streams its pod's log back as the stage
//! prints it, tells a pod that cannot run by the cluster's reason (no node
//! fits, the image cannot be pulled, a Secret is missing, killed out of
//! memory) and deletes the Job when the attempt ends, however it ends
//! (done, failed, timed out, cancelled).
//!
//! The Job itself never retries (`backoffLimit: 0`): retries are the
//! stage's, counted by the run as on a laptop.

use crate::Error;
use ferry_executor::{CancelToken, Exit, Outcome, OutputSink, Stream};
use ferry_runner::{Launch, Launcher, ResultLine, TaskResult};
use ferry_spec::{Kubernetes, Placement};
use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The container a stage pod runs, by name.
pub const CONTAINER: &str = "stage";
/// Where the stage's files go in its pod (an emptyDir).
pub const WORKDIR: &str = "/work";

/// How long a pod may wait for a node before the attempt fails, and how
/// often the Job is looked at.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub unschedulable: Duration,
    pub poll: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            // A cluster autoscaler takes minutes to add a node.
            unschedulable: Duration::from_secs(600),
            poll: Duration::from_secs(1),
        }
    }
}

/// Makes a Job per stage attempt in one namespace.
pub struct JobLauncher {
    client: kube::Client,
    namespace: String,
    settings: Kubernetes,
    /// The stage mode's arguments after the task (the remote's settings).
    args: Vec<String>,
    patience: Patience,
    rt: tokio::runtime::Runtime,
}

impl JobLauncher {
    /// A launcher on the cluster the kubeconfig (or the pod's service
    /// account) names; the namespace is `kubernetes.namespace`, else the
    /// kubeconfig's.
    pub fn connect(settings: &Kubernetes, args: Vec<String>) -> Result<Self, Error> {
        // The binary links two TLS providers (the object stores' and
        // kube's): name the one kube's connections use, once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = runtime()?;
        let config = rt
            .block_on(kube::Config::infer())
            .map_err(|e| Error::Cluster(format!("no Kubernetes cluster configured: {e}")))?;
        let namespace = settings
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = {
            let _guard = rt.enter();
            kube::Client::try_from(config)
                .map_err(|e| Error::Cluster(format!("cannot make a Kubernetes client: {e}")))?
        };
        Ok(Self::with_client(client, namespace, settings, args, rt))
    }

    /// A launcher over `client` (the tests' mocked API), on `rt`.
    pub fn with_client(
        client: kube::Client,
        namespace: String,
        settings: &Kubernetes,
        args: Vec<String>,
        rt: tokio::runtime::Runtime,
    ) -> Self {
        Self {
            client,
            namespace,
            settings: settings.clone(),
            args,
            patience: Patience::default(),
            rt,
        }
    }

    pub fn patience(mut self, patience: Patience) -> Self {
        self.patience = patience;
        self
    }
}

/// The runtime the launcher's requests run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Cluster(format!("cannot start a runtime: {e}")))
}

impl Launcher for JobLauncher {
    fn launch(&self, launch: &Launch, sink: Arc<dyn OutputSink>, cancel: &CancelToken) -> Outcome {
        let started = Instant::now();
        let (exit, result) = self
            .rt
            .block_on(self.attempt(launch, sink, cancel, started));
        TaskResult::tell(Outcome::of(exit, started.elapsed()), result.as_ref())
    }
}

/// Where an attempt's pod is, as the launcher reads it.
#[derive(Debug, Clone, PartialEq)]
enum PodState {
    /// Not made yet, or waiting for its container.
    Waiting,
    /// No node fits it (yet): the scheduler's message.
    Unschedulable(String),
    /// It cannot start: the reason and message (an image that cannot be
    /// pulled, a Secret that does not exist).
    Stuck(String),
    Running,
    /// Its container ended: the exit code and the kubelet's reason.
    Ended {
        code: i32,
        reason: Option<String>,
    },
}

/// Reasons a container waits that it will not get over by itself.
const STUCK: &[&str] = &[
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

fn pod_state(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Waiting;
    };
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER);
    if let Some(c) = container
        && let Some(state) = &c.state
    {
        if let Some(t) = &state.terminated {
            return PodState::Ended {
                code: t.exit_code,
                reason: t.reason.clone(),
            };
        }
        if state.running.is_some() {
            return PodState::Running;
        }
        if let Some(w) = &state.waiting
            && let Some(reason) = w.reason.as_deref()
            && STUCK.contains(&reason)
        {
            let message = w.message.clone().unwrap_or_default();
            return PodState::Stuck(
                format!("{reason}: {message}")
                    .trim_end_matches(": ")
                    .to_owned(),
            );
        }
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(c) = unschedulable {
        return PodState::Unschedulable(c.message.clone().unwrap_or_default());
    }
    PodState::Waiting
}

/// The Job's own verdict, when it has one: `Ok(())` complete, `Err(why)`
/// failed (a deadline, the pod gone).
fn job_verdict(job: &Job) -> Option<Result<(), String>> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    for c in conditions {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return Some(Ok(())),
            "Failed" => {
                let reason = c.reason.clone().unwrap_or_else(|| "Failed".into());
                let message = c.message.clone().unwrap_or_default();
                return Some(Err(format!("{reason}: {message}")
                    .trim_end_matches(": ")
                    .to_owned()));
            }
            _ => {}
        }
    }
    None
}

/// Output lines: to the run, and to the stage's log file; the result line kept.
struct Lines {
    stage: String,
    sink: Arc<dyn OutputSink>,
    log: Mutex<Option<std::fs::File>>,
    result: ResultLine,
}

impl Lines {
    fn new(launch: &Launch, sink: Arc<dyn OutputSink>) -> Self {
        let log = launch
            .log_path
            .parent()
            .and_then(|d| std::fs::create_dir_all(d).ok())
            .and_then(|()| std::fs::File::create(&launch.log_path).ok());
        Self {
            stage: launch.stage.clone(),
            sink,
            log: Mutex::new(log),
            result: ResultLine::default(),
        }
    }

    fn line(&self, line: &str) {
        if self.result.take(line) {
            return;
        }
        if let Ok(mut log) = self.log.lock()
            && let Some(f) = log.as_mut()
        {
            let _ = writeln!(f, "{line}");
        }
        self.sink.line(&self.stage, Stream::Stdout, line);
    }

    /// A line of ferry's own about the attempt.
    fn note(&self, line: &str) {
        self.line(&format!("[kubernetes] {line}"));
    }
}

impl JobLauncher {
    async fn attempt(
        &self,
        launch: &Launch,
        sink: Arc<dyn OutputSink>,
        cancel: &CancelToken,
        started: Instant,
    ) -> (Exit, Option<TaskResult>) {
        // The pod's exit and its result line; `TaskResult::tell` makes them one.
        let lines = Arc::new(Lines::new(launch, sink));
        let name = job_name(launch);
        let manifest = job_manifest(&name, &self.namespace, launch, &self.settings, &self.args);
        let job: Job = match serde_json::from_value(manifest) {
            Ok(j) => j,
            Err(e) => return (Exit::SpawnFailed(format!("the Job's manifest: {e}")), None),
        };
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        if let Err(e) = jobs.create(&PostParams::default(), &job).await {
            return (
                Exit::SpawnFailed(format!(
                    "creating Job `{name}` in namespace `{}`: {}",
                    self.namespace,
                    describe(&e)
                )),
                None,
            );
        }
        lines.note(&format!("Job {}/{name} created", self.namespace));
        let exit = self.follow(&name, launch, &lines, cancel, started).await;
        // However it ended, the Job and its pod go (the log is kept here).
        if let Err(e) = jobs.delete(&name, &DeleteParams::background()).await
            && !is_not_found(&e)
        {
            lines.note(&format!("could not delete Job {name}: {}", describe(&e)));
        }
        (exit, lines.result.get())
    }

    /// Watches the Job until its pod ends, streaming the pod's log.
    async fn follow(
        &self,
        name: &str,
        launch: &Launch,
        lines: &Arc<Lines>,
        cancel: &CancelToken,
        started: Instant,
    ) -> Exit {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = format!("batch.kubernetes.io/job-name={name}");
        let mut logs: Option<tokio::task::JoinHandle<()>> = None;
        let mut unschedulable_since: Option<Instant> = None;
        let mut seen_pod = false;
        loop {
            if cancel.is_cancelled() {
                lines.note("cancelled: deleting the Job");
                return Exit::Cancelled;
            }
            if launch.timeout.is_some_and(|t| started.elapsed() >= t) {
                lines.note("timed out: deleting the Job");
                return Exit::TimedOut;
            }
            let job = match jobs.get(name).await {
                Ok(j) => j,
                Err(e) if is_not_found(&e) => {
                    return Exit::Failed(format!("Job {name} was deleted while the stage ran"));
                }
                Err(e) => return Exit::Failed(format!("reading Job {name}: {}", describe(&e))),
            };
            let listed = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| describe(&e));
            let pod = match listed {
                Ok(l) => l.items.into_iter().next(),
                Err(e) => return Exit::Failed(format!("listing Job {name}'s pods: {e}")),
            };
            match &pod {
                Some(_) => seen_pod = true,
                None if seen_pod => {
                    return Exit::Failed(format!(
                        "the pod of Job {name} was deleted while the stage ran"
                    ));
                }
                None => {}
            }
            let state = pod.as_ref().map_or(PodState::Waiting, pod_state);
            let pod_name = pod
                .as_ref()
                .and_then(|p| p.metadata.name.clone())
                .unwrap_or_default();
            if matches!(state, PodState::Running | PodState::Ended { .. }) && logs.is_none() {
                logs = Some(tokio::spawn(stream_logs(
                    pods.clone(),
                    pod_name.clone(),
                    lines.clone(),
                )));
            }
            match state {
                PodState::Ended { code, reason } => {
                    if let Some(task) = logs.take() {
                        // The stream ends with the container; a cluster that
                        // keeps it open is not waited on for long.
                        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
                    }
                    return ended(code, reason.as_deref(), launch);
                }
                PodState::Stuck(why) => return Exit::Failed(format!("pod {pod_name}: {why}")),
                PodState::Unschedulable(msg) => {
                    let since = *unschedulable_since.get_or_insert_with(|| {
                        lines.note(&format!("pod {pod_name} waits for a node: {msg}"));
                        Instant::now()
                    });
                    if since.elapsed() >= self.patience.unschedulable {
                        return Exit::Failed(format!("pod {pod_name} cannot be scheduled: {msg}"));
                    }
                }
                PodState::Waiting | PodState::Running => unschedulable_since = None,
            }
            if let Some(Err(why)) = job_verdict(&job) {
                return Exit::Failed(format!("Job {name} failed: {why}"));
            }
            tokio::time::sleep(self.patience.poll).await;
        }
    }
}

/// The pod's log, line by line, into `lines`, until it ends.
async fn stream_logs(pods: Api<Pod>, pod: String, lines: Arc<Lines>) {
    let params = LogParams {
        follow: true,
        container: Some(CONTAINER.into()),
        ..LogParams::default()
    };
    match pods.log_stream(&pod, &params).await {
        Ok(reader) => {
            let mut stream = reader.lines();
            while let Some(Ok(line)) = stream.next().await {
                lines.line(&line);
            }
        }
        Err(e) => lines.note(&format!("cannot read pod {pod}'s log: {}", describe(&e))),
    }
}

/// How an attempt ended, from its container's exit and the kubelet's reason.
fn ended(code: i32, reason: Option<&str>, launch: &Launch) -> Exit {
    match reason {
        Some("OOMKilled") => Exit::Failed(match &launch.resources {
            Some(r) if r.memory_gib > 0.0 => format!(
                "killed: out of memory (its limit is {}; raise `resources.memory`)",
                crate::quantity_memory(r.memory_gib)
            ),
            _ => "killed: out of memory (give the stage `resources.memory`)".into(),
        }),
        Some("DeadlineExceeded") => Exit::TimedOut,
        _ => Exit::Code(code),
    }
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => other.to_string(),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The Job's name: `ferry-STAGE-RUN-TASK`, a DNS label (at most 63).
pub fn job_name(launch: &Launch) -> String {
    format!(
        "ferry-{}-{}-{}",
        ferry_core::slug(&launch.stage, 30),
        ferry_core::slug(&launch.run_id, 8),
        launch.task.short(8)
    )
    .replace("--", "-")
}

/// The Job of one attempt of `launch`: the stage mode on its task, in a
/// non-root, read-only container whose only writable places are `/work`
/// and `/tmp`; credentials only from the Secrets `env_from` names.
pub fn job_manifest(
    name: &str,
    namespace: &str,
    launch: &Launch,
    settings: &Kubernetes,
    args: &[String],
) -> Value {
    let placement: Placement = settings.placement.merged(Some(&launch.placement));
    let image = placement
        .image
        .clone()
        .or_else(|| settings.image.clone())
        .unwrap_or_default();
    // `kubectl get jobs -l ferry.dev/run=RUN` lists a run's stages.
    let run: String = launch
        .run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(63)
        .collect();
    let labels = json!({
        "app.kubernetes.io/name": "ferry-stage",
        "app.kubernetes.io/managed-by": "ferry",
        "ferry.dev/run": run,
        "ferry.dev/job": name,
    });
    let mut argv = vec![
        "stage".to_owned(),
        "run".to_owned(),
        launch.task.to_hex(),
        "--workdir".to_owned(),
        WORKDIR.to_owned(),
    ];
    argv.extend(args.iter().cloned());
    let mut container = json!({
        "name": CONTAINER,
        "image": image,
        "command": ["ferry"],
        "args": argv,
        "workingDir": WORKDIR,
        "env": [
            {"name": "HOME", "value": WORKDIR},
            {"name": "UV_CACHE_DIR", "value": format!("{WORKDIR}/.cache/uv")},
            {"name": "FERRY_STAGE", "value": launch.stage},
        ],
        "volumeMounts": [
            {"name": "work", "mountPath": WORKDIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": crate::container_security(),
    });
    if !settings.env_from.is_empty() {
        container["envFrom"] = settings
            .env_from
            .iter()
            .map(|s| json!({"secretRef": {"name": s}}))
            .collect();
    }
    if let Some(r) = &launch.resources {
        container["resources"] = crate::resources(r);
    }
    let mut pod = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": settings.service_account.is_some(),
        "securityContext": crate::pod_security(),
        "containers": [container],
        "volumes": [
            {"name": "work", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    });
    if let Some(sa) = &settings.service_account {
        pod["serviceAccountName"] = json!(sa);
    }
    if !placement.node_selector.is_empty() {
        pod["nodeSelector"] = json!(placement.node_selector);
    }
    if !placement.tolerations.is_empty() {
        pod["tolerations"] = json!(placement.tolerations);
    }
    let mut spec = json!({
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 3600,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    });
    if let Some(t) = launch.timeout {
        // The cluster's own stop, a minute after ferry's.
        spec["activeDeadlineSeconds"] = json!(t.as_secs() + 60);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_tells_the_stage_command_exit() {
        // The pod's exit, as the launcher tells it with the result line.
        let exit_of = |exit: Exit, result: Option<&TaskResult>| {
            TaskResult::tell(Outcome::of(exit, Duration::ZERO), result).exit
        };
        let r = |ok, code: Option<i32>, error: Option<&str>| TaskResult {
            stage: "train".into(),
            exit_code: code,
            ok,
            error: error.map(str::to_owned),
            cpu_ms: None,
            max_rss_bytes: None,
        };
        assert_eq!(
            exit_of(Exit::Code(0), Some(&r(true, Some(0), None))),
            Exit::Code(0)
        );
        assert_eq!(
            exit_of(Exit::Code(3), Some(&r(false, Some(3), None))),
            Exit::Code(3)
        );
        assert_eq!(
            exit_of(
                Exit::Code(1),
                Some(&r(false, None, Some("fetching the task")))
            ),
            Exit::Failed("fetching the task".into())
        );
        assert!(matches!(exit_of(Exit::Code(0), None), Exit::Failed(_)));
        assert_eq!(exit_of(Exit::Cancelled, None), Exit::Cancelled);
    }
}
