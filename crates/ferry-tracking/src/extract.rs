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

    async fn from_request(mut req: Request, state: &S) -> Result<Self, Self::Rejection> {
        json_content_type(req.headers())?;
        let bytes = match req.extensions_mut().remove::<crate::auth::InBody>() {
            // The gate left its decision to the body's ids: made here,
            // before the route sees anything.
            Some(in_body) => {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, crate::MAX_JSON_BODY)
                    .await
                    .map_err(body_error)?;
                in_body.decide(&parts, &bytes).await?;
                bytes
            }
            None => axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| {
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::too_large(e.body_text())
                    } else {
                        ApiError::bad_request(format!("Cannot read the request body: {e}"))
                    }
                })?,
        };
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

/// A body that could not be read whole within its limit.
fn body_error(e: axum::Error) -> ApiError {
    let too_large =
        std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
    if too_large {
        ApiError::too_large(format!(
            "The request body is larger than {} bytes",
            crate::MAX_JSON_BODY
        ))
    } else {
        ApiError::bad_request(format!("Cannot read the request body: {e}"))
    }
}

/// Whether a request declares a JSON body in UTF-8, as the JSON routes
/// take (anything else is refused).
pub fn json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = ct.split(';');
    let mime = parts.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::bad_request(format!(
            "Unsupported content type '{}'; send application/json",
            mime.to_ascii_lowercase()
        )));
    }
    // JSON is UTF-8 (RFC 8259); a body declared in another charset
    // would be read as something it is not.
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("charset")
        {
            let v = v.trim().trim_matches('"');
            if !(v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")) {
                return Err(ApiError::unsupported_media(format!(
                    "Unsupported charset '{}'; send application/json in UTF-8",
                    v.to_ascii_lowercase()
                )));
            }
        }
    }
    Ok(())
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
