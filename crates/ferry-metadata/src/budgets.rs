//! [`CostStore`] over SQL (schema 15): pipelines' owners, budgets, the
//! holds runs take on them and the alerts they sent, and serving usage.
//!
//! A hold is decided and written in one transaction that first bumps the
//! budgets it reads (`touched`): on PostgreSQL that locks their rows, on
//! SQLite the transaction holds the write lock from its start (`BEGIN
//! IMMEDIATE`), so a second run reserving against the same budget waits
//! for the first and then sees its hold. A hold counts while its run is
//! running, for a day at most.

use crate::row::{col_f64, col_i64, col_opt_str, col_str, query_error};
use crate::sql::SqlStore;
use crate::{
    Alert, CostStore, Error, Held, Hold, Owner, Result, ServingUsage, Stored, VersionCost,
};
use ferry_cost::budget::{Budget, Scope, Standing, month_of, reached};
use ferry_cost::ledger::DayRow;
use sqlx::AnyConnection;
use sqlx::any::{Any, AnyRow};
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;
/// A hold lapses after a day even if its run never ended (a client that
/// died recording through a server, whose run nobody marks crashed).
const HOLD_LAPSES_MS: i64 = DAY_MS;

type Tx<'c> = sqlx::Transaction<'c, Any>;

fn budget_of(r: &AnyRow) -> Result<Budget> {
    let scope = col_str(r, "scope");
    let damaged =
        |what: &str| Error::Invalid(format!("damaged budget `{scope}` in the store: {what}"));
    Ok(Budget {
        scope: Scope::parse(&scope).map_err(|e| damaged(&e))?,
        monthly_usd: col_f64(r, "monthly_usd"),
        alerts: serde_json::from_str(&col_str(r, "alerts")).map_err(|e| damaged(&e.to_string()))?,
        webhook: col_opt_str(r, "webhook"),
    })
}

/// The budgets over a run of `pipeline` in `workspace`, bumped so that no
/// other transaction holds against them until this one ends.
async fn claim(tx: &mut Tx<'_>, pipeline: &str, workspace: &str) -> Result<Vec<Budget>> {
    let scopes = [
        Scope::Pipeline(pipeline.to_owned()).to_string(),
        Scope::Workspace(workspace.to_owned()).to_string(),
    ];
    let bumped =
        sqlx::query("UPDATE budgets SET touched = touched + 1 WHERE scope = $1 OR scope = $2")
            .bind(&scopes[0])
            .bind(&scopes[1])
            .execute(&mut **tx)
            .await
            .map_err(query_error("claim the budgets"))?;
    if bumped.rows_affected() == 0 {
        return Ok(vec![]);
    }
    let rows = sqlx::query(
        "SELECT scope, monthly_usd, alerts, webhook FROM budgets WHERE scope = $1 OR scope = $2 ORDER BY scope",
    )
    .bind(&scopes[0])
    .bind(&scopes[1])
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("read the budgets"))?;
    rows.iter().map(budget_of).collect()
}

/// Where `budget` stands in the month of `now_ms`: what the ledger holds of
/// its pipelines this month, and the holds of its runs still running.
async fn standing(ex: &mut AnyConnection, budget: Budget, now_ms: i64) -> Result<Standing> {
    let month = month_of(now_ms);
    let (first, last) = (month.start_ms / DAY_MS, month.end_ms / DAY_MS);
    let (ledger, holds) = match &budget.scope {
        Scope::Pipeline(p) => (
            sqlx::query("SELECT hours FROM cost_ledger WHERE day >= $1 AND day < $2 AND pipeline = $3")
                .bind(first)
                .bind(last)
                .bind(p.clone()),
            sqlx::query(
                "SELECT COALESCE(SUM(h.estimate_usd), 0.0) AS held FROM budget_reservations h \
                 JOIN runs r ON r.run_id = h.run_id WHERE r.status = 'running' AND h.pipeline = $1 \
                 AND h.created_ms > $2",
            )
            .bind(p.clone())
            .bind(now_ms - HOLD_LAPSES_MS),
        ),
        Scope::Workspace(w) => (
            sqlx::query(
                "SELECT l.hours AS hours FROM cost_ledger l JOIN pipelines p ON p.pipeline = l.pipeline \
                 WHERE l.day >= $1 AND l.day < $2 AND p.workspace = $3",
            )
            .bind(first)
            .bind(last)
            .bind(w.clone()),
            sqlx::query(
                "SELECT COALESCE(SUM(h.estimate_usd), 0.0) AS held FROM budget_reservations h \
                 JOIN runs r ON r.run_id = h.run_id WHERE r.status = 'running' AND h.workspace = $1 \
                 AND h.created_ms > $2",
            )
            .bind(w.clone())
            .bind(now_ms - HOLD_LAPSES_MS),
        ),
    };
    let mut spent = 0.0;
    for r in ledger
        .fetch_all(&mut *ex)
        .await
        .map_err(query_error("read the cost ledger"))?
    {
        let row: DayRow = serde_json::from_str(&col_str(&r, "hours"))
            .map_err(|e| Error::Invalid(format!("damaged row in the cost ledger: {e}")))?;
        spent += row.charged.iter().sum::<f64>();
    }
    let held = holds
        .fetch_one(&mut *ex)
        .await
        .map_err(query_error("read the budgets' holds"))?;
    Ok(Standing {
        budget,
        period: month.name,
        spent_usd: spent,
        reserved_usd: col_f64(&held, "held"),
    })
}

