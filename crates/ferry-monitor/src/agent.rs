//! The agent: the long-running worker that closes the loop for one
//! project. Each [`Agent::tick`] reads one clock and does, in order:
//!
//! 1. **monitor**: when the monitor is due (its schedule after its last
//!    events), run its checks ([`crate::checks`]) on the served version,
//!    store the events, and tell each change of state to the webhook once
//!    (the store decides, so several agents tell it once);
//! 2. **fire**: each trigger of `on:` that holds (a schedule's minute came,
//!    the watched model drifts or decays, the data changed) is offered to
//!    the store, which queues it, ignores it within the cooldown (and
//!    records that), or knows it already;
//! 3. **work**: claim one queued run (never one another agent holds), run
//!    the pipeline while renewing the claim, record how it ended;
//! 4. **deploy**: when that run registered a candidate that passed its
//!    gates and the pipeline has a `deploy:` policy, start its rollout;
//!    when it did not, tell it like an alert.
//!
//! What the agent does to the world goes through traits ([`Pipelines`],
//! [`Rollouts`], [`Notifier`]), so the whole loop runs in a test with
//! fakes and a driven clock.

use crate::alert::{self, Notifier};
use crate::checks;
use ferry_core::clock::Clock;
use ferry_metadata::{
    CheckStatus, Claim, Fired, Firing, MetadataStore, MonitorEvent, Notice, TriggerState,
    TriggeredRun,
};
use ferry_spec::{DeployPolicy, Pipeline};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] ferry_metadata::Error),
    #[error("{0}")]
    Failed(String),
}

pub type Result<T> = std::result::Result<T, AgentError>;

/// How a pipeline run the agent started ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ran {
    pub run_id: Option<String>,
    pub succeeded: bool,
    /// The version it registered (a candidate that passed its gates).
    pub registered: Option<i64>,
    /// One line: why it failed, or what it did.
    pub message: String,
}

/// Runs the project's pipeline (blocking), and says whether its data
/// changed since its last run.
pub trait Pipelines: Send + Sync {
    fn run(&self, trigger: &TriggeredRun) -> std::result::Result<Ran, String>;
    /// When stages reading under `paths` are out of date because their
    /// data changed: a key naming that data (its digest) and the evidence.
    fn data_changed(
        &self,
        paths: &[String],
    ) -> std::result::Result<Option<(String, String)>, String>;
}

/// Starts a rollout of a candidate.
#[async_trait::async_trait]
pub trait Rollouts: Send + Sync {
    async fn start(
        &self,
        model: &str,
        version: i64,
        policy: &DeployPolicy,
        reason: &str,
    ) -> std::result::Result<String, String>;
}

/// The kind of a run a pull (merge) request's webhook triggered.
pub const PULL_REQUEST: &str = "pull_request";

/// Reads an environment variable.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What the agent is, apart from the project it works for.
pub struct Agent {
    pub store: Arc<dyn MetadataStore>,
    pub clock: Arc<dyn Clock>,
    pub notifier: Arc<dyn Notifier>,
    /// Reads the environment (the webhook's URL and secret), at send time.
    pub env: Env,
    /// This agent's name in the claims it takes.
    pub name: String,
    /// How long a claim holds unless renewed.
    pub lease_ms: i64,
}

/// The project an agent works for.
pub struct Project {
    pub pipeline: Pipeline,
    pub root: PathBuf,
    /// The prediction log's folder the gateway writes.
    pub log_dir: PathBuf,
    /// The artifact folder registered versions' files are in
    /// (`mlflow-artifacts:/` locations).
    pub artifacts: PathBuf,
}

/// An alert the agent sent (or could not).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sent {
    pub model: String,
    pub check: String,
    pub notice: Notice,
    /// `None` when posted; why not otherwise.
    pub error: Option<String>,
}

/// What one tick did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Tick {
    pub events: Vec<MonitorEvent>,
    pub alerts: Vec<Sent>,
    pub fired: Vec<Fired>,
    pub ran: Option<(TriggeredRun, Ran)>,
    pub deployed: Option<String>,
}

/// State an agent keeps between ticks: where its schedule was last looked at.
#[derive(Debug, Default)]
pub struct Memory {
    schedule_seen_ms: Option<i64>,
}

impl Agent {
    pub async fn tick(
        &self,
        p: &Project,
        memory: &mut Memory,
        pipelines: Arc<dyn Pipelines>,
        rollouts: &dyn Rollouts,
    ) -> Result<Tick> {
        let mut t = Tick::default();
        if let Some(m) = &p.pipeline.monitor
            && self.monitor_due(m).await?
        {
            t.events = self.monitor(p, m).await?;
            t.alerts = self.tell(m, &t.events).await?;
        }
        t.alerts.extend(self.watch_rollout(p).await?);
        t.fired = self.fire(p, memory, pipelines.as_ref()).await?;
        if let Some((trigger, ran)) = self.work(p, pipelines).await? {
            t.deployed = self
                .deploy(p, &trigger, &ran, rollouts, &mut t.alerts)
                .await?;
            t.ran = Some((trigger, ran));
        }
        Ok(t)
    }

