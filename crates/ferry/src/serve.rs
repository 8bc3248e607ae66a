//! `ferry serve` (the gateway) and `ferry deploy` (canary and shadow
//! rollouts, recorded in the store the gateway reads).

use crate::cli::{DeployArgs, DeployCommand, DeployStart, ServeArgs};
use crate::ctx::Ctx;
use crate::exit::{self, usage};
use anyhow::{Context, Result};
use ferry_gateway::canary::{self, Phase, Plan, Strategy};
use ferry_gateway::loader::Artifacts as ArtifactFiles;
use ferry_gateway::rollout::{self, DeployError, Ended, Started, Status};
use ferry_metadata::{Deployment, MetadataStore};
use std::sync::Arc;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// Why the gateway and rollouts cannot work through `--server`.
const SERVE_NEEDS_STORE: &str =
    "the gateway reads versions, aliases and deployments from the store itself";
const DEPLOY_NEEDS_STORE: &str =
    "rollouts are recorded in the store the gateways read, and are not part of the MLflow API";

async fn open(url: &str) -> Result<Arc<dyn MetadataStore>> {
    Ok(Arc::new(ferry_metadata::SqlStore::open(url).await?))
}

pub fn serve(ctx: &Ctx, a: ServeArgs) -> Result<u8> {
    let specs = a
        .models
        .iter()
        .map(|m| m.parse::<ferry_gateway::ServeSpec>().map_err(usage))
        .collect::<Result<Vec<_>>>()?;
    let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(usage("each model may be served once"));
    }
    let tick = canary::parse_duration(&a.tick).map_err(|e| usage(format!("--tick: {e}")))?;
    let window =
        canary::parse_duration(&a.log_window).map_err(|e| usage(format!("--log-window: {e}")))?;
    if !(0.0..=1.0).contains(&a.log_sample) {
        return Err(usage("--log-sample must be between 0 and 1"));
    }
    let runtimes = ferry_gateway::runtime::Runtimes::parse(&a.runtimes).map_err(|errs| {
        usage(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let opened = ctx.store_url(&a.place, "ferry serve", SERVE_NEEDS_STORE, false);
    // The same users, grants and audit log as the team's `ferry server`;
    // an address refused is said before a missing store is.
    let has_users = match &opened {
        Ok((url, _)) => crate::admin::first_admin(url)?,
        Err(_) => false,
    };
    let ip = listen_ip(
        &a.host,
        a.insecure_no_auth,
        has_users,
        "predict with every model served and send feedback",
    )?;
    // Beyond loopback with users, credentials stay required even if every
    // user is later deleted.
    let require_auth = has_users && !ip.is_loopback();
    let (url, layout) = opened?;
    let vcpu_hour = ferry_cost::Prices::shipped()
        .get(&a.machine)
        .map_err(|e| usage(format!("--machine: {e}")))?
        .vcpu_hour;
    let oidc = oidc_provider(&a.oidc)?;
    let place = crate::artifacts::place(&a.artifacts, layout.artifacts())?;
    let cache = a
        .artifact_cache
        .clone()
        .unwrap_or_else(|| layout.artifact_cache());
    crate::ui::init_logging(a.log_json);
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = a.threads {
        if n == 0 {
            return Err(usage("--threads must be at least 1"));
        }
        b.worker_threads(n);
    }
    let rt = b.enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async move {
        let artifacts = match place {
            crate::artifacts::Place::Folder(dir) => ArtifactFiles::Folder(dir),
            crate::artifacts::Place::Bucket(url) => ArtifactFiles::Bucket {
                store: crate::artifacts::bucket(&url, &a.artifacts).await?,
                cache,
            },
        };
        let store = open(&url).await?;
        let predlog = if a.log_sample > 0.0 {
            let mut cfg = ferry_gateway::predlog::PredLogConfig::new(
                a.log_dir.unwrap_or_else(|| layout.predictions()),
            );
            cfg.sample = a.log_sample;
            cfg.window_s = (window / 1000).max(1);
            cfg.max_total_bytes = a.log_max_mib << 20;
            cfg.max_per_s = a.log_max_per_s;
            Some(
                ferry_gateway::predlog::PredLog::start(cfg)
                    .context("cannot start the prediction log")?,
            )
        } else {
            None
        };
        let loader = Arc::new(ferry_gateway::loader::StoreLoader {
            store: store.clone(),
            artifacts,
            allow_fakes: a.allow_fakes,
            runtimes,
        });
        let access = ferry_access::Access::with_oidc(store.clone(), require_auth, oidc).await?;
        let gw = Arc::new(ferry_gateway::Gateway::new(specs, store, loader, predlog));
        let cfg = ferry_gateway::ServeConfig {
            addr: std::net::SocketAddr::new(ip, a.port),
            max_body: a.max_body_mib << 20,
            body_budget: a.max_inflight_mib.max(1).saturating_mul(1 << 20),
            tick: std::time::Duration::from_millis(tick.max(50)),
            limits: ferry_http::ConnLimits {
                max_connections: a.max_connections.max(1),
                ..Default::default()
            },
            access: Some(access),
            vcpu_hour,
        };
        let shown = gw.clone();
        ferry_gateway::serve(cfg, gw, move |addr| {
            let t = shown.table();
            for m in &t.models {
                eprintln!(
                    "serving {} version {} ({}) at http://{addr}/v2/models/{}/infer",
                    m.name,
                    m.stable.version,
                    m.stable.predictor.platform(),
                    m.name
                );
            }
            eprintln!(
                "  MLflow scoring: http://{addr}/invocations   metrics: http://{addr}/metrics"
            );
        })
        .await
        .map_err(usage)?;
        Ok(exit::OK)
    })
}

pub fn deploy(ctx: &Ctx, a: DeployArgs) -> Result<u8> {
    let place = a.place;
    // One runtime for the whole command: a store's connections belong to
    // the runtime that opened them (PostgreSQL's sockets to its reactor).
    let rt = runtime()?;
    let at = || rt.block_on(Rollouts::open(ctx, &place));
    match a.command {
        Some(DeployCommand::Status { model, watch, json }) => status(&rt, at, model, watch, json),
        Some(DeployCommand::Promote { model, reason }) => {
            end(&rt, at, &model, Phase::Promoted, reason)
        }
        Some(DeployCommand::Abort { model, reason }) => {
            end(&rt, at, &model, Phase::Aborted, reason)
        }
        None => start(&rt, a.start, at),
    }
}

/// Where `ferry deploy` starts, follows and ends rollouts: the store the
/// gateways read, or a team server's deployments API (`--server`, with
/// the caller's token: a role, not the database). Both follow
/// `ferry_rollout`'s rules; the server also decides who may.
enum Rollouts {
    Store(Arc<dyn MetadataStore>),
    Server(ferry_client::Client),
}

/// A server's answer read as `T`.
fn read_answer<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).context("the server's answer is not a deployment")
}

