//! Lookout's own signals page through policies: a monitor going down opens an incident that
//! resolves itself when the monitor recovers; a new error issue opens one too.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::{timeline_types, wait_any_incident, wait_incident, Receiver};
use crate::bin;
use crate::uptime::targets::HttpTarget;

async fn a_down_monitor_pages_and_its_recovery_resolves(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    let ch = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "ops", "type": "webhook", "url": r.url("/ops")}),
        )
        .await
        .expect(201);
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "ops", "escalation_rules": [
            {"escalation_delay_in_minutes": 5, "targets": [{"type": "channel", "id": ch["id"]}]}]}),
        )
        .await
        .expect(201);
    s.client()
        .post(
            "/api/v1/policies",
            json!({"name": "Uptime", "conditions": [{"source": "monitor", "events": ["down"]},
                                                 {"source": "errors", "event": "new_issue"}],
               "severity": "critical", "service": "web", "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
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

/// A new error issue opens an incident; more than N events in M minutes of the same issue joins
/// it and raises its severity: one incident per problem.
async fn error_issues_page_on_new_issue_and_on_frequency(backend: Backend) {
    use crate::errors::{envelope, exception_event, new_id, post_envelope};
    let s = TestServer::start(bin(), backend).await;
    s.client()
        .post(
            "/api/v1/policies",
            json!({"name": "Errors", "severity": "error", "service": "shop", "conditions": [
            {"source": "errors", "event": "new_issue"}]}),
        )
        .await
        .expect(201);
    s.client()
        .post(
            "/api/v1/policies",
            json!({"name": "Error spikes", "severity": "critical", "conditions": [
            {"source": "errors", "event": "frequency", "threshold": 3, "window_minutes": 5}]}),
        )
        .await
        .expect(201);
    let c = reqwest::Client::new();
    let send = || async {
        let id = new_id();
        let ev = exception_event(&id, "ZeroDivisionError", "division by zero", "pay", "1.0");
        let r = post_envelope(&c, &s, envelope(&id, &ev, None))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    send().await;
    let inc = wait_any_incident(&s, 20, |v| {
        v["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("New issue: ZeroDivisionError"))
    })
    .await;
    assert_eq!(inc["service"], "shop");
    assert_eq!(inc["urgency"], "high");
    // Still within the new-issue incident's dedup: more events do not open another one…
    for _ in 0..3 {
        send().await;
    }
    // …and four events in five minutes cross the spike policy's threshold of three: the same
    // problem, so the spike joins the open incident and raises it to the spike's severity
    // instead of opening a second one.
    let id = inc["id"].as_i64().unwrap();
    let v = super::wait_incident(&s, id, 20, |v| v["severity"] == "critical").await;
    // At least the new issue and the spike; events the processor takes in one batch are judged
    // against the batch's total, so under load the spike can be seen for more than one of them,
    // each joining this same incident.
    assert!(v["alert_count"].as_i64().unwrap() >= 2, "{v:#}");
    let timeline = v["timeline"].to_string();
    assert!(
        timeline.contains("More than 3 events in 5 min"),
        "{timeline}"
    );
    assert!(
        timeline.contains("Priority raised to critical"),
        "{timeline}"
    );
    let all = s.client().get("/api/v1/incidents").await.expect(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all:#}");
}

/// `per_policy` grouping: two monitors down make one incident with two alerts, which resolves
/// only when both have recovered.
async fn per_policy_grouping_joins_signals_and_waits_for_all_to_recover(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    s.client()
        .post(
            "/api/v1/policies",
            json!({"name": "Fleet", "grouping": "per_policy", "conditions": [
            {"source": "monitor", "events": ["down"]}]}),
        )
        .await
        .expect(201);
    let (a, b) = (HttpTarget::start().await, HttpTarget::start().await);
    a.set(|x| x.status = 500);
    b.set(|x| x.status = 500);
    for (name, t) in [("a", &a), ("b", &b)] {
        crate::uptime::create(
            &s,
            json!({"name": name, "type": "http", "url": t.url("/"), "interval_seconds": 1,
                   "failure_threshold": 1, "success_threshold": 1}),
        )
        .await;
    }
    let inc = wait_any_incident(&s, 30, |v| v["alert_count"] == 2).await;
    let id = inc["id"].as_i64().unwrap();
    a.set(|x| x.status = 200);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        s.client()
            .get(&format!("/api/v1/incidents/{id}"))
            .await
            .expect(200)["status"],
        "triggered"
    );
    b.set(|x| x.status = 200);
    wait_incident(&s, id, 30, |v| v["status"] == "resolved").await;
    let all = s.client().get("/api/v1/incidents").await.expect(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
}

lookout_testkit::both!(
    a_down_monitor_pages_and_its_recovery_resolves,
    error_issues_page_on_new_issue_and_on_frequency,
    per_policy_grouping_joins_signals_and_waits_for_all_to_recover,
);