    async fn monitor_due(&self, m: &ferry_spec::Monitor) -> Result<bool> {
        let last = self.store.latest_monitor_events(Some(&m.model)).await?;
        let at = last.iter().map(|e| e.at_ms).max();
        Ok(at.is_none_or(|at| self.clock.now_ms() - at >= m.schedule_ms as i64))
    }

    /// Runs the monitor's checks now and stores their events.
    pub async fn monitor(&self, p: &Project, m: &ferry_spec::Monitor) -> Result<Vec<MonitorEvent>> {
        let now = self.clock.now_ms();
        let served = self.store.resolve_alias(&m.model, &m.alias).await?;
        let reference = match (&served, &m.reference) {
            (Some(v), _) if v.lineage.get("reference").is_some() => kept_reference(&p.artifacts, v),
            (_, Some(r)) => Ok(p.root.join(r)),
            (_, None) => Err("no reference to compare with: declare `monitor.reference` or `register.signature.from`".to_owned()),
        };
        let version = served.as_ref().map(|v| v.version);
        let live: Vec<ferry_metadata::LiveFigures> = self
            .store
            .list_gateways()
            .await?
            .into_iter()
            .filter(|g| g.live(now))
            .flat_map(|g| g.models)
            .filter(|s| s.model == m.model)
            .flat_map(|s| s.live)
            .filter(|f| Some(f.version) == version)
            .collect();
        let inputs = checks::Inputs {
            monitor: m,
            version: served.as_ref().map(|v| (v.version, v.created_ms)),
            reference: reference.as_deref().map_err(Clone::clone),
            log_dir: &p.log_dir,
            live: &live,
            now_ms: now,
        };
        let events = checks::run(&inputs);
        self.store.record_monitor_events(&events).await?;
        Ok(events)
    }

    /// Tells each check's change of state, once across agents.
    async fn tell(&self, m: &ferry_spec::Monitor, events: &[MonitorEvent]) -> Result<Vec<Sent>> {
        let mut sent = Vec::new();
        let cooldown = m.alerts.as_ref().map_or(i64::MAX, |a| a.cooldown_ms as i64);
        for e in events {
            let Some((notice, state)) = self
                .store
                .alert_transition(&e.model, &e.check, e.status, e.at_ms, cooldown)
                .await?
            else {
                continue;
            };
            if let Some(a) = &m.alerts {
                let body = alert::body(notice, e, &state);
                sent.push(self.post(a, &e.model, &e.check, notice, &body));
            }
        }
        Ok(sent)
    }

    fn post(
        &self,
        a: &ferry_spec::Alerts,
        model: &str,
        check: &str,
        notice: Notice,
        body: &serde_json::Value,
    ) -> Sent {
        let error = match (self.env)(&a.webhook_env) {
            None => Some(format!(
                "${} is not set: the alert was not sent",
                a.webhook_env
            )),
            Some(url) => {
                let secret = a.secret_env.as_ref().and_then(|s| (self.env)(s));
                alert::send(
                    self.notifier.as_ref(),
                    &url,
                    secret.as_deref().map(str::as_bytes),
                    body,
                    self.clock.now_ms(),
                )
                .err()
                .map(|e| format!("the webhook in ${} refused the alert: {e}", a.webhook_env))
            }
        };
        if let Some(e) = &error {
            tracing::warn!(model, check, "{e}");
        }
        Sent {
            model: model.to_owned(),
            check: check.to_owned(),
            notice,
            error,
        }
    }

