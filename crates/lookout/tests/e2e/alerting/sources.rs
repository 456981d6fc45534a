//! Lookout's own signals page through policies: a monitor going down opens an incident that
//! resolves itself when the monitor recovers; a new error issue opens one too.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::{post, timeline_types, wait_any_incident, wait_incident, Receiver};
use crate::uptime::targets::HttpTarget;
use crate::{bin, both};

async fn a_down_monitor_pages_and_its_recovery_resolves(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    let ch = post(
        &s,
        "/api/v1/channels",
        json!({"name": "ops", "type": "webhook", "url": r.url("/ops")}),
        201,
    )
    .await;
    let ep = post(
        &s,
        "/api/v1/escalation-policies",
        json!({"name": "ops", "escalation_rules": [
            {"escalation_delay_in_minutes": 5, "targets": [{"type": "channel", "id": ch["id"]}]}]}),
        201,
    )
    .await;
    post(
        &s,
        "/api/v1/policies",
        json!({"name": "Uptime", "conditions": [{"source": "monitor", "events": ["down"]},
                                                 {"source": "errors", "event": "new_issue"}],
               "severity": "critical", "service": "web", "escalation_policy_id": ep["id"]}),
        201,
    )
    .await;
    let target = HttpTarget::start().await;
    target.set(|b| b.status = 503);
    crate::uptime::create(
        &s,
        json!({"name": "homepage", "type": "http", "url": target.url("/"),
               "interval_seconds": 1, "failure_threshold": 1, "success_threshold": 1}),
    )
    .await;
    let inc = wait_any_incident(&s, 30, |v| v["status"] == "triggered").await;
    assert!(
        inc["title"]
            .as_str()
            .unwrap()
            .starts_with("homepage is down"),
        "{inc}"
    );
    assert_eq!(inc["service"], "web");
    assert_eq!(inc["urgency"], "high");
    let got = r.wait(1, 10).await;
    assert_eq!(got[0].json()["incident"]["title"], inc["title"]);

    target.set(|b| b.status = 200);
    let id = inc["id"].as_i64().unwrap();
    let v = wait_incident(&s, id, 30, |v| v["status"] == "resolved").await;
    assert!(timeline_types(&v).contains(&"auto_resolved".to_string()));
}

both!(a_down_monitor_pages_and_its_recovery_resolves);
