//! [`LoopStore`] over SQL (schema 18; a triggered run's commit, schema
//! 20): monitor events, alert states and the triggered runs' queue. Every
//! decision (an alert to send, a firing to queue or ignore, a run to
//! claim) is read, decided and written in one transaction that no other
//! decision interleaves with: SQLite's write lock (`BEGIN IMMEDIATE`), and
//! on PostgreSQL a transaction advisory lock taken first.

use crate::row::{col_i64, col_opt_f64, col_opt_i64, col_opt_str, col_str, query_error};
use crate::sql::SqlStore;
use crate::{
    AlertState, CheckStatus, Claim, Error, Fired, Firing, LoopStore, MonitorEvent, Notice, Result,
    TriggerState, TriggeredRun, alert_step,
};
use sqlx::Any;
use sqlx::any::AnyRow;

type Tx = sqlx::Transaction<'static, Any>;

/// The advisory locks (PostgreSQL) serialising the loop's decisions.
const ALERTS_LOCK: i64 = 7_201_964_018;
const TRIGGERS_LOCK: i64 = 7_201_964_019;

const EVENT_COLUMNS: &str = "event_id, model, version, check_name, status, value, threshold, rows_read, window_start_ms, window_end_ms, at_ms, summary, detail";
const TRIGGER_COLUMNS: &str = "trigger_id, pipeline, kind, fire_key, evidence, state, created_ms, agent, lease_ms, attempts, run_id, note, ended_ms, git_commit";

fn event_of(r: &AnyRow) -> Result<MonitorEvent> {
    let id = col_str(r, "event_id");
    let damaged = |what: &str| Error::Invalid(format!("damaged monitor event `{id}`: {what}"));
    let status = col_str(r, "status");
    Ok(MonitorEvent {
        status: CheckStatus::parse(&status)
            .ok_or_else(|| damaged(&format!("status `{status}`")))?,
        model: col_str(r, "model"),
        version: col_opt_i64(r, "version"),
        check: col_str(r, "check_name"),
        value: col_opt_f64(r, "value"),
        threshold: col_opt_f64(r, "threshold"),
        rows: col_i64(r, "rows_read").max(0) as u64,
        window_start_ms: col_i64(r, "window_start_ms"),
        window_end_ms: col_i64(r, "window_end_ms"),
        at_ms: col_i64(r, "at_ms"),
        summary: col_str(r, "summary"),
        detail: serde_json::from_str(&col_str(r, "detail")).map_err(|e| damaged(&e.to_string()))?,
        event_id: id,
    })
}

fn state_of(r: &AnyRow) -> AlertState {
    AlertState {
        failing: col_i64(r, "failing") != 0,
        since_ms: col_i64(r, "since_ms"),
        sent_ms: col_i64(r, "sent_ms"),
    }
}

fn trigger_of(r: &AnyRow) -> Result<TriggeredRun> {
    let id = col_str(r, "trigger_id");
    let state = col_str(r, "state");
    Ok(TriggeredRun {
        state: TriggerState::parse(&state).ok_or_else(|| {
            Error::Invalid(format!("damaged triggered run `{id}`: state `{state}`"))
        })?,
        pipeline: col_str(r, "pipeline"),
        kind: col_str(r, "kind"),
        key: col_str(r, "fire_key"),
        evidence: col_str(r, "evidence"),
        commit: col_opt_str(r, "git_commit"),
        created_ms: col_i64(r, "created_ms"),
        agent: col_opt_str(r, "agent"),
        lease_ms: col_i64(r, "lease_ms"),
        attempts: col_i64(r, "attempts").clamp(0, u32::MAX as i64) as u32,
        run_id: col_opt_str(r, "run_id"),
        note: col_opt_str(r, "note"),
        ended_ms: col_opt_i64(r, "ended_ms"),
        trigger_id: id,
    })
}

