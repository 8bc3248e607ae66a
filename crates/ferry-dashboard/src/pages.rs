//! The pages: each reads the store for what the viewer may see, then
//! renders its template. Values reach templates as serde values and are
//! escaped there; the only markup a page passes unescaped is the SVG that
//! [`crate::svg`] drew (its own texts escaped).

use crate::svg::{self, Bar};
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{Path, Query, State};
use axum::response::Html;
use ferry_metadata::{PipelineHealth, RunOrder, RunPage, RunSummary};
use minijinja::{Environment, Value, context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) type Page = Result<Html<String>, DashError>;

const DAY_MS: i64 = 86_400_000;

/// Every template, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("pairs.html", include_str!("../templates/pairs.html")),
    ("compare.html", include_str!("../templates/compare.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("models.html", include_str!("../templates/models.html")),
    ("model.html", include_str!("../templates/model.html")),
    ("version.html", include_str!("../templates/version.html")),
    ("request.html", include_str!("../templates/request.html")),
    (
        "request_form.html",
        include_str!("../templates/request_form.html"),
    ),
    (
        "monitoring.html",
        include_str!("../templates/monitoring.html"),
    ),
    (
        "monitoring_model.html",
        include_str!("../templates/monitoring_model.html"),
    ),
    (
        "drift_status.html",
        include_str!("../templates/drift_status.html"),
    ),
    ("budgets.html", include_str!("../templates/budgets.html")),
    ("cost.html", include_str!("../templates/cost.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("rollouts.html", include_str!("../templates/rollouts.html")),
    ("rollout.html", include_str!("../templates/rollout.html")),
    (
        "rollout_live.html",
        include_str!("../templates/rollout_live.html"),
    ),
];

/// The templates, with HTML escaping on (for `.html`).
pub(crate) fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for &(name, text) in TEMPLATES {
        // A template that does not parse is a bug caught by every test.
        if let Err(e) = env.add_template(name, text) {
            tracing::error!("dashboard template {name}: {e}");
        }
    }
    env.add_filter("when", when);
    env.add_filter("duration", |ms: Option<i64>| {
        ms.map_or("-".to_owned(), duration)
    });
    env.add_filter("money", |usd: f64| ferry_cost::money(usd));
    env.add_filter("percent", |part: i64, whole: i64| {
        if whole == 0 {
            "-".to_owned()
        } else {
            format!("{:.0}%", 100.0 * part as f64 / whole as f64)
        }
    });
    env.add_filter("short", |s: String, n: usize| {
        s.chars().take(n).collect::<String>()
    });
    env
}

/// A time as `<time>`: UTC here, the viewer's zone once the page's script
/// runs.
fn when(ms: Option<i64>) -> Value {
    let Some(ms) = ms else {
        return Value::from("-");
    };
    let (y, mo, d) = ferry_core::civil_from_days(ms.div_euclid(DAY_MS));
    let in_day = ms.rem_euclid(DAY_MS) / 1000;
    let text = format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02} UTC",
        in_day / 3600,
        in_day % 3600 / 60
    );
    Value::from_safe_string(format!(
        "<time datetime=\"{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z\" data-ms=\"{ms}\">{text}</time>",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    ))
}

/// A duration as a person reads it: `850ms`, `2.4s`, `3m 05s`, `2h 10m`.
pub(crate) fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

/// Page `name` for `viewer`: the navigation offers the audit log only to
/// those who may read it.
pub(crate) fn render(dash: &Dash, viewer: &Viewer, name: &str, ctx: Value) -> Page {
    let ctx = context! { auditor => *viewer == Viewer::All, ..ctx };
    Ok(Html(dash.templates.get_template(name)?.render(ctx)?))
}

/// A pipeline's line on the overview.
#[derive(Serialize)]
struct HealthLine {
    #[serde(flatten)]
    h: PipelineHealth,
    /// `faster`, `slower` or `steady`: this week's median against last week's.
    trend: &'static str,
}

fn trend(h: &PipelineHealth) -> &'static str {
    match (h.median_ms_7d, h.median_ms_prev_7d) {
        (Some(now), Some(before)) if now * 10 > before * 11 => "slower",
        (Some(now), Some(before)) if now * 10 < before * 9 => "faster",
        _ => "steady",
    }
}

