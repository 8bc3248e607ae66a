//! Deployments: a candidate version rolled out behind `ferry serve` (canary
//! or shadow), and the decisions taken on it. The gateway's routes are a
//! function of these rows, so a restarted gateway resumes where it was.
//!
//! Which phases exist and what moves between them is `ferry-gateway`'s
//! business; this module stores a phase as text plus whether the deployment
//! is still active, and guards every change with a revision number so the
//! gateway's controller and a person's `ferry deploy promote` cannot both win.

use crate::row::{col_i64, col_opt_i64, col_opt_str, col_str, query_error};
use crate::{Error, MetadataStore, Result, SqlStore};
use ferry_records::*;
use sqlx::any::AnyRow;

const COLUMNS: &str = "deployment_id, model, candidate, stable, strategy, spec, phase, active, step, weight, reason, created_ms, updated_ms, step_started_ms, revision, picked_up_ms";

fn deployment(r: &AnyRow) -> Deployment {
    Deployment {
        id: col_str(r, "deployment_id"),
        model: col_str(r, "model"),
        candidate: col_i64(r, "candidate"),
        stable: col_opt_i64(r, "stable"),
        strategy: col_str(r, "strategy"),
        spec: serde_json::from_str(&col_str(r, "spec")).unwrap_or(serde_json::Value::Null),
        phase: col_str(r, "phase"),
        active: col_i64(r, "active") != 0,
        step: col_i64(r, "step"),
        weight: col_i64(r, "weight"),
        reason: col_opt_str(r, "reason"),
        created_ms: col_i64(r, "created_ms"),
        updated_ms: col_i64(r, "updated_ms"),
        step_started_ms: col_i64(r, "step_started_ms"),
        revision: col_i64(r, "revision"),
        picked_up_ms: col_opt_i64(r, "picked_up_ms"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    at_ms: i64,
    kind: &str,
    phase: &str,
    step: i64,
    weight: i64,
    reason: Option<&str>,
    detail: &serde_json::Value,
) -> Result<()> {
    let seq = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) AS n FROM deployment_events WHERE deployment_id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("record a deployment event"))?;
    let seq = col_i64(&seq, "n") + 1;
    sqlx::query(
        "INSERT INTO deployment_events (event_id, deployment_id, seq, at_ms, kind, phase, step, weight, reason, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(ferry_core::RunId::generate().as_str().to_owned())
    .bind(id)
    .bind(seq)
    .bind(at_ms)
    .bind(kind)
    .bind(phase)
    .bind(step)
    .bind(weight)
    .bind(reason.map(str::to_owned))
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await
    .map_err(query_error("record a deployment event"))?;
    Ok(())
}

async fn read_deployment(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<Option<Deployment>> {
    let sql = format!("SELECT {COLUMNS} FROM deployments WHERE deployment_id = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_error("read a deployment"))?
        .as_ref()
        .map(deployment))
}

#[async_trait::async_trait]
impl DeploymentStore for SqlStore {
    async fn create_deployment(&self, d: &NewDeployment) -> Result<Deployment> {
        if self.get_version(&d.model, d.candidate).await?.is_none() {
            return Err(Error::NotFound(format!(
                "model `{}` has no version {}",
                d.model, d.candidate
            )));
        }
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("start a deployment"))?;
        let busy = sqlx::query(
            "SELECT deployment_id, candidate, phase FROM deployments WHERE model = $1 AND active = 1",
        )
        .bind(&d.model)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("start a deployment"))?;
        if let Some(r) = busy {
            return Err(Error::AlreadyExists(format!(
                "model `{}` already has an active deployment `{}` (version {}, {}); promote or abort it first",
                d.model,
                col_str(&r, "deployment_id"),
                col_i64(&r, "candidate"),
                col_str(&r, "phase")
            )));
        }
        let id = ferry_core::RunId::generate().as_str().to_owned();
        let sql = format!(
            "INSERT INTO deployments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 0, $8, $9, $10, $10, $10, 1, NULL)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .bind(&d.model)
            .bind(d.candidate)
            .bind(d.stable)
            .bind(&d.strategy)
            .bind(d.spec.to_string())
            .bind(&d.phase)
            .bind(d.weight)
            .bind(d.reason.clone())
            .bind(d.created_ms)
            .execute(&mut *tx)
            .await
            .map_err(|e| match e.as_database_error() {
                // Another `ferry deploy` of this model won the race.
                Some(db) if db.is_unique_violation() => Error::AlreadyExists(format!(
                    "model `{}` already has an active deployment; promote or abort it first",
                    d.model
                )),
                _ => query_error("start a deployment")(e),
            })?;
        insert_event(
            &mut tx,
            &id,
            d.created_ms,
            "started",
            &d.phase,
            0,
            d.weight,
            d.reason.as_deref(),
            &d.spec,
        )
        .await?;
        let out = read_deployment(&mut tx, &id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no deployment `{id}`")))?;
        tx.commit()
            .await
            .map_err(query_error("start a deployment"))?;
        Ok(out)
    }

    async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>> {
        let sql = format!("SELECT {COLUMNS} FROM deployments WHERE deployment_id = $1");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read a deployment"))?
            .as_ref()
            .map(deployment))
    }

    async fn list_deployments(
        &self,
        model: Option<&str>,
        active_only: bool,
    ) -> Result<Vec<Deployment>> {
        let mut sql = format!("SELECT {COLUMNS} FROM deployments WHERE 1 = 1");
        if model.is_some() {
            sql.push_str(" AND model = $1");
        }
        if active_only {
            sql.push_str(" AND active = 1");
        }
        sql.push_str(" ORDER BY created_ms DESC, deployment_id DESC");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(m) = model {
            query = query.bind(m.to_owned());
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list deployments"))?;
        Ok(rows.iter().map(deployment).collect())
    }

    async fn change_deployment(
        &self,
        id: &str,
        revision: i64,
        c: &DeploymentChange,
    ) -> Result<Deployment> {
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("change a deployment"))?;
        let current = read_deployment(&mut tx, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no deployment `{id}`")))?;
        if current.revision != revision {
            return Err(Error::Conflict(format!(
                "deployment `{id}` changed meanwhile (now {}, revision {})",
                current.phase, current.revision
            )));
        }
        if !current.active {
            return Err(Error::Conflict(format!(
                "deployment `{id}` is already {}",
                current.phase
            )));
        }
        let updated = sqlx::query(
            "UPDATE deployments SET phase = $1, active = $2, step = $3, weight = $4, reason = $5, \
             updated_ms = $6, step_started_ms = $7, revision = revision + 1 \
             WHERE deployment_id = $8 AND revision = $9",
        )
        .bind(&c.phase)
        .bind(i64::from(c.active))
        .bind(c.step)
        .bind(c.weight)
        .bind(c.reason.clone())
        .bind(c.now_ms)
        .bind(c.step_started_ms)
        .bind(id)
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(query_error("change a deployment"))?;
        // On PostgreSQL (read committed) another decider may have changed
        // the row since it was read: then nothing here may happen.
        if updated.rows_affected() != 1 {
            return Err(Error::Conflict(format!(
                "deployment `{id}` changed meanwhile"
            )));
        }
        insert_event(
            &mut tx,
            id,
            c.now_ms,
            &c.kind,
            &c.phase,
            c.step,
            c.weight,
            c.reason.as_deref(),
            &c.detail,
        )
        .await?;
        if let Some(alias) = &c.move_alias {
            crate::sql::set_alias_in(
                &mut tx,
                &current.model,
                alias,
                current.candidate,
                c.reason.as_deref(),
                c.now_ms,
            )
            .await?;
        }
        if c.reject {
            sqlx::query(
                "INSERT INTO model_version_tags (model, version, tkey, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (model, version, tkey) DO UPDATE SET value = excluded.value",
            )
            .bind(&current.model)
            .bind(current.candidate)
            .bind(crate::REJECTED_TAG)
            .bind(c.reason.clone().unwrap_or_else(|| "rejected".into()))
            .execute(&mut *tx)
            .await
            .map_err(query_error("reject a model version"))?;
        }
        let out = read_deployment(&mut tx, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no deployment `{id}`")))?;
        tx.commit()
            .await
            .map_err(query_error("change a deployment"))?;
        Ok(out)
    }

    async fn deployment_events(&self, id: &str) -> Result<Vec<DeploymentEvent>> {
        let rows = sqlx::query(
            "SELECT deployment_id, seq, at_ms, kind, phase, step, weight, reason, detail \
             FROM deployment_events WHERE deployment_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read deployment events"))?;
        Ok(rows
            .iter()
            .map(|r| DeploymentEvent {
                deployment_id: col_str(r, "deployment_id"),
                seq: col_i64(r, "seq"),
                at_ms: col_i64(r, "at_ms"),
                kind: col_str(r, "kind"),
                phase: col_str(r, "phase"),
                step: col_i64(r, "step"),
                weight: col_i64(r, "weight"),
                reason: col_opt_str(r, "reason"),
                detail: serde_json::from_str(&col_str(r, "detail"))
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    async fn gateway_heartbeat(&self, g: &GatewayBeat, routing: &[String]) -> Result<()> {
        let models = serde_json::to_string(&g.models)
            .map_err(|e| Error::Invalid(format!("gateway models: {e}")))?;
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("record a gateway"))?;
        sqlx::query(
            "INSERT INTO gateways (gateway_id, host, addr, pid, models, tick_ms, started_ms, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (gateway_id) DO UPDATE SET host = excluded.host, addr = excluded.addr, \
             pid = excluded.pid, models = excluded.models, tick_ms = excluded.tick_ms, \
             last_seen_ms = excluded.last_seen_ms",
        )
        .bind(&g.id)
        .bind(&g.host)
        .bind(&g.addr)
        .bind(g.pid)
        .bind(models)
        .bind(g.tick_ms)
        .bind(g.started_ms)
        .bind(g.last_seen_ms)
        .execute(&mut *tx)
        .await
        .map_err(query_error("record a gateway"))?;
        // Gateways that died without removing their row go after a day.
        sqlx::query("DELETE FROM gateways WHERE last_seen_ms < $1")
            .bind(g.last_seen_ms - GATEWAY_ROW_KEPT_MS)
            .execute(&mut *tx)
            .await
            .map_err(query_error("record a gateway"))?;
        for id in routing {
            sqlx::query(
                "UPDATE deployments SET picked_up_ms = $1 WHERE deployment_id = $2 AND picked_up_ms IS NULL",
            )
            .bind(g.last_seen_ms)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(query_error("record a gateway"))?;
        }
        tx.commit().await.map_err(query_error("record a gateway"))?;
        Ok(())
    }

    async fn remove_gateway(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM gateways WHERE gateway_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_error("remove a gateway"))?;
        Ok(())
    }

    async fn list_gateways(&self) -> Result<Vec<GatewayBeat>> {
        let rows = sqlx::query(
            "SELECT gateway_id, host, addr, pid, models, tick_ms, started_ms, last_seen_ms \
             FROM gateways ORDER BY last_seen_ms DESC, gateway_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("list gateways"))?;
        Ok(rows
            .iter()
            .map(|r| GatewayBeat {
                id: col_str(r, "gateway_id"),
                host: col_str(r, "host"),
                addr: col_str(r, "addr"),
                pid: col_i64(r, "pid"),
                // Written by `gateway_heartbeat` only; unreadable means none.
                models: serde_json::from_str(&col_str(r, "models")).unwrap_or_default(),
                tick_ms: col_i64(r, "tick_ms"),
                started_ms: col_i64(r, "started_ms"),
                last_seen_ms: col_i64(r, "last_seen_ms"),
            })
            .collect())
    }

    async fn report_window(&self, w: &RolloutWindow) -> Result<()> {
        let figures = serde_json::to_string(&w.figures)
            .map_err(|e| Error::Invalid(format!("rollout figures: {e}")))?;
        sqlx::query(
            "INSERT INTO rollout_windows (deployment_id, gateway_id, step_started_ms, updated_ms, figures) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (deployment_id, gateway_id) DO UPDATE SET \
             step_started_ms = excluded.step_started_ms, updated_ms = excluded.updated_ms, \
             figures = excluded.figures",
        )
        .bind(&w.deployment_id)
        .bind(&w.gateway_id)
        .bind(w.step_started_ms)
        .bind(w.updated_ms)
        .bind(figures)
        .execute(&self.pool)
        .await
        .map_err(query_error("record a rollout window"))?;
        Ok(())
    }

    async fn rollout_windows(
        &self,
        deployment_id: &str,
        step_started_ms: i64,
    ) -> Result<Vec<RolloutWindow>> {
        let rows = sqlx::query(
            "SELECT deployment_id, gateway_id, step_started_ms, updated_ms, figures \
             FROM rollout_windows WHERE deployment_id = $1 AND step_started_ms = $2 \
             ORDER BY gateway_id",
        )
        .bind(deployment_id)
        .bind(step_started_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read rollout windows"))?;
        rows.iter()
            .map(|r| {
                let figures = serde_json::from_str(&col_str(r, "figures")).map_err(|e| {
                    Error::Invalid(format!(
                        "rollout window of gateway {}: {e}",
                        col_str(r, "gateway_id")
                    ))
                })?;
                Ok(RolloutWindow {
                    deployment_id: col_str(r, "deployment_id"),
                    gateway_id: col_str(r, "gateway_id"),
                    step_started_ms: col_i64(r, "step_started_ms"),
                    updated_ms: col_i64(r, "updated_ms"),
                    figures,
                })
            })
            .collect()
    }

    async fn take_lease(
        &self,
        deployment_id: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        // Free, lapsed or ours: ours until now + ttl. Otherwise nothing
        // changes and no row is touched.
        let done = sqlx::query(
            "INSERT INTO rollout_leases (deployment_id, holder, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (deployment_id) DO UPDATE SET holder = excluded.holder, \
             expires_ms = excluded.expires_ms \
             WHERE rollout_leases.holder = excluded.holder OR rollout_leases.expires_ms <= $4",
        )
        .bind(deployment_id)
        .bind(holder)
        .bind(now_ms + ttl_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(query_error("take a rollout lease"))?;
        Ok(done.rows_affected() == 1)
    }
}
