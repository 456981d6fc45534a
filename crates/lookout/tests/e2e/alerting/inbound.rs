//! PagerDuty Events API v2 in, a signed webhook out, and the one-click acknowledge link.

use std::time::Duration;

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use super::{paged_user, timeline_types, wait_incident, Receiver};
use crate::bin;

/// An event to the PagerDuty Events API, as PagerDuty's clients send it (no credential but the
/// routing key in the body).
async fn enqueue(s: &TestServer, body: Value) -> (u16, Value) {
    let (st, v) = s.anon().post("/v2/enqueue", body).await.parts();
    (st.as_u16(), v)
}

fn trigger(key: &str, dedup: &str, summary: &str) -> Value {
    json!({"routing_key": key, "event_action": "trigger", "dedup_key": dedup,
           "payload": {"summary": summary, "source": "db-1", "severity": "critical",
                       "custom_details": {"free": "1%"}},
           "links": [{"href": "https://grafana.example/d/1", "text": "dashboard"}]})
}

async fn pagerduty_trigger_pages_a_signed_webhook_and_the_link_acknowledges(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    let (uid, _, key) = paged_user(&s, &r, "s3cret").await;

    let (st, v) = enqueue(&s, trigger(&key, "disk-db-1", "Disk full on db-1")).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["dedup_key"], "disk-db-1");

    // The page arrives, signed with the channel's secret over the exact body.
    let got = r.wait(1, 10).await;
    let sig = got[0].headers["x-lookout-signature"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sig,
        format!(
            "sha256={}",
            lookout_core::seal::hmac_sha256_hex(b"s3cret", &got[0].body)
        )
    );
    assert!(got[0].headers.contains_key("idempotency-key"));
    let page = got[0].json();
    assert_eq!(page["event"], "triggered");
    let inc = &page["incident"];
    assert_eq!(inc["title"], "Disk full on db-1");
    assert_eq!(inc["severity"], "critical");
    assert_eq!(inc["urgency"], "high");
    assert_eq!(inc["service"], "checkout");
    let id = inc["incident_id"].as_i64().unwrap();
    assert_eq!(inc["url"], s.at(&format!("/incidents/{id}")));

    // The same dedup key joins the open incident and pages nobody again.
    let (st, _) = enqueue(&s, trigger(&key, "disk-db-1", "Disk full on db-1 (again)")).await;
    assert_eq!(st, 202);
    let v = wait_incident(&s, id, 5, |v| v["alert_count"] == 2).await;
    assert_eq!(v["status"], "triggered");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.got().len(), 1, "a joined alert must not page again");

    // A forged link is refused; the real one asks first, then acknowledges with one click.
    let ack = inc["acknowledge_url"].as_str().unwrap().to_string();
    let plain = reqwest::Client::new();
    let forged = ack.replace("sig=", "sig=0");
    assert_eq!(plain.get(&forged).send().await.unwrap().status(), 403);
    let page = plain.get(&ack).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Disk full on db-1"));
    let v = wait_incident(&s, id, 1, |_| true).await;
    assert_eq!(
        v["status"], "triggered",
        "a GET (link preview) must not acknowledge"
    );
    let (path, query) = ack.split_once('?').unwrap();
    let form: Vec<(String, String)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let done = plain.post(path).form(&form).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let v = wait_incident(&s, id, 5, |v| v["status"] == "acknowledged").await;
    assert!(v["acknowledged_at"].is_string());
    // Whoever was paged hears about the acknowledgement.
    let got = r.wait(2, 10).await;
    assert_eq!(got[1].json()["event"], "acknowledged");

    // Resolve through the Events API; a new trigger with the key opens a new incident.
    let (st, _) = enqueue(
        &s,
        json!({"routing_key": key, "event_action": "resolve", "dedup_key": "disk-db-1"}),
    )
    .await;
    assert_eq!(st, 202);
    let v = wait_incident(&s, id, 5, |v| v["status"] == "resolved").await;
    let types = timeline_types(&v);
    for t in ["triggered", "notified", "alert", "acknowledged", "resolved"] {
        assert!(types.contains(&t.to_string()), "{t} missing from {types:?}");
    }
    let acker = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "acknowledged")
        .unwrap();
    assert_eq!(acker["actor"], "link:acknowledge");
    let (_, again) = enqueue(&s, trigger(&key, "disk-db-1", "Disk full again")).await;
    assert_eq!(again["dedup_key"], "disk-db-1");
    let list = s
        .client()
        .get("/api/v1/incidents?status=triggered")
        .await
        .expect(200);
    let open = list["items"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    assert_ne!(open[0]["id"].as_i64().unwrap(), id);
    let _ = uid;
}

lookout_testkit::both!(pagerduty_trigger_pages_a_signed_webhook_and_the_link_acknowledges,);
