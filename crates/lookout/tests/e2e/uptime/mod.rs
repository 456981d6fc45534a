//! Uptime monitoring end to end: real targets on 127.0.0.1 (HTTP servers that answer slow,
//! wrong or not at all, closed ports, a TLS server with a certificate about to expire, an
//! in-process DNS server), heartbeats and cron check-ins, maintenance, dependencies, status
//! pages, the config file, and two replicas sharing the work.

mod checks;
mod config;
mod pages;
mod passive;
mod replicas;
pub mod targets;

use std::time::{Duration, Instant};

use lookout_testkit::TestServer;
use serde_json::Value;

use crate::json_of;

/// Creates a monitor, asserting 201.
pub async fn create(s: &TestServer, body: Value) -> Value {
    let (st, v) = json_of(
        s.admin_client()
            .post(s.at("/api/v1/monitors"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    v
}

/// One monitor.
pub async fn monitor(s: &TestServer, id: i64) -> Value {
    let (st, v) = json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/monitors/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Polls a monitor until `pred` holds (up to `secs`), returning it.
pub async fn wait_for(s: &TestServer, id: i64, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = monitor(s, id).await;
        if pred(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "monitor never got there: {m:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for a monitor's `status`.
pub async fn wait_status(s: &TestServer, id: i64, status: &str, secs: u64) -> Value {
    wait_for(s, id, secs, |m| m["status"] == status).await
}

/// Domain events of `kind` about monitor `id`.
pub async fn events(s: &TestServer, kind: &str, id: i64) -> Vec<Value> {
    let (st, v) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/events?limit=1000"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && e["payload"]["monitor_id"] == id)
        .cloned()
        .collect()
}

/// A monitor's health changes, newest first.
pub async fn changes(s: &TestServer, id: i64) -> Vec<Value> {
    let (st, v) = json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/monitors/{id}/changes")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v.as_array().unwrap().clone()
}
