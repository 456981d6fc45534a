//! The server's timers: an unacknowledged incident escalates to the next rule after its delay
//! (one minute, the shortest PagerDuty allows), paging whoever a schedule has on call then.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::{timeline_types, user, wait_incident, Receiver};
use crate::bin;

async fn unacknowledged_incident_escalates_to_the_schedule_after_the_delay(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let a = user(&s, "first@example.com").await;
    let b = user(&s, "second@example.com").await;
    for (uid, r) in [(a, &first), (b, &second)] {
        s.client()
            .post(
                "/api/v1/channels",
                json!({"name": "hook", "type": "webhook", "url": r.url("/"), "user_id": uid}),
            )
            .await
            .expect(201);
    }
    let sched = s
        .client()
        .post(
            "/api/v1/schedules",
            json!({"name": "secondary", "time_zone": "UTC", "schedule_layers": [{
            "start": "2020-01-01T00:00:00Z", "rotation_virtual_start": "2020-01-01T00:00:00Z",
            "rotation_turn_length_seconds": 604800, "users": [b]}]}),
        )
        .await
        .expect(201);
    let ep = s.client().post("/api/v1/escalation-policies", json!({"name": "two levels", "num_loops": 0, "escalation_rules": [
            {"escalation_delay_in_minutes": 1, "targets": [{"type": "user", "id": a}]},
            {"escalation_delay_in_minutes": 1, "targets": [{"type": "schedule", "id": sched["id"]}]}]})).await.expect(201);
    let i = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "pd", "type": "pagerduty", "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
    let r = reqwest::Client::new()
        .post(s.at("/v2/enqueue"))
        .json(
            &json!({"routing_key": i["key"], "event_action": "trigger", "dedup_key": "x",
                      "payload": {"summary": "api 5xx", "source": "api", "severity": "error"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    first.wait(1, 10).await;
    assert!(second.got().is_empty(), "the second level waits a minute");
    let got = second.wait(1, 75).await;
    assert_eq!(got[0].json()["event"], "escalated");
    let id = got[0].json()["incident"]["incident_id"].as_i64().unwrap();
    // Then the path is exhausted and the incident stays with the last rule.
    let v = wait_incident(&s, id, 75, |v| {
        timeline_types(v).contains(&"exhausted".into())
    })
    .await;
    assert_eq!(v["escalation_level"], 2);
    assert_eq!(v["status"], "triggered");
    assert_eq!(
        first.got().len(),
        1,
        "level one is not paged again without a loop"
    );
}

async fn an_acknowledgement_that_times_out_triggers_again(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    let ch = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "hook", "type": "webhook", "url": r.url("/")}),
        )
        .await
        .expect(201);
    let ep = s.client().post("/api/v1/escalation-policies", json!({"name": "short ack", "ack_timeout_minutes": 1, "escalation_rules": [
            {"escalation_delay_in_minutes": 30, "targets": [{"type": "channel", "id": ch["id"]}]}]})).await.expect(201);
    let inc = s.client().post("/api/v1/incidents", json!({"title": "manual page", "severity": "critical", "escalation_policy_id": ep["id"]})).await.expect(201);
    let id = inc["id"].as_i64().unwrap();
    r.wait(1, 10).await;
    s.client()
        .post(&format!("/api/v1/incidents/{id}/acknowledge"), json!({}))
        .await
        .expect(200);
    let v = wait_incident(&s, id, 70, |v| {
        timeline_types(v).contains(&"ack_timeout".into())
    })
    .await;
    assert_eq!(v["status"], "triggered");
    let got = r.wait(3, 10).await;
    let events: Vec<String> = got
        .iter()
        .map(|g| g.json()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["triggered", "acknowledged", "ack_timeout"]);
}

lookout_testkit::both!(
    unacknowledged_incident_escalates_to_the_schedule_after_the_delay,
    an_acknowledgement_that_times_out_triggers_again,
);
