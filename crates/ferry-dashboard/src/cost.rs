//! `/ui/cost`: what `ferry cost` reports, for the viewer's workspaces: the
//! spend by team, project, pipeline, stage, day, month or model version
//! over a window, each day's spend on a chart, and the budgets.

use crate::pages::{Page, render};
use crate::svg::{self, Series};
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{Query, State};
use ferry_cost::ledger::By;
use ferry_metadata::Grouping;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// What the page's form sends.
#[derive(Debug, Default, Deserialize, Serialize)]
pub(crate) struct CostQuery {
    /// team (nothing), project, pipeline, stage, day, month or model.
    by: Option<String>,
    /// `7d`, `30d` (nothing) or `90d`.
    since: Option<String>,
}

/// The groupings the page offers (storage is a machine's: `ferry cost`).
const BY: [&str; 7] = [
    "team", "project", "pipeline", "stage", "day", "month", "model",
];

pub(crate) async fn cost(
    State(dash): State<Dash>,
    viewer: Viewer,
    Query(q): Query<CostQuery>,
) -> Page {
    let by = q.by.as_deref().filter(|b| !b.is_empty()).unwrap_or("team");
    let grouping = Grouping::parse(by)
        .filter(|_| BY.contains(&by))
        .ok_or_else(|| DashError::BadRequest(format!("by `{by}`: one of {}", BY.join(", "))))?;
    let since = q
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("30d");
    let days: i64 = match since {
        "7d" => 7,
        "30d" => 30,
        "90d" => 90,
        other => {
            return Err(DashError::BadRequest(format!(
                "since `{other}`: one of 7d, 30d, 90d"
            )));
        }
    };
    let now = ferry_core::now_ms();
    // Whole UTC days, today's included.
    let from = (now.div_euclid(DAY_MS) - days + 1) * DAY_MS;
    let owners = dash.store.pipeline_owners().await?;
    let sums = Grouping::visible(
        dash.store.stage_costs(from, now + 1, 0).await?,
        &owners,
        |w| viewer.sees(w),
    );
    let daily = Grouping::Ledger(By::Day).lines(sums.clone(), &owners);
    let total: f64 = daily.iter().map(|l| l.cost_usd).sum();
    let chart = svg::lines(
        &[Series {
            name: "spend, USD".into(),
            points: daily
                .iter()
                .filter_map(|l| Some((day_number(&l.key)? - now.div_euclid(DAY_MS), l.cost_usd)))
                .map(|(d, c)| (d as f64, c))
                .collect(),
        }],
        "days from today (UTC)",
    );
    let mut versions = Vec::new();
    if grouping == Grouping::Model {
        for v in dash.store.version_costs(from, now + 1).await? {
            if crate::models::visible(&dash, &viewer, &v.model).await? {
                versions.push(v);
            }
        }
    }
    let lines = grouping.lines(sums, &owners);
    render(
        &dash,
        &viewer,
        "cost.html",
        context! {
            page => "cost",
            by => by,
            bys => BY,
            since => since,
            total => total,
            chart => Value::from_safe_string(chart),
            lines => Value::from_serialize(&lines),
            versions => Value::from_serialize(&versions),
            budgets => crate::pages::budget_lines(&dash, &viewer, &owners, now).await?,
        },
    )
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn day_number(key: &str) -> Option<i64> {
    let mut p = key.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, d) = (p.next()??, p.next()??, p.next()??);
    Some(ferry_core::days_from_civil(
        y,
        u32::try_from(m).ok()?,
        u32::try_from(d).ok()?,
    ))
}
