//! Costs summed by what a report groups them by (`ferry cost --by ...`).
//! The store keeps a ledger: per UTC day, pipeline and stage, the day's 24
//! hours of dollars ([`DayRow`]), each stage's cost spread over the hours
//! it ran ([`Entry::days`]) when it is recorded. A report reads the rows of
//! its window and sums them by stage, pipeline, or day or month in its time
//! zone ([`DaySum`] per local day, then [`totals`]). Whole-hour offsets are
//! exact; a zone offset by a half hour counts each hour on the side of
//! midnight its start falls.

use std::collections::BTreeMap;

/// What a report groups costs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Stage,
    Pipeline,
    Day,
    Month,
}

/// Stage runs of one pipeline's stage that started and ended on one day
/// (in the report's time zone), summed.
#[derive(Debug, Clone, PartialEq)]
pub struct DaySum {
    pub pipeline: String,
    pub stage: String,
    /// Days since 1970-01-01 in the report's time zone.
    pub day: i64,
    pub charged: f64,
    pub requested: f64,
    pub used: f64,
    /// What the stage runs that made requests used (against `requested`).
    pub requested_used: f64,
    pub stage_runs: i64,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// One UTC day of a pipeline's stage in the ledger: per hour, the dollars
/// charged, requested, used and used under requests, and the stage runs
/// that started in it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DayRow {
    pub charged: Vec<f64>,
    pub requested: Vec<f64>,
    pub used: Vec<f64>,
    pub requested_used: Vec<f64>,
    pub runs: Vec<i64>,
}

impl DayRow {
    fn slot(v: &mut Vec<f64>, h: usize) -> &mut f64 {
        if v.len() < 24 {
            v.resize(24, 0.0);
        }
        &mut v[h]
    }

    /// Adds `other` into this row (with `sign` -1, takes it out).
    pub fn add(&mut self, other: &DayRow, sign: f64) {
        for h in 0..24 {
            let get = |v: &Vec<f64>| v.get(h).copied().unwrap_or(0.0);
            *Self::slot(&mut self.charged, h) += sign * get(&other.charged);
            *Self::slot(&mut self.requested, h) += sign * get(&other.requested);
            *Self::slot(&mut self.used, h) += sign * get(&other.used);
            *Self::slot(&mut self.requested_used, h) += sign * get(&other.requested_used);
            if self.runs.len() < 24 {
                self.runs.resize(24, 0);
            }
            self.runs[h] += sign as i64 * other.runs.get(h).copied().unwrap_or(0);
        }
    }

    /// Whether every figure is zero (the row can go).
    pub fn is_empty(&self) -> bool {
        let zero = |v: &[f64]| v.iter().all(|x| x.abs() < 1e-15);
        zero(&self.charged)
            && zero(&self.requested)
            && zero(&self.used)
            && self.runs.iter().all(|n| *n == 0)
    }
}

/// One stage run's cost, as the ledger takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub start_ms: i64,
    pub end_ms: i64,
    pub charged: f64,
    /// 0 when it made no requests.
    pub requested: f64,
    pub used: f64,
}

impl Entry {
    /// Its figures spread evenly over the UTC hours it ran, by UTC day
    /// number (an instant falls whole in its hour); the run is counted in
    /// the hour it started.
    pub fn days(&self) -> Vec<(i64, DayRow)> {
        let mut out: Vec<(i64, DayRow)> = Vec::new();
        let (start, end) = (self.start_ms, self.end_ms.max(self.start_ms));
        let total = (end - start) as f64;
        let mut at = start;
        let requested_used = if self.requested > 0.0 { self.used } else { 0.0 };
        loop {
            let next = ((at.div_euclid(HOUR_MS)) + 1) * HOUR_MS;
            let share = if total == 0.0 {
                1.0
            } else {
                (next.min(end) - at) as f64 / total
            };
            let (day, h) = (
                at.div_euclid(DAY_MS),
                (at.rem_euclid(DAY_MS) / HOUR_MS) as usize,
            );
            if out.last().is_none_or(|(d, _)| *d != day) {
                out.push((day, DayRow::default()));
            }
            let row = &mut out.last_mut().expect("pushed").1;
            *DayRow::slot(&mut row.charged, h) += self.charged * share;
            *DayRow::slot(&mut row.requested, h) += self.requested * share;
            *DayRow::slot(&mut row.used, h) += self.used * share;
            *DayRow::slot(&mut row.requested_used, h) += requested_used * share;
            if row.runs.len() < 24 {
                row.runs.resize(24, 0);
            }
            if at == start {
                row.runs[h] += 1;
            }
            if next >= end {
                break;
            }
            at = next;
        }
        out
    }
}

