//! Alerting and on-call end to end: real senders (PagerDuty Events API v2 over HTTP, the real
//! Prometheus Alertmanager), real receivers (an HTTP server checking the webhook's HMAC, a real
//! SMTP server), monitors and errors opening incidents, schedules answering who is on call, and
//! escalation timers running in the server.

mod alertmanager;
mod channels;
mod escalation;
mod inbound;
mod notify;
mod schedules;
mod sources;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use lookout_testkit::TestServer;
use serde_json::{json, Value};

use crate::json_of;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Clone, Default)]
struct Inner {
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; 200 once they run out.
    script: Arc<Mutex<Vec<u16>>>,
}

/// A local HTTP server that records every POST (a webhook receiver).
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Inner,
}

async fn record(State(i): State<Inner>, headers: HeaderMap, body: Bytes) -> StatusCode {
    i.got.lock().unwrap().push(Received { headers, body });
    let next = {
        let mut s = i.script.lock().unwrap();
        if s.is_empty() {
            200
        } else {
            s.remove(0)
        }
    };
    StatusCode::from_u16(next).unwrap()
}

impl Receiver {
    /// Starts one on a free port.
    pub async fn start() -> Receiver {
        let inner = Inner::default();
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state(inner.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        Receiver { addr, inner }
    }

    /// Its URL with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers these statuses to the next requests.
    pub fn answer(&self, statuses: &[u16]) {
        self.inner
            .script
            .lock()
            .unwrap()
            .extend_from_slice(statuses);
    }

    /// Everything received so far.
    pub fn got(&self) -> Vec<Received> {
        self.inner.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (up to `secs`).
    pub async fn wait(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests, got {}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A real SMTP server (aiosmtpd) on a free port, printing every message it receives.
pub struct Smtp {
    /// Its port.
    pub port: u16,
    out: Arc<Mutex<String>>,
    child: std::process::Child,
}

impl Smtp {
    /// Starts one and waits until it listens.
    pub async fn start() -> Smtp {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-c",
                "aiosmtpd.handlers.Debugging",
                "-l",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 -m aiosmtpd: {e}"));
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start (pip install aiosmtpd)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Smtp { port, out, child }
    }

    /// Everything received so far, as aiosmtpd printed it.
    pub fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits up to `secs` for the received text to satisfy `done`.
    pub async fn wait(&self, secs: u64, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.text();
            if done(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "no such email arrived: {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs JSON with the admin token, asserting `want`.
pub async fn post(s: &TestServer, path: &str, body: Value, want: u16) -> Value {
    let (st, v) = json_of(
        s.admin_client()
            .post(s.at(path))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, want, "POST {path}: {v}");
    v
}

/// GETs JSON with the admin token, asserting 200.
pub async fn get(s: &TestServer, path: &str) -> Value {
    let (st, v) = json_of(s.admin_client().get(s.at(path)).send().await.unwrap()).await;
    assert_eq!(st, 200, "GET {path}: {v}");
    v
}

/// Creates a user; their id.
pub async fn user(s: &TestServer, email: &str) -> i64 {
    let u = post(
        s,
        "/api/v1/users",
        json!({"email": email, "password": "correct horse battery", "role": "member"}),
        201,
    )
    .await;
    u["id"].as_i64().unwrap()
}

/// A user paged through a signed webhook to `r`, an escalation policy paging them, and a
/// PagerDuty-type integration on it: `(user id, escalation policy id, routing key)`.
pub async fn paged_user(s: &TestServer, r: &Receiver, secret: &str) -> (i64, i64, String) {
    let uid = user(s, "oncall@example.com").await;
    post(
        s,
        "/api/v1/channels",
        json!({"name": "pager hook", "type": "webhook", "url": r.url("/hook"),
               "secret": secret, "user_id": uid, "urgencies": ["high", "low"]}),
        201,
    )
    .await;
    let ep = post(
        s,
        "/api/v1/escalation-policies",
        json!({"name": "primary", "num_loops": 0, "escalation_rules": [
            {"escalation_delay_in_minutes": 30, "targets": [{"type": "user", "id": uid}]}]}),
        201,
    )
    .await;
    let ep = ep["id"].as_i64().unwrap();
    let i = post(
        s,
        "/api/v1/integrations",
        json!({"name": "monitoring", "type": "pagerduty", "escalation_policy_id": ep,
               "service": "checkout"}),
        201,
    )
    .await;
    (uid, ep, i["key"].as_str().unwrap().to_string())
}

/// Polls an incident until `pred` holds.
pub async fn wait_incident(
    s: &TestServer,
    id: i64,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = get(s, &format!("/api/v1/incidents/{id}")).await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "incident never got there: {v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the incident list until one matches `pred`.
pub async fn wait_any_incident(s: &TestServer, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let all = get(s, "/api/v1/incidents").await;
        if let Some(v) = all["items"].as_array().unwrap().iter().find(|v| pred(v)) {
            return v.clone();
        }
        assert!(Instant::now() < deadline, "no such incident: {all:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The timeline entry types of an incident, in order.
pub fn timeline_types(v: &Value) -> Vec<String> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}
