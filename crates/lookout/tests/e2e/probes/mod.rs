//! Multi-location monitoring end to end: `lookout probe` agents as separate processes of the real
//! binary, connecting out to a real server with their location's token, checking a real target
//! and reporting; a pool of two agents sharing a location's monitors; a revoked token stopping
//! its agent with a clear error.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::{json, Value};

use crate::uptime::targets::HttpTarget;
use crate::uptime::{create, monitor};

/// A `lookout probe` process, killed when dropped; its log goes to a file the test can read.
struct Agent {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(s: &TestServer, token: &str, location: &str, id: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        let child = Command::new(crate::bin())
            .args(["probe", "--server", &s.at(""), "--token", token])
            .args(["--location", location, "--agent-id", id])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start lookout probe");
        Agent {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn location(s: &TestServer, name: &str) -> (i64, String) {
    let v = s
        .client()
        .post("/api/v1/locations", json!({"name": name}))
        .await
        .expect(201);
    (
        v["location"]["id"].as_i64().unwrap(),
        v["token"].as_str().unwrap().to_string(),
    )
}

/// The monitor's state as `location` sees it.
fn at<'a>(m: &'a Value, location: &str) -> &'a Value {
    m["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == location)
        .unwrap_or_else(|| panic!("{location} not in {m}"))
}

async fn wait_location(s: &TestServer, id: i64, location: &str, state: &str, secs: u64) -> Value {
    eventually(format!("monitor {id} to be {state} at {location}"))
        .secs(secs)
        .every(Duration::from_millis(300))
        .until(|| monitor(s, id), |m| at(m, location)["state"] == state)
        .await
}

lookout_testkit::both!(an_agent_checks_from_its_location_and_reports);

async fn an_agent_checks_from_its_location_and_reports(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let t = HttpTarget::start().await;
    let (loc, token) = location(&s, "eu-west").await;
    let m = create(
        &s,
        json!({"name": "api", "type": "http", "url": t.url("/health"), "interval_seconds": 1,
               "failure_threshold": 2, "locations": ["local", "eu-west"]}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    let _agent = Agent::start(&s, &token, "eu-west", "agent-1");
    let m = wait_location(&s, id, "eu-west", "up", 30).await;
    assert!(at(&m, "eu-west")["latency_ms"].as_f64().is_some(), "{m}");
    let l = s
        .client()
        .get(&format!("/api/v1/locations/{loc}"))
        .await
        .expect(200);
    assert_eq!(l["status"], "online", "{l}");
    assert_eq!(l["agents"][0]["agent_id"], "agent-1");
    assert_eq!(l["monitors"], 1);

    t.set(|b| b.status = 503);
    wait_location(&s, id, "eu-west", "down", 30).await;
    t.set(|b| b.status = 200);
    wait_location(&s, id, "eu-west", "up", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_its_agent_with_a_clear_error() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let t = HttpTarget::start().await;
    let (loc, token) = location(&s, "us-east").await;
    let m = create(
        &s,
        json!({"name": "api", "type": "http", "url": t.url("/"), "interval_seconds": 1,
               "locations": ["us-east"]}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    let mut agent = Agent::start(&s, &token, "us-east", "agent-1");
    wait_location(&s, id, "us-east", "up", 30).await;
    s.client()
        .delete(&format!("/api/v1/locations/{loc}/token"))
        .await
        .expect(200);
    let status = eventually("the agent to stop")
        .secs(45)
        .every(Duration::from_millis(200))
        .until(
            || {
                let st = agent.child.try_wait().unwrap();
                async move { st }
            },
            |st| st.is_some(),
        )
        .await
        .unwrap();
    assert_eq!(status.code(), Some(3), "{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains("revoked") && log.contains("us-east"),
        "the error says the token was revoked: {log}"
    );
    agent.kill();
    // Revoked: the location leaves every monitor's quorum (offline), never failing.
    let m = monitor(&s, id).await;
    assert_eq!(at(&m, "us-east")["state"], "offline", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_share_a_location_and_one_takes_over_when_the_other_dies() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let t = HttpTarget::start().await;
    let (loc, token) = location(&s, "ap-south").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let m = create(
            &s,
            json!({"name": format!("api {i}"), "type": "http", "url": t.url(&format!("/m{i}")),
                   "interval_seconds": 2, "locations": ["ap-south"]}),
        )
        .await;
        ids.push(m["id"].as_i64().unwrap());
    }
    let mut a = Agent::start(&s, &token, "ap-south", "agent-a");
    let _b = Agent::start(&s, &token, "ap-south", "agent-b");
    for id in &ids {
        wait_location(&s, *id, "ap-south", "up", 40).await;
    }
    // Each monitor is checked by one agent of the pool: every path is hit about once per
    // interval, not twice.
    let l = eventually("both agents to be live")
        .secs(30)
        .until(
            || async {
                s.client()
                    .get(&format!("/api/v1/locations/{loc}"))
                    .await
                    .expect(200)
            },
            |l| {
                l["agents"]
                    .as_array()
                    .is_some_and(|a| a.iter().filter(|x| x["live"] == true).count() == 2)
            },
        )
        .await;
    assert_eq!(l["monitors"], 6);
    a.kill();
    let killed = lookout_core::time::now_ms();
    // Within the liveness timeout (45 s) plus an interval, agent-b checks every monitor.
    for id in &ids {
        eventually(format!("monitor {id} checked after agent-a died"))
            .secs(90)
            .every(Duration::from_millis(500))
            .until(
                || monitor(&s, *id),
                |m| {
                    at(m, "ap-south")["last_check_at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t.timestamp_millis() > killed + 46_000)
                },
            )
            .await;
    }
}

/// Posts results for `location` as an agent would, every 500 ms, passing while `ok` holds: a
/// stand-in for a region whose view of the target differs from the others' (on one host every
/// real agent sees the same target).
fn simulated_region(
    s: &TestServer,
    token: &str,
    monitor: i64,
    ok: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let client = s.anon().bearer(token);
    tokio::spawn(async move {
        for i in 0.. {
            let now = lookout_core::time::now_ms();
            let ok = ok.load(std::sync::atomic::Ordering::SeqCst);
            client
                .post(
                    "/api/v1/agent/results",
                    json!({"batch_id": format!("sim-{i}"), "agent_id": "sim", "results": [
                        {"monitor_id": monitor, "scheduled_at": now, "at": now, "ok": ok,
                         "latency_ms": 1.0, "message": if ok { Value::Null } else { json!("HTTP 503 from the region") }}]}),
                )
                .await
                .expect(200);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_is_down_only_when_a_quorum_of_locations_fails() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let t = HttpTarget::start().await;
    let (_, eu) = location(&s, "eu-west").await;
    let (_, us) = location(&s, "us-east").await;
    // Three locations, the default rule: a majority (2) must fail.
    let m = create(
        &s,
        json!({"name": "api", "type": "http", "url": t.url("/"), "interval_seconds": 1,
               "failure_threshold": 2, "locations": ["local", "eu-west", "us-east"]}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    let _agent = Agent::start(&s, &eu, "eu-west", "agent-eu");
    let us_ok = std::sync::Arc::new(AtomicBool::new(true));
    let _region = simulated_region(&s, &us, id, us_ok.clone());
    crate::uptime::wait_status(&s, id, "up", 30).await;
    wait_location(&s, id, "eu-west", "up", 30).await;

    // 1 of 3 failing: a regional degradation, recorded, not paged.
    us_ok.store(false, Ordering::SeqCst);
    wait_location(&s, id, "us-east", "down", 30).await;
    let degraded = eventually("monitor.degraded")
        .secs(30)
        .until(
            || crate::uptime::events(&s, "monitor.degraded", id),
            |e| !e.is_empty(),
        )
        .await;
    assert_eq!(
        degraded[0]["payload"]["failing_locations"],
        json!(["us-east"])
    );
    let m = monitor(&s, id).await;
    assert_eq!(
        m["status"], "up",
        "one region failing must not take it down: {m}"
    );
    assert!(crate::uptime::events(&s, "monitor.down", id)
        .await
        .is_empty());

    // 2 of 3 failing (the replicas and eu-west see 503, us-east recovered): down, paged once.
    us_ok.store(true, Ordering::SeqCst);
    t.set(|b| b.status = 503);
    let m = crate::uptime::wait_status(&s, id, "down", 30).await;
    assert_eq!(at(&m, "us-east")["state"], "up", "{m}");
    let down = crate::uptime::events(&s, "monitor.down", id).await;
    assert_eq!(down.len(), 1, "{down:?}");
    let reason = down[0]["payload"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("failing from local, eu-west") && reason.contains("2 of 3"),
        "the page names the failing locations: {reason}"
    );
    t.set(|b| b.status = 200);
    crate::uptime::wait_status(&s, id, "up", 30).await;
    assert_eq!(crate::uptime::events(&s, "monitor.up", id).await.len(), 1);
    assert_eq!(crate::uptime::events(&s, "monitor.down", id).await.len(), 1);
}

/// A monitor checked from agents only (no `local`): the replicas never probe it, and the
/// locations' results alone move it, promptly (its interval is a minute; the quorum is judged
/// again as soon as a location's state changes, not at the next minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_without_local_is_judged_by_its_locations_alone() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let t = HttpTarget::start().await;
    let (_, eu) = location(&s, "eu-west").await;
    let (_, us) = location(&s, "us-east").await;
    let m = create(
        &s,
        json!({"name": "api", "type": "http", "url": t.url("/"), "interval_seconds": 60,
               "failure_threshold": 1, "locations": ["eu-west", "us-east"]}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    let eu_ok = Arc::new(AtomicBool::new(true));
    let us_ok = Arc::new(AtomicBool::new(true));
    let _eu = simulated_region(&s, &eu, id, eu_ok.clone());
    let _us = simulated_region(&s, &us, id, us_ok.clone());
    crate::uptime::wait_status(&s, id, "up", 30).await;
    eu_ok.store(false, Ordering::SeqCst);
    us_ok.store(false, Ordering::SeqCst);
    let m = crate::uptime::wait_status(&s, id, "down", 30).await;
    assert!(
        m["locations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["name"] != "local"),
        "{m}"
    );
    eu_ok.store(true, Ordering::SeqCst);
    us_ok.store(true, Ordering::SeqCst);
    crate::uptime::wait_status(&s, id, "up", 30).await;
    assert!(
        t.hits("/").is_empty(),
        "the replicas probed a monitor that does not list local"
    );
    assert_eq!(crate::uptime::events(&s, "monitor.down", id).await.len(), 1);
}

/// With no active location left (here its token is revoked), the monitor is `unknown`, not
/// down, and nobody is paged; it is up again once a location reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_without_an_active_location_is_unknown_not_down() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let (loc, eu) = location(&s, "eu-west").await;
    let m = create(
        &s,
        json!({"name": "api", "type": "http", "url": "http://127.0.0.1:9/", "interval_seconds": 1,
               "failure_threshold": 1, "locations": ["eu-west"]}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    let region = simulated_region(&s, &eu, id, Arc::new(AtomicBool::new(true)));
    crate::uptime::wait_status(&s, id, "up", 30).await;
    region.abort();
    s.client()
        .delete(&format!("/api/v1/locations/{loc}/token"))
        .await
        .expect(200);
    crate::uptime::wait_status(&s, id, "unknown", 30).await;
    assert!(crate::uptime::events(&s, "monitor.down", id)
        .await
        .is_empty());
    let rotated = s
        .client()
        .post(&format!("/api/v1/locations/{loc}/token"), json!({}))
        .await
        .expect(200);
    let _region = simulated_region(
        &s,
        rotated["token"].as_str().unwrap(),
        id,
        Arc::new(AtomicBool::new(true)),
    );
    crate::uptime::wait_status(&s, id, "up", 30).await;
}
