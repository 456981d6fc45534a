//! Lookout watching itself, end to end on two real replicas over one PostgreSQL database:
//! `kill -9` of a replica pages through an alert policy on `replica.lost` exactly once, naming
//! it; the dead man's switch (`--heartbeat-url`) is pinged by exactly one replica, and the other
//! takes over when the pinger is killed.

use std::time::{Duration, Instant};

use lookout_testkit::TestServer;
use serde_json::{json, Value};

use crate::alerting::Receiver;
use crate::uptime::targets::HttpTarget;

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
    let start = Instant::now();
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

/// The replica holding the heartbeat URL's lease, as `s` reads it.
async fn pinger(s: &TestServer) -> Option<String> {
    let v = operations(s).await;
    v["leases"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "cluster.heartbeat_url" && l["owner_live"] == true)
        .and_then(|l| l["owner"].as_str())
        .map(str::to_string)
}

/// Pings at the target after `from`.
fn pings(target: &HttpTarget, from: Instant) -> usize {
    target
        .hits("/ping/5f0e-secret")
        .into_iter()
        .filter(|t| *t >= from)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_url_is_pinged_by_one_replica_and_taken_over_after_kill9() {
    let target = HttpTarget::start().await;
    let url = target.url("/ping/5f0e-secret");
    // Every 500 ms instead of every minute: one pinger makes 2 a second, two would make 4.
    let env = [
        ("LOOKOUT_HEARTBEAT_URL", url.as_str()),
        ("LOOKOUT_HEARTBEAT_EVERY_MS", "500"),
    ];
    let mut servers = TestServer::replicas_together(crate::bin(), 2, &env).await;
    wait_live(&servers[0], 2, 30).await;
    let start = Instant::now();
    // Settled: the same owner seen by both replicas 2 s apart (while replicas start, the first
    // may take the lease and hand it to the owner the placement names once it sees the other).
    let owner = loop {
        let a = pinger(&servers[0]).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(o) = a {
            if pinger(&servers[1]).await.as_deref() == Some(o.as_str()) {
                break o;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "nobody pings");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let n = pings(&target, from);
    println!("two replicas, 6 s at one ping per 500 ms: {n} pings (one pinger: ~12, two: ~24)");
    assert!((9..=15).contains(&n), "{n} pings in 6 s");
    assert_eq!(pinger(&servers[1]).await.as_deref(), Some(owner.as_str()));

    // kill -9 of the pinger: the other replica takes over once its heartbeat is 5 s old.
    let mut names = Vec::new();
    for s in &servers {
        names.push(operations(s).await["replica"].as_str().unwrap().to_string());
    }
    let victim = names.iter().position(|n| *n == owner).unwrap();
    let survivor = 1 - victim;
    servers[victim].kill9();
    let killed = Instant::now();
    let resumed = loop {
        if let Some(t) = target
            .hits("/ping/5f0e-secret")
            .into_iter()
            .find(|t| *t > killed + Duration::from_millis(600))
        {
            break t - killed;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "nobody took the pings over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "kill -9 of the pinger: pings resumed after {:.1} s (target ≤ 15 s)",
        resumed.as_secs_f64()
    );
    assert!(resumed <= Duration::from_secs(15));
    assert_eq!(
        pinger(&servers[survivor]).await.as_deref(),
        Some(names[survivor].as_str())
    );
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let n = pings(&target, from);
    assert!((6..=10).contains(&n), "{n} pings in 4 s from the survivor");
    let metrics = reqwest::get(servers[survivor].at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lookout_heartbeat_url_pings_total{result=\"ok\"}"),
        "{metrics}"
    );
    stop_all(servers);
}
