//! One function per command. Each returns the process exit code.

use crate::cli::{Cli, Command, ModelsArgs, ModelsCommand, RunArgs, RunsCommand, ServerArgs};
use crate::ctx::Ctx;
use crate::exit::{self, store_err, usage};
use crate::ui::{Style, Terminal, bytes, duration, init_logging, print_json, time};
use anyhow::{Context, Result, bail};
use ferry_core::ModelRef;
use ferry_metadata::{ModelVersion, RunStatus, StageStatus};
use ferry_runner::{Action, Registry, RunOptions};
use std::io::IsTerminal;
use std::sync::Arc;

pub fn dispatch(cli: Cli) -> Result<u8> {
    let cwd = match &cli.dir {
        Some(d) => {
            if !d.is_dir() {
                bail!(usage(format!("-C `{}`: no such folder", d.display())));
            }
            d.clone()
        }
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    let color = match cli.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let ctx = Ctx {
        cwd,
        style: Style { color },
    };
    match cli.command {
        Command::Init {
            template,
            name,
            force,
        } => init(&ctx, &template, name, force),
        Command::Run(args) => run(&ctx, args),
        Command::Status {
            stages,
            json,
            remote: Some(name),
        } => crate::remote::status(&ctx, &stages, &name, json),
        Command::Status {
            stages,
            json,
            remote: None,
        } => status(&ctx, &stages, json),
        Command::Report(a) => crate::report::report(&ctx, &a),
        Command::Runs(r) => {
            let h = ctx.reader(&r.place)?.history()?;
            match r.command {
                RunsCommand::List { limit, all, json } => {
                    runs_list(&ctx, h.as_ref(), limit, all, json)
                }
                RunsCommand::Show { run, json } => runs_show(h.as_ref(), &run, json),
            }
        }
        Command::Logs { run, stage, place } => {
            if place.store.is_some() && place.server.is_none() {
                bail!(place.no_store(
                    "ferry logs",
                    "stage logs are files beside a store, not in it",
                    "read them through the `ferry server` on that store with `--server URL`, or run `ferry logs` in the project (`-C DIR`)",
                ));
            }
            logs(
                &ctx,
                ctx.reader(&place)?.history()?.as_ref(),
                &run,
                stage.as_deref(),
            )
        }
        Command::Models(m) => models(&ctx, m),
        Command::Gc {
            remote: Some(name),
            yes,
            history,
            json,
            ..
        } => crate::remote::gc(&ctx, &name, yes, &history.revisions(), json),
        Command::Gc { all, dry_run, .. } => gc(&ctx, all, dry_run),
        Command::Admin(c) => crate::admin::admin(&ctx, c),
        Command::Audit(c) => crate::admin::audit(&ctx, c),
        Command::Cost(a) => crate::cost::cost(&ctx, a),
        Command::Budget(c) => crate::cost::budget(&ctx, c),
        Command::Remote(c) => crate::remote::remote(&ctx, c),
        Command::Push(a) => crate::remote::transfer(&ctx, a, crate::remote::Direction::Push),
        Command::Fetch(a) => crate::remote::transfer(&ctx, a, crate::remote::Direction::Fetch),
        Command::Pull(a) => crate::remote::pull(&ctx, a),
        Command::Lineage {
            model,
            data,
            json,
            place,
        } => crate::lineage::lineage(&ctx, model.as_deref(), data.as_deref(), json, &place),
        Command::Reproduce {
            model,
            into,
            remote,
            json,
        } => crate::remote::reproduce(&ctx, &model, into, remote.as_deref(), json),
        Command::Add { paths, json } => crate::remote::add(&ctx, &paths, json),
        Command::Checkout { stages, link, json } => {
            crate::remote::checkout(&ctx, &stages, link, json)
        }
        Command::Server(args) => server(&ctx, args),
        Command::Login { url } => crate::admin::login(&url),
        Command::Logout { url } => crate::admin::logout(&url),
        Command::Serve(args) => crate::serve::serve(&ctx, args),
        Command::Deploy(args) => crate::serve::deploy(&ctx, args),
        Command::Monitor(c) => crate::monitor::monitor(&ctx, c),
        Command::Export(c) => crate::export::export(&ctx, c),
        Command::Ci(crate::cli::CiCommand::Export(args)) => crate::ci::export(&ctx, &args),
        Command::Stage(crate::cli::StageCommand::Run(args)) => crate::stage::run(&args),
        Command::Trigger {
            reason,
            json,
            place,
        } => crate::monitor::trigger(&ctx, reason, json, place),
        Command::Agent(a) => crate::monitor::agent(&ctx, a),
        Command::Data(c) => crate::data::data(&ctx.style, &ctx.cwd, c),
        Command::Check(c) => crate::data::check(&ctx.style, &ctx.cwd, c),
        Command::Schema => {
            print!("{}", ferry_spec::JSON_SCHEMA);
            Ok(exit::OK)
        }
        Command::Completions { shell } => completions(&shell),
    }
}

/// A completion script for `shell` on stdout.
fn completions(shell: &str) -> Result<u8> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let sh = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        "elvish" => Shell::Elvish,
        _ => Shell::PowerShell,
    };
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(sh, &mut cmd, "ferry", &mut std::io::stdout());
    Ok(exit::OK)
}

