//! What the dashboard reads of pipeline runs: a page of runs by filters
//! and a keyset cursor (`(started_ms, run_id)` below the last one shown,
//! on `runs_by_start`, so the thousandth page costs what the first does),
//! and each pipeline's health over 30 days.

use crate::row::{col_i64, col_opt_i64, col_str, query_error};
use crate::sql::SqlStore;
use crate::{PipelineHealth, Result, RunPage, RunSummary};
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;

/// Appends `AND pipeline IN (those of the workspaces)` with a placeholder
/// per workspace, numbered after those in `binds` (placeholders must
/// appear in the text in the order they are bound: SQLite numbers them as
/// they come).
fn workspaces_clause(sql: &mut String, binds: &mut Vec<String>, ws: Option<&[String]>) {
    let Some(ws) = ws else { return };
    if ws.is_empty() {
        sql.push_str(" AND 1 = 0");
        return;
    }
    let first = binds.len() + 1;
    let marks: Vec<String> = (first..first + ws.len()).map(|i| format!("${i}")).collect();
    sql.push_str(&format!(
        " AND pipeline IN (SELECT pipeline FROM pipelines WHERE workspace IN ({}))",
        marks.join(", ")
    ));
    binds.extend(ws.iter().cloned());
}

impl SqlStore {
    pub(crate) async fn runs_page(&self, q: &RunPage) -> Result<Vec<RunSummary>> {
        // Text binds in order; the numbers go after them.
        let mut binds: Vec<String> = Vec::new();
        let mut sql = format!(
            "SELECT {} FROM runs WHERE {}",
            crate::sql::RUN_COLS,
            crate::sql::TOP_LEVEL
        );
        for (col, v) in [
            ("pipeline", &q.pipeline),
            ("status", &q.status),
            ("run_trigger", &q.trigger),
        ] {
            if let Some(v) = v {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        if let Some(c) = &q.commit {
            // A prefix: [c, c + "g") in hex order (commits are lowercase hex).
            binds.push(c.to_ascii_lowercase());
            binds.push(format!("{}g", c.to_ascii_lowercase()));
            sql.push_str(&format!(
                " AND git_commit >= ${} AND git_commit < ${}",
                binds.len() - 1,
                binds.len()
            ));
        }
        workspaces_clause(&mut sql, &mut binds, q.workspaces.as_deref());
        let mut n = binds.len();
        let mut next = || {
            n += 1;
            n
        };
        if q.since_ms.is_some() {
            sql.push_str(&format!(" AND started_ms >= ${}", next()));
        }
        if q.before.is_some() {
            let (a, b, c) = (next(), next(), next());
            sql.push_str(&format!(
                " AND (started_ms < ${a} OR (started_ms = ${b} AND run_id < ${c}))"
            ));
        }
        let limit = next();
        sql.push_str(&format!(
            " ORDER BY started_ms DESC, run_id DESC LIMIT ${limit}"
        ));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        if let Some(s) = q.since_ms {
            query = query.bind(s);
        }
        if let Some((at, id)) = &q.before {
            query = query.bind(*at).bind(*at).bind(id.clone());
        }
        let limit = if q.limit <= 0 { 100 } else { q.limit.min(1000) };
        let rows = query
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("page runs"))?;
        self.summaries(rows).await
    }

    pub(crate) async fn health(
        &self,
        now_ms: i64,
        workspaces: Option<&[String]>,
    ) -> Result<Vec<PipelineHealth>> {
        let since = now_ms - 30 * DAY_MS;
        // `$1` is the window's start; the workspaces follow, in the order
        // they appear.
        let mut binds = vec![String::new()];
        let mut filter = String::new();
        workspaces_clause(&mut filter, &mut binds, workspaces);
        let runs_sql = format!(
            "SELECT run_id, pipeline, status, started_ms, ended_ms FROM runs \
             WHERE started_ms >= $1 AND {}{filter} ORDER BY started_ms",
            crate::sql::TOP_LEVEL
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(runs_sql)).bind(since);
        for b in &binds[1..] {
            q = q.bind(b.clone());
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read the pipelines' runs"))?;
        let mut by: BTreeMap<String, (PipelineHealth, Vec<i64>, Vec<i64>)> = BTreeMap::new();
        for r in &rows {
            let pipeline = col_str(r, "pipeline");
            if pipeline.is_empty() {
                continue;
            }
            let (h, week, prev) = by.entry(pipeline.clone()).or_insert_with(|| {
                (
                    PipelineHealth {
                        pipeline,
                        ..Default::default()
                    },
                    vec![],
                    vec![],
                )
            });
            let started = col_i64(r, "started_ms");
            let status = col_str(r, "status");
            // Rows come oldest first: the last one seen is the newest.
            h.last_run_id = col_str(r, "run_id");
            h.last_status = status.clone();
            h.last_started_ms = started;
            let Some(ended) = col_opt_i64(r, "ended_ms") else {
                continue;
            };
            let ok = status == "succeeded";
            h.ended_30d += 1;
            h.succeeded_30d += i64::from(ok);
            if started >= now_ms - 7 * DAY_MS {
                h.ended_7d += 1;
                h.succeeded_7d += i64::from(ok);
                week.push(ended - started);
            } else if started >= now_ms - 14 * DAY_MS {
                prev.push(ended - started);
            }
        }
        let stages = sqlx::query(
            "SELECT r.pipeline AS pipeline, s.status AS status, COUNT(*) AS n FROM stage_runs s \
             JOIN runs r ON r.run_id = s.run_id WHERE r.started_ms >= $1 \
             AND s.status IN ('ran', 'restored', 'failed') GROUP BY r.pipeline, s.status",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read the pipelines' stages"))?;
        for r in &stages {
            if let Some((h, ..)) = by.get_mut(&col_str(r, "pipeline")) {
                let n = col_i64(r, "n");
                match col_str(r, "status").as_str() {
                    "restored" => h.stages_restored_30d += n,
                    _ => h.stages_ran_30d += n,
                }
            }
        }
        let owners = crate::CostStore::pipeline_owners(self).await?;
        Ok(by
            .into_values()
            .map(|(mut h, mut week, mut prev)| {
                h.median_ms_7d = median(&mut week);
                h.median_ms_prev_7d = median(&mut prev);
                h.workspace = owners.get(&h.pipeline).map_or_else(
                    || crate::DEFAULT_WORKSPACE.to_owned(),
                    |o| o.workspace.clone(),
                );
                h
            })
            .collect())
    }
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}
