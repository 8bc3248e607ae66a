//! `ferry cost`: what runs cost, summed from each stage's recorded cost
//! (`ferry-cost` priced it when the stage settled) by stage, pipeline, day
//! or month, as a table, JSON lines or CSV.

use crate::cli::CostArgs;
use crate::ctx::Ctx;
use crate::exit::{self, store_err, usage};
use crate::place::Reader;
use anyhow::Result;
use ferry_cost::ledger::{By, Total, totals};

const DAY_MS: i64 = 86_400_000;

pub(crate) fn cost(ctx: &Ctx, a: CostArgs) -> Result<u8> {
    let by = match a.by.as_str() {
        "stage" => By::Stage,
        "day" => By::Day,
        "month" => By::Month,
        _ => By::Pipeline,
    };
    let offset = utc_offset(&a.utc_offset)?;
    let now = ferry_core::now_ms();
    let since = instant(&a.since, "--since", offset, now)?;
    let until = match &a.until {
        Some(u) => instant(u, "--until", offset, now)?,
        None => now + 1,
    };
    if until <= since {
        return Err(usage(format!(
            "--until ({}) is not after --since ({})",
            a.until.as_deref().unwrap_or("now"),
            a.since
        )));
    }
    let store = match ctx.reader(&a.place)? {
        Reader::Store { store, .. } => store,
        Reader::Server(_) => {
            return Err(a.place.no_server(
                "ferry cost",
                "a team server's costs are summed on its store",
                "give the store that `ferry server` works on with `--store URL`",
            ));
        }
    };
    let sums = store
        .call(|s| Box::pin(async move { s.stage_costs(since, until, offset).await }))
        .map_err(store_err)?;
    let lines = totals(by, &sums);
    if a.json {
        crate::ui::print_json(&lines)?;
    } else if a.csv {
        print!("{}", csv(&lines));
    } else {
        print!("{}", table(by, &lines));
    }
    Ok(exit::OK)
}

/// `+HH:MM` / `-HH:MM` as minutes east of UTC.
fn utc_offset(s: &str) -> Result<i32> {
    let bad = || {
        usage(format!(
            "--utc-offset `{s}`: write it as +HH:MM or -HH:MM (`+02:00`)"
        ))
    };
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 || h < 0 || m < 0 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

/// A date (`YYYY-MM-DD`, midnight in the zone) or a while ago (`30d`).
fn instant(s: &str, flag: &str, offset_minutes: i32, now: i64) -> Result<i64> {
    if let Some(day) = date(s) {
        return Ok(day * DAY_MS - i64::from(offset_minutes) * 60_000);
    }
    let ago = crate::admin::duration_ms(s).map_err(|_| {
        usage(format!(
            "{flag} `{s}`: give a date (`2026-11-01`) or a while (`30d`, `12h`)"
        ))
    })?;
    Ok(now - ago)
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn date(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if s.len() != 10 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = ferry_core::days_from_civil(y, m, d);
    // A day past the month's end (`2026-02-30`) is no date.
    (ferry_core::civil_from_days(day) == (y, m, d)).then_some(day)
}

fn header(by: By) -> &'static str {
    match by {
        By::Stage => "STAGE",
        By::Pipeline => "PIPELINE",
        By::Day => "DAY",
        By::Month => "MONTH",
    }
}

/// The lines as a table, with their total.
fn table(by: By, lines: &[Total]) -> String {
    if lines.is_empty() {
        return "no priced stage runs in this window\n".to_owned();
    }
    let money = crate::ui::money;
    let row = |t: &Total| {
        let efficiency = if t.requested_usd > 0.0 {
            format!("{:.0}%", 100.0 * t.requested_used_usd / t.requested_usd)
        } else {
            "-".to_owned()
        };
        vec![
            t.key.clone(),
            money(t.cost_usd),
            money(t.requested_usd),
            money(t.used_usd),
            efficiency,
            t.stage_runs.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = lines.iter().map(row).collect();
    let all = Total {
        key: "total".into(),
        cost_usd: lines.iter().map(|t| t.cost_usd).sum(),
        requested_usd: lines.iter().map(|t| t.requested_usd).sum(),
        used_usd: lines.iter().map(|t| t.used_usd).sum(),
        requested_used_usd: lines.iter().map(|t| t.requested_used_usd).sum(),
        stage_runs: lines.iter().map(|t| t.stage_runs).sum(),
    };
    rows.push(row(&all));
    crate::ui::table(
        "",
        &[
            header(by),
            "COST",
            "REQUESTED",
            "USED",
            "EFFICIENCY",
            "STAGE RUNS",
        ],
        &rows,
    )
}

/// The lines as CSV (a key with a comma or quote is quoted).
fn csv(lines: &[Total]) -> String {
    let mut out = String::from("key,cost_usd,requested_usd,used_usd,stage_runs\n");
    for t in lines {
        let key = if t.key.contains([',', '"', '\n']) {
            format!("\"{}\"", t.key.replace('"', "\"\""))
        } else {
            t.key.clone()
        };
        out.push_str(&format!(
            "{key},{},{},{},{}\n",
            t.cost_usd, t.requested_usd, t.used_usd, t.stage_runs
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_dates_and_whiles_are_read_or_refused() {
        assert_eq!(utc_offset("+02:00").unwrap(), 120);
        assert_eq!(utc_offset("-05:30").unwrap(), -330);
        for bad in ["02:00", "+2", "+25:00", "+02:75", ""] {
            assert!(utc_offset(bad).is_err(), "{bad}");
        }
        // 2026-11-30 midnight at UTC+2 is 22:00 on the 29th in UTC.
        let at = instant("2026-11-30", "--since", 120, 0).unwrap();
        assert_eq!(at, 20_787 * DAY_MS - 2 * 3_600_000);
        assert_eq!(
            instant("2d", "--since", 0, 10 * DAY_MS).unwrap(),
            8 * DAY_MS
        );
        for bad in ["2026-02-30", "2026-13-01", "yesterday", "2026-1-1"] {
            assert!(instant(bad, "--since", 0, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let t = Total {
            key: "a,\"b\"".into(),
            cost_usd: 0.5,
            requested_usd: 0.0,
            used_usd: 0.5,
            requested_used_usd: 0.0,
            stage_runs: 2,
        };
        assert_eq!(
            csv(&[t]),
            "key,cost_usd,requested_usd,used_usd,stage_runs\n\"a,\"\"b\"\"\",0.5,0,0.5,2\n"
        );
    }
}
