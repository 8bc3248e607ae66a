//! `ferry monitor`, `ferry trigger` and `ferry agent`: the closed loop
//! from the command line. The checks, alerts and the agent's tick are
//! `ferry-monitor`'s; here they get the project, its store, the real
//! pipeline runner (`ferry-runner`), rollouts (`ferry-rollout`) and the
//! clock.

use crate::cli::{AgentArgs, MonitorCommand, Place};
use crate::ctx::Ctx;
use crate::exit::{self, usage};
use crate::ui::{print_json, table};
use anyhow::{Context, Result};
use ferry_core::clock::{Clock, SystemClock};
use ferry_metadata::{CheckStatus, Fired, MetadataStore, MonitorEvent, TriggeredRun};
use ferry_monitor::agent::{self, Agent, Memory, Pipelines, Ran, Rollouts};
use std::path::PathBuf;
use std::sync::Arc;

/// How long `monitor history` shows by default.
const HISTORY: usize = 50;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

async fn open_store(ctx: &Ctx, place: &Place, cmd: &str) -> Result<Arc<dyn MetadataStore>> {
    let (url, _) = ctx.store_url(
        place,
        cmd,
        "monitors, triggers and the agent work on a store",
        false,
    )?;
    Ok(Arc::new(ferry_metadata::SqlStore::open(&url).await?))
}

pub fn monitor(ctx: &Ctx, c: MonitorCommand) -> Result<u8> {
    let rt = runtime()?;
    match c {
        MonitorCommand::Status { model, json, place } => rt.block_on(async {
            let store = open_store(ctx, &place, "ferry monitor status").await?;
            let latest = store.latest_monitor_events(model.as_deref()).await?;
            if json {
                print_json(&latest)?;
            } else if latest.is_empty() {
                println!("no monitor has run yet{}: start `ferry agent` in the project (its `monitor:` block says what it checks)", model.map(|m| format!(" for `{m}`")).unwrap_or_default());
            } else {
                print!("{}", events_table(&latest, false));
            }
            Ok(exit::OK)
        }),
        MonitorCommand::History { model, limit, json, place } => rt.block_on(async {
            let store = open_store(ctx, &place, "ferry monitor history").await?;
            let events = store.monitor_events(model.as_deref(), None, limit.unwrap_or(HISTORY)).await?;
            let triggers = store.triggered_runs(None, limit.unwrap_or(HISTORY)).await?;
            if json {
                print_json(&serde_json::json!({"events": events, "triggers": triggers}))?;
                return Ok(exit::OK);
            }
            print!("{}", events_table(&events, true));
            if !triggers.is_empty() {
                println!("\ntriggered runs:");
                print!("{}", triggers_table(&triggers));
            }
            Ok(exit::OK)
        }),
        MonitorCommand::Rules => {
            let project = ctx.project()?;
            let Some(m) = &project.pipeline.monitor else {
                return Err(usage("ferry.yaml has no `monitor:` block: there is nothing to write rules for"));
            };
            print!("{}", ferry_monitor::rules::render(&[m]));
            Ok(exit::OK)
        }
    }
}

/// A table of events: the latest of each check, or a history with times.
fn events_table(events: &[MonitorEvent], history: bool) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let mut r = vec![];
            if history {
                r.push(ferry_monitor::alert::iso(e.at_ms));
            }
            r.extend([
                e.model.clone(),
                e.version.map_or_else(|| "-".into(), |v| v.to_string()),
                e.check.clone(),
                e.status.as_str().to_owned(),
                e.summary.clone(),
            ]);
            if !history {
                r.push(ferry_monitor::alert::iso(e.at_ms));
            }
            r
        })
        .collect();
    let head: &[&str] = if history {
        &["AT", "MODEL", "VERSION", "CHECK", "STATUS", "WHY"]
    } else {
        &["MODEL", "VERSION", "CHECK", "STATUS", "WHY", "CHECKED"]
    };
    table("", head, &rows)
}

