//! Costs summed by what a report groups them by (`ferry cost --by ...`).
//! The store sums what it can where it is kept (stage runs that start and
//! end on the same day, grouped by pipeline, stage and day: [`DaySum`]) and
//! hands over the few that cross midnight whole ([`Spanning`]), which are
//! spread over the days or months they span; [`totals`] puts both together.

use crate::spread::{Period, spread};
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
    /// Of them, restored or up to date (costing nothing).
    pub restored: i64,
}

/// One stage run whose time crosses midnight (in the report's zone).
#[derive(Debug, Clone, PartialEq)]
pub struct Spanning {
    pub pipeline: String,
    pub stage: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub charged: f64,
    /// 0 when it made no requests.
    pub requested: f64,
    pub used: f64,
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    /// Stage runs counted (a run spanning several days counts in each).
    pub stage_runs: i64,
    pub restored: i64,
}

/// The report's lines, in key order.
pub fn totals(by: By, sums: &[DaySum], spanning: &[Spanning], offset_minutes: i32) -> Vec<Total> {
    let mut out: BTreeMap<String, Total> = BTreeMap::new();
    let mut add = |key: String, figures: [f64; 4], runs: i64, restored: i64| {
        let t = out.entry(key.clone()).or_insert_with(|| Total {
            key,
            cost_usd: 0.0,
            requested_usd: 0.0,
            used_usd: 0.0,
            requested_used_usd: 0.0,
            stage_runs: 0,
            restored: 0,
        });
        let [charged, requested, used, requested_used] = figures;
        t.cost_usd += charged;
        t.requested_usd += requested;
        t.used_usd += used;
        t.requested_used_usd += requested_used;
        t.stage_runs += runs;
        t.restored += restored;
    };
    for s in sums {
        let key = match by {
            By::Stage => format!("{}/{}", s.pipeline, s.stage),
            By::Pipeline => s.pipeline.clone(),
            By::Day => crate::spread::day_label(s.day, Period::Day),
            By::Month => crate::spread::day_label(s.day, Period::Month),
        };
        let figures = [s.charged, s.requested, s.used, s.requested_used];
        add(key, figures, s.stage_runs, s.restored);
    }
    for s in spanning {
        let whole = |key: String| (key, 1.0);
        let shares: Vec<(String, f64)> = match by {
            By::Stage => vec![whole(format!("{}/{}", s.pipeline, s.stage))],
            By::Pipeline => vec![whole(s.pipeline.clone())],
            By::Day | By::Month => {
                let period = if by == By::Day {
                    Period::Day
                } else {
                    Period::Month
                };
                spread(s.start_ms, s.end_ms, 1.0, period, offset_minutes)
            }
        };
        let requested_used = if s.requested > 0.0 { s.used } else { 0.0 };
        for (key, share) in shares {
            let figures = [s.charged, s.requested, s.used, requested_used].map(|x| x * share);
            add(key, figures, 1, 0);
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(pipeline: &str, stage: &str, day: i64, charged: f64, restored: i64) -> DaySum {
        DaySum {
            pipeline: pipeline.into(),
            stage: stage.into(),
            day,
            charged,
            requested: 0.0,
            used: charged,
            requested_used: 0.0,
            stage_runs: 1 + restored,
            restored,
        }
    }

    /// 2026-11-30 as a day number.
    const NOV_30: i64 = 20_787;

    #[test]
    fn every_grouping_adds_up_to_the_rows_it_sums() {
        let sums = [
            sum("iris", "train", NOV_30, 1.0, 0),
            sum("iris", "train", NOV_30 + 1, 2.0, 1),
            sum("iris", "prepare", NOV_30 + 1, 0.5, 0),
            sum("churn", "train", NOV_30 + 1, 4.0, 0),
        ];
        // 23:00 on the 30th to 02:00 on the 1st: a third in November.
        let span = Spanning {
            pipeline: "iris".into(),
            stage: "train".into(),
            start_ms: NOV_30 * 86_400_000 + 23 * 3_600_000,
            end_ms: NOV_30 * 86_400_000 + 26 * 3_600_000,
            charged: 3.0,
            requested: 6.0,
            used: 1.5,
        };
        let keyed = |by| {
            totals(by, &sums, std::slice::from_ref(&span), 0)
                .into_iter()
                .map(|t| (t.key, t.cost_usd))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keyed(By::Stage),
            [
                ("churn/train".into(), 4.0),
                ("iris/prepare".into(), 0.5),
                ("iris/train".into(), 6.0)
            ]
        );
        assert_eq!(
            keyed(By::Pipeline),
            [("churn".into(), 4.0), ("iris".into(), 6.5)]
        );
        assert_eq!(
            keyed(By::Day),
            [("2026-11-30".into(), 2.0), ("2026-12-01".into(), 8.5)]
        );
        assert_eq!(
            keyed(By::Month),
            [("2026-11".into(), 2.0), ("2026-12".into(), 8.5)]
        );
        let all: f64 = keyed(By::Month).iter().map(|(_, c)| c).sum();
        assert_eq!(all, 10.5);
        let stage = totals(By::Stage, &sums, &[span], 0);
        let train = stage.iter().find(|t| t.key == "iris/train").unwrap();
        assert_eq!(
            (train.stage_runs, train.restored, train.requested_usd),
            (4, 1, 6.0)
        );
    }
}
