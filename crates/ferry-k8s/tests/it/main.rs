//! The Kubernetes executor against a mocked API server (kube's tower-test
//! pattern): every request it makes is recorded and answered with the
//! shapes a real API server gives (a Job made, its pod pending, running,
//! ended; Status errors), for the success path and each failure a cluster
//! has: no node fits, the image cannot be pulled, killed out of memory, the
//! Job deleted mid-run, a timeout, a cancellation. Whatever happens, the
//! last request deletes the Job.
#![cfg(feature = "jobs")]
#![allow(clippy::unwrap_used)]

use ferry_executor::{CancelToken, Exit, OutputSink, Stream};
use ferry_k8s::jobs::{JobLauncher, Patience, job_manifest, job_name};
use ferry_runner::{Launch, Launcher, TaskResult};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NS: &str = "ml";

/// What the mocked cluster does with the attempt's Job.
#[derive(Clone)]
struct Cluster {
    /// The pod as each successive list of the Job's pods shows it (the last
    /// one repeats); `None`: no pod yet, or no more.
    pods: Vec<Option<Value>>,
    /// The log the pod prints.
    log: String,
    /// The Job is gone (404) from this read of it on.
    deleted_from: Option<usize>,
    /// Refuse making the Job with this Status.
    refuse: Option<Value>,
}

impl Cluster {
    fn new(pods: Vec<Option<Value>>, log: &str) -> Self {
        Self {
            pods,
            log: log.to_owned(),
            deleted_from: None,
            refuse: None,
        }
    }
}

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl OutputSink for Lines {
    fn line(&self, _stage: &str, _stream: Stream, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

fn container(state: Value) -> Value {
    json!({
        "name": "stage", "ready": false, "restartCount": 0,
        "image": "ghcr.io/acme/ferry-stage:1.0", "imageID": "",
        "state": state,
    })
}

fn pod(phase: &str, state: Option<Value>, conditions: Value) -> Option<Value> {
    let mut status = json!({"phase": phase, "conditions": conditions});
    if let Some(s) = state {
        status["containerStatuses"] = json!([container(s)]);
    }
    Some(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ferry-train-pod", "namespace": NS},
        "status": status,
    }))
}

fn pending() -> Option<Value> {
    pod("Pending", None, json!([]))
}

fn running() -> Option<Value> {
    pod(
        "Running",
        Some(json!({"running": {"startedAt": "2026-12-03T10:00:00Z"}})),
        json!([{"type": "PodScheduled", "status": "True"}]),
    )
}

fn terminated(code: i32, reason: &str) -> Option<Value> {
    pod(
        if code == 0 { "Succeeded" } else { "Failed" },
        Some(json!({"terminated": {
            "exitCode": code, "reason": reason,
            "startedAt": "2026-12-03T10:00:00Z", "finishedAt": "2026-12-03T10:01:00Z",
        }})),
        json!([]),
    )
}

fn unschedulable() -> Option<Value> {
    pod(
        "Pending",
        None,
        json!([{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
            "lastTransitionTime": "2026-12-03T10:00:00Z",
        }]),
    )
}

fn image_pull_backoff() -> Option<Value> {
    pod(
        "Pending",
        Some(json!({"waiting": {
            "reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"ghcr.io/acme/ferry-stage:nope\"",
        }})),
        json!([{"type": "PodScheduled", "status": "True"}]),
    )
}

