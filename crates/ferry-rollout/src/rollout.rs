//! Creating a rollout: the rules `ferry deploy MODEL/VERSION` follows
//! before a deployment is recorded, beside the state machine that then
//! runs it ([`crate::canary`]). [`plan`] checks what was asked (the
//! version's reference, the strategy, the steps, the durations, the
//! criteria) and makes the [`Plan`]; [`admit`] resolves the version
//! (`iris/3`, or `iris@candidate`: the one the alias points to) and the
//! stable one it is compared with, and refuses a rejected version (unless
//! allowed) or one that already is the stable version. A second active
//! rollout of a model is refused by the store itself, in the transaction
//! that records the first (`DeploymentStore::create_deployment`).
//!
//! No IO of its own: the registry is read through [`Versions`] (the store,
//! or a test's list) and the clock comes in as a value. Every refusal is a
//! [`DeployError`] whose message names the flag or the version at fault.

use crate::canary::{self, Criteria, Phase, Plan, Strategy};
use ferry_core::{ModelRef, ModelRefParseError};
use ferry_metadata::{MetadataStore, ModelVersion, NewDeployment};

/// What `ferry deploy` was asked, as given on its command line; also the
/// body of the team server's `deployments/create` (fields left out take
/// the command line's defaults).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Request {
    /// The version to roll out: `iris/3` or `iris@candidate`.
    pub candidate: Option<String>,
    /// `--version N` and `--candidate ALIAS`, gone (the reference says
    /// both), still given by old scripts.
    pub old_version: Option<String>,
    pub old_candidate: Option<String>,
    /// `canary` or `shadow`.
    pub strategy: String,
    pub steps: Vec<u32>,
    /// Durations as written: `1m`, `90s`.
    pub interval: String,
    pub deadline: String,
    /// The alias that serves production.
    pub alias: String,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub max_prediction_shift: Option<f64>,
    pub min_accuracy: Option<f64>,
    pub min_requests: u64,
    /// Shadow: percent of requests mirrored.
    pub mirror: u32,
    pub min_agreement: Option<f64>,
    pub reason: Option<String>,
    pub allow_rejected: bool,
}

impl Default for Request {
    /// `ferry deploy`'s defaults.
    fn default() -> Self {
        Self {
            candidate: None,
            old_version: None,
            old_candidate: None,
            strategy: "canary".into(),
            steps: vec![10, 25, 50, 100],
            interval: "1m".into(),
            deadline: "10m".into(),
            alias: "production".into(),
            max_error_rate: None,
            max_p99_ms: None,
            max_prediction_shift: None,
            min_accuracy: None,
            min_requests: 20,
            mirror: 100,
            min_agreement: None,
            reason: None,
            allow_rejected: false,
        }
    }
}

/// A request whose flags hold: the version to roll out and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// A version or an alias of `model` (never the bare model).
    pub candidate: ModelRef,
    pub model: String,
    pub plan: Plan,
    pub reason: Option<String>,
    pub allow_rejected: bool,
}

