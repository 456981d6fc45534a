//! How long resolving one event's stack through a cached source map takes (issue 30's target:
//! a 30-frame stack against a 5 MB map in at most 1 ms per event once the map is decoded).
//!
//! Usage: `cargo run --release -p lookout-protocol --example sourcemap_speed -- MAP MINIFIED [EVENTS]`
//! (bench/sourcemaps.sh builds a 5 MB map with esbuild and runs this).
//!
//! It also prints what the error processor does around symbolication for such an event (parse
//! the stored JSON, write it back, parse the rewritten event, hash it for grouping), before and
//! after, so the cost of the source-mapped ingest path can be read stage by stage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use lookout_protocol::sourcemaps::{
    load_map, symbolicate, symbolicate_with, FoundMap, FrameMemo, FrameSource,
};
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
    // The processor resolves a batch's events with one memo per thread: events of one issue
    // share their stack, and the later ones copy what the first one resolved.
    let mut memo = FrameMemo::default();
    let started = Instant::now();
    for _ in 0..events {
        let mut e = event.clone();
        std::hint::black_box(symbolicate_with(&mut e, &maps, &mut memo));
    }
    let per_event = started.elapsed().as_secs_f64() * 1e3 / events as f64;
    println!("the same stack again and again (the batch's memo): {per_event:.3} ms per event");
    if std::env::var_os("SOURCEMAP_SPEED_NO_STAGES").is_none() {
        stages(&event, &maps, events);
    }
}

/// Times `f` over `n` runs; microseconds per run.
fn micros(n: usize, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// The processor's stages for one event, minified and symbolicated.
fn stages(event: &serde_json::Value, maps: &HashMap<FrameSource, FoundMap>, n: usize) {
    use lookout_protocol::event::{parse_event, Clock};
    let clock = Clock {
        received_ms: 1_700_000_000_000,
        sent_at_ms: None,
    };
    let mut with_id = event.clone();
    with_id["event_id"] = json!("0123456789abcdef0123456789abcdef");
    let before = with_id.to_string();
    let mut after_v = with_id.clone();
    symbolicate(&mut after_v, maps);
    let after = after_v.to_string();
    println!(
        "stored event: {:.1} KB minified, {:.1} KB symbolicated",
        before.len() as f64 / 1e3,
        after.len() as f64 / 1e3
    );
    let parse_value = micros(n, || {
        std::hint::black_box(serde_json::from_str::<serde_json::Value>(&before).ok());
    });
    let resolve = micros(n, || {
        let mut v = with_id.clone();
        std::hint::black_box(symbolicate(&mut v, maps));
    });
    let clone = micros(n, || {
        std::hint::black_box(with_id.clone());
    });
    let write = micros(n, || {
        std::hint::black_box(after_v.to_string());
    });
    let parse_min = micros(n, || {
        std::hint::black_box(parse_event(before.as_bytes(), None, &clock).ok());
    });
    let parse_sym = micros(n, || {
        std::hint::black_box(parse_event(after.as_bytes(), None, &clock).ok());
    });
    let ev_min = parse_event(before.as_bytes(), None, &clock).expect("parses");
    let ev_sym = parse_event(after.as_bytes(), None, &clock).expect("parses");
    let v = lookout_protocol::grouping::CURRENT_VERSION;
    let hash_min = micros(n, || {
        std::hint::black_box(lookout_protocol::grouping::hashes_with(v, &ev_min));
    });
    let hash_sym = micros(n, || {
        std::hint::black_box(lookout_protocol::grouping::hashes_with(v, &ev_sym));
    });
    println!("per event, µs        minified  symbolicated");
    println!("parse to a value     {:>8.1}  {:>12.1}", 0.0, parse_value);
    println!(
        "resolve frames       {:>8.1}  {:>12.1}",
        0.0,
        resolve - clone
    );
    println!("write the JSON       {:>8.1}  {:>12.1}", 0.0, write);
    println!(
        "parse the event      {:>8.1}  {:>12.1}",
        parse_min, parse_sym
    );
    println!("grouping hashes      {:>8.1}  {:>12.1}", hash_min, hash_sym);
}
