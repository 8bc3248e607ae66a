//! `ferry report`: what a change does to the model. Finds the run and its
//! base (a git ref's latest run, a version's run, an earlier run), has
//! `ferry-review` compare and write them, and with `--post` puts the
//! Markdown on the pull request through `ferry_client::forge`.

use crate::cli::ReportArgs;
use crate::ctx::Ctx;
use crate::exit::{self, usage};
use crate::ui::print_json;
use anyhow::Result;
use ferry_client::forge::{self, Forge};
use ferry_metadata::{RunDetail, RunStatus, RunSummary};
use ferry_runner::History;
use std::path::Path;

/// Runs looked through for a base, newest first.
const RUNS_SEARCHED: i64 = 2_000;
/// Commits of a ref's first-parent history looked through for a run.
const COMMITS_SEARCHED: usize = 200;

pub(crate) fn report(ctx: &Ctx, args: &ReportArgs) -> Result<u8> {
    let project = ctx.project().ok();
    let history = ctx.reader(&args.place)?.history()?;
    let h = history.as_ref();
    let pipeline = project.as_ref().map(|p| p.pipeline.name.clone());
    let root = project.as_ref().map(|p| p.root.as_path());
    let head = head_run(h, args.run.as_deref(), pipeline.as_deref(), root)?;
    let base = match &args.compare {
        Some(r) => Some(explicit_base(ctx, args, h, root, &head, r)?),
        None => implied_base(h, root, &head)?,
    };
    let review = ferry_review::Review::new(
        &head,
        base.as_ref().map(|(run, chosen)| ferry_review::Base {
            run,
            chosen: chosen.as_str(),
        }),
    );
    let markdown = ferry_review::render::markdown(&review);
    if args.json {
        print_json(&review)?;
    } else if args.md {
        print!("{markdown}");
    } else {
        print!("{}", ferry_review::render::text(&review));
    }
    if let Some(which) = &args.post {
        post(which, args.pr, &review.pipeline, &markdown)?;
    }
    Ok(exit::OK)
}

fn store_err(e: ferry_runner::Error) -> anyhow::Error {
    crate::commands::runner_store_err(e)
}

/// The run to report: the one named; else the pipeline's newest at the
/// work tree's commit (in CI, where every branch's runs may be on one
/// server, none other: another pull request's run is not this one's);
/// else the pipeline's newest.
fn head_run(
    h: &dyn History,
    run: Option<&str>,
    pipeline: Option<&str>,
    root: Option<&Path>,
) -> Result<RunDetail> {
    if let Some(run) = run {
        let id = h.resolve(run).map_err(store_err)?;
        return h.get_run(&id).map_err(store_err);
    }
    let runs = h.list_runs(RUNS_SEARCHED).map_err(store_err)?;
    let mut ours = runs
        .iter()
        .filter(|r| pipeline.is_none_or(|p| r.pipeline == p));
    let at = root.and_then(ferry_runner::head_commit);
    let newest = match &at {
        Some(commit) => match ours
            .clone()
            .find(|r| r.git_commit.as_deref() == Some(commit.as_str()))
        {
            Some(r) => Some(r),
            None if in_ci() => {
                return Err(usage(format!(
                    "no run of `{}` at this commit ({}): the report is of this commit's run (`ferry run` first, or name a run)",
                    pipeline.unwrap_or("the pipeline"),
                    &commit[..commit.len().min(12)]
                )));
            }
            None => ours.next(),
        },
        None => ours.next(),
    };
    let newest = newest.ok_or_else(|| {
        usage(match pipeline {
            Some(p) => format!("no run of `{p}` recorded yet: run `ferry run` first"),
            None => "no runs recorded yet: run `ferry run` first".to_owned(),
        })
    })?;
    h.get_run(&newest.run_id).map_err(store_err)
}

