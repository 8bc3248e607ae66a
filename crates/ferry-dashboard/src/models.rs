//! The registry's pages: models, a model's versions with their aliases and
//! metrics across versions, and a version's lineage as a graph (data,
//! commit and environment -> the run -> the version).

use crate::pages::{Page, render};
use crate::svg::{self, Node, Series};
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{Path, State};
use ferry_metadata::ModelVersion;
use minijinja::{Value, context};
use std::collections::BTreeMap;

/// Whether the viewer may see the registered model `name`.
pub(crate) async fn visible(dash: &Dash, viewer: &Viewer, name: &str) -> Result<bool, DashError> {
    if *viewer == Viewer::All {
        return Ok(true);
    }
    let ws = dash
        .store
        .workspace_of(ferry_auth::ResourceType::RegisteredModel, name)
        .await?;
    Ok(viewer.sees(&ws))
}

/// A model the viewer may not see is answered as one that does not exist.
async fn check(dash: &Dash, viewer: &Viewer, name: &str) -> Result<(), DashError> {
    if visible(dash, viewer, name).await? {
        Ok(())
    } else {
        Err(DashError::NotFound(format!("no model `{name}`")))
    }
}

/// `/ui/models`: every model the viewer may see, with its aliases.
pub(crate) async fn models(State(dash): State<Dash>, viewer: Viewer) -> Page {
    let mut shown = Vec::new();
    for m in dash.store.list_models().await? {
        if visible(&dash, &viewer, &m.name).await? {
            shown.push(m);
        }
    }
    render(
        &dash,
        &viewer,
        "models.html",
        context! { page => "models", models => Value::from_serialize(&shown) },
    )
}

/// A version's metrics as numbers (its lineage's `metrics`).
fn metrics_of(v: &ModelVersion) -> BTreeMap<String, f64> {
    v.lineage
        .get("metrics")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, x)| x.as_f64().map(|x| (k.clone(), x)))
                .collect()
        })
        .unwrap_or_default()
}

/// `/ui/models/{name}`: its versions (newest first) with aliases, the run
/// and commit each came from and whether a rollout rejected it; each
/// metric across versions; where its aliases pointed over time; its
/// rollouts.
pub(crate) async fn model(
    State(dash): State<Dash>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Page {
    check(&dash, &viewer, &name).await?;
    let mut versions = dash.store.list_versions(&name).await?;
    if versions.is_empty() {
        return Err(DashError::NotFound(format!("no model `{name}`")));
    }
    versions.sort_by_key(|v| v.version);
    let mut by_metric: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for v in &versions {
        for (k, x) in metrics_of(v) {
            by_metric.entry(k).or_default().push((v.version as f64, x));
        }
    }
    let series: Vec<Series> = by_metric
        .into_iter()
        .map(|(name, points)| Series { name, points })
        .collect();
    let chart = (!series.is_empty()).then(|| svg::lines(&series, "version"));
    let metric_names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    let rows: Vec<Value> = versions
        .iter()
        .rev()
        .map(|v| {
            let m = metrics_of(v);
            context! {
                version => v.version,
                aliases => v.aliases,
                created_ms => v.created_ms,
                run_id => v.run_id,
                commit => v.git_commit,
                dirty => v.git_dirty,
                rejected => v.rejected(),
                metrics => metric_names.iter().map(|k| m.get(k).copied()).collect::<Vec<_>>(),
            }
        })
        .collect();
    let mut events = dash.store.alias_events(&name).await?;
    events.reverse();
    events.truncate(50);
    let rollouts = dash.store.list_deployments(Some(&name), false).await?;
    render(
        &dash,
        &viewer,
        "model.html",
        context! {
            page => "models",
            name => name,
            versions => rows,
            metric_names => metric_names,
            chart => chart.map(Value::from_safe_string),
            events => Value::from_serialize(&events),
            rollouts => Value::from_serialize(&rollouts),
        },
    )
}

/// `/ui/models/{name}/{version}`: the version's lineage as a graph, its
/// data, params, metrics and environment.
pub(crate) async fn version(
    State(dash): State<Dash>,
    viewer: Viewer,
    Path((name, version)): Path<(String, String)>,
) -> Page {
    check(&dash, &viewer, &name).await?;
    let n: i64 = version
        .parse()
        .map_err(|_| DashError::BadRequest(format!("version `{version}`: a number")))?;
    let v = dash
        .store
        .get_version(&name, n)
        .await?
        .ok_or_else(|| DashError::NotFound(format!("no version {name}/{n}")))?;
    let lineage = &v.lineage;
    let data: Vec<(String, String)> = lineage
        .get("data")
        .and_then(|d| d.as_object())
        .map(|d| {
            d.iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let env = lineage.get("environment").filter(|e| !e.is_null());
    let mut inputs: Vec<Node> = data
        .iter()
        .map(|(path, digest)| Node {
            kind: "data",
            label: path.clone(),
            detail: digest.chars().take(16).collect(),
            href: None,
        })
        .collect();
    if let Some(c) = &v.git_commit {
        inputs.push(Node {
            kind: "commit",
            label: c.chars().take(12).collect(),
            detail: if v.git_dirty == Some(true) {
                "with uncommitted changes".into()
            } else {
                "clean work tree".into()
            },
            href: None,
        });
    }
    if let Some(fp) = &v.env_fingerprint {
        inputs.push(Node {
            kind: "environment",
            label: env
                .and_then(|e| e.get("python"))
                .and_then(|p| p.as_str())
                .map_or_else(|| "environment".to_owned(), |p| format!("Python {p}")),
            detail: fp.chars().take(16).collect(),
            href: None,
        });
    }
    let run = v.run_id.as_ref().map(|r| Node {
        kind: "run",
        label: format!("run {}", r.chars().take(8).collect::<String>()),
        detail: lineage
            .get("pipeline")
            .and_then(|p| p.as_str())
            .map_or_else(String::new, |p| format!("pipeline {p}")),
        href: Some(format!("/ui/runs/{r}")),
    });
    let me = Node {
        kind: "version",
        label: format!("{name}/{n}"),
        detail: v.artifact_digest.chars().take(16).collect(),
        href: None,
    };
    let mut columns = Vec::new();
    if !inputs.is_empty() {
        columns.push(inputs);
    }
    columns.extend(run.map(|r| vec![r]));
    columns.push(vec![me]);
    let graph = svg::graph(&columns);
    let params: Vec<(String, String)> = lineage
        .get("params")
        .and_then(|p| p.as_object())
        .map(|p| p.iter().map(|(k, x)| (k.clone(), x.to_string())).collect())
        .unwrap_or_default();
    let packages: Vec<String> = env
        .and_then(|e| e.get("packages"))
        .and_then(|p| p.as_array())
        .map(|p| {
            p.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    render(
        &dash,
        &viewer,
        "version.html",
        context! {
            page => "models",
            v => Value::from_serialize(&v),
            rejected => v.rejected(),
            graph => Value::from_safe_string(graph),
            data => data,
            params => params,
            metrics => metrics_of(&v).into_iter().collect::<Vec<_>>(),
            python => env.and_then(|e| e.get("python")).and_then(|p| p.as_str()),
            platform => env.and_then(|e| e.get("platform")).and_then(|p| p.as_str()),
            packages => packages,
            stages => lineage.get("stages").map(Value::from_serialize),
        },
    )
}
