//! ferry on Kubernetes: the manifests `ferry export k8s server|gateway`
//! writes for a team's cluster (EKS, GKE, any conformant one).
//!
//! - **The tracking server**: a Deployment of `ferry server` replicas over
//!   one store (PostgreSQL) and an object-store artifact root, readiness
//!   and liveness on `/health`, a Service, and a PodDisruptionBudget so a
//!   node drain keeps one replica answering.
//! - **A gateway**: a Deployment of `ferry serve MODEL@ALIAS` replicas, a
//!   Service, a HorizontalPodAutoscaler on CPU, a PodDisruptionBudget, and
//!   Prometheus scrape annotations for `/metrics`.
//!
//! Invariants: a secret is only ever referenced by name (the store's URL,
//! the first admin's password, cloud credentials), never written into a
//! manifest; every container runs as a non-root user on a read-only root
//! filesystem without privilege escalation or capabilities; a spec is
//! checked whole, every problem said at once, before anything is written.

use serde_json::{Value, json};

pub mod argo;
#[cfg(feature = "jobs")]
pub mod jobs;

/// What the Kubernetes executor cannot get past.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cluster to talk to, or no client for it.
    #[error("{0}")]
    Cluster(String),
}

/// Every container ferry makes: non-root, read-only root, no privilege
/// escalation, no capabilities.
pub(crate) fn container_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "readOnlyRootFilesystem": true,
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// Memory in GiB as a Kubernetes quantity (`512Mi`, `16Gi`).
pub(crate) fn quantity_memory(gib: f64) -> String {
    let mib = (gib * 1024.0).ceil() as u64;
    if mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

/// CPUs as a Kubernetes quantity (`2`, `500m`).
pub(crate) fn quantity_cpu(cpus: f64) -> String {
    let milli = (cpus * 1000.0).ceil() as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// A stage's `resources:` as a container's requests and limits (memory
/// limited at what it asks for: a stage over it is killed, and told so).
pub(crate) fn resources(r: &ferry_cost::Requested) -> Value {
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if r.cpus > 0.0 {
        requests.insert("cpu".into(), json!(quantity_cpu(r.cpus)));
    }
    if r.memory_gib > 0.0 {
        let m = quantity_memory(r.memory_gib);
        requests.insert("memory".into(), json!(m));
        limits.insert("memory".into(), json!(m));
    }
    if r.gpus > 0 {
        limits.insert("nvidia.com/gpu".into(), json!(r.gpus.to_string()));
    }
    json!({"requests": requests, "limits": limits})
}

/// Every pod ferry makes: as the image's user 10001, the default seccomp profile.
pub(crate) fn pod_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// What both services need.
#[derive(Debug, Clone)]
pub struct Common {
    /// The Deployment's name (and its Service's, budget's...): a DNS-1123
    /// label.
    pub name: String,
    pub namespace: Option<String>,
    /// An image with ferry in it (the repository's Dockerfile builds one).
    pub image: String,
    pub replicas: u32,
    /// The Secret holding the store's URL (key `store-url`).
    pub store_secret: String,
    /// A Secret whose keys become environment variables (cloud
    /// credentials: `AWS_ACCESS_KEY_ID`, ...), if any.
    pub env_secret: Option<String>,
    /// The pods' service account (IRSA on EKS, Workload Identity on GKE).
    pub service_account: Option<String>,
    /// CPU and memory requested per replica (`500m`, `512Mi`).
    pub cpu: String,
    pub memory: String,
}

/// `ferry export k8s server`.
#[derive(Debug, Clone)]
pub struct Server {
    pub common: Common,
    /// The artifact root every replica shares (`s3://bucket/prefix`,
    /// `gs://...`).
    pub artifacts: String,
    /// The Secret holding the first admin's password (key `password`),
    /// used at a first start on an empty store.
    pub admin_secret: Option<String>,
}

/// `ferry export k8s gateway`.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub common: Common,
    /// What it serves: `MODEL@ALIAS` (an alias, so a rollout moves it).
    pub model: String,
    /// The bucket the tracking server keeps versions' files in (the
    /// server's `--artifacts`).
    pub artifacts: String,
    /// The autoscaler's ceiling (its floor is `replicas`).
    pub max_replicas: u32,
    /// The CPU use, percent of the request, the autoscaler aims at.
    pub target_cpu: u32,
}

/// A spec that cannot become manifests: every problem, each naming its
/// flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|(flag, why)| format!("--{flag}: {why}")).collect::<Vec<_>>().join("\n"))]
pub struct Invalid(pub Vec<(&'static str, String)>);

const SERVER_PORT: u16 = 5000;
const GATEWAY_PORT: u16 = 8080;

/// The server's manifests, in the order to apply them.
pub fn server(s: &Server) -> Result<Vec<Value>, Invalid> {
    let mut problems = check_common(&s.common);
    if !is_object_store(&s.artifacts) {
        problems.push((
            "artifacts",
            format!(
                "`{}` is not an object store: replicas share their artifacts through a bucket (s3://... or gs://...)",
                s.artifacts
            ),
        ));
    }
    if let Some(a) = &s.admin_secret {
        check_name(&mut problems, "admin-secret", a);
    }
    if !problems.is_empty() {
        return Err(Invalid(problems));
    }
    let c = &s.common;
    let mut env = vec![store_env(c)];
    if let Some(a) = &s.admin_secret {
        env.push(json!({
            "name": "FERRY_ADMIN_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": a, "key": "password", "optional": true}},
        }));
    }
    let args = json!([
        "server",
        "--host",
        "0.0.0.0",
        "--port",
        SERVER_PORT.to_string(),
        "--artifacts",
        s.artifacts,
        "--log-json",
    ]);
    let probes = Probes {
        ready: "/health",
        live: "/health",
    };
    let pod = pod(c, "server", args, env, SERVER_PORT, probes, json!({}));
    Ok(vec![
        deployment(c, "server", pod),
        service(c, "server", SERVER_PORT),
        budget(c, "server"),
    ])
}

/// A gateway's manifests, in the order to apply them.
pub fn gateway(g: &Gateway) -> Result<Vec<Value>, Invalid> {
    let mut problems = check_common(&g.common);
    match g.model.parse::<ferry_core::ModelRef>() {
        Ok(ferry_core::ModelRef::Alias(..)) => {}
        Ok(_) => problems.push((
            "model",
            format!(
                "`{}`: serve an alias (`MODEL@production`), so rollouts move every replica",
                g.model
            ),
        )),
        Err(e) => problems.push(("model", format!("`{}`: {e}", g.model))),
    }
    if !is_object_store(&g.artifacts) {
        problems.push((
            "artifacts",
            format!(
                "`{}` is not an object store: the server's bucket (s3://... or gs://...)",
                g.artifacts
            ),
        ));
    }
    if g.max_replicas < g.common.replicas {
        problems.push((
            "max-replicas",
            format!(
                "{} is below --replicas ({}), the autoscaler's floor",
                g.max_replicas, g.common.replicas
            ),
        ));
    }
    if !(1..=100).contains(&g.target_cpu) {
        problems.push((
            "target-cpu",
            format!("{} is not a percentage from 1 to 100", g.target_cpu),
        ));
    }
    if !problems.is_empty() {
        return Err(Invalid(problems));
    }
    let c = &g.common;
    let args = vec![
        "serve".to_owned(),
        g.model.clone(),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        GATEWAY_PORT.to_string(),
        "--artifacts".into(),
        g.artifacts.clone(),
        "--artifact-cache".into(),
        "/var/cache/ferry/artifacts".into(),
        // The pod's own prediction log (lost with the pod).
        "--log-dir".into(),
        "/var/cache/ferry/predictions".into(),
    ];
    let scrape = json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": GATEWAY_PORT.to_string(),
        "prometheus.io/path": "/metrics",
    });
    // Ready when every model is loaded; alive while the process answers
    // (a model reloading must not get the pod killed).
    let probes = Probes {
        ready: "/ping",
        live: "/v2/health/live",
    };
    let pod = pod(
        c,
        "gateway",
        json!(args),
        vec![store_env(c)],
        GATEWAY_PORT,
        probes,
        scrape,
    );
    // The autoscaler owns the count: the Deployment says none, so an
    // apply does not reset it.
    let mut d = deployment(c, "gateway", pod);
    if let Some(spec) = d["spec"].as_object_mut() {
        spec.shift_remove("replicas");
    }
    Ok(vec![
        d,
        service(c, "gateway", GATEWAY_PORT),
        budget(c, "gateway"),
        autoscaler(c, g.max_replicas, g.target_cpu),
    ])
}

