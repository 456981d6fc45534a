//! What one client can make the server hold: `/metrics` series from made-up methods, slow-header
//! connections, thousands of idle connections under a low open-file limit, the connection
//! cap answering 503, and headers past the read buffer answering 431.

use std::time::{Duration, Instant};

use lookout_testkit::{eventually, Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

lookout_testkit::both!(
    made_up_methods_do_not_grow_metrics,
    a_slow_header_connection_is_closed_after_the_header_read_timeout,
    a_stalled_upload_is_closed_after_the_idle_timeout,
    healthz_answers_while_2000_idle_connections_are_open,
    past_the_connection_cap_a_new_connection_gets_503,
    oversized_headers_get_431_and_an_overlong_key_is_unknown,
);

fn addr(s: &TestServer) -> String {
    s.url.trim_start_matches("http://").to_string()
}

/// A server with a `[limits]` section in its config file.
async fn with_limits(backend: Backend, limits: &str) -> TestServer {
    TestServer::start_with_config(crate::bin(), backend, &format!("[limits]\n{limits}")).await
}

async fn made_up_methods_do_not_grow_metrics(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
    let mut buf = vec![0u8; 65536];
    for i in 0..2_000u32 {
        let req = format!("XM{i:08X} /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        if sock.write_all(req.as_bytes()).await.is_err()
            || sock.read(&mut buf).await.unwrap_or(0) == 0
        {
            sock = TcpStream::connect(addr(&s)).await.unwrap();
        }
    }
    let text = reqwest::get(s.at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("lookout_http_requests_total{"))
        .collect();
    assert!(
        series.iter().all(|l| !l.contains("method=\"XM")),
        "made-up methods became labels: {} series",
        series.len()
    );
    assert!(
        series.iter().any(|l| l.contains("method=\"other\"")),
        "{series:#?}"
    );
    assert!(series.len() < 20, "{series:#?}");
}

async fn a_slow_header_connection_is_closed_after_the_header_read_timeout(backend: Backend) {
    let s = with_limits(backend, "header_read_timeout = \"1s\"\n").await;
    let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header byte every 200 ms: never idle, never finished.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "a connection still sending its headers after 30 s was not closed"
        );
        if sock.write_all(b"X").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {} // an error answer (408) before closing is fine too
            Err(_) => {}
        }
    }
    // The server itself is fine.
    assert_eq!(reqwest::get(s.at("/healthz")).await.unwrap().status(), 200);
}

async fn a_stalled_upload_is_closed_after_the_idle_timeout(backend: Backend) {
    let s = with_limits(
        backend,
        "idle_timeout = \"1s\"\nheader_read_timeout = \"60s\"\n",
    )
    .await;
    let key = s
        .dsn
        .split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .unwrap()
        .to_string();
    let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
    // Headers and the first bytes of a 100 KB body, then nothing: the upload stalls.
    sock.write_all(
        format!(
            "POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: Sentry sentry_key={key}\r\nContent-Length: 100000\r\n\r\n{{}}\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut out)).await;
    assert!(
        closed.is_ok(),
        "a stalled upload was still open after 30 s (idle timeout 1 s)"
    );
    assert_eq!(reqwest::get(s.at("/healthz")).await.unwrap().status(), 200);
}

/// Runs `lookout` with a soft open-file limit of 1,024 (what many service managers still give):
/// the server has to raise it itself to keep serving thousands of connections.
fn low_nofile_wrapper(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("lookout-ulimit-1024");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nulimit -Sn 1024\nexec '{}' \"$@\"\n",
            crate::bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// This test process needs room for 2,000 sockets of its own.
fn raise_own_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        },
    );
}

async fn healthz_answers_while_2000_idle_connections_are_open(backend: Backend) {
    raise_own_nofile();
    let dir = tempfile::tempdir().unwrap();
    let bin = low_nofile_wrapper(dir.path());
    let s = TestServer::start(&bin, backend).await;
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let res = c.get(s.at("/healthz")).send().await;
    assert!(
        matches!(&res, Ok(r) if r.status() == 200),
        "/healthz with 2,000 idle connections open: {res:?}"
    );
    drop(idle);
}

async fn past_the_connection_cap_a_new_connection_gets_503(backend: Backend) {
    let s = with_limits(
        backend,
        "max_connections = 20\nheader_read_timeout = \"60s\"\n",
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    // The server accepts in order; ask until all 20 idle ones are counted.
    let answer = eventually("a new connection to get 503")
        .secs(15)
        .until(
            || async {
                let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
                let _ = sock
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await;
                let mut out = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out)).await;
                String::from_utf8_lossy(&out).to_string()
            },
            |text| text.starts_with("HTTP/1.1 503"),
        )
        .await;
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    // Closing the idle connections frees their places.
    drop(idle);
    eventually("the places to come back")
        .secs(15)
        .until(
            || async { reqwest::get(s.at("/healthz")).await.map(|r| r.status()) },
            |r| r.as_ref().is_ok_and(|st| *st == 200),
        )
        .await
        .unwrap();
}

/// The status line of what the server answers to `request` on a fresh connection.
async fn status_line(s: &TestServer, request: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr(s)).await.unwrap();
    // The server may answer (and close) before it has read everything we send.
    let _ = sock.write_all(request).await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

async fn oversized_headers_get_431_and_an_overlong_key_is_unknown(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    // 300 KiB of headers: past the 64 KiB a connection may buffer (hyper's default, ~400 KiB,
    // took it).
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(300 * 1024)
    );
    let line = status_line(&s, big.as_bytes()).await;
    assert!(
        line.contains(" 431 "),
        "answer to 300 KiB of headers: {line:?}"
    );
    // A key of 60,000 letters fits the buffer but is no key Lookout could have issued: refused
    // as unknown (403), like any wrong key, and not remembered.
    let long = format!(
        "POST /api/1/envelope/?sentry_key={} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}",
        "a".repeat(60_000)
    );
    let line = status_line(&s, long.as_bytes()).await;
    assert!(
        line.contains(" 403 "),
        "answer to a 60,000-letter key: {line:?}"
    );
    // The server is fine and ordinary requests still work.
    assert_eq!(reqwest::get(s.at("/healthz")).await.unwrap().status(), 200);
}
