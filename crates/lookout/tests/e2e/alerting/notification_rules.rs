//! Per-user notification rules: a user with "webhook A at once, webhook B after 1 minute" for
//! high urgency is paged on A when the incident triggers and on B a minute later while it is
//! still unacknowledged; an incident acknowledged before the minute never reaches B (the step
//! is skipped, and the timeline says so). Each delivery carries its own Idempotency-Key.

use std::time::{Duration, Instant};

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::{timeline_types, user, wait_incident, Receiver};
use crate::bin;

async fn rules_page_each_contact_method_after_its_delay_while_unacknowledged(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let now_hook = Receiver::start().await;
    let later_hook = Receiver::start().await;
    let uid = user(&s, "rules@example.com").await;
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
    let started = Instant::now();
    let kept = open("still unacknowledged").await["id"].as_i64().unwrap();
    let handled = open("acknowledged at once").await["id"].as_i64().unwrap();
    // Both page the first contact method at once.
    let first = now_hook.wait(2, 15).await;
    assert!(first.iter().all(|g| g.json()["event"] == "triggered"));
    assert!(
        later_hook.got().is_empty(),
        "the second step waits its minute"
    );
    s.client()
        .post(
            &format!("/api/v1/incidents/{handled}/acknowledge"),
            json!({}),
        )
        .await
        .expect(200);

    // A minute later, only the unacknowledged incident reaches the second contact method.
    let got = later_hook.wait(1, 90).await;
    let waited = started.elapsed();
    println!("second step delivered {waited:?} after the incident opened (rule: 1 minute)");
    assert!(
        waited >= Duration::from_secs(55),
        "not before its delay: {waited:?}"
    );
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
    let v = wait_incident(&s, handled, 30, |v| {
        timeline_types(v).contains(&"notify_skipped".into())
    })
    .await;
    assert_eq!(v["status"], "acknowledged");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        later_hook.got().len(),
        1,
        "the acknowledged incident never reached it"
    );
}

lookout_testkit::both!(rules_page_each_contact_method_after_its_delay_while_unacknowledged);
