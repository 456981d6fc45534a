//! Tests of bundle reading, map loading and symbolication against esbuild output.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::ProtocolError;

// esbuild 0.25 `--bundle --format=iife --minify --sourcemap` of
// `function checkout(cart) {\n  throw new Error("empty cart");\n}\ncheckout([]);\n`.
const MINIFIED: &str = "(()=>{function r(t){throw new Error(\"empty cart\")}r([]);})();\n";
const MAP: &str = r#"{"version": 3, "sources": ["../cart.js"], "sourcesContent": ["function checkout(cart) {\n  throw new Error(\"empty cart\");\n}\ncheckout([]);\n"], "mappings": "MAAA,SAASA,EAASC,EAAM,CACtB,MAAM,IAAI,MAAM,YAAY,CAC9B,CACAD,EAAS,CAAC,CAAC", "names": ["checkout", "cart"]}"#;

fn found() -> FoundMap {
    FoundMap {
        map: Arc::new(load_map(MAP.as_bytes(), Some(MINIFIED.as_bytes())).unwrap()),
        url: "~/static/app.min.js.map".into(),
        via: "release",
    }
}

fn event() -> Value {
    json!({"platform": "javascript", "exception": {"values": [{"type": "Error", "value": "empty cart",
    "stacktrace": {"frames": [
        {"abs_path": "http://localhost/static/app.min.js", "filename": "app.min.js", "function": "?", "lineno": 1, "colno": 51},
        {"abs_path": "http://localhost/static/app.min.js", "filename": "app.min.js", "function": "r", "lineno": 1, "colno": 27},
        {"abs_path": "http://localhost/node_modules/lib/x.js", "function": "x", "lineno": 1, "colno": 1}
    ]}}]}})
}

#[test]
fn frames_resolve_to_the_original_file_line_function_and_context() {
    let mut body = event();
    let key = FrameSource {
        abs_path: "http://localhost/static/app.min.js".into(),
        debug_id: None,
    };
    let maps = HashMap::from([(key, found())]);
    let out = symbolicate(&mut body, &maps);
    assert_eq!(
        out,
        Outcome {
            resolved: 2,
            unresolved: 1
        },
        "{body:#}"
    );
    let exc = &body["exception"]["values"][0];
    let top = &exc["stacktrace"]["frames"][1];
    assert_eq!(top["filename"], "cart.js");
    assert_eq!(top["lineno"], 2);
    assert_eq!(top["function"], "checkout");
    assert_eq!(top["context_line"], "  throw new Error(\"empty cart\");");
    assert_eq!(top["pre_context"], json!(["function checkout(cart) {"]));
    assert_eq!(top["in_app"], true);
    // The minified frame is kept, and a node_modules frame is not the app's code.
    assert_eq!(exc["raw_stacktrace"]["frames"][1]["function"], "r");
    assert_eq!(exc["raw_stacktrace"]["frames"][1]["colno"], 27);
    assert_eq!(exc["stacktrace"]["frames"][2]["in_app"], false);
}

#[test]
fn bad_maps_are_refused_and_out_of_range_mappings_do_not_resolve_context() {
    let e = load_map(b"not json", None).unwrap_err().to_string();
    assert!(e.contains("not JSON"), "{e}");
    // A mapping to source #1 when there is one source.
    let bad_source = r#"{"version":3,"sources":["a.js"],"names":[],"mappings":"ACAA"}"#;
    let e = load_map(bad_source.as_bytes(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("source #1"), "{e}");
    // A mapping to line 49 of a two-line source: the frame gets the line, no context.
    let far = r#"{"version":3,"sources":["a.js"],"sourcesContent":["x\ny\n"],"names":[],"mappings":"AAgDA"}"#;
    let found = FoundMap {
        map: Arc::new(load_map(far.as_bytes(), None).unwrap()),
        url: "~/a.min.js.map".into(),
        via: "release",
    };
    let mut body = json!({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
        {"abs_path": "~/a.min.js", "lineno": 1, "colno": 1}]}}]}});
    let key = FrameSource {
        abs_path: "~/a.min.js".into(),
        debug_id: None,
    };
    symbolicate(&mut body, &HashMap::from([(key, found)]));
    let f = &body["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(f["lineno"], 49);
    assert!(f.get("context_line").is_none());
}

/// One source-map VLQ for a non-negative value.
fn vlq(v: u32) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut v, mut out) = (v << 1, String::new());
    loop {
        let mut digit = v & 31;
        v >>= 5;
        if v > 0 {
            digit |= 32;
        }
        out.push(B64[digit as usize] as char);
        if v == 0 {
            return out;
        }
    }
}

