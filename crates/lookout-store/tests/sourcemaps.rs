//! Source-map storage and lookup as the error processor uses them: failures of one event's
//! lookup never fail the caller, and uploads keep what sentry-cli lists (SHA-1s) at hand.

use lookout_protocol::sourcemaps::{BundleFile, FileKind};
use lookout_store::errors::sourcemaps::{self as sm, MapCache};
use lookout_store::tenancy;
use serde_json::json;

#[macro_use]
mod support;
use lookout_store::Backend;
use support::{fixture, Fixture};

both!(
    a_map_deleted_on_another_replica_leaves_the_event_minified,
    events_that_came_before_their_maps_are_reprocessed_page_by_page,
);

// esbuild's minified `checkout` and its map (as in lookout-protocol's unit tests).
const MINIFIED: &str = "(()=>{function r(t){throw new Error(\"empty cart\")}r([]);})();\n";
const MAP: &str = r#"{"version": 3, "sources": ["../cart.js"], "sourcesContent": ["function checkout(cart) {\n  throw new Error(\"empty cart\");\n}\ncheckout([]);\n"], "mappings": "MAAA,SAASA,EAASC,EAAM,CACtB,MAAM,IAAI,MAAM,YAAY,CAC9B,CACAD,EAAS,CAAC,CAAC", "names": ["checkout", "cart"]}"#;

fn file(kind: FileKind, url: &str, content: &str) -> BundleFile {
    BundleFile {
        kind,
        url: url.into(),
        debug_id: None,
        sourcemap_ref: None,
        content: content.as_bytes().to_vec(),
    }
}

fn event() -> serde_json::Value {
    json!({"platform": "javascript", "release": "r1", "exception": {"values": [{"type": "Error",
        "stacktrace": {"frames": [{"abs_path": "http://localhost/static/app.min.js",
            "function": "r", "lineno": 1, "colno": 27}]}}]}})
}

async fn a_map_deleted_on_another_replica_leaves_the_event_minified(f: Fixture) {
    let org = tenancy::default_org(&f.store).await.unwrap();
    let p = tenancy::create_project(&f.store, org.id, "web", None, Some("javascript"))
        .await
        .unwrap();
    let url = "~/static/app.min.js";
    sm::put_release_file(
        &f.store,
        p.id,
        "r1",
        None,
        &file(FileKind::MinifiedSource, url, MINIFIED),
    )
    .await
    .unwrap();
    sm::put_release_file(
        &f.store,
        p.id,
        "r1",
        None,
        &file(FileKind::SourceMap, "~/static/app.min.js.map", MAP),
    )
    .await
    .unwrap();
    // Remembers lookups, keeps no decoded map.
    let cache = MapCache::new(0);
    let mut body = event();
    let out = sm::symbolicate_event(&f.store, &cache, p.id, &mut body, false)
        .await
        .unwrap();
    assert_eq!(out.resolved, 1);
    assert_eq!(
        body["exception"]["values"][0]["stacktrace"]["frames"][0]["function"],
        "checkout"
    );
    // Another replica deletes the files: this one still remembers where they were.
    sqlx::query("DELETE FROM source_files")
        .execute(f.store.pool())
        .await
        .unwrap();
    let mut body = event();
    let out = sm::symbolicate_event(&f.store, &cache, p.id, &mut body, false)
        .await
        .expect("a missing file is no map, not an error");
    assert_eq!(out.resolved, 0);
    assert_eq!(body, event());
    // sentry-cli's listing names each legacy file with the SHA-1 of its bytes.
    sm::put_release_file(
        &f.store,
        p.id,
        "r1",
        None,
        &file(FileKind::SourceMap, "~/a.js.map", MAP),
    )
    .await
    .unwrap();
    let listed = sm::list_release_files(&f.store, p.id, "r1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha1, sm::sha1_hex(MAP.as_bytes()));
}

async fn events_that_came_before_their_maps_are_reprocessed_page_by_page(f: Fixture) {
    use lookout_store::errors::process::{ingest_writes, ErrorProcessor};
    use lookout_store::writer::WriterConfig;
    use lookout_store::Writer;
    use sqlx::Row;
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    // More events than one page of re-processing reads.
    let n = sm::REPROCESS_PAGE as usize + 10;
    let items = (0..n)
        .map(|i| {
            let mut ev = event();
            ev["event_id"] = json!(format!("{i:032x}"));
            (
                "event".to_string(),
                Some(format!("{i:032x}")),
                ev.to_string(),
            )
        })
        .collect();
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    writer
        .queue()
        .write(ingest_writes(
            project.id,
            lookout_core::time::now_ms(),
            items,
            Vec::new(),
        ))
        .await
        .unwrap();
    writer.shutdown().await;
    let p = ErrorProcessor::new(f.store.clone(), "t");
    while p.poll_once().await.unwrap() > 0 {}
    let issue_id: i64 = sqlx::query("SELECT id FROM issues")
        .fetch_one(f.store.pool())
        .await
        .unwrap()
        .get("id");
    for (kind, url, content) in [
        (FileKind::MinifiedSource, "~/static/app.min.js", MINIFIED),
        (FileKind::SourceMap, "~/static/app.min.js.map", MAP),
    ] {
        sm::put_release_file(&f.store, project.id, "r1", None, &file(kind, url, content))
            .await
            .unwrap();
    }
    let r = sm::reprocess_issue(&f.store, &MapCache::new(1 << 20), issue_id)
        .await
        .unwrap();
    assert_eq!(
        (r.events, r.updated, r.frames),
        (n as u64, n as u64, n as u64)
    );
    let resolved: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM error_events WHERE body LIKE '%\"function\":\"checkout\"%'",
    )
    .fetch_one(f.store.pool())
    .await
    .unwrap()
    .get("n");
    assert_eq!(resolved, n as i64, "every page's events were rewritten");
}
