//! `ferry cost`: what runs cost, summed from each stage's recorded cost
//! (`ferry-cost` priced it when the stage settled) by team, project,
//! pipeline, stage, day or month, or per model version (what built it and
//! what serving it cost), as a table, JSON or CSV; and `ferry budget`.

use crate::cli::{BudgetCommand, CostArgs};
use crate::ctx::Ctx;
use crate::exit::{self, client_err, store_err, usage};
use crate::place::Reader;
use anyhow::Result;
use ferry_cost::budget::{Budget, Scope, Standing, check_webhook, parse_alerts};
use ferry_cost::ledger::{By, Total};
use ferry_metadata::{BlockingStore, Grouping, Stored, VersionCost};

const DAY_MS: i64 = 86_400_000;

pub(crate) fn cost(ctx: &Ctx, a: CostArgs) -> Result<u8> {
    let grouping = Grouping::parse(&a.by).ok_or_else(|| {
        usage(format!(
            "--by `{}`: one of {}",
            a.by,
            Grouping::NAMES.join(", ")
        ))
    })?;
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
    let report = match ctx.reader(&a.place)? {
        Reader::Store { store, layout } if grouping == Grouping::Storage => {
            Report::Storage(local_storage(ctx, &store, layout.as_ref())?)
        }
        Reader::Store { store, .. } => local_report(&store, grouping, (since, until), offset)?,
        Reader::Server(url) => {
            let client = ferry_client::Client::new(&url).map_err(client_err)?;
            let v = client
                .cost_report(&a.by, since, until, offset)
                .map_err(client_err)?;
            let bad = |e: serde_json::Error| anyhow::anyhow!("the server's cost report: {e}");
            if grouping == Grouping::Model {
                Report::Versions(serde_json::from_value(v["versions"].clone()).map_err(bad)?)
            } else if grouping == Grouping::Storage {
                Report::Storage(serde_json::from_value(v["storage"].clone()).map_err(bad)?)
            } else {
                Report::Lines(serde_json::from_value(v["lines"].clone()).map_err(bad)?)
            }
        }
    };
    match report {
        Report::Versions(v) => print_versions(&v, &a)?,
        Report::Storage(v) => print_storage(&v, &a)?,
        Report::Lines(lines) => {
            if a.json {
                crate::ui::print_json(&lines)?;
            } else if a.csv {
                print!("{}", csv(&lines));
            } else {
                print!("{}", table(header(grouping), &lines));
            }
        }
    }
    Ok(exit::OK)
}

/// A report: lines summed from the ledger, model versions, or what is
/// kept.
enum Report {
    Lines(Vec<Total>),
    Versions(Vec<VersionCost>),
    Storage(Vec<Stored>),
}

/// `--by storage` on a store: its registry by model and, in a project,
/// this machine's cache, at the project's machine class's storage price.
fn local_storage(
    ctx: &Ctx,
    store: &BlockingStore,
    layout: Option<&ferry_runner::Layout>,
) -> Result<Vec<Stored>> {
    let project = layout.and_then(|_| ctx.project().ok());
    let (prices, machine, workspace) = match &project {
        Some(p) => (
            p.pipeline.cost.prices.clone(),
            p.pipeline.cost.machine.clone(),
            p.pipeline.workspace.clone(),
        ),
        None => (
            ferry_cost::Prices::shipped(),
            ferry_cost::prices::DEFAULT_MACHINE.to_owned(),
            ferry_metadata::DEFAULT_WORKSPACE.to_owned(),
        ),
    };
    let gib_month = prices
        .get(&machine)
        .map_err(|e| usage(format!("cost.machine: {e}")))?
        .storage_gib_month;
    let mut out: Vec<Stored> = store
        .call(|s| Box::pin(async move { s.registry_storage().await }))
        .map_err(store_err)?
        .into_iter()
        .map(|s| s.priced(gib_month))
        .collect();
    if let (Some(p), Some(layout)) = (&project, layout) {
        let (objects, bytes) = folder_size(&layout.cache());
        out.push(
            Stored {
                place: "cache".into(),
                name: p.pipeline.name.clone(),
                workspace,
                objects,
                bytes,
                usd_month: 0.0,
            }
            .priced(gib_month),
        );
    }
    Ok(out)
}

/// The files under `dir` and their bytes (none when it does not exist).
fn folder_size(dir: &std::path::Path) -> (i64, i64) {
    let (mut files, mut bytes) = (0i64, 0i64);
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => {
                    files += 1;
                    bytes += e.metadata().map_or(0, |m| m.len() as i64);
                }
                _ => {}
            }
        }
    }
    (files, bytes)
}