/// Why a rollout cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "`--version` is gone: the version goes in the model reference\nhint: `ferry deploy {name}/{version}`"
    )]
    VersionFlag { name: String, version: String },
    #[error(
        "`--candidate` is gone: the alias goes in the model reference\nhint: `ferry deploy {name}@{alias}`"
    )]
    CandidateFlag { name: String, alias: String },
    #[error(
        "give the version to roll out\nhint: `ferry deploy MODEL/VERSION` or `ferry deploy MODEL@ALIAS` (e.g. `iris/3`, `iris@candidate`); `ferry deploy status|promote|abort MODEL` for a rollout under way"
    )]
    NoCandidate,
    #[error(transparent)]
    Reference(#[from] ModelRefParseError),
    /// A bare model name: which version is meant?
    #[error(
        "`{0}` names no version to roll out\nhint: `ferry deploy {0}/VERSION` for a version, `ferry deploy {0}@ALIAS` for the one an alias points to (e.g. `{0}@candidate`)"
    )]
    NoVersion(String),
    #[error("--strategy `{0}`: use canary or shadow")]
    Strategy(String),
    /// Steps that are not increasing percentages ([`canary::check_steps`]).
    #[error("{0}")]
    Steps(String),
    #[error("{flag}: {why}")]
    Duration { flag: &'static str, why: String },
    #[error("{flag} must be between 0 and 1 (got {value})")]
    Share { flag: &'static str, value: f64 },
    #[error("--mirror is a percentage in 1..=100")]
    Mirror,
    #[error("--max-p99-ms must be positive (got {0})")]
    MaxP99(f64),
    #[error("no model version `{0}`")]
    NoSuchVersion(ModelRef),
    #[error(
        "version {version} of `{model}` was rejected ({why})\nhint: roll it out anyway with --allow-rejected"
    )]
    Rejected {
        model: String,
        version: i64,
        why: String,
    },
    #[error(
        "model `{model}` has no `{alias}` version to compare the candidate with; point the alias at one first (ferry models alias {model}/VERSION {alias})"
    )]
    NoStable { model: String, alias: String },
    #[error("version {version} already is `{model}@{alias}`")]
    AlreadyStable {
        model: String,
        version: i64,
        alias: String,
    },
    #[error("model `{0}` has no deployment")]
    NoDeployment(String),
    #[error("the last deployment of `{model}` (version {version}) already ended: {phase}")]
    Ended {
        model: String,
        version: i64,
        phase: String,
    },
    #[error(
        "promoting `{0}` by hand moves a protected alias: say why with --reason TEXT (or let the gateway's analysis promote it)"
    )]
    NeedsReason(String),
    /// The plan cannot be stored as JSON.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    /// Reading the registry failed.
    #[error(transparent)]
    Store(#[from] ferry_metadata::Error),
}

/// Checks what was asked, in the order a reader of the command line
/// would: the reference, the strategy and its steps, the durations, the
/// criteria.
pub fn plan(r: &Request) -> Result<Rollout, DeployError> {
    let candidate = candidate(r)?;
    let model = candidate.model().to_string();
    let strategy = match r.strategy.as_str() {
        "canary" => Strategy::Canary,
        "shadow" => Strategy::Shadow,
        s => return Err(DeployError::Strategy(s.to_owned())),
    };
    if strategy == Strategy::Canary {
        canary::check_steps(&r.steps).map_err(DeployError::Steps)?;
    }
    let duration = |flag: &'static str, v: &str| {
        canary::parse_duration(v).map_err(|why| DeployError::Duration { flag, why })
    };
    let interval = duration("--interval", &r.interval)?;
    let deadline = duration("--deadline", &r.deadline)?;
    let criteria = criteria(r)?;
    Ok(Rollout {
        candidate,
        model,
        plan: Plan {
            strategy,
            steps: if strategy == Strategy::Canary {
                r.steps.clone()
            } else {
                Vec::new()
            },
            interval_ms: interval,
            deadline_ms: deadline,
            mirror_percent: r.mirror,
            alias: r.alias.clone(),
            criteria,
        },
        reason: r.reason.clone(),
        allow_rejected: r.allow_rejected,
    })
}

/// The version to roll out, as a reference to a version or an alias.
fn candidate(r: &Request) -> Result<ModelRef, DeployError> {
    let name = r.candidate.as_deref().unwrap_or("MODEL");
    if let Some(v) = &r.old_version {
        return Err(DeployError::VersionFlag {
            name: name.to_owned(),
            version: v.clone(),
        });
    }
    if let Some(al) = &r.old_candidate {
        return Err(DeployError::CandidateFlag {
            name: name.to_owned(),
            alias: al.clone(),
        });
    }
    let given = r.candidate.as_deref().ok_or(DeployError::NoCandidate)?;
    let candidate = given.parse::<ModelRef>()?;
    if let ModelRef::Latest(m) = &candidate {
        return Err(DeployError::NoVersion(m.to_string()));
    }
    Ok(candidate)
}

