//! Fuzzes what other tools send to page through Lookout (PagerDuty Events API v2, Alertmanager
//! and Grafana webhooks, mapped generic webhooks) and the schedules and escalation policies the
//! API accepts. Parsing, validation, schedule rendering and the escalation clock must never
//! panic or loop, whatever the input.
//!
//! Run: `fuzz/run.sh alert_inbound` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_oncall::escalation::Clock;
use lookout_oncall::inbound::{self, Mapping};
use lookout_oncall::{EscalationPolicy, Schedule};

fuzz_target!(|data: &[u8]| {
    let _ = inbound::pagerduty(data);
    let _ = inbound::alertmanager(data);
    let _ = inbound::mapped(data, &Mapping::default());
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = serde_json::from_str::<Mapping>(text) {
        if m.validate().is_ok() {
            let _ = inbound::mapped(br#"{"title":"t","status":"ok","id":1}"#, &m);
        }
    }
    if let Ok(s) = serde_json::from_str::<Schedule>(text) {
        if s.validate().is_ok() {
            let t = 1_795_000_000_000;
            let _ = s.render(t - 30 * 86_400_000, t + 30 * 86_400_000);
            let _ = s.on_call_at(t);
        }
    }
    if let Ok(p) = serde_json::from_str::<EscalationPolicy>(text) {
        if p.validate().is_ok() {
            let (mut c, _) = Clock::trigger(&p, true, 0);
            let _ = c.advance(&p, 1_000 * 86_400_000);
            c.acknowledge(1, Some(60_000));
            let _ = c.advance(&p, 2_000 * 86_400_000);
        }
    }
});