/// `--by storage`: what is kept, by owner, and what it costs a month.
fn print_storage(stored: &[Stored], a: &CostArgs) -> Result<()> {
    if a.json {
        return crate::ui::print_json(&stored);
    }
    if a.csv {
        let mut out = String::from("place,name,workspace,objects,bytes,usd_month\n");
        for s in stored {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                s.place,
                csv_field(&s.name),
                csv_field(&s.workspace),
                s.objects,
                s.bytes,
                s.usd_month
            ));
        }
        print!("{out}");
        return Ok(());
    }
    if stored.is_empty() {
        println!("nothing kept: no registered versions, no cache");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = stored
        .iter()
        .map(|s| {
            vec![
                s.place.clone(),
                s.name.clone(),
                s.workspace.clone(),
                s.objects.to_string(),
                crate::ui::bytes(s.bytes),
                crate::ui::money(s.usd_month),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::ui::table(
            "",
            &["PLACE", "NAME", "TEAM", "OBJECTS", "SIZE", "A MONTH"],
            &rows
        )
    );
    Ok(())
}

/// The report from a store (a server answers the same from its own).
fn local_report(
    store: &BlockingStore,
    grouping: Grouping,
    (since, until): (i64, i64),
    offset: i32,
) -> Result<Report> {
    if grouping == Grouping::Model {
        let v = store
            .call(|s| Box::pin(async move { s.version_costs(since, until).await }))
            .map_err(store_err)?;
        return Ok(Report::Versions(v));
    }
    let sums = store
        .call(|s| Box::pin(async move { s.stage_costs(since, until, offset).await }))
        .map_err(store_err)?;
    let owners = match grouping {
        Grouping::Team | Grouping::Project => store
            .call(|s| Box::pin(async move { s.pipeline_owners().await }))
            .map_err(store_err)?,
        _ => Default::default(),
    };
    Ok(Report::Lines(grouping.lines(sums, &owners)))
}

/// `--by model`: each version built or served in the window, what its
/// run cost to build it and what serving it cost, per 1,000 predictions.
fn print_versions(versions: &[VersionCost], a: &CostArgs) -> Result<()> {
    if a.json {
        crate::ui::print_json(&versions)?;
    } else if a.csv {
        let mut out = String::from(
            "model,version,run_id,build_usd,restored_stages,predictions,serving_cpu_seconds,serving_usd,per_1k_predictions_usd\n",
        );
        for v in versions {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                csv_field(&v.model),
                v.version,
                v.run_id.as_deref().unwrap_or(""),
                v.build_usd,
                v.restored_stages,
                v.predictions,
                v.serving_cpu_seconds,
                v.serving_usd,
                v.per_1k_predictions_usd
                    .map_or(String::new(), |x| x.to_string()),
            ));
        }
        print!("{out}");
    } else {
        print!("{}", model_table(versions));
    }
    Ok(())
}

fn model_table(versions: &[VersionCost]) -> String {
    if versions.is_empty() {
        return "no model version built or served in this window\n".to_owned();
    }
    let money = crate::ui::money;
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            let built = if v.restored_stages > 0 {
                format!("{} ({} restored)", money(v.build_usd), v.restored_stages)
            } else {
                money(v.build_usd)
            };
            vec![
                format!("{}/{}", v.model, v.version),
                built,
                money(v.serving_usd),
                v.predictions.to_string(),
                v.per_1k_predictions_usd.map_or("-".to_owned(), money),
            ]
        })
        .collect();
    crate::ui::table(
        "",
        &["VERSION", "BUILD", "SERVING", "PREDICTIONS", "PER 1K"],
        &rows,
    )
}