fn result_line(ok: bool, code: i32) -> String {
    TaskResult {
        stage: "train".into(),
        exit_code: Some(code),
        ok,
        error: None,
        cpu_ms: Some(1200),
        max_rss_bytes: Some(300 << 20),
    }
    .line()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// Answers the launcher's requests as `cluster` says until it deletes the
/// Job; every request as `METHOD path?query`.
async fn serve(mut handle: Handle, cluster: Cluster) -> Vec<String> {
    let mut seen = Vec::new();
    let (mut job_reads, mut pod_lists) = (0usize, 0usize);
    let mut made: Option<Value> = None;
    while let Some((req, send)) = handle.next_request().await {
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let path = req.uri().path().to_owned();
        seen.push(format!("{method} {uri}"));
        let jobs = format!("/apis/batch/v1/namespaces/{NS}/jobs");
        match (method.as_str(), path.as_str()) {
            ("POST", p) if p == jobs => {
                if let Some(s) = &cluster.refuse {
                    let code = s["code"].as_u64().unwrap() as u16;
                    respond(send, code, s);
                    continue;
                }
                let body = req.into_body().collect_bytes().await.unwrap();
                let job: Value = serde_json::from_slice(&body).unwrap();
                made = Some(job.clone());
                respond(send, 201, &job);
            }
            ("GET", p) if p.starts_with(&jobs) => {
                job_reads += 1;
                if cluster.deleted_from.is_some_and(|n| job_reads >= n) {
                    respond(send, 404, &status(404, "NotFound", "jobs.batch not found"));
                } else {
                    respond(send, 200, made.as_ref().unwrap());
                }
            }
            ("DELETE", p) if p.starts_with(&jobs) => {
                respond(send, 200, &status(200, "", ""));
                break;
            }
            ("GET", p) if p == format!("/api/v1/namespaces/{NS}/pods") => {
                let i = pod_lists.min(cluster.pods.len() - 1);
                pod_lists += 1;
                let items: Vec<Value> = cluster.pods[i].iter().cloned().collect();
                respond(
                    send,
                    200,
                    &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
                );
            }
            ("GET", p) if p.ends_with("/log") => {
                send.send_response(
                    Response::builder()
                        .status(200)
                        .body(Body::from(cluster.log.clone().into_bytes()))
                        .unwrap(),
                );
            }
            _ => respond(send, 404, &status(404, "NotFound", "no such path")),
        }
    }
    seen
}

fn settings() -> ferry_spec::Kubernetes {
    ferry_spec::Kubernetes {
        namespace: Some(NS.into()),
        image: Some("ghcr.io/acme/ferry-stage:1.0".into()),
        service_account: Some("ferry-stages".into()),
        env_from: vec!["s3-credentials".into()],
        remote: None,
        placement: ferry_spec::Placement::default(),
    }
}

fn launch(dir: &std::path::Path, timeout: Option<Duration>) -> Launch {
    Launch {
        stage: "train".into(),
        task: ferry_core::Digest::of(b"the task"),
        run_id: "34cb36ff38554771a8bc0f83339c68fc".into(),
        resources: Some(ferry_cost::Requested {
            cpus: 4.0,
            memory_gib: 16.0,
            gpus: 1,
            gpu_type: Some("t4".into()),
            machine: None,
        }),
        placement: ferry_spec::Placement {
            image: None,
            node_selector: [(
                "cloud.google.com/gke-accelerator".to_owned(),
                "nvidia-tesla-t4".to_owned(),
            )]
            .into(),
            tolerations: vec![],
        },
        timeout,
        log_path: dir.join("logs/train.log"),
    }
}

/// What an attempt came to: its outcome, the lines the run saw, the requests.
struct Attempt {
    exit: Exit,
    lines: Vec<String>,
    requests: Vec<String>,
    user_cpu: Duration,
}

/// The future that answers a mocked API server's requests.
type Answer<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A launcher over a mocked API server that `answer` serves in a thread of
/// its own (its result once the launcher is done with it).
fn mocked<T: Send + 'static>(
    answer: impl FnOnce(Handle) -> Answer<T> + Send + 'static,
) -> (JobLauncher, std::thread::JoinHandle<T>) {
    let rt = ferry_k8s::jobs::runtime().unwrap();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = {
        let _guard = rt.enter();
        kube::Client::new(service, NS)
    };
    let server = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(answer(handle))
    });
    let launcher = JobLauncher::with_client(
        client,
        NS.into(),
        &settings(),
        vec!["--remote".into(), "s3://acme-ml/ferry".into()],
        rt,
    );
    (launcher, server)
}

