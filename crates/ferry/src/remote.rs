//! `ferry remote`, `push`, `fetch`, `pull`, `checkout`, `status --remote`
//! and `gc --remote`: which remote, from ferry.yaml and this machine's
//! settings, and how a transfer is shown.

use crate::cli::{LinkArg, PullArgs, RemoteCommand, TransferArgs};
use crate::ctx::Ctx;
use crate::exit::{self, usage};
use crate::ui::{Style, bytes, print_json, short};
use anyhow::{Context, Result};
use ferry_remote::{Options, Remote, RemoteConfig, Want};
use ferry_runner::Project;
use ferry_spec::remote as spec;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The project's remotes: ferry.yaml's, with `.ferry/remotes.yaml` laid over.
fn configured(project: &Project) -> Result<Vec<RemoteConfig>> {
    let file = project.layout().remotes_local();
    let local = match std::fs::read_to_string(&file) {
        Ok(text) => spec::local_settings(".ferry/remotes.yaml", &text)
            .map_err(|errors| usage(errors.join("\n")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let mut remotes = project.pipeline.remotes.clone();
    for (name, settings) in local {
        let Some(r) = remotes.iter_mut().find(|r| r.name == name) else {
            return Err(usage(format!(
                ".ferry/remotes.yaml: `{name}` is not a remote of ferry.yaml (add it with `ferry remote add`)"
            )));
        };
        r.options.extend(settings);
    }
    Ok(remotes)
}

/// The remote a run looks stages up in: `name`, else the default one;
/// none when the project has no default. `--push` needs one. Opened only
/// when a stage first needs it, so a run with nothing to do never starts a
/// transfer runtime. Also whether the run pushes: `--push`, or the remote
/// set to `push: auto` (in ferry.yaml or this machine's settings) without
/// `--no-push`.
pub(crate) fn shared_cache(
    project: &Project,
    name: Option<&str>,
    push: bool,
    no_push: bool,
) -> Result<(Option<std::sync::Arc<dyn ferry_runner::SharedCache>>, bool)> {
    let remotes = configured(project)?;
    let cfg = match name {
        Some(_) => pick(&remotes, name)?.clone(),
        None => match remotes.iter().find(|r| r.default) {
            Some(r) => r.clone(),
            None if push => pick(&remotes, None)?.clone(),
            None => return Ok((None, false)),
        },
    };
    let auto = cfg.options.get("push").map(String::as_str) == Some("auto");
    let push = push || (auto && !no_push);
    let shared: std::sync::Arc<dyn ferry_runner::SharedCache> = std::sync::Arc::new(Lazy {
        cfg,
        base: project.root.clone(),
        state: project.layout().remotes_state(),
        remote: std::sync::OnceLock::new(),
    });
    Ok((Some(shared), push))
}

/// The remote `cfg` as a run cache, opened at its first use; what it is
/// known to hold kept under `base`'s `.ferry/remotes`.
pub(crate) fn lazy(
    cfg: RemoteConfig,
    base: &std::path::Path,
) -> std::sync::Arc<dyn ferry_runner::SharedCache> {
    std::sync::Arc::new(Lazy {
        cfg,
        base: base.to_owned(),
        state: base.join(".ferry/remotes"),
        remote: std::sync::OnceLock::new(),
    })
}

/// The remote stages run elsewhere move their files through: `name`
/// (`kubernetes.remote`), else the one the run looks stages up in, else
/// the default or only one; with its settings (this machine's over
/// ferry.yaml's).
pub(crate) fn for_stages(
    project: &Project,
    name: Option<&str>,
    run_remote: Option<&std::sync::Arc<dyn ferry_runner::SharedCache>>,
) -> Result<(RemoteConfig, std::sync::Arc<dyn ferry_runner::SharedCache>)> {
    let remotes = configured(project)?;
    let name = name.or(run_remote.map(|r| r.name()));
    let cfg = pick(&remotes, name)
        .map_err(|e| {
            usage(format!(
                "stages run elsewhere move their files through a remote: {e}"
            ))
        })?
        .clone();
    let shared = match run_remote.filter(|r| r.name() == cfg.name) {
        Some(r) => r.clone(),
        None => std::sync::Arc::new(Lazy {
            cfg: cfg.clone(),
            base: project.root.clone(),
            state: project.layout().remotes_state(),
            remote: std::sync::OnceLock::new(),
        }),
    };
    Ok((cfg, shared))
}

/// A remote opened at its first use.
struct Lazy {
    cfg: RemoteConfig,
    base: std::path::PathBuf,
    state: std::path::PathBuf,
    remote: std::sync::OnceLock<Result<Remote, String>>,
}

impl Lazy {
    fn get(&self) -> Result<&Remote, String> {
        self.remote
            .get_or_init(|| {
                Remote::open(&self.cfg, &self.base, &self.state).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ferry_runner::SharedCache for Lazy {
    fn push_files(
        &self,
        cache: &ferry_cache::Cache,
        files: &[ferry_cache::OutRecord],
    ) -> Result<(), String> {
        self.get()?
            .push_files(cache, files)
            .map_err(|e| e.to_string())
    }
    fn fetch_files(
        &self,
        cache: &ferry_cache::Cache,
        files: &[ferry_cache::OutRecord],
    ) -> Result<(), String> {
        self.get()?
            .fetch_files(cache, files)
            .map_err(|e| e.to_string())
    }
    fn name(&self) -> &str {
        &self.cfg.name
    }
    fn fetch_run(
        &self,
        cache: &ferry_cache::Cache,
        fingerprint: &ferry_core::Digest,
    ) -> Result<bool, String> {
        self.get()?
            .fetch_run(cache, fingerprint)
            .map_err(|e| e.to_string())
    }
    fn push_run(
        &self,
        cache: &ferry_cache::Cache,
        fingerprint: &ferry_core::Digest,
    ) -> Result<(), String> {
        self.get()?
            .push_run(cache, fingerprint)
            .map_err(|e| e.to_string())
    }
}

/// The remote `name`, or the default one, or the only one.
fn choose(project: &Project, name: Option<&str>) -> Result<Remote> {
    let remotes = configured(project)?;
    let cfg = pick(&remotes, name)?;
    Ok(Remote::open(
        cfg,
        &project.root,
        &project.layout().remotes_state(),
    )?)
}

/// The configured remote `name`, or the default one, or the only one.
fn pick<'r>(remotes: &'r [RemoteConfig], name: Option<&str>) -> Result<&'r RemoteConfig> {
    let names = || {
        remotes
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cfg = match name.filter(|n| !n.is_empty()) {
        Some(n) => remotes
            .iter()
            .find(|r| r.name == n)
            .ok_or_else(|| usage(format!("no remote named `{n}` (remotes: {})", names())))?,
        None => match remotes.iter().find(|r| r.default) {
            Some(r) => r,
            None if remotes.len() == 1 => &remotes[0],
            None if remotes.is_empty() => {
                return Err(usage(
                    "this project has no remote: add one with `ferry remote add NAME URL --default`",
                ));
            }
            None => {
                return Err(usage(format!(
                    "no default remote: name one with -r ({}), or mark one with `default: true`",
                    names()
                )));
            }
        },
    };
    Ok(cfg)
}

pub(crate) fn remote(ctx: &Ctx, cmd: RemoteCommand) -> Result<u8> {
    let project = ctx.project()?;
    match cmd {
        RemoteCommand::Add {
            name,
            url,
            default,
            endpoint,
            region,
            profile,
            allow_http,
            push,
        } => {
            let mut options = BTreeMap::new();
            let given = [
                ("endpoint", endpoint),
                ("region", region),
                ("profile", profile),
                ("allow_http", allow_http.then(|| "true".to_owned())),
                ("push", push),
            ];
            for (k, v) in given {
                if let Some(v) = v {
                    options.insert(k.to_owned(), v);
                }
            }
            let errors = spec::validate(&name, &url, &options);
            if !errors.is_empty() {
                return Err(usage(errors.join("\n")));
            }
            let cfg = RemoteConfig {
                name: name.clone(),
                url: url.clone(),
                default,
                options,
            };
            let path = project.layout().spec_file();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let edited = spec::add_to_spec(&text, &cfg).map_err(usage)?;
            // What is written must load: check it as a whole first.
            ferry_spec::load(
                ferry_runner::SPEC_FILE,
                &edited,
                "check",
                &ProjectFiles(&project.root),
            )
            .map_err(|d| usage(d.render()))?;
            ferry_fs::write_atomic(&path, edited.as_bytes())?;
            eprintln!(
                "added remote `{name}` ({url}) to ferry.yaml{}",
                if default { " as the default" } else { "" }
            );
            Ok(exit::OK)
        }
        RemoteCommand::List { json } => {
            let remotes = configured(&project)?;
            if json {
                print_json(&remotes)?;
                return Ok(exit::OK);
            }
            if remotes.is_empty() {
                eprintln!("no remotes (add one with `ferry remote add NAME URL --default`)");
            }
            let rows: Vec<Vec<String>> = remotes
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.url.clone(),
                        if r.default {
                            "yes".into()
                        } else {
                            String::new()
                        },
                        r.options
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print!(
                    "{}",
                    crate::ui::table("", &["NAME", "URL", "DEFAULT", "SETTINGS"], &rows)
                );
            }
            Ok(exit::OK)
        }
        RemoteCommand::Remove { name } => {
            let path = project.layout().spec_file();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let edited = spec::remove_from_spec(&text, &name).map_err(usage)?;
            ferry_fs::write_atomic(&path, edited.as_bytes())?;
            let _ = std::fs::remove_file(
                project
                    .layout()
                    .remotes_state()
                    .join(format!("{name}.known")),
            );
            eprintln!("removed remote `{name}` from ferry.yaml");
            Ok(exit::OK)
        }
    }
}

/// The project's files, for checking an edited spec before it is written.
struct ProjectFiles<'a>(&'a std::path::Path);

impl ferry_spec::Files for ProjectFiles<'_> {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        match std::fs::read_to_string(self.0.join(path)) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn exists(&self, path: &str) -> bool {
        self.0.join(path).exists()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Push,
    Fetch,
    Pull,
}

/// `ferry pull`: fetch, then check out with `--link` or ferry.yaml's mode.
pub(crate) fn pull(ctx: &Ctx, args: PullArgs) -> Result<u8> {
    let mut project = ctx.project()?;
    if let Some(link) = args.link.link {
        project.pipeline.link = link;
    }
    transfer_in(ctx, &project, args.transfer, Direction::Pull)
}

pub(crate) fn transfer(ctx: &Ctx, args: TransferArgs, dir: Direction) -> Result<u8> {
    transfer_in(ctx, &ctx.project()?, args, dir)
}

fn transfer_in(ctx: &Ctx, project: &Project, args: TransferArgs, dir: Direction) -> Result<u8> {
    let remote = choose(project, args.remote.as_deref())?;
    let (outs, runs) = ferry_runner::locked(project, &args.stages)?;
    let want = Want { outs, runs };
    let cache = ferry_cache::Cache::new(&project.layout().cache());
    let opts = Options {
        jobs: args.jobs.max(1),
        verify: args.verify,
    };
    let bar = Bar::new(
        ctx.style,
        std::io::stderr().is_terminal() && !args.json,
        if dir == Direction::Push {
            "pushing"
        } else {
            "fetching"
        },
    );
    let summary = match dir {
        Direction::Push => remote.push(&cache, &want, opts, &bar)?,
        Direction::Fetch | Direction::Pull => remote.fetch(&cache, &want, opts, &bar)?,
    };
    bar.finish();
    let checked_out = if dir == Direction::Pull && summary.failed.is_empty() {
        ferry_runner::checkout(project, &args.stages)?
    } else {
        Vec::new()
    };
    if args.json {
        print_json(&serde_json::json!({
            "summary": summary,
            "checkout": checked_out,
        }))?;
    } else {
        let verb = if dir == Direction::Push {
            "pushed"
        } else {
            "fetched"
        };
        eprintln!(
            "{verb} {} of {} files ({}) {} remote `{}`; {} already there",
            summary.transferred,
            summary.considered,
            bytes(summary.bytes as i64),
            if dir == Direction::Push { "to" } else { "from" },
            remote.name(),
            summary.up_to_date,
        );
        let restored = checked_out
            .iter()
            .filter(|c| c.outcome == "restored")
            .count();
        if dir == Direction::Pull {
            eprintln!("checked out {restored} of {} outputs", checked_out.len());
        }
        for m in summary.missing.iter().take(5) {
            eprintln!(
                "  {} {m}",
                ctx.style.yellow(if dir == Direction::Push {
                    "not in the local cache:"
                } else {
                    "not on the remote:"
                })
            );
        }
        if summary.missing.len() > 5 {
            eprintln!("  … and {} more", summary.missing.len() - 5);
        }
        for f in &summary.failed {
            eprintln!("  {} {}: {}", ctx.style.red("failed"), f.key, f.error);
        }
        if summary.not_attempted > 0 {
            eprintln!(
                "  {} {} more not tried after that failure: run `ferry {}` again to resume",
                ctx.style.red("stopped:"),
                summary.not_attempted,
                match dir {
                    Direction::Push => "push",
                    Direction::Fetch => "fetch",
                    Direction::Pull => "pull",
                }
            );
        }
    }
    // A fetch that could not bring everything the lock names leaves the
    // work tree short: that is a failure too. A push of what this machine
    // never had is not (another machine may push it).
    let complete = summary.failed.is_empty()
        && summary.not_attempted == 0
        && (dir == Direction::Push || summary.missing.is_empty());
    Ok(exit::of_transfer(complete))
}

pub(crate) fn status(ctx: &Ctx, stages: &[String], name: &str, json: bool) -> Result<u8> {
    let project = ctx.project()?;
    let remote = choose(&project, Some(name))?;
    let (outs, runs) = ferry_runner::locked(&project, stages)?;
    let cache = ferry_cache::Cache::new(&project.layout().cache());
    let st = remote.status(&cache, &Want { outs, runs }, Options::default())?;
    if json {
        print_json(&st)?;
        return Ok(exit::OK);
    }
    let s = &ctx.style;
    println!("remote `{}` ({})", remote.name(), remote.url());
    println!("  {} in sync", st.in_sync);
    println!(
        "  {} to push (`ferry push`)",
        s.yellow(&st.to_push.len().to_string())
    );
    println!(
        "  {} to fetch (`ferry pull`)",
        s.cyan(&st.to_fetch.len().to_string())
    );
    if !st.missing.is_empty() {
        println!(
            "  {} nowhere (neither in the local cache nor on the remote: rerun the stages)",
            s.red(&st.missing.len().to_string())
        );
    }
    Ok(exit::OK)
}

pub(crate) fn gc(
    ctx: &Ctx,
    name: &str,
    yes: bool,
    history: &ferry_runner::Revisions,
    json: bool,
) -> Result<u8> {
    let project = ctx.project()?;
    let remote = choose(&project, Some(name))?;
    let (outs, runs) = ferry_runner::remote_keep(&project, history)?;
    let cache = ferry_cache::Cache::new(&project.layout().cache());
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let report = remote.gc(
        &cache,
        &Want { outs, runs },
        DAY_MS,
        ferry_core::now_ms(),
        !yes,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(exit::OK);
    }
    eprintln!(
        "{} {} objects ({}) on remote `{}`; kept {}, and {} too recent to remove{}",
        if yes { "removed" } else { "would remove" },
        report.removed,
        bytes(report.removed_bytes as i64),
        remote.name(),
        report.kept,
        report.too_recent,
        if yes {
            ""
        } else {
            " (a dry run: --yes removes them)"
        }
    );
    Ok(exit::OK)
}

/// `ferry reproduce`: the recorded commit checked out beside, the data
/// its pointers name fetched by digest, every stage run, the artifacts
/// compared.
pub(crate) fn reproduce(
    ctx: &Ctx,
    reference: &str,
    into: Option<std::path::PathBuf>,
    remote: Option<&str>,
    json: bool,
) -> Result<u8> {
    let project = ctx.project()?;
    let reg = ferry_runner::local_registry(ferry_metadata::BlockingStore::open(
        &project.layout().store_url(),
    )?);
    let r = crate::commands::parse_ref(reference)?;
    if matches!(r, ferry_core::ModelRef::Latest(_)) {
        return Err(usage(format!(
            "`{reference}`: name a version (`{reference}/3`) or an alias (`{reference}@production`)"
        )));
    }
    let recorded = crate::commands::resolve(reg.as_ref(), &r)?;
    let commit = recorded.git_commit.clone().ok_or_else(|| {
        usage(format!(
            "{}/{} records no git commit (it was built outside a git repository): nothing to check out",
            recorded.model, recorded.version
        ))
    })?;
    if recorded.git_dirty == Some(true) {
        eprintln!(
            "{} {}/{} was built with uncommitted changes: the commit alone may not rebuild it",
            ctx.style.yellow("warning"),
            recorded.model,
            recorded.version
        );
    }
    let into = into.unwrap_or_else(|| {
        project
            .layout()
            .ferry_dir()
            .join("reproduce")
            .join(format!("{}-{}", recorded.model, recorded.version))
    });
    if into.exists() {
        return Err(usage(format!(
            "{} exists: remove it (`git worktree remove`) or pass --into",
            into.display()
        )));
    }
    let dir = ferry_runner::worktree_at(&project.root, &commit, &into).map_err(usage)?;
    eprintln!("checked out {} into {}", short(&commit, 12), dir.display());
    // This machine's remote settings go along; the data comes by digest.
    if let Ok(local) = std::fs::read(project.layout().remotes_local()) {
        ferry_fs::write_atomic(&ferry_runner::Layout::new(&dir).remotes_local(), &local)?;
    }
    let copy = Project::load(&dir)?;
    fetch_pointed_data(&copy, remote)?;
    let opts = ferry_runner::RunOptions {
        force: true,
        trigger: "reproduce".into(),
        ..ferry_runner::RunOptions::default()
    };
    let term = std::sync::Arc::new(crate::ui::Terminal::new(
        ctx.style,
        std::io::stderr().is_terminal(),
    ));
    let cancel = ferry_executor::CancelToken::new();
    let report = ferry_runner::run(&copy, &opts, term, &cancel)?;
    // What the rebuild produced, registered or not (a gate may hold it back).
    let produced_digest = copy.pipeline.register.as_ref().and_then(|reg| {
        ferry_cache::Hasher::new(&dir, ferry_cache::StatIndex::default())
            .digest_path(&reg.artifact)
            .ok()
            .flatten()
            .map(|d| d.digest().to_hex())
    });
    let result = ferry_runner::compare(&recorded, report.registered.as_ref(), produced_digest);
    if json {
        print_json(&result)?;
    } else {
        print_reproduction(&ctx.style, &result, &commit);
    }
    Ok(exit::of_transfer(result.identical))
}

/// Brings the data `copy`'s pointer files name from the remote, by digest,
/// and checks it out; an error names what the remote lacks.
fn fetch_pointed_data(copy: &Project, remote: Option<&str>) -> Result<()> {
    let pointers: Vec<ferry_cache::OutRecord> = ferry_runner::pointers(copy)?
        .iter()
        .map(ferry_runner::Pointer::out)
        .collect();
    if pointers.is_empty() {
        return Ok(());
    }
    let remote = choose(copy, remote)?;
    let cache = ferry_cache::Cache::new(&copy.layout().cache());
    let want = Want {
        outs: pointers,
        runs: Vec::new(),
    };
    let s = remote.fetch(&cache, &want, Options::default(), &())?;
    if !s.failed.is_empty() || !s.missing.is_empty() {
        return Err(anyhow::anyhow!(
            "the recorded data is not all on remote `{}`: {}",
            remote.name(),
            s.missing
                .iter()
                .chain(s.failed.iter().map(|f| &f.key))
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    ferry_runner::checkout(copy, &[])?;
    Ok(())
}

fn print_reproduction(style: &Style, result: &ferry_runner::Reproduction, commit: &str) {
    if result.identical {
        println!(
            "identical: {}/{} rebuilt from {} has the recorded digest {}",
            result.model,
            result.version,
            short(commit, 12),
            short(&result.recorded_digest, 12)
        );
        return;
    }
    println!(
        "{}: {}/{} rebuilt to {} (recorded {})",
        style.red("different"),
        result.model,
        result.version,
        result
            .produced_digest
            .as_deref()
            .map_or("nothing", |d| short(d, 12)),
        short(&result.recorded_digest, 12)
    );
    for d in &result.differences {
        println!(
            "  {:8} {}: {} -> {}",
            d.kind,
            crate::ui::printable(&d.name),
            d.recorded.as_deref().unwrap_or("(none)"),
            d.now.as_deref().unwrap_or("(none)")
        );
    }
    if result.differences.is_empty() {
        println!("  same inputs, packages and params: a stage is not deterministic");
    }
}

pub(crate) fn add(ctx: &Ctx, paths: &[String], json: bool) -> Result<u8> {
    let project = ctx.project()?;
    let added = ferry_runner::add(&project, paths)?;
    if json {
        print_json(&added)?;
        return Ok(exit::OK);
    }
    for p in &added {
        let files = p.files.map_or(String::new(), |n| format!("{n} files, "));
        eprintln!(
            "added {} ({files}{}): commit {}{}",
            p.path,
            bytes(p.size as i64),
            p.path,
            ferry_runner::POINTER_SUFFIX
        );
    }
    Ok(exit::OK)
}

pub(crate) fn checkout(ctx: &Ctx, stages: &[String], link: LinkArg, json: bool) -> Result<u8> {
    let mut project = ctx.project()?;
    if let Some(link) = link.link {
        project.pipeline.link = link;
    }
    let done = ferry_runner::checkout(&project, stages)?;
    if json {
        print_json(&done)?;
    } else {
        for c in &done {
            if c.outcome == "unchanged" {
                continue;
            }
            match c.stage.as_str() {
                "" => eprintln!("{:9} {}", c.outcome, c.path),
                stage => eprintln!("{:9} {} ({stage})", c.outcome, c.path),
            }
        }
        let missing = done.iter().filter(|c| c.outcome == "missing").count();
        if missing > 0 {
            eprintln!(
                "{missing} outputs are not in the local cache: `ferry pull` brings them from a remote"
            );
        }
    }
    Ok(exit::of_transfer(
        !done.iter().any(|c| c.outcome == "missing"),
    ))
}

/// A one-line progress bar on a terminal (files and bytes); nothing elsewhere.
struct Bar {
    style: Style,
    on: bool,
    verb: &'static str,
    files: AtomicU64,
    bytes: AtomicU64,
    total: AtomicU64,
    last: Mutex<std::time::Instant>,
}

impl Bar {
    fn new(style: Style, on: bool, verb: &'static str) -> Self {
        Self {
            style,
            on,
            verb,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total: AtomicU64::new(0),
            last: Mutex::new(std::time::Instant::now()),
        }
    }

    fn finish(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

impl ferry_remote::Progress for Bar {
    fn begin(&self, files: u64, _bytes: u64) {
        self.total.store(files, Ordering::Relaxed);
    }

    fn advance(&self, n: u64) {
        let files = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        let b = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if !self.on {
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.elapsed().as_millis() < 100 {
            return;
        }
        *last = std::time::Instant::now();
        eprint!(
            "\r\x1b[2K{}",
            self.style.dim(&format!(
                "  {} {files}/{} files, {}",
                self.verb,
                self.total.load(Ordering::Relaxed),
                bytes(b as i64)
            ))
        );
    }
}
