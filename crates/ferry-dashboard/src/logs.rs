//! A stage's log: where the run left it on this machine (the project's
//! `.ferry/logs/<run>/<stage>.log`), else among the run's artifacts (a run
//! recorded through a team server: `logs/<stage>.log`). Served as plain
//! text, never as markup, its last [`MAX_LOG`] bytes.

use crate::pages::run_for;
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

/// The most of a log shown: its end, where what went wrong is.
pub const MAX_LOG: usize = 512 << 10;

/// The last `MAX_LOG` bytes of `bytes`, from a line's start.
fn tail(bytes: Vec<u8>) -> (Vec<u8>, bool) {
    if bytes.len() <= MAX_LOG {
        return (bytes, false);
    }
    let from = bytes.len() - MAX_LOG;
    let from = bytes[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(from, |p| from + p + 1);
    (bytes[from..].to_vec(), true)
}

async fn read(dash: &Dash, run_id: &str, stage: &str) -> Result<Option<Vec<u8>>, DashError> {
    // The run id is the store's (hex) and the stage one of the run's own:
    // neither comes from the request as a path.
    if let Some(dir) = &dash.logs {
        let path = dir.join(run_id).join(format!("{stage}.log"));
        match tokio::fs::read(&path).await {
            Ok(b) => return Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DashError::Internal(format!("{}: {e}", path.display()))),
        }
    }
    let Some(artifacts) = &dash.artifacts else {
        return Ok(None);
    };
    let Some(run) = dash.store.get_tracked_run(run_id).await? else {
        return Ok(None);
    };
    let Some(dir) = ferry_metadata::pipeline_runs::artifact_dir(&run) else {
        return Ok(None);
    };
    let path = format!(
        "{dir}/{}",
        ferry_metadata::pipeline_runs::stage_log_artifact(stage)
    );
    let mut body = match artifacts.get(&path).await {
        Ok(d) => d.body,
        Err(ferry_artifacts::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(DashError::Internal(format!("{path}: {e}"))),
    };
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| DashError::Internal(format!("{path}: {e}")))?;
        out.extend_from_slice(&chunk);
        if out.len() > 4 * MAX_LOG {
            let (t, _) = tail(std::mem::take(&mut out));
            out = t;
        }
    }
    Ok(Some(out))
}

/// `/ui/runs/{id}/logs/{stage}`.
pub(crate) async fn log(
    State(dash): State<Dash>,
    viewer: Viewer,
    Path((id, stage)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let detail = run_for(&dash, &viewer, &id).await?;
    let Some(s) = detail.stages.iter().find(|s| s.stage == stage) else {
        return Err(DashError::NotFound(format!(
            "run `{id}` has no stage `{stage}`"
        )));
    };
    let Some(bytes) = read(&dash, &detail.run.run_id, &s.stage).await? else {
        return Err(DashError::NotFound(format!(
            "stage `{stage}` of run `{id}` left no log ({})",
            s.status.as_str()
        )));
    };
    let (bytes, cut) = tail(bytes);
    let mut text = String::new();
    if cut {
        text.push_str(&format!("[the last {} KiB of the log]\n", MAX_LOG >> 10));
    }
    text.push_str(&String::from_utf8_lossy(&bytes));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_keeps_its_end_from_a_line_start() {
        let short = b"a\nb\n".to_vec();
        assert_eq!(tail(short.clone()), (short, false));
        let mut long = vec![b'x'; MAX_LOG];
        long.extend_from_slice(b"\nlast line\n");
        let (t, cut) = tail(long);
        assert!(cut);
        assert_eq!(t, b"last line\n");
    }
}
