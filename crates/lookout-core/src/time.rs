//! Time as Lookout stores it: milliseconds since the Unix epoch in an `i64`.
//!
//! One integer column type works the same on SQLite and PostgreSQL, sorts correctly and needs no
//! time-zone handling in SQL; formatting happens at the edges (API, UI).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The controllable clock's offset from the system clock, ms (0 outside tests).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Milliseconds since the Unix epoch, now (shifted by [`set_clock`] in tests).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
        .saturating_add(OFFSET_MS.load(Ordering::Relaxed))
}

/// The controllable clock, for tests that generate history: from now on [`now_ms`] reads `at`
/// (plus the real time that passes), in this whole process, until it is set again; `None`
/// returns to the system clock. Tests that use it run in a test binary of their own. The
/// server never calls it.
pub fn set_clock(at: Option<i64>) {
    OFFSET_MS.store(0, Ordering::Relaxed);
    if let Some(at) = at {
        OFFSET_MS.store(at - now_ms(), Ordering::Relaxed);
    }
}

/// RFC 3339 in UTC with milliseconds (`2026-11-28T16:44:30.000Z`), as the API and UI show times.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
