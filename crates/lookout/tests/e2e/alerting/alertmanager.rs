//! The real Prometheus Alertmanager fires into Lookout: an alert opens one incident titled from
//! `alertname` and `summary`, Alertmanager's resends change nothing, and the resolved
//! notification resolves it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::json;

use super::{paged_user, wait_incident, Receiver};
use crate::bin;

struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Alertmanager with one webhook receiver, or None (skip) outside CI when it is not
/// installed. Under CI=true a missing Alertmanager fails the test.
async fn alertmanager(webhook: &str) -> Option<Alertmanager> {
    let exe = "prometheus-alertmanager";
    if Command::new(exe).arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "prometheus-alertmanager is required under CI (apt-get install prometheus-alertmanager)"
        );
        eprintln!("skipping: prometheus-alertmanager is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: lookout\n  group_by: [alertname]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 2s\nreceivers:\n  - name: lookout\n    \
             webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(exe)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let am = Alertmanager {
        child,
        port,
        _dir: dir,
    };
    let ready = format!("http://127.0.0.1:{port}/-/ready");
    eventually("Alertmanager to be ready")
        .until(
            || async { reqwest::get(&ready).await.map(|r| r.status()) },
            |r| r.as_ref().is_ok_and(|st| st.is_success()),
        )
        .await
        .unwrap();
    Some(am)
}

async fn fire(am: &Alertmanager, ends_at: Option<String>) {
    let mut alert = json!({
        "labels": {"alertname": "DiskFull", "instance": "db-1:9100", "severity": "critical"},
        "annotations": {"summary": "Disk almost full on db-1"},
        "generatorURL": "http://prometheus.example/graph"
    });
    if let Some(e) = ends_at {
        alert["endsAt"] = json!(e);
    }
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v2/alerts", am.port))
        .json(&json!([alert]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn alertmanager_alerts_open_and_resolve_one_incident(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let r = Receiver::start().await;
    let (_, ep, _) = paged_user(&s, &r, "k").await;
    let i = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "prometheus", "type": "alertmanager", "escalation_policy_id": ep,
               "service": "storage"}),
        )
        .await
        .expect(201);
    let url = i["url"].as_str().unwrap();
    assert!(url.ends_with("/alertmanager"), "{url}");
    let Some(am) = alertmanager(url).await else {
        return;
    };
    fire(&am, None).await;
    let inc = super::wait_any_incident(&s, 30, |v| v["status"] == "triggered").await;
    assert_eq!(inc["title"], "DiskFull: Disk almost full on db-1");
    assert_eq!(inc["severity"], "critical");
    assert_eq!(inc["service"], "storage");
    assert_eq!(inc["source"], "db-1:9100");
    let id = inc["id"].as_i64().unwrap();
    // Alertmanager resends the group (repeat_interval 2 s); nothing new may come of it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let all = s.client().get("/api/v1/incidents").await.expect(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all:#}");
    let v = s
        .client()
        .get(&format!("/api/v1/incidents/{id}"))
        .await
        .expect(200);
    assert_eq!(v["alert_count"], 1, "resends are not new alerts");
    assert_eq!(
        r.got()
            .iter()
            .filter(|g| g.json()["event"] == "triggered")
            .count(),
        1,
        "paged once"
    );
    // The alert ends: Alertmanager sends `resolved`, and the incident resolves itself.
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    fire(&am, Some(past.to_rfc3339())).await;
    let v = wait_incident(&s, id, 30, |v| v["status"] == "resolved").await;
    assert!(v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "resolved" && e["actor"] == "integration:prometheus"));
}

lookout_testkit::both!(alertmanager_alerts_open_and_resolve_one_incident);