fn triggers_table(ts: &[TriggeredRun]) -> String {
    let rows: Vec<Vec<String>> = ts
        .iter()
        .map(|t| {
            vec![
                ferry_monitor::alert::iso(t.created_ms),
                t.pipeline.clone(),
                t.kind.clone(),
                t.state.as_str().to_owned(),
                t.run_id.clone().unwrap_or_else(|| "-".into()),
                match &t.note {
                    Some(n) => format!("{} ({n})", t.evidence),
                    None => t.evidence.clone(),
                },
            ]
        })
        .collect();
    table(
        "",
        &["AT", "PIPELINE", "TRIGGER", "STATE", "RUN", "EVIDENCE"],
        &rows,
    )
}

/// `ferry trigger`: a person asks for a run; `ferry agent` runs it.
pub fn trigger(ctx: &Ctx, reason: Option<String>, json: bool, place: Place) -> Result<u8> {
    let project = ctx.project()?;
    if project
        .pipeline
        .triggers
        .as_ref()
        .is_some_and(|t| !t.manual)
    {
        return Err(usage(
            "ferry.yaml says `on: {manual: false}`: this pipeline is not started by hand",
        ));
    }
    let rt = runtime()?;
    rt.block_on(async {
        let store = open_store(ctx, &place, "ferry trigger").await?;
        let now = SystemClock.now_ms();
        let who = ferry_metadata::cli_actor();
        let f = ferry_metadata::Firing {
            pipeline: project.pipeline.name.clone(),
            kind: "manual".into(),
            key: format!("manual:{}", ferry_core::RunId::generate().as_str()),
            evidence: match reason {
                Some(r) => format!("asked by {who}: {r}"),
                None => format!("asked by {who}"),
            },
            commit: None,
            now_ms: now,
            cooldown_ms: 0,
        };
        let fired = store.fire_trigger(&f).await?;
        if json {
            print_json(&fired)?;
        } else if let Fired::Queued { trigger } = &fired {
            println!(
                "queued run {} of `{}`: `ferry agent` runs it",
                trigger.trigger_id, trigger.pipeline
            );
        }
        Ok(exit::OK)
    })
}

/// The project's pipeline, run by `ferry-runner` as `ferry run` would.
struct LocalPipelines {
    root: PathBuf,
}

impl Pipelines for LocalPipelines {
    fn run(&self, t: &TriggeredRun) -> std::result::Result<Ran, String> {
        // A trigger that names a commit (a webhook's push or pull request)
        // runs the pipeline at it: in place when the work tree is clean at
        // it, else in a worktree under .ferry/worktrees, removed after.
        let at;
        let loaded;
        let project = match &t.commit {
            Some(commit) => {
                let name = format!("{}-{}", t.trigger_id, t.attempts);
                at = ferry_runner::at_commit(&self.root, commit, &name)?;
                &*at
            }
            None => {
                loaded = ferry_runner::Project::load(&self.root).map_err(|e| e.to_string())?;
                &loaded
            }
        };
        let opts = ferry_runner::RunOptions {
            trigger: t.kind.clone(),
            ..Default::default()
        };
        let cancel = ferry_executor::CancelToken::new();
        let report = ferry_runner::run(project, &opts, Arc::new(ferry_runner::Silent), &cancel)
            .map_err(|e| e.to_string())?;
        let succeeded = report.status == ferry_metadata::RunStatus::Succeeded;
        let failed_gates: Vec<String> = report
            .gates
            .iter()
            .filter(|g| !g.passed)
            .map(|g| g.name.clone())
            .collect();
        let message = match (&report.registered, report.status) {
            (Some(v), ferry_metadata::RunStatus::Succeeded) => {
                format!("registered {} version {}", v.model, v.version)
            }
            (None, ferry_metadata::RunStatus::Succeeded) => {
                "succeeded; registered no new version (the model is unchanged)".into()
            }
            (_, ferry_metadata::RunStatus::GateFailed) => {
                format!("gates failed: {}", failed_gates.join(", "))
            }
            (_, s) => format!("the run ended {}", s.as_str()),
        };
        let message = match &t.commit {
            Some(c) => format!("{message} (at commit {})", &c[..12.min(c.len())]),
            None => message,
        };
        Ok(Ran {
            run_id: report.run_id.clone(),
            succeeded,
            registered: report.registered.as_ref().map(|v| v.version),
            message,
        })
    }

