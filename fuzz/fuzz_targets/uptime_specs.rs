//! Fuzzes what users and SDKs send to define monitors: monitor JSON (API and config file),
//! Sentry `monitor_config` from check-ins, and maintenance recurrences. Validation, redaction and
//! schedule arithmetic must never panic, whatever the input.
//!
//! Run: `fuzz/run.sh uptime_specs` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_uptime::schedule::{Recurrence, Window};
use lookout_uptime::MonitorSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut spec) = serde_json::from_str::<MonitorSpec>(text) {
        if spec.validate().is_ok() {
            let _ = spec.redacted();
            let _ = spec.conditions();
            if let Ok(s) = spec.cron_schedule() {
                let _ = s.next_after(1_795_000_000_000);
                let _ = s.next_after(i64::MAX / 2);
            }
        }
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = lookout_server::uptime::checkins::spec_from_config("fuzz", &v);
    }
    if let Ok(r) = serde_json::from_str::<Recurrence>(text) {
        if let Ok(w) = Window::new(Some(0), None, Some(&r)) {
            let _ = w.is_open(1_795_000_000_000);
            let _ = w.next_start(1_795_000_000_000);
        }
    }
});