fn attempt(cluster: Cluster, timeout: Option<Duration>, cancel_after: Option<Duration>) -> Attempt {
    let dir = tempfile::tempdir().unwrap();
    let (launcher, server) = mocked(move |handle| Box::pin(serve(handle, cluster)));
    let launcher = launcher.patience(Patience {
        unschedulable: Duration::from_millis(30),
        poll: Duration::from_millis(10),
    });
    let lines = Arc::new(Lines::default());
    let cancel = CancelToken::new();
    if let Some(after) = cancel_after {
        let c = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            c.cancel();
        });
    }
    let outcome = launcher.launch(&launch(dir.path(), timeout), lines.clone(), &cancel);
    let requests = server.join().unwrap();
    let lines = lines.0.lock().unwrap().clone();
    Attempt {
        exit: outcome.exit,
        lines,
        requests,
        user_cpu: outcome.user_cpu,
    }
}

/// The requests, their Job's name and pods' queries shortened.
fn shapes(requests: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in requests {
        let short = r
            .split('?')
            .next()
            .unwrap()
            .replace(&format!("/namespaces/{NS}/"), "/ns/");
        // Polls repeat: one line per run of the same request.
        if out.last() != Some(&short) {
            out.push(short);
        }
    }
    out
}

#[test]
fn a_stage_that_succeeds_streams_its_log_and_its_job_is_deleted() {
    let log = format!(
        "fetched 3 files\nrunning train (forced)\nepoch 1 loss 0.3\n{}\n",
        result_line(true, 0)
    );
    let a = attempt(
        Cluster::new(
            vec![None, pending(), running(), terminated(0, "Completed")],
            &log,
        ),
        None,
        None,
    );
    assert_eq!(a.exit, Exit::Code(0), "{:?}", a.lines);
    assert!(
        a.lines.iter().any(|l| l == "epoch 1 loss 0.3"),
        "{:?}",
        a.lines
    );
    assert!(
        !a.lines.iter().any(|l| l.contains("ferry-stage-result")),
        "the result line is the launcher's, not the user's"
    );
    assert_eq!(
        a.user_cpu,
        Duration::from_millis(1200),
        "resources from the result"
    );
    let s = shapes(&a.requests);
    assert_eq!(s.first().unwrap(), "POST /apis/batch/v1/ns/jobs");
    assert!(
        s.iter().any(|r| r.ends_with("/pods/ferry-train-pod/log")),
        "{s:?}"
    );
    assert!(
        s.last()
            .unwrap()
            .starts_with("DELETE /apis/batch/v1/ns/jobs/ferry-train-")
    );
    // The log is asked for once, following the container by name.
    let log_req: Vec<&String> = a.requests.iter().filter(|r| r.contains("/log")).collect();
    assert_eq!(log_req.len(), 1);
    assert!(log_req[0].contains("follow=true") && log_req[0].contains("container=stage"));
    // Pods are found by their Job's label.
    assert!(
        a.requests
            .iter()
            .any(|r| r.contains("labelSelector=batch.kubernetes.io%2Fjob-name%3Dferry-train-"))
    );
}

#[test]
fn a_failed_command_is_its_exit_code() {
    let log = format!(
        "Traceback (most recent call last):\nValueError: bad\n{}\n",
        result_line(false, 2)
    );
    let a = attempt(
        Cluster::new(vec![running(), terminated(2, "Error")], &log),
        None,
        None,
    );
    assert_eq!(a.exit, Exit::Code(2));
    assert!(a.lines.iter().any(|l| l == "ValueError: bad"));
    assert!(a.requests.last().unwrap().starts_with("DELETE "));
}

