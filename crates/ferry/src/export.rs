//! `ferry export k8s server|gateway`: manifests to run ferry on a cluster,
//! YAML on stdout (`ferry-k8s` writes them; this turns flags into specs).

use crate::cli::{ArgoArgs, ExportCommand, K8sArgs, K8sCommand};
use crate::exit::{self, usage};
use anyhow::Result;

pub fn export(ctx: &crate::ctx::Ctx, c: ExportCommand) -> Result<u8> {
    let k = match c {
        ExportCommand::K8s(k) => k,
        ExportCommand::Argo(a) => return argo(ctx, a),
    };
    let docs = match k {
        K8sCommand::Server {
            artifacts,
            admin_secret,
            common,
        } => ferry_k8s::server(&ferry_k8s::Server {
            common: common_of(common, "ferry-server".into()),
            artifacts,
            admin_secret,
        }),
        K8sCommand::Gateway {
            model,
            artifacts,
            max_replicas,
            target_cpu,
            common,
        } => {
            // `iris@production` -> `iris-production-gateway`: two aliases of
            // one model are two gateways (a name the checks below judge
            // like any other; `--name` when it is too long).
            let base = model
                .replace('@', "-")
                .to_lowercase()
                .replace(['_', '.', '/'], "-");
            let name = format!("{base}-gateway");
            ferry_k8s::gateway(&ferry_k8s::Gateway {
                common: common_of(common, name),
                model,
                artifacts,
                max_replicas,
                target_cpu,
            })
        }
    }
    .map_err(|e| usage(e.to_string()))?;
    print!("{}", ferry_k8s::to_yaml(&docs));
    Ok(exit::OK)
}

fn common_of(a: K8sArgs, default_name: String) -> ferry_k8s::Common {
    ferry_k8s::Common {
        name: a.name.unwrap_or(default_name),
        namespace: a.namespace,
        image: a.image,
        replicas: a.replicas,
        store_secret: a.store_secret,
        env_secret: a.env_secret,
        service_account: a.service_account,
        cpu: a.cpu,
        memory: a.memory,
    }
}

/// `ferry export argo`: the project's pipeline as a workflow.
fn argo(ctx: &crate::ctx::Ctx, a: ArgoArgs) -> Result<u8> {
    let project = ctx.project()?;
    let p = &project.pipeline;
    let mut settings = p.kubernetes.clone().unwrap_or_default();
    if let Some(image) = a.image {
        settings.image = Some(image);
    }
    let name = a.remote.as_deref().or(settings.remote.as_deref());
    let (cfg, _) = crate::remote::for_stages(&project, name, None)?;
    let w = ferry_k8s::argo::Workflow {
        name: a.name.unwrap_or_else(|| ferry_core::slug(&p.name, 63)),
        namespace: a.namespace.or_else(|| settings.namespace.clone()),
        repo: a.repo,
        revision: a.revision,
        path: a.path,
        schedule: a.schedule,
        server: a.server,
        remote: cfg.name,
        stages: p
            .stages
            .iter()
            .map(|s| ferry_k8s::argo::Stage {
                name: s.name.to_string(),
                upstream: s.upstream.iter().map(ToString::to_string).collect(),
                resources: s.resources.clone(),
                placement: s.placement.clone(),
            })
            .collect(),
        settings,
    };
    let doc = ferry_k8s::argo::workflow(&w).map_err(|e| usage(e.to_string()))?;
    print!("{}", ferry_k8s::to_yaml(&[doc]));
    Ok(exit::OK)
}
