//! What the dashboard reads of pipeline runs: a page of runs by filters
//! and a keyset cursor (`(started_ms, run_id)` below the last one shown,
//! on `runs_by_start`, so the thousandth page costs what the first does),
//! and each pipeline's health over 30 days.

use crate::row::{col_i64, col_opt_i64, col_str, query_error};
use crate::sql::SqlStore;
use crate::{PipelineHealth, Result, RunOrder, RunPage, RunSummary};
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
        use crate::tracking::{Arg, Form, Sql, clause_sql};
        let mut sql = Sql::default();
        let mut wheres = vec![crate::sql::TOP_LEVEL.to_owned()];
        for (col, v) in [
            ("pipeline", &q.pipeline),
            ("status", &q.status),
            ("run_trigger", &q.trigger),
            ("user_id", &q.author),
        ] {
            if let Some(v) = v {
                wheres.push(format!("{col} = {}", sql.arg(Arg::S(v.clone()))));
            }
        }
        if let Some(c) = &q.commit {
            // A prefix: [c, c + "g") in hex order (commits are lowercase hex).
            let c = c.to_ascii_lowercase();
            let (lo, hi) = (sql.arg(Arg::S(c.clone())), sql.arg(Arg::S(format!("{c}g"))));
            wheres.push(format!("git_commit >= {lo} AND git_commit < {hi}"));
        }
        if let Some(ws) = &q.workspaces {
            let marks: Vec<String> = ws.iter().map(|w| sql.arg(Arg::S(w.clone()))).collect();
            wheres.push(if marks.is_empty() {
                "1 = 0".to_owned()
            } else {
                format!(
                    "pipeline IN (SELECT pipeline FROM pipelines WHERE workspace IN ({}))",
                    marks.join(", ")
                )
            });
        }
        // MLflow's grammar: an attribute on the row itself, a metric,
        // param or tag as the set of runs its key's index finds, so the
        // walk by the page's order looks no run up (a selective filter
        // walks the index, not every run's rows).
        for c in &q.filter {
            wheres.push(clause_sql(&mut sql, c, Form::Member));
        }
        if let Some(s) = q.since_ms {
            wheres.push(format!("started_ms >= {}", sql.arg(Arg::I(s))));
        }
        // Each order is an index's (`runs_by_start`, `runs_by_duration`:
        // the same expression), read from the cursor on.
        let (key, dir, cmp) = match q.order {
            RunOrder::Newest => ("started_ms", "DESC", "<"),
            RunOrder::Oldest => ("started_ms", "ASC", ">"),
            RunOrder::Slowest => ("COALESCE(ended_ms - started_ms, -1)", "DESC", "<"),
        };
        if q.before.is_none() {
            // The first page bounds the key too: without a bound SQLite's
            // planner may sort every run rather than walk the index.
            let edge = if cmp == "<" { i64::MAX } else { i64::MIN };
            let le = if cmp == "<" { "<=" } else { ">=" };
            wheres.push(format!("{key} {le} {}", sql.arg(Arg::I(edge))));
        }
        if let Some((at, id)) = &q.before {
            let (a, b, c) = (
                sql.arg(Arg::I(*at)),
                sql.arg(Arg::I(*at)),
                sql.arg(Arg::S(id.clone())),
            );
            // The key's bound alone first, so an index on it is searched
            // from the cursor on rather than scanned from the start.
            let le = if cmp == "<" { "<=" } else { ">=" };
            wheres.push(format!(
                "{key} {le} {a} AND ({key} {cmp} {b} OR run_id {cmp} {c})"
            ));
        }
        let limit = if q.limit <= 0 { 100 } else { q.limit.min(1000) };
        let limit = sql.arg(Arg::I(limit));
        sql.text = format!(
            "SELECT {} FROM runs r WHERE {} ORDER BY {key} {dir}, run_id {dir} LIMIT {limit}",
            crate::sql::RUN_COLS,
            wheres.join(" AND ")
        );
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("page runs"))?;
        self.summaries(rows).await
    }

    /// None of its reads is of every run of the window: the finished runs
    /// counted per day, pipeline and outcome (`pipeline_days`, kept by
    /// `finish_run`, with their stages run and restored), the durations of
    /// the last 14 days, and each pipeline's newest run by its index.
    pub(crate) async fn health(
        &self,
        now_ms: i64,
        workspaces: Option<&[String]>,
    ) -> Result<Vec<PipelineHealth>> {
        // The window's bounds are numbers this function computed, written
        // into the text; only the workspaces are bound.
        let (since, week, fortnight) = (
            now_ms - 30 * DAY_MS,
            now_ms - 7 * DAY_MS,
            now_ms - 14 * DAY_MS,
        );
        let top = crate::sql::TOP_LEVEL;
        let mut binds = Vec::new();
        let mut filter = String::new();
        workspaces_clause(&mut filter, &mut binds, workspaces);
        let bound = |sql: String| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                q = q.bind(b.clone());
            }
            q
        };
        // Counts by the UTC day runs started: from the day that began 30
        // (7) days ago, whole.
        let (since_day, week_day) = (since.div_euclid(DAY_MS), week.div_euclid(DAY_MS));
        let counts = bound(format!(
            "SELECT pipeline, status, CASE WHEN day >= {week_day} THEN 1 ELSE 0 END AS this_week, \
             CAST(SUM(runs) AS BIGINT) AS n, CAST(SUM(stages_ran) AS BIGINT) AS ran, \
             CAST(SUM(stages_restored) AS BIGINT) AS restored \
             FROM pipeline_days WHERE day >= {since_day}{filter} \
             GROUP BY pipeline, status, CASE WHEN day >= {week_day} THEN 1 ELSE 0 END"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("count the pipelines' runs"))?;
        let mut by: BTreeMap<String, Slot> = BTreeMap::new();
        for r in &counts {
            let pipeline = col_str(r, "pipeline");
            if pipeline.is_empty() {
                continue;
            }
            let (h, ..) = slot(&mut by, pipeline);
            let n = col_opt_i64(r, "n").unwrap_or(0);
            let ok = if col_str(r, "status") == "succeeded" {
                n
            } else {
                0
            };
            h.ended_30d += n;
            h.succeeded_30d += ok;
            if col_i64(r, "this_week") == 1 {
                h.ended_7d += n;
                h.succeeded_7d += ok;
            }
            h.stages_ran_30d += col_opt_i64(r, "ran").unwrap_or(0);
            h.stages_restored_30d += col_opt_i64(r, "restored").unwrap_or(0);
        }
        let durations = bound(format!(
            "SELECT pipeline, started_ms, ended_ms FROM runs \
             WHERE started_ms >= {fortnight} AND ended_ms IS NOT NULL AND {top}{filter}"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read the pipelines' durations"))?;
        for r in &durations {
            if let Some((_, this, before)) = by.get_mut(&col_str(r, "pipeline")) {
                let started = col_i64(r, "started_ms");
                let took = col_opt_i64(r, "ended_ms").unwrap_or(started) - started;
                if started >= week {
                    this.push(took);
                } else {
                    before.push(took);
                }
            }
        }
        // Each pipeline's newest run (running ones too), by its index: the
        // pipelines counted above and every owned one of the workspaces
        // (one with a run under way but none finished in 30 days).
        let owners = crate::CostStore::pipeline_owners(self).await?;
        let mut candidates: Vec<String> = by.keys().cloned().collect();
        candidates.extend(
            owners
                .iter()
                .filter(|(p, o)| {
                    !by.contains_key(*p) && workspaces.is_none_or(|ws| ws.contains(&o.workspace))
                })
                .map(|(p, _)| p.clone()),
        );
        for pipeline in candidates {
            let newest = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT run_id, status, started_ms FROM runs WHERE pipeline = $1 AND started_ms >= {since} \
                 AND {top} ORDER BY started_ms DESC LIMIT 1"
            )))
            .bind(pipeline.clone())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read a pipeline's newest run"))?;
            if let Some(r) = newest {
                let (h, ..) = slot(&mut by, pipeline);
                h.last_run_id = col_str(&r, "run_id");
                h.last_status = col_str(&r, "status");
                h.last_started_ms = col_i64(&r, "started_ms");
            }
        }
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

/// A pipeline's health as it is summed, with its durations this week and
/// the week before.
type Slot = (PipelineHealth, Vec<i64>, Vec<i64>);

fn slot(by: &mut BTreeMap<String, Slot>, pipeline: String) -> &mut Slot {
    by.entry(pipeline.clone()).or_insert_with(|| {
        (
            PipelineHealth {
                pipeline,
                ..Default::default()
            },
            vec![],
            vec![],
        )
    })
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}
