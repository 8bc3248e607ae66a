//! What the store keeps of money beyond each stage's cost: which workspace
//! and project each pipeline belongs to, budgets with the runs' holds on
//! them and the alerts sent, and what gateways spent serving each model
//! version. The arithmetic is `ferry-cost`'s.

use crate::Result;
use ferry_cost::budget::{Budget, Scope, Standing};
use serde::Serialize;
use std::collections::BTreeMap;

/// Whose a pipeline is: the workspace (team) and project its latest run
/// named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub workspace: String,
    pub project: String,
}

/// A run's hold on the budgets over it, asked for when it starts.
#[derive(Debug, Clone)]
pub struct Hold {
    pub run_id: String,
    pub pipeline: String,
    pub workspace: String,
    /// What the run is expected to spend.
    pub estimate_usd: f64,
    /// Hold it even where it does not fit (a maintainer's override).
    pub over: bool,
    pub now_ms: i64,
}

/// What a [`Hold`] came to.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Held {
    /// The budgets over the run, as they stood before it (none: no budget
    /// covers it, and nothing was held).
    pub standings: Vec<Standing>,
    /// Those of `standings` that do not cover the estimate.
    pub short: Vec<Scope>,
    /// Whether the estimate is now held against them: yes unless some are
    /// short and the hold was not `over`.
    pub held: bool,
}

/// An alert to send: a budget reached one of its thresholds this month.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Alert {
    pub budget: String,
    pub period: String,
    pub threshold_percent: u32,
    pub spent_usd: f64,
    pub monthly_usd: f64,
    #[serde(skip)]
    pub webhook: Option<String>,
}

/// A budget's standing as `ferry budget list --json` and the server show
/// it: with what is left, and its webhook only as `(set)` (a webhook's URL
/// often carries a secret).
pub fn standing_view(s: &Standing) -> serde_json::Value {
    let mut shown = s.clone();
    if shown.budget.webhook.is_some() {
        shown.budget.webhook = Some("(set)".into());
    }
    let mut v = serde_json::to_value(&shown).unwrap_or_default();
    v["left_usd"] = serde_json::json!(s.left_usd());
    v
}

impl Alert {
    /// What its webhook is sent: the figures and a line for a person (a
    /// chat incoming webhook shows `text`).
    pub fn payload(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "ferry.budget.alert",
            "budget": self.budget,
            "period": self.period,
            "threshold_percent": self.threshold_percent,
            "spent_usd": self.spent_usd,
            "monthly_usd": self.monthly_usd,
            "text": format!(
                "ferry: budget {} reached {}% of {} in {} ({} spent)",
                self.budget,
                self.threshold_percent,
                ferry_cost::money(self.monthly_usd),
                self.period,
                ferry_cost::money(self.spent_usd)
            ),
        })
    }
}

/// What a gateway served of one model version on one UTC day, added to
/// what the store has.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingUsage {
    pub day: i64,
    pub model: String,
    pub version: i64,
    pub predictions: i64,
    pub cpu_seconds: f64,
    pub cost_usd: f64,
}

/// What a model version cost: the run that built it (its stages that ran;
/// those restored cost nothing), and serving it in a window.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct VersionCost {
    pub model: String,
    pub version: i64,
    pub run_id: Option<String>,
    pub created_ms: i64,
    /// The building run's stages that cost something.
    pub build_usd: f64,
    /// Its stages restored from the run cache (built by an earlier run).
    pub restored_stages: i64,
    pub predictions: i64,
    pub serving_cpu_seconds: f64,
    pub serving_usd: f64,
    /// What 1,000 predictions cost to serve, once it answered some.
    pub per_1k_predictions_usd: Option<f64>,
}

/// What 1,000 of `predictions` cost when they all cost `usd`.
pub fn per_1k(usd: f64, predictions: i64) -> Option<f64> {
    (predictions > 0).then(|| 1000.0 * usd / predictions as f64)
}

/// What is kept of one owner's, and what keeping it costs a month.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Stored {
    /// `registry` (a model's versions' files) or `cache` (a project's
    /// cache and run cache on this machine).
    pub place: String,
    /// The model or project.
    pub name: String,
    /// Its workspace (team).
    pub workspace: String,
    /// Versions or files.
    pub objects: i64,
    pub bytes: i64,
    /// At the machine class's storage GiB-month.
    pub usd_month: f64,
}

impl Stored {
    /// Prices it at `gib_month` dollars a GiB-month.
    pub fn priced(mut self, gib_month: f64) -> Self {
        self.usd_month = self.bytes as f64 / f64::from(1u32 << 30) * gib_month;
        self
    }
}

