//! Time as Lookout stores it: milliseconds since the Unix epoch in an `i64`.
//!
//! One integer column type works the same on SQLite and PostgreSQL, sorts correctly and needs no
//! time-zone handling in SQL; formatting happens at the edges (API, UI).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds (`2026-11-28T16:44:30.000Z`), as the API and UI show times.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
