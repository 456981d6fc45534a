//! Roles, in process: one representative route per capability refuses the anonymous (401), the
//! viewer's writes (403) and the member's admin actions (403), and lets through who may; and the
//! role tests the e2e suite ran against a process (every answer here is the router's own).

use axum::http::{Method, StatusCode};
use lookout_testkit::{both, Backend};
use serde_json::json;

use crate::Harness;

/// A read and a write of each capability, with a body that would be accepted.
fn per_capability() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    vec![
        (
            "/api/v1/projects",
            "/api/v1/projects",
            json!({"name": "Shop"}),
        ),
        (
            "/api/v1/projects/1/markers",
            "/api/v1/projects/1/markers",
            json!({"title": "v2"}),
        ),
        (
            "/api/v1/monitors",
            "/api/v1/monitors",
            json!({"name": "web", "type": "http", "url": "http://127.0.0.1:9/", "paused": true}),
        ),
        (
            "/api/v1/channels",
            "/api/v1/channels",
            json!({"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}),
        ),
        (
            "/api/v1/escalation-policies",
            "/api/v1/escalation-policies",
            json!({"name": "p", "escalation_rules": [
                {"escalation_delay_in_minutes": 5, "targets": [{"type": "user", "id": 1}]}]}),
        ),
        (
            "/api/v1/schedules",
            "/api/v1/schedules",
            json!({"name": "s", "time_zone": "UTC", "schedule_layers": []}),
        ),
        (
            "/api/v1/integrations",
            "/api/v1/integrations",
            json!({"name": "pd", "type": "pagerduty"}),
        ),
        (
            "/api/v1/incidents",
            "/api/v1/incidents",
            json!({"title": "db down", "severity": "critical"}),
        ),
        (
            "/api/v1/runbooks",
            "/api/v1/runbooks",
            json!({"name": "rb", "body": "# Disk full"}),
        ),
        (
            "/api/v1/status-pages",
            "/api/v1/status-pages",
            json!({"slug": "pub", "title": "Public"}),
        ),
        (
            "/api/v1/slos",
            "/api/v1/slos",
            json!({"name": "a", "service": "shop", "indicator": "availability", "target": 99.5}),
        ),
        (
            "/api/v1/series",
            "/api/v1/series/api.p95_ms/points",
            json!({"value": 1.0}),
        ),
    ]
}

/// Anonymous: 401 on reads and writes. Viewer: reads, and 403 on every write (nothing stored).
/// Member: the write goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_capability_refuses_anonymous_and_viewer_writes_and_lets_members_write() {
    let h = Harness::sqlite().await;
    for (list, create, body) in per_capability() {
        let r = h.anon.get(list).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "unauthorized"),
            "{r:?}"
        );
        let r = h.anon.post(create, body.clone()).await;
        assert_eq!(r.status, 401, "{r:?}");
        let r = h.viewer.get(list).await;
        assert_eq!(r.status, 200, "{r:?}");
        let before = h.count(list).await;
        let r = h.viewer.post(create, body.clone()).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{r:?}");
        assert_eq!(
            h.count(list).await,
            before,
            "{create}: a refused write stored something"
        );
        let r = h.member.post(create, body).await;
        assert!(r.status.is_success(), "member: {r:?}");
    }
}

