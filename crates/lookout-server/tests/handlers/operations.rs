//! The Operations page and API: admin only (a viewer and a member get 403, on the page and the
//! API), and what they show of the machinery as stored — a replica with its heartbeat and clock
//! offset, the shard it holds with its fencing token, a consumer's lag behind its stream, the
//! outbox — also on `/metrics`.

use lookout_core::Role;
use lookout_store::{cluster as cstore, cursor, events, tenancy};
use lookout_testkit::{both, Backend, Client};
use serde_json::json;

use crate::Harness;

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A UI session of a new user with `role`.
async fn session(h: &Harness, role: Role) -> Client {
    let user = tenancy::create_user(
        &h.store,
        &format!(
            "{role}-ops-{}@example.com",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        "correct horse battery",
        role,
    )
    .await
    .expect("user");
    let (id, s) = tenancy::create_session(&h.store, &user, 3_600_000)
        .await
        .expect("session");
    h.anon
        .session(&format!("lookout_session={id}"), &s.csrf_token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_see_operations() {
    let h = Harness::sqlite().await;
    for (who, c) in [("viewer", &h.viewer), ("member", &h.member)] {
        let r = h
            .anon
            .bearer(&h.admin.token(who).await)
            .get("/api/v1/operations")
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "forbidden"),
            "{who}: {r:?}"
        );
        let r = c.get("/api/v1/operations").await;
        assert_eq!(r.status, 403, "{who}: {r:?}");
    }
    assert_eq!(h.anon.get("/api/v1/operations").await.status, 401);
    for role in [Role::Viewer, Role::Member] {
        let r = session(&h, role).await.get("/operations").await;
        assert_eq!(r.status, 403, "{role}: {}", r.text());
        assert!(!r.text().contains("Fencing token"), "{role} saw the page");
    }
    let admin = session(&h, Role::Admin).await;
    let r = admin.get("/operations").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<h1>Operations</h1>"));
    // The admin's settings page links to it; a member's does not.
    assert!(admin
        .get("/settings")
        .await
        .text()
        .contains("href=\"/operations\""));
    let member = session(&h, Role::Member)
        .await
        .get("/settings")
        .await
        .text();
    assert!(!member.contains("href=\"/operations\""));
}

/// What the page, the API and `/metrics` show of replicas, leases, consumers and the outbox.
async fn operations_show_replicas_leases_lag_and_outbox(backend: Backend) {
    let h = Harness::new(backend).await;
    let s = &h.store;
    cstore::heartbeat(s, "host-1-abc", "9.9.9", 12, None)
        .await
        .unwrap();
    cstore::ensure_leases(s, &["uptime.shard.3".into(), "uptime.shard.4".into()])
        .await
        .unwrap();
    let (fence, _) = cstore::claim(s, "uptime.shard.3", "host-1-abc", 10_000, 5_000)
        .await
        .unwrap()
        .expect("a free lease is claimed");
    // A consumer at 0 with three events after it.
    assert_eq!(
        cursor::lease(s, "alerting.policies", "host-1-abc", 10_000)
            .await
            .unwrap(),
        Some(0)
    );
    let mut tx = s.begin_write().await.unwrap();
    let evs: Vec<_> = (0..3)
        .map(|i| events::publish("test.thing", None, Some(i.to_string()), &json!({})))
        .collect();
    events::publish_in_tx(s, &mut tx, &evs).await.unwrap();
    tx.commit().await.unwrap();

    let v = h.admin.get("/api/v1/operations").await.expect(200);
    assert_eq!(v["replicas_live"], 1, "{v}");
    let r = &v["replicas"][0];
    assert_eq!(
        (
            &r["name"],
            &r["version"],
            &r["state"],
            &r["clock_offset_ms"],
            &r["leases_held"]
        ),
        (
            &json!("host-1-abc"),
            &json!("9.9.9"),
            &json!("live"),
            &json!(12),
            &json!(1)
        ),
        "{v}"
    );
    assert!(r["heartbeat_age_ms"].as_i64().unwrap() < 5_000, "{v}");
    let shard = v["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "uptime.shard.3")
        .expect("the shard is listed");
    assert_eq!(
        (&shard["owner"], &shard["fence"], &shard["owner_live"]),
        (&json!("host-1-abc"), &json!(fence), &json!(true)),
        "{v}"
    );
    let free = v["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "uptime.shard.4")
        .unwrap();
    assert!(
        free["owner"].is_null() && free["owner_live"] == false,
        "{v}"
    );
    let c = v["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consumer"] == "alerting.policies")
        .expect("the consumer is listed");
    assert_eq!(c["stream"], "domain_events");
    assert!(c["lag"].as_i64().unwrap() >= 3, "{v}");
    assert_eq!(
        c["lag"], c["head"],
        "at position 0 it lags the whole stream: {v}"
    );
    assert_eq!(c["served_by"], "host-1-abc");
    assert_eq!(v["outbox"]["pending"], 0);
    assert_eq!(v["ready"], true);

    let page = session(&h, Role::Admin)
        .await
        .get("/operations")
        .await
        .text();
    for want in [
        "host-1-abc",
        "uptime shards 3",
        "alerting.policies",
        ">live<",
        "+12 ms",
    ] {
        assert!(page.contains(want), "the page lacks {want:?}");
    }

    // Signing in published events meanwhile: the lag /metrics shows is the API's now.
    let v = h.admin.get("/api/v1/operations").await.expect(200);
    let lag = v["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consumer"] == "alerting.policies")
        .unwrap()["lag"]
        .clone();
    let metrics = h.anon.get("/metrics").await.text();
    for want in [
        "lookout_replicas_live 1\n",
        "lookout_replica_heartbeat_age_seconds{replica=\"host-1-abc\"} ",
        &format!("lookout_consumer_lag_events{{consumer=\"alerting.policies\"}} {lag}\n"),
        "lookout_outbox_pending 0\n",
        "lookout_clock_offset_ms 0\n",
    ] {
        assert!(
            metrics.contains(want),
            "/metrics lacks {want:?}:\n{metrics}"
        );
    }
    // A replica that left is no longer reported (once the one-second scrape cache has aged).
    cstore::leave(s, "host-1-abc").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let metrics = h.anon.get("/metrics").await.text();
    assert!(metrics.contains("lookout_replicas_live 0\n"), "{metrics}");
    assert!(!metrics.contains("host-1-abc"), "{metrics}");
}

both!(operations_show_replicas_leases_lag_and_outbox);