/// The analysis criteria: shares in 0..=1, a mirror percentage, a
/// positive latency.
fn criteria(r: &Request) -> Result<Criteria, DeployError> {
    for (flag, v) in [
        ("--max-error-rate", r.max_error_rate),
        ("--min-accuracy", r.min_accuracy),
        ("--min-agreement", r.min_agreement),
    ] {
        if let Some(value) = v
            && !(0.0..=1.0).contains(&value)
        {
            return Err(DeployError::Share { flag, value });
        }
    }
    if r.mirror == 0 || r.mirror > 100 {
        return Err(DeployError::Mirror);
    }
    if let Some(p) = r.max_p99_ms.filter(|p| p.is_nan() || *p <= 0.0) {
        return Err(DeployError::MaxP99(p));
    }
    Ok(Criteria {
        max_error_rate: r.max_error_rate,
        max_p99_ms: r.max_p99_ms,
        max_prediction_shift: r.max_prediction_shift,
        min_accuracy: r.min_accuracy,
        min_requests: r.min_requests,
        min_agreement: r.min_agreement,
    })
}

/// What [`admit`] reads of the registry.
#[async_trait::async_trait]
pub trait Versions: Send + Sync {
    async fn version(
        &self,
        model: &str,
        version: i64,
    ) -> Result<Option<ModelVersion>, ferry_metadata::Error>;
    async fn alias(
        &self,
        model: &str,
        alias: &str,
    ) -> Result<Option<ModelVersion>, ferry_metadata::Error>;
}

#[async_trait::async_trait]
impl<S: MetadataStore + ?Sized> Versions for S {
    async fn version(
        &self,
        model: &str,
        version: i64,
    ) -> Result<Option<ModelVersion>, ferry_metadata::Error> {
        self.get_version(model, version).await
    }
    async fn alias(
        &self,
        model: &str,
        alias: &str,
    ) -> Result<Option<ModelVersion>, ferry_metadata::Error> {
        self.resolve_alias(model, alias).await
    }
}

/// Resolves a rollout's versions and makes the deployment to record at
/// `now_ms`: its candidate must exist and not be rejected (unless
/// allowed), and the plan's alias must point at another version, the
/// stable one it is compared with.
pub async fn admit<V: Versions + ?Sized>(
    versions: &V,
    r: &Rollout,
    now_ms: i64,
) -> Result<NewDeployment, DeployError> {
    let model = &r.model;
    let candidate = match &r.candidate {
        ModelRef::Version(_, v) => versions.version(model, *v as i64).await?,
        ModelRef::Alias(_, al) => versions.alias(model, al).await?,
        ModelRef::Latest(_) => None,
    }
    .ok_or_else(|| DeployError::NoSuchVersion(r.candidate.clone()))?;
    if let Some(why) = candidate.rejected()
        && !r.allow_rejected
    {
        return Err(DeployError::Rejected {
            model: model.clone(),
            version: candidate.version,
            why: why.to_owned(),
        });
    }
    let alias = &r.plan.alias;
    let stable = versions
        .alias(model, alias)
        .await?
        .ok_or_else(|| DeployError::NoStable {
            model: model.clone(),
            alias: alias.clone(),
        })?;
    if stable.version == candidate.version {
        return Err(DeployError::AlreadyStable {
            model: model.clone(),
            version: candidate.version,
            alias: alias.clone(),
        });
    }
    Ok(NewDeployment {
        model: model.clone(),
        candidate: candidate.version,
        stable: Some(stable.version),
        strategy: r.plan.strategy.as_str().into(),
        spec: serde_json::to_value(&r.plan)?,
        phase: Phase::Progressing.as_str().into(),
        weight: i64::from(canary::weight_at(&r.plan, 0)),
        created_ms: now_ms,
        reason: r.reason.clone(),
    })
}

