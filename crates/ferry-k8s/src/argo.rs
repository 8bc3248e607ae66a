//! `ferry export argo`: the pipeline as an Argo Workflows WorkflowTemplate
//! (or, with a schedule, a CronWorkflow) for teams that schedule through
//! Argo.
//!
//! One DAG task per stage, in the pipeline's order, each after the stages
//! it reads, and a last task for the whole pipeline. Every task checks the
//! project out at the workflow's `revision` (Argo's git artifact) and runs
//! `ferry run STAGE --push` in the image: the stages it needs come back
//! from the remote's run cache (their own tasks pushed them), and the
//! stage itself is restored from there when its inputs did not change, or
//! runs and pushes what it made. So the lock-file semantics hold on Argo
//! too: only what changed runs. The last task runs the whole pipeline
//! (everything restored), which evaluates the gates and registers the
//! model, recorded where `--server` says.

use crate::{Invalid, container_security, pod_security, resources};
use serde_json::{Value, json};

/// What the workflow is made from.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The WorkflowTemplate's (or CronWorkflow's) name.
    pub name: String,
    pub namespace: Option<String>,
    /// The project's git repository as the cluster clones it.
    pub repo: String,
    /// The revision a submitted workflow checks out unless told otherwise.
    pub revision: String,
    /// The project's folder inside the repository (`""`: its root).
    pub path: String,
    /// Five-field cron, UTC: a CronWorkflow.
    pub schedule: Option<String>,
    /// Record runs to this `ferry server`.
    pub server: Option<String>,
    /// The remote stages push to and restore from (`ferry run -r`).
    pub remote: String,
    pub settings: ferry_spec::Kubernetes,
    /// The stages in the pipeline's order.
    pub stages: Vec<Stage>,
}

/// One stage, as the workflow needs it.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// Stages whose outputs it reads.
    pub upstream: Vec<String>,
    pub resources: Option<ferry_cost::Requested>,
    pub placement: Option<ferry_spec::Placement>,
}

/// The task name of a stage: Argo wants DNS-ish names (`prepare_data` ->
/// `prepare-data`); `pipeline` is the last task's.
fn task_name(stage: &str) -> String {
    format!("stage-{}", ferry_core::slug(stage, 56))
}

/// The workflow document; every problem, each by its flag.
pub fn workflow(w: &Workflow) -> Result<Value, Invalid> {
    let mut problems = Vec::new();
    if !ferry_spec::is_dns_label(&w.name) {
        problems.push((
            "name",
            format!(
                "`{}` is not a Kubernetes name (lowercase letters, digits and `-`, at most 63)",
                w.name
            ),
        ));
    }
    if !(w.repo.starts_with("https://")
        || w.repo.starts_with("git@")
        || w.repo.starts_with("ssh://"))
        || w.repo.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        problems.push((
            "repo",
            format!(
                "`{}` is not a git URL the cluster can clone (https://..., ssh://... or git@...)",
                w.repo
            ),
        ));
    }
    if let Some(s) = &w.schedule
        && ferry_core::clock::Cron::parse(s).is_err()
    {
        problems.push((
            "schedule",
            format!("`{s}` is not a five-field cron schedule (minute hour day month weekday, UTC)"),
        ));
    }
    if w.path.split('/').any(|p| p == "..") || w.path.starts_with('/') {
        problems.push((
            "path",
            format!("`{}` must stay inside the repository", w.path),
        ));
    }
    let image = w.settings.image.clone();
    let unplaced: Vec<&str> = w
        .stages
        .iter()
        .filter(|s| {
            w.settings
                .placement
                .merged(s.placement.as_ref())
                .image
                .or_else(|| image.clone())
                .is_none()
        })
        .map(|s| s.name.as_str())
        .collect();
    if !unplaced.is_empty() {
        problems.push((
            "image",
            format!(
                "no image for {}: give one, or set `kubernetes.image` in ferry.yaml (an image with ferry and Python, see the repository's Dockerfile)",
                unplaced.join(", ")
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(Invalid(problems));
    }
    let mut tasks: Vec<Value> = Vec::new();
    let mut templates = vec![];
    for s in &w.stages {
        let name = task_name(&s.name);
        let deps: Vec<String> = s.upstream.iter().map(|u| task_name(u)).collect();
        let mut task = json!({"name": name, "template": name});
        if !deps.is_empty() {
            task["dependencies"] = json!(deps);
        }
        tasks.push(task);
        templates.push(template(w, &name, Some(s)));
    }
    // The whole pipeline last: gates and registration judge every stage.
    let leaves: Vec<String> = w
        .stages
        .iter()
        .filter(|s| !w.stages.iter().any(|o| o.upstream.contains(&s.name)))
        .map(|s| task_name(&s.name))
        .collect();
    let mut last = json!({"name": "pipeline", "template": "pipeline"});
    if !leaves.is_empty() {
        last["dependencies"] = json!(leaves);
    }
    tasks.push(last);
    templates.push(template(w, "pipeline", None));
    let mut all = vec![json!({"name": "main", "dag": {"tasks": tasks}})];
    all.extend(templates);
    let mut spec = json!({
        "entrypoint": "main",
        "arguments": {"parameters": [
            {"name": "revision", "value": w.revision},
        ]},
        "templates": all,
        "podGC": {"strategy": "OnPodCompletion"},
        "securityContext": pod_security(),
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    });
    if let Some(sa) = &w.settings.service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    let mut metadata = json!({
        "name": w.name,
        "labels": {"app.kubernetes.io/managed-by": "ferry"},
    });
    if let Some(ns) = &w.namespace {
        metadata["namespace"] = json!(ns);
    }
    Ok(match &w.schedule {
        None => json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": metadata,
            "spec": spec,
        }),
        Some(cron) => json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": metadata,
            "spec": {
                "schedules": [cron],
                "timezone": "UTC",
                // A night's retrain that is still running is not started twice.
                "concurrencyPolicy": "Forbid",
                "workflowSpec": spec,
            },
        }),
    })
}

