//! How a cost spreads over the days or months its time spans: a run that
//! starts on the 31st and ends on the 1st is charged to both months in
//! proportion to its time in each, in the time zone the report is read in
//! (a fixed offset from UTC).

/// A calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

const MS_PER_DAY: i64 = 86_400_000;

/// The shares of `cost`, spent evenly from `start_ms` to `end_ms` (Unix
/// milliseconds), falling in each `period`, labelled `YYYY-MM-DD` or
/// `YYYY-MM` in the zone `offset_minutes` east of UTC. An instant (end at or
/// before start) falls wholly in its period.
pub fn spread(
    start_ms: i64,
    end_ms: i64,
    cost: f64,
    period: Period,
    offset_minutes: i32,
) -> Vec<(String, f64)> {
    let shift = i64::from(offset_minutes) * 60_000;
    let (start, end) = (start_ms + shift, end_ms.max(start_ms) + shift);
    if end == start {
        return vec![(label(start, period), cost)];
    }
    let total = (end - start) as f64;
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut at = start;
    while at < end {
        let next = next_boundary(at, period).min(end);
        let share = cost * (next - at) as f64 / total;
        out.push((label(at, period), share));
        at = next;
    }
    out
}

/// The first instant of the period after the one `ms` is in.
fn next_boundary(ms: i64, period: Period) -> i64 {
    let day = ms.div_euclid(MS_PER_DAY);
    match period {
        Period::Day => (day + 1) * MS_PER_DAY,
        Period::Month => {
            let (y, m, _) = ferry_core::civil_from_days(day);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            ferry_core::days_from_civil(y, m, 1) * MS_PER_DAY
        }
    }
}

fn label(ms: i64, period: Period) -> String {
    day_label(ms.div_euclid(MS_PER_DAY), period)
}

/// The label of day number `day` (days since 1970-01-01) in `period`.
pub(crate) fn day_label(day: i64, period: Period) -> String {
    let (y, m, d) = ferry_core::civil_from_days(day);
    match period {
        Period::Day => format!("{y:04}-{m:02}-{d:02}"),
        Period::Month => format!("{y:04}-{m:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T23:00:00Z.
    const NOV_30_23H: i64 = 1_796_079_600_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn labels_name_the_day_and_month_an_instant_is_in() {
        assert_eq!(label(NOV_30_23H, Period::Day), "2026-11-30");
        assert_eq!(label(NOV_30_23H + HOUR, Period::Month), "2026-12");
        assert_eq!(label(-1, Period::Day), "1969-12-31");
    }

    #[test]
    fn a_run_across_a_month_boundary_is_charged_to_both_months_by_its_time_in_each() {
        // 23:00 on the 30th of November to 02:00 on the 1st of December
        // (UTC): one hour in November, two in December.
        let s = spread(NOV_30_23H, NOV_30_23H + 3 * HOUR, 3.0, Period::Month, 0);
        assert_eq!(s, vec![("2026-11".into(), 1.0), ("2026-12".into(), 2.0)]);
        // Read in UTC+2, all of it is on the 1st and 2nd of December.
        let s = spread(NOV_30_23H, NOV_30_23H + 3 * HOUR, 3.0, Period::Month, 120);
        assert_eq!(s, vec![("2026-12".into(), 3.0)]);
        // Read in UTC-5 (18:00 to 21:00 on the 30th): all November, one day.
        let s = spread(NOV_30_23H, NOV_30_23H + 3 * HOUR, 3.0, Period::Day, -300);
        assert_eq!(s, vec![("2026-11-30".into(), 3.0)]);
    }

    #[test]
    fn days_split_at_midnight_and_an_instant_stays_whole() {
        let s = spread(NOV_30_23H, NOV_30_23H + 49 * HOUR, 49.0, Period::Day, 0);
        let days: Vec<&str> = s.iter().map(|(d, _)| d.as_str()).collect();
        // It ends at midnight on the 3rd: nothing of it is on the 3rd.
        assert_eq!(days, ["2026-11-30", "2026-12-01", "2026-12-02"]);
        let shares: Vec<f64> = s.iter().map(|(_, c)| *c).collect();
        assert_eq!(shares, [1.0, 24.0, 24.0]);
        assert_eq!(
            spread(NOV_30_23H, NOV_30_23H, 0.5, Period::Month, 0),
            vec![("2026-11".into(), 0.5)]
        );
    }
}