/// This month's budgets the viewer may see, with what was spent and held.
pub(crate) async fn budget_lines(
    dash: &Dash,
    viewer: &Viewer,
    owners: &BTreeMap<String, ferry_metadata::Owner>,
    now: i64,
) -> Result<Vec<Value>, DashError> {
    Ok(dash
        .store
        .budgets(now)
        .await?
        .into_iter()
        .filter(|s| match &s.budget.scope {
            ferry_cost::budget::Scope::Workspace(w) => viewer.sees(w),
            ferry_cost::budget::Scope::Pipeline(p) => viewer.sees(
                owners
                    .get(p)
                    .map_or(ferry_metadata::DEFAULT_WORKSPACE, |o| &o.workspace),
            ),
        })
        .map(|s| {
            let used = if s.budget.monthly_usd > 0.0 {
                (100.0 * s.spent_usd / s.budget.monthly_usd).round() as i64
            } else {
                0
            };
            context! {
                budget => s.budget.scope.to_string(),
                monthly_usd => s.budget.monthly_usd,
                spent_usd => s.spent_usd,
                held_usd => s.reserved_usd,
                period => s.period,
                used_percent => used,
            }
        })
        .collect())
}

/// `/`: each workspace's pipelines, models in production, rollouts under
/// way and budgets.
pub(crate) async fn overview(State(dash): State<Dash>, viewer: Viewer) -> Page {
    let now = ferry_core::now_ms();
    let filter = viewer.filter();
    let health = dash.store.pipeline_health(now, filter.as_deref()).await?;
    let mut teams: BTreeMap<String, Vec<HealthLine>> = BTreeMap::new();
    for h in health {
        teams
            .entry(h.workspace.clone())
            .or_default()
            .push(HealthLine {
                trend: trend(&h),
                h,
            });
    }
    let serving = crate::live::by_version(&dash.store.list_gateways().await?, now);
    let mut production = Vec::new();
    let mut in_production = Vec::new();
    let models = dash.store.list_models().await?;
    for m in &models {
        if crate::models::visible(&dash, &viewer, &m.name).await?
            && let Some((_, v)) = m.aliases.iter().find(|(a, _)| a == "production")
        {
            in_production.push((m.name.clone(), *v));
        }
    }
    // Each model's drift, measured together, for a moment at most.
    let drifts = futures_util::future::join_all(in_production.iter().map(|(m, _)| {
        crate::monitoring::latest(&dash, &models, m, std::time::Duration::from_millis(50))
    }))
    .await;
    for ((model, v), drift) in in_production.into_iter().zip(drifts) {
        let f = serving.get(&(model.clone(), v));
        production.push(context! {
            model => model,
            version => v,
            live => f.map(Value::from_serialize),
            error_rate => f.and_then(|f| f.error_rate()),
            accuracy => f.and_then(|f| f.accuracy()),
            drift => Value::from_serialize(&drift),
        });
    }
    let mut rollouts = Vec::new();
    for d in dash.store.list_deployments(None, true).await? {
        if crate::models::visible(&dash, &viewer, &d.model).await? {
            rollouts.push(d);
        }
    }
    let budgets = budget_lines(&dash, &viewer, &dash.store.pipeline_owners().await?, now).await?;
    render(
        &dash,
        &viewer,
        "overview.html",
        context! {
            page => "overview",
            teams => Value::from_serialize(&teams),
            production => production,
            rollouts => Value::from_serialize(&rollouts),
            budgets => budgets,
        },
    )
}

/// The runs page's filters, as its form sends them.
#[derive(Debug, Default, Deserialize, Serialize)]
pub(crate) struct RunsQuery {
    pipeline: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    commit: Option<String>,
    /// Who started the run.
    author: Option<String>,
    /// MLflow's search grammar: `metrics.acc > 0.9 and params.lr = '0.01'`.
    q: Option<String>,
    /// `7d`, `30d`, `90d`, or nothing (all).
    since: Option<String>,
    /// `newest` (nothing), `oldest` or `slowest`.
    order: Option<String>,
    /// The cursor: `KEY.RUN_ID` of the last run of the page before (its
    /// start, or its duration in `slowest` order).
    before: Option<String>,
}

