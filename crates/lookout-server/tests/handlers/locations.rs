//! Locations and the agent protocol, in process: who may manage locations, the token shown once,
//! the monitor fields that name locations (unknown names and a too-large k refused with 422),
//! and what agents may send: a malformed batch is refused whole, a batch sent twice is stored
//! once, a revoked token is told so.

use lookout_core::time::now_ms;
use lookout_testkit::Backend;
use serde_json::{json, Value};

use crate::Harness;

async fn location(h: &Harness, name: &str) -> (i64, String) {
    let r = h
        .admin
        .post(
            "/api/v1/locations",
            json!({"name": name, "description": "a test site"}),
        )
        .await;
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    let v = r.expect(201);
    let token = v["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("lkp_"), "{v}");
    (v["location"]["id"].as_i64().unwrap(), token)
}

fn http_monitor(locations: Value) -> Value {
    json!({"name": "site", "type": "http", "url": "http://127.0.0.1:9/", "locations": locations,
           "failure_threshold": 2})
}

#[tokio::test]
async fn only_admins_manage_locations_and_the_token_is_shown_once() {
    let h = Harness::sqlite().await;
    // The role is checked before the body: a member sending garbage gets 403, not 400.
    let r = h
        .member
        .post_raw("/api/v1/locations", "application/json", "{not json")
        .await;
    assert_eq!(r.status.as_u16(), 403, "{r:?}");
    h.viewer.get("/api/v1/locations").await.expect(403);
    let (id, _) = location(&h, "eu-west").await;
    let listed = h.admin.get("/api/v1/locations").await.expect(200);
    assert_eq!(listed[0]["name"], "eu-west");
    assert_eq!(listed[0]["status"], "waiting");
    assert!(!listed.to_string().contains("lkp_"), "{listed}");
    // Names are unique, and shaped like monitor location names.
    let r = h
        .admin
        .post("/api/v1/locations", json!({"name": "eu-west"}))
        .await;
    assert_eq!(r.status.as_u16(), 409, "{r:?}");
    for bad in ["", "EU West", "local", "-x"] {
        let r = h
            .admin
            .post("/api/v1/locations", json!({"name": bad}))
            .await;
        assert_eq!(r.status.as_u16(), 422, "{bad:?}: {r:?}");
        assert!(r.message().starts_with("name"), "{r:?}");
    }
    let v = h
        .admin
        .patch(
            &format!("/api/v1/locations/{id}"),
            json!({"description": "Frankfurt"}),
        )
        .await
        .expect(200);
    assert_eq!(v["description"], "Frankfurt");
    h.admin
        .delete(&format!("/api/v1/locations/{id}"))
        .await
        .expect(204);
    assert_eq!(h.count("/api/v1/locations").await, 0);
}

async fn monitors_naming_locations_are_checked(backend: Backend) {
    let h = Harness::new(backend).await;
    let (eu, _) = location(&h, "eu-west").await;
    location(&h, "us-east").await;
    let before = h.count("/api/v1/monitors").await;
    let r = h
        .member
        .post("/api/v1/monitors", http_monitor(json!(["local", "mars"])))
        .await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert!(
        r.message().contains("locations") && r.message().contains("mars"),
        "{r:?}"
    );
    let mut too_many = http_monitor(json!(["local", "eu-west"]));
    too_many["confirm"] = json!({"min_failing_locations": 3});
    let r = h.member.post("/api/v1/monitors", too_many).await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert!(r.message().starts_with("confirm"), "{r:?}");
    let r = h
        .member
        .post(
            "/api/v1/monitors",
            http_monitor(json!(["eu-west", "eu-west"])),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert_eq!(
        h.count("/api/v1/monitors").await,
        before,
        "a refused monitor was stored"
    );

    let mut good = http_monitor(json!(["local", "eu-west", "us-east"]));
    good["confirm"] = json!({"min_failing_locations": 2});
    let v = h.member.post("/api/v1/monitors", good).await.expect(201);
    let names: Vec<&str> = v["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local", "eu-west", "us-east"], "{v}");
    assert_eq!(v["locations"][0]["state"], "pending");
    // No agent has reported from eu-west: it is offline, which never counts as failing.
    assert_eq!(v["locations"][1]["state"], "offline");
    assert_eq!(v["confirm"]["min_failing_locations"], 2);
    // The document as GET shows it can be sent back as it is.
    let id = v["id"].as_i64().unwrap();
    h.member
        .put(&format!("/api/v1/monitors/{id}"), v.clone())
        .await
        .expect(200);
    // A location in use cannot be deleted or renamed.
    let r = h.admin.delete(&format!("/api/v1/locations/{eu}")).await;
    assert_eq!(r.status.as_u16(), 409, "{r:?}");
    let r = h
        .admin
        .patch(
            &format!("/api/v1/locations/{eu}"),
            json!({"name": "eu-central"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 409, "{r:?}");
    let listed = h
        .admin
        .get(&format!("/api/v1/locations/{eu}"))
        .await
        .expect(200);
    assert_eq!(listed["monitors"], 1);
}

#[tokio::test]
async fn monitors_naming_locations_are_checked_sqlite() {
    monitors_naming_locations_are_checked(Backend::Sqlite).await;
}

#[tokio::test]
async fn monitors_naming_locations_are_checked_postgres() {
    monitors_naming_locations_are_checked(Backend::Postgres).await;
}

fn batch(id: &str, monitor: i64, at: i64, ok: bool) -> Value {
    json!({"batch_id": id, "agent_id": "agent-a", "agent_version": "test", "buffered": 0,
           "results": [{"monitor_id": monitor, "scheduled_at": at, "at": at + 5, "ok": ok,
                        "latency_ms": 12.5, "message": if ok { Value::Null } else { json!("connection refused") }}]})
}

async fn the_agent_protocol_stores_each_result_once(backend: Backend) {
    let h = Harness::new(backend).await;
    let (eu, token) = location(&h, "eu-west").await;
    let agent = h.anon.bearer(&token);
    let m = h
        .member
        .post(
            "/api/v1/monitors",
            http_monitor(json!(["local", "eu-west"])),
        )
        .await
        .expect(201);
    let id = m["id"].as_i64().unwrap();

    // User tokens, even the admin's, are not agent tokens.
    let r = h.admin.get("/api/v1/agent/assignments?agent_id=a").await;
    assert_eq!(r.status.as_u16(), 401, "{r:?}");
    let r = h.anon.get("/api/v1/agent/assignments?agent_id=a").await;
    assert_eq!(r.status.as_u16(), 401, "{r:?}");

    let a = agent
        .get("/api/v1/agent/assignments?agent_id=agent-a&agent_version=test")
        .await
        .expect(200);
    assert_eq!(a["location"], "eu-west");
    assert_eq!(a["agents"], 1);
    assert_eq!(a["monitors"][0]["id"], id, "{a}");
    assert_eq!(a["monitors"][0]["spec"]["url"], "http://127.0.0.1:9/");
    // Asking with the version it has and no wait answers the same list at once.
    let again = agent
        .get(&format!(
            "/api/v1/agent/assignments?agent_id=agent-a&version={}",
            a["version"]
        ))
        .await
        .expect(200);
    assert_eq!(again["version"], a["version"]);

    // Malformed batches are refused whole: nothing stored.
    let now = now_ms();
    let mut bad = batch("b0", id, now, false);
    bad["results"]
        .as_array_mut()
        .unwrap()
        .push(json!({"monitor_id": id, "scheduled_at": "yesterday", "at": now, "ok": true}));
    let r = agent.post("/api/v1/agent/results", bad).await;
    assert_eq!(r.status.as_u16(), 400, "{r:?}");
    let r = agent
        .post_raw(
            "/api/v1/agent/results",
            "application/json",
            "{\"batch_id\":",
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{r:?}");
    let r = agent
        .post_raw(
            "/api/v1/agent/results",
            "application/json",
            vec![b' '; lookout_uptime::agent::MAX_BATCH_BYTES + 10],
        )
        .await;
    assert_eq!(r.status.as_u16(), 413, "{r:?}");
    assert_eq!(
        lookout_store::locations::result_count(&h.store, id, eu)
            .await
            .unwrap(),
        0
    );

    // A batch sent twice is stored once.
    let first = agent
        .post("/api/v1/agent/results", batch("b1", id, now, false))
        .await
        .expect(200);
    assert_eq!(
        (first["stored"].as_u64(), first["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    let retry = agent
        .post("/api/v1/agent/results", batch("b1", id, now, false))
        .await
        .expect(200);
    assert_eq!(
        (retry["stored"].as_u64(), retry["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    // Results for a monitor the location does not check are ignored, not stored.
    let other = agent
        .post("/api/v1/agent/results", batch("b2", id + 100, now, true))
        .await
        .expect(200);
    assert_eq!(other["ignored"], 1);
    assert_eq!(
        lookout_store::locations::result_count(&h.store, id, eu)
            .await
            .unwrap(),
        1
    );
    // Two failures in a row (the monitor's threshold): down as eu-west sees it.
    agent
        .post(
            "/api/v1/agent/results",
            batch("b3", id, now + 60_000, false),
        )
        .await
        .expect(200);
    let v = h
        .admin
        .get(&format!("/api/v1/monitors/{id}"))
        .await
        .expect(200);
    assert_eq!(v["locations"][1]["name"], "eu-west");
    assert_eq!(v["locations"][1]["state"], "down", "{v}");
    assert_eq!(v["locations"][1]["latency_ms"], 12.5);
    let l = h
        .admin
        .get(&format!("/api/v1/locations/{eu}"))
        .await
        .expect(200);
    assert_eq!(l["status"], "online");
    assert_eq!(l["agents"][0]["agent_id"], "agent-a");
    assert_eq!(l["agents"][0]["version"], "test");

    // Revoked: the agent is told so, with its own code; a rotation gives a working token.
    h.admin
        .delete(&format!("/api/v1/locations/{eu}/token"))
        .await
        .expect(200);
    let r = agent
        .get("/api/v1/agent/assignments?agent_id=agent-a")
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "token_revoked"),
        "{r:?}"
    );
    assert!(r.message().contains("revoked"), "{r:?}");
    let r = h
        .admin
        .post(&format!("/api/v1/locations/{eu}/token"), json!({}))
        .await;
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    let rotated = r.expect(200);
    let fresh = h.anon.bearer(rotated["token"].as_str().unwrap());
    fresh
        .get("/api/v1/agent/assignments?agent_id=agent-a")
        .await
        .expect(200);
    let r = agent
        .get("/api/v1/agent/assignments?agent_id=agent-a")
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "unauthorized"),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_agent_protocol_stores_each_result_once_sqlite() {
    the_agent_protocol_stores_each_result_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_agent_protocol_stores_each_result_once_postgres() {
    the_agent_protocol_stores_each_result_once(Backend::Postgres).await;
}

#[tokio::test]
async fn a_long_poll_answers_when_a_monitor_is_added() {
    let h = Harness::sqlite().await;
    let (_, token) = location(&h, "eu-west").await;
    let agent = h.anon.bearer(&token);
    let a = agent
        .get("/api/v1/agent/assignments?agent_id=agent-a")
        .await
        .expect(200);
    assert_eq!(a["monitors"].as_array().unwrap().len(), 0);
    let version = a["version"].clone();
    let poll = {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .get(&format!(
                    "/api/v1/agent/assignments?agent_id=agent-a&version={version}&wait=30s"
                ))
                .await
        })
    };
    h.member
        .post("/api/v1/monitors", http_monitor(json!(["eu-west"])))
        .await
        .expect(201);
    let v = poll.await.unwrap().expect(200);
    assert_eq!(v["monitors"].as_array().unwrap().len(), 1, "{v}");
    assert_ne!(v["version"], a["version"]);
}

#[tokio::test]
async fn a_silent_location_is_announced_offline_once_and_online_when_it_reports() {
    use lookout_server::locations::service::{announce_health, LOCATION_OFFLINE_MS};
    let h = Harness::sqlite().await;
    let (_, token) = location(&h, "eu-west").await;
    let (_, _) = location(&h, "never-started").await;
    let agent = h.anon.bearer(&token);
    agent
        .get("/api/v1/agent/assignments?agent_id=agent-a")
        .await
        .expect(200);
    let now = now_ms();
    assert_eq!(announce_health(&h.store, now).await.unwrap(), 0);
    let later = now + LOCATION_OFFLINE_MS + 1_000;
    assert_eq!(announce_health(&h.store, later).await.unwrap(), 1);
    assert_eq!(
        announce_health(&h.store, later).await.unwrap(),
        0,
        "announced once"
    );
    agent
        .get("/api/v1/agent/assignments?agent_id=agent-a")
        .await
        .expect(200);
    assert_eq!(announce_health(&h.store, now_ms()).await.unwrap(), 1);
    let events = h.admin.get("/api/v1/events?limit=100").await.expect(200);
    let kinds: Vec<(&str, &str)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("location."))
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["payload"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest first; the location no agent ever reported from is not announced.
    assert_eq!(
        kinds,
        [
            ("location.online", "eu-west"),
            ("location.offline", "eu-west")
        ],
        "{events}"
    );
}

/// A long-poll already waiting when the token is revoked (or rotated) answers `token_revoked`,
/// never the monitor specs; a normal answer is marked not cacheable.
#[tokio::test]
async fn a_waiting_long_poll_is_cut_off_when_the_token_is_revoked_or_rotated() {
    let h = Harness::sqlite().await;
    let (id, token) = location(&h, "eu-west").await;
    h.member
        .post("/api/v1/monitors", http_monitor(json!(["eu-west"])))
        .await
        .expect(201);
    let first = h
        .anon
        .bearer(&token)
        .get("/api/v1/agent/assignments?agent_id=agent-a")
        .await;
    assert_eq!(first.header("cache-control"), Some("no-store"), "{first:?}");
    let a = first.expect(200);
    let wait = |token: String, version: Value| {
        let agent = h.anon.bearer(&token);
        tokio::spawn(async move {
            agent
                .get(&format!(
                    "/api/v1/agent/assignments?agent_id=agent-a&version={version}&wait=30s"
                ))
                .await
        })
    };
    // Revoked while waiting.
    let poll = wait(token.clone(), a["version"].clone());
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    h.admin
        .delete(&format!("/api/v1/locations/{id}/token"))
        .await
        .expect(200);
    let r = poll.await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "token_revoked"),
        "{r:?}"
    );
    assert!(!r.text().contains("\"spec\""), "{r:?}");
    // Rotated while waiting: the old token's wait ends the same way.
    let rotated = h
        .admin
        .post(&format!("/api/v1/locations/{id}/token"), json!({}))
        .await
        .expect(200);
    let fresh = rotated["token"].as_str().unwrap().to_string();
    let poll = wait(fresh.clone(), a["version"].clone());
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    h.admin
        .post(&format!("/api/v1/locations/{id}/token"), json!({}))
        .await
        .expect(200);
    let r = poll.await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "token_revoked"),
        "{r:?}"
    );
}

/// A heartbeat monitor read and sent back unchanged is accepted: its view's
/// `locations: [{"name": "local"}]` means no locations, not a refusal.
#[tokio::test]
async fn a_heartbeat_monitor_read_and_sent_back_is_accepted() {
    let h = Harness::sqlite().await;
    let created = h
        .member
        .post(
            "/api/v1/monitors",
            json!({"name": "nightly backup", "type": "heartbeat", "interval_seconds": 86400}),
        )
        .await
        .expect(201);
    let id = created["id"].as_i64().unwrap();
    let read = h
        .member
        .get(&format!("/api/v1/monitors/{id}"))
        .await
        .expect(200);
    assert_eq!(read["locations"][0]["name"], "local", "{read}");
    let mut back = read.clone();
    back["name"] = json!("nightly backup (renamed)");
    let put = h
        .member
        .put(&format!("/api/v1/monitors/{id}"), back)
        .await
        .expect(200);
    assert_eq!(put["name"], "nightly backup (renamed)", "{put}");
    // Naming a real location is still refused for a passive monitor, with the field named.
    location(&h, "eu-west").await;
    let r = h
        .member
        .put(
            &format!("/api/v1/monitors/{id}"),
            json!({"name": "nightly backup", "type": "heartbeat", "interval_seconds": 86400,
                   "locations": ["eu-west"]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert!(r.message().starts_with("locations"), "{r:?}");
}

/// The quorum's inputs: a location's verdict goes stale (pending) when its last result is older
/// than two intervals and the slack, though its agent is still seen; a set k with fewer active
/// locations never makes the monitor down.
#[tokio::test]
async fn a_stale_location_verdict_is_pending_and_a_set_k_needs_that_many_locations() {
    use lookout_server::uptime::quorum::{verdict, STALE_SLACK_MS};
    use lookout_uptime::state::Health;
    let h = Harness::sqlite().await;
    let (_, token) = location(&h, "eu-west").await;
    location(&h, "us-east").await;
    let agent = h.anon.bearer(&token);
    let body = json!({"name": "site", "type": "http", "url": "http://127.0.0.1:9/",
                      "interval_seconds": 60, "failure_threshold": 1,
                      "locations": ["eu-west", "us-east"],
                      "confirm": {"min_failing_locations": 2}});
    let m = h
        .member
        .post("/api/v1/monitors", body.clone())
        .await
        .expect(201);
    let id = m["id"].as_i64().unwrap();
    let mut spec: lookout_uptime::MonitorSpec = serde_json::from_value(body).unwrap();
    spec.validate().unwrap();
    let now = now_ms();
    agent
        .get("/api/v1/agent/assignments?agent_id=agent-a")
        .await
        .expect(200);
    // A failure older than two intervals and the slack, its agent seen now: stale, not failing.
    let old = now - 2 * 60_000 - STALE_SLACK_MS - 5_000;
    agent
        .post("/api/v1/agent/results", batch("b1", id, old, false))
        .await
        .expect(200);
    let q = verdict(&h.store, id, &spec, Health::Pending, None, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((q.active, q.failing.len()), (1, 0), "{q:?}");
    // A fresh failure from eu-west, the only active location (us-east never reported): the
    // set k = 2 is not met by one vantage point, so the monitor is not down, only degraded.
    agent
        .post("/api/v1/agent/results", batch("b2", id, now - 1_000, false))
        .await
        .expect(200);
    let q = verdict(&h.store, id, &spec, Health::Pending, None, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.failing, ["eu-west"], "{q:?}");
    assert_eq!((q.health, q.degraded()), (Health::Up, true), "{q:?}");
    // A result older than the 24 h retention (a late retry) is ignored, not stored again.
    let r = agent
        .post(
            "/api/v1/agent/results",
            batch("b0", id, now - 25 * 3_600_000, false),
        )
        .await
        .expect(200);
    assert_eq!(
        (r["stored"].as_u64(), r["ignored"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );
}