/// The change that ends `d` (a promotion, a rollback or an abort): all
/// traffic to the version that stays, the alias moved to the candidate when
/// it is promoted, the candidate tagged rejected otherwise. The gateway and
/// `ferry deploy promote|abort` end deployments through this one function.
pub fn ending(
    d: &ferry_metadata::Deployment,
    phase: Phase,
    reason: &str,
    detail: serde_json::Value,
    now_ms: i64,
) -> ferry_metadata::DeploymentChange {
    let promoted = phase == Phase::Promoted;
    ferry_metadata::DeploymentChange {
        phase: phase.as_str().into(),
        active: false,
        step: d.step,
        weight: if promoted { 100 } else { 0 },
        step_started_ms: now_ms,
        reason: Some(reason.to_owned()),
        kind: phase.as_str().into(),
        detail,
        now_ms,
        move_alias: promoted.then(|| alias_of(d)),
        reject: !promoted,
    }
}

/// The audit log's word for how a deployment ended.
pub fn phase_action(phase: Phase) -> &'static str {
    match phase {
        Phase::Promoted => "promote",
        Phase::RolledBack => "rollback",
        _ => "abort",
    }
}

/// Who starts or ends a rollout, for the audit log.
#[derive(Debug, Clone)]
pub struct By {
    /// `cli:USER` for `ferry deploy` on a store, the user's name through a
    /// team server, `gateway@ADDR` for a gateway's verdict.
    pub actor: String,
    /// The API token the request came with.
    pub token_id: Option<String>,
    /// The request's address; `local` when there was none.
    pub source: String,
}

impl By {
    /// A local actor (`ferry deploy` on a store, a gateway).
    pub fn local(actor: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            token_id: None,
            source: "local".into(),
        }
    }
}

/// A rollout recorded, and the gateways that will carry it out.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Started {
    pub deployment: ferry_metadata::Deployment,
    /// The live gateways serving the model by the plan's alias (none: the
    /// rollout waits until one does).
    pub gateways: Vec<ferry_metadata::GatewayBeat>,
}

/// Starts `r`: [`admit`]s it, records the deployment (the store refuses a
/// second active one of a model) and appends `deployment.start`. `ferry
/// deploy` on a store and the team server's `deployments/create` both
/// start rollouts here.
pub async fn start(
    store: &dyn MetadataStore,
    r: &Rollout,
    by: &By,
) -> Result<Started, DeployError> {
    let new = admit(store, r, ferry_core::now_ms()).await?;
    let gateways = serving(store, &r.model, &r.plan.alias).await?;
    let d = store.create_deployment(&new).await?;
    let what = format!(
        "{} started: {}",
        r.plan.strategy.as_str(),
        new.reason.as_deref().unwrap_or("no reason given")
    );
    audit(store, by, "deployment.start", &d, &what).await;
    Ok(Started {
        deployment: d,
        gateways,
    })
}

/// The live gateways that serve `model` by `alias` (those that carry out
/// its rollouts).
pub async fn serving(
    store: &dyn MetadataStore,
    model: &str,
    alias: &str,
) -> Result<Vec<ferry_metadata::GatewayBeat>, ferry_metadata::Error> {
    let now = ferry_core::now_ms();
    Ok(store
        .list_gateways()
        .await?
        .into_iter()
        .filter(|g| g.live(now) && g.serves_alias(model, alias))
        .collect())
}

/// The last deployment of `model`.
pub async fn last(
    store: &dyn MetadataStore,
    model: &str,
) -> Result<ferry_metadata::Deployment, DeployError> {
    store
        .list_deployments(Some(model), false)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DeployError::NoDeployment(model.to_owned()))
}

/// The alias a deployment's plan serves (`production` for a spec that is
/// no plan).
pub fn alias_of(d: &ferry_metadata::Deployment) -> String {
    serde_json::from_value::<Plan>(d.spec.clone())
        .map_or_else(|_| "production".to_owned(), |p| p.alias)
}

/// A model's last rollout as `ferry deploy status` shows it: the
/// deployment, its events, and the live gateways serving its alias.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub deployment: ferry_metadata::Deployment,
    pub events: Vec<ferry_metadata::DeploymentEvent>,
    pub gateways: Vec<ferry_metadata::GatewayBeat>,
}

