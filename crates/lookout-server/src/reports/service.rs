//! Reports made on demand, written once for the API, the Reports pages and `lookout report`:
//! the period's end as given, and the report built for it. They return [`ServiceError`].

use lookout_core::time::now_ms;

use crate::reports::{self, Kind, Request};
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;

pub fn end_of(s: Option<&str>, now: i64) -> ServiceResult<i64> {
    match s {
        None => Ok(now),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|e| ServiceError::Malformed(format!("end: not an RFC 3339 time: {e}"))),
    }
}

/// Builds a report now (not kept).
pub async fn generate(state: &AppState, kind: Kind, end: i64) -> ServiceResult<reports::Report> {
    Ok(reports::build(state.store(), &request(state, kind, end)?).await?)
}

/// What a report for the period ending at `end` is built from; a future end is refused.
pub fn request(state: &AppState, kind: Kind, end: i64) -> ServiceResult<Request> {
    let now = now_ms();
    if end > now + 60_000 {
        return Err(ServiceError::Malformed("end: in the future".into()));
    }
    Ok(Request {
        kind,
        end,
        base_url: state.settings().public_url.clone(),
        now,
    })
}