    fn data_changed(
        &self,
        paths: &[String],
    ) -> std::result::Result<Option<(String, String)>, String> {
        let project = ferry_runner::Project::load(&self.root).map_err(|e| e.to_string())?;
        let status = ferry_runner::status(&project, &[]).map_err(|e| e.to_string())?;
        let under = |reason: &str| {
            paths.iter().any(|p| {
                reason
                    .strip_prefix("dep ")
                    .and_then(|r| r.strip_suffix(" changed"))
                    .is_some_and(|d| d == p || d.starts_with(&format!("{p}/")))
            })
        };
        let moved: Vec<String> = status
            .stages
            .iter()
            .flat_map(|s| {
                s.reasons
                    .iter()
                    .filter(|r| under(r))
                    .map(move |r| format!("{}: {r}", s.stage))
            })
            .collect();
        if moved.is_empty() {
            return Ok(None);
        }
        let mut h = ferry_core::StableHasher::new("ferry.trigger.data");
        for p in paths {
            let d = ferry_cache::stored_digest(&self.root.join(p)).map_err(|e| e.to_string())?;
            h.str(p);
            h.str(&d.to_string());
        }
        Ok(Some((
            h.finish().to_string(),
            format!("new data: {}", moved.join("; ")),
        )))
    }
}

/// Rollouts started on the store, as `ferry deploy` starts them.
struct StoreRollouts(Arc<dyn MetadataStore>);

#[async_trait::async_trait]
impl Rollouts for StoreRollouts {
    async fn start(
        &self,
        model: &str,
        version: i64,
        p: &ferry_spec::DeployPolicy,
        reason: &str,
    ) -> std::result::Result<String, String> {
        use ferry_gateway::rollout;
        let d = rollout::Request::default();
        let req = rollout::Request {
            candidate: Some(format!("{model}/{version}")),
            strategy: p.strategy.clone().unwrap_or(d.strategy),
            steps: p.steps.clone().unwrap_or(d.steps),
            interval: p.interval.clone().unwrap_or(d.interval),
            deadline: p.deadline.clone().unwrap_or(d.deadline),
            alias: p.alias.clone().unwrap_or(d.alias),
            max_error_rate: p.max_error_rate,
            max_p99_ms: p.max_p99_ms,
            max_prediction_shift: p.max_prediction_shift,
            min_accuracy: p.min_accuracy,
            min_requests: p.min_requests.unwrap_or(d.min_requests),
            reason: Some(reason.to_owned()),
            ..d
        };
        let plan = rollout::plan(&req).map_err(|e| e.to_string())?;
        let by = rollout::By::local("ferry agent");
        let started = rollout::start(self.0.as_ref(), &plan, &by)
            .await
            .map_err(|e| e.to_string())?;
        Ok(started.deployment.id)
    }
}

/// `--at`: milliseconds, or an RFC 3339 UTC time.
fn parse_at(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    ferry_data::time::parse_micros(s)
        .map(|us| us.div_euclid(1000))
        .ok_or_else(|| {
            usage(format!(
                "--at: `{s}` is neither milliseconds nor a UTC time like 2026-12-03T14:00:00Z"
            ))
        })
}