    /// Tells a rollout of the registered model rolled back (once, however
    /// many agents see it), and a later one promoted as its recovery.
    async fn watch_rollout(&self, p: &Project) -> Result<Vec<Sent>> {
        let (Some(r), Some(m)) = (&p.pipeline.register, &p.pipeline.monitor) else {
            return Ok(vec![]);
        };
        let model = r.model.to_string();
        let Some(last) = self
            .store
            .list_deployments(Some(&model), false)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(vec![]);
        };
        let status = match last.phase.as_str() {
            "rolled_back" => CheckStatus::Failing,
            "promoted" => CheckStatus::Ok,
            _ => return Ok(vec![]),
        };
        let cooldown = i64::MAX;
        let Some((notice, _)) = self
            .store
            .alert_transition(&model, "rollout", status, self.clock.now_ms(), cooldown)
            .await?
        else {
            return Ok(vec![]);
        };
        let Some(a) = &m.alerts else {
            return Ok(vec![]);
        };
        let text = match notice {
            Notice::Recovered => format!(
                ":white_check_mark: {model}: version {} was promoted by its rollout",
                last.candidate
            ),
            _ => format!(
                ":leftwards_arrow_with_hook: {model}: the rollout of version {} was rolled back: {}",
                last.candidate,
                last.reason.as_deref().unwrap_or("no reason recorded")
            ),
        };
        let body = serde_json::json!({"text": text, "ferry": {"notice": notice.as_str(), "deployment": last}});
        Ok(vec![self.post(a, &model, "rollout", notice, &body)])
    }

    /// Offers each trigger that holds to the store.
    async fn fire(
        &self,
        p: &Project,
        memory: &mut Memory,
        pipelines: &dyn Pipelines,
    ) -> Result<Vec<Fired>> {
        let Some(on) = &p.pipeline.triggers else {
            return Ok(vec![]);
        };
        let now = self.clock.now_ms();
        let mut firings: Vec<(String, String, String)> = Vec::new();
        if let Some(cron) = &on.schedule {
            let seen = memory.schedule_seen_ms.replace(now).unwrap_or(now);
            if let Some(slot) = cron.next_after(seen).filter(|s| *s <= now) {
                firings.push((
                    "schedule".into(),
                    format!("schedule:{slot}"),
                    format!("the schedule `{cron}` came at {}", alert::iso(slot)),
                ));
            }
        }
        if let Some(w) = &on.drift {
            firings.extend(self.drifting(w).await?);
        }
        if let Some(d) = &on.decay {
            firings.extend(self.decaying(d).await?);
        }
        if !on.data.is_empty() {
            match pipelines.data_changed(&on.data) {
                Ok(Some((key, evidence))) => {
                    firings.push(("data".into(), format!("data:{key}"), evidence))
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("cannot tell whether {} changed: {e}", on.data.join(", ")),
            }
        }
        let mut out = Vec::new();
        for (kind, key, evidence) in firings {
            let f = Firing {
                pipeline: p.pipeline.name.clone(),
                kind,
                key,
                evidence,
                commit: None,
                now_ms: now,
                cooldown_ms: on.cooldown_ms as i64,
            };
            out.push(self.store.fire_trigger(&f).await?);
        }
        Ok(out)
    }

    /// A firing of the drift trigger: the watched model's latest drift
    /// check fails, once per episode.
    async fn drifting(
        &self,
        w: &ferry_spec::ModelWatch,
    ) -> Result<Option<(String, String, String)>> {
        let latest = self.store.latest_monitor_events(Some(&w.model)).await?;
        let failing = latest
            .into_iter()
            .find(|e| e.check == "drift" && e.status == CheckStatus::Failing);
        let Some(e) = failing else {
            return Ok(None);
        };
        // One firing per episode of drift (from when the check started
        // failing): a model that keeps drifting is not retrained again
        // and again; one that drifts anew is.
        let since = self.store.alert_state(&w.model, "drift").await?;
        let episode = since.filter(|s| s.failing).map_or(e.at_ms, |s| s.since_ms);
        Ok(Some((
            "drift".into(),
            format!("drift:{}@{episode}", w.model),
            format!("{w}: {}", e.summary),
        )))
    }

    /// A firing of the decay trigger: the watched model's latest judged
    /// live metric is below the floor.
    async fn decaying(&self, d: &ferry_spec::Decay) -> Result<Option<(String, String, String)>> {
        let latest = self
            .store
            .latest_monitor_events(Some(&d.watch.model))
            .await?;
        let judged = latest.into_iter().find(|e| {
            e.check == d.metric && matches!(e.status, CheckStatus::Ok | CheckStatus::Failing)
        });
        Ok(judged.and_then(|e| {
            let v = e.value.filter(|v| *v < d.below)?;
            Some((
                "decay".into(),
                format!("decay:{}", e.event_id),
                format!(
                    "{}: live {} {v:.3} < {} ({})",
                    d.watch, d.metric, d.below, e.summary
                ),
            ))
        }))
    }

    /// Claims one queued run and runs it, renewing the claim meanwhile.
    async fn work(
        &self,
        p: &Project,
        pipelines: Arc<dyn Pipelines>,
    ) -> Result<Option<(TriggeredRun, Ran)>> {
        let concurrency = p.pipeline.triggers.as_ref().map_or(1, |t| t.concurrency);
        let claim = Claim {
            pipeline: p.pipeline.name.clone(),
            agent: self.name.clone(),
            now_ms: self.clock.now_ms(),
            lease_ms: self.lease_ms,
            concurrency,
            retries: 1,
        };
        let Some(t) = self.store.claim_trigger(&claim).await? else {
            return Ok(None);
        };
        let job = {
            let t = t.clone();
            tokio::task::spawn_blocking(move || pipelines.run(&t))
        };
        tokio::pin!(job);
        let every = std::time::Duration::from_millis((self.lease_ms / 3).max(10) as u64);
        let ran = loop {
            tokio::select! {
                r = &mut job => break r,
                () = tokio::time::sleep(every) => {
                    // The run goes on whatever the store says: a renewal
                    // that fails is tried again at the next beat.
                    let until = self.clock.now_ms() + self.lease_ms;
                    match self.store.renew_trigger(&t.trigger_id, &self.name, until).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(trigger = %t.trigger_id, "this agent's claim was taken over"),
                        Err(e) => tracing::warn!(trigger = %t.trigger_id, "cannot renew the claim: {e}"),
                    }
                }
            }
        };
        let ran = match ran {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Ran {
                run_id: None,
                succeeded: false,
                registered: None,
                message: e,
            },
            Err(e) => Ran {
                run_id: None,
                succeeded: false,
                registered: None,
                message: format!("the run panicked: {e}"),
            },
        };
        if let Some(id) = &ran.run_id {
            self.store
                .trigger_started(&t.trigger_id, &self.name, id)
                .await?;
        }
        let state = if ran.succeeded {
            TriggerState::Succeeded
        } else {
            TriggerState::Failed
        };
        self.store
            .finish_trigger(
                &t.trigger_id,
                &self.name,
                state,
                Some(&ran.message),
                self.clock.now_ms(),
            )
            .await?;
        Ok(Some((t, ran)))
    }

    /// Rolls a triggered run's candidate out, or tells why there is none.
    async fn deploy(
        &self,
        p: &Project,
        t: &TriggeredRun,
        ran: &Ran,
        rollouts: &dyn Rollouts,
        alerts: &mut Vec<Sent>,
    ) -> Result<Option<String>> {
        // A pull request's commit is not merged: its run is built and
        // judged (and recorded), never rolled out, and its failure is the
        // pull request's to show, not an alert.
        if t.kind == PULL_REQUEST {
            return Ok(None);
        }
        let model = p.pipeline.register.as_ref().map(|r| r.model.to_string());
        let tell = |check: &str, notice: Notice, text: String| {
            let a = p
                .pipeline
                .monitor
                .as_ref()
                .and_then(|m| m.alerts.as_ref())?;
            let body = serde_json::json!({"text": text, "ferry": {"notice": notice.as_str(), "trigger": t, "run": ran.run_id}});
            Some(self.post(
                a,
                model.as_deref().unwrap_or(&p.pipeline.name),
                check,
                notice,
                &body,
            ))
        };
        let (Some(policy), Some(model)) = (&p.pipeline.deploy, &model) else {
            return Ok(None);
        };
        let Some(version) = ran.registered.filter(|_| ran.succeeded) else {
            let text = format!(
                ":x: {}: the retrain triggered by {} did not produce a candidate to deploy: {}",
                p.pipeline.name, t.kind, ran.message
            );
            alerts.extend(tell("retrain", Notice::Failing, text));
            return Ok(None);
        };
        let reason = format!("triggered by {} ({}): {}", t.kind, t.trigger_id, t.evidence);
        match rollouts.start(model, version, policy, &reason).await {
            Ok(id) => Ok(Some(id)),
            Err(e) => {
                let text = format!(":x: {model} version {version} could not be rolled out: {e}");
                alerts.extend(tell("rollout", Notice::Failing, text));
                Ok(None)
            }
        }
    }
}

