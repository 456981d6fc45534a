//! End-to-end tests of error tracking: Sentry ingest in every encoding and auth form, grouping
//! into issues, the issue lifecycle, merges, bad input, and durability of acknowledged events.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::json_of;

crate::both!(
    every_encoding_and_auth_form_lands_in_one_issue,
    bad_input_gets_sentrys_statuses_and_stores_nothing,
    resolve_regress_ignore_and_merge,
    acknowledged_events_survive_kill_9,
    legacy_store_and_dsn_prefixes_work,
    project_rate_limits_answer_429_with_sentry_headers,
    release_health_counts_sessions_and_new_issues,
    unmerge_splits_an_issue_back_out,
);

fn key_of(s: &TestServer) -> String {
    s.dsn
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string()
}

fn new_id() -> String {
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
fn exception_event(id: &str, ty: &str, value: &str, function: &str, release: &str) -> Value {
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

fn envelope(id: &str, event: &Value, dsn: Option<&str>) -> Vec<u8> {
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

fn envelope_url(s: &TestServer) -> String {
    s.at("/api/1/envelope/")
}

/// Waits until the project's issue list (status=all) satisfies `done`.
async fn wait_issues(s: &TestServer, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let c = s.admin_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = json_of(
            c.get(s.at("/api/v1/projects/1/issues?status=all&limit=1000"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if done(&items) {
            return items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "issues never reached the expected state: {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

async fn every_encoding_and_auth_form_lands_in_one_issue(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let key = key_of(&s);
    let c = reqwest::Client::new();
    let auth = format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=test/1.0");
    let ev = |id: &str| {
        exception_event(
            id,
            "ZeroDivisionError",
            "division by zero",
            "divide",
            "shop@1.0.0",
        )
    };
    let send = |body: Vec<u8>,
                encoding: Option<&'static str>,
                query: Option<String>,
                header: Option<(&'static str, String)>| {
        let mut url = envelope_url(&s);
        if let Some(q) = query {
            url = format!("{url}?{q}");
        }
        let mut r = c.post(url).body(body);
        if let Some(e) = encoding {
            r = r.header("content-encoding", e);
        }
        if let Some((h, v)) = header {
            r = r.header(h, v);
        }
        r.send()
    };
    let id1 = new_id();
    let r = send(
        gzip(&envelope(&id1, &ev(&id1), None)),
        Some("gzip"),
        None,
        Some(("x-sentry-auth", auth.clone())),
    )
    .await
    .unwrap();
    let (st, body) = json_of(r).await;
    assert_eq!(
        (st.as_u16(), body["id"].as_str()),
        (200, Some(id1.as_str()))
    );
    let id2 = new_id();
    let mut br = Vec::new();
    brotli::CompressorWriter::new(&mut br, 4096, 4, 22)
        .write_all(&envelope(&id2, &ev(&id2), None))
        .unwrap();
    assert_eq!(
        send(
            br,
            Some("br"),
            Some(format!("sentry_version=7&sentry_key={key}")),
            None
        )
        .await
        .unwrap()
        .status(),
        200
    );
    let id3 = new_id();
    let zs = zstd::stream::encode_all(envelope(&id3, &ev(&id3), None).as_slice(), 3).unwrap();
    assert_eq!(
        send(
            zs,
            Some("zstd"),
            None,
            Some(("authorization", format!("Sentry sentry_key={key}")))
        )
        .await
        .unwrap()
        .status(),
        200
    );
    let id4 = new_id();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&envelope(&id4, &ev(&id4), Some(&s.dsn)))
        .unwrap();
    assert_eq!(
        send(z.finish().unwrap(), Some("deflate"), None, None)
            .await
            .unwrap()
            .status(),
        200
    );
    let id5 = new_id();
    let status = post_chunked(
        &s,
        &format!("/api/1/envelope/?sentry_key={key}"),
        &envelope(&id5, &ev(&id5), None),
    )
    .await;
    assert_eq!(status, 200);
    // A dashed id is the same event id.
    let id6 = new_id();
    let dashed = format!(
        "{}-{}-{}-{}-{}",
        &id6[..8],
        &id6[8..12],
        &id6[12..16],
        &id6[16..20],
        &id6[20..]
    );
    assert_eq!(
        send(
            envelope(&dashed, &ev(&dashed), None),
            None,
            None,
            Some(("x-sentry-auth", auth.clone()))
        )
        .await
        .unwrap()
        .status(),
        200
    );
    // Another kind of error is another issue; unknown item types are skipped without error.
    let id7 = new_id();
    let mut other = envelope(
        &id7,
        &exception_event(&id7, "KeyError", "'sku'", "lookup", "shop@1.0.0"),
        None,
    );
    other.extend_from_slice(b"{\"type\":\"profile_chunk\",\"platform\":\"python\"}\n{}\n{\"type\":\"client_report\"}\n{\"timestamp\":1,\"discarded_events\":[{\"reason\":\"ratelimit_backoff\",\"category\":\"error\",\"quantity\":3}]}\n");
    assert_eq!(
        send(other, None, None, Some(("x-sentry-auth", auth.clone())))
            .await
            .unwrap()
            .status(),
        200
    );
    let issues = wait_issues(&s, |i| {
        i.iter().map(|x| x["count"].as_i64().unwrap()).sum::<i64>() == 7
    })
    .await;
    assert_eq!(issues.len(), 2, "{issues:#?}");
    let zde = issues
        .iter()
        .find(|i| i["title"] == "ZeroDivisionError: division by zero")
        .unwrap();
    assert_eq!(zde["count"], 6);
    assert_eq!(zde["culprit"], "app in divide");
    assert_eq!(zde["status"], "unresolved");
    assert!(zde["user_count"].as_i64().unwrap() >= 1);
    // The event is stored under its undashed id, with its JSON.
    let (st, e) = json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/projects/1/events/{dashed}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["event_id"], id6);
    assert_eq!(
        e["event"]["exception"]["values"][0]["type"],
        "ZeroDivisionError"
    );
    // Tag breakdowns and domain events.
    let (_, detail) = json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/issues/{}", zde["id"])))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let tag = |k: &str| {
        detail["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == k)
            .map(|t| t["values"][0].clone())
    };
    assert_eq!(tag("release").unwrap()["value"], "shop@1.0.0");
    assert_eq!(tag("region").unwrap()["count"], 6);
    let (_, feed) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/events?limit=100"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kinds: Vec<&str> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "issue.created").count(), 2);
    assert!(kinds.contains(&"issue.events"));
    // The client report sent along was counted for the project.
    let (_, reports) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/client-reports"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reports["items"],
        json!([{"reason": "ratelimit_backoff", "category": "error", "quantity": 3}])
    );
}

async fn bad_input_gets_sentrys_statuses_and_stores_nothing(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let key = key_of(&s);
    let other = json_of(
        s.admin_client()
            .post(s.at("/api/v1/projects"))
            .json(&json!({"name": "Other"}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .1;
    let other_key = other["public_key"].as_str().unwrap().to_string();
    let c = reqwest::Client::new();
    let id = new_id();
    let good = envelope(&id, &exception_event(&id, "E", "v", "f", "r"), None);
    let auth = |k: &str| format!("Sentry sentry_key={k}");
    let post = |path: String, body: Vec<u8>, k: Option<String>, enc: Option<&'static str>| {
        let mut r = c.post(s.at(&path)).body(body);
        if let Some(k) = k {
            r = r.header("x-sentry-auth", auth(&k));
        }
        if let Some(e) = enc {
            r = r.header("content-encoding", e);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    let big = exception_event(&id, "E", &"x".repeat(1_100_000), "f", "r");
    let cases = [
        (
            post(
                "/api/1/envelope/".into(),
                b"{}\n{\"type\":\"event\"}\n{not json\n".to_vec(),
                Some(key.clone()),
                None,
            )
            .await,
            400,
            "bad event JSON",
        ),
        (
            post(
                "/api/1/envelope/".into(),
                b"garbage".to_vec(),
                Some(key.clone()),
                None,
            )
            .await,
            400,
            "not an envelope",
        ),
        (
            post(
                "/api/1/envelope/".into(),
                gzip(&good)[..20].to_vec(),
                Some(key.clone()),
                Some("gzip"),
            )
            .await,
            400,
            "truncated gzip",
        ),
        (
            post(
                "/api/1/envelope/".into(),
                good.clone(),
                Some("0".repeat(32)),
                None,
            )
            .await,
            403,
            "unknown key",
        ),
        (
            post("/api/1/envelope/".into(), good.clone(), None, None).await,
            401,
            "no key",
        ),
        (
            post(
                "/api/1/envelope/".into(),
                good.clone(),
                Some(other_key.clone()),
                None,
            )
            .await,
            403,
            "another project's key",
        ),
        (
            post(
                "/api/abc/envelope/".into(),
                good.clone(),
                Some(key.clone()),
                None,
            )
            .await,
            400,
            "non-numeric project",
        ),
        (
            post(
                "/api/1/envelope/".into(),
                envelope(&id, &big, None),
                Some(key.clone()),
                None,
            )
            .await,
            413,
            "event over 1 MiB",
        ),
        (
            post(
                "/api/1/store/".into(),
                b"%%%".to_vec(),
                Some(key.clone()),
                None,
            )
            .await,
            400,
            "bad store body",
        ),
    ];
    for (got, want, what) in cases {
        assert_eq!(got, want, "{what}");
    }
    // An envelope with only unknown items is fine and stores nothing.
    assert_eq!(
        post(
            "/api/1/envelope/".into(),
            b"{}\n{\"type\":\"replay_event\"}\n{}\n".to_vec(),
            Some(key.clone()),
            None
        )
        .await,
        200
    );
    // Nothing partial was kept, and the server still serves.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, page) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?status=all"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        post("/api/1/envelope/".into(), good, Some(key), None).await,
        200
    );
    wait_issues(&s, |i| i.len() == 1).await;
}

async fn put_status(s: &TestServer, id: i64, body: Value) -> Value {
    let (st, v) = json_of(
        s.admin_client()
            .put(s.at(&format!("/api/v1/issues/{id}")))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn resolve_regress_ignore_and_merge(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let key = key_of(&s);
    let c = reqwest::Client::new();
    let send = |ty: &'static str, release: &'static str| {
        let id = new_id();
        let r = c
            .post(envelope_url(&s))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(envelope(
                &id,
                &exception_event(&id, ty, "boom", "work", release),
                None,
            ));
        async move { assert_eq!(r.send().await.unwrap().status(), 200) }
    };
    let count_of = |ty: &'static str, n: i64| {
        move |i: &[Value]| {
            i.iter()
                .any(|x| x["title"].as_str().unwrap().starts_with(ty) && x["count"] == n)
        }
    };
    send("TimeoutError", "api@1.0").await;
    let issues = wait_issues(&s, count_of("TimeoutError", 1)).await;
    let id = issues[0]["id"].as_i64().unwrap();
    // Resolved, then a new event: regression.
    assert_eq!(
        put_status(&s, id, json!({"status": "resolved"})).await["status"],
        "resolved"
    );
    send("TimeoutError", "api@1.0").await;
    let issues = wait_issues(&s, count_of("TimeoutError", 2)).await;
    assert_eq!(
        (
            issues[0]["status"].as_str(),
            issues[0]["substatus"].as_str()
        ),
        (Some("unresolved"), Some("regressed"))
    );
    // Resolved in the next release: the current release may still report; a new one regresses.
    put_status(&s, id, json!({"status": "resolved_next_release"})).await;
    send("TimeoutError", "api@1.0").await;
    let issues = wait_issues(&s, count_of("TimeoutError", 3)).await;
    assert_eq!(issues[0]["status"], "resolved_next_release");
    send("TimeoutError", "api@1.1").await;
    let issues = wait_issues(&s, count_of("TimeoutError", 4)).await;
    assert_eq!(
        (
            issues[0]["status"].as_str(),
            issues[0]["substatus"].as_str()
        ),
        (Some("unresolved"), Some("regressed"))
    );
    // Ignored until 2 more events: the third brings it back.
    put_status(&s, id, json!({"status": "ignored", "ignore_count": 2})).await;
    send("TimeoutError", "api@1.1").await;
    send("TimeoutError", "api@1.1").await;
    assert_eq!(
        wait_issues(&s, count_of("TimeoutError", 6)).await[0]["status"],
        "ignored"
    );
    send("TimeoutError", "api@1.1").await;
    assert_eq!(
        wait_issues(&s, count_of("TimeoutError", 7)).await[0]["status"],
        "unresolved"
    );
    // The default list shows unresolved issues only; status filters work.
    let (_, res) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?status=resolved"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(res["items"].as_array().unwrap().len(), 0);
    let (st, bad) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?status=nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st.as_u16(), bad["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    // Merge: another issue folds into this one, and its later events follow.
    send("ConnectionError", "api@1.1").await;
    let issues = wait_issues(&s, count_of("ConnectionError", 1)).await;
    let other = issues
        .iter()
        .find(|i| i["title"].as_str().unwrap().starts_with("ConnectionError"))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, merged) = json_of(
        s.admin_client()
            .post(s.at(&format!("/api/v1/issues/{id}/merge")))
            .json(&json!({"issues": [other]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{merged}");
    assert_eq!(merged["count"], 8);
    send("ConnectionError", "api@1.1").await;
    let issues = wait_issues(&s, |i| i.len() == 1 && i[0]["count"] == 9).await;
    assert_eq!(issues[0]["id"], id);
    let (_, evs) = json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/issues/{id}/events?limit=3")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(evs["items"].as_array().unwrap().len(), 3);
    assert!(evs["next"].is_string());
    // Viewers cannot change issues.
    let (_, viewer) = json_of(
        s.admin_client()
            .post(s.at("/api/v1/tokens"))
            .json(&json!({"name": "v", "role": "viewer"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = reqwest::Client::new()
        .put(s.at(&format!("/api/v1/issues/{id}")))
        .bearer_auth(viewer["token"].as_str().unwrap())
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

async fn acknowledged_events_survive_kill_9(backend: Backend) {
    let mut s = TestServer::start(crate::bin(), backend).await;
    let key = key_of(&s);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..12 {
        let (url, key, acked) = (envelope_url(&s), key.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            for i in 0..10_000 {
                let id = new_id();
                let ev = exception_event(&id, "ValueError", &format!("w{w} #{i}"), "parse", "r1");
                match c
                    .post(&url)
                    .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                    .body(gzip(&envelope(&id, &ev, None)))
                    .header("content-encoding", "gzip")
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(id),
                    _ => break,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 800 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    s.restart();
    // Every acknowledged event is grouped after the restart: the inbox survived, and the
    // processor resumes from its cursor.
    let issues = wait_issues(&s, |i| {
        i.len() == 1 && i[0]["count"].as_i64().unwrap() >= acked.len() as i64
    })
    .await;
    let c = s.admin_client();
    for id in acked.iter().take(50) {
        let r = c
            .get(s.at(&format!("/api/v1/projects/1/events/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "acknowledged event {id} missing after kill -9"
        );
    }
    assert!(issues[0]["count"].as_i64().unwrap() >= acked.len() as i64);
}

async fn legacy_store_and_dsn_prefixes_work(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let key = key_of(&s);
    let c = reqwest::Client::new();
    let id = new_id();
    let ev = json!({"event_id": id, "message": "legacy client says hi", "level": "warning", "platform": "python"});
    let r = c
        .post(s.at("/api/1/store/"))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=6"),
        )
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id2 = new_id();
    let r = c
        .post(s.at(&format!("/some/prefix/api/1/envelope/?sentry_key={key}")))
        .body(envelope(
            &id2,
            &json!({"message": "through a prefix", "level": "info"}),
            None,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let pre = c
        .request(reqwest::Method::OPTIONS, s.at("/api/1/envelope/"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    assert!(pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-sentry-auth"));
    let issues = wait_issues(&s, |i| i.len() == 2).await;
    let titles: HashSet<&str> = issues
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        HashSet::from(["legacy client says hi", "through a prefix"])
    );
    let legacy = issues
        .iter()
        .find(|i| i["title"] == "legacy client says hi")
        .unwrap();
    assert_eq!(legacy["level"], "warning");
}

async fn project_rate_limits_answer_429_with_sentry_headers(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let key = key_of(&s);
    let admin = s.admin_client();
    let (st, bad) = json_of(
        admin
            .patch(s.at("/api/v1/projects/1"))
            .json(&json!({"rate_limit_per_minute": -1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st.as_u16(), bad["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (st, p) = json_of(
        admin
            .patch(s.at("/api/v1/projects/1"))
            .json(&json!({"rate_limit_per_minute": 3, "retention_days": 30}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        (
            p["rate_limit_per_minute"].as_i64(),
            p["retention_days"].as_i64()
        ),
        (Some(3), Some(30))
    );
    let c = reqwest::Client::new();
    let mut accepted = 0;
    let mut limited = Vec::new();
    for _ in 0..8 {
        let id = new_id();
        let r = c
            .post(envelope_url(&s))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(envelope(
                &id,
                &exception_event(&id, "E", "v", "f", "r"),
                None,
            ))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => accepted += 1,
            429 => limited.push(r),
            other => panic!("unexpected status {other}"),
        }
    }
    // Three per minute (six if the minute turned during the loop).
    assert!((3..=6).contains(&accepted), "accepted {accepted}");
    let r = limited.first().expect("no request was rate limited");
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let limits = r.headers()["x-sentry-rate-limits"].to_str().unwrap();
    assert!(
        limits.starts_with(&format!("{retry}:"))
            && limits.contains("error")
            && limits.contains(":project:"),
        "{limits}"
    );
    // Check-ins are never rate limited.
    let checkin = b"{}\n{\"type\":\"check_in\"}\n{\"check_in_id\":\"00000000000000000000000000000000\",\"monitor_slug\":\"nightly\",\"status\":\"ok\"}\n".to_vec();
    let r = c
        .post(envelope_url(&s))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .body(checkin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // 0 turns the limit off; ingest sees the change within its 5 s key cache.
    admin
        .patch(s.at("/api/v1/projects/1"))
        .json(&json!({"rate_limit_per_minute": 0}))
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let id = new_id();
        let r = c
            .post(envelope_url(&s))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(envelope(
                &id,
                &exception_event(&id, "E", "v", "f", "r"),
                None,
            ))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(
            std::time::Instant::now() < deadline,
            "the limit was still applied 10 s after turning it off"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn release_health_counts_sessions_and_new_issues(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let key = key_of(&s);
    let c = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        c.post(envelope_url(&s))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(body)
            .send()
    };
    let item = |kind: &str, v: Value| format!("{{}}\n{{\"type\":\"{kind}\"}}\n{v}\n").into_bytes();
    let started = "2026-11-28T12:00:00Z";
    // Two sessions of 2.0 start; one crashes, one exits after handled errors; an ongoing update
    // in between must not count twice. A server-mode aggregate adds ten sessions of 2.1.
    for v in [
        json!({"sid": "a", "init": true, "status": "ok", "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
        json!({"sid": "b", "init": true, "status": "ok", "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
        json!({"sid": "a", "init": false, "status": "ok", "errors": 1, "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
        json!({"sid": "a", "init": false, "status": "crashed", "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
        json!({"sid": "b", "init": false, "status": "exited", "errors": 3, "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
    ] {
        assert_eq!(post(item("session", v)).await.unwrap().status(), 200);
    }
    let agg = json!({"attrs": {"release": "app@2.1", "environment": "prod"}, "aggregates": [{"started": started, "exited": 9, "crashed": 1}]});
    assert_eq!(post(item("sessions", agg)).await.unwrap().status(), 200);
    let id = new_id();
    assert_eq!(
        post(envelope(
            &id,
            &exception_event(&id, "BrandNew", "in 2.1", "f", "app@2.1"),
            None
        ))
        .await
        .unwrap()
        .status(),
        200
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let releases = loop {
        let (st, r) = json_of(
            s.admin_client()
                .get(s.at("/api/v1/projects/1/releases"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        let items = r["items"].as_array().cloned().unwrap_or_default();
        if items
            .iter()
            .any(|i| i["release"] == "app@2.1" && i["events"] == 1)
            && items.iter().any(|i| i["release"] == "app@2.0")
        {
            break items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "releases never filled: {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let r20 = releases.iter().find(|i| i["release"] == "app@2.0").unwrap();
    assert_eq!(
        (
            r20["sessions"].as_i64(),
            r20["crashed"].as_i64(),
            r20["errored"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(r20["crash_free_percent"].as_f64(), Some(50.0));
    let r21 = releases.iter().find(|i| i["release"] == "app@2.1").unwrap();
    assert_eq!(
        (
            r21["sessions"].as_i64(),
            r21["crashed"].as_i64(),
            r21["new_issues"].as_i64()
        ),
        (Some(10), Some(1), Some(1))
    );
    assert_eq!(r21["crash_free_percent"].as_f64(), Some(90.0));
    // "New in this release" through the issue list.
    let (_, new) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?first_release=app@2.1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(new["items"][0]["title"], "BrandNew: in 2.1");
    let (_, none) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?first_release=app@2.0"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
}

async fn unmerge_splits_an_issue_back_out(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let key = key_of(&s);
    let c = reqwest::Client::new();
    let send = |ty: &'static str| {
        let id = new_id();
        let r = c
            .post(envelope_url(&s))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(envelope(
                &id,
                &exception_event(&id, ty, "boom", ty, "r1"),
                None,
            ));
        async move { assert_eq!(r.send().await.unwrap().status(), 200) }
    };
    send("TimeoutError").await;
    send("TimeoutError").await;
    send("ConnectionError").await;
    let issues = wait_issues(&s, |i| {
        i.len() == 2 && i.iter().map(|x| x["count"].as_i64().unwrap()).sum::<i64>() == 3
    })
    .await;
    let id_of = |t: &str| {
        issues
            .iter()
            .find(|i| i["title"].as_str().unwrap().starts_with(t))
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (a, b) = (id_of("TimeoutError"), id_of("ConnectionError"));
    let admin = s.admin_client();
    let (st, _) = json_of(
        admin
            .post(s.at(&format!("/api/v1/issues/{a}/merge")))
            .json(&json!({"issues": [b]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let (_, hs) = json_of(
        admin
            .get(s.at(&format!("/api/v1/issues/{a}/hashes")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let split: Vec<String> = hs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["latest_title"]
                .as_str()
                .is_some_and(|t| t.starts_with("ConnectionError"))
        })
        .map(|h| h["hash"].as_str().unwrap().to_string())
        .collect();
    assert!(!split.is_empty(), "{hs}");
    let (st, bad) = json_of(
        admin
            .post(s.at(&format!("/api/v1/issues/{a}/unmerge")))
            .json(&json!({"hashes": ["0".repeat(32)]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st.as_u16(), bad["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (st, new) = json_of(
        admin
            .post(s.at(&format!("/api/v1/issues/{a}/unmerge")))
            .json(&json!({"hashes": split}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{new}");
    assert_eq!(new["count"], 1);
    assert!(new["title"]
        .as_str()
        .unwrap()
        .starts_with("ConnectionError"));
    let (_, after) = json_of(
        admin
            .get(s.at(&format!("/api/v1/issues/{a}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(after["count"], 2);
    // The split-off hashes now belong to the new issue: its next event lands there.
    send("ConnectionError").await;
    let new_id = new["id"].as_i64().unwrap();
    wait_issues(&s, |i| {
        i.iter().any(|x| x["id"] == new_id && x["count"] == 2)
    })
    .await;
}
