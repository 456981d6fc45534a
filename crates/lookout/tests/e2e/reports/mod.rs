//! Reports on the real binary: a Sentry event and an incident make today's daily check; the
//! API generates any kind for any period (JSON, HTML with SVG charts, text); a kept report is
//! delivered through a webhook (JSON), a Slack-compatible webhook (summary) and a real SMTP
//! server (HTML with a plain-text part); `lookout report` prints the same figures; SLOs and
//! report settings are validated.

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::{json, Value};

use crate::alerting::{Receiver, Smtp};
use crate::bin;
use crate::errors::{envelope, exception_event, new_id, post_envelope};

lookout_testkit::both!(a_report_is_made_delivered_and_printed);

async fn a_report_is_made_delivered_and_printed(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let smtp = Smtp::start().await;
    let port = smtp.port;
    let hooks = Receiver::start().await;
    // An error issue, through the Sentry envelope endpoint.
    let c = reqwest::Client::new();
    let id = new_id();
    let ev = exception_event(&id, "ReportError", "daily check", "handler", "1.0");
    let r = post_envelope(&c, &s, envelope(&id, &ev, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An incident through a PagerDuty-style integration, acknowledged.
    let integ = s
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "ops", "type": "webhook", "service": "shop"}),
        )
        .await
        .expect(201);
    let sent = c
        .post(integ["url"].as_str().unwrap())
        .json(&json!({"title": "Queue backed up", "severity": "critical", "id": "q-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let first = |v: &Value| {
        v["items"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|i| i["id"].as_i64())
    };
    let (issue_id, incident_id) = eventually("an issue and an incident")
        .secs(15)
        .poll(|| async {
            let issues = s
                .client()
                .get("/api/v1/projects/1/issues")
                .await
                .expect(200);
            let incidents = s.client().get("/api/v1/incidents").await.expect(200);
            match (first(&issues), first(&incidents)) {
                (Some(i), Some(n)) => Ok((i, n)),
                _ => Err((issues, incidents)),
            }
        })
        .await;
    s.client()
        .post(
            &format!("/api/v1/incidents/{incident_id}/acknowledge"),
            json!({}),
        )
        .await
        .expect(200);

    // The same error as an NRQL event, with New Relic's attribute names.
    let q = s
        .admin_client()
        .post(s.at("/api/v1/query"))
        .json(&json!({"nrql": "SELECT count(*), latest(error.message) FROM ErrorEvent FACET error.class SINCE 1 hour ago"}))
        .send()
        .await
        .unwrap();
    let q: Value = q.json().await.unwrap();
    assert_eq!(
        q["rows"],
        json!([["ReportError", 1.0, "daily check"]]),
        "{q}"
    );

    // Channels: a signed webhook, a Slack-compatible webhook, an email.
    let hook = s.client().post("/api/v1/channels", json!({"name": "reports hook", "type": "webhook", "url": hooks.url("/hook"), "secret": "s3cret"})).await.expect(201);
    let slack = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "team chat", "type": "slack", "url": hooks.url("/slack")}),
        )
        .await
        .expect(201);
    let email = s.client().post("/api/v1/channels", json!({"name": "ops mail", "type": "email", "to": "ops@example.com",
        "from": "lookout@example.com", "smtp_host": "127.0.0.1", "smtp_port": port, "security": "none"})).await.expect(201);
    let pd = s
        .client()
        .post(
            "/api/v1/channels",
            json!({"name": "pd", "type": "pagerduty", "routing_key": "k"}),
        )
        .await
        .expect(201);

    // Settings: validated field by field.
    let (st, v) = s
        .client()
        .send(
            reqwest::Method::PUT,
            "/api/v1/report-settings",
            Some(json!({"timezone": "Mars/Olympus"})),
        )
        .await
        .parts();
    assert_eq!(st, 422, "{v}");
    assert!(v.to_string().contains("timezone"), "{v}");
    let (st, v) = s
        .client()
        .send(
            reqwest::Method::PUT,
            "/api/v1/report-settings",
            Some(json!({"channel_ids": [pd["id"]]})),
        )
        .await
        .parts();
    assert_eq!(st, 422, "PagerDuty takes incidents, not reports: {v}");
    let (st, v) = s.client().send(reqwest::Method::PUT, "/api/v1/report-settings", Some(json!({
        "timezone": "Europe/Berlin", "time_of_day": "07:30", "channel_ids": [hook["id"], slack["id"], email["id"]],
        "targets": {"detect_minutes": 5, "acknowledge_minutes": 10, "resolve_minutes": 20}}))).await.parts();
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        s.client().get("/api/v1/report-settings").await.expect(200)["time_of_day"],
        "07:30"
    );

    // On demand, for the day up to now.
    let r = s
        .client()
        .get("/api/v1/reports?kind=daily")
        .await
        .expect(200);
    assert_eq!(r["kind"], "daily");
    assert_eq!(r["timezone"], "Europe/Berlin");
    let new: Vec<i64> = r["errors"]["new_issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(new, vec![issue_id]);
    assert_eq!(r["errors"]["events"], 1);
    let opened = r["incidents"]["opened"].as_array().unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["status"], "acknowledged");
    assert_eq!(r["incidents"]["outcomes"]["acknowledged"], 1);
    assert_eq!(r["incidents"]["targets"]["acknowledge_minutes"], 10.0);
    let (st, v) = s
        .client()
        .send(reqwest::Method::GET, "/api/v1/reports?kind=yearly", None)
        .await
        .parts();
    assert_eq!(st, 400, "{v}");
    let (st, _) = s
        .client()
        .send(
            reqwest::Method::GET,
            "/api/v1/reports?kind=daily&end=yesterday",
            None,
        )
        .await
        .parts();
    assert_eq!(st, 400);
    // A past period: the month up to a week ago has neither the issue nor the incident.
    let week_ago = lookout_core::time::iso(lookout_core::time::now_ms() - 7 * 86_400_000);
    let old = s
        .client()
        .get(&format!("/api/v1/reports?kind=monthly&end={week_ago}"))
        .await
        .expect(200);
    assert_eq!(old["errors"]["events"], 0);
    assert!(old["suggestions"].is_array() && old["capacity"].is_object());
    let html = s
        .admin_client()
        .get(s.at("/api/v1/reports?kind=weekly&format=html"))
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    let html = html.text().await.unwrap();
    assert!(
        html.contains("Weekly review") && html.contains("<svg") && html.contains("ReportError")
    );

    // SLOs: checked, listed with their budget, changed, deleted.
    let (st, v) = s
        .client()
        .send(
            reqwest::Method::POST,
            "/api/v1/slos",
            Some(json!({"name": "x", "service": "shop", "indicator": "latency", "target": 99})),
        )
        .await
        .parts();
    assert_eq!(st, 422, "{v}");
    assert!(v.to_string().contains("percentile"), "{v}");
    let slo = s.client().post("/api/v1/slos", json!({"name": "Shop availability", "service": "shop", "indicator": "availability", "target": 99.5})).await.expect(201);
    assert_eq!(slo["window_days"], 30);
    assert!(
        slo["budget"]["attainment"].is_null(),
        "no requests yet: {slo}"
    );
    let put = s.admin_client().put(s.at(&format!("/api/v1/slos/{}", slo["id"]))).json(&json!({"name": "Shop", "service": "shop", "indicator": "availability", "target": 99.9, "window_days": 7})).send().await.unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(
        s.client().get("/api/v1/slos").await.expect(200)["items"][0]["window_days"],
        7
    );
    let weekly = s
        .client()
        .get("/api/v1/reports?kind=weekly")
        .await
        .expect(200);
    assert_eq!(weekly["slos"][0]["name"], "Shop");

    // Kept and delivered.
    let made = s
        .client()
        .post("/api/v1/reports", json!({"kind": "daily", "deliver": true}))
        .await
        .expect(201);
    assert_eq!(made["deliveries"], 3);
    let rid = made["id"].as_i64().unwrap();
    let got = hooks.wait(2, 20).await;
    let hook_req = got
        .iter()
        .find(|g| g.body.starts_with(b"{\"event\""))
        .expect("webhook JSON");
    let body: Value = serde_json::from_slice(&hook_req.body).unwrap();
    assert_eq!(body["report_id"], rid);
    assert_eq!(body["report"]["errors"]["new_issues"][0]["id"], issue_id);
    let sig = lookout_core::seal::hmac_sha256_hex(b"s3cret", &hook_req.body);
    assert_eq!(
        hook_req.headers["x-lookout-signature"],
        format!("sha256={sig}")
    );
    let chat: Value = got
        .iter()
        .find_map(|g| {
            let v: Value = serde_json::from_slice(&g.body).ok()?;
            v.get("text").cloned()
        })
        .expect("Slack summary");
    let chat = chat.as_str().unwrap();
    assert!(
        chat.contains("Daily check")
            && chat.contains("ReportError")
            && chat.contains("|Open the full report>"),
        "{chat}"
    );
    smtp.wait(20, |t| {
        t.contains("ops@example.com")
            && t.contains("text/html")
            && t.contains("text/plain")
            && t.contains("ReportError")
    })
    .await;
    let kept_path = format!("/api/v1/reports/{rid}");
    let kept = eventually("the three deliveries to be sent")
        .secs(10)
        .until(
            || async { s.client().get(&kept_path).await.expect(200) },
            |kept| {
                let statuses: Vec<&str> = kept["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["status"].as_str().unwrap())
                    .collect();
                statuses == ["sent", "sent", "sent"]
            },
        )
        .await;
    assert_eq!(kept["report"]["errors"]["events"], 1);
    let history = s
        .client()
        .get("/api/v1/reports/history?kind=daily")
        .await
        .expect(200);
    assert_eq!(history["items"][0]["id"], rid);

    // The CLI prints the same figures from the data directory or database.
    let out = s
        .command()
        .args(["report", "daily", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["errors"]["new_issues"][0]["id"], issue_id);
    assert_eq!(cli["incidents"]["opened"][0]["id"], incident_id);
    let out = s
        .command()
        .args(["report", "monthly", "--html"])
        .output()
        .unwrap();
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("Monthly deep dive"));
    let out = s.command().args(["report", "weekly"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("== Errors ==") && text.contains("ReportError"),
        "{text}"
    );
    let out = s
        .command()
        .args(["report", "daily", "--end", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