/// `ferry init` templates: (name, what it is, files). `{{name}}` in a file
/// becomes the pipeline's name; `gitignore` is written as `.gitignore`.
/// A template: name, what it is, and its files (path, text).
type Template = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const TEMPLATES: &[Template] = &[
    (
        "tabular",
        "a churn classifier on a small table: prepare, train, evaluate, gates, registration (needs only python3)",
        &[
            (
                "ferry.yaml",
                include_str!("../templates/tabular/ferry.yaml"),
            ),
            (
                "params.yaml",
                include_str!("../templates/tabular/params.yaml"),
            ),
            (
                "prepare.py",
                include_str!("../templates/tabular/prepare.py"),
            ),
            ("train.py", include_str!("../templates/tabular/train.py")),
            (
                "evaluate.py",
                include_str!("../templates/tabular/evaluate.py"),
            ),
            (
                "data/customers.csv",
                include_str!("../templates/tabular/data/customers.csv"),
            ),
            ("gitignore", include_str!("../templates/tabular/gitignore")),
        ],
    ),
    (
        "minimal",
        "one shell stage and a parameter",
        &[
            (
                "ferry.yaml",
                include_str!("../templates/minimal/ferry.yaml"),
            ),
            (
                "params.yaml",
                include_str!("../templates/minimal/params.yaml"),
            ),
            ("gitignore", include_str!("../templates/minimal/gitignore")),
        ],
    ),
];

/// A pipeline (and model) name from a folder's name: lower case letters,
/// digits, `-` and `_`.
fn name_from_folder(dir: &std::path::Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_owned();
    if ferry_core::ModelName::new(&name).is_ok() {
        name
    } else {
        "model".to_owned()
    }
}

