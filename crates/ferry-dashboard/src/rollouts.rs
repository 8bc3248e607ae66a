//! Rollouts: a canary's or shadow's steps and weights, each criterion's
//! value against its limit (as a gateway judges the current step, live,
//! and as it stood at each decision), and the decisions over time. The
//! page's live part is its own address, which the page's script fetches
//! again every two seconds while the rollout is under way.

use crate::pages::{Page, render};
use crate::svg::{self, Series};
use crate::view::Viewer;
use crate::{Dash, DashError, live};
use axum::extract::{Path, State};
use ferry_metadata::{Deployment, DeploymentEvent};
use minijinja::{Value, context};
use serde::Serialize;

/// `/ui/rollouts`: those under way, then the last 100 ended, of the models
/// the viewer may see.
pub(crate) async fn rollouts(State(dash): State<Dash>, viewer: Viewer) -> Page {
    let mut shown = Vec::new();
    for d in dash.store.list_deployments(None, false).await? {
        if shown.len() >= 100 {
            break;
        }
        if crate::models::visible(&dash, &viewer, &d.model).await? {
            shown.push(d);
        }
    }
    shown.sort_by_key(|d| (!d.active, std::cmp::Reverse(d.created_ms)));
    render(
        &dash,
        &viewer,
        "rollouts.html",
        context! { page => "rollouts", rollouts => Value::from_serialize(&shown) },
    )
}

/// One criterion as shown: its value against its limit.
#[derive(Debug, Serialize)]
struct Check {
    name: String,
    value: Option<f64>,
    limit: Option<f64>,
    /// `passed`, `failed` or `waiting` (not enough data yet).
    outcome: &'static str,
}

/// The checks of a verdict (`{"verdict": ..., "checks": [...]}`).
fn checks(verdict: &serde_json::Value) -> Vec<Check> {
    verdict
        .get("checks")
        .and_then(|c| c.as_array())
        .map(|cs| {
            cs.iter()
                .map(|c| Check {
                    name: c["name"].as_str().unwrap_or_default().to_owned(),
                    value: c["value"].as_f64(),
                    limit: c["limit"].as_f64(),
                    outcome: match c["passed"].as_bool() {
                        Some(true) => "passed",
                        Some(false) => "failed",
                        None => "waiting",
                    },
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn find(dash: &Dash, viewer: &Viewer, id: &str) -> Result<Deployment, DashError> {
    let d = dash.store.get_deployment(id).await?;
    match d {
        Some(d) if crate::models::visible(dash, viewer, &d.model).await? => Ok(d),
        _ => Err(DashError::NotFound(format!("no rollout `{id}`"))),
    }
}

/// What the live part shows: the state, the current step as judged, the
/// decisions and the weight over time.
async fn live_context(dash: &Dash, d: &Deployment) -> Result<Value, DashError> {
    let now = ferry_core::now_ms();
    let events: Vec<DeploymentEvent> = dash.store.deployment_events(&d.id).await?;
    let gateways = dash.store.list_gateways().await?;
    // A judgement of an earlier step (the next tick judges this one) is
    // not shown as this step's.
    let judged = if d.active {
        live::analysis(&gateways, &d.id, now).filter(|a| a.at_ms >= d.step_started_ms)
    } else {
        None
    };
    let judged_ctx = judged.as_ref().map(|a| {
        context! {
            at_ms => a.at_ms,
            verdict => a.detail["verdict"]["verdict"].as_str(),
            reason => a.detail["verdict"]["reason"].as_str(),
            checks => Value::from_serialize(checks(&a.detail["verdict"])),
            candidate_requests => a.detail["candidate"]["requests"].as_u64(),
            stable_requests => a.detail["stable"]["requests"].as_u64(),
        }
    });
    let decisions: Vec<Value> = events
        .iter()
        .rev()
        .map(|e| {
            context! {
                at_ms => e.at_ms,
                kind => e.kind,
                step => e.step + 1,
                weight => e.weight,
                reason => e.reason,
                checks => Value::from_serialize(checks(&e.detail["verdict"])),
            }
        })
        .collect();
    // The weight over time, as steps: each decision holds until the next.
    let start = d.created_ms;
    let mut points = Vec::new();
    for e in &events {
        let t = (e.at_ms - start) as f64 / 1000.0;
        if let Some(&(_, w)) = points.last() {
            points.push((t, w));
        }
        points.push((t, e.weight as f64));
    }
    if d.active
        && let Some(&(_, w)) = points.last()
    {
        points.push(((now - start) as f64 / 1000.0, w));
    }
    let chart = (points.len() > 1).then(|| {
        svg::lines_within(
            &[Series {
                name: "candidate's weight (%)".into(),
                points,
            }],
            "seconds since the rollout started",
            Some((0.0, 100.0)),
        )
    });
    let steps: Vec<i64> = d
        .spec
        .get("steps")
        .and_then(|s| s.as_array())
        .map(|s| s.iter().filter_map(|x| x.as_i64()).collect())
        .unwrap_or_default();
    Ok(context! {
        d => Value::from_serialize(d),
        steps => steps,
        judged => judged_ctx,
        decisions => decisions,
        chart => chart.map(Value::from_safe_string),
        gateways_live => gateways.iter().filter(|g| g.live(now)).count(),
    })
}

/// `/ui/rollouts/{id}`: a rollout, its plan and criteria, and its live part.
pub(crate) async fn rollout(
    State(dash): State<Dash>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Page {
    let d = find(&dash, &viewer, &id).await?;
    let criteria: Vec<(String, serde_json::Value)> = d
        .spec
        .get("criteria")
        .and_then(|c| c.as_object())
        .map(|c| {
            c.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let live = live_context(&dash, &d).await?;
    render(
        &dash,
        &viewer,
        "rollout.html",
        context! {
            page => "rollouts",
            spec => Value::from_serialize(&d.spec),
            criteria => Value::from_serialize(&criteria),
            ..live
        },
    )
}

/// `/ui/rollouts/{id}/live`: the live part alone, for the page's script.
pub(crate) async fn rollout_live(
    State(dash): State<Dash>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Page {
    let d = find(&dash, &viewer, &id).await?;
    let live = live_context(&dash, &d).await?;
    render(&dash, &viewer, "rollout_live.html", live)
}
