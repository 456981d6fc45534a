//! Fuzzes what Prometheus clients send: remote-write bodies of both versions (snappy block
//! format, then protobuf; also the uncompressed messages directly, so the fuzzer reaches the
//! protobuf decoder without having to learn snappy) with their native histograms expanded into
//! classic series (spans, deltas, schemas, custom bounds), `match[]` series selectors, and the
//! metric store's chunk decoder (a damaged chunk must be refused, never panic). None may
//! panic, loop or allocate beyond the caps, whatever the input.
//!
//! Run: `fuzz/run.sh prometheus_remote_write` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_protocol::remote_write::{self, Version};
use lookout_protocol::selector;

fuzz_target!(|data: &[u8]| {
    let _ = remote_write::decode(data, Version::V1);
    let _ = remote_write::decode(data, Version::V2);
    let _ = remote_write::decode_v1(data);
    let _ = remote_write::decode_v2(data);
    let _ = lookout_store::prom::chunk::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = selector::parse(text);
        let _ = Version::from_content_type(text);
    }
});