/// The reference sample a version keeps among its files (registration
/// puts it there and names it in the lineage), once its files are checked
/// to be what was registered.
fn kept_reference(
    artifacts: &Path,
    v: &ferry_metadata::ModelVersion,
) -> std::result::Result<PathBuf, String> {
    let name = format!("{}/{}", v.model, v.version);
    let file = v.lineage["reference"]["file"]
        .as_str()
        .filter(|f| !f.contains(['/', '\\']) && !f.starts_with('.'))
        .ok_or_else(|| format!("{name}: its lineage names no reference file"))?;
    let stored = v
        .stored
        .as_ref()
        .ok_or_else(|| format!("{name}: the registry does not say where its files are"))?;
    let rest = stored
        .location
        .strip_prefix("mlflow-artifacts:/")
        .ok_or_else(|| format!("{name}: its files are at {}, which the agent does not read (it reads the project's artifact folder)", stored.location))?;
    let mut dir = artifacts.to_owned();
    for part in rest.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!(
                "{name}: its location `{}` is not a path inside the artifact folder",
                stored.location
            ));
        }
        dir.push(part);
    }
    let digest = ferry_cache::stored_digest(&dir).map_err(|e| format!("{name}: {e}"))?;
    if digest.to_hex() != stored.digest {
        return Err(format!(
            "{name}: its files in {} changed since it was registered",
            dir.display()
        ));
    }
    Ok(dir.join(file))
}
