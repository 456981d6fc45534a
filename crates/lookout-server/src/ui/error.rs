//! The UI's error type, so page handlers use `?`: a failure becomes a page with the right status
//! (404 for a missing thing, 409 for a conflict, 500 with the cause logged for anything else),
//! never the API's JSON error and never a panic.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use lookout_store::StoreError;

use crate::service::ServiceError;
use crate::ui::{not_found_page, simple_page, ui_error};

/// Why a page or form could not be answered as asked.
#[derive(Debug)]
pub enum UiError {
    /// The thing in the address does not exist: the 404 page.
    NotFound,
    /// A refusal with its status and a sentence for the reader (403 role, 409 conflict, 422).
    Refused(StatusCode, String),
    /// Anything else: logged with its cause, shown as a generic 500 page.
    Internal(String),
    /// A response already made (a redirect to the login page, a CSRF refusal page); boxed, as a
    /// response is large and this travels in every `Result`.
    Page(Box<Response>),
}

/// Shorthand for page handlers.
pub type UiResult<T = Response> = Result<T, UiError>;

impl UiError {
    /// An internal failure with its cause, for `map_err`.
    pub fn internal(e: impl std::fmt::Display) -> UiError {
        UiError::Internal(e.to_string())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::NotFound => not_found_page(),
            UiError::Refused(status, text) => {
                tracing::info!(status = status.as_u16(), reason = %text, "Page refused.");
                let title = status.canonical_reason().unwrap_or("Refused");
                (status, Html(simple_page(title, &text))).into_response()
            }
            UiError::Internal(cause) => ui_error(cause),
            UiError::Page(r) => *r,
        }
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => UiError::NotFound,
            StoreError::Conflict(what) => {
                UiError::Refused(StatusCode::CONFLICT, format!("{what} already exists"))
            }
            StoreError::Missing(field) => UiError::Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::error::missing_message(field),
            ),
            e => UiError::Internal(e.to_string()),
        }
    }
}

impl From<ServiceError> for UiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(_) => UiError::NotFound,
            ServiceError::Invalid(m) => UiError::Refused(StatusCode::UNPROCESSABLE_ENTITY, m),
            ServiceError::Malformed(m) => UiError::Refused(StatusCode::BAD_REQUEST, m),
            ServiceError::Conflict(m) => UiError::Refused(StatusCode::CONFLICT, m),
            ServiceError::Internal(m) => UiError::Internal(m),
            ServiceError::Store(e) => e.into(),
        }
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        UiError::Internal(e.to_string())
    }
}

impl From<Response> for UiError {
    fn from(r: Response) -> Self {
        UiError::Page(Box::new(r))
    }
}
