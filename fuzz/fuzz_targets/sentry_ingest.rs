//! Fuzzes everything the Sentry ingest endpoint runs on a request body before storing it:
//! decompression (every encoding, with a small cap so bombs are exercised; the first-line read
//! and the byte-budgeted read the handlers use before and after the key check), envelope parsing,
//! the legacy store body, event normalisation and grouping. None of it may panic, and the
//! decompression cap must hold.
//!
//! Run: `fuzz/run.sh sentry_ingest` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_protocol::event::{parse_event, Clock};
use lookout_protocol::{decompress, envelope, grouping, store};

const CAP: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = ["identity", "gzip", "deflate", "br", "zstd"][usize::from(selector) % 5];
    // The envelope header read before the key is known: one line, capped.
    if let Ok(line) = decompress::decode_first_line(Some(encoding), body, CAP) {
        assert!(line.len() <= CAP && !line.contains(&b'\n'));
    }
    // Under a byte budget that runs out: never more reserved than granted, never past it.
    let budget = usize::from(selector) * 512;
    let mut granted = 0;
    let out = decompress::decode_budgeted(Some(encoding), body, CAP, &mut |n| {
        if n <= budget {
            granted = granted.max(n);
            true
        } else {
            false
        }
    });
    if let Ok(out) = out {
        assert!(out.len() <= CAP && out.capacity() <= granted.max(out.len()).max(64 * 1024));
    }
    let Ok(decoded) = decompress::decode(Some(encoding), body, CAP) else {
        return;
    };
    assert!(decoded.len() <= CAP);
    let clock = Clock {
        received_ms: 1_800_000_000_000,
        sent_at_ms: Some(1_700_000_000_000),
    };
    if let Ok(env) = envelope::parse(&decoded) {
        for item in &env.items {
            if let Ok(ev) = parse_event(&item.payload, env.header_str("event_id"), &clock) {
                let _ = (ev.title(), ev.culprit(), grouping::hashes(&ev));
            }
        }
    }
    if let Ok(json) = store::event_json(&decoded, CAP) {
        if let Ok(ev) = parse_event(&json, None, &clock) {
            let _ = grouping::hashes(&ev);
        }
    }
});