fn init(ctx: &Ctx, template: &str, name: Option<String>, force: bool) -> Result<u8> {
    let Some((_, _, files)) = TEMPLATES.iter().find(|t| t.0 == template) else {
        bail!(usage(format!(
            "no template `{template}`; templates: {}",
            TEMPLATES
                .iter()
                .map(|t| format!("`{}` ({})", t.0, t.1))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let name = name.unwrap_or_else(|| name_from_folder(&ctx.cwd));
    ferry_core::ModelName::new(&name).map_err(|e| usage(format!("--name `{name}`: {e}")))?;
    let target = |f: &str| {
        ctx.cwd
            .join(if f == "gitignore" { ".gitignore" } else { f })
    };
    let existing: Vec<String> = files
        .iter()
        .filter(|(f, _)| *f != "gitignore" && target(f).exists())
        .map(|(f, _)| format!("`{f}`"))
        .collect();
    if !existing.is_empty() && !force {
        bail!(usage(format!(
            "{} already exist{}; pass --force to overwrite",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" }
        )));
    }
    for (f, text) in *files {
        let path = target(f);
        if *f == "gitignore" && path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, text.replace("{{name}}", &name))
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    eprintln!(
        "wrote the `{template}` template (pipeline and model `{name}`); next: `ferry status`, then `ferry run`"
    );
    Ok(exit::OK)
}

fn run(ctx: &Ctx, args: RunArgs) -> Result<u8> {
    let project = ctx.project()?;
    if args.jobs == Some(0) {
        bail!(usage("--jobs must be at least 1"));
    }
    if project.pipeline.stages.is_empty() && args.stages.is_empty() {
        eprintln!(
            "nothing to run: ferry.yaml has no stages (its data is versioned with `ferry add`, shared with `ferry push` and `ferry pull`)"
        );
        return Ok(exit::OK);
    }
    let (shared, push) = if args.no_remote || args.dry_run {
        (None, false)
    } else {
        crate::remote::shared_cache(&project, args.remote.as_deref(), args.push, args.no_push)?
    };
    let executor = crate::stage::executor(&project, args.executor, shared.as_ref())?;
    let opts = RunOptions {
        single: false,
        shared,
        push,
        targets: args.stages.clone(),
        force: args.force,
        dry_run: args.dry_run,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        trigger: args.trigger.clone(),
        over_budget: args.over_budget.clone(),
        server: match args.place.target()? {
            crate::place::Target::Server(url) => Some(url.to_owned()),
            crate::place::Target::Project => None,
            crate::place::Target::Store(_) => bail!(args.place.no_store(
                "ferry run",
                "a run records into the project's store, or into another through the `ferry server` on it (the model's files must go where that store's readers find them)",
                "start `ferry server --store URL` where that store is, then `ferry run --server http://HOST:PORT`",
            )),
        },
    };
    let tty = std::io::stderr().is_terminal();
    let term = Arc::new(Terminal::new(ctx.style, tty));
    let cancel = ferry_executor::CancelToken::new();
    {
        let cancel = cancel.clone();
        let _ = ctrlc::set_handler(move || {
            if cancel.is_cancelled() {
                // A second Ctrl-C: stop waiting for the grace period.
                std::process::exit(i32::from(exit::CANCELLED));
            }
            cancel.cancel();
            // The stages stop within the grace period whatever the run is
            // doing (their threads watch the token); should the run itself
            // not come back soon after, ferry ends anyway: the lock goes with
            // the process, the leaders get their parent-death signal, and the
            // next run marks this one crashed and ends what is left.
            std::thread::spawn(|| {
                std::thread::sleep(ferry_executor::KILL_GRACE + std::time::Duration::from_secs(5));
                eprintln!("error: the run did not stop in time after the signal; exiting");
                std::process::exit(i32::from(exit::CANCELLED));
            });
        });
    }
    let ticker_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = tty.then(|| {
        let (t, stop) = (term.clone(), ticker_stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(250));
                t.tick();
            }
        })
    });
    let result = ferry_runner::run_with(&project, &opts, executor, term.clone(), &cancel);
    ticker_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    term.finish();
    let report = result?;
    if args.json {
        print_json(&report)?;
    }
    let s = &ctx.style;
    if report.dry_run {
        for st in &report.stages {
            let what = match st.status {
                StageStatus::UpToDate => s.dim("up to date"),
                StageStatus::Restored => s.green("would restore"),
                _ => s.cyan("would run"),
            };
            if !args.json {
                eprintln!(
                    "{what} {} {}",
                    st.stage,
                    if st.status == StageStatus::UpToDate {
                        String::new()
                    } else {
                        s.dim(&format!("({})", st.reason.as_deref().unwrap_or_default()))
                    }
                );
            }
        }
        return Ok(exit::OK);
    }
    let counts = |st: StageStatus| report.stages.iter().filter(|o| o.status == st).count();
    if !args.json {
        let summary = format!(
            "{} ran, {} restored, {} up to date",
            counts(StageStatus::Ran),
            counts(StageStatus::Restored),
            counts(StageStatus::UpToDate)
        );
        let run = report
            .run_id
            .as_deref()
            .map(|r| crate::ui::short(r, 8))
            .unwrap_or("-");
        match report.status {
            RunStatus::Succeeded => eprintln!("{} run {run}: {summary}", s.green("ok")),
            RunStatus::GateFailed => eprintln!(
                "{} run {run}: a gate failed; nothing registered",
                s.red("stopped")
            ),
            RunStatus::Failed => eprintln!("{} run {run}: {summary}", s.red("failed")),
            RunStatus::Cancelled => eprintln!("{} run {run}", s.yellow("cancelled")),
            _ => {}
        }
    }
    Ok(exit::of_run(report.status))
}

fn status(ctx: &Ctx, stages: &[String], json: bool) -> Result<u8> {
    let project = ctx.project()?;
    let report = ferry_runner::status(&project, stages)?;
    if json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    let s = &ctx.style;
    let width = report
        .stages
        .iter()
        .map(|st| st.stage.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for st in &report.stages {
        let what = match st.action {
            Action::UpToDate => s.green("up to date"),
            Action::Restore => s.cyan("will restore from cache"),
            Action::Run => s.yellow("will run"),
        };
        let why = if st.reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", st.reasons.join(", "))
        };
        out.push_str(&format!("{:width$}  {what}{why}\n", st.stage));
    }
    for d in &report.data {
        let what = if d.state == "changed" {
            s.yellow("changed: `ferry add` records it")
        } else {
            s.red("missing: `ferry checkout` brings it back")
        };
        out.push_str(&format!("{:width$}  data {what}\n", d.path));
    }
    if report.up_to_date() {
        out.push_str(&format!("{}\n", s.dim("everything is up to date")));
    }
    print!("{out}");
    Ok(exit::OK)
}

/// A line of `ferry runs list`: a run, or consecutive no-op runs folded.
enum RunLine {
    Run(ferry_metadata::RunSummary),
    /// How many, and when the newest of them started.
    NoOps(usize, i64),
}

/// `runs` (newest first) as lines: each no-op run folded with the no-op
/// runs next to it, unless `all`.
fn fold_noops(runs: Vec<ferry_metadata::RunSummary>, all: bool) -> Vec<RunLine> {
    let mut lines: Vec<RunLine> = Vec::new();
    for r in runs {
        if r.noop && !all {
            if let Some(RunLine::NoOps(n, _)) = lines.last_mut() {
                *n += 1;
            } else {
                lines.push(RunLine::NoOps(1, r.started_ms));
            }
        } else {
            lines.push(RunLine::Run(r));
        }
    }
    lines
}

fn runs_list(
    ctx: &Ctx,
    h: &dyn ferry_runner::History,
    limit: i64,
    all: bool,
    json: bool,
) -> Result<u8> {
    if json {
        print_json(&h.list_runs(limit).map_err(runner_store_err)?)?;
        return Ok(exit::OK);
    }
    // `limit` lines: read more runs while folding leaves fewer, and one line
    // more than shown, so the last fold's count is whole.
    let want = if limit <= 0 { 50 } else { limit } as usize;
    let mut fetch = want as i64 + 1;
    let lines = loop {
        let runs = h.list_runs(fetch).map_err(runner_store_err)?;
        let read = runs.len() as i64;
        let lines = fold_noops(runs, all);
        if lines.len() > want || read < fetch || fetch >= 10_000 {
            break lines;
        }
        fetch = (fetch * 4).min(10_000);
    };
    let s = &ctx.style;
    println!(
        "{:<10} {:<19} {:<11} {:>8} {:<8} {:<10} PIPELINE",
        "RUN", "STARTED (UTC)", "STATUS", "TIME", "TRIGGER", "COMMIT"
    );
    for line in lines.into_iter().take(want) {
        let r = match line {
            RunLine::Run(r) => r,
            RunLine::NoOps(n, latest) => {
                println!(
                    "{}",
                    s.dim(&format!(
                        "… {n} no-op run{} (latest {}; `--all` lists {})",
                        if n == 1 { "" } else { "s" },
                        time(latest),
                        if n == 1 { "it" } else { "them" }
                    ))
                );
                continue;
            }
        };
        let status = match r.status {
            RunStatus::Succeeded => s.green(r.status.as_str()),
            RunStatus::Running => s.cyan(r.status.as_str()),
            _ => s.red(r.status.as_str()),
        };
        let pad = 11usize.saturating_sub(r.status.as_str().len());
        println!(
            "{:<10} {:<19} {status}{} {:>8} {:<8} {:<10} {}{}",
            crate::ui::short(&r.run_id, 8),
            time(r.started_ms),
            " ".repeat(pad),
            r.ended_ms
                .map(|e| duration(e - r.started_ms))
                .unwrap_or_else(|| "-".into()),
            r.trigger,
            r.git_commit
                .as_deref()
                .map(|c| &c[..c.len().min(8)])
                .unwrap_or("-"),
            r.pipeline,
            if r.noop {
                s.dim("  (no-op)")
            } else {
                String::new()
            }
        );
    }
    Ok(exit::OK)
}

/// A run's cost: the sum of its stages', with what it was charged on
/// (`None` for a run recorded before ferry priced stages).
fn cost_line(stages: &[ferry_metadata::StageRecord]) -> Option<String> {
    let costs: Vec<&ferry_cost::StageCost> =
        stages.iter().filter_map(|s| s.cost.as_ref()).collect();
    if costs.is_empty() {
        return None;
    }
    let total: f64 = costs.iter().map(|c| c.charged).sum();
    let mut machines: Vec<&str> = costs.iter().map(|c| c.machine.as_str()).collect();
    machines.sort_unstable();
    machines.dedup();
    let restored = costs
        .iter()
        .filter(|c| c.basis == ferry_cost::Basis::Restored)
        .count();
    let mut line = format!(
        "{} at {} prices",
        crate::ui::money(total),
        machines.join(", ")
    );
    if restored > 0 {
        line.push_str(&format!(
            "; {restored} stage{} restored or up to date, at no cost",
            if restored == 1 { "" } else { "s" }
        ));
    }
    Some(line)
}

fn runs_show(h: &dyn ferry_runner::History, run: &str, json: bool) -> Result<u8> {
    let run = h.resolve(run).map_err(runner_store_err)?;
    let d = h.get_run(&run).map_err(runner_store_err)?;
    if json {
        print_json(&d)?;
        return Ok(exit::OK);
    }
    let r = &d.run;
    println!("run       {}", r.run_id);
    println!("pipeline  {}", r.pipeline);
    println!(
        "status    {}{}",
        r.status.as_str(),
        match (&r.message, r.noop) {
            (Some(m), _) => format!(" ({m})"),
            (None, true) => " (no-op: nothing ran, restored or registered)".to_owned(),
            (None, false) => String::new(),
        }
    );
    println!(
        "started   {} UTC{}",
        time(r.started_ms),
        r.ended_ms
            .map(|e| format!(", took {}", duration(e - r.started_ms)))
            .unwrap_or_default()
    );
    println!("trigger   {}", r.trigger);
    if let Some(t) = h.triggered_by(&r.run_id).map_err(runner_store_err)? {
        println!("          {} (triggered run {})", t.evidence, t.trigger_id);
    }
    println!("commit    {}", r.git_commit.as_deref().unwrap_or("-"));
    if let Some(e) = &d.env_fingerprint {
        println!("env       {}", &e[..16.min(e.len())]);
    }
    if let Some(line) = cost_line(&d.stages) {
        println!("cost      {line}");
    }
    println!("\nSTAGE            STATUS      WALL     CPU      PEAK MEM       COST  EXIT  WHY");
    for s in &d.stages {
        println!(
            "{:<16} {:<11} {:>8} {:>8} {:>9} {:>10} {:>5}  {}",
            s.stage,
            s.status.as_str(),
            s.wall_ms.map(duration).unwrap_or_else(|| "-".into()),
            match (s.user_cpu_ms, s.sys_cpu_ms) {
                (Some(u), Some(y)) => duration(u + y),
                _ => "-".into(),
            },
            s.max_rss_bytes.map(bytes).unwrap_or_else(|| "-".into()),
            s.cost
                .as_ref()
                .map(|c| crate::ui::money(c.charged))
                .unwrap_or_else(|| "-".into()),
            s.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            s.reason.as_deref().unwrap_or("")
        );
    }
    if !d.params.is_empty() {
        println!("\nparams");
        for (k, v) in &d.params {
            println!("  {k} = {}", crate::ui::value(v));
        }
    }
    if !d.metrics.is_empty() {
        println!("\nmetrics");
        for m in &d.metrics {
            println!("  {} = {}", m.key, crate::ui::number(m.value));
        }
    }
    if !d.gates.is_empty() {
        println!("\ngates");
        for g in &d.gates {
            // A skipped gate (no comparison possible) is recorded as
            // not holding the run back, its message saying why.
            let (mark, message) = match g.message.strip_prefix("skipped: ") {
                Some(why) if g.passed => ("skip", why),
                _ if g.passed => ("pass", g.message.as_str()),
                _ => ("FAIL", g.message.as_str()),
            };
            println!("  {mark} {}: {message}", g.name);
        }
    }
    Ok(exit::OK)
}

/// Registry errors a user caused (no such version, an invalid alias) are
/// usage errors.
pub(crate) fn runner_store_err(e: ferry_runner::Error) -> anyhow::Error {
    match e {
        ferry_runner::Error::Store(s) => store_err(s),
        ferry_runner::Error::Remote(e) => crate::exit::client_err(e),
        e @ ferry_runner::Error::NoSuchRun(_) => usage(e.to_string()),
        other => other.into(),
    }
}

fn logs(ctx: &Ctx, h: &dyn ferry_runner::History, run: &str, stage: Option<&str>) -> Result<u8> {
    let run = h.resolve(run).map_err(runner_store_err)?;
    let d = h.get_run(&run).map_err(runner_store_err)?;
    let ran: Vec<&str> = d
        .stages
        .iter()
        .filter(|s| s.status == StageStatus::Ran || s.status == StageStatus::Failed)
        .map(|s| s.stage.as_str())
        .collect();
    let chosen: Vec<&str> = match stage {
        Some(s) => {
            if !d.stages.iter().any(|x| x.stage == s) {
                bail!(usage(format!(
                    "run {} has no stage `{s}`",
                    crate::ui::short(&d.run.run_id, 8)
                )));
            }
            vec![s]
        }
        None => ran.clone(),
    };
    if chosen.is_empty() {
        eprintln!(
            "no stage ran in run {}: nothing was logged",
            crate::ui::short(&d.run.run_id, 8)
        );
    }
    let mut out = std::io::stdout().lock();
    for s in chosen {
        use std::io::Write;
        if stage.is_none() {
            writeln!(out, "{}", ctx.style.bold(&format!("== {s}")))?;
        }
        match h.stage_log(&d.run.run_id, s).map_err(runner_store_err)? {
            Some(bytes) => out.write_all(&bytes)?,
            None => eprintln!("stage {s} left no log (it did not run in this run)"),
        }
    }
    Ok(exit::OK)
}

pub(crate) fn resolve(reg: &dyn Registry, r: &ModelRef) -> Result<ModelVersion> {
    reg.resolve(r)?
        .ok_or_else(|| usage(format!("no model version `{r}`")))
}

/// A model reference as users type it (`iris`, `iris/3`, `iris@candidate`),
/// for every command that takes one.
pub(crate) fn parse_ref(s: &str) -> Result<ModelRef> {
    s.parse::<ModelRef>().map_err(|e| usage(e.to_string()))
}

/// Where a version's files are kept when that is a bucket (its
/// `ferry.artifact_store` tag and its stored location under it).
fn stored_in(v: &ModelVersion) -> Option<String> {
    let (_, store) = v
        .tags
        .iter()
        .find(|(k, _)| k == ferry_metadata::lineage_tags::ARTIFACT_STORE)?;
    let rel = v
        .stored
        .as_ref()
        .and_then(|s| s.location.strip_prefix("mlflow-artifacts:/"));
    let at = match rel {
        Some(rel) => format!("{store}/{rel}"),
        None => store.clone(),
    };
    Some(crate::ui::printable(&at).into_owned())
}

fn print_version(ctx: &Ctx, v: &ModelVersion) {
    let s = &ctx.style;
    println!("{} {}/{}", s.bold("model"), v.model, v.version);
    if !v.aliases.is_empty() {
        println!("aliases    {}", v.aliases.join(", "));
    }
    if let Some(why) = v.rejected() {
        println!("{}   {why}", s.red("rejected"));
    }
    println!("created    {} UTC", time(v.created_ms));
    if v.artifact_digest.is_empty() {
        // Registered through the MLflow API: its files are wherever its source says.
        println!("source     {}", v.source);
    } else {
        println!(
            "artifact   {} ({}, blake3 {})",
            v.artifact_path,
            bytes(v.artifact_size),
            crate::ui::short(&v.artifact_digest, 16)
        );
    }
    if let Some(at) = stored_in(v) {
        println!("stored     {at}");
    }
    println!("run        {}", v.run_id.as_deref().unwrap_or("-"));
    println!(
        "commit     {}{}",
        v.git_commit.as_deref().unwrap_or("-"),
        match v.git_dirty {
            Some(true) => " (with uncommitted changes)",
            _ => "",
        }
    );
    if let Some(e) = &v.env_fingerprint {
        println!("env        {}", &e[..16.min(e.len())]);
    }
    if let Some(data) = v.lineage["data"].as_object() {
        println!("data");
        for (k, d) in data {
            println!(
                "  {k}  {}",
                d.as_str().map(|d| &d[..16.min(d.len())]).unwrap_or("?")
            );
        }
    }
    for section in ["params", "metrics"] {
        if let Some(m) = v.lineage[section].as_object().filter(|m| !m.is_empty()) {
            println!("{section}");
            for (k, val) in m {
                let shown = if section == "metrics" {
                    crate::ui::metric(val)
                } else {
                    crate::ui::value(val)
                };
                println!("  {k} = {shown}");
            }
        }
    }
    // Lineage tags are shown above; the rest (e.g. `ferry.rejected`) here.
    let tags: Vec<_> = v
        .tags
        .iter()
        .filter(|(k, _)| !ferry_metadata::lineage_tags::is_lineage(k))
        .collect();
    if !tags.is_empty() {
        println!("tags");
        for (k, val) in tags {
            let (k, val) = (crate::ui::printable(k), crate::ui::printable(val));
            println!("  {k} = {val}");
        }
    }
}

/// The version a bare model name picks (the newest that is not rejected),
/// saying on stderr which one and why; an error when every version is
/// rejected, rather than a rejected one.
pub(crate) fn latest_not_rejected(reg: &dyn Registry, name: &str) -> Result<ModelVersion> {
    let (picked, skipped) = reg.latest_not_rejected(name)?;
    let skipped_text = skipped
        .iter()
        .map(|v| {
            format!(
                "{}/{} (rejected: {})",
                v.model,
                v.version,
                v.rejected().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    match picked {
        Some(v) if skipped.is_empty() => {
            eprintln!("{name}/{}: the latest version", v.version);
            Ok(v)
        }
        Some(v) => {
            eprintln!(
                "{name}/{}: the latest version that is not rejected; skipped {skipped_text}",
                v.version
            );
            Ok(v)
        }
        None if skipped.is_empty() => Err(usage(format!("no model `{name}`"))),
        None => Err(usage(format!(
            "every version of `{name}` is rejected: {skipped_text}\nhint: name one to see it anyway, e.g. `ferry models show {name}/{}`",
            skipped[0].version
        ))),
    }
}

/// A version as `--json` shows it: its fields, and `rejected` (the reason,
/// or null) so scripts need not read the tag.
fn version_json(v: &ModelVersion) -> Result<serde_json::Value> {
    let mut j = serde_json::to_value(v)?;
    if let Some(o) = j.as_object_mut() {
        o.insert("rejected".into(), serde_json::json!(v.rejected()));
    }
    Ok(j)
}

fn models(ctx: &Ctx, args: ModelsArgs) -> Result<u8> {
    let reg = ctx.reader(&args.place)?.registry()?;
    let reg = reg.as_ref();
    match args.command {
        ModelsCommand::List { json } => {
            let models = reg.list_models()?;
            if json {
                print_json(&models)?;
                return Ok(exit::OK);
            }
            println!("{:<24} {:>7} {:>8}  ALIASES", "MODEL", "LATEST", "VERSIONS");
            for m in models {
                let aliases: Vec<String> =
                    m.aliases.iter().map(|(a, v)| format!("{a}={v}")).collect();
                let line = format!(
                    "{:<24} {:>7} {:>8}  {}",
                    m.name,
                    m.latest_version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    m.versions,
                    aliases.join(" ")
                );
                println!("{}", line.trim_end());
            }
        }
        ModelsCommand::Show { model, json } => {
            let v = match parse_ref(&model)? {
                ModelRef::Latest(name) => latest_not_rejected(reg, name.as_str())?,
                r => resolve(reg, &r)?,
            };
            if json {
                print_json(&version_json(&v)?)?;
            } else {
                print_version(ctx, &v);
            }
        }
        ModelsCommand::Versions { model, json } => {
            let name = ferry_core::ModelName::new(&model).map_err(|e| usage(e.to_string()))?;
            let vs = reg.versions(name.as_str())?;
            if json {
                print_json(&vs.iter().map(version_json).collect::<Result<Vec<_>>>()?)?;
                return Ok(exit::OK);
            }
            if vs.is_empty() {
                bail!(usage(format!("no model `{model}`")));
            }
            println!(
                "{:>7}  {:<19}  {:<10} {:<10} {:<16} ALIASES",
                "VERSION", "CREATED (UTC)", "RUN", "COMMIT", "ARTIFACT"
            );
            for v in vs {
                let line = format!(
                    "{:>7}  {:<19}  {:<10} {:<10} {:<16} {}",
                    v.version,
                    time(v.created_ms),
                    v.run_id
                        .as_deref()
                        .map(|r| crate::ui::short(r, 8))
                        .unwrap_or("-"),
                    v.git_commit
                        .as_deref()
                        .map(|c| &c[..c.len().min(8)])
                        .unwrap_or("-"),
                    crate::ui::short(&v.artifact_digest, 16),
                    match v.rejected() {
                        Some(why) if v.aliases.is_empty() => format!("rejected: {why}"),
                        Some(why) => format!("{} (rejected: {why})", v.aliases.join(", ")),
                        None => v.aliases.join(", "),
                    }
                );
                println!("{}", line.trim_end());
            }
        }
        ModelsCommand::Alias {
            model,
            alias,
            reason,
            json,
        } => {
            let r = parse_ref(&model)?;
            if matches!(r, ModelRef::Latest(_)) {
                bail!(usage(format!(
                    "name a version: `{model}/VERSION` or `{model}@ALIAS`"
                )));
            }
            format!("m@{alias}")
                .parse::<ModelRef>()
                .map_err(|_| usage(format!("invalid alias `{alias}`")))?;
            let v = resolve(reg, &r)?;
            let ver = v.version;
            let previous = reg
                .set_alias(&v.model, &alias, ver, reason.as_deref())
                .map_err(runner_store_err)?;
            if json {
                print_json(&serde_json::json!({
                    "model": v.model,
                    "alias": alias,
                    "version": ver,
                    "previous": previous,
                }))?;
            } else {
                // One shape whether the alias is new, moved or stays.
                let m = &v.model;
                let was = match previous {
                    None => "new".to_owned(),
                    Some(p) if p == ver => "unchanged".to_owned(),
                    Some(p) => format!("was {m}/{p}"),
                };
                eprintln!("{alias}: {m}/{ver} ({was})");
            }
        }
        ModelsCommand::History { model, json } => {
            let name = ferry_core::ModelName::new(&model).map_err(|e| usage(e.to_string()))?;
            let evs = reg.alias_history(name.as_str())?;
            if json {
                print_json(&evs)?;
                return Ok(exit::OK);
            }
            let width = evs
                .iter()
                .map(|e| e.model.len() + e.alias.len() + 1)
                .max()
                .unwrap_or(0)
                .max("ALIAS".len());
            println!(
                "{:<19}  {:<width$}  {:>4}    {:<4}  REASON",
                "CHANGED (UTC)", "ALIAS", "FROM", "TO"
            );
            for e in evs {
                let v = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
                let line = format!(
                    "{:<19}  {:<width$}  {:>4} -> {:<4}  {}",
                    time(e.changed_ms),
                    format!("{}@{}", e.model, e.alias),
                    v(e.previous),
                    v(e.version),
                    e.reason.unwrap_or_default()
                );
                println!("{}", line.trim_end());
            }
        }
    }
    Ok(exit::OK)
}

fn gc(ctx: &Ctx, all: bool, dry_run: bool) -> Result<u8> {
    let project = ctx.project()?;
    let stats = ferry_runner::gc(&project, !all, dry_run)?;
    eprintln!(
        "{} {} objects ({}) and {} run-cache entries",
        if dry_run { "would remove" } else { "removed" },
        stats.objects_removed,
        bytes(stats.bytes_removed as i64),
        stats.runs_removed
    );
    Ok(exit::OK)
}

fn server(ctx: &Ctx, args: ServerArgs) -> Result<u8> {
    const WHY: &str = "it is the server, and serves a store it opens itself";
    let exposed = "read and change every run, model and deployment (its store has no users: `ferry admin create-user NAME --admin --password-stdin`, or FERRY_ADMIN_PASSWORD at start-up, makes the first)";
    let loopback = args
        .host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    // Beyond loopback, a store is made only for a first admin: a server
    // that would be refused leaves nothing behind.
    let create =
        loopback || args.insecure_no_auth || std::env::var_os("FERRY_ADMIN_PASSWORD").is_some();
    // Defaults: the project's store and artifact folder (the current folder
    // if it holds no ferry project).
    let opened = ctx.store_url(&args.place, "ferry server", WHY, create);
    let has_users = match &opened {
        Ok((url, _)) => crate::admin::first_admin(url)?,
        Err(_) => false,
    };
    let ip = crate::serve::listen_ip(&args.host, args.insecure_no_auth, has_users, exposed)?;
    let (store_url, layout) = opened?;
    // Beyond loopback with users, credentials stay required even if every
    // user is later deleted.
    let require_auth = has_users && !ip.is_loopback();
    let place = crate::artifacts::place(&args.artifacts, layout.artifacts())?;
    let oidc = crate::serve::oidc_provider(&args.oidc)?;
    // Every problem of the hooks file (a secret's variable not set among
    // them) stops the server before it listens.
    let hooks = args.hooks.as_deref().map(crate::hooks::load).transpose()?;
    let (hooks, deliver) = hooks.map_or((None, Vec::new()), |h| (h.inbound, h.deliver));
    init_logging(args.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server runtime")?;
    rt.block_on(async move {
        let artifacts = crate::artifacts::open(&place, &args.artifacts).await?;
        let shown = (ferry_core::without_password(&store_url), artifacts.url());
        let cfg = ferry_tracking::ServerConfig {
            addr: std::net::SocketAddr::new(ip, args.port),
            store_url,
            artifacts,
            body_budget: args.max_inflight_mib.max(1).saturating_mul(1 << 20),
            limits: ferry_http::ConnLimits {
                max_connections: args.max_connections.max(1),
                ..Default::default()
            },
            require_auth,
            oidc,
            webhook_hosts: args.webhook_hosts.clone(),
            predictions: Some(
                args.predictions
                    .clone()
                    .unwrap_or_else(|| layout.predictions()),
            ),
            logs: Some(layout.logs()),
            drift: Some(std::sync::Arc::new(crate::data::LogDrift)),
            hooks,
            deliver: deliver.clone(),
        };
        let webhooks = cfg.hooks.as_ref().map(|h| {
            [("github", h.github.is_some()), ("gitlab", h.gitlab.is_some())]
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        });
        ferry_tracking::serve(cfg, move |addr| {
            eprintln!(
                "ferry server listening on http://{addr} (store {}, artifacts {})",
                shown.0, shown.1
            );
            eprintln!("  export MLFLOW_TRACKING_URI=http://{addr}");
            for forge in webhooks.iter().flatten() {
                eprintln!("  {forge} webhooks: http://{addr}/hooks/{forge} (`ferry agent` runs what they trigger)");
            }
            for ep in &deliver {
                eprintln!(
                    "  delivering {} event{} to `{}` (`ferry admin deliveries` lists them)",
                    ep.events.len(),
                    if ep.events.len() == 1 { "" } else { "s" },
                    ep.name
                );
            }
        })
        .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