#[test]
fn out_of_memory_is_said_with_the_limit() {
    let a = attempt(
        Cluster::new(
            vec![running(), terminated(137, "OOMKilled")],
            "loading data\n",
        ),
        None,
        None,
    );
    match &a.exit {
        Exit::Failed(why) => assert!(
            why.contains("out of memory") && why.contains("16Gi"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(a.requests.last().unwrap().starts_with("DELETE "));
}

#[test]
fn a_pod_no_node_fits_fails_with_the_schedulers_words() {
    let a = attempt(Cluster::new(vec![unschedulable()], ""), None, None);
    match &a.exit {
        Exit::Failed(why) => assert!(
            why.contains("cannot be scheduled") && why.contains("Insufficient nvidia.com/gpu"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(a.lines.iter().any(|l| l.contains("waits for a node")));
    assert!(
        !a.requests.iter().any(|r| r.contains("/log")),
        "no log to read"
    );
    assert!(a.requests.last().unwrap().starts_with("DELETE "));
}

#[test]
fn an_image_that_cannot_be_pulled_fails_at_once() {
    let a = attempt(
        Cluster::new(vec![pending(), image_pull_backoff()], ""),
        None,
        None,
    );
    match &a.exit {
        Exit::Failed(why) => assert!(
            why.contains("ImagePullBackOff") && why.contains("ferry-stage:nope"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(a.requests.last().unwrap().starts_with("DELETE "));
}

#[test]
fn a_job_deleted_mid_run_fails_the_attempt() {
    let mut c = Cluster::new(vec![running()], "epoch 1\n");
    c.deleted_from = Some(3);
    let a = attempt(c, None, None);
    match &a.exit {
        Exit::Failed(why) => assert!(why.contains("was deleted"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_timeout_and_a_cancellation_delete_the_job() {
    let a = attempt(
        Cluster::new(vec![running()], ""),
        Some(Duration::from_millis(80)),
        None,
    );
    assert_eq!(a.exit, Exit::TimedOut);
    assert!(a.requests.last().unwrap().starts_with("DELETE "));
    let a = attempt(
        Cluster::new(vec![running()], ""),
        None,
        Some(Duration::from_millis(80)),
    );
    assert_eq!(a.exit, Exit::Cancelled);
    assert!(a.requests.last().unwrap().starts_with("DELETE "));
}

#[test]
fn a_job_the_api_refuses_is_an_error_with_its_message() {
    let mut c = Cluster::new(vec![None], "");
    c.refuse = Some(status(
        403,
        "Forbidden",
        "jobs.batch is forbidden: User \"dev\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"ml\"",
    ));
    let dir = tempfile::tempdir().unwrap();
    let (launcher, server) = mocked(move |mut handle| {
        Box::pin(async move {
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), "POST");
            respond(send, 403, c.refuse.as_ref().unwrap());
        })
    });
    let o = launcher.launch(
        &launch(dir.path(), None),
        Arc::new(Lines::default()),
        &CancelToken::new(),
    );
    server.join().unwrap();
    match o.exit {
        Exit::SpawnFailed(why) => assert!(why.contains("forbidden") && why.contains("ml"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_job_manifest() {
    let dir = std::path::Path::new("/tmp");
    let l = launch(dir, Some(Duration::from_secs(600)));
    let mut s = settings();
    s.placement.tolerations = vec![ferry_spec::Toleration {
        key: Some("nvidia.com/gpu".into()),
        operator: "Exists".into(),
        value: None,
        effect: Some("NoSchedule".into()),
        toleration_seconds: None,
    }];
    let name = job_name(&l);
    assert!(
        name.len() <= 63 && ferry_spec::is_dns_label(&name),
        "{name}"
    );
    let m = job_manifest(
        &name,
        NS,
        &l,
        &s,
        &["--remote".into(), "s3://acme-ml/ferry".into()],
    );
    // The same document the compat suite validates against the API's schemas.
    insta::assert_json_snapshot!("job", m);
    let text = serde_json::to_string(&m).unwrap();
    assert!(
        !text.contains("AWS_SECRET"),
        "credentials only by Secret name"
    );
}
