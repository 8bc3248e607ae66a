//! `ferry export k8s server|gateway`: manifests to run ferry on a cluster,
//! YAML on stdout (`ferry-k8s` writes them; this turns flags into specs).

use crate::cli::{ExportCommand, K8sArgs, K8sCommand};
use crate::exit::{self, usage};
use anyhow::Result;

pub fn export(c: ExportCommand) -> Result<u8> {
    let ExportCommand::K8s(k) = c;
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
