//! Tests that only checked a 4xx answer, moved here from the e2e suite with their assertions:
//! each started the binary (twice, once per backend) just to be told 400, 413 or 422.

use axum::http::Method;
use lookout_testkit::{both, Backend, Body};
use serde_json::{json, Value};

use crate::Harness;

/// From foundation/api.rs: malformed, mistyped, oversized and misrouted requests get a JSON
/// error with a stable code and a message, and the server keeps serving.
async fn bad_input_gets_a_clear_json_4xx(backend: Backend) {
    let h = Harness::new(backend).await;
    let c = &h.admin;
    let post = |path: &'static str, body: &'static str, ct: &'static str| {
        c.post_raw(path, ct, body.as_bytes().to_vec())
    };
    let cases = vec![
        (
            post("/api/v1/projects", "{not json", "application/json").await,
            400,
            "bad_request",
        ),
        (
            post("/api/v1/projects", "{\"name\": 5}", "application/json").await,
            400,
            "bad_request",
        ),
        (
            post(
                "/api/v1/projects",
                "name=x",
                "application/x-www-form-urlencoded",
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            post("/api/v1/projects", "{\"name\": \"\"}", "application/json").await,
            422,
            "validation_failed",
        ),
        (
            post(
                "/api/v1/projects",
                "{\"name\": \"a\", \"slug\": \"Bad Slug\"}",
                "application/json",
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            post(
                "/api/v1/projects/1/markers",
                "{\"title\": \"x\", \"url\": \"javascript:alert(1)\"}",
                "application/json",
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            post(
                "/api/v1/projects/1/markers",
                "{\"title\": \"x\", \"at\": \"yesterday\"}",
                "application/json",
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            post(
                "/api/v1/projects/999/markers",
                "{\"title\": \"x\"}",
                "application/json",
            )
            .await,
            404,
            "not_found",
        ),
        (c.get("/api/v1/projects/abc").await, 400, "bad_request"),
        (c.get("/api/v1/projects/999").await, 404, "not_found"),
        (
            c.get("/api/v1/projects?limit=many").await,
            400,
            "bad_request",
        ),
        (c.get("/api/v1/no-such-route").await, 404, "not_found"),
        (
            c.post_raw(
                "/api/v1/projects",
                "application/json",
                vec![b' '; 2 * 1024 * 1024],
            )
            .await,
            413,
            "payload_too_large",
        ),
    ];
    for (i, (resp, status, code)) in cases.into_iter().enumerate() {
        let (st, body) = resp.parts();
        assert_eq!(st.as_u16(), status, "case {i}: {body}");
        assert_eq!(body["error"]["code"], code, "case {i}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "case {i} has no message"
        );
    }
    let (st, _) = post(
        "/api/v1/projects",
        "{\"name\": \"Dup\"}",
        "application/json",
    )
    .await
    .parts();
    assert_eq!(st, 201);
    let (st, body) = post(
        "/api/v1/projects",
        "{\"name\": \"Dup\"}",
        "application/json",
    )
    .await
    .parts();
    assert_eq!(
        (st.as_u16(), body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    // The server is still healthy after all of that.
    assert_eq!(c.get("/readyz").await.status, 200);
}

fn trigger(key: &str, dedup: &str, summary: &str) -> Value {
    json!({"routing_key": key, "event_action": "trigger", "dedup_key": dedup,
           "payload": {"summary": summary, "source": "db-1", "severity": "critical",
                       "custom_details": {"free": "1%"}},
           "links": [{"href": "https://grafana.example/d/1", "text": "dashboard"}]})
}

/// From alerting/inbound.rs: PagerDuty Events API v2 errors in PagerDuty's shape, and nothing
/// stored for them.
async fn bad_events_get_pagerduty_style_errors_and_store_nothing(backend: Backend) {
    let h = Harness::new(backend).await;
    // A user paged through a webhook, a policy paging them, a PagerDuty-type integration on it
    // (the e2e suite's `paged_user`; nothing is delivered in process).
    let uid = h.admin.user("oncall@example.com", "member").await;
    h.admin
        .post(
            "/api/v1/channels",
            json!({"name": "pager hook", "type": "webhook", "url": "http://127.0.0.1:9/hook",
                   "secret": "x", "user_id": uid, "urgencies": ["high", "low"]}),
        )
        .await
        .expect(201);
    let ep = h
        .admin
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "primary", "num_loops": 0, "escalation_rules": [
                {"escalation_delay_in_minutes": 30, "targets": [{"type": "user", "id": uid}]}]}),
        )
        .await
        .expect(201);
    let i = h
        .admin
        .post(
            "/api/v1/integrations",
            json!({"name": "monitoring", "type": "pagerduty", "escalation_policy_id": ep["id"],
                   "service": "checkout"}),
        )
        .await
        .expect(201);
    let key = i["key"].as_str().unwrap().to_string();
    let anon = &h.anon;
    let enqueue = move |body: Value| async move {
        let (st, v) = anon.post("/v2/enqueue", body).await.parts();
        (st.as_u16(), v)
    };
    let (st, v) = enqueue(
        json!({"routing_key": key, "event_action": "trigger", "payload": {"summary": "x"}}),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(v["status"], "invalid event");
    let errors = v["errors"].to_string();
    assert!(
        errors.contains("payload.source") && errors.contains("payload.severity"),
        "{v}"
    );
    let (st, v) = enqueue(trigger(&"f".repeat(32), "k", "x")).await;
    assert_eq!(st, 400);
    assert!(v["errors"].to_string().contains("routing_key"), "{v}");
    let raw = h
        .anon
        .send(
            Method::POST,
            "/v2/enqueue",
            Body::Bytes(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(raw.status, 400);
    let big = h
        .anon
        .send(
            Method::POST,
            "/v2/enqueue",
            Body::Bytes(vec![b' '; 600 * 1024]),
        )
        .await;
    assert_eq!(big.status, 413);
    // Acknowledging a key with no open incident is accepted and changes nothing (as PagerDuty).
    let (st, _) =
        enqueue(json!({"routing_key": key, "event_action": "acknowledge", "dedup_key": "nope"}))
            .await;
    assert_eq!(st, 202);
    let list = h.admin.get("/api/v1/incidents").await.expect(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // A trigger without a dedup key gets one.
    let mut t = trigger(&key, "", "no key");
    t.as_object_mut().unwrap().remove("dedup_key");
    let (st, v) = enqueue(t).await;
    assert_eq!(st, 202);
    assert_eq!(v["dedup_key"].as_str().unwrap().len(), 32);
    // The server still answers.
    assert_eq!(h.anon.get("/healthz").await.status, 200);
}

both!(
    bad_input_gets_a_clear_json_4xx,
    bad_events_get_pagerduty_style_errors_and_store_nothing,
);