/// `ferry budget set|list|remove`, on the store (the project's or
/// `--store`: a budget holder is whoever holds the store, and every change
/// is audited as them), or through a team server (`--server`: its admins
/// set budgets, anyone reads them; the server audits).
pub(crate) fn budget(ctx: &Ctx, c: BudgetCommand) -> Result<u8> {
    let why = "budgets are kept in the store that runs are recorded in";
    match c {
        BudgetCommand::Set {
            target,
            monthly,
            alert,
            webhook,
            place,
        } => {
            let scope = Scope::parse(&target).map_err(usage)?;
            if !(monthly.is_finite() && monthly >= 0.0) {
                return Err(usage(format!(
                    "--monthly {monthly}: give an amount of US dollars, 0 or more"
                )));
            }
            let alerts = parse_alerts(&alert).map_err(|e| usage(format!("--alert: {e}")))?;
            if let Some(w) = &webhook {
                check_webhook(w).map_err(|e| usage(format!("--webhook: {e}")))?;
            }
            let b = Budget {
                scope: scope.clone(),
                monthly_usd: monthly,
                alerts,
                webhook,
            };
            if let Some(client) = server(&place)? {
                let body = serde_json::json!({
                    "target": scope.to_string(),
                    "monthly_usd": b.monthly_usd,
                    "alerts": b.alerts,
                    "webhook": b.webhook,
                });
                client.set_budget(&body).map_err(client_err)?;
                eprintln!("budget {scope}: {} a month", crate::ui::money(monthly));
                return Ok(exit::OK);
            }
            let (url, _) = ctx.store_url(&place, "ferry budget set", why, true)?;
            let store = BlockingStore::open(&url)?;
            let now = ferry_core::now_ms();
            store
                .call(|s| Box::pin(async move { s.set_budget(&b, now).await }))
                .map_err(store_err)?;
            crate::admin::record(
                &store,
                "budget.set",
                scope.to_string(),
                Some(format!("{} a month", crate::ui::money(monthly))),
            )?;
            eprintln!("budget {scope}: {} a month", crate::ui::money(monthly));
            Ok(exit::OK)
        }
        BudgetCommand::Remove { target, place } => {
            let scope = Scope::parse(&target).map_err(usage)?;
            if let Some(client) = server(&place)? {
                client
                    .remove_budget(&scope.to_string())
                    .map_err(client_err)?;
                eprintln!("budget {scope} removed");
                return Ok(exit::OK);
            }
            let (url, _) = ctx.store_url(&place, "ferry budget remove", why, false)?;
            let store = BlockingStore::open(&url)?;
            let sc = scope.clone();
            let removed = store
                .call(|s| Box::pin(async move { s.remove_budget(&sc).await }))
                .map_err(store_err)?;
            if !removed {
                return Err(usage(format!("no budget {scope}")));
            }
            crate::admin::record(&store, "budget.remove", scope.to_string(), None)?;
            eprintln!("budget {scope} removed");
            Ok(exit::OK)
        }
        BudgetCommand::List { json, place } => {
            let standings: Vec<Standing> = match server(&place)? {
                Some(client) => {
                    let v = client.budgets().map_err(client_err)?;
                    serde_json::from_value(v["budgets"].clone())
                        .map_err(|e| anyhow::anyhow!("the server's budgets: {e}"))?
                }
                None => {
                    let (url, _) = ctx.store_url(&place, "ferry budget list", why, false)?;
                    let store = BlockingStore::open(&url)?;
                    let now = ferry_core::now_ms();
                    store
                        .call(|s| Box::pin(async move { s.budgets(now).await }))
                        .map_err(store_err)?
                }
            };
            if json {
                let shown: Vec<_> = standings
                    .iter()
                    .map(ferry_metadata::standing_view)
                    .collect();
                crate::ui::print_json(&shown)?;
            } else {
                print!("{}", budget_table(&standings));
            }
            Ok(exit::OK)
        }
    }
}

/// The team server `--server` names, if any.
fn server(place: &crate::cli::Place) -> Result<Option<ferry_client::Client>> {
    match place.target()? {
        crate::place::Target::Server(url) => {
            Ok(Some(ferry_client::Client::new(url).map_err(client_err)?))
        }
        _ => Ok(None),
    }
}

fn budget_table(standings: &[Standing]) -> String {
    if standings.is_empty() {
        return "no budgets: `ferry budget set WORKSPACE --monthly AMOUNT` sets one\n".to_owned();
    }
    let money = crate::ui::money;
    let rows: Vec<Vec<String>> = standings
        .iter()
        .map(|s| {
            let used = if s.budget.monthly_usd > 0.0 {
                format!("{:.0}%", 100.0 * s.spent_usd / s.budget.monthly_usd)
            } else {
                "-".to_owned()
            };
            vec![
                s.budget.scope.to_string(),
                money(s.budget.monthly_usd),
                s.period.clone(),
                money(s.spent_usd),
                used,
                money(s.reserved_usd),
                money(s.left_usd().max(0.0)),
                s.budget
                    .alerts
                    .iter()
                    .map(|a| format!("{a}%"))
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    crate::ui::table(
        "",
        &[
            "BUDGET", "MONTHLY", "MONTH", "SPENT", "USED", "HELD", "LEFT", "ALERTS",
        ],
        &rows,
    )
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

fn header(g: Grouping) -> &'static str {
    match g {
        Grouping::Ledger(By::Stage) => "STAGE",
        Grouping::Ledger(By::Pipeline) => "PIPELINE",
        Grouping::Ledger(By::Day) => "DAY",
        Grouping::Ledger(By::Month) => "MONTH",
        Grouping::Team => "TEAM",
        Grouping::Project => "PROJECT",
        Grouping::Model => "VERSION",
        Grouping::Storage => "PLACE",
    }
}

/// The lines as a table under `header`, with their total.
fn table(header: &str, lines: &[Total]) -> String {
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
            header,
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
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            csv_field(&t.key),
            t.cost_usd,
            t.requested_usd,
            t.used_usd,
            t.stage_runs
        ));
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
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
