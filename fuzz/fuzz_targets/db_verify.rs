//! Fuzzes what `lookout db check --verify` and the database targets API read from outside: the
//! YAML verification rules, and EXPLAIN's JSON plans walked and judged against them (the plans
//! come from the user's server). None may panic.
//!
//! Run: `fuzz/run.sh db_verify` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_dbhealth::verify;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = verify::parse(text).unwrap_or_default();
    let probe = verify::parse(
        "verify:\n  - name: r\n    query: SELECT 1\n    uses_index: i\n    no_seq_scan: public.t\n    cost_below: 10\n    rows_examined_below: 10\n",
    )
    .expect("a valid rule");
    if let Ok(plan) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok((nodes, cost)) = verify::nodes(&plan) {
            for r in probe.iter().chain(rules.iter()) {
                let _ = verify::judge(r, &nodes, cost);
            }
        }
    }
    let _ = lookout_dbhealth::redact(text);
    let _ = lookout_dbhealth::stats::where_columns(text, "orders");
});
