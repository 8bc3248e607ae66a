//! [`DeliveryStore`] over SQL (schema 21): the registry's and rollouts'
//! changes read back from their histories by time, and the webhook
//! deliveries' queue. Enqueueing is an insert that does nothing when the
//! (endpoint, event) pair is there (`ON CONFLICT DO NOTHING`, both
//! engines); a claim is one conditional update per delivery (pending, due,
//! its lease free or lapsed), so of two servers claiming at once exactly
//! one takes it; an attempt is recorded, with its outcome, in one
//! transaction that checks the lease is still the recorder's.

use crate::row::{col_i64, col_opt_i64, col_opt_str, col_str, query_error};
use crate::sql::SqlStore;
use crate::{
    AttemptOutcome, AttemptRecord, DeliveryQuery, DeliveryState, DeliveryStore, Error,
    NewWebhookDelivery, ROLLOUT_KINDS, RegistryChange, RegistryEvent, Result, WebhookAttempt,
    WebhookCursor, WebhookDelivery,
};
use sqlx::any::AnyRow;
use std::collections::HashMap;

const COLUMNS: &str = "endpoint, event_id, delivery_id, event, event_ms, body, state, attempts, next_attempt_ms, lease_holder, lease_until_ms, last_status, last_error, created_ms, delivered_ms";

fn delivery_of(r: &AnyRow) -> Result<WebhookDelivery> {
    let event_id = col_str(r, "event_id");
    let state = col_str(r, "state");
    Ok(WebhookDelivery {
        state: DeliveryState::parse(&state).ok_or_else(|| {
            Error::Invalid(format!("damaged delivery of `{event_id}`: state `{state}`"))
        })?,
        endpoint: col_str(r, "endpoint"),
        delivery_id: col_str(r, "delivery_id"),
        event: col_str(r, "event"),
        event_ms: col_i64(r, "event_ms"),
        body: col_str(r, "body"),
        attempts: col_i64(r, "attempts").clamp(0, u32::MAX as i64) as u32,
        next_attempt_ms: col_i64(r, "next_attempt_ms"),
        lease_holder: col_opt_str(r, "lease_holder"),
        lease_until_ms: col_i64(r, "lease_until_ms"),
        last_status: col_opt_i64(r, "last_status"),
        last_error: col_opt_str(r, "last_error"),
        created_ms: col_i64(r, "created_ms"),
        delivered_ms: col_opt_i64(r, "delivered_ms"),
        event_id,
    })
}

fn workspace(r: &AnyRow) -> String {
    col_opt_str(r, "workspace").unwrap_or_else(|| crate::DEFAULT_WORKSPACE.to_owned())
}

fn limit_of(limit: usize) -> i64 {
    limit.min(i64::MAX as usize) as i64
}

impl SqlStore {
    /// The tags of the named models (`model_tags`), or of their versions
    /// (`model_version_tags`, keyed by model and version).
    async fn tags_of(
        &self,
        sql: &'static str,
        models: &[String],
    ) -> Result<HashMap<(String, i64), Vec<(String, String)>>> {
        let mut out: HashMap<(String, i64), Vec<(String, String)>> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for m in models {
            if !seen.insert(m) {
                continue;
            }
            let rows = sqlx::query(sql)
                .bind(m)
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("read tags"))?;
            for r in &rows {
                out.entry((m.clone(), col_opt_i64(r, "version").unwrap_or(0)))
                    .or_default()
                    .push((col_str(r, "tkey"), col_str(r, "value")));
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl DeliveryStore for SqlStore {
    async fn webhook_cursor(&self, endpoint: &str, now_ms: i64) -> Result<WebhookCursor> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (endpoint, started_ms, scanned_ms) VALUES ($1, $2, $2) ON CONFLICT (endpoint) DO NOTHING",
        )
        .bind(endpoint)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(query_error("start a webhook endpoint"))?;
        let r =
            sqlx::query("SELECT started_ms, scanned_ms FROM webhook_endpoints WHERE endpoint = $1")
                .bind(endpoint)
                .fetch_one(&self.pool)
                .await
                .map_err(query_error("read a webhook endpoint"))?;
        Ok(WebhookCursor {
            started_ms: col_i64(&r, "started_ms"),
            scanned_ms: col_i64(&r, "scanned_ms"),
        })
    }

    async fn advance_webhook_cursor(&self, endpoint: &str, scanned_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_endpoints SET scanned_ms = $1 WHERE endpoint = $2 AND scanned_ms < $1",
        )
        .bind(scanned_ms)
        .bind(endpoint)
        .execute(&self.pool)
        .await
        .map_err(query_error("advance a webhook endpoint"))?;
        Ok(())
    }

