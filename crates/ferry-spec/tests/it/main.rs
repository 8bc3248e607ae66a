//! Data-driven spec tests: every folder under `tests/fixtures/valid` must load,
//! every folder under `tests/fixtures/invalid` must fail, with the rendered
//! diagnostics snapshotted.

#![allow(clippy::unwrap_used)]

use ferry_spec::{Files, load};
use std::path::{Path, PathBuf};

struct Dir(PathBuf);

impl Files for Dir {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        match std::fs::read_to_string(self.0.join(path)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn exists(&self, path: &str) -> bool {
        self.0.join(path).exists()
    }
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures in {}", root.display());
    dirs
}

fn load_dir(dir: &Path) -> Result<ferry_spec::Pipeline, ferry_spec::Diagnostics> {
    let text = std::fs::read_to_string(dir.join("ferry.yaml")).unwrap();
    load("ferry.yaml", &text, "proj", &Dir(dir.to_owned()))
}

#[test]
fn valid_fixtures_load() {
    for dir in fixtures("valid") {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        match load_dir(&dir) {
            Ok(p) => {
                let summary: Vec<String> = p
                    .stages
                    .iter()
                    .map(|s| {
                        format!(
                            "{}: cmd={:?} deps={:?} outs={:?} params={} upstream={:?} timeout={:?} retries={}",
                            s.name,
                            s.cmd,
                            s.deps,
                            s.outs,
                            serde_json::to_string(&s.params).unwrap(),
                            s.upstream,
                            s.timeout,
                            s.retries
                        )
                    })
                    .chain(p.gates.iter().map(|g| format!("gate: {}", g.expr)))
                    .chain(p.register.iter().map(|r| {
                        let sig = r.signature.as_ref().map(|s| match s {
                            ferry_spec::SignatureSpec::Columns(s) => s.inputs.iter().map(|c| format!("{}: {}", c.name, c.ty.name())).collect::<Vec<_>>(),
                            ferry_spec::SignatureSpec::From { table, exclude } => vec![format!("from {table} except {exclude:?}")],
                        });
                        format!("register: {} {} {:?} from {} signature {sig:?}", r.model, r.artifact, r.alias, r.producer)
                    }))
                    .chain(p.remotes.iter().map(|r| format!("remote: {}", serde_json::to_string(r).unwrap())))
                    .chain(p.monitor.iter().map(|m| format!("monitor: {m:?}")))
                    .chain(p.triggers.iter().map(|t| format!("on: {t:?}")))
                    .chain(p.deploy.iter().map(|d| format!("deploy: {d:?}")))
                    .collect();
                insta::assert_snapshot!(format!("valid-{name}"), summary.join("\n"));
            }
            Err(d) => panic!("{name} should load:\n{}", d.render()),
        }
    }
}

#[test]
fn invalid_fixtures_report_every_error() {
    for dir in fixtures("invalid") {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        match load_dir(&dir) {
            Ok(_) => panic!("{name} should fail"),
            Err(d) => insta::assert_snapshot!(format!("invalid-{name}"), d.render()),
        }
    }
}

#[test]
fn schema_lists_every_key_the_loader_knows() {
    let schema: serde_json::Value = serde_json::from_str(ferry_spec::JSON_SCHEMA).unwrap();
    let props = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    let sorted = |k: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    use ferry_spec::keys::*;
    assert_eq!(props(&schema), sorted(TOP_KEYS));
    assert_eq!(props(&schema["$defs"]["stage"]), sorted(STAGE_KEYS));
    assert_eq!(props(&schema["properties"]["env"]), sorted(ENV_KEYS));
    assert_eq!(
        props(&schema["properties"]["env"]["properties"]["python"]),
        sorted(PYTHON_KEYS)
    );
    assert_eq!(
        props(&schema["properties"]["register"]),
        sorted(REGISTER_KEYS)
    );
    assert_eq!(
        props(&schema["properties"]["gates"]["items"]["oneOf"][1]),
        sorted(GATE_KEYS)
    );
    assert_eq!(
        props(&schema["properties"]["remotes"]["additionalProperties"]),
        sorted(REMOTE_KEYS)
    );
    assert_eq!(props(&schema["properties"]["cache"]), sorted(CACHE_KEYS));
    let monitor = &schema["properties"]["monitor"];
    assert_eq!(props(monitor), sorted(MONITOR_KEYS));
    assert_eq!(
        props(&monitor["properties"]["thresholds"]),
        sorted(THRESHOLD_KEYS)
    );
    assert_eq!(props(&monitor["properties"]["alerts"]), sorted(ALERT_KEYS));
    let on = &schema["properties"]["on"];
    assert_eq!(props(on), sorted(ON_KEYS));
    assert_eq!(
        props(&on["properties"]["drift"]["oneOf"][1]),
        sorted(WATCH_KEYS)
    );
    assert_eq!(props(&on["properties"]["decay"]), sorted(DECAY_KEYS));
    assert_eq!(props(&schema["properties"]["deploy"]), sorted(DEPLOY_KEYS));
}

#[test]
fn resources_max_cost_and_prices_are_read() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/cost");
    let p = load_dir(&dir).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(p.cost.machine, "gcp-us-central1");
    let own = p.cost.prices.get("on-prem").unwrap();
    assert_eq!((own.vcpu_hour, own.gpu("a100").unwrap()), (0.01, 1.5));
    assert!(
        p.cost.prices.get("aws-us-east-1").is_ok(),
        "the shipped tables stay"
    );
    let stage = |n: &str| p.stages.iter().find(|s| s.name.as_str() == n).unwrap();
    assert_eq!(stage("prepare").resources, None);
    let train = stage("train");
    let r = train.resources.as_ref().unwrap();
    assert_eq!(
        (r.cpus, r.memory_gib, r.gpus, r.gpu_type.as_deref()),
        (4.0, 16.0, 1, Some("t4"))
    );
    assert_eq!(train.max_cost, Some(2.5));
    let tune = stage("tune").resources.as_ref().unwrap();
    assert_eq!(
        (tune.memory_gib, tune.machine.as_deref()),
        (0.5, Some("on-prem"))
    );
}

#[test]
fn executor_and_placement_are_read() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/kubernetes");
    let p = load_dir(&dir).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(p.executor, ferry_spec::ExecutorKind::Kubernetes);
    let k = p.kubernetes.as_ref().unwrap();
    assert_eq!(k.namespace.as_deref(), Some("ml"));
    assert_eq!(k.env_from, ["s3-credentials"]);
    assert_eq!(k.remote, None);
    let train = p
        .stages
        .iter()
        .find(|s| s.name.as_str() == "train")
        .unwrap();
    let placed = k.placement.merged(train.placement.as_ref());
    assert_eq!(
        placed.image.as_deref(),
        Some("ghcr.io/acme/ferry-stage:1.0-cuda")
    );
    assert_eq!(placed.node_selector.len(), 2);
    assert_eq!(placed.tolerations[0].operator, "Exists");
    let prepare = p
        .stages
        .iter()
        .find(|s| s.name.as_str() == "prepare")
        .unwrap();
    assert_eq!(
        k.placement
            .merged(prepare.placement.as_ref())
            .image
            .as_deref(),
        Some("ghcr.io/acme/ferry-stage:1.0")
    );
}
