//! Fuzzes the Prometheus rule file parser and checker with arbitrary text, and the alert state
//! machine and template expansion with each alerting rule it accepts: refusing is fine (every
//! problem named), panicking is not.
//!
//! Run: `fuzz/run.sh prometheus_rules` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_server::prometheus::rules::eval::{expand, record, step, AlertRule};
use lookout_server::prometheus::rules::parse::{parse, Kind};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(file) = parse(text) else {
        return;
    };
    let labels = vec![
        ("__name__".to_string(), "up".to_string()),
        ("instance".to_string(), text.chars().take(16).collect()),
    ];
    for g in &file.groups {
        for r in &g.rules {
            match &r.kind {
                Kind::Record(name) => {
                    let _ = record(name, &r.labels, vec![(labels.clone(), 1.0)], g.limit);
                }
                Kind::Alert {
                    name,
                    for_ms,
                    keep_firing_for_ms,
                    annotations,
                } => {
                    let rule = AlertRule {
                        name,
                        for_ms: *for_ms,
                        keep_firing_for_ms: *keep_firing_for_ms,
                        labels: &r.labels,
                        annotations,
                    };
                    let (s, _) = step(
                        &rule,
                        &[],
                        vec![(labels.clone(), f64::NAN)],
                        0,
                        g.limit,
                        1 << 20,
                    );
                    let _ = step(&rule, &s.active, vec![], i64::MAX / 2, g.limit, 1 << 20);
                    for t in annotations.values() {
                        let _ = expand(t, &labels, f64::INFINITY);
                    }
                }
            }
        }
    }
});
