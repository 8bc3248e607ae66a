//! The one API error: MLflow's `{"error_code", "message"}` with its status,
//! mapped in one place. 5xx bodies are generic; details go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidParameterValue,
    ResourceDoesNotExist,
    ResourceAlreadyExists,
    BadRequest,
    EndpointNotFound,
    Internal,
    /// The server is at a limit of its own; the client retries (MLflow's
    /// client does so by itself on 503).
    TemporarilyUnavailable,
    /// The request would change what is fixed (a registered version's
    /// files, a finished run's artifacts): 409.
    InvalidState,
    /// The request's body arrived too slowly: 408.
    RequestTimeout,
    /// The body is larger than the server takes: 413.
    TooLarge,
    /// The body's media type or charset is not JSON in UTF-8: 415.
    UnsupportedMedia,
    /// No acceptable credentials: 401, MLflow's plain-text body and its
    /// `WWW-Authenticate` challenge.
    Unauthenticated,
    /// Not allowed: 403, MLflow's plain-text `Permission denied`.
    PermissionDenied,
    /// A webhook delivery whose signature (token) is missing or wrong:
    /// 401, in JSON, with no challenge (a forge has no credentials to
    /// offer).
    BadSignature,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Code::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            Code::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Code::BadRequest => "BAD_REQUEST",
            Code::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            Code::Internal => "INTERNAL_ERROR",
            Code::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            Code::InvalidState => "INVALID_STATE",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
            Code::TooLarge => "RESOURCE_LIMIT_EXCEEDED",
            Code::UnsupportedMedia => "BAD_REQUEST",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::BadSignature => "UNAUTHENTICATED",
        }
    }
    fn status(self) -> StatusCode {
        match self {
            Code::ResourceDoesNotExist | Code::EndpointNotFound => StatusCode::NOT_FOUND,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::InvalidState => StatusCode::CONFLICT,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::Unauthenticated | Code::BadSignature => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: Code::InvalidParameterValue,
            message: message.into(),
        }
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            code: Code::TooLarge,
            message: message.into(),
        }
    }
    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self {
            code: Code::UnsupportedMedia,
            message: message.into(),
        }
    }
    pub fn too_slow() -> Self {
        Self {
            code: Code::RequestTimeout,
            message: "The request body arrived too slowly; send it again".into(),
        }
    }
    pub fn immutable(message: impl Into<String>) -> Self {
        Self {
            code: Code::InvalidState,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: Code::ResourceDoesNotExist,
            message: message.into(),
        }
    }
    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            code: Code::TemporarilyUnavailable,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: Code::BadRequest,
            message: message.into(),
        }
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self {
            code: Code::Internal,
            message: "Internal server error".into(),
        }
    }
    /// No acceptable credentials (MLflow's 401).
    pub fn unauthenticated() -> Self {
        Self {
            code: Code::Unauthenticated,
            message: ferry_auth::credentials::UNAUTHENTICATED.into(),
        }
    }
    /// Not allowed (MLflow's 403).
    pub fn forbidden() -> Self {
        Self {
            code: Code::PermissionDenied,
            message: ferry_auth::credentials::FORBIDDEN.into(),
        }
    }
    /// No such endpoint (404, as for an unknown path).
    pub fn no_endpoint(message: impl Into<String>) -> Self {
        Self {
            code: Code::EndpointNotFound,
            message: message.into(),
        }
    }
    /// A webhook delivery that is not signed by its forge (401).
    pub fn bad_signature(message: impl Into<String>) -> Self {
        Self {
            code: Code::BadSignature,
            message: message.into(),
        }
    }
    /// A required field that is missing.
    pub fn missing(field: &str) -> Self {
        Self::invalid(format!("Missing value for required parameter '{field}'."))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // MLflow answers these two in plain text, and its client reads them so.
        match self.code {
            Code::Unauthenticated => {
                return (
                    self.code.status(),
                    [(
                        axum::http::header::WWW_AUTHENTICATE,
                        ferry_auth::credentials::WWW_AUTHENTICATE,
                    )],
                    self.message,
                )
                    .into_response();
            }
            Code::PermissionDenied => return (self.code.status(), self.message).into_response(),
            _ => {}
        }
        let body = serde_json::json!({
            "error_code": self.code.as_str(),
            "message": self.message,
        });
        let mut resp = (self.code.status(), axum::Json(body)).into_response();
        if self.code == Code::TemporarilyUnavailable {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}

impl From<ferry_access::Refusal> for ApiError {
    fn from(r: ferry_access::Refusal) -> Self {
        match r {
            ferry_access::Refusal::Unauthenticated => Self::unauthenticated(),
            ferry_access::Refusal::Forbidden => Self::forbidden(),
            ferry_access::Refusal::Store(e) => e.into(),
        }
    }
}

impl From<ferry_metadata::Error> for ApiError {
    fn from(e: ferry_metadata::Error) -> Self {
        use ferry_metadata::Error as E;
        match e {
            E::NotFound(m) => Self::not_found(m),
            E::Invalid(m) | E::Ambiguous(m) | E::Conflict(m) => Self::invalid(m),
            E::AlreadyExists(m) => Self {
                code: Code::ResourceAlreadyExists,
                message: m,
            },
            other => Self::internal(other),
        }
    }
}

impl From<ferry_search::SearchError> for ApiError {
    fn from(e: ferry_search::SearchError) -> Self {
        Self::invalid(e.0)
    }
}

impl From<ferry_rollout::rollout::DeployError> for ApiError {
    fn from(e: ferry_rollout::rollout::DeployError) -> Self {
        use ferry_rollout::rollout::DeployError as E;
        match e {
            E::Store(e) => e.into(),
            E::Encode(e) => Self::internal(e),
            E::NoSuchVersion(_) | E::NoDeployment(_) => Self::not_found(e.to_string()),
            other => Self::invalid(other.to_string()),
        }
    }
}