#[test]
fn a_long_non_ascii_line_resolves_names_and_frames_past_the_cap_stay_minified() {
    // The same bundle behind a 200,000-character non-ASCII comment on its single line: each
    // name lookup used to walk the line from its start, 128 times per frame.
    let pad = 200_000u32;
    let minified = format!("/*{}*/{MINIFIED}", "é".repeat(pad as usize));
    let map = MAP.replacen("\"MAAA,", &format!("\"{},", vlq(6 + pad + 4)), 1);
    let found = FoundMap {
        map: Arc::new(load_map(map.as_bytes(), Some(minified.as_bytes())).unwrap()),
        url: "~/static/app.min.js.map".into(),
        via: "release",
    };
    let frame = json!({"abs_path": "http://localhost/static/app.min.js", "function": "r",
        "lineno": 1, "colno": 27 + pad + 4});
    let n = MAX_FRAMES_PER_EVENT + 50;
    let mut body = json!({"platform": "javascript", "exception": {"values": [{"type": "Error",
        "stacktrace": {"frames": vec![frame; n]}}]}});
    let key = FrameSource {
        abs_path: "http://localhost/static/app.min.js".into(),
        debug_id: None,
    };
    let out = symbolicate(&mut body, &HashMap::from([(key, found)]));
    assert_eq!(
        out,
        Outcome {
            resolved: MAX_FRAMES_PER_EVENT,
            unresolved: 50
        }
    );
    let frames = &body["exception"]["values"][0]["stacktrace"]["frames"];
    assert_eq!(frames[0]["function"], "checkout");
    assert_eq!(frames[0]["filename"], "cart.js");
    assert_eq!(frames[0]["lineno"], 2);
    assert_eq!(frames[n - 1]["function"], "r", "over the cap: as sent");
    // Every frame from its own file: only the first few files are looked up.
    let frames: Vec<Value> = (0..n)
        .map(|i| json!({"abs_path": format!("~/{i}.js"), "lineno": 1, "colno": 1}))
        .collect();
    let body = json!({"platform": "node", "exception": {"values": [{"type": "E",
        "stacktrace": {"frames": frames}}]}});
    assert_eq!(sources(&body).len(), MAX_SOURCES_PER_EVENT);
}

fn bundle(files: usize) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    let mut manifest = serde_json::Map::new();
    for i in 0..files {
        zip.start_file(format!("files/m{i}"), opts).unwrap();
        zip.write_all(MAP.as_bytes()).unwrap();
        manifest.insert(
            format!("m{i}"),
            json!({"url": format!("~/m{i}.js.map"), "type": "source_map"}),
        );
    }
    zip.start_file("manifest.json", opts).unwrap();
    zip.write_all(json!({"files": manifest}).to_string().as_bytes())
        .unwrap();
    zip.finish().unwrap().into_inner()
}

#[test]
fn bundles_over_their_file_count_or_unpacked_size_are_refused() {
    let limits = BundleLimits {
        max_files: 2,
        max_file_bytes: 1 << 20,
        max_total_bytes: 2 * MAP.len() as u64,
    };
    let b = read_artifact_bundle(&bundle(1), &limits).unwrap();
    assert_eq!(b.files.len(), 1);
    // Two maps fill the total exactly; the manifest counts too.
    let e = read_artifact_bundle(&bundle(2), &limits).unwrap_err();
    assert!(matches!(e, ProtocolError::TooLarge(_)), "{e}");
    let e = read_artifact_bundle(&bundle(3), &limits).unwrap_err();
    assert!(e.to_string().contains("at most 2"), "{e}");
}

#[test]
fn urls_match_exactly_or_by_path_under_tilde() {
    assert_eq!(
        url_candidates("https://cdn.example.com/static/app.min.js?v=3"),
        vec![
            "https://cdn.example.com/static/app.min.js",
            "~/static/app.min.js"
        ]
    );
    assert_eq!(
        url_candidates("app:///static/app.min.js"),
        vec!["app:///static/app.min.js", "~/static/app.min.js"]
    );
    assert_eq!(
        resolve_url("~/static/app.min.js", "app.min.js.map"),
        "~/static/app.min.js.map"
    );
    assert_eq!(
        resolve_url("~/static/app.min.js.map", "../../src/cart.js"),
        "~/src/cart.js"
    );
    assert_eq!(
        resolve_url("https://cdn.example.com/js/app.js.map", "./src/./a.js"),
        "https://cdn.example.com/js/src/a.js"
    );
    assert_eq!(
        normalize_debug_id("C0FFEE00AAAA4BBB8CCC123456789ABC").as_deref(),
        Some("c0ffee00-aaaa-4bbb-8ccc-123456789abc")
    );
    assert_eq!(normalize_debug_id("nope"), None);
}

#[test]
fn a_batch_memo_gives_every_event_what_resolving_it_alone_gives() {
    let key = FrameSource {
        abs_path: "http://localhost/static/app.min.js".into(),
        debug_id: None,
    };
    let maps = HashMap::from([(key, found())]);
    let mut memo = FrameMemo::default();
    // The same stack twice, then one whose frames differ only in the minified name and the
    // order (so the caller's name each frame sees differs): each must come out as alone.
    let mut other = event();
    let frames = other["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array_mut()
        .unwrap();
    frames.swap(0, 1);
    frames[1]["function"] = json!("q");
    for sent in [event(), event(), other] {
        let (mut alone, mut batched) = (sent.clone(), sent);
        let a = symbolicate(&mut alone, &maps);
        let b = symbolicate_with(&mut batched, &maps, &mut memo);
        assert_eq!(a, b);
        assert_eq!(alone, batched);
    }
    // A different map at the same positions is not served from the memo.
    let far =
        r#"{"version":3,"sources":["b.js"],"sourcesContent":["x\n"],"names":[],"mappings":"AAAA"}"#;
    let other_map = FoundMap {
        map: Arc::new(load_map(far.as_bytes(), None).unwrap()),
        url: "~/static/app.min.js.map".into(),
        via: "release",
    };
    let key = FrameSource {
        abs_path: "http://localhost/static/app.min.js".into(),
        debug_id: None,
    };
    let mut body = event();
    symbolicate_with(&mut body, &HashMap::from([(key, other_map)]), &mut memo);
    assert_eq!(
        body["exception"]["values"][0]["stacktrace"]["frames"][0]["filename"],
        "b.js"
    );
}
