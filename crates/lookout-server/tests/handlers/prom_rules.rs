//! Rule files through `/api/v1/prometheus/rules` and the Rules page, in process: who may
//! upload (refused before the body is read), every validation error naming its group, rule and
//! field, nothing stored from a refused file, and the form keeping the typed text. Evaluation
//! (pending, firing, incidents) is tested end to end in crates/lookout/tests/e2e/metrics/rules.rs.

use axum::http::Method;
use lookout_core::Role;
use lookout_testkit::client::Body;

use crate::{form, Harness, FORM};

const GOOD: &str = "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: up == 0\n        for: 5m\n";
const BAD: &str = "groups:\n  - name: g\n    rules:\n      - record: ok\n        expr: up\n      - alert: Broken\n        expr: sum(up\n      - record: \"bad name\"\n        expr: up\n        for: 1m\n";

async fn put(c: &lookout_testkit::Client, file: &str, text: &str) -> lookout_testkit::Response {
    c.send(
        Method::PUT,
        &format!("/api/v1/prometheus/rules?file={file}"),
        Body::Raw {
            content_type: "application/yaml".into(),
            bytes: text.as_bytes().to_vec(),
        },
    )
    .await
}

#[tokio::test]
async fn uploads_need_the_member_role_and_bad_files_name_each_rule() {
    let h = Harness::sqlite().await;
    // A viewer is refused before the body is read: garbage is a 403, not a 422.
    assert_eq!(put(&h.viewer, "r.yml", "{{{").await.status.as_u16(), 403);
    assert_eq!(put(&h.anon, "r.yml", GOOD).await.status.as_u16(), 401);
    let r = put(&h.member, "r.yml", BAD).await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    let msg = r.text();
    assert!(
        msg.contains(r#"group \"g\", rule 2, \"Broken\": could not parse expression"#),
        "{msg}"
    );
    assert!(
        msg.contains(r#"group \"g\", rule 3, \"bad name\": invalid recording rule name: bad name"#),
        "{msg}"
    );
    assert!(
        msg.contains(r#"rule 3, \"bad name\": invalid field 'for' in recording rule"#),
        "{msg}"
    );
    assert_eq!(
        h.count("/api/v1/prometheus/rules").await,
        0,
        "a refused file stores nothing"
    );
    let v = put(&h.member, "r.yml", GOOD).await.expect(200);
    assert_eq!(
        (v["groups"].as_i64(), v["rules"].as_i64()),
        (Some(1), Some(2))
    );
    let list = h.viewer.get("/api/v1/prometheus/rules").await.expect(200);
    assert_eq!(list[0]["content"], GOOD);
    // Prometheus's read API lists it, never evaluated yet.
    let v = h.viewer.get("/prometheus/api/v1/rules").await.expect(200);
    let g = &v["data"]["groups"][0];
    assert_eq!(
        (g["name"].as_str(), g["file"].as_str()),
        (Some("g"), Some("r.yml"))
    );
    assert_eq!(g["rules"][1]["state"], "inactive");
    assert_eq!(g["rules"][1]["health"], "unknown");
    assert_eq!(g["rules"][1]["duration"], 300.0);
    assert_eq!(g["rules"][0]["type"], "recording");
    let v = h
        .viewer
        .get("/prometheus/api/v1/rules?type=record")
        .await
        .expect(200);
    assert_eq!(v["data"]["groups"][0]["rules"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.viewer
            .get("/prometheus/api/v1/rules?type=x")
            .await
            .status
            .as_u16(),
        400
    );
    assert_eq!(
        h.viewer
            .delete("/api/v1/prometheus/rules?file=r.yml")
            .await
            .status
            .as_u16(),
        403
    );
    assert_eq!(
        h.member
            .delete("/api/v1/prometheus/rules?file=r.yml")
            .await
            .status
            .as_u16(),
        204
    );
    assert_eq!(
        h.member
            .delete("/api/v1/prometheus/rules?file=r.yml")
            .await
            .status
            .as_u16(),
        404
    );
}

/// A file over the 256 KiB limit is refused with 413 before its body is read whole through the
/// API, and so is a page form too large to hold a file of the limit; one just under it is
/// judged on its content.
#[tokio::test]
async fn an_oversized_rule_file_is_413() {
    let h = Harness::sqlite().await;
    let big = format!("{GOOD}#{}\n", "x".repeat(256 * 1024));
    let r = put(&h.member, "r.yml", &big).await;
    assert_eq!(r.status.as_u16(), 413, "{r:?}");
    assert_eq!(h.count("/api/v1/prometheus/rules").await, 0);
    let fits = format!("{GOOD}#{}\n", "x".repeat(250 * 1024));
    assert_eq!(put(&h.member, "r.yml", &fits).await.status.as_u16(), 200);
    let (member, csrf) = h.ui_session(Role::Member, "rules").await;
    // A form that could still hold a file of the limit (URL-encoding triples it) is read, and
    // the page names the size; past that it is 413.
    let over = format!("{GOOD}#{}\n", "x".repeat(256 * 1024));
    let r = member
        .post_raw(
            "/explore/metrics/rules",
            FORM,
            form(&[("csrf", &csrf), ("file", "mine.yml"), ("content", &over)]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    assert!(r.text().contains("at most 262144 are accepted"));
    let huge = format!("{GOOD}#{}\n", "%".repeat(300 * 1024));
    let r = member
        .post_raw(
            "/explore/metrics/rules",
            FORM,
            form(&[("csrf", &csrf), ("file", "mine.yml"), ("content", &huge)]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 413, "{r:?}");
}

#[tokio::test]
async fn the_page_keeps_typed_text_and_names_the_bad_rule() {
    let h = Harness::sqlite().await;
    let (viewer, _) = h.ui_session(Role::Viewer, "rules").await;
    let page = viewer.get("/explore/metrics/rules").await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(page.text().contains("No rules yet"));
    assert!(
        !page.text().contains("id=\"rules-form\""),
        "no form for a viewer"
    );
    let r = viewer
        .post_raw("/explore/metrics/rules", FORM, b"%%%".to_vec())
        .await;
    assert_eq!(r.status.as_u16(), 403, "refused before the body is read");
    let (member, csrf) = h.ui_session(Role::Member, "rules").await;
    let r = member
        .post_raw(
            "/explore/metrics/rules",
            FORM,
            form(&[("csrf", &csrf), ("file", "mine.yml"), ("content", BAD)]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    let html = r.text();
    assert!(html.contains("id=\"rule-errors\""), "{html}");
    assert!(
        html.contains("rule 2, &#34;Broken&#34;: could not parse expression")
            || html.contains("rule 2, &quot;Broken&quot;: could not parse expression"),
        "{html}"
    );
    assert!(html.contains("sum(up"), "the typed text is kept");
    assert!(html.contains("value=\"mine.yml\""));
    let r = member
        .post_raw(
            "/explore/metrics/rules",
            FORM,
            form(&[("csrf", &csrf), ("file", "mine.yml"), ("content", GOOD)]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let page = member
        .get("/explore/metrics/rules?file=mine.yml")
        .await
        .text();
    assert!(page.contains("data-rule=\"Down\""), "{page}");
    assert!(page.contains("state-inactive"));
    assert!(page.contains("job:up:sum"));
}

/// A reload of the config file's `rule_files` leaves a file whose content did not change alone:
/// no new version (the evaluator's in-flight write stays valid) and no audit entry per reload.
#[tokio::test]
async fn an_unchanged_config_rule_file_is_not_rewritten() {
    use lookout_server::prometheus::rules::service;
    use lookout_store::prom::rules as rstore;
    let h = Harness::sqlite().await;
    let all = lookout_store::Cursor {
        after: None,
        limit: Some(10),
    };
    let p = lookout_store::tenancy::list_projects(&h.store, &all)
        .await
        .unwrap()
        .items[0]
        .id;
    service::save_from_config(&h.store, p, "c.yml", GOOD)
        .await
        .unwrap();
    let first = rstore::files(&h.store, p).await.unwrap()[0].updated_at;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    service::save_from_config(&h.store, p, "c.yml", GOOD)
        .await
        .unwrap();
    assert_eq!(
        rstore::files(&h.store, p).await.unwrap()[0].updated_at,
        first
    );
    let changed = GOOD.replace("5m", "10m");
    service::save_from_config(&h.store, p, "c.yml", &changed)
        .await
        .unwrap();
    let f = &rstore::files(&h.store, p).await.unwrap()[0];
    assert_eq!(f.content, changed);
    assert!(f.updated_at > first);
}
