//! What domain operations return when they refuse or fail, independent of who called them.
//!
//! Each capability's service functions (create a monitor, save a status page, acknowledge an
//! incident, …) are written once and called by the API, the UI, the config-file reconciler and
//! the CLI. They return [`ServiceError`], never the API's JSON error or a page: the API turns it
//! into `ApiError` (422/404/409/503) and the UI into a form message or an error page.

use lookout_store::StoreError;

/// Why a domain operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field's value is not acceptable; the message starts with the field's name
    /// (`"interval_seconds: at least 10"`), so forms can point at it.
    #[error("{0}")]
    Invalid(String),
    /// The request itself is malformed (an unparsable time, a period in the future): 400, as
    /// opposed to a field whose value is refused (422).
    #[error("{0}")]
    Malformed(String),
    /// The thing named does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change conflicts with the current state (a taken slug, a monitor the config file
    /// owns).
    #[error("{0}")]
    Conflict(String),
    /// Anything else (a task that died, a file that could not be read); logged, not shown.
    #[error("{0}")]
    Internal(String),
    /// Storage failed or is busy; the API answers 503 or 500 as the store error says.
    #[error(transparent)]
    Store(StoreError),
}

/// Shorthand for service results.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<StoreError> for ServiceError {
    /// A taken unique value is the caller's conflict (409, or the form again with the reason),
    /// not a storage failure; everything else passes through.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ServiceError::Conflict(format!("{what} already exists")),
            StoreError::Missing(field) => {
                ServiceError::Invalid(crate::error::missing_message(field))
            }
            e => ServiceError::Store(e),
        }
    }
}

impl ServiceError {
    /// Maps a missing row to `NotFound(what)`; other store errors pass through.
    pub fn not_found(what: &'static str) -> impl Fn(StoreError) -> ServiceError {
        move |e| match e {
            StoreError::NotFound => ServiceError::NotFound(what),
            e => ServiceError::Store(e),
        }
    }
}

impl From<ServiceError> for crate::error::ApiError {
    fn from(e: ServiceError) -> Self {
        use crate::error::ApiError;
        match e {
            ServiceError::Invalid(m) => ApiError::Validation(m),
            ServiceError::Malformed(m) => ApiError::BadRequest(m),
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::Internal(m) => ApiError::Internal(m),
            ServiceError::Store(e) => e.into(),
        }
    }
}
