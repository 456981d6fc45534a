//! What each channel type sends (Slack, Mattermost, Discord, ntfy, PagerDuty outbound), contact
//! methods chosen by urgency, runbook checklists, the postmortem template and MTTA/MTTR.

use std::time::Duration;

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use super::{user, wait_any_incident, wait_incident, Receiver};
use crate::{bin, json_of};

async fn every_channel_type_carries_the_links_and_low_urgency_uses_low_contacts(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    // Lookout pages itself through the PagerDuty Events API: a second integration receives it.
    let downstream = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "downstream", "type": "pagerduty"}),
        )
        .await
        .expect(201);
    let mut targets = Vec::new();
    for (kind, extra) in [
        ("slack", json!({"url": r.url("/slack")})),
        ("mattermost", json!({"url": r.url("/mattermost")})),
        ("discord", json!({"url": r.url("/discord")})),
        ("ntfy", json!({"url": r.url("/ntfy"), "token": "tk"})),
        (
            "pagerduty",
            json!({"url": s.at("/v2/enqueue"), "routing_key": downstream["key"]}),
        ),
    ] {
        let mut body = extra;
        body["name"] = json!(kind);
        body["type"] = json!(kind);
        let ch = s.client().post("/api/v1/channels", body).await.expect(201);
        if kind != "ntfy" && kind != "pagerduty" {
            // Chat webhook URLs are credentials: sealed at rest, never shown again.
            assert_eq!(ch["url"], "********", "{kind}");
        }
        targets.push(json!({"type": "channel", "id": ch["id"]}));
    }
    // A user with one contact method per urgency.
    let uid = user(&s, "u@example.com").await;
    for (path, urg) in [("/high", "high"), ("/low", "low")] {
        s.client()
            .post(
                "/api/v1/channels",
                json!({"name": urg, "type": "webhook", "url": r.url(path), "user_id": uid,
                   "urgencies": [urg]}),
            )
            .await
            .expect(201);
    }
    targets.push(json!({"type": "user", "id": uid}));
    let rb = s.client().post("/api/v1/runbooks", json!({"name": "Latency", "body": "# Latency\n\nCheck the database first.\n\n- [ ] Look at slow queries\n- [ ] Scale the pool\n"})).await.expect(201);
    assert_eq!(
        rb["checklist"],
        json!(["Look at slow queries", "Scale the pool"])
    );
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "all", "escalation_rules": [
            {"escalation_delay_in_minutes": 5, "targets": targets}]}),
        )
        .await
        .expect(201);
    let i = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "grafana", "type": "grafana", "escalation_policy_id": ep["id"],
               "runbook_id": rb["id"], "service": "api"}),
        )
        .await
        .expect(201);
    // A Grafana alerting webhook with a warning: low urgency.
    let grafana = json!({
        "receiver": "lookout", "status": "firing", "orgId": 1, "version": "1",
        "groupKey": "{}:{alertname=\"Latency\"}", "title": "[FIRING:1] Latency",
        "state": "alerting", "message": "p95 high",
        "alerts": [{"status": "firing", "labels": {"alertname": "Latency", "severity": "warning"},
                    "annotations": {"summary": "p95 over 800 ms"}, "fingerprint": "f1",
                    "startsAt": "2026-11-28T10:00:00Z", "dashboardURL": "http://grafana/d/x",
                    "valueString": "[ var='A' value=0.91 ]"}]
    });
    let resp = reqwest::Client::new()
        .post(i["url"].as_str().unwrap())
        .json(&grafana)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Slack, Mattermost, Discord, ntfy and the user's low-urgency method: five requests.
    r.wait(5, 15).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = r.got();
    let all: Vec<Value> = got.iter().map(|g| g.json()).collect();
    let text: String = got
        .iter()
        .map(|g| String::from_utf8_lossy(&g.body).to_string())
        .collect();
    for needle in [
        "Latency: p95 over 800 ms",
        "acknowledge?exp=",
        "Check the database first",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    // Slack: <url|label> links; Mattermost and Discord: Markdown links; Discord: an embed.
    assert!(all.iter().any(|v| v["text"]
        .as_str()
        .is_some_and(|t| t.contains("|Acknowledge>"))));
    assert!(all.iter().any(|v| v["text"]
        .as_str()
        .is_some_and(|t| t.contains("[Acknowledge]("))));
    assert!(all
        .iter()
        .any(|v| v["embeds"][0]["title"] == "Latency: p95 over 800 ms"));
    // ntfy: plain text body with headers.
    let ntfy = got
        .iter()
        .find(|g| g.headers.get("title").is_some())
        .expect("ntfy request");
    assert_eq!(ntfy.headers["authorization"], "Bearer tk");
    assert!(ntfy.headers["actions"]
        .to_str()
        .unwrap()
        .contains("Acknowledge"));
    // The user's low-urgency method was used, the high-urgency one was not.
    let low_hits = got
        .iter()
        .filter(|g| g.json()["incident"]["urgency"] == "low")
        .count();
    assert_eq!(low_hits, 1, "exactly the low-urgency contact method");
    // The PagerDuty channel opened an incident on the downstream integration.
    let down = wait_any_incident(&s, 10, |v| v["integration_id"] == downstream["id"]).await;
    assert_eq!(down["title"], "Latency: p95 over 800 ms");
    assert_eq!(down["severity"], "warning");

    // Runbook checklist ticks go into the timeline; the postmortem is pre-filled.
    let inc = wait_any_incident(&s, 5, |v| v["integration_id"] == i["id"]).await;
    let id = inc["id"].as_i64().unwrap();
    s.client()
        .post(
            &format!("/api/v1/incidents/{id}/checklist"),
            json!({"item": 1}),
        )
        .await
        .expect(200);
    s.client()
        .post(
            &format!("/api/v1/incidents/{id}/notes"),
            json!({"message": "pool at 100%"}),
        )
        .await
        .expect(201);
    s.client()
        .post(&format!("/api/v1/incidents/{id}/acknowledge"), json!({}))
        .await
        .expect(200);
    let (st, again) = json_of(
        s.admin_client()
            .post(s.at(&format!("/api/v1/incidents/{id}/acknowledge")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 409, "{again}");
    s.client()
        .post(&format!("/api/v1/incidents/{id}/resolve"), json!({}))
        .await
        .expect(200);
    let v = wait_incident(&s, id, 5, |v| v["status"] == "resolved").await;
    assert_eq!(v["checklist"]["1"], true);
    let entries = serde_json::to_string(&v["timeline"]).unwrap();
    assert!(
        entries.contains("Ticked checklist item: Scale the pool"),
        "{entries}"
    );
    assert!(entries.contains("pool at 100%"));
    let pm = s
        .client()
        .get(&format!("/api/v1/incidents/{id}/postmortem"))
        .await
        .expect(200);
    let md = pm["markdown"].as_str().unwrap();
    assert!(
        md.starts_with("# Postmortem: Latency: p95 over 800 ms"),
        "{md}"
    );
    assert!(md.contains("pool at 100%") && md.contains("time to resolve"));

    // MTTA and MTTR per service come from the recorded timestamps.
    let m = s
        .client()
        .get("/api/v1/incidents/metrics?group_by=service")
        .await
        .expect(200);
    let api = m["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "api")
        .cloned()
        .unwrap();
    assert_eq!(api["incidents"], 1);
    assert_eq!(api["acknowledged"], 1);
    assert_eq!(api["resolved"], 1);
    assert!(api["mtta_seconds"].as_f64().unwrap() >= 0.0);
    assert!(api["mttr_seconds"].as_f64().unwrap() >= api["mtta_seconds"].as_f64().unwrap());
    let months = s
        .client()
        .get("/api/v1/incidents/metrics?group_by=month")
        .await
        .expect(200);
    assert_eq!(months["items"].as_array().unwrap().len(), 1);
}

lookout_testkit::both!(every_channel_type_carries_the_links_and_low_urgency_uses_low_contacts);
