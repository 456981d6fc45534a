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
