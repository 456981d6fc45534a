//! One outbound policy for every destination a user supplies, on the real binary: with loopback
//! denied in the config file, webhook, Slack and email channels, report deliveries and database
//! targets on 127.0.0.1 get nothing and their failures name the policy; with only 127.0.0.2
//! denied, a webhook or an uptime check whose allowed server redirects there is not followed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::{json, Value};

use crate::alerting::{wait_incident, Receiver, Smtp};
use crate::bin;

lookout_testkit::both!(
    channels_on_denied_networks_get_nothing_and_say_why,
    reports_to_denied_networks_fail_and_say_why,
    redirects_to_denied_addresses_are_not_followed,
);

/// Starts the server with `yaml` as its config file (kept alive with the returned directory).
async fn start_with_config(backend: Backend, yaml: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.yaml");
    std::fs::write(&path, yaml).unwrap();
    let s =
        TestServer::start_with(bin(), backend, &[], &["--config", path.to_str().unwrap()]).await;
    (s, dir)
}

const DENY_LOOPBACK: &str = "outbound:\n  deny_networks: [127.0.0.0/8, \"::1/128\"]\n";

/// An HTTP server counting every request, whatever its method (a redirect may turn a POST into
/// a GET).
struct Counter {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Counter {
    async fn start(ip: &str) -> Counter {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                "landed"
            }
        });
        let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        Counter { addr, hits }
    }

    fn url(&self) -> String {
        format!("http://{}/landed", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An HTTP server on 127.0.0.1 answering every request with a redirect to `to`.
async fn redirector(status: u16, to: String) -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(move || {
        let to = to.clone();
        async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [(axum::http::header::LOCATION, to)],
            )
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

/// Opens an incident paging `channels` through a generic-webhook integration; its id.
async fn page(s: &TestServer, channels: &[&Value]) -> i64 {
    let targets: Vec<Value> = channels
        .iter()
        .map(|c| json!({"type": "channel", "id": c["id"]}))
        .collect();
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "team", "escalation_rules": [
            {"escalation_delay_in_minutes": 30, "targets": targets}]}),
        )
        .await
        .expect(201);
    let i = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "gen", "type": "webhook", "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
    let r = reqwest::Client::new()
        .post(i["url"].as_str().unwrap())
        .json(&json!({"title": "disk full", "id": "d-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = s.client().get("/api/v1/incidents").await.expect(200);
    list["items"][0]["id"].as_i64().unwrap()
}

/// The messages of an incident's `notify_failed` timeline entries.
fn failures(v: &Value) -> Vec<String> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "notify_failed")
        .map(|e| e.to_string())
        .collect()
}

async fn channels_on_denied_networks_get_nothing_and_say_why(backend: Backend) {
    let (s, _dir) = start_with_config(backend, DENY_LOOPBACK).await;
    let hooks = Receiver::start().await;
    let smtp = Smtp::start().await;
    let webhook = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "hook", "type": "webhook", "url": hooks.url("/hook"), "secret": "s"}),
        )
        .await
        .expect(201);
    // A name is judged by what it resolves to, when the connection is made.
    let slack = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "chat", "type": "slack",
               "url": format!("http://localhost:{}/slack", hooks.addr.port())}),
        )
        .await
        .expect(201);
    let email = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "mail", "type": "email", "to": "ops@example.com",
               "from": "lookout@example.com", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
               "security": "none"}),
        )
        .await
        .expect(201);
    let id = page(&s, &[&webhook, &slack, &email]).await;
    let v = wait_incident(&s, id, 20, |v| failures(v).len() >= 3).await;
    for f in failures(&v) {
        assert!(f.contains("outbound policy"), "{f}");
    }
    let notes = v["notifications"].as_array().unwrap();
    assert_eq!(notes.len(), 3, "{v:#}");
    for n in notes {
        assert_ne!(n["status"], "sent", "{n}");
        assert!(
            n["last_error"].as_str().unwrap().contains("denied network"),
            "{n}"
        );
    }
    assert!(hooks.got().is_empty(), "{:?}", hooks.got());
    assert!(!smtp.text().contains("disk full"), "{}", smtp.text());
}

