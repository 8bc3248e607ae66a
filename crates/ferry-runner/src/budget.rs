//! A run's budget, before its stages start and after it ends. When a
//! budget covers the pipeline (its own, or its workspace's), the stages
//! that will run are predicted as `ferry status` predicts them, each
//! estimated from its recent costs (or its `max_cost:`, or its
//! `resources:` for its `timeout:`), and the estimate is held against the
//! budgets in the store until the run ends. A run the budgets cannot cover
//! is refused unless a budget holder lets it over, with a reason that is
//! audited. A run with no budget over it pays one store read.

use crate::engine::Engine;
use crate::record::{Recorder, Started};
use crate::report::{Action, Event, Reporter};
use crate::{Error, Project, Result};
use ferry_cost::budget::{Estimate, estimate_stage, explain};
use ferry_cost::money;
use ferry_metadata::{Alert, Held, Hold};
use ferry_spec::Stage;

/// What the budgets said of a run that may go on.
#[derive(Debug, Clone)]
pub struct BudgetCheck {
    pub estimate: Estimate,
    pub held: Held,
}

/// Estimates the run and holds the estimate against its budgets; `Ok(None)`
/// when no budget covers it or nothing will run. `over`: a budget holder's
/// reason to let the run over its budgets.
pub(crate) fn hold(
    project: &Project,
    engine: &mut Engine<'_>,
    stages: &[&Stage],
    force: bool,
    recorder: &dyn Recorder,
    started: &Started,
    over: Option<&str>,
) -> Result<Option<BudgetCheck>> {
    let p = &project.pipeline;
    if !recorder.has_budget(started, &p.name, &p.workspace)? {
        return Ok(None);
    }
    let running: Vec<&Stage> = if force {
        stages.to_vec()
    } else {
        let predicted = crate::run::predict(engine, stages)?;
        stages
            .iter()
            .zip(&predicted)
            .filter(|(_, r)| r.action == Action::Run)
            .map(|(s, _)| *s)
            .collect()
    };
    if running.is_empty() {
        return Ok(None);
    }
    let mut estimate = Estimate::default();
    for s in running {
        let history = recorder.recent_stage_costs(started, &p.name, s.name.as_str())?;
        let declared = match (&s.resources, s.timeout) {
            (Some(r), Some(t)) => ferry_cost::hourly_rate(&p.cost.prices, &p.cost.machine, r)
                .ok()
                .map(|rate| (rate, t.as_secs_f64() / 3600.0)),
            _ => None,
        };
        estimate.stages.push(estimate_stage(
            s.name.as_str(),
            &history,
            s.max_cost,
            declared,
        ));
    }
    let mut hold = Hold {
        run_id: started.run_id.clone(),
        pipeline: p.name.clone(),
        workspace: p.workspace.clone(),
        estimate_usd: estimate.usd(),
        over: false,
        now_ms: ferry_core::now_ms(),
    };
    let mut held = recorder.hold_budget(&hold, None)?;
    // Let over only where it is needed (a holder's call, audited).
    if !held.held && over.is_some() {
        hold.over = true;
        held = recorder.hold_budget(&hold, over)?;
    }
    if !held.held {
        return Err(Error::OverBudget(refusal(&held, &estimate)));
    }
    Ok(Some(BudgetCheck { estimate, held }))
}

/// Why a run was refused: each budget short of its estimate, what it has
/// spent and holds, the estimate and how it was made, and the way over.
fn refusal(held: &Held, estimate: &Estimate) -> String {
    let mut out = String::new();
    for s in held
        .standings
        .iter()
        .filter(|s| held.short.contains(&s.budget.scope))
    {
        out.push_str(&format!(
            "budget {} ({} a month) has {} left in {}: {} spent, {} held by running runs; this run is estimated at {}\n",
            s.budget.scope,
            money(s.budget.monthly_usd),
            money(s.left_usd().max(0.0)),
            s.period,
            money(s.spent_usd),
            money(s.reserved_usd),
            money(estimate.usd()),
        ));
    }
    out.push_str(&format!("estimate: {}\n", explain(estimate)));
    out.push_str(
        "hint: a budget holder can let it run with `ferry run --over-budget REASON` (audited), or raise the budget with `ferry budget set`",
    );
    out
}

/// Tells of the alerts a run's end owes and posts each to its budget's
/// webhook; a webhook that fails is said, and the run goes on.
pub(crate) fn send_alerts(alerts: &[Alert], reporter: &dyn Reporter) {
    for a in alerts {
        let delivered = a
            .webhook
            .as_deref()
            .map(|url| ferry_client::post_webhook(url, &a.payload()));
        reporter.event(Event::BudgetAlert {
            alert: a,
            delivered: delivered
                .as_ref()
                .map(|r| r.as_ref().map(|_| ()).map_err(String::as_str)),
        });
    }
}
