//! `ferry ci export github`: the CI workflow for this pipeline, from what
//! ferry.yaml says of its inputs (`ferry-ci` writes it; this module finds
//! the repository, the inputs and the secrets).

use crate::cli::CiExportArgs;
use crate::exit::{self, usage};
use anyhow::{Context, Result};
use ferry_runner::{POINTER_SUFFIX, Project};
use std::path::Path;

pub fn export(ctx: &crate::ctx::Ctx, args: &CiExportArgs) -> Result<u8> {
    let project = ctx.project()?;
    let repo = ferry_runner::work_tree_top(&project.root).ok_or_else(|| {
        usage(format!(
            "{} is not in a git repository: CI runs a repository's workflows (`git init` first)",
            project.root.display()
        ))
    })?;
    let project_dir = relative(repo, &project.root);
    let p = &project.pipeline;
    let name = ferry_core::slug(&p.name, 63);
    let file = args
        .output
        .clone()
        .unwrap_or_else(|| format!(".github/workflows/ferry-{name}.yml"));
    let (secrets, notes) = secrets(&project);
    let w = ferry_ci::Workflow {
        pipeline: name,
        inputs: inputs(&project, &project_dir, &file),
        project_dir,
        branch: args.branch.clone(),
        install: args
            .install
            .clone()
            .unwrap_or_else(|| format!("ferry-ml=={}", env!("CARGO_PKG_VERSION"))),
        secrets,
        server: args.server.clone(),
        reports: reports(&project),
        file: file.clone(),
    };
    let text = ferry_ci::github(&w).map_err(|e| usage(e.to_string()))?;
    let path = repo.join(&file);
    let now = std::fs::read_to_string(&path).ok();
    if args.check {
        return Ok(if now.as_deref() == Some(text.as_str()) {
            eprintln!("{file} is up to date");
            exit::OK
        } else {
            eprintln!("{file} is not what this pipeline writes: run `ferry ci export github`");
            1
        });
    }
    for n in notes {
        eprintln!("note: {n}");
    }
    if now.as_deref() == Some(text.as_str()) {
        eprintln!("unchanged: {file}");
        return Ok(exit::OK);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    ferry_fs::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {file}: runs when one of its {} inputs changes",
        w.inputs.len()
    );
    Ok(exit::OK)
}

/// `path` from `base` with `/` (`""` when they are the same folder).
fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default()
}

/// What starts the workflow, as repository paths: the spec, the params,
/// the environment's requirements, every dep no stage produces (a data
/// pointer file for data ferry versions, `dir/**` for a folder), and the
/// workflow file itself.
fn inputs(project: &Project, project_dir: &str, file: &str) -> Vec<String> {
    let p = &project.pipeline;
    let made: std::collections::BTreeSet<&str> = p
        .stages
        .iter()
        .flat_map(|s| &s.outs)
        .map(String::as_str)
        .collect();
    let mut paths = vec![ferry_runner::SPEC_FILE.to_owned()];
    if project.root.join(&p.params_file).exists() {
        paths.push(p.params_file.clone());
    }
    if let Some(env) = &p.env {
        paths.push(env.requirements.clone());
    }
    for dep in p.stages.iter().flat_map(|s| &s.deps) {
        if made
            .iter()
            .any(|o| dep == o || ferry_spec::path_within(dep, o))
        {
            continue;
        }
        let pointer = format!("{dep}{POINTER_SUFFIX}");
        if project.root.join(&pointer).is_file() {
            paths.push(pointer);
        } else if project.root.join(dep).is_dir() {
            paths.push(format!("{dep}/**"));
        } else {
            paths.push(dep.clone());
        }
    }
    let mut out: Vec<String> = paths
        .into_iter()
        .map(|p| {
            if project_dir.is_empty() {
                p
            } else {
                format!("{project_dir}/{p}")
            }
        })
        .collect();
    out.push(file.to_owned());
    out.sort();
    out.dedup();
    out
}

/// The secrets the run needs (by the variables the remotes read), and
/// notes on remotes CI cannot use as they are.
fn secrets(project: &Project) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut notes = Vec::new();
    for r in &project.pipeline.remotes {
        match ferry_spec::Location::parse(&r.url, &project.root) {
            Ok(ferry_spec::Location::S3 { .. }) => {
                names.extend(["AWS_ACCESS_KEY_ID".to_owned(), "AWS_SECRET_ACCESS_KEY".to_owned()]);
            }
            Ok(ferry_spec::Location::Gcs { .. }) => notes.push(format!(
                "remote `{}` is on GCS: add google-github-actions/auth before `ferry run` (workload identity), the workflow names no key",
                r.name
            )),
            _ => notes.push(format!(
                "remote `{}` is a folder, which a CI runner cannot reach: the run there will not share its cache",
                r.name
            )),
        }
    }
    names.sort();
    names.dedup();
    (names, notes)
}

/// The reports the check stages write (project paths).
fn reports(project: &Project) -> Vec<String> {
    let mut out: Vec<String> = project
        .pipeline
        .stages
        .iter()
        .filter_map(|s| s.check.as_ref())
        .flat_map(|c| std::iter::once(c.report.clone()).chain(c.html.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}