impl Rollouts {
    async fn open(ctx: &Ctx, place: &crate::cli::Place) -> Result<Self> {
        if let crate::place::Target::Server(url) = place.target()? {
            return Ok(Self::Server(
                ferry_client::Client::new(url).map_err(crate::exit::client_err)?,
            ));
        }
        let (url, _) = ctx.store_url(place, "ferry deploy", DEPLOY_NEEDS_STORE, false)?;
        Ok(Self::Store(open(&url).await?))
    }

    async fn start(&self, r: &rollout::Rollout, asked: &rollout::Request) -> Result<Started> {
        match self {
            Self::Store(s) => rollout::start(s.as_ref(), r, &cli_by())
                .await
                .map_err(refused),
            Self::Server(c) => {
                let v = c
                    .start_deployment(&r.model, &serde_json::to_value(asked)?)
                    .map_err(crate::exit::client_err)?;
                read_answer(v)
            }
        }
    }

    async fn end(&self, model: &str, phase: Phase, reason: Option<String>) -> Result<Ended> {
        match self {
            Self::Store(s) => rollout::end(s.as_ref(), model, phase, reason, &cli_by())
                .await
                .map_err(refused),
            Self::Server(c) => {
                let action = if phase == Phase::Promoted {
                    "promote"
                } else {
                    "abort"
                };
                let v = c
                    .end_deployment(model, action, reason.as_deref())
                    .map_err(crate::exit::client_err)?;
                read_answer(v)
            }
        }
    }

    async fn status(&self, model: &str) -> Result<Status> {
        match self {
            Self::Store(s) => rollout::status(s.as_ref(), model).await.map_err(refused),
            Self::Server(c) => read_answer(c.deployment(model).map_err(crate::exit::client_err)?),
        }
    }

    async fn active(&self) -> Result<Vec<Deployment>> {
        match self {
            Self::Store(s) => Ok(s.list_deployments(None, true).await?),
            Self::Server(c) => {
                let v = c.active_deployments().map_err(crate::exit::client_err)?;
                read_answer(v["deployments"].clone())
            }
        }
    }
}

/// `ferry deploy` on a store, for the audit log.
fn cli_by() -> rollout::By {
    rollout::By::local(ferry_metadata::cli_actor())
}