impl SqlStore {
    /// A transaction no other decision of the same kind interleaves with.
    async fn decide(&self, lock: i64, what: &'static str) -> Result<Tx> {
        let mut tx = self.begin().await.map_err(query_error(what))?;
        if !self.sqlite {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock)
                .execute(&mut *tx)
                .await
                .map_err(query_error(what))?;
        }
        Ok(tx)
    }

    async fn trigger_in(tx: &mut Tx, id: &str) -> Result<TriggeredRun> {
        let sql = format!("SELECT {TRIGGER_COLUMNS} FROM triggered_runs WHERE trigger_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut **tx)
            .await
            .map_err(query_error("read a triggered run"))?;
        trigger_of(&row)
    }

    async fn insert_trigger(tx: &mut Tx, t: &TriggeredRun) -> Result<()> {
        let sql = format!(
            "INSERT INTO triggered_runs ({TRIGGER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0, 0, NULL, $8, $9, $10)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&t.trigger_id)
            .bind(&t.pipeline)
            .bind(&t.kind)
            .bind(&t.key)
            .bind(&t.evidence)
            .bind(t.state.as_str())
            .bind(t.created_ms)
            .bind(t.note.clone())
            .bind(t.ended_ms)
            .bind(t.commit.clone())
            .execute(&mut **tx)
            .await
            .map_err(query_error("queue a triggered run"))?;
        Ok(())
    }

    /// Queues again (or abandons) the running runs whose lease lapsed.
    async fn reclaim_lapsed(tx: &mut Tx, now_ms: i64, retries: u32) -> Result<()> {
        let note = "its agent stopped answering (its lease lapsed)";
        sqlx::query(
            "UPDATE triggered_runs SET state = 'abandoned', note = $1, ended_ms = $2 WHERE state = 'running' AND lease_ms < $2 AND attempts > $3",
        )
        .bind(format!("{note}; tried {} times, not again", retries + 1))
        .bind(now_ms)
        .bind(i64::from(retries))
        .execute(&mut **tx)
        .await
        .map_err(query_error("reclaim lapsed runs"))?;
        sqlx::query(
            "UPDATE triggered_runs SET state = 'queued', note = $1 WHERE state = 'running' AND lease_ms < $2",
        )
        .bind(format!("{note}; queued again"))
        .bind(now_ms)
        .execute(&mut **tx)
        .await
        .map_err(query_error("reclaim lapsed runs"))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl LoopStore for SqlStore {
    async fn record_monitor_events(&self, events: &[MonitorEvent]) -> Result<()> {
        let mut tx = self
            .begin()
            .await
            .map_err(query_error("record monitor events"))?;
        let sql = format!(
            "INSERT INTO monitor_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        for e in events {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&e.event_id)
                .bind(&e.model)
                .bind(e.version)
                .bind(&e.check)
                .bind(e.status.as_str())
                .bind(e.value.filter(|v| v.is_finite()))
                .bind(e.threshold.filter(|v| v.is_finite()))
                .bind(e.rows.min(i64::MAX as u64) as i64)
                .bind(e.window_start_ms)
                .bind(e.window_end_ms)
                .bind(e.at_ms)
                .bind(&e.summary)
                .bind(e.detail.to_string())
                .execute(&mut *tx)
                .await
                .map_err(query_error("record a monitor event"))?;
        }
        tx.commit()
            .await
            .map_err(query_error("record monitor events"))
    }

    async fn monitor_events(
        &self,
        model: Option<&str>,
        before_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MonitorEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM monitor_events WHERE ($1 IS NULL OR model = $1) AND at_ms < $2 ORDER BY at_ms DESC, event_id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(model.map(str::to_owned))
            .bind(before_ms.unwrap_or(i64::MAX))
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read monitor events"))?;
        rows.iter().map(event_of).collect()
    }

    async fn latest_monitor_events(&self, model: Option<&str>) -> Result<Vec<MonitorEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM monitor_events e WHERE ($1 IS NULL OR model = $1) AND at_ms = (SELECT MAX(at_ms) FROM monitor_events l WHERE l.model = e.model AND l.check_name = e.check_name) ORDER BY model, check_name, event_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(model.map(str::to_owned))
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read monitor events"))?;
        let mut out: Vec<MonitorEvent> = Vec::with_capacity(rows.len());
        for r in &rows {
            let e = event_of(r)?;
            // Two events of one check at one instant: the last id stands.
            if let Some(last) = out.last_mut()
                && last.model == e.model
                && last.check == e.check
            {
                *last = e;
                continue;
            }
            out.push(e);
        }
        Ok(out)
    }

    async fn alert_state(&self, model: &str, check: &str) -> Result<Option<AlertState>> {
        let row = sqlx::query(
            "SELECT failing, since_ms, sent_ms FROM monitor_alerts WHERE model = $1 AND check_name = $2",
        )
        .bind(model)
        .bind(check)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("read an alert's state"))?;
        Ok(row.as_ref().map(state_of))
    }

    async fn alert_transition(
        &self,
        model: &str,
        check: &str,
        status: CheckStatus,
        now_ms: i64,
        cooldown_ms: i64,
    ) -> Result<Option<(Notice, AlertState)>> {
        let what = "decide an alert";
        let mut tx = self.decide(ALERTS_LOCK, what).await?;
        let prev = sqlx::query(
            "SELECT failing, since_ms, sent_ms FROM monitor_alerts WHERE model = $1 AND check_name = $2",
        )
        .bind(model)
        .bind(check)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(what))?
        .as_ref()
        .map(state_of);
        let (next, notice) = alert_step(prev, status, now_ms, cooldown_ms);
        let Some(next) = next else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO monitor_alerts (model, check_name, failing, since_ms, sent_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (model, check_name) DO UPDATE SET failing = $3, since_ms = $4, sent_ms = $5",
        )
        .bind(model)
        .bind(check)
        .bind(i64::from(next.failing))
        .bind(next.since_ms)
        .bind(next.sent_ms)
        .execute(&mut *tx)
        .await
        .map_err(query_error(what))?;
        tx.commit().await.map_err(query_error(what))?;
        Ok(notice.map(|n| (n, next)))
    }

    async fn fire_trigger(&self, f: &Firing) -> Result<Fired> {
        let what = "queue a triggered run";
        if let Some(c) = f.commit.as_deref().filter(|c| !crate::is_commit(c)) {
            return Err(Error::Invalid(format!(
                "a trigger's commit is 40 lowercase hex digits, not `{}`",
                c.escape_debug()
            )));
        }
        let mut tx = self.decide(TRIGGERS_LOCK, what).await?;
        let seen = sqlx::query(
            "SELECT trigger_id FROM triggered_runs WHERE pipeline = $1 AND fire_key = $2",
        )
        .bind(&f.pipeline)
        .bind(&f.key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(what))?;
        if seen.is_some() {
            return Ok(Fired::Duplicate);
        }
        let last = if f.kind == "manual" {
            None
        } else {
            sqlx::query(
                "SELECT trigger_id FROM triggered_runs WHERE pipeline = $1 AND state <> 'ignored' AND created_ms > $2 ORDER BY created_ms DESC LIMIT 1",
            )
            .bind(&f.pipeline)
            .bind(f.now_ms - f.cooldown_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(what))?
            .map(|r| col_str(&r, "trigger_id"))
        };
        let mut t = TriggeredRun {
            trigger_id: ferry_core::RunId::generate().as_str().to_owned(),
            pipeline: f.pipeline.clone(),
            kind: f.kind.clone(),
            key: f.key.clone(),
            evidence: f.evidence.clone(),
            commit: f.commit.clone(),
            state: TriggerState::Queued,
            created_ms: f.now_ms,
            agent: None,
            lease_ms: 0,
            attempts: 0,
            run_id: None,
            note: None,
            ended_ms: None,
        };
        if let Some(after) = &last {
            t.state = TriggerState::Ignored;
            t.note = Some(format!(
                "within the cooldown ({}) of triggered run {after}",
                ferry_core::human_ms(f.cooldown_ms.max(0) as u64)
            ));
            t.ended_ms = Some(f.now_ms);
        }
        Self::insert_trigger(&mut tx, &t).await?;
        tx.commit().await.map_err(query_error(what))?;
        Ok(match last {
            Some(after) => Fired::Ignored { trigger: t, after },
            None => Fired::Queued { trigger: t },
        })
    }

    async fn claim_trigger(&self, c: &Claim) -> Result<Option<TriggeredRun>> {
        let what = "claim a triggered run";
        let mut tx = self.decide(TRIGGERS_LOCK, what).await?;
        Self::reclaim_lapsed(&mut tx, c.now_ms, c.retries).await?;
        let running = sqlx::query(
            "SELECT COUNT(*) AS n FROM triggered_runs WHERE pipeline = $1 AND state = 'running'",
        )
        .bind(&c.pipeline)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error(what))?;
        if col_i64(&running, "n") >= i64::from(c.concurrency) {
            tx.commit().await.map_err(query_error(what))?;
            return Ok(None);
        }
        let next = sqlx::query(
            "SELECT trigger_id FROM triggered_runs WHERE pipeline = $1 AND state = 'queued' ORDER BY created_ms, trigger_id LIMIT 1",
        )
        .bind(&c.pipeline)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(what))?;
        let Some(next) = next else {
            tx.commit().await.map_err(query_error(what))?;
            return Ok(None);
        };
        let id = col_str(&next, "trigger_id");
        let taken = sqlx::query(
            "UPDATE triggered_runs SET state = 'running', agent = $1, lease_ms = $2, attempts = attempts + 1, run_id = NULL WHERE trigger_id = $3 AND state = 'queued'",
        )
        .bind(&c.agent)
        .bind(c.now_ms + c.lease_ms)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(query_error(what))?;
        if taken.rows_affected() != 1 {
            return Ok(None);
        }
        let t = Self::trigger_in(&mut tx, &id).await?;
        tx.commit().await.map_err(query_error(what))?;
        Ok(Some(t))
    }

    async fn renew_trigger(&self, trigger_id: &str, agent: &str, lease_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE triggered_runs SET lease_ms = $1 WHERE trigger_id = $2 AND agent = $3 AND state = 'running'",
        )
        .bind(lease_ms)
        .bind(trigger_id)
        .bind(agent)
        .execute(&self.pool)
        .await
        .map_err(query_error("renew a claim"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn trigger_started(&self, trigger_id: &str, agent: &str, run_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE triggered_runs SET run_id = $1 WHERE trigger_id = $2 AND agent = $3 AND state = 'running'",
        )
        .bind(run_id)
        .bind(trigger_id)
        .bind(agent)
        .execute(&self.pool)
        .await
        .map_err(query_error("record a triggered run's run"))?;
        Ok(())
    }

    async fn finish_trigger(
        &self,
        trigger_id: &str,
        agent: &str,
        state: TriggerState,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE triggered_runs SET state = $1, note = COALESCE($2, note), ended_ms = $3 WHERE trigger_id = $4 AND agent = $5 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(note.map(str::to_owned))
        .bind(now_ms)
        .bind(trigger_id)
        .bind(agent)
        .execute(&self.pool)
        .await
        .map_err(query_error("end a triggered run"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn triggered_runs(
        &self,
        pipeline: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TriggeredRun>> {
        let sql = format!(
            "SELECT {TRIGGER_COLUMNS} FROM triggered_runs WHERE ($1 IS NULL OR pipeline = $1) ORDER BY created_ms DESC, trigger_id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pipeline.map(str::to_owned))
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read triggered runs"))?;
        rows.iter().map(trigger_of).collect()
    }

    async fn trigger_of_run(&self, run_id: &str) -> Result<Option<TriggeredRun>> {
        let sql = format!(
            "SELECT {TRIGGER_COLUMNS} FROM triggered_runs WHERE run_id = $1 ORDER BY created_ms DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read a triggered run"))?;
        row.as_ref().map(trigger_of).transpose()
    }
}
