//! Fuzzes what `lookout load` reads from outside: scenario files (YAML and TOML, with their
//! durations, templates, thresholds and checks) and the responses of the servers under test
//! (status line, headers, Content-Length, chunked bodies, interim responses). None may panic.
//!
//! Run: `fuzz/run.sh load_parsers` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lookout_load::spec::{self, Format};
use lookout_load::{duration, http, threshold};

fuzz_target!(|data: &[u8]| {
    let _ = http::parse_response(data, false);
    let _ = http::parse_response(data, true);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = HashMap::from([("BASE".to_string(), "http://127.0.0.1:9".to_string())]);
    // Data files are never read: the base directory does not exist.
    let base = Path::new("/nonexistent-lookout-fuzz");
    let _ = spec::parse(text, Format::Yaml, base, &env);
    let _ = spec::parse(text, Format::Toml, base, &env);
    let _ = duration::parse(text);
    if let Ok(m) = threshold::MetricRef::parse(text) {
        let _ = threshold::Expr::parse("p(95)<1", m.kind());
    }
    for kind in [
        threshold::MetricKind::Trend,
        threshold::MetricKind::Rate,
        threshold::MetricKind::Counter,
        threshold::MetricKind::Gauge,
    ] {
        let _ = threshold::Expr::parse(text, kind);
    }
});