/// Manifests as one YAML stream (`kubectl apply -f -`).
pub fn to_yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", serde_saphyr::to_string(d).unwrap_or_default()))
        .collect()
}

fn is_object_store(url: &str) -> bool {
    ["s3://", "gs://"]
        .iter()
        .any(|p| url.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

fn check_common(c: &Common) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    check_name(&mut problems, "name", &c.name);
    // A Service's name must also start with a letter (DNS-1035).
    if c.name.starts_with(|ch: char| ch.is_ascii_digit()) {
        problems.push((
            "name",
            format!(
                "`{}` starts with a digit; a Service's name starts with a letter",
                c.name
            ),
        ));
    }
    if let Some(ns) = &c.namespace {
        check_name(&mut problems, "namespace", ns);
    }
    check_name(&mut problems, "store-secret", &c.store_secret);
    if let Some(e) = &c.env_secret {
        check_name(&mut problems, "env-secret", e);
    }
    if let Some(sa) = &c.service_account {
        check_name(&mut problems, "service-account", sa);
    }
    if c.image.trim().is_empty() || c.image.chars().any(char::is_whitespace) {
        problems.push(("image", format!("`{}` is not an image reference", c.image)));
    }
    if c.replicas == 0 {
        problems.push((
            "replicas",
            "0 replicas serve nothing; at least 1".to_owned(),
        ));
    }
    for (flag, q) in [("cpu", &c.cpu), ("memory", &c.memory)] {
        if !is_quantity(q) {
            problems.push((
                flag,
                format!("`{q}` is not a Kubernetes quantity (`500m`, `2`, `512Mi`)"),
            ));
        }
    }
    problems
}

/// A DNS-1123 label: what Kubernetes accepts as a name of these objects
/// (63 characters at most, lowercase letters, digits and `-`, starting and
/// ending with a letter or digit).
fn check_name(problems: &mut Vec<(&'static str, String)>, flag: &'static str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        problems.push((
            flag,
            format!(
                "`{name}` is not a Kubernetes name (lowercase letters, digits and `-`, at most 63)"
            ),
        ));
    }
}

/// A resource quantity as Kubernetes writes them: a decimal number and an
/// optional suffix.
fn is_quantity(q: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = SUFFIXES.iter().find_map(|s| q.strip_suffix(s)).unwrap_or(q);
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|&b| b == b'.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit())
}

fn labels(c: &Common, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "ferry",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": c.name,
    })
}

