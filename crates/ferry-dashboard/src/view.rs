//! Who is looking, and what they may see: the workspaces the gate's caller
//! holds a role in (their own roles and their groups'), or every workspace
//! for a server admin and for a server with no users (no caller; fails
//! closed: a missing caller on a store with users sees nothing).

use crate::{Dash, DashError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::collections::BTreeSet;

/// What a page may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Every workspace.
    All,
    /// These workspaces (none: nothing).
    Workspaces(BTreeSet<String>),
}

impl Viewer {
    /// The workspaces a store query is limited to (`None`: all).
    pub fn filter(&self) -> Option<Vec<String>> {
        match self {
            Viewer::All => None,
            Viewer::Workspaces(w) => Some(w.iter().cloned().collect()),
        }
    }

    pub fn sees(&self, workspace: &str) -> bool {
        match self {
            Viewer::All => true,
            Viewer::Workspaces(w) => w.contains(workspace),
        }
    }
}

impl FromRequestParts<Dash> for Viewer {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, dash: &Dash) -> Result<Self, DashError> {
        let Some(caller) = parts.extensions.get::<ferry_access::Caller>() else {
            // No caller: a server without users, whose gate is off. Should
            // a server with users ever reach a page without its caller,
            // the page shows nothing rather than everything.
            return Ok(if dash.store.list_users().await?.is_empty() {
                Viewer::All
            } else {
                tracing::error!(
                    "a dashboard page was asked without a caller on a store with users"
                );
                Viewer::Workspaces(BTreeSet::new())
            });
        };
        Ok(match caller.workspaces(dash.store.as_ref()).await? {
            None => Viewer::All,
            Some(ws) => Viewer::Workspaces(ws),
        })
    }
}