#[async_trait::async_trait]
impl CostStore for SqlStore {
    async fn pipeline_owners(&self) -> Result<BTreeMap<String, Owner>> {
        let rows = sqlx::query("SELECT pipeline, workspace, project FROM pipelines")
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read the pipelines' owners"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    col_str(r, "pipeline"),
                    Owner {
                        workspace: col_str(r, "workspace"),
                        project: col_str(r, "project"),
                    },
                )
            })
            .collect())
    }

    async fn set_pipeline_owner(&self, pipeline: &str, owner: &Owner) -> Result<()> {
        sqlx::query(
            "INSERT INTO pipelines (pipeline, workspace, project) VALUES ($1, $2, $3) \
             ON CONFLICT (pipeline) DO UPDATE SET workspace = excluded.workspace, project = excluded.project \
             WHERE pipelines.workspace <> excluded.workspace OR pipelines.project <> excluded.project",
        )
        .bind(pipeline)
        .bind(&owner.workspace)
        .bind(&owner.project)
        .execute(&self.pool)
        .await
        .map_err(query_error("record the pipeline's owner"))?;
        Ok(())
    }

    async fn set_budget(&self, b: &Budget, now_ms: i64) -> Result<()> {
        if !(b.monthly_usd.is_finite() && b.monthly_usd >= 0.0) {
            return Err(Error::Invalid(format!(
                "a budget is an amount of 0 or more, not {}",
                b.monthly_usd
            )));
        }
        let alerts = serde_json::to_string(&b.alerts)
            .map_err(|e| Error::Invalid(format!("cannot write a budget: {e}")))?;
        sqlx::query(
            "INSERT INTO budgets (scope, monthly_usd, alerts, webhook, created_ms, touched) \
             VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (scope) DO UPDATE SET \
             monthly_usd = excluded.monthly_usd, alerts = excluded.alerts, webhook = excluded.webhook",
        )
        .bind(b.scope.to_string())
        .bind(b.monthly_usd)
        .bind(alerts)
        .bind(b.webhook.clone())
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(query_error("set the budget"))?;
        Ok(())
    }

    async fn remove_budget(&self, scope: &Scope) -> Result<bool> {
        let done = sqlx::query("DELETE FROM budgets WHERE scope = $1")
            .bind(scope.to_string())
            .execute(&self.pool)
            .await
            .map_err(query_error("remove the budget"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn has_budget(&self, pipeline: &str, workspace: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM budgets WHERE scope = $1 OR scope = $2 LIMIT 1")
                .bind(Scope::Pipeline(pipeline.to_owned()).to_string())
                .bind(Scope::Workspace(workspace.to_owned()).to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(query_error("read the budgets"))?;
        Ok(row.is_some())
    }

    async fn budgets(&self, now_ms: i64) -> Result<Vec<Standing>> {
        let rows =
            sqlx::query("SELECT scope, monthly_usd, alerts, webhook FROM budgets ORDER BY scope")
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("read the budgets"))?;
        let mut conn = self.pool.acquire().await.map_err(query_error("connect"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(standing(&mut conn, budget_of(r)?, now_ms).await?);
        }
        Ok(out)
    }

    async fn hold_budget(&self, h: &Hold) -> Result<Held> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let budgets = claim(&mut tx, &h.pipeline, &h.workspace).await?;
        if budgets.is_empty() {
            tx.rollback().await.map_err(query_error("roll back"))?;
            return Ok(Held::default());
        }
        let mut standings = Vec::with_capacity(budgets.len());
        for b in budgets {
            standings.push(standing(&mut tx, b, h.now_ms).await?);
        }
        let short: Vec<Scope> = standings
            .iter()
            .filter(|s| !s.covers_usd(h.estimate_usd))
            .map(|s| s.budget.scope.clone())
            .collect();
        let held = short.is_empty() || h.over;
        if held {
            sqlx::query(
                "INSERT INTO budget_reservations (run_id, pipeline, workspace, estimate_usd, created_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id) DO UPDATE SET estimate_usd = excluded.estimate_usd",
            )
            .bind(&h.run_id)
            .bind(&h.pipeline)
            .bind(&h.workspace)
            .bind(h.estimate_usd)
            .bind(h.now_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_error("hold the budget"))?;
            tx.commit().await.map_err(query_error("commit"))?;
        } else {
            tx.rollback().await.map_err(query_error("roll back"))?;
        }
        Ok(Held {
            standings,
            short,
            held,
        })
    }

    async fn release_budget(&self, run_id: &str, now_ms: i64) -> Result<Vec<Alert>> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        sqlx::query("DELETE FROM budget_reservations WHERE run_id = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(query_error("release the budget"))?;
        let owner = sqlx::query(
            "SELECT r.pipeline AS pipeline, p.workspace AS workspace FROM runs r \
             LEFT JOIN pipelines p ON p.pipeline = r.pipeline WHERE r.run_id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("read the run's pipeline"))?;
        let Some(owner) = owner else {
            tx.commit().await.map_err(query_error("commit"))?;
            return Ok(vec![]);
        };
        let workspace = col_opt_str(&owner, "workspace").unwrap_or_else(|| "default".into());
        let budgets = claim(&mut tx, &col_str(&owner, "pipeline"), &workspace).await?;
        let mut alerts = Vec::new();
        for b in budgets {
            let s = standing(&mut tx, b, now_ms).await?;
            for threshold in reached(&s.budget.alerts, s.budget.monthly_usd, s.spent_usd) {
                let fresh = sqlx::query(
                    "INSERT INTO budget_alerts (scope, period, threshold, spent_usd, sent_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, period, threshold) DO NOTHING",
                )
                .bind(s.budget.scope.to_string())
                .bind(&s.period)
                .bind(i64::from(threshold))
                .bind(s.spent_usd)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(query_error("record an alert"))?;
                if fresh.rows_affected() > 0 {
                    alerts.push(Alert {
                        budget: s.budget.scope.to_string(),
                        period: s.period.clone(),
                        threshold_percent: threshold,
                        spent_usd: s.spent_usd,
                        monthly_usd: s.budget.monthly_usd,
                        webhook: s.budget.webhook.clone(),
                    });
                }
            }
        }
        tx.commit().await.map_err(query_error("commit"))?;
        Ok(alerts)
    }

    async fn recent_stage_costs(
        &self,
        pipeline: &str,
        stage: &str,
        limit: usize,
    ) -> Result<Vec<f64>> {
        let rows = sqlx::query(
            "SELECT s.cost_usd AS cost_usd FROM stage_runs s JOIN runs r ON r.run_id = s.run_id \
             WHERE s.stage = $1 AND r.pipeline = $2 AND s.cost_usd IS NOT NULL \
             AND s.status IN ('ran', 'failed', 'cancelled') ORDER BY s.started_ms DESC LIMIT $3",
        )
        .bind(stage)
        .bind(pipeline)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read a stage's recent costs"))?;
        Ok(rows.iter().map(|r| col_f64(r, "cost_usd")).collect())
    }

    async fn add_serving_usage(&self, usage: &[ServingUsage]) -> Result<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        for u in usage {
            sqlx::query(
                "INSERT INTO serving_usage (day, model, version, predictions, cpu_seconds, cost_usd) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (day, model, version) DO UPDATE SET \
                 predictions = serving_usage.predictions + excluded.predictions, \
                 cpu_seconds = serving_usage.cpu_seconds + excluded.cpu_seconds, \
                 cost_usd = serving_usage.cost_usd + excluded.cost_usd",
            )
            .bind(u.day)
            .bind(&u.model)
            .bind(u.version)
            .bind(u.predictions)
            .bind(u.cpu_seconds)
            .bind(u.cost_usd)
            .execute(&mut *tx)
            .await
            .map_err(query_error("add serving usage"))?;
        }
        tx.commit().await.map_err(query_error("commit"))?;
        Ok(())
    }

    async fn registry_storage(&self) -> Result<Vec<Stored>> {
        let rows = sqlx::query(
            "SELECT v.model AS model, COUNT(*) AS n, CAST(COALESCE(SUM(v.artifact_size), 0) AS BIGINT) AS bytes, \
             w.workspace AS workspace FROM model_versions v LEFT JOIN auth_workspaces w \
             ON w.resource_type = 'registered_model' AND w.resource_id = v.model \
             GROUP BY v.model, w.workspace ORDER BY v.model",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read the registry's storage"))?;
        Ok(rows
            .iter()
            .map(|r| Stored {
                place: "registry".into(),
                name: col_str(r, "model"),
                workspace: col_opt_str(r, "workspace")
                    .unwrap_or_else(|| crate::DEFAULT_WORKSPACE.to_owned()),
                objects: col_i64(r, "n"),
                bytes: col_i64(r, "bytes"),
                usd_month: 0.0,
            })
            .collect())
    }

    async fn version_costs(&self, since_ms: i64, until_ms: i64) -> Result<Vec<VersionCost>> {
        let built = sqlx::query(
            "SELECT v.model AS model, v.version AS version, v.run_id AS run_id, v.created_ms AS created_ms, \
             COALESCE((SELECT SUM(s.cost_usd) FROM stage_runs s WHERE s.run_id = v.run_id), 0.0) AS build_usd, \
             (SELECT COUNT(*) FROM stage_runs s WHERE s.run_id = v.run_id AND s.status = 'restored') AS restored \
             FROM model_versions v WHERE (v.created_ms >= $1 AND v.created_ms < $2) \
             OR EXISTS (SELECT 1 FROM serving_usage u WHERE u.model = v.model AND u.version = v.version \
             AND u.day >= $3 AND u.day <= $4)",
        )
        .bind(since_ms)
        .bind(until_ms)
        .bind(since_ms.div_euclid(DAY_MS))
        .bind((until_ms - 1).div_euclid(DAY_MS))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read the versions' costs"))?;
        let served = sqlx::query(
            "SELECT model, version, CAST(SUM(predictions) AS BIGINT) AS predictions, SUM(cpu_seconds) AS cpu, \
             SUM(cost_usd) AS cost FROM serving_usage WHERE day >= $1 AND day <= $2 GROUP BY model, version",
        )
        .bind(since_ms.div_euclid(DAY_MS))
        .bind((until_ms - 1).div_euclid(DAY_MS))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read the serving usage"))?;
        let served: BTreeMap<(String, i64), (i64, f64, f64)> = served
            .iter()
            .map(|r| {
                (
                    (col_str(r, "model"), col_i64(r, "version")),
                    (
                        col_i64(r, "predictions"),
                        col_f64(r, "cpu"),
                        col_f64(r, "cost"),
                    ),
                )
            })
            .collect();
        let mut out: Vec<VersionCost> = built
            .iter()
            .map(|r| {
                let key = (col_str(r, "model"), col_i64(r, "version"));
                let (predictions, cpu, usd) = served.get(&key).copied().unwrap_or((0, 0.0, 0.0));
                VersionCost {
                    model: key.0,
                    version: key.1,
                    run_id: col_opt_str(r, "run_id"),
                    created_ms: col_i64(r, "created_ms"),
                    build_usd: col_f64(r, "build_usd"),
                    restored_stages: col_i64(r, "restored"),
                    predictions,
                    serving_cpu_seconds: cpu,
                    serving_usd: usd,
                    per_1k_predictions_usd: crate::per_1k(usd, predictions),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.model, a.version).cmp(&(&b.model, b.version)));
        Ok(out)
    }
}
