//! Acknowledged writes across kill -9 and SIGTERM.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::{json, Value};

use crate::{bin, json_of};

lookout_testkit::both!(
    acknowledged_writes_survive_kill_9,
    sigterm_drains_and_exits_cleanly,
);

/// Writes markers from many clients until `stop`; returns the ids the server acknowledged.
fn spawn_writers(
    s: &TestServer,
    clients: usize,
) -> (Arc<Mutex<Vec<String>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..clients {
        let c = s.admin_client();
        let url = s.at("/api/v1/projects/1/markers");
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let r = c
                    .post(&url)
                    .json(&json!({"title": format!("w{w} #{i}"), "kind": "deploy"}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = r.json().await.unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_string());
                    }
                    _ => break, // the server went away
                }
            }
        }));
    }
    (acked, tasks)
}

/// Waits until the writers have `n` acknowledged writes.
async fn acknowledged(acked: &Mutex<Vec<String>>, n: usize) {
    eventually(format!("{n} acknowledged writes"))
        .every(Duration::from_millis(5))
        .until(|| async { acked.lock().unwrap().len() }, |got| *got >= n)
        .await;
}

async fn all_marker_ids(s: &TestServer) -> HashSet<String> {
    let c = s.admin_client();
    let mut ids = HashSet::new();
    let mut url = s.at("/api/v1/projects/1/markers?limit=1000");
    loop {
        let (st, page) = json_of(c.get(&url).send().await.unwrap()).await;
        assert_eq!(st, 200);
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(n) => url = s.at(&format!("/api/v1/projects/1/markers?limit=1000&cursor={n}")),
            None => return ids,
        }
    }
}

async fn acknowledged_writes_survive_kill_9(backend: Backend) {
    let mut s = TestServer::start(bin(), backend).await;
    let key_of = |dsn: &str| dsn.split('@').next().unwrap_or_default().to_string();
    let key_before = key_of(&s.dsn);
    let (acked, tasks) = spawn_writers(&s, 16);
    acknowledged(&acked, 1500).await;
    s.kill9(); // mid-stream: some requests are in flight, uncommitted, unacknowledged
    for t in tasks {
        t.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    s.restart();
    let stored = all_marker_ids(&s).await;
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost after kill -9",
        lost.len(),
        acked.len()
    );
    assert_eq!(
        key_of(&s.dsn),
        key_before,
        "the default project's DSN key changed across a restart"
    );
}

async fn sigterm_drains_and_exits_cleanly(backend: Backend) {
    let mut s = TestServer::start(bin(), backend).await;
    let (acked, tasks) = spawn_writers(&s, 8);
    acknowledged(&acked, 300).await;
    let status = s.terminate().expect("server was running");
    assert!(status.success(), "SIGTERM exit: {status:?}");
    for t in tasks {
        t.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    s.restart();
    let stored = all_marker_ids(&s).await;
    assert!(
        acked.iter().all(|id| stored.contains(id)),
        "acknowledged writes lost across SIGTERM"
    );
}
