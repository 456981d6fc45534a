//! Validation, in process: for each capability's main create endpoint, a bad body is refused
//! with 422 and a message naming what is wrong, and
//! nothing is stored. The cases come from what users get wrong: a missing URL, a bad time zone,
//! an unknown user, a query that does not parse.

use serde_json::{json, Value};

use crate::Harness;

/// One refused create: the list it would appear in, where it is posted, the body and a part of
/// the message that names the field.
struct Case {
    list: &'static str,
    path: &'static str,
    body: Value,
    names: &'static str,
}

fn post(list: &'static str, path: &'static str, body: Value, names: &'static str) -> Case {
    Case {
        list,
        path,
        body,
        names,
    }
}

fn cases() -> Vec<Case> {
    let nrql = "SELECT average(duration) FROM Transaction FACET appName";
    let above = json!({"operator": "above", "value": 1.0});
    let policy = |condition: Value| json!({"name": "Slow", "conditions": [condition]});
    vec![
        post(
            "/api/v1/projects",
            "/api/v1/projects",
            json!({"name": ""}),
            "name",
        ),
        post(
            "/api/v1/projects/1/markers",
            "/api/v1/projects/1/markers",
            json!({"title": "x", "at": "yesterday"}),
            "at",
        ),
        // Monitors (uptime).
        post(
            "/api/v1/monitors",
            "/api/v1/monitors",
            json!({"name": "x", "type": "http"}),
            "url",
        ),
        post(
            "/api/v1/monitors",
            "/api/v1/monitors",
            json!({"name": "x", "type": "http", "url": "http://a", "conditions": ["[STATUS] =="]}),
            "conditions",
        ),
        post(
            "/api/v1/monitors",
            "/api/v1/monitors",
            json!({"name": "x", "type": "tcp", "host": "a", "port": 1, "interval_seconds": 0}),
            "interval_seconds",
        ),
        post(
            "/api/v1/monitors",
            "/api/v1/monitors",
            json!({"name": "x", "type": "cron", "schedule": "every day"}),
            "schedule",
        ),
        post(
            "/api/v1/monitors",
            "/api/v1/monitors",
            json!({"name": "x", "type": "http", "url": "http://a", "parent_id": 999}),
            "parent_id",
        ),
        // Alerting and on-call.
        post(
            "/api/v1/channels",
            "/api/v1/channels",
            json!({"name": "x", "type": "carrier-pigeon", "url": "http://127.0.0.1:9/"}),
            "type",
        ),
        post(
            "/api/v1/schedules",
            "/api/v1/schedules",
            json!({"name": "bad", "time_zone": "Europe/Nowhere", "schedule_layers": []}),
            "time_zone",
        ),
        post(
            "/api/v1/schedules",
            "/api/v1/schedules",
            json!({"name": "bad", "time_zone": "UTC", "schedule_layers": [{
                "start": "2026-01-01T00:00:00Z", "rotation_virtual_start": "2026-01-01T00:00:00Z",
                "rotation_turn_length_seconds": 86400, "users": [9999]}]}),
            "9999",
        ),
        post(
            "/api/v1/escalation-policies",
            "/api/v1/escalation-policies",
            json!({"name": "p", "escalation_rules": [
                {"escalation_delay_in_minutes": 5, "targets": [{"type": "user", "id": 9999}]}]}),
            "9999",
        ),
        post(
            "/api/v1/integrations",
            "/api/v1/integrations",
            json!({"name": "x", "type": "pagerduty", "escalation_policy_id": 9999}),
            "escalation policy 9999",
        ),
        post(
            "/api/v1/runbooks",
            "/api/v1/runbooks",
            json!({"name": "rb", "url": "javascript:alert(document.cookie)"}),
            "url",
        ),
        post(
            "/api/v1/policies",
            "/api/v1/policies",
            policy(
                json!({"source": "nrql", "nrql": nrql, "window_seconds": 20, "critical": above}),
            ),
            "window_seconds",
        ),
        post(
            "/api/v1/policies",
            "/api/v1/policies",
            policy(
                json!({"source": "nrql", "nrql": "SELECT average(duration) FROM", "critical": above}),
            ),
            "line 1, column",
        ),
        // Status pages, SLOs, reports.
        post(
            "/api/v1/status-pages",
            "/api/v1/status-pages",
            json!({"slug": "Bad Slug!", "title": "x"}),
            "slug",
        ),
        post(
            "/api/v1/slos",
            "/api/v1/slos",
            json!({"name": "x", "service": "shop", "indicator": "latency", "target": 99}),
            "percentile",
        ),
        // Regressions and load tests.
        post(
            "/api/v1/series",
            "/api/v1/series/api.p95_ms/points",
            json!({"value": 1, "direction": "sideways"}),
            "direction",
        ),
        post(
            "/api/v1/series",
            "/api/v1/series/api.p95_ms/points",
            json!({"value": 1, "at": "yesterday"}),
            "RFC 3339",
        ),
        post(
            "/api/v1/load-runs",
            "/api/v1/load-runs",
            json!({"name": "x", "summary": {}}),
            "load run",
        ),
        // Database targets (admin).
        post(
            "/api/v1/db-targets",
            "/api/v1/db-targets",
            json!({"name": "x", "url": "mysql://db/shop"}),
            "postgres://",
        ),
        post(
            "/api/v1/db-targets",
            "/api/v1/db-targets",
            json!({"name": "x", "url": "postgres://h/db", "interval_seconds": 5}),
            "interval_seconds",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_naming_the_field_and_store_nothing() {
    let h = Harness::sqlite().await;
    let mut problems = Vec::new();
    for c in cases() {
        let before = h.count(c.list).await;
        let r = h.admin.post(c.path, c.body.clone()).await;
        if r.status != 422 || !r.message().contains(c.names) {
            problems.push(format!(
                "{}: want 422 naming {:?}, got {r:?}",
                c.body, c.names
            ));
        }
        assert!(!r.message().is_empty(), "{r:?} has no message");
        let after = h.count(c.list).await;
        if after != before {
            problems.push(format!("{}: {before} items before, {after} after", c.path));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Settings are one document: a bad field is refused and the stored one is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_report_settings_are_refused_and_keep_the_old_ones() {
    let h = Harness::sqlite().await;
    let before = h.admin.get("/api/v1/report-settings").await.expect(200);
    let r = h
        .admin
        .put(
            "/api/v1/report-settings",
            json!({"timezone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.json.to_string().contains("timezone"), "{r:?}");
    assert_eq!(
        h.admin.get("/api/v1/report-settings").await.expect(200),
        before
    );
}

/// NRQL: a syntax error names the place with a caret; an unknown event type lists the known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_say_where_and_why() {
    let h = Harness::sqlite().await;
    let r = h
        .viewer
        .post(
            "/api/v1/query",
            json!({"nrql": "SELECT count(* FROM Transaction"}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.message().contains("line 1, column 16") && r.message().contains('^'),
        "{r:?}"
    );
    let r = h
        .viewer
        .post(
            "/api/v1/query",
            json!({"nrql": "SELECT count(*) FROM Pageview"}),
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.json.to_string().contains("SyntheticCheck"), "{r:?}");
}

/// Uptime's check now and maintenance windows, through the service both the API and the monitor
/// page call: a missing monitor is 404, a paused one 409, a window with a bad time names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_now_and_windows_refuse_what_cannot_be_done() {
    let h = Harness::sqlite().await;
    let r = h.admin.post("/api/v1/monitors/999/check", json!({})).await;
    assert_eq!(r.status, 404, "{r:?}");
    let m = h
        .admin
        .post(
            "/api/v1/monitors",
            json!({"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 9, "paused": true}),
        )
        .await
        .expect(201);
    let id = m["id"].as_i64().unwrap();
    let r = h
        .admin
        .post(&format!("/api/v1/monitors/{id}/check"), json!({}))
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.message().contains("paused"), "{r:?}");
    let r = h
        .admin
        .post(
            "/api/v1/maintenance-windows",
            json!({"title": "db", "starts_at": "tonight", "monitor_ids": [id]}),
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.message().contains("starts_at"), "{r:?}");
    assert_eq!(h.count("/api/v1/maintenance-windows").await, 0);
}
