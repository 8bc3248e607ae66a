//! Runs side by side: each one's outcome and commit, the params that
//! differ first, every metric's last value, and the metrics logged at
//! several steps drawn on one chart per metric, a line per run.

use crate::pages::{Page, render, run_for};
use crate::svg::{self, Series};
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{RawQuery, State};
use ferry_metadata::MetricRecord;
use minijinja::{Value, context};
use std::collections::{BTreeMap, BTreeSet};

/// Runs compared at most.
const MAX_RUNS: usize = 10;
/// Metric histories drawn at most (the first by name).
const MAX_CHARTS: usize = 8;

/// The run ids of `run=A&run=B` (as the runs page's checkboxes send them)
/// or `runs=A,B`.
fn ids(query: &str) -> Result<Vec<String>, DashError> {
    let mut out: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "run" && k != "runs" {
            continue;
        }
        for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !(4..=32).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DashError::BadRequest(format!(
                    "run `{id}`: a run id (or its first 4 or more hex digits)"
                )));
            }
            if !out.iter().any(|o| o == id) {
                out.push(id.to_owned());
            }
        }
    }
    if out.len() < 2 || out.len() > MAX_RUNS {
        return Err(DashError::BadRequest(format!(
            "run: choose 2 to {MAX_RUNS} runs to compare ({} given)",
            out.len()
        )));
    }
    Ok(out)
}

/// `/ui/compare?run=A&run=B...`.
pub(crate) async fn compare(
    State(dash): State<Dash>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Page {
    let mut runs = Vec::new();
    for id in ids(query.as_deref().unwrap_or_default())? {
        runs.push(run_for(&dash, &viewer, &id).await?);
    }
    let heads: Vec<Value> = runs
        .iter()
        .map(|r| {
            context! {
                run_id => r.run.run_id,
                pipeline => r.run.pipeline,
                status => r.run.status.as_str(),
                started_ms => r.run.started_ms,
                took_ms => r.run.ended_ms.map(|e| e - r.run.started_ms),
                commit => r.run.git_commit.as_deref().unwrap_or(""),
            }
        })
        .collect();

    // Params: a row per key, those whose values differ first.
    let keys: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.params.iter().map(|(k, _)| k.as_str()))
        .collect();
    let mut params: Vec<(bool, &str, Vec<String>)> = keys
        .into_iter()
        .map(|k| {
            let values: Vec<String> = runs
                .iter()
                .map(|r| {
                    r.params
                        .iter()
                        .find(|(p, _)| p == k)
                        .map_or_else(|| "-".to_owned(), |(_, v)| shown(v))
                })
                .collect();
            let differs = values.iter().any(|v| v != &values[0]);
            (differs, k, values)
        })
        .collect();
    params.sort_by_key(|(differs, k, _)| (!differs, *k));
    let params: Vec<Value> = params
        .into_iter()
        .map(|(differs, key, values)| context! { differs, key, values })
        .collect();

    let named: Vec<(String, &[MetricRecord])> = runs
        .iter()
        .map(|r| {
            (
                format!("run {}", r.run.run_id.chars().take(8).collect::<String>()),
                r.metrics.as_slice(),
            )
        })
        .collect();
    let (metrics, charts) = metric_views(&named);
    render(
        &dash,
        &viewer,
        "compare.html",
        context! { page => "runs", runs => heads, params, metrics, charts },
    )
}

/// Each metric's last value per run (a row per key: `key`, `values`,
/// `differs`, `steps`: the most points a run logged), and the metrics some
/// run logged at several steps drawn one chart per key, a line per run
/// (`key`, `svg`; the first [`MAX_CHARTS`] by name).
pub(crate) fn metric_views(runs: &[(String, &[MetricRecord])]) -> (Vec<Value>, Vec<Value>) {
    let mut history: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    let mut last: BTreeMap<String, (Vec<Option<f64>>, usize)> = BTreeMap::new();
    for (i, (name, metrics)) in runs.iter().enumerate() {
        let mut by_key: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for m in metrics.iter() {
            by_key
                .entry(m.key.as_str())
                .or_default()
                .push((m.step as f64, m.value));
        }
        for (k, mut points) in by_key {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let row = last
                .entry(k.to_owned())
                .or_insert_with(|| (vec![None; runs.len()], 0));
            row.0[i] = points.last().map(|p| p.1);
            row.1 = row.1.max(points.len());
            if points.len() > 1 {
                history.entry(k.to_owned()).or_default().push(Series {
                    name: name.clone(),
                    points,
                });
            }
        }
    }
    let metrics = last
        .into_iter()
        .map(|(key, (values, steps))| {
            let differs = values.iter().any(|v| v != &values[0]);
            context! { key, values, differs, steps }
        })
        .collect();
    let charts = history
        .into_iter()
        .take(MAX_CHARTS)
        .map(|(key, series)| {
            context! { key => key, svg => Value::from_safe_string(svg::lines(&series, "step")) }
        })
        .collect();
    (metrics, charts)
}

/// A param's value as written: a string as itself, anything else as JSON.
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_checkboxes_or_a_list_and_are_checked() {
        assert_eq!(ids("run=abcd&run=ef01&x=1").unwrap(), ["abcd", "ef01"]);
        assert_eq!(ids("runs=abcd%2Cef01,abcd").unwrap(), ["abcd", "ef01"]);
        for bad in ["run=abcd", "run=abcd&run=../x", "run=ab&run=abcd", ""] {
            assert!(ids(bad).is_err(), "{bad}");
        }
    }
}
