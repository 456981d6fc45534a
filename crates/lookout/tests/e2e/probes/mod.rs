//! Multi-location monitoring end to end: `lookout probe` agents as separate processes of the real
//! binary, connecting out to a real server with their location's token, checking a real target
//! and reporting; a pool of two agents sharing a location's monitors; a revoked token stopping
//! its agent with a clear error. The cases that need locations to see the network differently
//! (a target failing for some, a partition, a pool peer taking over, a restart while the server
//! is down) run their agents in network namespaces ([`netns`], [`regions`]).

mod netns;
mod regions;

use std::process::{Child, Stdio};
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
        Agent::start_in(&s.at(""), token, location, id, None, None)
    }

    /// An agent of `location` reaching the server at `server`, inside `ns` when given, keeping
    /// its state in `state` (default: a directory of its own, gone with it).
    fn start_in(
        server: &str,
        token: &str,
        location: &str,
        id: &str,
        ns: Option<&netns::Netns>,
        state: Option<&std::path::Path>,
    ) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        let state = state.map_or_else(|| dir.path().join("state"), std::path::Path::to_path_buf);
        let mut cmd = match ns {
            Some(ns) => ns.command(crate::bin()),
            None => netns::dying_with_parent(&[], crate::bin()),
        };
        let child = cmd
            .args(["probe", "--server", server, "--token", token])
            .args(["--location", location, "--agent-id", id])
            // Each agent its own state directory: agents of one location share a host here.
            .arg("--state-dir")
            .arg(state)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
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

/// Posts results for `location` as an agent would, every 500 ms, passing while `ok` holds: a
/// stand-in for an agent where a test is about the server's judgement, not the network (real
/// agents in network namespaces are in [`regions`]).
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