/// The template of one stage's task (`None`: the whole pipeline's).
fn template(w: &Workflow, name: &str, stage: Option<&Stage>) -> Value {
    let placement = w
        .settings
        .placement
        .merged(stage.and_then(|s| s.placement.as_ref()));
    let image = placement
        .image
        .clone()
        .or_else(|| w.settings.image.clone())
        .unwrap_or_default();
    let mut args = vec!["run".to_owned()];
    if let Some(s) = stage {
        args.push(s.name.clone());
    }
    args.extend(["--push".into(), "-r".into(), w.remote.clone()]);
    args.extend(["--trigger".into(), "argo".into()]);
    if let Some(server) = &w.server {
        args.extend(["--server".into(), server.clone()]);
    }
    let src = "/work/src";
    let workdir = if w.path.is_empty() {
        src.to_owned()
    } else {
        format!("{src}/{}", w.path.trim_end_matches('/'))
    };
    let mut container = json!({
        "image": image,
        "command": ["ferry"],
        "args": args,
        "workingDir": workdir,
        "env": [
            {"name": "HOME", "value": "/work"},
            {"name": "UV_CACHE_DIR", "value": "/work/.cache/uv"},
        ],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": container_security(),
    });
    if !w.settings.env_from.is_empty() {
        container["envFrom"] = w
            .settings
            .env_from
            .iter()
            .map(|s| json!({"secretRef": {"name": s}}))
            .collect();
    }
    if let Some(r) = stage.and_then(|s| s.resources.as_ref()) {
        container["resources"] = resources(r);
    }
    let mut t = json!({
        "name": name,
        "inputs": {"artifacts": [{
            "name": "source",
            "path": src,
            "git": {"repo": w.repo, "revision": "{{workflow.parameters.revision}}", "depth": 1},
        }]},
        // The checkout and the stage's files are written under /work.
        "volumes": [{"name": "work", "emptyDir": {}}],
        "container": container,
    });
    if let Some(mounts) = t["container"]["volumeMounts"].as_array_mut() {
        mounts.push(json!({"name": "work", "mountPath": "/work"}));
    }
    if !placement.node_selector.is_empty() {
        t["nodeSelector"] = json!(placement.node_selector);
    }
    if !placement.tolerations.is_empty() {
        t["tolerations"] = json!(placement.tolerations);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow_of(schedule: Option<&str>) -> Workflow {
        let stage = |name: &str, upstream: &[&str]| Stage {
            name: name.into(),
            upstream: upstream.iter().map(|s| s.to_string()).collect(),
            resources: None,
            placement: None,
        };
        Workflow {
            name: "iris".into(),
            namespace: Some("ml".into()),
            repo: "https://github.com/acme/iris.git".into(),
            revision: "main".into(),
            path: "examples/iris".into(),
            schedule: schedule.map(str::to_owned),
            server: Some("http://ferry-server.ml:5000".into()),
            remote: "shared".into(),
            settings: ferry_spec::Kubernetes {
                image: Some("registry.example.com/ferry:0.1".into()),
                env_from: vec!["bucket-credentials".into()],
                ..Default::default()
            },
            stages: vec![
                stage("validate", &[]),
                stage("prepare", &["validate"]),
                Stage {
                    resources: Some(ferry_cost::Requested {
                        cpus: 2.0,
                        memory_gib: 4.0,
                        gpus: 0,
                        gpu_type: None,
                        machine: None,
                    }),
                    ..stage("train_model", &["prepare"])
                },
                stage("evaluate", &["prepare", "train_model"]),
            ],
        }
    }

    #[test]
    fn a_task_per_stage_after_what_it_reads_then_the_pipeline() {
        let doc = workflow(&workflow_of(None)).unwrap();
        let tasks = &doc["spec"]["templates"][0]["dag"]["tasks"];
        let names: Vec<&str> = tasks
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "stage-validate",
                "stage-prepare",
                "stage-train-model",
                "stage-evaluate",
                "pipeline"
            ]
        );
        assert_eq!(
            tasks[3]["dependencies"],
            json!(["stage-prepare", "stage-train-model"])
        );
        assert_eq!(tasks[4]["dependencies"], json!(["stage-evaluate"]));
        let train = &doc["spec"]["templates"][3]["container"];
        assert_eq!(
            train["args"],
            json!([
                "run",
                "train_model",
                "--push",
                "-r",
                "shared",
                "--trigger",
                "argo",
                "--server",
                "http://ferry-server.ml:5000"
            ])
        );
        assert_eq!(train["workingDir"], "/work/src/examples/iris");
        assert_eq!(train["resources"]["requests"]["memory"], "4Gi");
        insta::assert_snapshot!(
            "argo-cron",
            crate::to_yaml(&[workflow(&workflow_of(Some("0 3 * * *"))).unwrap()])
        );
    }

    #[test]
    fn every_problem_is_said_by_its_flag() {
        let mut w = workflow_of(Some("at night"));
        w.name = "Iris_Model".into();
        w.repo = "/home/me/iris".into();
        w.path = "../elsewhere".into();
        w.settings.image = None;
        let e = workflow(&w).unwrap_err().to_string();
        for flag in ["--name", "--repo", "--schedule", "--path", "--image"] {
            assert!(e.contains(flag), "{flag}: {e}");
        }
    }
}
