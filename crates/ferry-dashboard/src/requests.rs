//! From a request id to what answered it: the prediction log's lines for
//! that request (the model, the version, its inputs and outputs), then the
//! version's run and commit.
//!
//! The log is the folder `ferry serve` writes (`<dir>/<model>/*.jsonl`,
//! newest files first); the server is told where it is (`ferry server
//! --predictions`, by default the project's). Only regular files directly
//! in a model's folder are read; the id is looked for as the JSON string it
//! is written as, so no id matches part of another.

use crate::pages::{Page, render};
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{Query, State};
use minijinja::{Value, context};
use serde::Deserialize;
use std::io::BufRead;
use std::path::Path;

/// A request as the prediction log has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub model: String,
    pub version: i64,
    pub ts_ms: i64,
    /// Its rows (a batch request has one per row), as logged.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Rows kept of one request at most (a batch of thousands shows its first).
const MAX_ROWS: usize = 20;

/// Whether `id` may be a request id: what the gateway makes, or what a
/// client sent it (letters, digits, `-`, `_`, `.`, `:`; at most 128).
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Looks `id` up in the prediction log under `dir`: the newest file that
/// has it, its rows for that request.
pub fn find(dir: &Path, id: &str) -> std::io::Result<Option<Logged>> {
    let needle = format!(
        "\"request_id\":{}",
        serde_json::to_string(id).unwrap_or_default()
    );
    let mut files = Vec::new();
    let Ok(models) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    for m in models.flatten() {
        if !m.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(m.path())?.flatten() {
            let meta = f.metadata()?;
            let name = f.file_name();
            if f.file_type()?.is_file() && name.to_string_lossy().ends_with(".jsonl") {
                files.push((meta.modified().ok(), f.path()));
            }
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, path) in files {
        let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
        let mut found: Option<Logged> = None;
        for line in reader.lines() {
            let line = line?;
            if !line.contains(&needle) {
                if found.is_some() {
                    break;
                }
                continue;
            }
            let Ok(serde_json::Value::Object(row)) = serde_json::from_str(&line) else {
                continue;
            };
            let f = found.get_or_insert_with(|| Logged {
                model: row
                    .get("model")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                version: row
                    .get("version")
                    .and_then(|v| v.as_i64())
                    .unwrap_or_default(),
                ts_ms: row.get("ts").and_then(|v| v.as_i64()).unwrap_or_default(),
                rows: Vec::new(),
            });
            if f.rows.len() < MAX_ROWS {
                f.rows.push(row);
            }
        }
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestQuery {
    id: Option<String>,
}

/// `/ui/requests?id=ID`: the model, version, run and commit that answered
/// a request, with what it was asked and what it answered.
pub(crate) async fn request(
    State(dash): State<Dash>,
    viewer: Viewer,
    Query(q): Query<RequestQuery>,
) -> Page {
    let id =
        q.id.as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
    let ctx = |found: Value, version: Value, message: Option<String>| {
        context! { page => "models", id => id.clone(), found => found, v => version, message => message, log => dash.predictions.is_some() }
    };
    if id.is_empty() {
        return render(
            &dash,
            &viewer,
            "request.html",
            ctx(Value::UNDEFINED, Value::UNDEFINED, None),
        );
    }
    if !valid_id(&id) {
        return Err(DashError::BadRequest(format!(
            "id `{id}`: a request id has letters, digits, `-`, `_`, `.` or `:` (at most 128)"
        )));
    }
    let Some(dir) = dash.predictions.clone() else {
        return render(
            &dash,
            &viewer,
            "request.html",
            ctx(Value::UNDEFINED, Value::UNDEFINED, None),
        );
    };
    let wanted = id.clone();
    let found = tokio::task::spawn_blocking(move || find(dir.as_path(), &wanted))
        .await
        .map_err(|e| DashError::Internal(format!("prediction log search: {e}")))?
        .map_err(|e| DashError::Internal(format!("prediction log: {e}")))?;
    let found = match found {
        Some(f) if crate::models::visible(&dash, &viewer, &f.model).await? => f,
        _ => {
            let message = format!("No request {id} in the prediction log.");
            return render(
                &dash,
                &viewer,
                "request.html",
                ctx(Value::UNDEFINED, Value::UNDEFINED, Some(message)),
            );
        }
    };
    let version = dash.store.get_version(&found.model, found.version).await?;
    let columns: Vec<String> = found
        .rows
        .first()
        .map(|r| {
            r.keys()
                .filter(|k| !["ts", "request_id", "model", "version"].contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = found
        .rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| match r.get(c) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                })
                .collect()
        })
        .collect();
    let shown = context! {
        model => found.model,
        version => found.version,
        ts_ms => found.ts_ms,
        columns => columns,
        rows => rows,
    };
    render(
        &dash,
        &viewer,
        "request.html",
        ctx(
            shown,
            version.map_or(Value::UNDEFINED, |v| Value::from_serialize(&v)),
            None,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_found_by_its_whole_id_in_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("iris");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(
            m.join("predictions-2026-12-03T07.jsonl"),
            "{\"ts\":5,\"request_id\":\"ab-1\",\"model\":\"iris\",\"version\":2,\"x\":1.5,\"prediction\":\"setosa\"}\n\
             {\"ts\":5,\"request_id\":\"ab-1\",\"model\":\"iris\",\"version\":2,\"x\":2.5,\"prediction\":\"virginica\"}\n\
             {\"ts\":6,\"request_id\":\"ab-10\",\"model\":\"iris\",\"version\":3,\"x\":0.5,\"prediction\":\"setosa\"}\n",
        )
        .unwrap();
        // Not a model's folder, and not a log: never read.
        std::fs::write(dir.path().join("notes.jsonl"), "{\"request_id\":\"zz\"}\n").unwrap();
        let got = find(dir.path(), "ab-1").unwrap().unwrap();
        assert_eq!((got.model.as_str(), got.version, got.ts_ms), ("iris", 2, 5));
        assert_eq!(got.rows.len(), 2);
        assert_eq!(find(dir.path(), "ab-10").unwrap().unwrap().version, 3);
        assert_eq!(find(dir.path(), "ab").unwrap(), None);
        assert_eq!(find(dir.path(), "zz").unwrap(), None);
        assert_eq!(find(&dir.path().join("missing"), "ab-1").unwrap(), None);
        assert!(valid_id("0000beef-00000000002a"));
        assert!(!valid_id("a\"b") && !valid_id("") && !valid_id(&"x".repeat(129)));
    }
}
