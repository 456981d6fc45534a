//! Errors in the shape Prometheus's HTTP API answers them: an `errorType` of `bad_data` for a
//! query that can never run (syntax, an unsupported function, a range query too fine) and
//! `execution` for one that failed while running (too many samples, many-to-many matching).

use std::fmt;

/// Which of Prometheus's error types an error is; the HTTP layer maps `BadData` to 400 and
/// `Execution` to 422, as Prometheus does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query text or its parameters are wrong; retrying will not help.
    BadData,
    /// The query was valid but could not be evaluated (a budget, or ambiguous matching).
    Execution,
}

impl ErrorKind {
    /// The `errorType` string of Prometheus's API.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
        }
    }
}

/// A query error with a message meant for the person who wrote the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Prometheus's error type.
    pub kind: ErrorKind,
    /// What went wrong, naming the function, label or limit involved.
    pub message: String,
}

impl Error {
    pub(crate) fn bad_data(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::BadData,
            message: message.into(),
        }
    }

    pub(crate) fn execution(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Execution,
            message: message.into(),
        }
    }

    /// The refusal of a query that loads more samples than [`crate::Limits::max_samples`],
    /// for the caller to answer when its fetch goes past the budget.
    pub fn too_many_samples(limit: usize) -> Self {
        Error::execution(format!(
            "query processing would load too many samples into memory in query execution (limit {limit})"
        ))
    }

    pub(crate) fn unsupported(what: impl fmt::Display) -> Self {
        Error::bad_data(format!(
            "{what} is not supported by Lookout's PromQL evaluator"
        ))
    }

    /// The whole error answer of Prometheus's HTTP API:
    /// `{"status":"error","errorType":"bad_data","error":"..."}`.
    pub fn to_prometheus_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": "error",
            "errorType": self.kind.as_str(),
            "error": self.message,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Error {}