/// The admin's routes: users, database and backup targets, packs, report settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_refused_the_admin_routes() {
    let h = Harness::sqlite().await;
    let admin_only = [
        (Method::GET, "/api/v1/users", None),
        (
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": "e@x.io", "password": "12345678"})),
        ),
        (
            Method::POST,
            "/api/v1/db-targets",
            Some(json!({"name": "shop", "url": "postgres://127.0.0.1:9/shop"})),
        ),
        (
            Method::POST,
            "/api/v1/backup-targets",
            Some(json!({"name": "t", "stanza": "t"})),
        ),
        (Method::POST, "/api/v1/packs/golden-signals/install", None),
        (
            Method::PUT,
            "/api/v1/report-settings",
            Some(json!({"timezone": "UTC"})),
        ),
    ];
    for (m, path, body) in admin_only {
        let r = h.member.send(m.clone(), path, body).await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{r:?}");
        let r = h.anon.send(m, path, None).await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    assert_eq!(
        h.count("/api/v1/users").await,
        1,
        "only the bootstrap admin"
    );
    assert_eq!(h.count("/api/v1/db-targets").await, 0);
    // The admin may.
    let (st, v) = h.admin.get("/api/v1/users").await.parts();
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// Moved from the e2e suite (foundation/api.rs), same assertions, on both backends.
async fn roles_are_enforced_on_every_api_route(backend: Backend) {
    let h = Harness::new(backend).await;
    let viewer_token = h.admin.token("viewer").await;
    let viewer = h.anon.bearer(&viewer_token);
    let member = h.anon.bearer(&h.admin.token("member").await);
    use Method as M;
    // No credential, a wrong one: 401 with the error shape.
    let (st, body) = h.anon.get("/api/v1/projects").await.parts();
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert_eq!(
        h.anon
            .bearer("lk_wrong")
            .get("/api/v1/projects")
            .await
            .status,
        401
    );
    // Viewer reads, cannot write.
    assert_eq!(viewer.get("/api/v1/projects").await.status, 200);
    assert_eq!(viewer.get("/api/v1/projects/1/markers").await.status, 200);
    let (st, body) = viewer
        .post("/api/v1/projects", json!({"name": "x"}))
        .await
        .parts();
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    assert_eq!(
        viewer
            .post("/api/v1/projects/1/markers", json!({"title": "x"}))
            .await
            .status,
        403
    );
    // Viewers cannot mint a stronger token.
    assert_eq!(
        viewer
            .post("/api/v1/tokens", json!({"name": "up", "role": "admin"}))
            .await
            .status,
        403
    );
    // Member writes project data, cannot manage users.
    assert_eq!(
        member
            .post("/api/v1/projects", json!({"name": "Shop"}))
            .await
            .status,
        201
    );
    assert_eq!(
        member
            .post("/api/v1/projects/1/markers", json!({"title": "v2"}))
            .await
            .status,
        201
    );
    assert_eq!(member.get("/api/v1/users").await.status, 403);
    assert_eq!(
        member
            .post(
                "/api/v1/users",
                json!({"email": "e@x.io", "password": "12345678"})
            )
            .await
            .status,
        403
    );
    // Non-admins see only their own tokens; the bootstrap token is not theirs.
    let mine = member.get("/api/v1/tokens").await.json;
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
    assert_eq!(member.delete("/api/v1/tokens/1").await.status, 404);
    // Admin manages users; a revoked token stops at once.
    let (st, u) = h
        .admin
        .post(
            "/api/v1/users",
            json!({"email": "Eve@Example.com", "password": "12345678", "role": "viewer"}),
        )
        .await
        .parts();
    assert_eq!(st, 201);
    assert_eq!(u["email"], "eve@example.com");
    let all = h.admin.get("/api/v1/tokens").await.json;
    let viewer_id = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "viewer")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        h.admin
            .send(M::DELETE, &format!("/api/v1/tokens/{viewer_id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(viewer.get("/api/v1/projects").await.status, 401);
    let me = h.admin.get("/api/v1/me").await.json;
    assert_eq!(
        (me["auth"].as_str(), me["role"].as_str()),
        (Some("token"), Some("admin"))
    );
}

/// Moved from the e2e suite (foundation/hardening.rs). Issue #23, low 15: a viewer's write with
/// a broken body answered 400 or 422 (describing the body) instead of 403; roles are now checked
/// before the body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_by_viewers_are_refused_before_their_body_is_read() {
    let h = Harness::sqlite().await;
    let viewer = h.anon.bearer(&h.admin.token("viewer").await);
    for (path, body) in [
        ("/api/v1/monitors", "{\"type\": \"bogus\"}"),
        ("/api/v1/monitors", "{not json"),
        ("/api/v1/projects", "[]"),
        ("/api/v1/escalation-policies", "{\"escalation_rules\": 7}"),
        ("/api/v1/users", "{\"email\": 1}"),
        ("/api/v1/integrations", "{}"),
    ] {
        let (st, v) = viewer
            .post_raw(path, "application/json", body)
            .await
            .parts();
        assert_eq!(st, 403, "{path} {body}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{path}");
    }
}

both!(roles_are_enforced_on_every_api_route);