fn metadata(c: &Common, component: &str) -> Value {
    let mut m = json!({"name": c.name, "labels": labels(c, component)});
    if let Some(ns) = &c.namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn store_env(c: &Common) -> Value {
    json!({
        "name": "FERRY_STORE",
        "valueFrom": {"secretKeyRef": {"name": c.store_secret, "key": "store-url"}},
    })
}

/// Where a container is asked whether it is ready and alive.
struct Probes {
    ready: &'static str,
    live: &'static str,
}

/// The pod template: one container running `ferry` with `args`, probed
/// as `probes` say (a start-up probe gives it five minutes to load before
/// liveness counts), locked down, with writable scratch only where ferry
/// writes.
fn pod(
    c: &Common,
    component: &str,
    args: Value,
    env: Vec<Value>,
    port: u16,
    probes: Probes,
    annotations: Value,
) -> Value {
    let http_probe = |path: &str, failures: u32| {
        json!({
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        })
    };
    let mut container = json!({
        "name": "ferry",
        "image": c.image,
        "args": args,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "startupProbe": http_probe(probes.live, 30),
        "readinessProbe": http_probe(probes.ready, 3),
        "livenessProbe": http_probe(probes.live, 3),
        "resources": {
            "requests": {"cpu": c.cpu, "memory": c.memory},
            "limits": {"memory": c.memory},
        },
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "cache", "mountPath": "/var/cache/ferry"},
        ],
    });
    if let Some(s) = &c.env_secret {
        container["envFrom"] = json!([{"secretRef": {"name": s}}]);
    }
    let mut spec = json!({
        "containers": [container],
        "securityContext": pod_security(),
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "cache", "emptyDir": {}},
        ],
    });
    if let Some(sa) = &c.service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    let mut metadata = json!({"labels": labels(c, component)});
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        metadata["annotations"] = annotations;
    }
    json!({"metadata": metadata, "spec": spec})
}