impl RunsQuery {
    /// This page's link with `before` as its cursor.
    fn after(&self, cursor: &str) -> String {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("pipeline", &self.pipeline),
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("commit", &self.commit),
            ("author", &self.author),
            ("q", &self.q),
            ("since", &self.since),
            ("order", &self.order),
        ] {
            if let Some(v) = nonempty(v) {
                url.append_pair(k, &v);
            }
        }
        url.append_pair("before", cursor);
        format!("/ui/runs?{}", url.finish())
    }
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

const PAGE: i64 = 100;

/// `/ui/runs`: pipeline runs, newest first, filtered, a hundred a page.
pub(crate) async fn runs(
    State(dash): State<Dash>,
    viewer: Viewer,
    Query(q): Query<RunsQuery>,
) -> Page {
    let order = match nonempty(&q.order) {
        None => RunOrder::Newest,
        Some(o) => RunOrder::parse(&o).ok_or_else(|| {
            DashError::BadRequest(format!("order `{o}`: one of newest, oldest, slowest"))
        })?,
    };
    let filter = match nonempty(&q.q) {
        None => Vec::new(),
        Some(f) => ferry_search::parse_filter(&f, ferry_search::Grammar::Runs)
            .map_err(|e| DashError::BadRequest(format!("search `{f}`: {}", e.0)))?,
    };
    let before = match nonempty(&q.before) {
        None => None,
        Some(c) => {
            let (ms, id) = c.split_once('.').ok_or_else(|| {
                DashError::BadRequest(format!("before `{c}`: not a cursor this page made"))
            })?;
            let ms = ms.parse::<i64>().map_err(|_| {
                DashError::BadRequest(format!("before `{c}`: not a cursor this page made"))
            })?;
            Some((ms, id.to_owned()))
        }
    };
    let since_ms = match nonempty(&q.since).as_deref() {
        None | Some("all") => None,
        Some(s) => {
            let days: i64 = s
                .strip_suffix('d')
                .and_then(|d| d.parse().ok())
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| {
                    DashError::BadRequest(format!("since `{s}`: a number of days, such as `30d`"))
                })?;
            Some(ferry_core::now_ms() - days * DAY_MS)
        }
    };
    if let Some(c) = nonempty(&q.commit)
        && !c.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(DashError::BadRequest(format!(
            "commit `{c}`: a commit's hex digits, or the first of them"
        )));
    }
    let page = RunPage {
        workspaces: viewer.filter(),
        pipeline: nonempty(&q.pipeline),
        status: nonempty(&q.status),
        trigger: nonempty(&q.trigger),
        commit: nonempty(&q.commit),
        author: nonempty(&q.author),
        filter,
        since_ms,
        order,
        before,
        limit: PAGE + 1,
    };
    let mut runs: Vec<RunSummary> = dash.store.page_runs(&page).await?;
    let more = runs.len() as i64 > PAGE;
    runs.truncate(PAGE as usize);
    let next = more
        .then(|| {
            runs.last()
                .map(|r| q.after(&format!("{}.{}", order.key(r), r.run_id)))
        })
        .flatten();
    let lines: Vec<Value> = runs
        .iter()
        .map(|r| {
            context! {
                run_id => r.run_id,
                pipeline => r.pipeline,
                status => r.status.as_str(),
                trigger => r.trigger,
                started_ms => r.started_ms,
                took_ms => r.ended_ms.map(|e| e - r.started_ms),
                commit => r.git_commit.as_deref().unwrap_or(""),
                noop => r.noop,
                message => r.message,
                author => r.author,
            }
        })
        .collect();
    // The pipelines to filter by: those the viewer's workspaces own.
    let pipelines: Vec<String> = dash
        .store
        .pipeline_owners()
        .await?
        .into_iter()
        .filter(|(_, o)| viewer.sees(&o.workspace))
        .map(|(p, _)| p)
        .collect();
    render(
        &dash,
        &viewer,
        "runs.html",
        context! {
            page => "runs",
            runs => lines,
            q => Value::from_serialize(&q),
            next => next,
            pipelines => pipelines,
            statuses => ["succeeded", "failed", "gate_failed", "cancelled", "crashed", "running"],
        },
    )
}