/// The ledger rows of `[since_ms, until_ms)` summed per pipeline, stage and
/// day in the zone `offset_minutes` east of UTC (hours in the window only).
pub fn local_days(
    rows: &[(i64, String, String, DayRow)],
    since_ms: i64,
    until_ms: i64,
    offset_minutes: i32,
) -> Vec<DaySum> {
    let offset = i64::from(offset_minutes) * 60_000;
    let mut out: BTreeMap<(String, String, i64), DaySum> = BTreeMap::new();
    for (day, pipeline, stage, row) in rows {
        for h in 0..24 {
            let hour_ms = day * DAY_MS + h as i64 * HOUR_MS;
            if hour_ms + HOUR_MS <= since_ms || hour_ms >= until_ms {
                continue;
            }
            let get = |v: &Vec<f64>| v.get(h).copied().unwrap_or(0.0);
            let runs = row.runs.get(h).copied().unwrap_or(0);
            if get(&row.charged) == 0.0 && runs == 0 {
                continue;
            }
            let local = (hour_ms + offset).div_euclid(DAY_MS);
            let s = out
                .entry((pipeline.clone(), stage.clone(), local))
                .or_insert_with(|| DaySum {
                    pipeline: pipeline.clone(),
                    stage: stage.clone(),
                    day: local,
                    charged: 0.0,
                    requested: 0.0,
                    used: 0.0,
                    requested_used: 0.0,
                    stage_runs: 0,
                });
            s.charged += get(&row.charged);
            s.requested += get(&row.requested);
            s.used += get(&row.used);
            s.requested_used += get(&row.requested_used);
            s.stage_runs += runs;
        }
    }
    out.into_values().collect()
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Total {
    /// The stage (`pipeline/stage`), pipeline, day (`YYYY-MM-DD`) or month
    /// (`YYYY-MM`).
    pub key: String,
    pub cost_usd: f64,
    /// What requests came to, for the stage runs that made them.
    pub requested_usd: f64,
    pub used_usd: f64,
    /// What the stage runs that made requests used: over `requested_usd`,
    /// their efficiency.
    pub requested_used_usd: f64,
    /// Stage runs that cost something, counted where they started.
    pub stage_runs: i64,
}

/// The report's lines, in key order, from the ledger's sums per local day.
pub fn totals(by: By, sums: &[DaySum]) -> Vec<Total> {
    let mut out: BTreeMap<String, Total> = BTreeMap::new();
    for s in sums {
        let key = match by {
            By::Stage => format!("{}/{}", s.pipeline, s.stage),
            By::Pipeline => s.pipeline.clone(),
            By::Day | By::Month => {
                let (y, m, d) = ferry_core::civil_from_days(s.day);
                if by == By::Day {
                    format!("{y:04}-{m:02}-{d:02}")
                } else {
                    format!("{y:04}-{m:02}")
                }
            }
        };
        let t = out.entry(key.clone()).or_insert_with(|| Total {
            key,
            cost_usd: 0.0,
            requested_usd: 0.0,
            used_usd: 0.0,
            requested_used_usd: 0.0,
            stage_runs: 0,
        });
        t.cost_usd += s.charged;
        t.requested_usd += s.requested;
        t.used_usd += s.used;
        t.requested_used_usd += s.requested_used;
        t.stage_runs += s.stage_runs;
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(pipeline: &str, stage: &str, day: i64, charged: f64) -> DaySum {
        DaySum {
            pipeline: pipeline.into(),
            stage: stage.into(),
            day,
            charged,
            requested: 0.0,
            used: charged,
            requested_used: 0.0,
            stage_runs: 1,
        }
    }

    /// 2026-11-30 as a day number.
    const NOV_30: i64 = 20_787;

    #[test]
    fn every_grouping_adds_up_to_the_rows_it_sums() {
        let sums = [
            sum("iris", "train", NOV_30, 1.0),
            sum("iris", "train", NOV_30 + 1, 2.0),
            sum("iris", "prepare", NOV_30 + 1, 0.5),
            sum("churn", "train", NOV_30 + 1, 4.0),
        ];
        let keyed = |by| {
            totals(by, &sums)
                .into_iter()
                .map(|t| (t.key, t.cost_usd))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keyed(By::Stage),
            [
                ("churn/train".into(), 4.0),
                ("iris/prepare".into(), 0.5),
                ("iris/train".into(), 3.0)
            ]
        );
        assert_eq!(
            keyed(By::Pipeline),
            [("churn".into(), 4.0), ("iris".into(), 3.5)]
        );
        assert_eq!(
            keyed(By::Day),
            [("2026-11-30".into(), 1.0), ("2026-12-01".into(), 6.5)]
        );
        assert_eq!(
            keyed(By::Month),
            [("2026-11".into(), 1.0), ("2026-12".into(), 6.5)]
        );
        let train = totals(By::Stage, &sums);
        assert_eq!(train[2].stage_runs, 2);
    }
}

#[cfg(test)]
mod ledger_tests {
    use super::*;

    const H: i64 = HOUR_MS;

    #[test]
    fn a_cost_is_spread_over_the_hours_it_ran_and_counted_once() {
        // 22:30 to 01:30 (UTC) on the 30th of November: 3 hours, $3.
        let nov30 = 20_787 * DAY_MS;
        let e = Entry {
            start_ms: nov30 + 22 * H + H / 2,
            end_ms: nov30 + 25 * H + H / 2,
            charged: 3.0,
            requested: 6.0,
            used: 1.5,
        };
        let days = e.days();
        assert_eq!(days.len(), 2);
        let (d0, r0) = &days[0];
        assert_eq!(
            (*d0, r0.charged[22], r0.charged[23], r0.runs[22]),
            (20_787, 0.5, 1.0, 1)
        );
        let (d1, r1) = &days[1];
        assert_eq!(
            (
                *d1,
                r1.charged[0],
                r1.charged[1],
                r1.runs.iter().sum::<i64>()
            ),
            (20_788, 1.0, 0.5, 0)
        );
        // Taken out again, nothing is left.
        let mut row = r0.clone();
        row.add(r0, -1.0);
        assert!(row.is_empty());
        // Read back per local day: at UTC, 1.5 on the 30th and 1.5 on the
        // 1st; at UTC+2 all of it on the 1st.
        let rows: Vec<(i64, String, String, DayRow)> = days
            .into_iter()
            .map(|(d, r)| (d, "iris".to_owned(), "train".to_owned(), r))
            .collect();
        let utc = local_days(&rows, 0, i64::MAX, 0);
        let got: Vec<(i64, f64, i64)> = utc
            .iter()
            .map(|s| (s.day, s.charged, s.stage_runs))
            .collect();
        assert_eq!(got, [(20_787, 1.5, 1), (20_788, 1.5, 0)]);
        let east = local_days(&rows, 0, i64::MAX, 120);
        let got: Vec<(i64, f64)> = east.iter().map(|s| (s.day, s.charged)).collect();
        assert_eq!(got, [(20_788, 3.0)]);
        // A window that ends at midnight UTC keeps the 30th only.
        let before = local_days(&rows, 0, nov30 + 24 * H, 0);
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].charged, 1.5);
    }
}
