//! The one API error type: a stable code, a message for humans, the right status.
//!
//! Every API failure answers `{"error": {"code": "...", "message": "..."}}`. Internal failures are
//! logged with their cause and answered with a generic message, so no SQL, path or secret leaks.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lookout_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad query, path or JSON).
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the endpoint accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The body is not JSON (wrong or missing `Content-Type`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A field's value is not acceptable.
    #[error("{0}")]
    Validation(String),
    /// No or an unknown credential.
    #[error("authentication required: send `Authorization: Bearer <token>` or log in")]
    Unauthorized,
    /// The credential was revoked; the message says whose and what to do (a `lookout probe`
    /// agent stops on it rather than retrying).
    #[error("{0}")]
    Revoked(String),
    /// The credential's role is too low.
    #[error("this needs the {0} role")]
    Forbidden(lookout_core::Role),
    /// A cookie-authenticated change without the session's CSRF token.
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// The thing asked for does not exist (or is not visible).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken.
    #[error("{0}")]
    Conflict(String),
    /// The request asks for more than a configured limit allows (a query's memory or answer
    /// rows); the message names the setting. It would fail again: narrow it.
    #[error("{0}")]
    LimitExceeded(String),
    /// A configured limit of work in flight or time is reached (a query's slots or timeout);
    /// the message names the setting. Retry after the `Retry-After` delay.
    #[error("{0}")]
    Unavailable(String),
    /// The write queue is full; retry after a second.
    #[error("the server is busy; retry after the Retry-After delay")]
    Overloaded,
    /// The server is stopping.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Anything else; the cause is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A code a program can match and a message a person can read.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: `bad_request`, `payload_too_large`, `unsupported_media_type`,
    /// `validation_failed`, `unauthorized`, `token_revoked`, `forbidden`,
    /// `csrf_failed`, `not_found`, `conflict`, `limit_exceeded`, `unavailable`, `overloaded`,
    /// `shutting_down`, `internal`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// The stable code and status.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::BadRequest(_) => ("bad_request", StatusCode::BAD_REQUEST),
            ApiError::TooLarge(_) => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            ApiError::Validation(_) => ("validation_failed", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::Revoked(_) => ("token_revoked", StatusCode::UNAUTHORIZED),
            ApiError::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            ApiError::Csrf => ("csrf_failed", StatusCode::FORBIDDEN),
            ApiError::NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            ApiError::Conflict(_) => ("conflict", StatusCode::CONFLICT),
            ApiError::LimitExceeded(_) => ("limit_exceeded", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::Unavailable(_) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Overloaded => ("overloaded", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::ShuttingDown => ("shutting_down", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

/// The message of a write refused because `field` names a row deleted meanwhile (a team
/// deleted by another request while this one saved an object it owns).
pub fn missing_message(field: &str) -> String {
    match field {
        "team_id" => "team_id: the team no longer exists (it was just deleted); choose another \
                      team or none"
            .to_string(),
        other => format!("{other}: names something that no longer exists"),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::BadCursor(_) = &e {
            return ApiError::BadRequest(e.to_string());
        }
        match e {
            StoreError::NotFound => ApiError::NotFound("resource"),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::Overloaded | StoreError::TimedOut(_) => ApiError::Overloaded,
            StoreError::ShuttingDown => ApiError::ShuttingDown,
            StoreError::Missing(field) => ApiError::Validation(missing_message(field)),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "Request failed on an internal error.");
                "internal error; see the server log".to_string()
            }
            other => {
                tracing::info!(code, status = status.as_u16(), message = %other, "Request refused.");
                other.to_string()
            }
        };
        let mut res = (
            status,
            Json(ErrorBody {
                error: ErrorDetail { code, message },
            }),
        )
            .into_response();
        if matches!(
            self,
            ApiError::Overloaded | ApiError::ShuttingDown | ApiError::Unavailable(_)
        ) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_deleted_under_a_save_is_a_422_naming_the_field() {
        let res = ApiError::from(StoreError::Missing("team_id")).into_response();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let crate::service::ServiceError::Invalid(m) =
            crate::service::ServiceError::from(StoreError::Missing("team_id"))
        else {
            panic!("a form refusal, not a storage failure");
        };
        assert!(m.starts_with("team_id: the team no longer exists"), "{m}");
    }
}