/// Run `id` (or a unique prefix of it), if the viewer may see its
/// pipeline's workspace; else not found, as one that does not exist.
pub(crate) async fn run_for(
    dash: &Dash,
    viewer: &Viewer,
    id: &str,
) -> Result<ferry_metadata::RunDetail, DashError> {
    let detail = dash.store.get_run(id).await?;
    if let Some(ws) = viewer.filter() {
        let owners = dash.store.pipeline_owners().await?;
        let w = owners
            .get(&detail.run.pipeline)
            .map_or(ferry_metadata::DEFAULT_WORKSPACE, |o| o.workspace.as_str());
        if !ws.iter().any(|v| v == w) {
            return Err(DashError::NotFound(format!("no run `{id}`")));
        }
    }
    Ok(detail)
}

/// `/ui/runs/{id}`: a run, its stages on a timeline with why each ran or
/// was restored, its gates with the values behind them, its params and
/// metrics.
pub(crate) async fn run(State(dash): State<Dash>, viewer: Viewer, Path(id): Path<String>) -> Page {
    let detail = run_for(&dash, &viewer, &id).await?;
    let start = detail.run.started_ms;
    let end = detail
        .stages
        .iter()
        .filter_map(|s| s.ended_ms)
        .chain(detail.run.ended_ms)
        .max()
        .unwrap_or(start);
    let bars: Vec<Bar> = detail
        .stages
        .iter()
        .map(|s| {
            let span = match (s.started_ms, s.ended_ms) {
                (Some(a), Some(b))
                    if s.status.as_str() != "restored" && s.status.as_str() != "up_to_date" =>
                {
                    Some((a - start, b - start))
                }
                _ => None,
            };
            let took = s.wall_ms.map(duration).unwrap_or_default();
            Bar {
                label: s.stage.clone(),
                span,
                status: s.status.as_str().to_owned(),
                title: format!(
                    "{} {}{}",
                    s.stage,
                    s.status.as_str(),
                    if took.is_empty() {
                        String::new()
                    } else {
                        format!(" in {took}")
                    }
                ),
            }
        })
        .collect();
    let timeline = svg::timeline(&bars, end - start);
    let stages: Vec<Value> = detail
        .stages
        .iter()
        .map(|s| {
            context! {
                stage => s.stage,
                status => s.status.as_str(),
                reason => s.reason,
                wall_ms => s.wall_ms,
                cpu_ms => s.user_cpu_ms.zip(s.sys_cpu_ms).map(|(u, k)| u + k),
                max_rss_bytes => s.max_rss_bytes,
                cost_usd => s.cost.as_ref().map(|c| c.charged),
                cost_basis => s.cost.as_ref().map(|c| c.basis.as_str()),
                exit_code => s.exit_code,
            }
        })
        .collect();
    // `None` when no stage was priced (recorded before ferry priced them).
    let cost: Option<f64> = detail
        .stages
        .iter()
        .filter_map(|s| s.cost.as_ref().map(|c| c.charged))
        .fold(None, |sum, c| Some(sum.unwrap_or(0.0) + c));
    let (metrics, charts) =
        crate::compare::metric_views(&[(String::from("this run"), detail.metrics.as_slice())]);
    let reports = crate::checks::reports(&dash, &detail.run.run_id).await?;
    render(
        &dash,
        &viewer,
        "run.html",
        context! {
            page => "runs",
            run => Value::from_serialize(&detail.run),
            status => detail.run.status.as_str(),
            took_ms => detail.run.ended_ms.map(|e| e - start),
            env => detail.env_fingerprint,
            timeline => Value::from_safe_string(timeline),
            stages => stages,
            gates => Value::from_serialize(&detail.gates),
            params => Value::from_serialize(&detail.params),
            metrics => metrics,
            charts => charts,
            cost_usd => cost,
            reports => reports,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_as_people_write_them() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(2_400), "2.4s");
        assert_eq!(duration(185_000), "3m 05s");
        assert_eq!(duration(7_800_000), "2h 10m");
        let t = when(Some(20_790 * DAY_MS + 3_723_000)).to_string();
        assert_eq!(
            t,
            "<time datetime=\"2026-12-03T01:02:03Z\" data-ms=\"1796259723000\">2026-12-03 01:02 UTC</time>"
        );
    }

    #[test]
    fn every_template_parses() {
        let env = templates();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }
}
