//! Passive monitors: heartbeats that stop pinging, and cron jobs reporting check-ins over
//! Sentry's HTTP form and in envelopes.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::*;

lookout_testkit::both!(
    heartbeats_go_down_when_pings_stop_and_up_when_they_return,
    cron_check_ins_over_http_judge_runs
);

async fn heartbeats_go_down_when_pings_stop_and_up_when_they_return(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let m = create(
        &s,
        json!({"name": "nightly export", "type": "heartbeat", "interval_seconds": 1, "grace_seconds": 1, "failure_threshold": 2}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    let push = m["push_url"].as_str().unwrap().to_string();
    assert!(push.contains("/api/v1/push/"), "{m}");
    // Never pinged: pending until interval + grace has passed, then failing checks take it down.
    let m = wait_status(&s, id, "down", 15).await;
    assert!(
        m["last_failure"]
            .as_str()
            .unwrap()
            .contains("no ping within 2 s"),
        "{m}"
    );
    assert_eq!(events(&s, "monitor.down", id).await.len(), 1);

    // Pings by GET and POST bring it back.
    let c = reqwest::Client::new();
    let pinger = tokio::spawn({
        let (c, push) = (c.clone(), push.clone());
        async move {
            for i in 0..40 {
                let r = if i % 2 == 0 {
                    c.get(&push)
                } else {
                    c.post(&push)
                };
                assert_eq!(r.send().await.unwrap().status(), 200);
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    });
    wait_status(&s, id, "up", 15).await;
    assert_eq!(events(&s, "monitor.up", id).await.len(), 1);
    pinger.abort();
    // A late heartbeat: silence again takes it down again.
    let m = wait_status(&s, id, "down", 15).await;
    assert!(
        m["last_failure"].as_str().unwrap().contains("last ping"),
        "{m}"
    );
    assert_eq!(
        c.get(format!("{}x", &push[..push.len() - 1]))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

async fn cron_check_ins_over_http_judge_runs(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    // Every 2 s with a 1 s margin: the slots pass quickly, so missed runs show up fast.
    let m = create(
        &s,
        json!({"name": "Billing sync", "type": "cron", "interval_seconds": 2, "grace_seconds": 1}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    assert_eq!(m["slug"], "billing-sync");
    let push = m["push_url"].as_str().unwrap().to_string();
    assert!(push.contains("/cron/billing-sync/"), "{m}");
    let m = wait_status(&s, id, "down", 20).await;
    assert!(
        m["last_failure"].as_str().unwrap().starts_with("missed"),
        "{m}"
    );
    assert!(!events(&s, "cron.missed", id).await.is_empty());

    // The job reports: in_progress then ok with the same id, every slot.
    let c = reqwest::Client::new();
    let reporter = tokio::spawn({
        let (c, push) = (c.clone(), push.clone());
        async move {
            for i in 0..60 {
                let run = format!("run-{i}");
                let r = c
                    .get(format!("{push}?status=in_progress&check_in_id={run}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                let r = c
                    .post(format!("{push}?status=ok&check_in_id={run}&duration=0.2"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    });
    let m = wait_status(&s, id, "up", 20).await;
    assert_eq!(m["last_ok"], true, "{m}");
    reporter.abort();
    // An error report fails the monitor with cron.failed.
    let r = c.get(format!("{push}?status=error")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    wait_events(&s, "cron.failed", id, 20).await;
    let (_, r) = crate::json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/monitors/{id}/results?limit=1000")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        r["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["message"] == "the job reported an error"),
        "{r}"
    );
    assert_eq!(monitor(&s, id).await["status"], "down");

    // Wrong slug, wrong key, bad status.
    let bad_slug = push.replace("billing-sync", "nope");
    assert_eq!(c.get(&bad_slug).send().await.unwrap().status(), 404);
    let parts: Vec<&str> = push.trim_end_matches('/').rsplitn(2, '/').collect();
    let bad_key = format!("{}/{}/", parts[1], "0".repeat(32));
    assert_eq!(c.get(&bad_key).send().await.unwrap().status(), 403);
    assert_eq!(
        c.get(format!("{push}?status=done"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_check_ins_with_monitor_config_create_the_monitor() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let c = reqwest::Client::new();
    let (base, key_project) = s.dsn.split_once('@').unwrap();
    let key = base.rsplit('/').next().unwrap();
    let project = key_project.rsplit('/').next().unwrap();
    let envelope = |status: &str, id: &str| {
        let item = json!({"check_in_id": id, "monitor_slug": "etl-hourly", "status": status, "duration": 1.5,
            "environment": "production",
            "monitor_config": {"schedule": {"type": "crontab", "value": "0 * * * *"}, "checkin_margin": 5,
                               "max_runtime": 10, "timezone": "Europe/Paris"}})
        .to_string();
        format!(
            "{{}}\n{{\"type\":\"check_in\",\"length\":{}}}\n{item}\n",
            item.len()
        )
    };
    for (status, id) in [("in_progress", "a1"), ("ok", "a1")] {
        let r = c
            .post(s.at(&format!("/api/{project}/envelope/")))
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={key}, sentry_version=7"),
            )
            .body(envelope(status, id))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let m = lookout_testkit::eventually("etl-hourly to be created and pass")
        .secs(20)
        .every(std::time::Duration::from_millis(200))
        .poll(|| async {
            let list = s.client().get("/api/v1/monitors").await.expect(200);
            let found = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["slug"] == "etl-hourly" && m["last_ok"] == true)
                .cloned();
            found.ok_or(list)
        })
        .await;
    assert_eq!(m["type"], "cron");
    assert_eq!(m["schedule"], "0 * * * *");
    assert_eq!(m["timezone"], "Europe/Paris");
    assert_eq!(m["grace_seconds"], 300);
    assert_eq!(m["max_runtime_seconds"], 600);
    assert_eq!(m["status"], "up");
    assert_eq!(m["last_latency_ms"], 1500.0);
}