/// `model`'s last rollout (see [`Status`]); `ferry deploy status` on a
/// store and the team server's `deployments/get` both read it here.
pub async fn status(store: &dyn MetadataStore, model: &str) -> Result<Status, DeployError> {
    let deployment = last(store, model).await?;
    let events = store.deployment_events(&deployment.id).await?;
    let gateways = serving(store, model, &alias_of(&deployment)).await?;
    Ok(Status {
        deployment,
        events,
        gateways,
    })
}

/// A rollout ended by hand.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ended {
    pub deployment: ferry_metadata::Deployment,
    /// No gateway ever routed the candidate: an abort says nothing about
    /// the version, which is not marked rejected.
    pub unjudged: bool,
    pub reason: String,
}

/// Ends `model`'s active rollout by hand: promoted (`phase` Promoted: the
/// alias moves to the candidate) or aborted (all traffic back to the
/// stable version, the candidate marked rejected unless no gateway ever
/// picked the rollout up), and appends `deployment.promote|abort`. On a
/// team's store (one with users) a promotion by hand moves a protected
/// alias by hand: it needs a reason.
pub async fn end(
    store: &dyn MetadataStore,
    model: &str,
    phase: Phase,
    reason: Option<String>,
    by: &By,
) -> Result<Ended, DeployError> {
    let d = last(store, model).await?;
    if !d.active {
        return Err(DeployError::Ended {
            model: model.to_owned(),
            version: d.candidate,
            phase: d.phase.clone(),
        });
    }
    let promoted = phase == Phase::Promoted;
    if promoted && reason.is_none() && !store.list_users().await?.is_empty() {
        return Err(DeployError::NeedsReason(model.to_owned()));
    }
    let reason = reason.unwrap_or_else(|| {
        if promoted {
            "promoted by hand"
        } else {
            "aborted by hand"
        }
        .to_owned()
    });
    let detail = serde_json::json!({"by": by.actor});
    let mut change = ending(&d, phase, &reason, detail, ferry_core::now_ms());
    let unjudged = d.picked_up_ms.is_none();
    if unjudged {
        change.reject = false;
    }
    let ended = store.change_deployment(&d.id, d.revision, &change).await?;
    let action = format!("deployment.{}", phase_action(phase));
    audit(store, by, &action, &ended, &reason).await;
    Ok(Ended {
        deployment: ended,
        unjudged,
        reason,
    })
}

