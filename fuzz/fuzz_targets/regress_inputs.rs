//! Fuzzes what `lookout regress` reads from outside: series files for `analyze` (CSV and JSON)
//! and benchmark outputs for `push`/`check` (Criterion, hyperfine, pytest-benchmark, Google
//! Benchmark, k6, Lookout summaries), then runs the detector on whatever parsed. None may panic.
//!
//! Run: `fuzz/run.sh regress_inputs` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_regress::import::{self, Format};
use lookout_regress::{detect, input, Options};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for column in [None, Some("value")] {
        if let Ok(points) = input::parse(text, column) {
            let values: Vec<f64> = points.iter().map(|p| p.value).collect();
            let small = Options {
                window: 6,
                min_segment: 1,
                ..Options::default()
            };
            for opt in [Options::default(), small] {
                for c in detect(&values, &opt) {
                    assert!(c.index > 0 && c.index < values.len());
                }
            }
        }
    }
    let _ = import::import_json(text, None);
    for f in [
        "criterion",
        "hyperfine",
        "pytest-benchmark",
        "google-benchmark",
        "k6",
        "lookout",
    ] {
        let _ = import::import_json(text, Format::parse(f));
    }
});
