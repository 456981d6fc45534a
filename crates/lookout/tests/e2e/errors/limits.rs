//! Sentry ingest under hostile bodies: gzip bombs and huge bodies without a key stay within a
//! memory budget, unknown keys are refused before the body is read, and a spent in-flight budget
//! answers 503 with `Retry-After`.

use std::time::Duration;

use lookout_testkit::{Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

lookout_testkit::both!(
    unauthenticated_bombs_stay_within_the_memory_budget,
    unknown_keys_and_oversized_bodies_are_refused_before_the_body_is_read,
    a_spent_inflight_budget_answers_503_with_retry_after,
);

/// Peak resident memory allowed while the bombs below are served (debug build; idle is about
/// 60 MB of it; the in-flight budget is 64 MiB).
const PEAK_RSS_BUDGET_KIB: u64 = 150 * 1024;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS.
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

/// About 1 MiB of gzip that inflates to about 1 GB of zeros (concatenated gzip members).
fn gzip_bomb() -> Vec<u8> {
    let member = gzip(&vec![0u8; 10 << 20]);
    member.repeat((1 << 20) / member.len())
}

/// Posts concurrently; returns each status (0 when the server closed the connection early,
/// which is allowed: a refused body need not be read).
async fn post_all(reqs: Vec<reqwest::RequestBuilder>) -> Vec<u16> {
    let handles: Vec<_> = reqs
        .into_iter()
        .map(|r| tokio::spawn(async move { r.send().await.map_or(0, |res| res.status().as_u16()) }))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn unauthenticated_bombs_stay_within_the_memory_budget(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let pid = s.pid().unwrap();
    let c = reqwest::Client::new();
    let bomb = bytes_of(gzip_bomb());
    let gz = |body: reqwest::Body| {
        c.post(envelope_url(&s))
            .header("content-encoding", "gzip")
            .body(body)
    };
    let mut with_key_in_body = gzip(format!("{{\"dsn\":\"{}\"}}\n", s.dsn).as_bytes());
    with_key_in_body.extend_from_slice(&bomb);
    let huge = bytes_of(vec![b'x'; 150_000_000]);
    let attacks: Vec<(&str, Vec<reqwest::RequestBuilder>)> = vec![
        ("one gzip bomb without a key", vec![gz(bomb.clone().into())]),
        (
            "four gzip bombs at once",
            (0..4).map(|_| gz(bomb.clone().into())).collect(),
        ),
        (
            "a gzip bomb with an unknown key",
            vec![gz(bomb.clone().into()).header("x-sentry-auth", "Sentry sentry_key=deadbeef")],
        ),
        (
            "a gzip bomb behind a valid key in the envelope header",
            vec![gz(with_key_in_body.into())],
        ),
        (
            "eight 150 MB bodies without a key",
            (0..8)
                .map(|_| c.post(envelope_url(&s)).body(huge.clone()))
                .collect(),
        ),
    ];
    for (what, reqs) in attacks {
        reset_peak(pid);
        let statuses = post_all(reqs).await;
        let peak = status_kib(pid, "VmHWM");
        assert!(
            peak <= PEAK_RSS_BUDGET_KIB,
            "{what}: peak RSS {peak} KiB over the budget of {PEAK_RSS_BUDGET_KIB} KiB"
        );
        assert!(
            statuses
                .iter()
                .all(|st| *st != 200 && *st < 500 || *st == 503 || *st == 0),
            "{what}: {statuses:?}"
        );
    }
    // Still serving, and a real event still lands.
    let id = new_id();
    let res = post_envelope(
        &c,
        &s,
        envelope(
            &id,
            &exception_event(&id, "E", "after the bombs", "f", "r"),
            None,
        ),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
}

fn bytes_of(v: Vec<u8>) -> axum::body::Bytes {
    axum::body::Bytes::from(v)
}

/// Sends only the request head (no body) and reads the answer: the server must answer without
/// waiting for a body that never comes.
async fn answer_to_head(s: &TestServer, head: String) -> String {
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(15), sock.read(&mut buf))
        .await
        .expect("the server waited for the body before answering")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).to_string()
}

async fn unknown_keys_and_oversized_bodies_are_refused_before_the_body_is_read(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let unknown = answer_to_head(
        &s,
        "POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: Sentry sentry_key=0123456789abcdef\r\nContent-Encoding: gzip\r\nContent-Length: 100000000\r\n\r\n".into(),
    )
    .await;
    assert!(unknown.starts_with("HTTP/1.1 403"), "{unknown}");
    let in_query = answer_to_head(
        &s,
        "POST /api/1/envelope/?sentry_key=0123456789abcdef HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n".into(),
    )
    .await;
    assert!(in_query.starts_with("HTTP/1.1 403"), "{in_query}");
    let store_without_key = answer_to_head(
        &s,
        "POST /api/1/store/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n".into(),
    )
    .await;
    assert!(
        store_without_key.starts_with("HTTP/1.1 401"),
        "{store_without_key}"
    );
    // A known key with a declared size over the envelope cap (20 MiB by default).
    let too_big = answer_to_head(
        &s,
        format!(
            "POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: Sentry sentry_key={}\r\nContent-Length: 100000000\r\n\r\n",
            key_of(&s)
        ),
    )
    .await;
    assert!(too_big.starts_with("HTTP/1.1 413"), "{too_big}");
}

async fn a_spent_inflight_budget_answers_503_with_retry_after(backend: Backend) {
    let s = TestServer::start_with_config(
        crate::bin(),
        backend,
        "[limits]\nmax_envelope_bytes = 1048576\nmax_inflight_bytes = 2621440\n",
    )
    .await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let c = reqwest::Client::new();
    let id = new_id();
    let head = format!(
        "POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: Sentry sentry_key={}\r\nContent-Length: 1048576\r\n\r\n{{}}\n",
        key_of(&s)
    );
    // Uploads that declare the largest envelope and trickle: they hold what they sent, not what
    // they declared, so ten of them leave the budget to everyone else.
    let mut trickling = Vec::new();
    for _ in 0..10 {
        let mut t = tokio::net::TcpStream::connect(&addr).await.unwrap();
        t.write_all(head.as_bytes()).await.unwrap();
        trickling.push(t);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = post_envelope(
        &c,
        &s,
        envelope(&id, &exception_event(&id, "E", "v", "f", "r"), None),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "slow uploads pinned the budget");
    drop(trickling);
    // Uploads that really sent (nearly) the whole envelope do hold its bytes: a few of them
    // spend the budget, and then a new envelope is refused with 503 and Retry-After.
    // Each holds the buffer its bytes grew to (doubling from 64 KiB): 1 + 1 + 0.5 MiB fill the
    // 2.5 MiB budget; the smaller ones take what a concurrent request may have left.
    let mut fillers = vec![1048572, 1048572, 400_000, 200_000, 100_000, 50_000, 20_000].into_iter();
    let mut holders = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let res = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the budget never ran out"
        );
        if let Some(n) = fillers.next() {
            let mut h = tokio::net::TcpStream::connect(&addr).await.unwrap();
            h.write_all(head.as_bytes()).await.unwrap();
            h.write_all(&vec![b'x'; n]).await.unwrap();
            holders.push(h);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let res = post_envelope(
            &c,
            &s,
            envelope(&id, &exception_event(&id, "E", "v", "f", "r"), None),
        )
        .send()
        .await
        .unwrap();
        if res.status() != 200 {
            break res;
        }
    };
    let holder = holders;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    // Once the holder goes away the budget is back and the same event is accepted.
    drop(holder);
    lookout_testkit::eventually("the budget to come back")
        .secs(15)
        .until(
            || async {
                post_envelope(
                    &c,
                    &s,
                    envelope(&id, &exception_event(&id, "E", "v", "f", "r"), None),
                )
                .send()
                .await
                .unwrap()
                .status()
            },
            |st| *st == 200,
        )
        .await;
}
