//! Maintenance windows, dependencies, public status pages, and what the API refuses.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::targets::closed_port;
use super::*;

lookout_testkit::both!(status_pages_show_monitors_incidents_and_feeds);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_and_a_down_parent_suppress_alerts_but_keep_results() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let dead = closed_port();
    let tcp = |name: &str, parent: Option<i64>| {
        let mut b = json!({"name": name, "type": "tcp", "host": "127.0.0.1", "port": dead, "interval_seconds": 1, "failure_threshold": 2});
        if let Some(p) = parent {
            b["parent_id"] = json!(p);
        }
        b
    };
    // Created paused, so the window exists before its first check (windows take effect at the
    // runners' next reload, within 2 s).
    let mut paused = tcp("in maintenance", None);
    paused["paused"] = json!(true);
    let quiet = create(&s, paused.clone()).await["id"].as_i64().unwrap();
    let now = chrono::Utc::now();
    let (st, w) = crate::json_of(
        s.admin_client()
            .post(s.at("/api/v1/maintenance-windows"))
            .json(&json!({"title": "DB upgrade", "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                          "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(), "monitor_ids": [quiet]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{w}");
    assert_eq!(w["active"], true);
    paused["paused"] = json!(false);
    let r = s
        .admin_client()
        .put(s.at(&format!("/api/v1/monitors/{quiet}")))
        .json(&paused)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = wait_for(&s, quiet, 15, |m| m["health"] == "down").await;
    assert_eq!(m["status"], "maintenance", "{m}");
    assert!(events(&s, "monitor.down", quiet).await.is_empty());
    let ch = changes(&s, quiet).await;
    assert_eq!(ch[0]["alerted"], false);
    assert!(
        ch[0]["reason"].as_str().unwrap().contains("maintenance"),
        "{ch:?}"
    );
    // Results are still recorded, marked as maintenance.
    let (_, r) = crate::json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/monitors/{quiet}/results")))
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
            .all(|r| r["maintenance"] == true),
        "{r}"
    );
    // Ending the window: the monitor is still down, so alerting hears of it now.
    let wid = w["id"].as_i64().unwrap();
    let r = s
        .admin_client()
        .delete(s.at(&format!("/api/v1/maintenance-windows/{wid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    wait_status(&s, quiet, "down", 15).await;
    wait_events(&s, "monitor.down", quiet, 15).await;

    // Dependencies: the child of a down parent goes down without paging anyone.
    let parent = create(&s, tcp("router", None)).await["id"]
        .as_i64()
        .unwrap();
    wait_status(&s, parent, "down", 15).await;
    let child = create(&s, tcp("app behind router", Some(parent))).await["id"]
        .as_i64()
        .unwrap();
    wait_status(&s, child, "down", 15).await;
    assert!(events(&s, "monitor.down", child).await.is_empty());
    let ch = changes(&s, child).await;
    assert!(
        ch[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("parent monitor {parent} is down")),
        "{ch:?}"
    );
}

async fn status_pages_show_monitors_incidents_and_feeds(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let t = super::targets::HttpTarget::start().await;
    let web = create(
        &s,
        json!({"name": "Website", "type": "http", "url": t.url("/"), "interval_seconds": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let api = create(&s, json!({"name": "API", "type": "tcp", "host": "127.0.0.1", "port": closed_port(), "interval_seconds": 1, "failure_threshold": 1})).await["id"].as_i64().unwrap();
    wait_status(&s, web, "up", 15).await;
    wait_status(&s, api, "down", 15).await;
    let admin = s.admin_client();
    let (st, p) = crate::json_of(
        admin
            .post(s.at("/api/v1/status-pages"))
            .json(&json!({"slug": "acme", "title": "Acme status", "description": "Our services", "monitor_ids": [web, api]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    let pid = p["id"].as_i64().unwrap();
    // The slug is unique.
    let r = admin
        .post(s.at("/api/v1/status-pages"))
        .json(&json!({"slug": "acme", "title": "Again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // The list is a page like every other list: `{items, next}`, and `next` leads on.
    let (st, second) = crate::json_of(
        admin
            .post(s.at("/api/v1/status-pages"))
            .json(&json!({"slug": "acme-eu", "title": "Acme EU"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{second}");
    let (st, first) = crate::json_of(
        admin
            .get(s.at("/api/v1/status-pages?limit=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["items"][0]["id"], pid);
    let next = first["next"].as_str().expect("a next cursor").to_string();
    let (_, rest) = crate::json_of(
        admin
            .get(s.at(&format!("/api/v1/status-pages?limit=1&cursor={next}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rest["items"][0]["id"], second["id"], "{rest}");
    assert!(rest["next"].is_null(), "{rest}");
    let (st, i) = crate::json_of(
        admin
            .post(s.at(&format!("/api/v1/status-pages/{pid}/incidents")))
            .json(&json!({"title": "API unreachable", "impact": "major", "body": "We are looking into it."}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{i}");
    let iid = i["id"].as_i64().unwrap();
    let (st, i) = crate::json_of(
        admin
            .post(s.at(&format!(
                "/api/v1/status-pages/{pid}/incidents/{iid}/updates"
            )))
            .json(&json!({"status": "resolved", "body": "Fixed <b>for good</b>."}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{i}");
    assert_eq!(i["status"], "resolved");
    assert!(i["resolved_at"].is_string());

    // Public, no login.
    let anon = reqwest::Client::new();
    let (st, j) = crate::json_of(anon.get(s.at("/status/acme.json")).send().await.unwrap()).await;
    assert_eq!(st, 200, "{j}");
    assert_eq!(j["title"], "Acme status");
    assert_eq!(j["status"], "degraded");
    let ms = j["monitors"].as_array().unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0]["name"], "Website");
    assert_eq!(ms[0]["status"], "up");
    assert_eq!(ms[1]["status"], "down");
    assert_eq!(ms[0]["days"].as_array().unwrap().len(), 90);
    assert_eq!(
        ms[0]["days"][89]["uptime"], 100.0,
        "today has data: {}",
        ms[0]["days"][89]
    );
    assert_eq!(j["incidents"][0]["updates"].as_array().unwrap().len(), 2);
    let html = anon.get(s.at("/status/acme")).send().await.unwrap();
    assert_eq!(html.status(), 200);
    let html = html.text().await.unwrap();
    assert!(
        html.contains("Acme status")
            && html.contains("Some systems are down")
            && html.contains("API unreachable"),
        "{html}"
    );
    assert!(
        html.contains("for good") && !html.contains("<b>for good</b>"),
        "incident text is escaped"
    );
    let feed = anon
        .get(s.at("/status/acme/feed.atom"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/atom+xml"));
    let feed = feed.text().await.unwrap();
    assert!(
        feed.contains("<feed")
            && feed.contains("API unreachable — resolved")
            && feed.contains("API unreachable — investigating"),
        "{feed}"
    );
    assert_eq!(
        anon.get(s.at("/status/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        anon.get(s.at("/status/nope.json"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Managing pages needs a login.
    assert_eq!(
        anon.get(s.at("/api/v1/status-pages"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_bad_monitors_and_keeps_secrets() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let admin = s.admin_client();
    for (body, field) in [
        (json!({"name": "x", "type": "http"}), "url"),
        (
            json!({"name": "x", "type": "http", "url": "http://a", "conditions": ["[STATUS] =="]}),
            "conditions",
        ),
        (
            json!({"name": "x", "type": "http", "url": "http://a", "host": "b"}),
            "host",
        ),
        (
            json!({"name": "x", "type": "tcp", "host": "a", "port": 1, "interval_seconds": 0}),
            "interval_seconds",
        ),
        (json!({"name": "x", "type": "ftp"}), "unknown variant"),
        (
            json!({"name": "x", "type": "http", "url": "http://a", "colour": 1}),
            "unknown field",
        ),
        (
            json!({"name": "x", "type": "cron", "schedule": "every day"}),
            "schedule",
        ),
        (
            json!({"name": "x", "type": "http", "url": "http://a", "parent_id": 999}),
            "parent_id",
        ),
    ] {
        let (st, v) = crate::json_of(
            admin
                .post(s.at("/api/v1/monitors"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 422, "{body} → {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{body} → {v}"
        );
    }
    let r = admin
        .post(s.at("/api/v1/monitors"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        admin
            .get(s.at("/api/v1/monitors/999"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reqwest::Client::new()
            .get(s.at("/api/v1/monitors"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // The target only answers 200 to the right credentials.
    let t = super::targets::HttpTarget::start().await;
    t.set(|b| b.require = Some("x-api-key: k3y".into()));
    let m = create(
        &s,
        json!({"name": "private", "type": "http", "url": t.url("/"), "bearer_token": "s3cret-token",
               "basic_auth": {"username": "u", "password": "hunter2"}, "headers": {"X-Api-Key": "k3y", "Accept": "text/plain"},
               "interval_seconds": 1, "failure_threshold": 1}),
    )
    .await;
    let text = m.to_string();
    assert!(
        !text.contains("s3cret-token") && !text.contains("hunter2") && !text.contains("k3y"),
        "{m}"
    );
    let id = m["id"].as_i64().unwrap();
    wait_status(&s, id, "up", 15).await;
    // Stored sealed: the database alone does not give the credentials away.
    let store = lookout_store::Store::open(&lookout_store::Store::sqlite_url_for_dir(s.data_dir()))
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT spec FROM monitors WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    store.close().await;
    assert!(
        !stored.contains("s3cret-token") && !stored.contains("hunter2") && !stored.contains("k3y"),
        "{stored}"
    );
    assert!(stored.contains("enc:v1:"), "{stored}");
    // Sending the redacted document back keeps the secrets; the rename applies.
    let mut edit = m.clone();
    // The document as fetched, with its read-only fields, goes back as is.
    edit["name"] = json!("private renamed");
    let (st, v) = crate::json_of(
        admin
            .put(s.at(&format!("/api/v1/monitors/{id}")))
            .json(&edit)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"], "private renamed");
    assert_eq!(v["bearer_token"], "********");
    // Still authenticated with the stored key after the edit: the checks keep passing.
    let after = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let m = wait_for(&s, id, 15, |m| {
        m["last_check_at"]
            .as_str()
            .is_some_and(|t| t > after.as_str())
    })
    .await;
    assert_eq!(m["last_ok"], true, "{m}");
    edit["paused"] = json!(true);
    let (st, v) = crate::json_of(
        admin
            .put(s.at(&format!("/api/v1/monitors/{id}")))
            .json(&edit)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "paused");
    // Deleting removes it.
    assert_eq!(
        admin
            .delete(s.at(&format!("/api/v1/monitors/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        admin
            .get(s.at(&format!("/api/v1/monitors/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}