async fn reports_to_denied_networks_fail_and_say_why(backend: Backend) {
    let (s, _dir) = start_with_config(backend, DENY_LOOPBACK).await;
    let hooks = Receiver::start().await;
    let hook = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "reports hook", "type": "webhook", "url": hooks.url("/hook")}),
        )
        .await
        .expect(201);
    let r = s
        .admin_client()
        .put(s.at("/api/v1/report-settings"))
        .json(&json!({"channel_ids": [hook["id"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let made = s
        .client()
        .post("/api/v1/reports", json!({"kind": "daily", "deliver": true}))
        .await
        .expect(201);
    let rid = made["id"].as_i64().unwrap();
    let (c, path) = (s.client(), format!("/api/v1/reports/{rid}"));
    let kept = eventually("the delivery to fail")
        .until(
            || async { c.get(&path).await.expect(200) },
            |kept| kept["deliveries"][0]["last_error"].is_string(),
        )
        .await;
    let d = &kept["deliveries"][0];
    assert_ne!(d["status"], "sent", "{d}");
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("outbound policy"),
        "{d}"
    );
    assert!(hooks.got().is_empty());
}

async fn redirects_to_denied_addresses_are_not_followed(backend: Backend) {
    // 127.0.0.1 is allowed and 127.0.0.2 denied: both are this machine's loopback.
    let (s, _dir) =
        start_with_config(backend, "outbound:\n  deny_networks: [127.0.0.2/32]\n").await;
    let landing = Counter::start("127.0.0.2").await;
    // 307 keeps the POST, so a followed redirect would deliver the page to the landing server.
    let hop = redirector(307, landing.url()).await;
    let hook = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "hook", "type": "webhook", "url": format!("http://{hop}/hook")}),
        )
        .await
        .expect(201);
    let id = page(&s, &[&hook]).await;
    let v = wait_incident(&s, id, 20, |v| !failures(v).is_empty()).await;
    let f = &failures(&v)[0];
    assert!(
        f.contains("redirect refused") && f.contains("127.0.0.2") && f.contains("outbound policy"),
        "{f}"
    );

    // An uptime check is held to the same policy on every hop.
    let hop = redirector(302, landing.url()).await;
    let m = crate::uptime::create(
        &s,
        json!({"name": "web", "type": "http", "url": format!("http://{hop}/"),
               "interval_seconds": 1, "failure_threshold": 1}),
    )
    .await;
    let m = crate::uptime::wait_status(&s, m["id"].as_i64().unwrap(), "down", 15).await;
    let why = m["last_failure"].as_str().unwrap();
    assert!(
        why.contains("redirect refused") && why.contains("outbound policy"),
        "{m}"
    );
    assert_eq!(landing.hits(), 0, "a denied address received a request");
}

/// The checks of database target `id`, newest first, once there are `n` (within `secs`).
pub(crate) async fn db_checks(s: &TestServer, id: i64, n: usize, secs: u64) -> Vec<Value> {
    let (c, path) = (s.client(), format!("/api/v1/db-targets/{id}/checks"));
    eventually(format!("{n} checks of database target {id}"))
        .secs(secs)
        .every(Duration::from_millis(200))
        .until(
            || async {
                c.get(&path).await.expect(200)["items"]
                    .as_array()
                    .unwrap()
                    .clone()
            },
            |items| items.len() >= n,
        )
        .await
}

/// A database target on this machine's PostgreSQL is refused when loopback is denied: when it
/// is added, and at every check of one added before the policy changed. The policy is set with
/// `uptime.deny_networks`, the older spelling, which now applies to every destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_targets_on_denied_networks_are_refused() {
    let (mut s, dir) = start_with_config(Backend::Sqlite, "outbound:\n  deny_networks: []\n").await;
    let admin = lookout_testkit::pg_admin_url();
    let t = s
        .client()
        .post("/api/v1/db-targets", json!({"name": "shop", "url": admin}))
        .await
        .expect(201);
    let id = t["id"].as_i64().unwrap();
    assert_eq!(db_checks(&s, id, 1, 20).await[0]["ok"], true);

    std::fs::write(
        dir.path().join("lookout.yaml"),
        "uptime:\n  deny_networks: [127.0.0.0/8, \"::1/128\"]\n",
    )
    .unwrap();
    s.restart();
    let r = s
        .admin_client()
        .post(s.at(&format!("/api/v1/db-targets/{id}/check")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let checks = db_checks(&s, id, 2, 20).await;
    let newest = &checks[0];
    assert_eq!(newest["ok"], false, "{checks:?}");
    assert!(
        newest["error"]
            .as_str()
            .unwrap()
            .contains("outbound policy"),
        "{newest}"
    );
    // A new target is refused when it is added, by address or by a name resolving to one.
    for url in [admin.clone(), admin.replacen("127.0.0.1", "localhost", 1)] {
        let v = s
            .client()
            .post("/api/v1/db-targets", json!({"name": "other", "url": url}))
            .await
            .expect(422);
        assert!(v.to_string().contains("outbound policy"), "{v}");
    }
}
