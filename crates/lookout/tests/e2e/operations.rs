//! Lookout watching itself, end to end on two real replicas over one PostgreSQL database:
//! `kill -9` of a replica pages through an alert policy on `replica.lost` exactly once, naming
//! it; the dead man's switch (`--heartbeat-url`) is pinged by exactly one replica, and the other
//! takes over when the pinger is killed.

use std::time::Duration;

use lookout_testkit::TestServer;
use serde_json::{json, Value};

use crate::alerting::Receiver;

/// Stops replicas newest first, so the one owning the test database goes last.
fn stop_all(servers: Vec<TestServer>) {
    for s in servers.into_iter().rev() {
        drop(s);
    }
}

/// `GET /api/v1/operations` on `s`.
async fn operations(s: &TestServer) -> Value {
    s.client().get("/api/v1/operations").await.expect(200)
}

/// Waits until `s` sees `n` live replicas.
async fn wait_live(s: &TestServer, n: i64, secs: u64) {
    let start = std::time::Instant::now();
    loop {
        let v = operations(s).await;
        if v["replicas_live"] == n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{n} replicas not live within {secs} s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_replica_pages_once_naming_it() {
    let r = Receiver::start().await;
    let mut servers = TestServer::replicas_together(crate::bin(), 2, &[]).await;
    let s = &servers[0];
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
    // A wrong event is refused naming the field.
    let bad = s
        .client()
        .post(
            "/api/v1/policies",
            json!({"name": "Lookout", "conditions": [{"source": "cluster", "events": ["gone"]}]}),
        )
        .await;
    assert_eq!(bad.status, 422, "{bad:?}");
    assert!(bad.text().contains("conditions[0].events"), "{bad:?}");
    s.client()
        .post(
            "/api/v1/policies",
            json!({"name": "Lookout", "conditions": [{"source": "cluster"}],
                   "severity": "critical", "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
    wait_live(s, 2, 30).await;
    let victim = operations(&servers[1]).await["replica"]
        .as_str()
        .unwrap()
        .to_string();
    // Joins do not page with this policy (`lost` only by default).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(r.got().is_empty(), "a join paged: {:?}", r.got());

    servers[1].kill9();
    let s = &servers[0];
    let got = r.wait(1, 40).await;
    let title = got[0].json()["incident"]["title"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!("kill -9 of {victim}: paged \"{title}\"");
    assert!(
        title.contains(&victim) && title.contains("lost"),
        "the page names the lost replica: {title}"
    );
    // Once: the survivor announces the loss once and one incident pages once.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(r.got().len(), 1, "{:?}", r.got());
    let v = operations(s).await;
    let lost: Vec<&Value> = v["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["state"] == "lost")
        .collect();
    assert_eq!(lost.len(), 1, "{v}");
    assert_eq!(lost[0]["name"], victim.as_str());
    stop_all(servers);
}
