//! Fuzzes what `lookout probe` agents send: results batches (the one decoder the server runs on
//! them) and the rendezvous split of monitors among agents. Decoding must refuse, never panic,
//! and a batch it accepts must satisfy the bounds the store relies on.
//!
//! Run: `fuzz/run.sh probe_batches` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_uptime::agent::{decode_batch, owner, MAX_BATCH_RESULTS, MAX_MESSAGE_CHARS};

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000_000;
    if let Ok(b) = decode_batch(data, now) {
        assert!(b.results.len() <= MAX_BATCH_RESULTS);
        for r in &b.results {
            assert!(r.monitor_id > 0 && r.scheduled_at <= now + 300_000);
            assert!(r
                .message
                .as_ref()
                .is_none_or(|m| m.chars().count() <= MAX_MESSAGE_CHARS));
        }
        let agents = vec![b.agent_id.clone(), b.batch_id.clone()];
        for r in &b.results {
            assert!(owner(&agents, r.monitor_id).is_some());
        }
    }
});
