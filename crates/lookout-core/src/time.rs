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
