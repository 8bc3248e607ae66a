//! The cost ledger (`cost_ledger`, schema 14): per UTC day, pipeline and
//! stage, the day's hours of dollars (`ferry_cost::ledger::DayRow` as
//! JSON). `record_stage` keeps it in the transaction that writes the
//! stage's row: what the row cost before is taken out, what it costs now
//! put in, so a stage recorded again is never counted twice. `ferry cost`
//! (and budgets) read a row per day and pair, not every stage run.

use crate::row::{col_i64, col_opt_f64, col_opt_i64, col_str, query_error};
use crate::{Error, Result, StageRecord};
use ferry_cost::ledger::{DayRow, DaySum, Entry};
use sqlx::any::Any;
use std::collections::BTreeMap;

type Tx<'c> = sqlx::Transaction<'c, Any>;

/// What a stage's row cost, and of which pipeline, before it is written
/// again (`None`: no row, or one that cost nothing).
pub(crate) async fn priced(
    tx: &mut Tx<'_>,
    run_id: &str,
    stage: &str,
) -> Result<Option<(String, Entry)>> {
    let row = sqlx::query(
        "SELECT r.pipeline AS pipeline, s.cost_usd AS charged, s.cost_requested_usd AS requested, \
         s.cost_used_usd AS used, COALESCE(s.started_ms, r.started_ms) AS start_ms, \
         COALESCE(s.ended_ms, s.started_ms, r.started_ms) AS end_ms \
         FROM stage_runs s JOIN runs r ON r.run_id = s.run_id WHERE s.run_id = $1 AND s.stage = $2",
    )
    .bind(run_id)
    .bind(stage)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("read a stage's cost"))?;
    Ok(row.and_then(|r| {
        let e = Entry {
            start_ms: col_opt_i64(&r, "start_ms")?,
            end_ms: col_opt_i64(&r, "end_ms")?,
            charged: col_opt_f64(&r, "charged")?,
            requested: col_opt_f64(&r, "requested").unwrap_or(0.0),
            used: col_opt_f64(&r, "used").unwrap_or(0.0),
        };
        counts(&e).then(|| (col_str(&r, "pipeline"), e))
    }))
}

/// Whether an entry has anything for the ledger.
fn counts(e: &Entry) -> bool {
    e.charged > 0.0 || e.requested > 0.0 || e.used > 0.0
}

/// Takes `before` out of the ledger and puts what `s` costs now in.
pub(crate) async fn replace(
    tx: &mut Tx<'_>,
    run_id: &str,
    s: &StageRecord,
    before: Option<(String, Entry)>,
) -> Result<()> {
    let now = s.cost.as_ref().and_then(|c| {
        let start = s.started_ms.or(s.ended_ms)?;
        let e = Entry {
            start_ms: start,
            end_ms: s.ended_ms.unwrap_or(start),
            charged: c.charged,
            requested: c.requested.unwrap_or(0.0),
            used: c.used,
        };
        counts(&e).then_some(e)
    });
    if before.is_none() && now.is_none() {
        return Ok(());
    }
    let pipeline = match &before {
        Some((p, _)) => p.clone(),
        None => {
            let r = sqlx::query("SELECT pipeline FROM runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(query_error("read a run's pipeline"))?
                .ok_or_else(|| Error::NotFound(format!("no run {run_id}")))?;
            col_str(&r, "pipeline")
        }
    };
    let mut deltas: BTreeMap<i64, DayRow> = BTreeMap::new();
    for (entry, sign) in [(before.map(|b| b.1), -1.0), (now, 1.0)] {
        for (day, row) in entry.iter().flat_map(Entry::days) {
            deltas.entry(day).or_default().add(&row, sign);
        }
    }
    for (day, delta) in deltas {
        let old = sqlx::query(
            "SELECT hours FROM cost_ledger WHERE day = $1 AND pipeline = $2 AND stage = $3",
        )
        .bind(day)
        .bind(&pipeline)
        .bind(&s.stage)
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_error("read the cost ledger"))?;
        let mut row: DayRow = match old {
            Some(r) => parse(&col_str(&r, "hours"))?,
            None => DayRow::default(),
        };
        row.add(&delta, 1.0);
        let q = if row.is_empty() {
            sqlx::query("DELETE FROM cost_ledger WHERE day = $1 AND pipeline = $2 AND stage = $3")
                .bind(day)
                .bind(&pipeline)
                .bind(&s.stage)
        } else {
            let hours = serde_json::to_string(&row)
                .map_err(|e| Error::Invalid(format!("cannot write the cost ledger: {e}")))?;
            sqlx::query(
                "INSERT INTO cost_ledger (day, pipeline, stage, hours) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (day, pipeline, stage) DO UPDATE SET hours = excluded.hours",
            )
            .bind(day)
            .bind(&pipeline)
            .bind(&s.stage)
            .bind(hours)
        };
        q.execute(&mut **tx)
            .await
            .map_err(query_error("write the cost ledger"))?;
    }
    Ok(())
}

fn parse(text: &str) -> Result<DayRow> {
    serde_json::from_str(text)
        .map_err(|e| Error::Invalid(format!("damaged row in the cost ledger: {e}")))
}

/// The ledger's hours in `[since_ms, until_ms)`, summed per pipeline,
/// stage and day in the zone `offset_minutes` east of UTC.
pub(crate) async fn report(
    pool: &sqlx::AnyPool,
    since_ms: i64,
    until_ms: i64,
    offset_minutes: i32,
) -> Result<Vec<DaySum>> {
    const DAY_MS: i64 = 86_400_000;
    let rows = sqlx::query(
        "SELECT day, pipeline, stage, hours FROM cost_ledger WHERE day >= $1 AND day <= $2",
    )
    .bind(since_ms.div_euclid(DAY_MS))
    .bind(until_ms.div_euclid(DAY_MS))
    .fetch_all(pool)
    .await
    .map_err(query_error("read the cost ledger"))?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok((
                col_i64(r, "day"),
                col_str(r, "pipeline"),
                col_str(r, "stage"),
                parse(&col_str(r, "hours"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ferry_cost::ledger::local_days(
        &rows,
        since_ms,
        until_ms,
        offset_minutes,
    ))
}
