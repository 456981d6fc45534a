//! Fuzzes the source-map path: artifact bundles as sentry-cli uploads them (zip, manifest, capped
//! entries), source maps (regular and index maps through the `sourcemap` crate), and resolving an
//! event's frames against a map at arbitrary lines and columns. None of it may panic, and a bundle
//! that reads never holds more than its limits.
//!
//! Run: `fuzz/run.sh sourcemaps` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use lookout_protocol::sourcemaps::{
    load_map, read_artifact_bundle, resolve_url, symbolicate, url_candidates, BundleLimits,
    FoundMap, FrameSource,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let limits = BundleLimits {
        max_files: 16,
        max_file_bytes: 64 * 1024,
        max_total_bytes: 256 * 1024,
    };
    if let Ok(b) = read_artifact_bundle(body, &limits) {
        assert!(b.files.len() <= limits.max_files);
        assert!(
            b.files.iter().map(|f| f.content.len() as u64).sum::<u64>() <= limits.max_total_bytes
        );
    }
    // The first half is a map, the rest a minified file; frames probe positions from the selector.
    let (map, minified) = body.split_at(body.len() / 2);
    let Ok(loaded) = load_map(map, Some(minified)) else {
        return;
    };
    let text = String::from_utf8_lossy(minified);
    let path = format!(
        "https://cdn.example.com/{}",
        text.chars().take(40).collect::<String>()
    );
    let _ = url_candidates(&path);
    let _ = resolve_url(&path, &text);
    let frames: Vec<serde_json::Value> = (0..4u64)
        .map(|i| {
            serde_json::json!({"abs_path": path, "function": text.get(..3).unwrap_or("f"),
            "lineno": u64::from(selector) * i, "colno": i * 977 + 1})
        })
        .collect();
    let mut event = serde_json::json!({"platform": "javascript",
        "exception": {"values": [{"type": "Error", "stacktrace": {"frames": frames}}]}});
    let key = FrameSource {
        abs_path: path.clone(),
        debug_id: None,
    };
    let maps = HashMap::from([(
        key,
        FoundMap {
            map: Arc::new(loaded),
            url: "~/a.js.map".into(),
            via: "release",
        },
    )]);
    let _ = symbolicate(&mut event, &maps);
});