/// A refused rollout is a usage error; a store that cannot be read is not.
fn refused(e: DeployError) -> anyhow::Error {
    match e {
        DeployError::Store(e) => crate::exit::store_err(e),
        DeployError::Encode(e) => e.into(),
        e => usage(e.to_string()),
    }
}

/// The rollout `ferry deploy MODEL/VERSION` asks for, as given.
pub(crate) fn request(a: DeployStart) -> rollout::Request {
    rollout::Request {
        candidate: a.candidate,
        old_version: a.old_version,
        old_candidate: a.old_candidate,
        strategy: a.strategy,
        steps: a.steps,
        interval: a.interval,
        deadline: a.deadline,
        alias: a.alias,
        max_error_rate: a.max_error_rate,
        max_p99_ms: a.max_p99_ms,
        max_prediction_shift: a.max_prediction_shift,
        min_accuracy: a.min_accuracy,
        min_requests: a.min_requests,
        mirror: a.mirror,
        min_agreement: a.min_agreement,
        reason: a.reason,
        allow_rejected: a.allow_rejected,
    }
}

/// Starts a rollout ([`rollout::plan`] checks the flags before anything is
/// opened; [`rollout::start`] decides whether it may start, on the store or
/// on the team server).
fn start(
    rt: &tokio::runtime::Runtime,
    a: DeployStart,
    at: impl FnOnce() -> Result<Rollouts>,
) -> Result<u8> {
    let (wait, json) = (a.wait, a.json);
    let asked = request(a);
    let rollout = rollout::plan(&asked).map_err(refused)?;
    let plan = &rollout.plan;
    let strategy = plan.strategy;
    let at = at()?;
    let Started {
        deployment: d,
        gateways,
    } = rt.block_on(at.start(&rollout, &asked))?;
    // As with a rollout object and no controller running: the rollout is
    // recorded and waits for a gateway; the person is told it will wait.
    if gateways.is_empty() {
        eprintln!(
            "warning: no gateway serves `{m}@{al}` (none seen in the last few seconds): the rollout waits until one does\nhint: start one with `ferry serve {m}@{al}`; `ferry deploy abort {m}` before one picks it up does not mark version {v} rejected",
            m = d.model,
            al = plan.alias,
            v = d.candidate
        );
    }
    if json && !wait {
        crate::ui::print_json(&d)?;
        return Ok(exit::OK);
    }
    let by = match gateways.as_slice() {
        [] => "no gateway picks it up yet".to_owned(),
        [g] => format!("the gateway at {} picks it up within a tick", g.addr),
        gs => format!("{} gateways pick it up within a tick", gs.len()),
    };
    eprintln!(
        "{} of {} version {} over version {} recorded ({}); {by}",
        strategy.as_str(),
        d.model,
        d.candidate,
        d.stable.unwrap_or_default(),
        describe_plan(plan),
    );
    if wait {
        return rt.block_on(follow(&at, &d.model, &d.id, json));
    }
    eprintln!("  follow it: ferry deploy status {} --watch", d.model);
    Ok(exit::OK)
}

