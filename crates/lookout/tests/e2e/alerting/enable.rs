//! Switching a channel off and on against a real server and a counting webhook receiver: off,
//! the outbox skips its pages (recorded as skipped, with the reason on the incident) and the
//! receiver gets nothing, not even later; on again, the next incident's page arrives.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::{wait_incident, Receiver};
use crate::bin;

async fn a_disabled_channel_receives_nothing_and_a_re_enabled_one_does(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    let hook = json!({"name": "team hook", "type": "webhook", "url": r.url("/team"),
                      "enabled": false});
    let ch = s
        .client()
        .post("/api/v1/channels", hook.clone())
        .await
        .expect(201);
    let cid = ch["id"].as_i64().unwrap();
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "team", "escalation_rules": [{"escalation_delay_in_minutes": 30,
                   "targets": [{"type": "channel", "id": cid}]}]}),
        )
        .await
        .expect(201);
    let first = s
        .client()
        .post(
            "/api/v1/incidents",
            json!({"title": "Checkout down", "severity": "critical",
                   "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
    let id = first["id"].as_i64().unwrap();
    // Both together: the view reads notifications and timeline in two queries, so one can show
    // the skip a moment before the other.
    let done = wait_incident(&s, id, 20, |v| {
        v["notifications"][0]["status"] == "skipped"
            && v["timeline"].to_string().contains("notify_skipped")
    })
    .await;
    assert_eq!(
        done["notifications"][0]["last_error"],
        "skipped: channel disabled"
    );
    let said: Vec<&str> = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "notify_skipped")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        said,
        ["Not notified via webhook \"team hook\" (triggered): skipped: channel disabled"]
    );
    assert!(r.got().is_empty(), "nothing was sent: {:?}", r.got());

    let mut on = hook;
    on["enabled"] = json!(true);
    s.client()
        .put(&format!("/api/v1/channels/{cid}"), on)
        .await
        .expect(200);
    let second = s
        .client()
        .post(
            "/api/v1/incidents",
            json!({"title": "Search down", "severity": "critical",
                   "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
    let got = r.wait(1, 20).await;
    assert_eq!(got[0].json()["incident"]["incident_id"], second["id"]);
    assert_eq!(got[0].json()["event"], "triggered");
    // The skipped page is not retried once the channel is on again.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(r.got().len(), 1, "{:?}", r.got());
}

lookout_testkit::both!(a_disabled_channel_receives_nothing_and_a_re_enabled_one_does);
