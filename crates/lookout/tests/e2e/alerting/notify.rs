//! Delivery: email through a real SMTP server (aiosmtpd), and retries with backoff when a
//! webhook fails, recorded on the timeline.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::{timeline_types, user, wait_incident, Receiver, Smtp};
use crate::bin;

async fn email_reaches_a_real_smtp_server_with_the_links(backend: Backend) {
    let smtp = Smtp::start().await;
    let port = smtp.port;
    let s = TestServer::start(bin(), backend).await;
    let uid = user(&s, "mail@example.com").await;
    let ch = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "my email", "type": "email", "user_id": uid, "to": "mail@example.com",
               "from": "lookout@example.com", "smtp_host": "127.0.0.1", "smtp_port": port,
               "security": "none", "username": "", "password": "not-shown"}),
        )
        .await
        .expect(201);
    assert_eq!(ch["password"], "********", "secrets never come back");
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "mail", "escalation_rules": [
            {"escalation_delay_in_minutes": 10, "targets": [{"type": "user", "id": uid}]}]}),
        )
        .await
        .expect(201);
    let rb = s.client().post("/api/v1/runbooks", json!({"name": "Disk full", "body": "# Disk full\n\nFree space on the volume, then find what grew.\n\n- [ ] Check `df -h`\n- [ ] Rotate logs\n"})).await.expect(201);
    let i = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "ops", "type": "webhook", "escalation_policy_id": ep["id"],
               "runbook_id": rb["id"], "service": "db"}),
        )
        .await
        .expect(201);
    let r = reqwest::Client::new()
        .post(i["url"].as_str().unwrap())
        .json(&json!({"title": "Volume /data is 99% full", "severity": "critical", "id": "vol-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = smtp
        .wait(15, |t| {
            t.contains("Volume /data is 99% full") && t.contains("acknowledge?exp=")
        })
        .await;
    assert!(
        text.contains("Free space on the volume"),
        "runbook summary: {text}"
    );
    assert!(text.contains("mail@example.com"));
}

async fn failed_webhooks_retry_with_backoff_and_the_timeline_says_so(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    r.answer(&[500]);
    let ch = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "team hook", "type": "webhook", "url": r.url("/team")}),
        )
        .await
        .expect(201);
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "team", "escalation_rules": [
            {"escalation_delay_in_minutes": 5, "targets": [{"type": "channel", "id": ch["id"]}]}]}),
        )
        .await
        .expect(201);
    let i = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "gen", "type": "webhook", "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
    let r2 = reqwest::Client::new()
        .post(i["url"].as_str().unwrap())
        .json(&json!({"title": "queue stuck", "id": "q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status(), 200);
    // First try answered 500; the retry (2 s later) succeeds with the same idempotency key.
    let got = r.wait(2, 20).await;
    assert_eq!(
        got[0].headers["idempotency-key"],
        got[1].headers["idempotency-key"]
    );
    let list = s.client().get("/api/v1/incidents").await.expect(200);
    let id = list["items"][0]["id"].as_i64().unwrap();
    let v = wait_incident(&s, id, 10, |v| {
        timeline_types(v).contains(&"notified".into())
    })
    .await;
    let types = timeline_types(&v);
    assert!(types.contains(&"notify_failed".to_string()), "{types:?}");
    assert_eq!(v["notifications"][0]["status"], "sent");
    assert_eq!(v["notifications"][0]["attempts"], 2);
}

/// A page that failed is retried by the next process after `kill -9`: the outbox is durable.
async fn a_pending_page_survives_kill_9(backend: Backend) {
    let mut s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    r.answer(&[503]);
    let ch = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "hook", "type": "webhook", "url": r.url("/")}),
        )
        .await
        .expect(201);
    let ep = s.client().post("/api/v1/escalation-policies", json!({"name": "p", "escalation_rules": [
            {"escalation_delay_in_minutes": 30, "targets": [{"type": "channel", "id": ch["id"]}]}]})).await.expect(201);
    let inc = s
        .client()
        .post(
            "/api/v1/incidents",
            json!({"title": "db down", "severity": "critical", "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
    let id = inc["id"].as_i64().unwrap();
    wait_incident(&s, id, 10, |v| {
        timeline_types(v).contains(&"notify_failed".into())
    })
    .await;
    s.kill9();
    s.restart();
    let got = r.wait(2, 30).await;
    assert_eq!(
        got[0].headers["idempotency-key"],
        got[1].headers["idempotency-key"]
    );
    let v = wait_incident(&s, id, 10, |v| v["notifications"][0]["status"] == "sent").await;
    assert_eq!(v["notifications"][0]["attempts"], 2);
}

lookout_testkit::both!(
    email_reaches_a_real_smtp_server_with_the_links,
    failed_webhooks_retry_with_backoff_and_the_timeline_says_so,
    a_pending_page_survives_kill_9,
);