    async fn registry_events(&self, since_ms: i64, limit: usize) -> Result<Vec<RegistryEvent>> {
        let n = limit_of(limit);
        let what = "read the registry's events";
        let mut out = Vec::new();
        // Each history at most `limit` from `since_ms`: the merge of the
        // four, cut to `limit`, is then the first `limit` of all.
        let models = sqlx::query(
            "SELECT m.name AS name, m.created_ms AS created_ms, m.description AS description, w.workspace AS workspace \
             FROM models m LEFT JOIN auth_workspaces w ON w.resource_type = 'registered_model' AND w.resource_id = m.name \
             WHERE m.created_ms >= $1 ORDER BY m.created_ms, m.name LIMIT $2",
        )
        .bind(since_ms)
        .bind(n)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(what))?;
        let names: Vec<String> = models.iter().map(|r| col_str(r, "name")).collect();
        let mut model_tags = self
            .tags_of(
                "SELECT tkey, value FROM model_tags WHERE model = $1 ORDER BY tkey",
                &names,
            )
            .await?;
        for r in &models {
            let name = col_str(r, "name");
            let at_ms = col_i64(r, "created_ms");
            out.push(RegistryEvent {
                id: format!("registered_model:{name}:{at_ms}"),
                at_ms,
                workspace: workspace(r),
                change: RegistryChange::ModelCreated {
                    tags: model_tags.remove(&(name.clone(), 0)).unwrap_or_default(),
                    description: col_opt_str(r, "description"),
                    name,
                },
            });
        }
        let versions = sqlx::query(
            "SELECT v.model AS model, v.version AS version, v.source AS source, v.run_id AS run_id, \
             v.description AS description, v.created_ms AS created_ms, w.workspace AS workspace \
             FROM model_versions v LEFT JOIN auth_workspaces w ON w.resource_type = 'registered_model' AND w.resource_id = v.model \
             WHERE v.created_ms >= $1 ORDER BY v.created_ms, v.model, v.version LIMIT $2",
        )
        .bind(since_ms)
        .bind(n)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(what))?;
        let names: Vec<String> = versions.iter().map(|r| col_str(r, "model")).collect();
        let mut version_tags = self
            .tags_of(
                "SELECT version, tkey, value FROM model_version_tags WHERE model = $1 ORDER BY tkey",
                &names,
            )
            .await?;
        for r in &versions {
            let name = col_str(r, "model");
            let version = col_i64(r, "version");
            let at_ms = col_i64(r, "created_ms");
            out.push(RegistryEvent {
                id: format!("model_version:{name}:{version}:{at_ms}"),
                at_ms,
                workspace: workspace(r),
                change: RegistryChange::VersionCreated {
                    tags: version_tags
                        .remove(&(name.clone(), version))
                        .unwrap_or_default(),
                    source: col_opt_str(r, "source").unwrap_or_default(),
                    run_id: col_opt_str(r, "run_id"),
                    description: col_opt_str(r, "description"),
                    name,
                    version,
                },
            });
        }
        let aliases = sqlx::query(
            "SELECT a.event_id AS event_id, a.model AS model, a.alias AS alias, a.version AS version, a.previous AS previous, \
             a.changed_ms AS changed_ms, a.reason AS reason, w.workspace AS workspace \
             FROM alias_events a LEFT JOIN auth_workspaces w ON w.resource_type = 'registered_model' AND w.resource_id = a.model \
             WHERE a.changed_ms >= $1 ORDER BY a.changed_ms, a.event_id LIMIT $2",
        )
        .bind(since_ms)
        .bind(n)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(what))?;
        for r in &aliases {
            let name = col_str(r, "model");
            let alias = col_str(r, "alias");
            let previous = col_opt_i64(r, "previous");
            let reason = col_opt_str(r, "reason");
            out.push(RegistryEvent {
                id: format!("alias:{}", col_str(r, "event_id")),
                at_ms: col_i64(r, "changed_ms"),
                workspace: workspace(r),
                change: match col_opt_i64(r, "version") {
                    Some(version) => RegistryChange::AliasSet {
                        name,
                        alias,
                        version,
                        previous,
                        reason,
                    },
                    None => RegistryChange::AliasDeleted {
                        name,
                        alias,
                        previous,
                        reason,
                    },
                },
            });
        }
        let kinds = ROLLOUT_KINDS
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT e.event_id AS event_id, e.deployment_id AS deployment_id, e.at_ms AS at_ms, e.kind AS kind, e.reason AS reason, \
             d.model AS model, d.candidate AS candidate, d.stable AS stable, d.strategy AS strategy, w.workspace AS workspace \
             FROM deployment_events e JOIN deployments d ON d.deployment_id = e.deployment_id \
             LEFT JOIN auth_workspaces w ON w.resource_type = 'registered_model' AND w.resource_id = d.model \
             WHERE e.at_ms >= $1 AND e.kind IN ({kinds}) ORDER BY e.at_ms, e.event_id LIMIT $2"
        );
        let rollouts = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(since_ms)
            .bind(n)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error(what))?;
        for r in &rollouts {
            out.push(RegistryEvent {
                id: format!("deployment:{}", col_str(r, "event_id")),
                at_ms: col_i64(r, "at_ms"),
                workspace: workspace(r),
                change: RegistryChange::Rollout {
                    deployment_id: col_str(r, "deployment_id"),
                    kind: col_str(r, "kind"),
                    model: col_str(r, "model"),
                    candidate: col_i64(r, "candidate"),
                    stable: col_opt_i64(r, "stable"),
                    strategy: col_str(r, "strategy"),
                    reason: col_opt_str(r, "reason"),
                },
            });
        }
        out.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn enqueue_delivery(&self, d: &NewWebhookDelivery) -> Result<bool> {
        let sql = format!(
            "INSERT INTO webhook_deliveries ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, NULL, 0, NULL, NULL, $7, NULL) \
             ON CONFLICT (endpoint, event_id) DO NOTHING"
        );
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&d.endpoint)
            .bind(&d.event_id)
            .bind(&d.delivery_id)
            .bind(&d.event)
            .bind(d.event_ms)
            .bind(&d.body)
            .bind(d.now_ms)
            .execute(&self.pool)
            .await
            .map_err(query_error("enqueue a webhook delivery"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn claim_deliveries(
        &self,
        endpoints: &[String],
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let what = "claim webhook deliveries";
        if endpoints.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let marks = (0..endpoints.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT endpoint, event_id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_ms <= $1 \
             AND lease_until_ms <= $1 AND endpoint IN ({marks}) ORDER BY next_attempt_ms, created_ms, event_id LIMIT $2"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms)
            .bind(limit_of(limit));
        for e in endpoints {
            q = q.bind(e);
        }
        let due = q.fetch_all(&self.pool).await.map_err(query_error(what))?;
        let mut out = Vec::new();
        for r in &due {
            let (endpoint, event_id) = (col_str(r, "endpoint"), col_str(r, "event_id"));
            // The claim itself: only one of two claimers sees its row
            // still free.
            let taken = sqlx::query(
                "UPDATE webhook_deliveries SET lease_holder = $1, lease_until_ms = $2 \
                 WHERE endpoint = $3 AND event_id = $4 AND state = 'pending' AND next_attempt_ms <= $5 AND lease_until_ms <= $5",
            )
            .bind(holder)
            .bind(now_ms + lease_ms.max(1))
            .bind(&endpoint)
            .bind(&event_id)
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(query_error(what))?;
            if taken.rows_affected() != 1 {
                continue;
            }
            let sql = format!(
                "SELECT {COLUMNS} FROM webhook_deliveries WHERE endpoint = $1 AND event_id = $2"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&endpoint)
                .bind(&event_id)
                .fetch_one(&self.pool)
                .await
                .map_err(query_error(what))?;
            out.push(delivery_of(&row)?);
        }
        Ok(out)
    }

    async fn record_attempt(&self, a: &AttemptRecord) -> Result<bool> {
        let what = "record a webhook attempt";
        let mut tx = self.begin().await.map_err(query_error(what))?;
        let row = sqlx::query(
            "SELECT attempts FROM webhook_deliveries WHERE endpoint = $1 AND event_id = $2 AND state = 'pending' AND lease_holder = $3",
        )
        .bind(&a.endpoint)
        .bind(&a.event_id)
        .bind(&a.holder)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(what))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let attempt = col_i64(&row, "attempts") + 1;
        let (state, next, delivered) = match a.outcome {
            AttemptOutcome::Delivered => (DeliveryState::Delivered, a.at_ms, Some(a.at_ms)),
            AttemptOutcome::Retry { next_attempt_ms } => {
                (DeliveryState::Pending, next_attempt_ms, None)
            }
            AttemptOutcome::Failed => (DeliveryState::Failed, a.at_ms, None),
        };
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = $2, next_attempt_ms = $3, lease_until_ms = 0, \
             last_status = $4, last_error = $5, delivered_ms = $6 \
             WHERE endpoint = $7 AND event_id = $8 AND state = 'pending' AND lease_holder = $9 AND attempts = $10",
        )
        .bind(state.as_str())
        .bind(attempt)
        .bind(next)
        .bind(a.status)
        .bind(a.error.clone())
        .bind(delivered)
        .bind(&a.endpoint)
        .bind(&a.event_id)
        .bind(&a.holder)
        .bind(attempt - 1)
        .execute(&mut *tx)
        .await
        .map_err(query_error(what))?;
        // The row is locked from here (PostgreSQL) and it was still this
        // holder's, at this count: a lease that ran out and was claimed
        // between the read and now records nothing.
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (endpoint, event_id, attempt, at_ms, duration_ms, status, error, holder) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&a.endpoint)
        .bind(&a.event_id)
        .bind(attempt)
        .bind(a.at_ms)
        .bind(a.duration_ms)
        .bind(a.status)
        .bind(a.error.clone())
        .bind(&a.holder)
        .execute(&mut *tx)
        .await
        .map_err(query_error(what))?;
        tx.commit().await.map_err(query_error(what))?;
        Ok(true)
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_deliveries WHERE ($1 IS NULL OR endpoint = $1) AND ($2 IS NULL OR state = $2) \
             ORDER BY created_ms DESC, event_ms DESC, event_id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.endpoint.clone())
            .bind(q.state.map(|s| s.as_str().to_owned()))
            .bind(limit_of(q.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read webhook deliveries"))?;
        rows.iter().map(delivery_of).collect()
    }

    async fn delivery_attempts(
        &self,
        endpoint: &str,
        event_id: &str,
    ) -> Result<Vec<WebhookAttempt>> {
        let rows = sqlx::query(
            "SELECT endpoint, event_id, attempt, at_ms, duration_ms, status, error, holder FROM webhook_attempts \
             WHERE endpoint = $1 AND event_id = $2 ORDER BY attempt",
        )
        .bind(endpoint)
        .bind(event_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read webhook attempts"))?;
        Ok(rows
            .iter()
            .map(|r| WebhookAttempt {
                endpoint: col_str(r, "endpoint"),
                event_id: col_str(r, "event_id"),
                attempt: col_i64(r, "attempt").clamp(0, u32::MAX as i64) as u32,
                at_ms: col_i64(r, "at_ms"),
                duration_ms: col_i64(r, "duration_ms"),
                status: col_opt_i64(r, "status"),
                error: col_opt_str(r, "error"),
                holder: col_str(r, "holder"),
            })
            .collect())
    }
}