/// Whether this runs in a CI job (GitHub Actions, GitLab CI, Jenkins).
fn in_ci() -> bool {
    ["GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// The runs of `head`'s pipeline that are not `head`, newest first.
fn other_runs(h: &dyn History, head: &RunDetail) -> Result<Vec<RunSummary>> {
    Ok(h.list_runs(RUNS_SEARCHED)
        .map_err(store_err)?
        .into_iter()
        .filter(|r| r.pipeline == head.run.pipeline && r.run_id != head.run.run_id)
        .filter(|r| r.status != RunStatus::Running)
        .collect())
}

/// The base `--compare REF` names: a version's run, `latest~N` or a run,
/// or a git ref's (or commit's) latest run.
fn explicit_base(
    ctx: &Ctx,
    args: &ReportArgs,
    h: &dyn History,
    root: Option<&Path>,
    head: &RunDetail,
    r: &str,
) -> Result<(RunDetail, String)> {
    if let Ok(model_ref) = r.parse::<ferry_core::ModelRef>()
        && (r.contains('@') || matches!(model_ref, ferry_core::ModelRef::Version(..)))
    {
        let registry = ctx.reader(&args.place)?.registry()?;
        if let Some(v) = registry.resolve(&model_ref).map_err(store_err)? {
            let run = v.run_id.as_deref().ok_or_else(|| {
                usage(format!(
                    "--compare {r}: version {} of `{}` records no run",
                    v.version, v.model
                ))
            })?;
            let d = h.get_run(run).map_err(store_err)?;
            return Ok((d, format!("{r}, version {}", v.version)));
        }
    }
    if r.starts_with("latest") {
        let id = h.resolve(r).map_err(store_err)?;
        return Ok((h.get_run(&id).map_err(store_err)?, r.to_owned()));
    }
    if let Some(found) = run_at_ref(h, root, head, r)? {
        return Ok(found);
    }
    match h.get_run(r) {
        Ok(d) => Ok((d, format!("run {r}"))),
        Err(_) => Err(usage(format!(
            "--compare {r}: no run of `{}` at that ref or commit (or the {COMMITS_SEARCHED} commits before it), and no version or run of that name\nhint: the base branch's runs are recorded where its CI runs `ferry run` (`--server`); or compare with a version: `--compare {}@production`",
            head.run.pipeline, head.run.pipeline
        ))),
    }
}

/// The base CI implies: the pull request's base commit or branch (GitHub,
/// GitLab, Jenkins), else the run before this one.
fn implied_base(
    h: &dyn History,
    root: Option<&Path>,
    head: &RunDetail,
) -> Result<Option<(RunDetail, String)>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let commit = github_event_base().or_else(|| var("CI_MERGE_REQUEST_DIFF_BASE_SHA"));
    let branch = var("GITHUB_BASE_REF")
        .or_else(|| var("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"))
        .or_else(|| var("CHANGE_TARGET"));
    if let Some(c) = &commit
        && let Some(found) = run_at_ref(h, root, head, c)?
    {
        return Ok(Some(found));
    }
    if let Some(b) = &branch {
        for r in [format!("origin/{b}"), b.clone()] {
            if let Some(found) = run_at_ref(h, root, head, &r)? {
                return Ok(Some(found));
            }
        }
        eprintln!(
            "note: no run of `{}` on {b} to compare with (its CI's pushes record them)",
            head.run.pipeline
        );
        return Ok(None);
    }
    let before = other_runs(h, head)?
        .into_iter()
        .find(|r| r.started_ms <= head.run.started_ms && !r.noop);
    match before {
        Some(r) => Ok(Some((
            h.get_run(&r.run_id).map_err(store_err)?,
            "the run before".to_owned(),
        ))),
        None => Ok(None),
    }
}

/// The event GitHub Actions runs for (its `GITHUB_EVENT_PATH` file).
fn github_event() -> Option<serde_json::Value> {
    let path = std::env::var_os("GITHUB_EVENT_PATH")?;
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The base commit of the pull request GitHub Actions runs for.
fn github_event_base() -> Option<String> {
    github_event()?
        .pointer("/pull_request/base/sha")?
        .as_str()
        .map(str::to_owned)
}

/// The newest run of `head`'s pipeline at the commit `r` names, or at the
/// nearest commit before it (first parents) that has one.
fn run_at_ref(
    h: &dyn History,
    root: Option<&Path>,
    head: &RunDetail,
    r: &str,
) -> Result<Option<(RunDetail, String)>> {
    let commits = match root.and_then(|root| ferry_runner::first_parents(root, r, COMMITS_SEARCHED))
    {
        Some(c) => c,
        // Not a ref this clone knows: a commit (or a prefix of one) the
        // runs may still name.
        None if (7..=40).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit()) => {
            vec![r.to_ascii_lowercase()]
        }
        None => return Ok(None),
    };
    let runs = other_runs(h, head)?;
    for (back, c) in commits.iter().enumerate() {
        let at = runs.iter().find(|run| {
            run.git_commit
                .as_deref()
                .is_some_and(|g| g.starts_with(c.as_str()))
        });
        if let Some(run) = at {
            let short = &c[..c.len().min(7)];
            let chosen = match back {
                0 if r.starts_with(short) => format!("the latest run at {short}"),
                0 => format!("the latest run on {r}, at {short}"),
                n => format!(
                    "the latest run on {r}: at {short}, {n} commit{} before its tip",
                    if n == 1 { "" } else { "s" }
                ),
            };
            return Ok(Some((h.get_run(&run.run_id).map_err(store_err)?, chosen)));
        }
    }
    Ok(None)
}

/// Posts (or edits) the pipeline's comment on the pull request.
fn post(which: &str, pr: Option<u64>, pipeline: &str, markdown: &str) -> Result<()> {
    let forge = forge_of(which, pr)?;
    let token = match &forge {
        Forge::GitHub { .. } => env_any(&["GITHUB_TOKEN", "GH_TOKEN"]),
        Forge::GitLab { .. } => env_any(&["GITLAB_TOKEN"]),
    }
    .ok_or_else(|| {
        usage(match &forge {
            Forge::GitHub { .. } => {
                "--post: no GITHUB_TOKEN in the environment (the workflow passes `secrets.GITHUB_TOKEN`)"
            }
            Forge::GitLab { .. } => {
                "--post: no GITLAB_TOKEN in the environment (a project access token with the api scope, as a masked CI/CD variable)"
            }
        })
    })?;
    let marker = ferry_review::render::marker(pipeline);
    let posted = forge::upsert_comment(&forge, &token, &marker, markdown).map_err(|e| match e {
        forge::ForgeError::Invalid(m) => usage(format!("--post: {m}")),
        other => anyhow::anyhow!("--post: {other}"),
    })?;
    eprintln!(
        "{} the report comment{}",
        if posted.created { "posted" } else { "updated" },
        posted.url.map(|u| format!(": {u}")).unwrap_or_default()
    );
    Ok(())
}

fn env_any(keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// The pull request CI runs for, from its own variables.
fn forge_of(which: &str, pr: Option<u64>) -> Result<Forge> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let which = match which {
        "auto" if var("GITHUB_ACTIONS").is_some() => "github",
        "auto" if var("GITLAB_CI").is_some() => "gitlab",
        "auto" => {
            return Err(usage(
                "--post: not in GitHub Actions or GitLab CI; say which (`--post github` or `--post gitlab`)",
            ));
        }
        w => w,
    };
    let number = |name: &str, v: Option<String>| -> Result<u64> {
        v.ok_or_else(|| {
            usage(format!(
                "--post: no {name}: not a pull request's run (or give --pr N)"
            ))
        })?
        .parse::<u64>()
        .map_err(|_| usage(format!("--post: {name} is not a number")))
    };
    Ok(match which {
        "github" => Forge::GitHub {
            api: var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            repo: var("GITHUB_REPOSITORY")
                .ok_or_else(|| usage("--post github: no GITHUB_REPOSITORY (`owner/name`)"))?,
            number: match pr {
                Some(n) => n,
                None => number("pull request number", github_event_number())?,
            },
        },
        _ => Forge::GitLab {
            api: var("CI_API_V4_URL").unwrap_or_else(|| "https://gitlab.com/api/v4".into()),
            project: number("CI_PROJECT_ID", var("CI_PROJECT_ID"))?,
            iid: match pr {
                Some(n) => n,
                None => number("CI_MERGE_REQUEST_IID", var("CI_MERGE_REQUEST_IID"))?,
            },
        },
    })
}

/// The number of the pull request GitHub Actions runs for.
fn github_event_number() -> Option<String> {
    github_event()?
        .pointer("/pull_request/number")
        .and_then(serde_json::Value::as_u64)
        .map(|n| n.to_string())
}
