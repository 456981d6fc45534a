//! Fuzzes what users send as dashboards, query alert conditions, report settings and SLOs:
//! arbitrary text as dashboard YAML (one, several documents, a list or `dashboards:`), and as
//! JSON for a condition, the report settings and an SLO. Each may be refused, never panic; a
//! dashboard that validates exports to YAML that reads back the same.
//!
//! Run: `fuzz/run.sh dashboards_and_conditions` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_server::alerting::query::spec::NrqlCondition;
use lookout_server::query::dashboards::spec::{read_many, Dashboard};
use lookout_server::reports::slo::SloSpec;
use lookout_server::reports::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(all) = read_many(text) {
        for d in all {
            if d.validate().is_ok() {
                let back =
                    Dashboard::from_yaml(&d.to_yaml()).expect("an exported dashboard reads back");
                assert_eq!(back, d);
            }
        }
    }
    if let Ok(c) = serde_json::from_str::<NrqlCondition>(text) {
        if c.validate().is_ok() {
            c.query().expect("a valid condition's query is usable");
        }
    }
    if let Ok(s) = serde_json::from_str::<Settings>(text) {
        let _ = s.validate();
    }
    if let Ok(s) = serde_json::from_str::<SloSpec>(text) {
        let _ = s.validate();
    }
});
