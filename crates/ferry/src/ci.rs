//! `ferry ci export github|gitlab|jenkins`: the CI file for this pipeline,
//! from what ferry.yaml says of its inputs (`ferry-ci` writes it; this
//! module finds the repository, the inputs, the secrets and the reports).

use crate::cli::CiExportArgs;
use crate::exit::{self, usage};
use anyhow::{Context, Result};
use ferry_ci::System;
use ferry_runner::{POINTER_SUFFIX, Project};
use std::path::Path;

pub fn export(ctx: &crate::ctx::Ctx, args: &CiExportArgs) -> Result<u8> {
    // The CLI takes only the systems' names.
    let system = System::parse(&args.system)
        .ok_or_else(|| usage(format!("`{}` is not a CI system", args.system)))?;
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
        .unwrap_or_else(|| system.default_file(&name));
    let (secrets, notes) = secrets(&project, system);
    let w = ferry_ci::Workflow {
        pipeline: name,
        inputs: inputs(&project, &project_dir, &file),
        requirements: p
            .env
            .as_ref()
            .map(|e| in_repo(&project_dir, &e.requirements)),
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
    let text = system.write(&w).map_err(|e| usage(e.to_string()))?;
    let path = repo.join(&file);
    let now = std::fs::read_to_string(&path).ok();
    if args.check {
        return Ok(if now.as_deref() == Some(text.as_str()) {
            eprintln!("{file} is up to date");
            exit::OK
        } else {
            eprintln!("{file} is not what this pipeline writes: run `ferry ci export {system}`");
            1
        });
    }
    if let Some(now) = &now
        && !system.wrote(now, &w.pipeline)
    {
        return Err(usage(format!(
            "{file} is not a file ferry wrote for this pipeline, and stays as it is: write this one elsewhere with --output PATH{}",
            match system {
                System::Github => "",
                System::Gitlab => " and `include:` it from .gitlab-ci.yml",
                System::Jenkins => " and make it a Multibranch Pipeline job's Script Path",
            }
        )));
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
    for n in next_steps(system, &file, &w) {
        eprintln!("note: {n}");
    }
    Ok(exit::OK)
}

/// What is left to do in the CI system for the file to run: include it,
/// point a job at it, define the secrets it names.
fn next_steps(system: System, file: &str, w: &ferry_ci::Workflow) -> Vec<String> {
    let secrets = w.secret_names().join(", ");
    let mut out = Vec::new();
    match system {
        System::Github => {
            if !secrets.is_empty() {
                out.push(format!("add the repository's secrets {secrets}"));
            }
        }
        System::Gitlab => {
            if file != ".gitlab-ci.yml" {
                out.push(format!(
                    "include it from .gitlab-ci.yml: `include: [{{local: {file}}}]`"
                ));
            }
            if !secrets.is_empty() {
                out.push(format!("define the project's CI/CD variables {secrets}"));
            }
        }
        System::Jenkins => {
            out.push(format!(
                "run it with a Multibranch Pipeline job whose Script Path is {file}"
            ));
            if !secrets.is_empty() {
                out.push(format!(
                    "add Secret text credentials with the IDs {secrets}"
                ));
            }
        }
    }
    out
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
    let mut out: Vec<String> = paths.iter().map(|p| in_repo(project_dir, p)).collect();
    out.push(file.to_owned());
    out.sort();
    out.dedup();
    out
}

/// A project path as a repository path.
fn in_repo(project_dir: &str, path: &str) -> String {
    if project_dir.is_empty() {
        path.to_owned()
    } else {
        format!("{project_dir}/{path}")
    }
}

/// The secrets the run needs (by the variables the remotes read), and
/// notes on remotes CI cannot use as they are.
fn secrets(project: &Project, system: System) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut notes = Vec::new();
    for r in &project.pipeline.remotes {
        match ferry_spec::Location::parse(&r.url, &project.root) {
            Ok(ferry_spec::Location::S3 { .. }) => {
                names.extend(["AWS_ACCESS_KEY_ID".to_owned(), "AWS_SECRET_ACCESS_KEY".to_owned()]);
            }
            Ok(ferry_spec::Location::Gcs { .. }) => notes.push(format!(
                "remote `{}` is on GCS: {}, the file names no key",
                r.name,
                match system {
                    System::Github => "add google-github-actions/auth before `ferry run` (workload identity)",
                    System::Gitlab => "give the job Google credentials before `ferry run` (GitLab's workload identity federation, or a CI/CD variable of type File named by GOOGLE_APPLICATION_CREDENTIALS)",
                    System::Jenkins => "give the agent Google credentials before `ferry run` (its service account, or a Secret file credential bound to GOOGLE_APPLICATION_CREDENTIALS)",
                }
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
