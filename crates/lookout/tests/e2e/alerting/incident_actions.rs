//! The incident actions on the running server, with each person's pager a real webhook
//! receiver counting what arrives: PagerDuty events open incidents, reassigning pages the new
//! assignee, a responder request pages the other team's first level without taking the
//! incident, a snooze holds every page, and a merged incident resolves while a later event for
//! its alert joins the target. (A snooze's end is driven through the timers in process, in the
//! handler tests, rather than waited for here.)

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use super::{timeline_types, user, wait_incident, Receiver};
use crate::bin;

/// A member paged through a webhook to `r`; their id.
async fn pager(s: &TestServer, email: &str, r: &Receiver) -> i64 {
    let id = user(s, email).await;
    s.client()
        .post(
            "/api/v1/channels",
            json!({"name": "pager", "type": "webhook", "url": r.url("/"), "user_id": id,
                   "urgencies": ["high", "low"]}),
        )
        .await
        .expect(201);
    id
}

async fn policy(s: &TestServer, name: &str, uid: i64) -> i64 {
    s.client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": name, "escalation_rules": [
                {"escalation_delay_in_minutes": 30, "targets": [{"type": "user", "id": uid}]}]}),
        )
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap()
}

async fn trigger(s: &TestServer, key: &str, dedup: &str, summary: &str) {
    let r = reqwest::Client::new()
        .post(s.at("/v2/enqueue"))
        .json(
            &json!({"routing_key": key, "event_action": "trigger", "dedup_key": dedup,
                      "payload": {"summary": summary, "source": "db-1", "severity": "critical"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// `(event, incident id)` of what a receiver got.
fn events(r: &Receiver) -> Vec<(String, i64)> {
    r.got()
        .iter()
        .map(|g| {
            let v = g.json();
            (
                v["event"].as_str().unwrap_or_default().to_string(),
                v["incident"]["incident_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

async fn each_action_pages_through_the_normal_delivery_path(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let (bob_r, alice_r, carol_r) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let bob = pager(&s, "bob@example.com", &bob_r).await;
    let alice = pager(&s, "alice@example.com", &alice_r).await;
    let carol = pager(&s, "carol@example.com", &carol_r).await;
    let primary = policy(&s, "primary", bob).await;
    let team = policy(&s, "database team", carol).await;
    let i = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "pd", "type": "pagerduty", "escalation_policy_id": primary}),
        )
        .await
        .expect(201);
    let key = i["key"].as_str().unwrap().to_string();
    trigger(&s, &key, "db-down", "primary database down").await;
    let got = bob_r.wait(1, 10).await;
    let id = got[0].json()["incident"]["incident_id"].as_i64().unwrap();
    let c = s.client();

    // Reassign: Alice is paged and holds the incident.
    let v = c
        .post(
            &format!("/api/v1/incidents/{id}/reassign"),
            json!({"user_id": alice}),
        )
        .await
        .expect(200);
    assert_eq!(v["assigned_user_id"], alice);
    alice_r.wait(1, 10).await;
    assert_eq!(events(&alice_r), [("reassigned".into(), id)]);

    // Add responder: the database team's first level (Carol) is paged; Alice keeps it.
    let r = c
        .post(
            &format!("/api/v1/incidents/{id}/responders"),
            json!({"escalation_policy_id": team, "message": "replication lag?"}),
        )
        .await
        .expect(201);
    assert_eq!(r["target_name"], "database team");
    carol_r.wait(1, 10).await;
    assert_eq!(events(&carol_r), [("responder_request".into(), id)]);
    let v = wait_incident(&s, id, 10, |v| {
        v["responders"][0]["notifications"][0]["status"] == "sent"
    })
    .await;
    assert_eq!(v["assigned_user_id"], alice);

    // Snooze: acknowledged (everyone paged, the responder too, hears it), then nothing more.
    let v = c
        .post(
            &format!("/api/v1/incidents/{id}/snooze"),
            json!({"duration_minutes": 60}),
        )
        .await
        .expect(200);
    assert_eq!(v["status"], "acknowledged");
    assert!(v["snoozed_until"].is_string(), "{v}");
    let bob_before = bob_r.wait(2, 10).await.len();
    alice_r.wait(2, 10).await;
    assert_eq!(events(&alice_r)[1], ("acknowledged".into(), id));
    carol_r.wait(2, 10).await;
    assert_eq!(events(&carol_r)[1], ("acknowledged".into(), id));

    // Merge: a second incident resolves into the first; its next event joins the first.
    trigger(&s, &key, "replica-lag", "replica lagging").await;
    let got = bob_r.wait(bob_before + 1, 10).await;
    let second = got[bob_before].json()["incident"]["incident_id"]
        .as_i64()
        .unwrap();
    assert_ne!(second, id);
    let v = c
        .post(
            &format!("/api/v1/incidents/{id}/merge"),
            json!({"source_incident_ids": [second]}),
        )
        .await
        .expect(200);
    assert_eq!(v["alert_count"], 2);
    let merged = wait_incident(&s, second, 10, |v| v["status"] == "resolved").await;
    assert_eq!(merged["merged_into"], id);
    assert!(timeline_types(&merged).contains(&"merged".into()));
    // Bob, who was paged for the second incident, hears that it is resolved.
    let got = bob_r.wait(bob_before + 2, 10).await;
    assert_eq!(got[bob_before + 1].json()["event"], "resolved");
    trigger(&s, &key, "replica-lag", "replica lagging again").await;
    let v = wait_incident(&s, id, 10, |v| v["alert_count"] == 3).await;
    assert_eq!(
        v["status"], "acknowledged",
        "joining does not end the snooze"
    );
    let open: Value = c
        .get("/api/v1/incidents?status=triggered,acknowledged")
        .await
        .expect(200);
    assert_eq!(open["items"].as_array().unwrap().len(), 1, "{open}");
    // While snoozed, nobody was paged again.
    assert_eq!(alice_r.got().len(), 2);
    assert_eq!(carol_r.got().len(), 2);
    assert_eq!(bob_r.got().len(), bob_before + 2);
}

lookout_testkit::both!(each_action_pages_through_the_normal_delivery_path);