/// A clock fixed at one time (`ferry agent --once --at`).
struct Fixed(i64);
impl Clock for Fixed {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

pub fn agent(ctx: &Ctx, a: AgentArgs) -> Result<u8> {
    let project = ctx.project()?;
    if a.at.is_some() && !a.once {
        return Err(usage("--at needs --once (one tick, as if at that time)"));
    }
    let every = ferry_spec::parse_duration(&a.every)
        .filter(|d| d.as_millis() >= 100)
        .ok_or_else(|| {
            usage(format!(
                "--every: `{}` is not a duration of 100ms or more",
                a.every
            ))
        })?;
    let clock: Arc<dyn Clock> = match &a.at {
        Some(at) => Arc::new(Fixed(parse_at(at)?)),
        None => Arc::new(SystemClock),
    };
    let log_dir = a
        .predictions
        .clone()
        .unwrap_or_else(|| project.layout().predictions());
    lower_priority(a.nice);
    let rt = runtime()?;
    rt.block_on(async {
        let store = open_store(ctx, &a.place, "ferry agent").await?;
        let name = a.name.clone().unwrap_or_else(|| {
            format!("{}-{}", ferry_metadata::cli_actor(), std::process::id())
        });
        let agent = Agent {
            store: store.clone(),
            clock,
            notifier: Arc::new(ferry_monitor::alert::Webhook),
            env: Arc::new(|k: &str| std::env::var(k).ok()),
            name,
            lease_ms: 60_000,
        };
        let p = agent::Project {
            pipeline: project.pipeline.clone(),
            root: project.root.clone(),
            log_dir,
            artifacts: project.layout().artifacts(),
        };
        let pipelines: Arc<dyn Pipelines> = Arc::new(LocalPipelines { root: project.root.clone() });
        let rollouts = StoreRollouts(store);
        let mut memory = Memory::default();
        if project.pipeline.monitor.is_none() && project.pipeline.triggers.is_none() {
            eprintln!("note: ferry.yaml has neither `monitor:` nor `on:`: the agent only runs what `ferry trigger` asks for");
        }
        loop {
            let tick = agent.tick(&p, &mut memory, pipelines.clone(), &rollouts).await;
            match tick {
                Ok(t) if a.once => {
                    if a.json {
                        print_json(&t)?;
                    } else {
                        say(&t);
                    }
                    return Ok(exit::OK);
                }
                Ok(t) => say(&t),
                Err(e) if a.once => return Err(e.into()),
                Err(e) => eprintln!("error: {e}"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = tokio::signal::ctrl_c() => return Ok(exit::OK),
            }
        }
    })
}

/// Makes this process (and what it starts) at least `nice`, so the checks
/// and runs yield the CPU to a gateway on the same machine.
fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    // SAFETY: getpriority and setpriority only read their arguments; `0`
    // is this process (its calling thread: the runtime's threads and the
    // runs' processes, started after, inherit it).
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if now >= libc::c_int::from(nice) {
        return; // never raise it
    }
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, libc::c_int::from(nice)) };
    if r != 0 {
        eprintln!(
            "note: cannot lower the agent's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// One line per thing a tick did, on stderr.
fn say(t: &agent::Tick) {
    for e in t.events.iter().filter(|e| e.status == CheckStatus::Failing) {
        eprintln!("monitor: {} {} failing: {}", e.model, e.check, e.summary);
    }
    for s in &t.alerts {
        match &s.error {
            None => eprintln!("alert: {} {} {}", s.model, s.check, s.notice.as_str()),
            Some(e) => eprintln!("alert: {} {} {}: {e}", s.model, s.check, s.notice.as_str()),
        }
    }
    for f in &t.fired {
        match f {
            Fired::Queued { trigger } => {
                eprintln!("trigger: {} queued ({})", trigger.kind, trigger.evidence)
            }
            Fired::Ignored { trigger, after } => eprintln!(
                "trigger: {} ignored, within the cooldown of {after}",
                trigger.kind
            ),
            Fired::Duplicate => {}
        }
    }
    if let Some((t, ran)) = &t.ran {
        eprintln!(
            "run: {} run of `{}` {}: {}",
            t.kind,
            t.pipeline,
            if ran.succeeded { "succeeded" } else { "failed" },
            ran.message
        );
    }
    if let Some(d) = &t.deployed {
        eprintln!("deploy: rollout {d} started");
    }
}
