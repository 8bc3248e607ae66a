//! The HTML reports of a run's check stages (`check: data`, `check: drift`
//! with `html:`), kept among the run's artifacts under `checks/` (see the
//! runner's `attach`), shown inline on the run page in a sandboxed frame:
//! a report is the data's words (column names, values), so it is served
//! with no script, no network and no access to the dashboard's origin.

use crate::pages::run_for;
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

/// The most of a report read: larger ones are linked, not shown.
const MAX_REPORT: usize = 8 << 20;

/// Run `run_id`'s folder of check reports in the artifact store, and the
/// names of the HTML reports in it, in name order (none without an
/// artifact store or a folder).
async fn listed(dash: &Dash, run_id: &str) -> Result<(String, Vec<String>), DashError> {
    let none = || Ok((String::new(), Vec::new()));
    let Some(artifacts) = &dash.artifacts else {
        return none();
    };
    let Some(run) = dash.store.get_tracked_run(run_id).await? else {
        return none();
    };
    let Some(dir) =
        ferry_metadata::pipeline_runs::artifact_dir(&run).map(|d| format!("{d}/checks"))
    else {
        return none();
    };
    let entries = match artifacts.list(&dir).await {
        Ok(e) => e,
        Err(ferry_artifacts::Error::NotFound(_)) => return none(),
        // The run page goes on without them (a bucket that cannot be
        // listed just now), and the server's log says why.
        Err(e) => {
            tracing::warn!("dashboard: the check reports in {dir}: {e}");
            return none();
        }
    };
    let mut names: Vec<String> = entries
        .into_iter()
        .filter(|e| !e.is_dir && e.size as usize <= MAX_REPORT)
        .filter_map(|e| e.path.rsplit('/').next().map(str::to_owned))
        .filter(|n| n.ends_with(".html"))
        .collect();
    names.sort();
    Ok((dir, names))
}

/// The names of run `run_id`'s HTML check reports, in name order.
pub(crate) async fn reports(dash: &Dash, run_id: &str) -> Result<Vec<String>, DashError> {
    Ok(listed(dash, run_id).await?.1)
}

/// `/ui/runs/{id}/checks/{name}`: one of the names [`reports`] lists (a
/// name from the request is only ever compared with those, never joined
/// to a path as it came).
pub(crate) async fn report(
    State(dash): State<Dash>,
    viewer: Viewer,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let detail = run_for(&dash, &viewer, &id).await?;
    let (dir, known) = listed(&dash, &detail.run.run_id).await?;
    let (Some(name), Some(artifacts)) = (known.into_iter().find(|n| *n == name), &dash.artifacts)
    else {
        return Err(DashError::NotFound(format!(
            "run `{id}` has no check report `{name}`"
        )));
    };
    let path = format!("{dir}/{name}");
    let mut body = artifacts
        .get(&path)
        .await
        .map_err(|e| DashError::Internal(format!("{path}: {e}")))?
        .body;
    let mut html = Vec::new();
    while let Some(chunk) = body.next().await {
        html.extend_from_slice(&chunk.map_err(|e| DashError::Internal(format!("{path}: {e}")))?);
        if html.len() > MAX_REPORT {
            return Err(DashError::Internal(format!(
                "{path}: over {MAX_REPORT} bytes"
            )));
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            // Its own opaque origin, no script, nothing fetched but its
            // inline style and images, framed by the dashboard only.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
                ),
            ),
        ],
        html,
    )
        .into_response())
}
