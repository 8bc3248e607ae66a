//! The team server's cost API (`/api/2.0/ferry/costs/*`, `budgets/*`):
//! `ferry run --server` records each stage's cost here and holds its
//! estimate against the budgets, and `ferry cost` and `ferry budget` read
//! and set them, with the caller's credentials. A pipeline run is the
//! MLflow run `ferry run` made: its pipeline is its experiment's name and
//! its team the experiment's workspace, as the server knows them (never
//! as the client says). What is decided is `ferry-cost`'s and the store's,
//! the same as on a store: the gate allows an editor of the run to record
//! and hold, a maintainer to let a run over its budgets (with a reason,
//! audited), a server admin to set budgets, any user to read them.

use super::deployments::Asker;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::{AppState, Shared};
use axum::extract::State;
use axum::response::Json as Out;
use ferry_cost::budget::{Budget, DEFAULT_ALERTS, Scope, check_webhook};
use ferry_metadata::{
    Alert, Error, Grouping, Hold, NewRun, Owner, RunStatus, StageRecord, StageStatus, standing_view,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The pipeline and workspace of the MLflow run `run_id`.
async fn pipeline_of(st: &AppState, run_id: &str) -> ApiResult<(String, String)> {
    let run = st
        .store
        .get_tracked_run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{run_id}`")))?;
    let exp = st
        .store
        .get_experiment(run.info.experiment_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run `{run_id}` has no experiment")))?;
    let workspace = st
        .store
        .workspace_of(
            ferry_auth::ResourceType::Experiment,
            &run.info.experiment_id.to_string(),
        )
        .await?;
    Ok((exp.name, workspace))
}

/// The store's pipeline run for the MLflow run `run_id`, made the first
/// time one of its stages is recorded.
async fn ensure_run(
    st: &AppState,
    run_id: &str,
    project: &str,
    source: &str,
) -> ApiResult<(String, String)> {
    let (pipeline, workspace) = pipeline_of(st, run_id).await?;
    let owner = Owner {
        workspace: workspace.clone(),
        project: project.to_owned(),
    };
    match st.store.get_run(run_id).await {
        // An MLflow run made through the server is a run of the store's.
        Ok(_) => {
            st.store.set_pipeline_owner(&pipeline, &owner).await?;
            return Ok((pipeline, workspace));
        }
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let run = NewRun {
        run_id: run_id.to_owned(),
        pipeline: pipeline.clone(),
        trigger: "server".into(),
        started_ms: crate::now_ms(),
        git_commit: None,
        git_dirty: None,
        env_fingerprint: None,
        pid: 0,
        host: format!("remote:{source}"),
        workspace: workspace.clone(),
        project: project.to_owned(),
    };
    if let Err(e) = st.store.begin_run(&run).await {
        // Another stage of the run made it first.
        if st.store.get_run(run_id).await.is_err() {
            return Err(e.into());
        }
    }
    Ok((pipeline, workspace))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageCost {
    run_id: Option<String>,
    stage: Option<String>,
    #[serde(default)]
    position: i64,
    status: Option<String>,
    started_ms: Option<i64>,
    ended_ms: Option<i64>,
    cost: Option<ferry_cost::StageCost>,
    /// The project (its folder's name), for `ferry cost --by project`.
    project: Option<String>,
}

/// `POST costs/stage`: what a stage of a pipeline run cost.
pub async fn stage(
    State(st): State<Shared>,
    Asker(by): Asker,
    Json(b): Json<StageCost>,
) -> ApiResult<Out<Value>> {
    let run_id = b.run_id.ok_or_else(|| ApiError::missing("run_id"))?;
    let stage = b.stage.ok_or_else(|| ApiError::missing("stage"))?;
    let status = b.status.ok_or_else(|| ApiError::missing("status"))?;
    let status = StageStatus::parse(&status)
        .ok_or_else(|| ApiError::invalid(format!("status `{status}` is no stage status")))?;
    let cost = b.cost.ok_or_else(|| ApiError::missing("cost"))?;
    if ![cost.charged, cost.used, cost.requested.unwrap_or(0.0)]
        .iter()
        .all(|x| x.is_finite() && *x >= 0.0)
    {
        return Err(ApiError::invalid(
            "cost: charged, requested and used are amounts of 0 or more",
        ));
    }
    if stage.is_empty() || stage.len() > 256 {
        return Err(ApiError::invalid("stage: 1 to 256 characters"));
    }
    let project = checked_project(b.project)?;
    ensure_run(&st, &run_id, &project, &by.source).await?;
    let rec = StageRecord {
        position: b.position,
        started_ms: b.started_ms,
        ended_ms: b.ended_ms,
        cost: Some(cost),
        ..StageRecord::new(&stage, status, "recorded through the server".into())
    };
    st.store.record_stage(&run_id, &rec).await?;
    Ok(Out(json!({})))
}

/// A project's name as a client gives it (`remote` when it gives none).
fn checked_project(p: Option<String>) -> ApiResult<String> {
    let project = p.unwrap_or_else(|| "remote".into());
    if !ferry_cost::budget::valid_name(&project) {
        return Err(ApiError::invalid(format!(
            "project `{project}`: letters, digits, `.`, `_` and `-`, at most 64"
        )));
    }
    Ok(project)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finish {
    run_id: Option<String>,
    status: Option<String>,
    /// The run's project, for a run none of whose stages was priced (a
    /// no-op run): its row and owner are made here.
    project: Option<String>,
}

/// `POST costs/finish`: a pipeline run ended; its hold on the budgets goes
/// and the alerts they now owe are posted to their webhooks (and answered,
/// without the webhooks).
pub async fn finish(State(st): State<Shared>, Json(b): Json<Finish>) -> ApiResult<Out<Value>> {
    let run_id = b.run_id.ok_or_else(|| ApiError::missing("run_id"))?;
    let status = b.status.ok_or_else(|| ApiError::missing("status"))?;
    let status = RunStatus::parse(&status)
        .ok_or_else(|| ApiError::invalid(format!("status `{status}` is no run status")))?;
    pipeline_of(&st, &run_id).await?;
    let known = match st.store.get_run(&run_id).await {
        Ok(_) => true,
        Err(Error::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    // No stage of it was priced (a run with nothing to do): it is the
    // server's run all the same, its pipeline owned by its workspace.
    let project = b.project.map(|p| checked_project(Some(p))).transpose()?;
    if known || project.is_some() {
        if let Some(project) = &project {
            ensure_run(&st, &run_id, project, "server").await?;
        }
        st.store
            .finish_run(&run_id, status, crate::now_ms(), None)
            .await?;
    }
    let alerts = st.store.release_budget(&run_id, crate::now_ms()).await?;
    send(&st, &alerts).await;
    Ok(Out(json!({ "alerts": alerts })))
}

/// Whether the server may post to `url` (its host is one the operator
/// allowed).
fn allowed(st: &AppState, url: &str) -> bool {
    ferry_cost::budget::webhook_host(url)
        .is_some_and(|h| st.webhook_hosts.iter().any(|a| a.eq_ignore_ascii_case(&h)))
}

/// Posts each alert to its budget's webhook, off the request's thread,
/// when its host is allowed; a webhook that fails is logged.
async fn send(st: &AppState, alerts: &[Alert]) {
    let posts: Vec<(String, Value)> = alerts
        .iter()
        .filter_map(|a| Some((a.webhook.clone()?, a.payload())))
        .filter(|(url, body)| {
            let ok = allowed(st, url);
            if !ok {
                tracing::warn!(budget = %body["budget"], "not posting a budget alert: its webhook's host is not allowed (ferry server --webhook-host)");
            }
            ok
        })
        .collect();
    if posts.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for (url, body) in posts {
            if let Err(e) = ferry_client::post_webhook(&url, &body) {
                tracing::warn!(budget = %body["budget"], "cannot post a budget alert: {e}");
            }
        }
    })
    .await;
}

#[derive(Deserialize)]
pub struct RunQuery {
    run_id: Option<String>,
    stage: Option<String>,
}

/// `GET budgets/covers?run_id=R`: whether a budget covers the run's
/// pipeline (what `ferry run` asks before it estimates anything).
pub async fn covers(State(st): State<Shared>, Query(q): Query<RunQuery>) -> ApiResult<Out<Value>> {
    let run_id = q.run_id.ok_or_else(|| ApiError::missing("run_id"))?;
    let (pipeline, workspace) = pipeline_of(&st, &run_id).await?;
    let covered = st.store.has_budget(&pipeline, &workspace).await?;
    Ok(Out(json!({ "covered": covered })))
}

/// `GET costs/recent?run_id=R&stage=S`: what the stage cost in the
/// pipeline's recent runs, newest first (an estimate's history).
pub async fn recent(State(st): State<Shared>, Query(q): Query<RunQuery>) -> ApiResult<Out<Value>> {
    let run_id = q.run_id.ok_or_else(|| ApiError::missing("run_id"))?;
    let stage = q.stage.ok_or_else(|| ApiError::missing("stage"))?;
    let (pipeline, _) = pipeline_of(&st, &run_id).await?;
    let costs = st
        .store
        .recent_stage_costs(&pipeline, &stage, ferry_cost::budget::HISTORY_RUNS)
        .await?;
    Ok(Out(json!({ "costs": costs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    run_id: Option<String>,
    estimate_usd: Option<f64>,
    /// The project (its folder's name).
    project: Option<String>,
}

/// `POST budgets/hold`: holds a run's estimate against its budgets, or
/// answers why they cannot cover it (`held: false`).
pub async fn hold(State(st): State<Shared>, Json(b): Json<HoldBody>) -> ApiResult<Out<Value>> {
    held(&st, b, false).await
}

/// `POST budgets/override`: [`hold`], even over the budgets: a
/// maintainer's, with a reason (the `X-Ferry-Reason` header), which the
/// gate audits with who asked.
pub async fn over(
    State(st): State<Shared>,
    headers: axum::http::HeaderMap,
    Json(b): Json<HoldBody>,
) -> ApiResult<Out<Value>> {
    if crate::auth::reason_of(&headers).is_none() {
        return Err(ApiError::invalid(format!(
            "letting a run over its budgets needs a reason (the {} header; `ferry run --over-budget REASON`)",
            ferry_metadata::REASON_HEADER
        )));
    }
    held(&st, b, true).await
}

async fn held(st: &AppState, b: HoldBody, over: bool) -> ApiResult<Out<Value>> {
    let run_id = b.run_id.ok_or_else(|| ApiError::missing("run_id"))?;
    let estimate = b
        .estimate_usd
        .ok_or_else(|| ApiError::missing("estimate_usd"))?;
    if !(estimate.is_finite() && estimate >= 0.0) {
        return Err(ApiError::invalid("estimate_usd: an amount of 0 or more"));
    }
    let project = checked_project(b.project)?;
    let (pipeline, workspace) = ensure_run(st, &run_id, &project, "server").await?;
    let h = st
        .store
        .hold_budget(&Hold {
            run_id: run_id.clone(),
            pipeline,
            workspace,
            estimate_usd: estimate,
            over,
            now_ms: crate::now_ms(),
        })
        .await?;
    Ok(Out(json!({
        "held": h.held,
        "short": h.short,
        "standings": h.standings.iter().map(standing_view).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    target: Option<String>,
    monthly_usd: Option<f64>,
    alerts: Option<Vec<u32>>,
    webhook: Option<String>,
}

/// `POST budgets/set`: sets a budget (a server admin's).
pub async fn set(
    State(st): State<Shared>,
    Asker(by): Asker,
    Json(b): Json<SetBudget>,
) -> ApiResult<Out<Value>> {
    let target = b.target.ok_or_else(|| ApiError::missing("target"))?;
    let scope = Scope::parse(&target).map_err(ApiError::invalid)?;
    let monthly = b
        .monthly_usd
        .ok_or_else(|| ApiError::missing("monthly_usd"))?;
    let mut alerts = b.alerts.unwrap_or_else(|| DEFAULT_ALERTS.to_vec());
    if alerts.iter().any(|a| *a == 0 || *a > 1000) {
        return Err(ApiError::invalid("alerts: percentages from 1 to 1000"));
    }
    alerts.sort_unstable();
    alerts.dedup();
    if let Some(w) = &b.webhook {
        check_webhook(w).map_err(ApiError::invalid)?;
        if !allowed(&st, w) {
            return Err(ApiError::invalid(format!(
                "webhook: this server posts alerts only to the hosts its operator allows \
                 (`ferry server --webhook-host HOST`; allowed: {})",
                if st.webhook_hosts.is_empty() {
                    "none".to_owned()
                } else {
                    st.webhook_hosts.join(", ")
                }
            )));
        }
    }
    let budget = Budget {
        scope: scope.clone(),
        monthly_usd: monthly,
        alerts,
        webhook: b.webhook,
    };
    st.store.set_budget(&budget, crate::now_ms()).await?;
    audit(
        &st,
        by,
        "budget.set",
        &scope,
        Some(ferry_cost::money(monthly)),
    )
    .await?;
    Ok(Out(json!({ "budget": scope.to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveBudget {
    target: Option<String>,
}

/// `POST budgets/remove`: removes a budget (a server admin's).
pub async fn remove(
    State(st): State<Shared>,
    Asker(by): Asker,
    Json(b): Json<RemoveBudget>,
) -> ApiResult<Out<Value>> {
    let target = b.target.ok_or_else(|| ApiError::missing("target"))?;
    let scope = Scope::parse(&target).map_err(ApiError::invalid)?;
    if !st.store.remove_budget(&scope).await? {
        return Err(ApiError::not_found(format!("no budget {scope}")));
    }
    audit(&st, by, "budget.remove", &scope, None).await?;
    Ok(Out(json!({})))
}

async fn audit(
    st: &AppState,
    by: ferry_rollout::rollout::By,
    action: &str,
    scope: &Scope,
    reason: Option<String>,
) -> ApiResult<()> {
    let e = ferry_auth::audit::Event {
        time_ms: crate::now_ms(),
        actor: by.actor,
        token_id: by.token_id,
        action: action.into(),
        resource: scope.to_string(),
        outcome: "allowed".into(),
        source: by.source,
        reason,
    };
    st.store.append_audit(&e).await?;
    Ok(())
}

/// `GET budgets/list`: every budget and where it stands this month.
/// A caller who is not a server admin sees their own workspaces' budgets
/// (a pipeline's by its owner's workspace).
pub async fn list(
    State(st): State<Shared>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
) -> ApiResult<Out<Value>> {
    let seen = match &caller {
        Some(c) => c.workspaces(st.store.as_ref()).await?,
        None => None,
    };
    let owners = st.store.pipeline_owners().await?;
    let all: Vec<Value> = st
        .store
        .budgets(crate::now_ms())
        .await?
        .iter()
        .filter(|b| {
            let ws = match &b.budget.scope {
                Scope::Workspace(w) => w.as_str(),
                Scope::Pipeline(p) => owners
                    .get(p)
                    .map_or(ferry_metadata::DEFAULT_WORKSPACE, |o| o.workspace.as_str()),
            };
            seen.as_ref().is_none_or(|s| s.contains(ws))
        })
        .map(standing_view)
        .collect();
    Ok(Out(json!({ "budgets": all })))
}

#[derive(Deserialize)]
pub struct Report {
    by: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    utc_offset_minutes: Option<i32>,
}

/// `GET costs/report?by=&since_ms=&until_ms=&utc_offset_minutes=`: what
/// `ferry cost` shows, summed here.
///
/// A caller who is not a server admin gets the figures of their own
/// workspaces only, as the dashboard shows them.
pub async fn report(
    State(st): State<Shared>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Query(q): Query<Report>,
) -> ApiResult<Out<Value>> {
    let seen = match &caller {
        Some(c) => c.workspaces(st.store.as_ref()).await?,
        None => None,
    };
    let sees = |ws: &str| seen.as_ref().is_none_or(|s| s.contains(ws));
    let since = q.since_ms.ok_or_else(|| ApiError::missing("since_ms"))?;
    let until = q.until_ms.unwrap_or_else(|| crate::now_ms() + 1);
    let offset = q.utc_offset_minutes.unwrap_or(0);
    if until <= since || !(-14 * 60..=14 * 60).contains(&offset) {
        return Err(ApiError::invalid(
            "until_ms must be after since_ms, utc_offset_minutes within ±14 h",
        ));
    }
    let by = q.by.as_deref().unwrap_or("pipeline");
    let grouping = Grouping::parse(by).ok_or_else(|| {
        ApiError::invalid(format!("by `{by}`: one of {}", Grouping::NAMES.join(", ")))
    })?;
    if grouping == Grouping::Model {
        let mut versions = Vec::new();
        for v in st.store.version_costs(since, until).await? {
            let ws = st
                .store
                .workspace_of(ferry_auth::ResourceType::RegisteredModel, &v.model)
                .await?;
            if sees(&ws) {
                versions.push(v);
            }
        }
        return Ok(Out(json!({ "versions": versions })));
    }
    if grouping == Grouping::Storage {
        // The server's registry, at the default machine class's storage
        // price (a client's caches are its own: `ferry cost --by storage`
        // there).
        let gib_month = ferry_cost::Prices::shipped()
            .get(ferry_cost::prices::DEFAULT_MACHINE)
            .map_or(0.0, |t| t.storage_gib_month);
        let stored: Vec<_> = st
            .store
            .registry_storage()
            .await?
            .into_iter()
            .filter(|s| sees(&s.workspace))
            .map(|s| s.priced(gib_month))
            .collect();
        return Ok(Out(json!({ "storage": stored })));
    }
    let sums = st.store.stage_costs(since, until, offset).await?;
    let owners = st.store.pipeline_owners().await?;
    let sums = Grouping::visible(sums, &owners, sees);
    Ok(Out(json!({ "lines": grouping.lines(sums, &owners) })))
}
