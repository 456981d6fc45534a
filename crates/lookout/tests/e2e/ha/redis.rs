//! The optional Redis: two replicas on one PostgreSQL database and a real `redis-server` of the
//! test's own. With Redis, a project's Sentry rate limit, the login throttle and the
//! password-reset limit are counted across the replicas exactly, an NRQL answer computed by one
//! replica is served by the other from the cache, and commits are announced on the wake-up
//! channel. Redis is then stopped mid-run: ingest, logins and queries keep working with
//! per-replica limits and no cache. When it comes back on the same port, the limits are shared
//! again.

use std::process::{Child, Command, Stdio};

use super::*;
use crate::errors::{envelope, exception_event, new_id};
use crate::foundation::sessions::login_form;

/// A `redis-server` on a port of its own, keeping nothing on disk; killed on drop.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    fn start(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup-test-deps installs it)");
        let s = RedisServer {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A new project with `limit` events per minute: its id and DSN key.
async fn limited_project(s: &TestServer, name: &str, limit: i64) -> (i64, String) {
    let admin = s.admin_client();
    let p: serde_json::Value = admin
        .post(s.at("/api/v1/projects"))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = p["id"].as_i64().unwrap();
    let r = admin
        .patch(s.at(&format!("/api/v1/projects/{id}")))
        .json(&json!({"rate_limit_per_minute": limit}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dsn = p["dsn"].as_str().unwrap();
    let key = dsn.split("://").nth(1).unwrap().split('@').next().unwrap();
    (id, key.to_string())
}

/// Waits, if needed, until the wall-clock minute has at least 15 s left, so a burst of events
/// stays inside one rate-limit window (the windows are whole minutes).
async fn early_in_a_minute() {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if s >= 45 {
        tokio::time::sleep(Duration::from_secs(61 - s)).await;
    }
}

/// Sends `n` events to project `id` alternately through each server; how many were accepted
/// (200) — every other answer must be a 429 — and the slowest answer.
async fn burst(servers: &[&TestServer], id: i64, key: &str, n: usize) -> (usize, Duration) {
    let c = reqwest::Client::new();
    let mut accepted = 0;
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let s = servers[i % servers.len()];
        let eid = new_id();
        let body = envelope(&eid, &exception_event(&eid, "Burst", "v", "f", "r"), None);
        let started = Instant::now();
        let r = c
            .post(s.at(&format!("/api/{id}/envelope/")))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(body)
            .send()
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        match r.status().as_u16() {
            200 => accepted += 1,
            429 => {}
            other => panic!("ingest answered {other}"),
        }
    }
    (accepted, slowest)
}

/// One login attempt on `s`: the status (401 wrong, 429 slowed down, 303 signed in).
async fn login(s: &TestServer, email: &str, password: &str) -> u16 {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = s.at("/login");
    let (cookie, csrf) = login_form(&c, &url).await;
    let form = [
        ("email", email),
        ("password", password),
        ("csrf", csrf.as_str()),
        ("next", "/"),
    ];
    c.post(&url)
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An NRQL query on `s`: the answer and the `X-Lookout-Cache` header.
async fn query(s: &TestServer, nrql: &str) -> (serde_json::Value, String) {
    let r = s
        .admin_client()
        .post(s.at("/api/v1/query"))
        .json(&json!({"nrql": nrql}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cache = r
        .headers()
        .get("x-lookout-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.json().await.unwrap(), cache)
}

/// Waits until both replicas subscribe to the wake-up channel (again, after a restart).
async fn until_both_listen(port: u16) {
    let start = Instant::now();
    loop {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "pubsub", "numsub", "lookout:wake"])
            .output()
            .expect("redis-cli");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.lines().nth(1).map(str::trim) == Some("2") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "both replicas listen for wake-ups within 20 s: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the Operations API says of Redis: (configured, reachable).
async fn redis_on_operations(s: &TestServer) -> (bool, bool) {
    let v: serde_json::Value = s
        .admin_client()
        .get(s.at("/api/v1/operations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["redis"]["configured"].as_bool().unwrap(),
        v["redis"]["reachable"].as_bool().unwrap(),
    )
}

/// Waits until `s` reads its own answers back from the cache (it uses Redis again).
async fn until_cache_answers(s: &TestServer) {
    let start = Instant::now();
    for minutes in 2.. {
        let nrql = format!("SELECT count(*) FROM Transaction SINCE {minutes} minutes ago");
        query(s, &nrql).await;
        if query(s, &nrql).await.1 == "hit" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the replica did not use Redis again within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shares_limits_cache_and_wake_ups_and_its_loss_only_loosens_them() {
    let mut redis = RedisServer::start(free_port());
    let url = redis.url();
    let env: Vec<(&str, &str)> = SMALL_POOL
        .iter()
        .copied()
        .chain([("LOOKOUT_REDIS_URL", url.as_str())])
        .collect();
    let a =
        TestServer::start_with_env(crate::bin(), lookout_testkit::Backend::Postgres, &env).await;
    let b = a.replica().await;

    // Both replicas listen for each other's wake-ups.
    until_both_listen(redis.port).await;

    // Commits are announced to the other replicas on the wake-up channel.
    let mut listener = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "subscribe", "lookout:wake"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(redis_on_operations(&a).await, (true, true));

    // Shared rate limit: 10 a minute for the project, whichever replica takes the events.
    let (p1, k1) = limited_project(&a, "shared-limit", 10).await;
    early_in_a_minute().await;
    let (accepted, slowest) = burst(&[&a, &b], p1, &k1, 30).await;
    println!("with Redis: {accepted} of 30 accepted at a limit of 10 over two replicas (slowest answer {slowest:?})");
    assert_eq!(accepted, 10, "the limit is counted across replicas");

    let _ = listener.kill();
    let out = listener.wait_with_output().unwrap();
    let heard = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        heard.contains("|ingest_items"),
        "ingest commits are announced to the other replicas: {heard}"
    );

    // Shared login throttle: three free failures on A, then two on B (the second after the
    // 1 s wait the first left), and A makes the next attempt wait 2 s: without Redis, A would
    // have seen only its own three failures and checked the password.
    let ghost = "ghost@example.com";
    for _ in 0..3 {
        assert_eq!(login(&a, ghost, "wrong").await, 401);
    }
    assert_eq!(login(&b, ghost, "wrong").await, 401);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(login(&b, ghost, "wrong").await, 401);
    assert_eq!(
        login(&a, ghost, "wrong").await,
        429,
        "B's failures count on A"
    );

    // Shared password-reset limit: five requests a minute per client address, whichever
    // replica takes them (without Redis, each replica would allow five).
    let reset = |s: &TestServer| {
        let url = s.at("/api/v1/password-reset");
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&serde_json::json!({"email": "nobody@example.com"}))
                .send()
                .await
                .expect("reset request")
                .status()
                .as_u16()
        }
    };
    for s in [&a, &a, &a, &b, &b] {
        assert_eq!(reset(s).await, 202, "under the shared limit");
    }
    assert_eq!(reset(&a).await, 429, "B's reset requests count on A");
    assert_eq!(reset(&b).await, 429);

    // Shared cache: what A computed, B serves.
    let nrql = "SELECT count(*) FROM Transaction SINCE 1 hour ago";
    let (first, c1) = query(&a, nrql).await;
    let (second, c2) = query(&b, nrql).await;
    println!("NRQL cache: A {c1}, then B {c2}");
    assert_eq!((c1.as_str(), c2.as_str()), ("miss", "hit"));
    assert_eq!(first, second);

    // Redis stops mid-run. Nothing waits on it: ingest, logins and queries go on.
    redis.stop();
    assert_eq!(
        redis_on_operations(&b).await,
        (true, false),
        "the Operations page says Redis is unreachable"
    );
    let (p2, k2) = limited_project(&a, "local-limit", 5).await;
    early_in_a_minute().await;
    let (accepted, slowest) = burst(&[&a, &b], p2, &k2, 30).await;
    println!("Redis stopped: {accepted} of 30 accepted at a limit of 5 per replica (slowest answer {slowest:?})");
    assert_eq!(accepted, 10, "each replica counts its own share");
    assert!(
        slowest < Duration::from_secs(2),
        "ingest does not hang on a stopped Redis: {slowest:?}"
    );
    assert_eq!(
        login(&a, "admin@example.com", "correct horse battery").await,
        303
    );
    assert_eq!(
        login(&b, "admin@example.com", "correct horse battery").await,
        303
    );
    let (third, c3) = query(&b, nrql).await;
    assert_eq!(c3, "miss", "no cache without Redis");
    assert_eq!(third["columns"], first["columns"]);

    // Redis comes back on the same port: the limits are shared again.
    let _redis = RedisServer::start(redis.port);
    let back = Instant::now();
    for s in [&a, &b] {
        until_cache_answers(s).await;
    }
    until_both_listen(redis.port).await;
    println!(
        "Redis back: both replicas use it again after {:?}",
        back.elapsed()
    );
    let (p3, k3) = limited_project(&a, "shared-again", 4).await;
    early_in_a_minute().await;
    let (accepted, _) = burst(&[&a, &b], p3, &k3, 20).await;
    println!("Redis back: {accepted} of 20 accepted at a limit of 4 over two replicas");
    assert_eq!(accepted, 4, "shared again once Redis is back");
    stop_all(vec![a, b]);
}
