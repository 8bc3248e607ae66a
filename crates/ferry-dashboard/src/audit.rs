//! `/ui/audit`: the audit log, newest first, for server admins (it names
//! every team's changes and every refusal): who did what to what, when,
//! from where and why, filtered by actor and action, a page at a time.

use crate::pages::{Page, render};
use crate::view::Viewer;
use crate::{Dash, DashError};
use axum::extract::{Query, State};
use ferry_metadata::AuditQuery;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

const PAGE: u64 = 100;

#[derive(Debug, Default, Deserialize, Serialize)]
pub(crate) struct AuditForm {
    actor: Option<String>,
    /// A prefix of the action, by whole segments (`registered_model.alias`).
    action: Option<String>,
    /// The cursor: the last entry's number on the page before.
    before: Option<String>,
}

fn given(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(crate) async fn audit(
    State(dash): State<Dash>,
    viewer: Viewer,
    Query(q): Query<AuditForm>,
) -> Page {
    if viewer != Viewer::All {
        return Err(DashError::Forbidden(
            "the audit log is shown to server admins".into(),
        ));
    }
    let before_seq = given(&q.before)
        .map(|b| {
            b.parse::<u64>().map_err(|_| {
                DashError::BadRequest(format!("before `{b}`: not a cursor this page made"))
            })
        })
        .transpose()?;
    let mut entries = dash
        .store
        .audit_entries(&AuditQuery {
            actor: given(&q.actor),
            action: given(&q.action),
            before_seq,
            newest_first: true,
            limit: Some(PAGE + 1),
            ..Default::default()
        })
        .await?;
    let more = entries.len() as u64 > PAGE;
    entries.truncate(PAGE as usize);
    let next = more.then(|| entries.last().map(|e| e.seq)).flatten();
    render(
        &dash,
        &viewer,
        "audit.html",
        context! {
            page => "audit",
            entries => Value::from_serialize(&entries),
            q => Value::from_serialize(&q),
            next => next,
        },
    )
}
