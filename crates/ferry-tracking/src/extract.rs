//! Request extractors that answer bad input in MLflow's error shape.
//!
//! Mutating routes take only `application/json` bodies: a cross-site
//! "simple" request (`text/plain`) cannot reach them (CVE-2023-43472).

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body; anything but `application/json` is refused.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut parts = ct.split(';');
        let mime = parts.next().unwrap_or("").trim();
        if mime != "application/json" {
            return Err(ApiError::bad_request(format!(
                "Unsupported content type '{mime}'; send application/json"
            )));
        }
        // JSON is UTF-8 (RFC 8259); a body declared in another charset
        // would be read as something it is not.
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim() == "charset"
                && !matches!(v.trim().trim_matches('"'), "utf-8" | "utf8")
            {
                return Err(ApiError::unsupported_media(format!(
                    "Unsupported charset '{}'; send application/json in UTF-8",
                    v.trim()
                )));
            }
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(e.body_text())
                } else {
                    ApiError::bad_request(format!("Cannot read the request body: {e}"))
                }
            })?;
        if bytes.is_empty() {
            return serde_json::from_str("{}")
                .map(Json)
                .map_err(|e| ApiError::invalid(format!("Malformed JSON: {e}")));
        }
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| ApiError::invalid(format!("Malformed request: {e}")))
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::invalid(format!("Invalid query parameters '{q}': {e}")))
    }
}