fn describe_plan(p: &Plan) -> String {
    let mut parts = Vec::new();
    match p.strategy {
        Strategy::Canary => parts.push(format!(
            "steps {}",
            p.steps
                .iter()
                .map(|s| format!("{s}%"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Strategy::Shadow => parts.push(format!("mirroring {}%", p.mirror_percent)),
    }
    parts.push(format!("every {}", canary::human_ms(p.interval_ms)));
    let c = &p.criteria;
    if let Some(x) = c.max_error_rate {
        parts.push(format!("error rate <= {x}"));
    }
    if let Some(x) = c.max_p99_ms {
        parts.push(format!("p99 <= {x} ms"));
    }
    if let Some(x) = c.max_prediction_shift {
        parts.push(format!("prediction shift <= {x}"));
    }
    if let Some(x) = c.min_accuracy {
        parts.push(format!("accuracy >= {x}"));
    }
    if let Some(x) = c.min_agreement {
        parts.push(format!("agreement >= {x}"));
    }
    parts.push(format!("at least {} requests per step", c.min_requests));
    parts.join(", ")
}

fn end(
    rt: &tokio::runtime::Runtime,
    at: impl FnOnce() -> Result<Rollouts>,
    model: &str,
    phase: Phase,
    reason: Option<String>,
) -> Result<u8> {
    let at = at()?;
    let ended = rt.block_on(at.end(model, phase, reason))?;
    let Ended {
        deployment: d,
        unjudged,
        reason,
    } = ended;
    eprintln!(
        "{model} version {}: {} ({reason})",
        d.candidate,
        match (phase == Phase::Promoted, unjudged) {
            (true, _) => "promoted",
            (false, false) => "aborted and marked rejected; all traffic back to the stable version",
            (false, true) =>
                "aborted before any gateway picked it up; the version is not marked rejected",
        }
    );
    Ok(exit::OK)
}

fn status(
    rt: &tokio::runtime::Runtime,
    at: impl FnOnce() -> Result<Rollouts>,
    model: Option<String>,
    watch: bool,
    json: bool,
) -> Result<u8> {
    let at = at()?;
    rt.block_on(async {
        let Some(model) = model else {
            let all = at.active().await?;
            if json {
                crate::ui::print_json(&all)?;
            } else if all.is_empty() {
                println!("no active deployments");
            } else {
                for d in &all {
                    println!("{}", headline(d));
                }
            }
            return Ok(exit::OK);
        };
        let Status {
            deployment: d,
            events,
            gateways,
        } = at.status(&model).await?;
        if watch {
            return follow(&at, &model, &d.id, json).await;
        }
        let alias = rollout::alias_of(&d);
        if json {
            crate::ui::print_json(
                &serde_json::json!({"deployment": d, "events": events, "gateways": gateways}),
            )?;
        } else {
            print_status(&d, &events);
            print_gateways(&model, &alias, &gateways);
        }
        Ok(exit::OK)
    })
}

fn headline(d: &Deployment) -> String {
    let plan: Option<Plan> = serde_json::from_value(d.spec.clone()).ok();
    let steps = plan.as_ref().map_or(0, |p| p.steps.len());
    let state = match (d.active, d.strategy.as_str()) {
        (true, "canary") => format!("step {}/{} at {}%", d.step + 1, steps, d.weight),
        (true, _) => format!(
            "mirroring {}%",
            plan.as_ref().map_or(0, |p| p.mirror_percent)
        ),
        (false, _) => d.phase.replace('_', " "),
    };
    format!(
        "{}: {} of version {} over version {}: {}",
        d.model,
        d.strategy,
        d.candidate,
        d.stable.map_or("-".into(), |s| s.to_string()),
        state
    )
}

fn print_status(d: &Deployment, events: &[ferry_metadata::DeploymentEvent]) {
    println!("{}", headline(d));
    if let Ok(p) = serde_json::from_value::<Plan>(d.spec.clone()) {
        println!("  plan: {}", describe_plan(&p));
    }
    if let Some(r) = &d.reason {
        println!("  reason: {r}");
    }
    println!("  events:");
    print_event_header();
    for e in events {
        print_event(e);
    }
}

fn print_gateways(model: &str, alias: &str, gateways: &[ferry_metadata::GatewayBeat]) {
    if gateways.is_empty() {
        println!("  gateways: none serves `{model}@{alias}`");
        return;
    }
    println!("  gateways:");
    let now = ferry_core::now_ms();
    let rows: Vec<Vec<String>> = gateways
        .iter()
        .map(|g| {
            let version = g
                .models
                .iter()
                .find(|m| m.model == model && m.alias.as_deref() == Some(alias))
                .and_then(|m| m.version)
                .map_or_else(|| "loading".to_owned(), |v| v.to_string());
            vec![
                g.addr.clone(),
                g.host.clone(),
                g.pid.to_string(),
                format!("{model}@{alias}"),
                version,
                format!("{}s ago", (now - g.last_seen_ms).max(0) / 1000),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::ui::table(
            "    ",
            &["ADDRESS", "HOST", "PID", "SERVES", "VERSION", "SEEN"],
            &rows
        )
    );
}

/// The header of the events table [`print_event`] prints a line of.
fn print_event_header() {
    println!(
        "    {:<19}  {:<12} {:<6} {:>6}  REASON",
        "TIME (UTC)", "EVENT", "STEP", "WEIGHT"
    );
}

fn print_event(e: &ferry_metadata::DeploymentEvent) {
    let figures = e
        .detail
        .get("candidate")
        .map(|c| {
            let f = |k: &str| c.get(k).and_then(serde_json::Value::as_f64);
            let mut s = format!("{} requests", f("requests").unwrap_or(0.0));
            if let (Some(r), Some(er)) = (f("requests"), f("errors"))
                && r > 0.0
            {
                s.push_str(&format!(", error rate {:.3}", er / r));
            }
            if let Some(p) = f("p99_ms") {
                s.push_str(&format!(", p99 {p:.1} ms"));
            }
            format!(" [{s}]")
        })
        .unwrap_or_default();
    let line = format!(
        "    {:<19}  {:<12} {:<6} {:>5}%  {}{}",
        crate::ui::time(e.at_ms),
        e.kind,
        e.step + 1,
        e.weight,
        e.reason.as_deref().unwrap_or(""),
        figures
    );
    println!("{}", line.trim_end());
}

/// Prints events as they come until the deployment `id` of `model` ends.
async fn follow(at: &Rollouts, model: &str, id: &str, json: bool) -> Result<u8> {
    let mut seen = 0usize;
    if !json {
        print_event_header();
    }
    loop {
        let Status {
            deployment: d,
            events,
            ..
        } = at.status(model).await?;
        if d.id != id {
            return Err(usage(format!(
                "the deployment of `{model}` being followed was replaced by {}",
                d.id
            )));
        }
        for e in events.iter().skip(seen) {
            if json {
                println!("{}", serde_json::to_string(e)?);
            } else {
                print_event(e);
            }
        }
        seen = events.len();
        if !d.active {
            if !json {
                println!("{}", headline(&d));
            }
            return Ok(exit::of_rollout(d.phase == Phase::Promoted.as_str()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The address a server (`ferry server`, `ferry serve`) listens on. Neither
/// checks who is asking yet, so an address other machines can reach is
/// refused unless the operator says `--insecure-no-auth`; loopback (the
/// default) is always allowed.
/// The identity provider `--oidc-*` names, its keys read from a file or
/// fetched from a URL (read again every hour, and for a key not known yet);
/// `None` without `--oidc-issuer`.
pub(crate) fn oidc_provider(a: &crate::cli::OidcArgs) -> Result<Option<ferry_access::Sso>> {
    let (Some(issuer), Some(audience), Some(jwks)) =
        (&a.oidc_issuer, &a.oidc_audience, &a.oidc_jwks)
    else {
        return Ok(None);
    };
    let config = ferry_auth::oidc::OidcConfig {
        issuer: issuer.clone(),
        audience: audience.clone(),
        user_claim: a.oidc_user_claim.clone(),
        groups_claim: Some(a.oidc_groups_claim.clone()).filter(|g| !g.is_empty()),
    };
    // Keys over plain HTTP could be anyone's: only on this machine.
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    if jwks.starts_with("http://") && !local.iter().any(|l| jwks.starts_with(l)) {
        return Err(usage(format!(
            "--oidc-jwks: `{jwks}`: the provider's keys are read over https:// (plain http only from this machine)"
        )));
    }
    let url = jwks.starts_with("https://") || jwks.starts_with("http://");
    let source = jwks.clone();
    let read = move || -> std::result::Result<ferry_auth::oidc::Provider, String> {
        let text = if url {
            ferry_client::fetch_document(&source)
                .map_err(|e| format!("cannot read {source}: {e}"))?
        } else {
            std::fs::read_to_string(&source).map_err(|e| format!("cannot read `{source}`: {e}"))?
        };
        ferry_auth::oidc::Provider::new(config.clone(), &text)
            .map_err(|e| format!("`{source}`: {e}"))
    };
    let provider = read().map_err(|e| usage(format!("--oidc-jwks: {e}")))?;
    let reload: Option<ferry_access::Reload> = url.then(|| std::sync::Arc::new(read) as _);
    Ok(Some(ferry_access::Sso { provider, reload }))
}

pub(crate) fn listen_ip(
    host: &str,
    insecure_no_auth: bool,
    authenticated: bool,
    exposed: &str,
) -> Result<std::net::IpAddr> {
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| usage(format!("--host `{host}` is not an IP address")))?;
    if ip.is_loopback() || authenticated {
        return Ok(ip);
    }
    if !insecure_no_auth {
        return Err(usage(format!(
            "--host `{host}` would let anyone who can reach this machine {exposed}, and nothing would check who is asking\nhint: keep the default (127.0.0.1) behind a proxy that authenticates, or pass --insecure-no-auth to accept it"
        )));
    }
    eprintln!(
        "warning: listening on {host}, beyond loopback, without authentication (--insecure-no-auth)"
    );
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::listen_ip;

    #[test]
    fn beyond_loopback_needs_users_or_the_insecure_flag() {
        let ip = |host, insecure, users| listen_ip(host, insecure, users, "do things").is_ok();
        assert!(ip("127.0.0.1", false, false));
        assert!(ip("::1", false, false));
        assert!(!ip("192.0.2.1", false, false));
        assert!(
            ip("192.0.2.1", false, true),
            "a store with users asks who is there"
        );
        assert!(ip("192.0.2.1", true, false));
        assert!(!ip("localhost", true, true), "an IP address, not a name");
    }
}
