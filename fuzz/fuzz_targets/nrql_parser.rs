//! Fuzzes the NRQL parser with arbitrary text: it may refuse a query, never panic, and a query
//! it accepts prints to text that parses back to the same tree.
//!
//! Run: `fuzz/run.sh nrql_parser` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match lookout_nrql::parse(text) {
        Ok(q) => {
            let printed = q.to_string();
            let again = lookout_nrql::parse(&printed).expect("a printed query parses");
            assert_eq!(again, q, "{printed}");
        }
        Err(e) => {
            let _ = e.render(text);
        }
    }
});
