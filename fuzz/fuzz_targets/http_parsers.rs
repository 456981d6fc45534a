//! Fuzzes the hand-written parsers of untrusted HTTP input: the `Cookie` header reader that
//! authentication relies on, and the post-login `next` redirect check. Neither may panic, and
//! `safe_next` must never let a redirect leave the site.
//!
//! Run: `fuzz/run.sh http_parsers` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use lookout_server::auth::cookie;
use lookout_server::ui::safe_next;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        headers.insert(header::COOKIE, v);
        let _ = cookie(&headers, "lookout_session");
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let next = safe_next(s);
        assert!(next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\"));
    }
});
