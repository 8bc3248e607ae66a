//! The dashboard's one error: an HTML page with its status. A store
//! failure is logged and shown without its details.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug)]
pub enum DashError {
    /// No such run, model, ... (or one the viewer may not see: the same
    /// answer, so a page says nothing of what exists elsewhere).
    NotFound(String),
    /// A filter or a cursor that cannot be read.
    BadRequest(String),
    /// A page only some may see (the audit log: server admins).
    Forbidden(String),
    Store(ferry_metadata::Error),
    Template(minijinja::Error),
    /// Anything else that failed on the server's side (logged, not shown).
    Internal(String),
}

impl From<ferry_metadata::Error> for DashError {
    fn from(e: ferry_metadata::Error) -> Self {
        match e {
            ferry_metadata::Error::NotFound(m) => DashError::NotFound(m),
            ferry_metadata::Error::Invalid(m) | ferry_metadata::Error::Ambiguous(m) => {
                DashError::BadRequest(m)
            }
            other => DashError::Store(other),
        }
    }
}

impl From<minijinja::Error> for DashError {
    fn from(e: minijinja::Error) -> Self {
        DashError::Template(e)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            DashError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            DashError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            DashError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            DashError::Store(e) => {
                tracing::error!("dashboard: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store could not be read (see the server's log)".to_owned(),
                )
            }
            DashError::Internal(e) => {
                tracing::error!("dashboard: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be made (see the server's log)".to_owned(),
                )
            }
            DashError::Template(e) => {
                tracing::error!("dashboard template: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be drawn (see the server's log)".to_owned(),
                )
            }
        };
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} · ferry</title>\
             <link rel=\"stylesheet\" href=\"/ui/static/app.css\"></head><body><main>\
             <h1>{code}</h1><p>{msg}</p><p><a href=\"/\">Overview</a></p></main></body></html>",
            code = status.as_u16(),
            msg = escape(&message)
        );
        (status, Html(body)).into_response()
    }
}
