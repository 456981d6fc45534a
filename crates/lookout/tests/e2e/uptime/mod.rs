//! Uptime monitoring end to end: real targets on 127.0.0.1 (HTTP servers that answer slow,
//! wrong or not at all, closed ports, a TLS server with a certificate about to expire, an
//! in-process DNS server), heartbeats and cron check-ins, maintenance, dependencies, status
//! pages, the config file, and two replicas sharing the work.

mod actions;
mod checks;
mod config;
mod pages;
mod passive;
pub mod targets;

use std::time::Duration;

use lookout_testkit::{eventually, TestServer};
use serde_json::Value;

/// Creates a monitor, asserting 201.
pub async fn create(s: &TestServer, body: Value) -> Value {
    s.client().post("/api/v1/monitors", body).await.expect(201)
}

/// One monitor.
pub async fn monitor(s: &TestServer, id: i64) -> Value {
    s.client()
        .get(&format!("/api/v1/monitors/{id}"))
        .await
        .expect(200)
}

/// Polls a monitor until `pred` holds (up to `secs`), returning it.
pub async fn wait_for(s: &TestServer, id: i64, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(format!("monitor {id} to get there"))
        .secs(secs)
        .every(Duration::from_millis(200))
        .until(|| monitor(s, id), pred)
        .await
}

/// Waits for a monitor's `status`.
pub async fn wait_status(s: &TestServer, id: i64, status: &str, secs: u64) -> Value {
    wait_for(s, id, secs, |m| m["status"] == status).await
}

/// Domain events of `kind` about monitor `id`.
pub async fn events(s: &TestServer, kind: &str, id: i64) -> Vec<Value> {
    events_about(s, kind, "monitor_id", &Value::from(id)).await
}

/// Domain events of `kind` whose payload's `key` is `value` (the newest 1,000 events).
pub async fn events_about(s: &TestServer, kind: &str, key: &str, value: &Value) -> Vec<Value> {
    let v = s
        .client()
        .get("/api/v1/events?limit=1000")
        .await
        .expect(200);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && e["payload"][key] == *value)
        .cloned()
        .collect()
}

/// Waits up to `secs` for at least one domain event of `kind` about monitor `id`.
pub async fn wait_events(s: &TestServer, kind: &str, id: i64, secs: u64) -> Vec<Value> {
    eventually(format!("a {kind} event about monitor {id}"))
        .secs(secs)
        .every(Duration::from_millis(200))
        .until(|| events(s, kind, id), |e| !e.is_empty())
        .await
}

/// A monitor's health changes, newest first.
pub async fn changes(s: &TestServer, id: i64) -> Vec<Value> {
    let v = s
        .client()
        .get(&format!("/api/v1/monitors/{id}/changes"))
        .await
        .expect(200);
    v.as_array().unwrap().clone()
}