/// Appends what happened to a rollout to the store's audit log: `actor`
/// (`gateway@ADDR` for a gateway's verdict, `cli:USER` for `ferry deploy`),
/// `action` (`deployment.start`, `.promote`, `.rollback`, `.abort`), the
/// model, and why: the deployment's id with the verdict's or the person's
/// reason. A promotion is how a protected alias moves without a person
/// giving a reason: the passing analysis is the reason. A failure to
/// append is logged, never the rollout's.
pub async fn audit(
    store: &dyn MetadataStore,
    by: &By,
    action: &str,
    d: &ferry_metadata::Deployment,
    reason: &str,
) {
    let e = ferry_auth::audit::Event {
        time_ms: ferry_core::now_ms(),
        actor: by.actor.clone(),
        token_id: by.token_id.clone(),
        action: action.to_owned(),
        resource: format!("registered_model:{}", d.model),
        outcome: "allowed".into(),
        source: by.source.clone(),
        reason: Some(format!(
            "deployment {} of version {}: {reason}",
            d.id, d.candidate
        )),
    };
    if let Err(err) = store.append_audit(&e).await {
        tracing::error!("cannot append to the audit log: {err}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `ferry deploy iris/2` with the command line's defaults.
    fn request(candidate: &str) -> Request {
        Request {
            candidate: Some(candidate.into()),
            ..Request::default()
        }
    }

    fn refused(r: &Request) -> String {
        plan(r).unwrap_err().to_string()
    }

    #[test]
    fn a_request_becomes_a_plan() {
        let mut r = request("iris/2");
        r.max_error_rate = Some(0.05);
        r.reason = Some("new features".into());
        let p = plan(&r).unwrap();
        assert_eq!(p.candidate, "iris/2".parse().unwrap());
        assert_eq!(p.model, "iris");
        assert_eq!(p.reason.as_deref(), Some("new features"));
        assert_eq!(
            p.plan,
            Plan {
                strategy: Strategy::Canary,
                steps: vec![10, 25, 50, 100],
                interval_ms: 60_000,
                deadline_ms: 600_000,
                mirror_percent: 100,
                alias: "production".into(),
                criteria: Criteria {
                    max_error_rate: Some(0.05),
                    min_requests: 20,
                    ..Default::default()
                },
            }
        );
        // A shadow has no steps (and its steps are not checked).
        let mut r = request("iris@candidate");
        r.strategy = "shadow".into();
        r.steps = vec![50, 10];
        r.mirror = 30;
        let p = plan(&r).unwrap();
        assert_eq!(p.candidate, "iris@candidate".parse().unwrap());
        assert_eq!((p.plan.steps.len(), p.plan.mirror_percent), (0, 30));
    }

    #[test]
    fn the_reference_names_a_version_or_an_alias() {
        let mut r = request("iris");
        r.candidate = None;
        assert!(refused(&r).starts_with("give the version to roll out\nhint: "));
        assert_eq!(
            refused(&request("iris")),
            "`iris` names no version to roll out\nhint: `ferry deploy iris/VERSION` for a version, `ferry deploy iris@ALIAS` for the one an alias points to (e.g. `iris@candidate`)"
        );
        assert!(refused(&request("iris/x")).starts_with("invalid model reference `iris/x`"));
        // The gone flags say where their value goes now.
        let mut r = request("iris");
        r.old_version = Some("3".into());
        assert_eq!(
            refused(&r),
            "`--version` is gone: the version goes in the model reference\nhint: `ferry deploy iris/3`"
        );
        let mut r = request("iris");
        r.candidate = None;
        r.old_candidate = Some("candidate".into());
        assert_eq!(
            refused(&r),
            "`--candidate` is gone: the alias goes in the model reference\nhint: `ferry deploy MODEL@candidate`"
        );
    }

    #[test]
    fn every_flag_is_checked_and_named() {
        type Change = fn(&mut Request);
        let cases: Vec<(Change, &str)> = vec![
            (
                |r| r.strategy = "blue-green".into(),
                "--strategy `blue-green`: use canary or shadow",
            ),
            (|r| r.steps = vec![50, 25], "--steps must increase: 50,25"),
            (
                |r| r.steps = vec![],
                "--steps needs at least one weight (e.g. 10,25,50,100)",
            ),
            (
                |r| r.interval = "soon".into(),
                "--interval: `soon` is not a duration (e.g. 30s, 1m, 2h)",
            ),
            (
                |r| r.deadline = "1y".into(),
                "--deadline: `1y` is not a duration (e.g. 30s, 1m, 2h)",
            ),
            (
                |r| r.max_error_rate = Some(1.5),
                "--max-error-rate must be between 0 and 1 (got 1.5)",
            ),
            (
                |r| r.min_accuracy = Some(-0.1),
                "--min-accuracy must be between 0 and 1 (got -0.1)",
            ),
            (
                |r| r.min_agreement = Some(2.0),
                "--min-agreement must be between 0 and 1 (got 2)",
            ),
            (|r| r.mirror = 0, "--mirror is a percentage in 1..=100"),
            (|r| r.mirror = 101, "--mirror is a percentage in 1..=100"),
            (
                |r| r.max_p99_ms = Some(0.0),
                "--max-p99-ms must be positive (got 0)",
            ),
            (
                |r| r.max_p99_ms = Some(f64::NAN),
                "--max-p99-ms must be positive (got NaN)",
            ),
        ];
        for (change, want) in cases {
            let mut r = request("iris/2");
            change(&mut r);
            let e = plan(&r).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        // The first problem in command-line order is the one reported.
        let mut r = request("iris");
        r.strategy = "nope".into();
        assert!(refused(&r).starts_with("`iris` names no version"));
    }

    /// A registry of `iris` versions: (version, aliases, rejected because).
    struct Registry(Vec<(i64, Vec<&'static str>, Option<&'static str>)>);

    impl Registry {
        fn get(&self, f: impl Fn(&(i64, Vec<&str>, Option<&str>)) -> bool) -> Option<ModelVersion> {
            let (version, aliases, rejected) = self.0.iter().find(|v| f(v))?;
            Some(ModelVersion {
                model: "iris".into(),
                version: *version,
                artifact_path: "model.onnx".into(),
                status: "READY".into(),
                aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
                tags: rejected
                    .iter()
                    .map(|why| (ferry_metadata::REJECTED_TAG.to_owned(), (*why).to_owned()))
                    .collect(),
                ..ModelVersion::default()
            })
        }
    }

    #[async_trait::async_trait]
    impl Versions for Registry {
        async fn version(
            &self,
            model: &str,
            version: i64,
        ) -> Result<Option<ModelVersion>, ferry_metadata::Error> {
            Ok(self.get(|v| model == "iris" && v.0 == version))
        }
        async fn alias(
            &self,
            model: &str,
            alias: &str,
        ) -> Result<Option<ModelVersion>, ferry_metadata::Error> {
            Ok(self.get(|v| model == "iris" && v.1.contains(&alias)))
        }
    }

    fn registry() -> Registry {
        Registry(vec![
            (1, vec!["production"], None),
            (2, vec!["candidate"], None),
            (3, vec![], Some("rolled back: error rate 0.2 above 0.05")),
        ])
    }

    async fn admitted(
        reference: &str,
        change: impl Fn(&mut Request),
    ) -> Result<NewDeployment, DeployError> {
        let mut r = request(reference);
        change(&mut r);
        admit(&registry(), &plan(&r).unwrap(), 1234).await
    }

    #[tokio::test]
    async fn a_version_or_an_alias_resolves_against_the_stable_version() {
        let d = admitted("iris/2", |r| r.reason = Some("why".into()))
            .await
            .unwrap();
        assert_eq!(
            (d.model.as_str(), d.candidate, d.stable),
            ("iris", 2, Some(1))
        );
        assert_eq!(
            (d.strategy.as_str(), d.phase.as_str()),
            ("canary", "progressing")
        );
        assert_eq!(
            (d.weight, d.created_ms, d.reason.as_deref()),
            (10, 1234, Some("why"))
        );
        let p: Plan = serde_json::from_value(d.spec).unwrap();
        assert_eq!(p.steps, [10, 25, 50, 100]);
        let d = admitted("iris@candidate", |_| {}).await.unwrap();
        assert_eq!((d.candidate, d.stable), (2, Some(1)));
        // A shadow starts at weight 0: it answers no request.
        let d = admitted("iris/2", |r| r.strategy = "shadow".into())
            .await
            .unwrap();
        assert_eq!((d.strategy.as_str(), d.weight), ("shadow", 0));
    }

    #[tokio::test]
    async fn versions_that_cannot_be_rolled_out_are_refused() {
        for (reference, change, want) in [
            ("iris/9", None, "no model version `iris/9`"),
            ("iris@nope", None, "no model version `iris@nope`"),
            (
                "iris/3",
                None,
                "version 3 of `iris` was rejected (rolled back: error rate 0.2 above 0.05)\nhint: roll it out anyway with --allow-rejected",
            ),
            ("iris/1", None, "version 1 already is `iris@production`"),
            (
                "iris/2",
                Some("staging"),
                "model `iris` has no `staging` version to compare the candidate with; point the alias at one first (ferry models alias iris/VERSION staging)",
            ),
        ] {
            let e = admitted(reference, |r| {
                if let Some(a) = change {
                    r.alias = a.into();
                }
            })
            .await
            .unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        // A rejected version goes out when asked explicitly.
        let d = admitted("iris/3", |r| r.allow_rejected = true)
            .await
            .unwrap();
        assert_eq!((d.candidate, d.stable), (3, Some(1)));
    }
}
