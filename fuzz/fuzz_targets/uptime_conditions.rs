//! Fuzzes monitor conditions: parsing user-written conditions and judging them against a body
//! taken from the same input. Neither may panic.
//!
//! Run: `fuzz/run.sh uptime_conditions` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_uptime::conditions::{parse, Observation};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (condition, body) = text
        .split_once('\n')
        .unwrap_or((text, r#"{"status":"UP","items":[1,2,3]}"#));
    if let Ok(c) = parse(condition) {
        let obs = Observation {
            status: Some(200),
            response_time_ms: Some(12.5),
            body: Some(body.to_string()),
            certificate_expiration_ms: Some(86_400_000),
            ..Observation::default()
        };
        let _ = c.evaluate(&obs);
    }
});
