//! Monitors and status pages as code: declared in the YAML config file, reconciled at start and
//! on SIGHUP, idempotently.

use lookout_testkit::{Backend, TestServer};
use serde_json::Value;

use super::targets::HttpTarget;
use super::*;

async fn list(s: &TestServer) -> Vec<Value> {
    let (_, v) = crate::json_of(
        s.admin_client()
            .get(s.at("/api/v1/monitors"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    v["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_monitors_reconcile_at_start_and_on_sighup() {
    let t = HttpTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.yaml");
    let write = |interval: u32, with_db: bool| {
        let db = if with_db {
            "  - name: db\n    type: tcp\n    host: 127.0.0.1\n    port: 5432\n    interval_seconds: 1\n"
        } else {
            ""
        };
        std::fs::write(
            &path,
            format!(
                "uptime:\n  deny_networks: [10.0.0.0/8]\nmonitors:\n  - name: web\n    type: http\n    url: {}\n    interval_seconds: {interval}\n    conditions: [\"[STATUS] == 200\"]\n{db}  - name: backups\n    type: heartbeat\n    interval_seconds: 3600\nstatus_pages:\n  - slug: public\n    title: Public status\n    monitors: [web]\n",
                t.url("/")
            ),
        )
        .unwrap();
    };
    write(1, true);
    let mut s = TestServer::start_with(
        crate::bin(),
        Backend::Sqlite,
        &[],
        &["--config", path.to_str().unwrap()],
    )
    .await;
    let ms = list(&s).await;
    assert_eq!(ms.len(), 3, "{ms:?}");
    assert!(ms.iter().all(|m| m["managed_by"] == "config"));
    let web = ms.iter().find(|m| m["name"] == "web").unwrap()["id"]
        .as_i64()
        .unwrap();
    let hb = ms.iter().find(|m| m["name"] == "backups").unwrap().clone();
    wait_status(&s, web, "up", 15).await;
    let (st, p) = crate::json_of(reqwest::get(s.at("/status/public.json")).await.unwrap()).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["monitors"][0]["name"], "web");
    // The API does not edit what the file owns.
    let r = s
        .admin_client()
        .delete(s.at(&format!("/api/v1/monitors/{web}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Change the file: web's interval changes, db goes away; SIGHUP applies it in place.
    write(2, false);
    let pid = s.pid().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let ms = lookout_testkit::eventually("the reload to leave two monitors")
        .secs(10)
        .every(std::time::Duration::from_millis(200))
        .until(|| list(&s), |ms| ms.len() == 2)
        .await;
    let web2 = ms.iter().find(|m| m["name"] == "web").unwrap();
    assert_eq!(web2["id"], web, "same monitor, updated in place");
    assert_eq!(web2["interval_seconds"], 2);
    let hb2 = ms.iter().find(|m| m["name"] == "backups").unwrap();
    assert_eq!(
        hb2["push_url"], hb["push_url"],
        "the heartbeat keeps its push URL"
    );

    // Restarting with the same file changes nothing (idempotent).
    let before = list(&s).await;
    s.restart();
    let after = list(&s).await;
    let key = |ms: &[Value]| {
        ms.iter()
            .map(|m| (m["id"].clone(), m["updated_at"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&before), key(&after));

    // A bad file is refused whole and changes nothing.
    std::fs::write(&path, "monitors:\n  - name: web\n    type: http\n").unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &s.pid().unwrap().to_string()])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(list(&s).await.len(), 2);
}
