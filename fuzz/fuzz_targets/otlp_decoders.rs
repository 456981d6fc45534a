//! Fuzzes OTLP/HTTP ingest as an exporter's bytes reach it: gzip, the protobuf and JSON decoders
//! of all three signals, the normalisation into spans, metric points and log records (semantic
//! conventions, statement normalisation, exponential histograms into sketches), cumulative-to-
//! delta conversion, Sentry transactions into spans, and stored sketch bytes. None may panic.
//!
//! Run: `fuzz/run.sh otlp_decoders` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_apm::decode::{self, Encoding};
use lookout_apm::{log, metric, sentry, sketch, span, statement};

fuzz_target!(|data: &[u8]| {
    let _ = decode::decompress(data, Some("gzip"));
    for enc in [Encoding::Protobuf, Encoding::Json] {
        if let Ok(req) = decode::traces(data, enc) {
            for s in span::from_request(&req).spans {
                assert!(s.duration_ns >= 0);
                assert_eq!(s.trace_id.len(), 32);
            }
        }
        if let Ok(req) = decode::metrics(data, enc) {
            let (points, _) = metric::from_request(&req);
            let mut state = None;
            for p in &points {
                let (_, next) = metric::delta(state.as_ref(), p);
                state = Some(next);
            }
        }
        if let Ok(req) = decode::logs(data, enc) {
            let _ = log::from_request(&req);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = statement::summary(&statement::normalize(text));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            let _ = sentry::spans_from_transaction(&v, "fuzz");
        }
    }
    if let Ok(s) = sketch::Sketch::decode(data) {
        let _ = s.quantile(0.99);
        let _ = s.count_at_most(100.0);
        assert_eq!(sketch::Sketch::decode(&s.encode()).as_ref(), Ok(&s));
    }
});
