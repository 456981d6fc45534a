//! Active checks against real local targets: thresholds, failure reasons, TLS, DNS, ICMP and
//! the outbound safety policy.

use std::time::Duration;

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::targets::{closed_port, dns_server, HttpTarget};
use super::*;

lookout_testkit::both!(http_monitors_go_down_at_the_threshold_and_recover);

async fn http_monitors_go_down_at_the_threshold_and_recover(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let t = HttpTarget::start().await;
    let m = create(
        &s,
        json!({"name": "api", "type": "http", "url": t.url("/health"), "interval_seconds": 1}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    assert_eq!(m["status"], "pending");
    assert_eq!(
        m["failure_threshold"],
        serde_json::Value::Null,
        "defaults are not stored: {m}"
    );
    wait_status(&s, id, "up", 15).await;

    t.set(|b| b.status = 503);
    // Two failures are not enough (threshold 3).
    let m = wait_for(&s, id, 15, |m| m["last_ok"] == false).await;
    assert_eq!(m["status"], "up", "one failure must not take it down: {m}");
    let m = wait_status(&s, id, "down", 15).await;
    assert_eq!(
        m["last_failure"].as_str().unwrap(),
        format!(
            "HTTP 503 from {} (expected [STATUS] < 400)",
            t.url("/health")
        ),
        "the reason names the answer, the target and the condition: {m}"
    );
    let down = events(&s, "monitor.down", id).await;
    assert_eq!(down.len(), 1, "{down:?}");
    assert!(down[0]["payload"]["reason"]
        .as_str()
        .unwrap()
        .contains("503"));

    t.set(|b| b.status = 200);
    let m = wait_status(&s, id, "up", 15).await;
    assert!(m["uptime"]["24h"].as_f64().unwrap() < 100.0, "{m}");
    assert_eq!(events(&s, "monitor.up", id).await.len(), 1);
    let ch = changes(&s, id).await;
    let path: Vec<(&str, &str)> = ch
        .iter()
        .rev()
        .map(|c| (c["from"].as_str().unwrap(), c["to"].as_str().unwrap()))
        .collect();
    assert_eq!(path.first(), Some(&("pending", "up")), "{path:?}");
    assert!(
        path.ends_with(&[("up", "down"), ("down", "up")]),
        "{path:?}"
    );

    // Results: newest first, failures carry their reason.
    let (st, r) = crate::json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/monitors/{id}/results?limit=100")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let items = r["items"].as_array().unwrap();
    assert!(items
        .iter()
        .any(|r| r["ok"] == false && r["message"].as_str().unwrap().contains("503")));
    assert!(items
        .iter()
        .any(|r| r["ok"] == true && r["latency_ms"].as_f64().unwrap() > 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_closed_and_wrong_targets_fail_with_their_reason() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let slow = HttpTarget::start().await;
    slow.set(|b| b.delay = Duration::from_secs(5));
    let silent = HttpTarget::start().await;
    silent.set(|b| b.silent = true);
    let wrong = HttpTarget::start().await;
    wrong.set(|b| b.body = r#"{"status":"DOWN","checks":[1,2]}"#.into());
    let base = json!({"type": "http", "interval_seconds": 1, "timeout_seconds": 1, "failure_threshold": 1});
    let with = |extra: serde_json::Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let slow_id = create(&s, with(json!({"name": "slow", "url": slow.url("/")}))).await["id"]
        .as_i64()
        .unwrap();
    let silent_id = create(&s, with(json!({"name": "silent", "url": silent.url("/")}))).await["id"]
        .as_i64()
        .unwrap();
    let closed_id = create(
        &s,
        json!({"name": "closed", "type": "tcp", "host": "127.0.0.1", "port": closed_port(), "interval_seconds": 1, "failure_threshold": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let wrong_id = create(
        &s,
        with(json!({"name": "wrong", "url": wrong.url("/"), "conditions": ["[STATUS] == 200", "len([BODY].checks) == 2", "[BODY].status == UP"]})),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let open = HttpTarget::start().await;
    let tcp_ok = create(
        &s,
        json!({"name": "open", "type": "tcp", "host": "127.0.0.1", "port": open.addr.port(), "interval_seconds": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();

    let reason = |m: &serde_json::Value| m["last_failure"].as_str().unwrap_or_default().to_string();
    let m = wait_status(&s, slow_id, "down", 15).await;
    assert!(reason(&m).contains("timed out"), "{m}");
    let m = wait_status(&s, silent_id, "down", 15).await;
    assert!(reason(&m).contains("timed out"), "{m}");
    let m = wait_status(&s, closed_id, "down", 15).await;
    assert!(
        reason(&m).starts_with("cannot connect to 127.0.0.1:")
            && reason(&m).ends_with(": connection refused"),
        "{m}"
    );
    let m = wait_status(&s, wrong_id, "down", 15).await;
    assert_eq!(
        reason(&m),
        "condition failed: [BODY].status (DOWN) == UP",
        "{m}"
    );
    wait_status(&s, tcp_ok, "up", 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_report_days_left_and_chain_validity() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let t = HttpTarget::start_tls(2).await;
    let port = t.addr.port();
    // Self-signed: the chain does not verify, so a verifying TLS monitor is down, yet it still
    // reports when the certificate expires.
    let strict = create(
        &s,
        json!({"name": "tls strict", "type": "tls", "host": "localhost", "port": port, "interval_seconds": 1, "failure_threshold": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let m = wait_status(&s, strict, "down", 15).await;
    assert!(
        m["last_failure"]
            .as_str()
            .unwrap()
            .contains("chain is not valid"),
        "{m}"
    );
    assert_eq!(m["certificate_chain_valid"], false, "{m}");
    let days = m["certificate_days_left"].as_i64().unwrap();
    assert!((1..=2).contains(&days), "{m}");

    // Without verification, the expiry condition is what fails, with the value seen.
    let lax = create(
        &s,
        json!({"name": "tls lax", "type": "tls", "url": format!("https://localhost:{port}/"), "verify_tls": false,
               "conditions": ["[CERTIFICATE_EXPIRATION] > 72h"], "interval_seconds": 1, "failure_threshold": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let m = wait_status(&s, lax, "down", 15).await;
    assert!(
        m["last_failure"]
            .as_str()
            .unwrap()
            .contains("[CERTIFICATE_EXPIRATION]"),
        "{m}"
    );

    // An HTTPS monitor reads the certificate too and warns that it expires soon.
    let https = create(
        &s,
        json!({"name": "https", "type": "http", "url": format!("https://localhost:{port}/"), "verify_tls": false,
               "interval_seconds": 1, "expiry_warning_days": 14}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let m = wait_status(&s, https, "up", 15).await;
    assert!(m["certificate_days_left"].as_i64().unwrap() <= 2, "{m}");
    let warned = events(&s, "monitor.certificate_expiring", https).await;
    assert_eq!(warned.len(), 1, "one warning per certificate: {warned:?}");
    assert!(warned[0]["payload"]["days_left"].as_i64().unwrap() <= 2);
    // A verifying HTTPS monitor refuses the self-signed certificate.
    let verified = create(
        &s,
        json!({"name": "https strict", "type": "http", "url": format!("https://localhost:{port}/"),
               "interval_seconds": 1, "failure_threshold": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let m = wait_status(&s, verified, "down", 15).await;
    assert_eq!(
        m["last_failure"].as_str().unwrap(),
        format!(
            "TLS handshake failed with localhost:{port}: invalid peer certificate: UnknownIssuer"
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_checks_judge_the_rcode_and_the_answers() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let dns = dns_server(&[("app.test.", "10.1.2.3".parse().unwrap())]).await;
    let base = |name: &str, host: &str, extra: serde_json::Value| {
        let mut b = json!({"name": name, "type": "dns", "host": host, "resolver": dns.to_string(),
                           "interval_seconds": 1, "failure_threshold": 1});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let ok = create(
        &s,
        base("app", "app.test", json!({"expected_answers": ["10.1.2.3"]})),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let wrong = create(
        &s,
        base(
            "app wrong",
            "app.test",
            json!({"expected_answers": ["10.9.9.9"]}),
        ),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let missing = create(&s, base("missing", "missing.test", json!({}))).await["id"]
        .as_i64()
        .unwrap();
    let nx = create(
        &s,
        base(
            "nx expected",
            "missing.test",
            json!({"resolver": "127.0.0.1", "port": dns.port(), "conditions": ["[DNS_RCODE] == NXDOMAIN"]}),
        ),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    wait_status(&s, ok, "up", 15).await;
    wait_status(&s, nx, "up", 15).await;
    let m = wait_status(&s, wrong, "down", 15).await;
    assert!(
        m["last_failure"]
            .as_str()
            .unwrap()
            .contains("10.9.9.9 not in [10.1.2.3]"),
        "{m}"
    );
    let m = wait_status(&s, missing, "down", 15).await;
    assert!(
        m["last_failure"]
            .as_str()
            .unwrap()
            .contains("[DNS_RCODE] (NXDOMAIN) == NOERROR"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_pings_loopback_and_policy_refuses_metadata_addresses() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let ping = create(
        &s,
        json!({"name": "lo", "type": "icmp", "host": "127.0.0.1", "interval_seconds": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let m = wait_status(&s, ping, "up", 15).await;
    assert!(m["last_latency_ms"].as_f64().unwrap() >= 0.0, "{m}");
    let meta = create(
        &s,
        json!({"name": "metadata", "type": "http", "url": "http://169.254.169.254/latest/meta-data/", "interval_seconds": 1, "failure_threshold": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let m = wait_status(&s, meta, "down", 15).await;
    assert!(
        m["last_failure"]
            .as_str()
            .unwrap()
            .contains("denied network"),
        "{m}"
    );
}
