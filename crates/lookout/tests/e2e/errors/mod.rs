//! End-to-end tests of error tracking: Sentry ingest in every encoding and auth form, grouping
//! into issues, the issue lifecycle, merges, bad input, and durability of acknowledged events.

mod ingest;
mod issues;
mod limits;
mod mentions;
mod triage;

use lookout_testkit::{eventually, TestServer};
use serde_json::{json, Value};
use std::io::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) fn key_of(s: &TestServer) -> String {
    s.dsn
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string()
}

pub(crate) fn new_id() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    t ^ (u128::from(N.fetch_add(1, Ordering::Relaxed)) << 64)
}

/// A Python-shaped error event: `ty: value` raised in `function` of `module`.
pub(crate) fn exception_event(
    id: &str,
    ty: &str,
    value: &str,
    function: &str,
    release: &str,
) -> Value {
    json!({
        "event_id": id, "level": "error", "platform": "python", "release": release, "environment": "prod",
        "timestamp": chrono_now(),
        "user": {"id": format!("user-{}", &id[..4])},
        "tags": {"region": "eu"},
        "exception": {"values": [{"type": ty, "value": value, "module": null,
            "mechanism": {"type": "generic", "handled": true},
            "stacktrace": {"frames": [
                {"filename": "app.py", "module": "app", "function": "main", "lineno": 3, "context_line": "handle()", "in_app": true},
                {"filename": "app.py", "module": "app", "function": function, "lineno": 9, "context_line": "return 1 / 0", "in_app": true}
            ]}}]}
    })
}

fn chrono_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub(crate) fn envelope(id: &str, event: &Value, dsn: Option<&str>) -> Vec<u8> {
    let payload = event.to_string();
    let mut header = json!({"event_id": id, "sent_at": "2026-11-28T12:00:00Z"});
    if let Some(d) = dsn {
        header["dsn"] = json!(d);
    }
    format!(
        "{header}\n{{\"type\":\"event\",\"length\":{}}}\n{payload}\n",
        payload.len()
    )
    .into_bytes()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub(crate) fn envelope_url(s: &TestServer) -> String {
    s.at("/api/1/envelope/")
}

/// Waits until the project's issue list (status=all) satisfies `done`.
pub(crate) async fn wait_issues(s: &TestServer, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let c = s.client();
    eventually("the issue list to reach the expected state")
        .until(
            || async {
                let page = c
                    .get("/api/v1/projects/1/issues?status=all&limit=1000")
                    .await;
                page.json["items"].as_array().cloned().unwrap_or_default()
            },
            |items| done(items),
        )
        .await
}

/// Sends a raw HTTP/1.1 request with a chunked body and no Content-Type, as @sentry/node does.
async fn post_chunked(s: &TestServer, path: &str, body: &[u8]) -> u16 {
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    for chunk in body.chunks(100) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    sock.write_all(&req).await.unwrap();
    let mut resp = String::new();
    sock.read_to_string(&mut resp).await.unwrap();
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A POST of `body` to the default project's envelope endpoint with its key in `X-Sentry-Auth`,
/// as sentry-python sends it.
pub(crate) fn post_envelope(
    c: &reqwest::Client,
    s: &TestServer,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    c.post(envelope_url(s))
        .header("x-sentry-auth", format!("Sentry sentry_key={}", key_of(s)))
        .body(body)
}