fn deployment(c: &Common, component: &str, pod: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(c, component),
        "spec": {
            "replicas": c.replicas,
            "selector": {"matchLabels": labels(c, component)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pod,
        },
    })
}

fn service(c: &Common, component: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(c, component),
        "spec": {
            "type": "ClusterIP",
            "selector": labels(c, component),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    })
}

/// At most one replica down at a time for a drain (with one replica, a
/// drain still evicts it: run two for a service that must not pause).
fn budget(c: &Common, component: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(c, component),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": labels(c, component)},
        },
    })
}

fn autoscaler(c: &Common, max: u32, target_cpu: u32) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(c, "gateway"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": c.name},
            "minReplicas": c.replicas,
            "maxReplicas": max,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target_cpu}},
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(name: &str) -> Common {
        Common {
            name: name.into(),
            namespace: Some("ml".into()),
            image: "registry.example.com/ferry:0.1".into(),
            replicas: 2,
            store_secret: "ferry-store".into(),
            env_secret: Some("ferry-cloud".into()),
            service_account: Some("ferry".into()),
            cpu: "500m".into(),
            memory: "512Mi".into(),
        }
    }

    #[test]
    fn the_server_s_manifests() {
        let s = Server {
            common: common("ferry-server"),
            artifacts: "s3://team-ml/ferry".into(),
            admin_secret: Some("ferry-admin".into()),
        };
        insta::assert_snapshot!(to_yaml(&server(&s).unwrap()));
    }

    #[test]
    fn a_gateway_s_manifests() {
        let g = Gateway {
            common: Common {
                env_secret: None,
                service_account: None,
                namespace: None,
                ..common("iris-gateway")
            },
            model: "iris@production".into(),
            artifacts: "s3://team-ml/ferry".into(),
            max_replicas: 5,
            target_cpu: 70,
        };
        insta::assert_snapshot!(to_yaml(&gateway(&g).unwrap()));
    }

    #[test]
    fn every_problem_is_said_at_once_by_its_flag() {
        let s = Server {
            common: Common {
                name: "Ferry_Server".into(),
                replicas: 0,
                cpu: "half".into(),
                image: "".into(),
                ..common("x")
            },
            artifacts: "/srv/artifacts".into(),
            admin_secret: None,
        };
        let e = server(&s).unwrap_err();
        let flags: Vec<&str> = e.0.iter().map(|(f, _)| *f).collect();
        assert_eq!(flags, ["name", "image", "replicas", "cpu", "artifacts"]);
        let g = Gateway {
            common: common("g"),
            model: "iris/3".into(),
            artifacts: "http://x".into(),
            max_replicas: 1,
            target_cpu: 0,
        };
        let text = gateway(&g).unwrap_err().to_string();
        assert!(text.contains("--model: `iris/3`: serve an alias"), "{text}");
        assert!(
            text.contains("--max-replicas: 1 is below --replicas (2)"),
            "{text}"
        );
        assert!(text.contains("--target-cpu: 0"), "{text}");
        assert!(text.contains("--artifacts: `http://x`"), "{text}");
    }

    #[test]
    fn secrets_are_named_never_inlined() {
        let s = Server {
            common: common("ferry-server"),
            artifacts: "gs://b/p".into(),
            admin_secret: Some("ferry-admin".into()),
        };
        let yaml = to_yaml(&server(&s).unwrap());
        assert!(yaml.contains("secretKeyRef"));
        assert!(!yaml.contains("postgres://"));
        assert!(!yaml.to_lowercase().contains("password:"));
    }

    #[test]
    fn quantities() {
        for q in ["500m", "2", "0.5", "512Mi", "1Gi"] {
            assert!(is_quantity(q), "{q}");
        }
        for q in ["", "m", "1.2.3", "half", "5 Mi", "-1"] {
            assert!(!is_quantity(q), "{q}");
        }
    }
}