#[async_trait::async_trait]
pub trait CostStore: Send + Sync {
    /// Who owns each pipeline that has run.
    async fn pipeline_owners(&self) -> Result<BTreeMap<String, Owner>>;
    /// Says whose `pipeline` is (its latest run's say: `begin_run` says it
    /// for the runs it records).
    async fn set_pipeline_owner(&self, pipeline: &str, owner: &Owner) -> Result<()>;
    /// Sets (or replaces) the budget of its scope.
    async fn set_budget(&self, budget: &Budget, now_ms: i64) -> Result<()>;
    /// Removes a budget; whether there was one.
    async fn remove_budget(&self, scope: &Scope) -> Result<bool>;
    /// Whether a budget covers runs of `pipeline` in `workspace` (what a
    /// run asks before it estimates anything).
    async fn has_budget(&self, pipeline: &str, workspace: &str) -> Result<bool>;
    /// Every budget and where it stands in the month of `now_ms`.
    async fn budgets(&self, now_ms: i64) -> Result<Vec<Standing>>;
    /// Holds a run's estimate against the budgets over it, unless one of
    /// them cannot cover it (and the hold is not `over`): decided and held
    /// in one transaction, so two runs never both take the last of a
    /// budget.
    async fn hold_budget(&self, hold: &Hold) -> Result<Held>;
    /// Lets a run's hold go (it ended), and gives back the alerts its
    /// budgets now owe: each threshold reached, once per month.
    async fn release_budget(&self, run_id: &str, now_ms: i64) -> Result<Vec<Alert>>;
    /// What a pipeline's stage cost in its latest `limit` runs that ran it
    /// and were priced, newest first.
    async fn recent_stage_costs(
        &self,
        pipeline: &str,
        stage: &str,
        limit: usize,
    ) -> Result<Vec<f64>>;
    /// Adds what gateways served.
    async fn add_serving_usage(&self, usage: &[ServingUsage]) -> Result<()>;
    /// What each registered model's versions keep (their files' bytes as
    /// registered), with its workspace; `usd_month` is left at 0 for the
    /// caller to price.
    async fn registry_storage(&self) -> Result<Vec<Stored>>;
    /// Each model version built in `[since_ms, until_ms)` or served then,
    /// with what it cost.
    async fn version_costs(&self, since_ms: i64, until_ms: i64) -> Result<Vec<VersionCost>>;
}

/// What `ferry cost --by` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// What the ledger sums by itself: stage, pipeline, day, month.
    Ledger(ferry_cost::ledger::By),
    /// The pipelines' workspaces.
    Team,
    /// The pipelines' projects.
    Project,
    /// Each model version: what built it and serving it.
    Model,
    /// What is kept (registry, cache) by owner, a month.
    Storage,
}

impl Grouping {
    pub const NAMES: &[&str] = &[
        "team", "project", "pipeline", "model", "stage", "day", "month",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        use ferry_cost::ledger::By;
        Some(match s {
            "team" => Grouping::Team,
            "project" => Grouping::Project,
            "model" => Grouping::Model,
            "storage" => Grouping::Storage,
            "pipeline" => Grouping::Ledger(By::Pipeline),
            "stage" => Grouping::Ledger(By::Stage),
            "day" => Grouping::Ledger(By::Day),
            "month" => Grouping::Ledger(By::Month),
            _ => return None,
        })
    }

    /// The sums of the pipelines whose workspace `sees` allows (a
    /// pipeline no run named an owner for is [`crate::DEFAULT_WORKSPACE`]'s).
    pub fn visible(
        sums: Vec<ferry_cost::ledger::DaySum>,
        owners: &BTreeMap<String, Owner>,
        sees: impl Fn(&str) -> bool,
    ) -> Vec<ferry_cost::ledger::DaySum> {
        sums.into_iter()
            .filter(|s| {
                sees(
                    owners
                        .get(&s.pipeline)
                        .map_or(crate::DEFAULT_WORKSPACE, |o| o.workspace.as_str()),
                )
            })
            .collect()
    }

    /// The report's lines from the ledger's sums, each pipeline's put
    /// under its workspace or project where asked (a pipeline no run named
    /// an owner for is [`crate::DEFAULT_WORKSPACE`]'s, and its own project).
    /// [`Grouping::Model`] and [`Grouping::Storage`] have no lines here
    /// (see [`CostStore::version_costs`], [`CostStore::registry_storage`]).
    pub fn lines(
        self,
        mut sums: Vec<ferry_cost::ledger::DaySum>,
        owners: &BTreeMap<String, Owner>,
    ) -> Vec<ferry_cost::ledger::Total> {
        use ferry_cost::ledger::{By, totals};
        let by = match self {
            Grouping::Ledger(by) => by,
            Grouping::Model | Grouping::Storage => return vec![],
            Grouping::Team | Grouping::Project => By::Pipeline,
        };
        for s in &mut sums {
            let o = owners.get(&s.pipeline);
            match (self, o) {
                (Grouping::Team, Some(o)) => s.pipeline = o.workspace.clone(),
                (Grouping::Team, None) => s.pipeline = crate::DEFAULT_WORKSPACE.to_owned(),
                (Grouping::Project, Some(o)) => s.pipeline = o.project.clone(),
                _ => {}
            }
        }
        totals(by, &sums)
    }
}
