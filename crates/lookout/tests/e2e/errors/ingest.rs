//! Sentry ingest: encodings, auth forms, bad input, durability, the store endpoint, prefixes, rate limits.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::json;

use super::*;
use crate::json_of;

lookout_testkit::both!(
    every_encoding_and_auth_form_lands_in_one_issue,
    bad_input_gets_sentrys_statuses_and_stores_nothing,
    acknowledged_events_survive_kill_9,
    legacy_store_and_dsn_prefixes_work,
    project_rate_limits_answer_429_with_sentry_headers,
);

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
    eventually("800 acknowledged events")
        .every(Duration::from_millis(5))
        .until(|| async { acked.lock().unwrap().len() }, |n| *n >= 800)
        .await;
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
        let r = post_envelope(
            &c,
            &s,
            envelope(&id, &exception_event(&id, "E", "v", "f", "r"), None),
        )
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
    let r = post_envelope(&c, &s, checkin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // 0 turns the limit off; ingest sees the change within its 5 s key cache.
    admin
        .patch(s.at("/api/v1/projects/1"))
        .json(&json!({"rate_limit_per_minute": 0}))
        .send()
        .await
        .unwrap();
    eventually("the limit to be off (its 5 s key cache)")
        .secs(10)
        .every(Duration::from_millis(250))
        .until(
            || async {
                let id = new_id();
                let r = post_envelope(
                    &c,
                    &s,
                    envelope(&id, &exception_event(&id, "E", "v", "f", "r"), None),
                )
                .send()
                .await
                .unwrap();
                assert!(r.status() == 200 || r.status() == 429, "{}", r.status());
                r.status()
            },
            |st| *st == 200,
        )
        .await;
}
