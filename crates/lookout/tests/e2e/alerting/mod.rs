//! Alerting and on-call end to end: real senders (PagerDuty Events API v2 over HTTP, the real
//! Prometheus Alertmanager), real receivers (an HTTP server checking the webhook's HMAC, a real
//! SMTP server), monitors and errors opening incidents, schedules answering who is on call, and
//! escalation timers running in the server.

mod alertmanager;
mod channels;
mod enable;
mod escalation;
mod inbound;
mod incident_actions;
mod notification_rules;
mod notify;
mod quickstart;
mod schedules;
mod sources;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use lookout_testkit::{eventually, TestServer};
use serde_json::{json, Value};

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
        eventually(format!("{n} requests at the receiver"))
            .secs(secs)
            .every(Duration::from_millis(50))
            .until(|| async { self.got() }, |got| got.len() >= n)
            .await
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
        eventually("aiosmtpd to listen (pip install aiosmtpd)")
            .secs(15)
            .poll(|| async { std::net::TcpStream::connect(("127.0.0.1", port)) })
            .await;
        Smtp { port, out, child }
    }

    /// Everything received so far, as aiosmtpd printed it.
    pub fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits up to `secs` for the received text to satisfy `done`.
    pub async fn wait(&self, secs: u64, done: impl Fn(&str) -> bool) -> String {
        eventually("such an email to arrive")
            .secs(secs)
            .until(|| async { self.text() }, |t| done(t))
            .await
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a member (password `correct horse battery`); their id.
pub async fn user(s: &TestServer, email: &str) -> i64 {
    s.client().user(email, "member").await
}

/// A user paged through a signed webhook to `r`, an escalation policy paging them, and a
/// PagerDuty-type integration on it: `(user id, escalation policy id, routing key)`.
pub async fn paged_user(s: &TestServer, r: &Receiver, secret: &str) -> (i64, i64, String) {
    let uid = user(s, "oncall@example.com").await;
    s.client()
        .post(
            "/api/v1/channels",
            json!({"name": "pager hook", "type": "webhook", "url": r.url("/hook"),
               "secret": secret, "user_id": uid, "urgencies": ["high", "low"]}),
        )
        .await
        .expect(201);
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "primary", "num_loops": 0, "escalation_rules": [
            {"escalation_delay_in_minutes": 30, "targets": [{"type": "user", "id": uid}]}]}),
        )
        .await
        .expect(201);
    let ep = ep["id"].as_i64().unwrap();
    let i = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "monitoring", "type": "pagerduty", "escalation_policy_id": ep,
               "service": "checkout"}),
        )
        .await
        .expect(201);
    (uid, ep, i["key"].as_str().unwrap().to_string())
}

/// Polls an incident until `pred` holds.
pub async fn wait_incident(
    s: &TestServer,
    id: i64,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let (c, path) = (s.client(), format!("/api/v1/incidents/{id}"));
    eventually(format!("incident {id} to get there"))
        .secs(secs)
        .until(|| c.get(&path), |r| r.status == 200 && pred(&r.json))
        .await
        .json
}

/// Polls the incident list until one matches `pred`.
pub async fn wait_any_incident(s: &TestServer, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    eventually("such an incident")
        .secs(secs)
        .poll(|| async {
            let all = s.client().get("/api/v1/incidents").await.expect(200);
            let found = all["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| pred(v))
                .cloned();
            found.ok_or(all)
        })
        .await
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
