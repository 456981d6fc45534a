//! Per-user notification rules: a user with "webhook A at once, webhook B after 1 minute" for
//! high urgency is paged on A when the incident triggers and on B after the minute while it is
//! still unacknowledged; an incident acknowledged, reassigned after its acknowledgement, or
//! resolved before the minute never reaches B (the step is cancelled in that change, and the
//! timeline says so). Each delivery carries its own Idempotency-Key. The server runs with the
//! test-only `LOOKOUT_TEST_RULE_MINUTE_MS` so a rule's minute lasts five seconds: the test checks
//! order and cancellation, not wall time.

use std::time::Duration;

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::{timeline_types, user, wait_incident, Receiver};
use crate::bin;

async fn rules_page_each_contact_method_after_its_delay_while_unacknowledged(backend: Backend) {
    let s = TestServer::start_with_env(bin(), backend, &[("LOOKOUT_TEST_RULE_MINUTE_MS", "5000")])
        .await;
    let now_hook = Receiver::start().await;
    let later_hook = Receiver::start().await;
    let bob_hook = Receiver::start().await;
    let uid = user(&s, "rules@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    s.client()
        .post(
            "/api/v1/channels",
            json!({"name": "bob", "type": "webhook", "url": bob_hook.url("/"), "user_id": bob,
                   "urgencies": ["high", "low"]}),
        )
        .await
        .expect(201);
    let mut channels = Vec::new();
    for (name, r) in [("at once", &now_hook), ("after a minute", &later_hook)] {
        let c = s
            .client()
            .post(
                "/api/v1/channels",
                json!({"name": name, "type": "webhook", "url": r.url("/"), "user_id": uid,
                       "urgencies": ["high", "low"]}),
            )
            .await
            .expect(201);
        channels.push(c["id"].as_i64().unwrap());
    }
    let rules = s
        .client()
        .put(
            &format!("/api/v1/users/{uid}/notification-rules"),
            json!({"high": [{"channel_id": channels[0], "delay_minutes": 0},
                            {"channel_id": channels[1], "delay_minutes": 1}]}),
        )
        .await
        .expect(200);
    assert_eq!(rules["high"].as_array().unwrap().len(), 2);
    assert_eq!(rules["low"], json!([]), "low urgency keeps the default");
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "rules", "escalation_rules": [
                {"escalation_delay_in_minutes": 30, "targets": [{"type": "user", "id": uid}]}]}),
        )
        .await
        .expect(201);
    let open = |title: &str| {
        let body = json!({"title": title, "severity": "critical",
                          "escalation_policy_id": ep["id"]});
        let c = s.client();
        async move { c.post("/api/v1/incidents", body).await.expect(201) }
    };
    let kept = open("still unacknowledged").await["id"].as_i64().unwrap();
    let handled = open("acknowledged at once").await["id"].as_i64().unwrap();
    let handed = open("acknowledged, then reassigned").await["id"]
        .as_i64()
        .unwrap();
    let resolved = open("resolved at once").await["id"].as_i64().unwrap();
    // All page the first contact method at once.
    let first = now_hook.wait(4, 15).await;
    assert!(first.iter().all(|g| g.json()["event"] == "triggered"));
    let c = s.client();
    for (id, action) in [
        (handled, "acknowledge"),
        (handed, "acknowledge"),
        (resolved, "resolve"),
    ] {
        c.post(&format!("/api/v1/incidents/{id}/{action}"), json!({}))
            .await
            .expect(200);
    }
    // Reassigning after the acknowledgement triggers the incident again for Bob: the first
    // assignee's cancelled step must not come back with it.
    c.post(
        &format!("/api/v1/incidents/{handed}/reassign"),
        json!({"user_id": bob}),
    )
    .await
    .expect(200);
    bob_hook.wait(1, 15).await;
    for id in [handled, handed, resolved] {
        wait_incident(&s, id, 15, |v| {
            timeline_types(v).contains(&"pages_cancelled".into())
        })
        .await;
    }

    // After its minute, only the incident nobody handled reaches the second contact method.
    let got = later_hook.wait(1, 30).await;
    let page = got[0].json();
    assert_eq!(page["event"], "triggered");
    assert_eq!(page["incident"]["incident_id"], kept);
    let key = page["idempotency_key"].as_str().unwrap_or_default();
    assert!(
        key.ends_with(&format!(":{}:r1", channels[1])),
        "its own key: {key}"
    );
    assert_eq!(
        got[0]
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok()),
        Some(key),
        "the same key in the header"
    );
    // Two rule minutes more: nothing else arrives there.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ids: Vec<_> = later_hook
        .got()
        .iter()
        .map(|g| g.json()["incident"]["incident_id"].clone())
        .collect();
    assert_eq!(ids, [json!(kept)], "only the unhandled incident reached it");
}

lookout_testkit::both!(rules_page_each_contact_method_after_its_delay_while_unacknowledged);
