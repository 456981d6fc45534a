//! How long resolving one event's stack through a cached source map takes (issue 30's target:
//! a 30-frame stack against a 5 MB map in at most 1 ms per event once the map is decoded).
//!
//! Usage: `cargo run --release -p lookout-protocol --example sourcemap_speed -- MAP MINIFIED [EVENTS]`
//! (bench/sourcemaps.sh builds a 5 MB map with esbuild and runs this).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use lookout_protocol::sourcemaps::{load_map, symbolicate, FoundMap, FrameSource};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(map_path), Some(min_path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: sourcemap_speed MAP MINIFIED [EVENTS]");
        std::process::exit(2);
    };
    let events: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let map = std::fs::read(map_path).expect("the map");
    let minified = std::fs::read(min_path).expect("the minified file");
    let started = Instant::now();
    let loaded = load_map(&map, Some(&minified)).expect("a map that decodes");
    println!(
        "map: {:.1} MB, minified: {:.1} MB, decoded once in {:.0} ms",
        map.len() as f64 / 1e6,
        minified.len() as f64 / 1e6,
        started.elapsed().as_secs_f64() * 1e3
    );
    // 30 frames at positions spread over the minified file's lines and columns.
    let text = String::from_utf8_lossy(&minified);
    let lines: Vec<&str> = text.lines().collect();
    let frames: Vec<serde_json::Value> = (0..30)
        .map(|i| {
            let line = (i * 7919) % lines.len().max(1);
            let cols = lines.get(line).map_or(1, |l| l.len().max(1));
            json!({"abs_path": "https://cdn.example.com/static/app.min.js", "function": "e",
                   "lineno": line + 1, "colno": (i * 104_729) % cols + 1})
        })
        .collect();
    let event = json!({"platform": "javascript",
        "exception": {"values": [{"type": "Error", "value": "x", "stacktrace": {"frames": frames}}]}});
    let key = FrameSource {
        abs_path: "https://cdn.example.com/static/app.min.js".into(),
        debug_id: None,
    };
    let maps = HashMap::from([(
        key,
        FoundMap {
            map: Arc::new(loaded),
            url: "~/static/app.min.js.map".into(),
            via: "release",
        },
    )]);
    let mut resolved = 0;
    let started = Instant::now();
    for _ in 0..events {
        let mut e = event.clone();
        resolved += symbolicate(&mut e, &maps).resolved;
    }
    let per_event = started.elapsed().as_secs_f64() * 1e3 / events as f64;
    println!(
        "{events} events of 30 frames: {per_event:.3} ms per event ({} frames resolved per event); target <= 1 ms",
        resolved / events
    );
}
