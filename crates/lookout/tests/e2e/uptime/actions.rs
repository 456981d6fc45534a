//! What a user does from a monitor's page and what a heartbeat's job sees, on the real binary:
//! **Check now** records a check at once (API and page); a daily heartbeat is up on its first
//! ping and shows its last ping and ping log; a refused port's failure reads in plain words
//! naming the target; the Edit form keeps what was typed and names the wrong field; Clone and
//! Maintenance from the page.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::targets::{closed_port, HttpTarget};
use super::*;
use crate::foundation::sessions::{csrf_field, sign_in};

lookout_testkit::both!(
    check_now_records_a_check_and_names_a_refused_target,
    a_daily_heartbeat_is_up_on_its_first_ping_and_logs_it,
    the_edit_form_keeps_typed_values_and_names_the_field,
);

/// A member's logged-in browser: a cookie jar-less client with the session cookie and the CSRF
/// token read off a page, as a browser holds them.
struct Browser {
    c: reqwest::Client,
    cookie: String,
    csrf: String,
    base: String,
}

impl Browser {
    async fn login(s: &TestServer) -> Browser {
        s.client().user("member@example.com", "member").await;
        let (c, cookie) = sign_in(s, "member@example.com", "correct horse battery").await;
        let mut b = Browser {
            c,
            cookie,
            csrf: String::new(),
            base: s.url.clone(),
        };
        let (_, html) = b.get("/uptime").await;
        b.csrf = csrf_field(&html);
        b
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .c
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form (the CSRF token added); the status and the body or redirect target.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let r = self
            .c
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        let body = r.text().await.unwrap();
        (status, location.unwrap_or(body))
    }
}

async fn result_count(s: &TestServer, id: i64) -> usize {
    s.client()
        .get(&format!("/api/v1/monitors/{id}/results?limit=100"))
        .await
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .len()
}

async fn check_now_records_a_check_and_names_a_refused_target(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let t = HttpTarget::start().await;
    // Hourly: after its first check nothing else would run during this test.
    let id = create(
        &s,
        json!({"name": "api", "type": "http", "url": t.url("/health"), "interval_seconds": 3600}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let first = wait_for(&s, id, 15, |m| !m["last_check_at"].is_null()).await;
    assert_eq!(result_count(&s, id).await, 1);

    // The API: 200 once the runner stored the result, which is a check like any other.
    let (status, m) = s
        .client()
        .post(&format!("/api/v1/monitors/{id}/check"), json!({}))
        .await
        .parts();
    assert_eq!(status, 200, "{m}");
    assert_ne!(m["last_check_at"], first["last_check_at"], "{m}");
    assert_eq!(m["status"], "up");
    assert_eq!(result_count(&s, id).await, 2);

    // A viewer may not ask for checks.
    let viewer = s.client().token("viewer").await;
    let r = s
        .anon()
        .bearer(&viewer)
        .post(&format!("/api/v1/monitors/{id}/check"), json!({}))
        .await;
    assert_eq!(r.parts().0, 403);

    // A refused port, checked from the page: the reason names the target in plain words.
    let port = closed_port();
    let tcp = create(
        &s,
        json!({"name": "db", "type": "tcp", "host": "127.0.0.1", "port": port,
               "interval_seconds": 3600, "failure_threshold": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    wait_for(&s, tcp, 15, |m| !m["last_check_at"].is_null()).await;
    let b = Browser::login(&s).await;
    let (status, to) = b
        .post(
            &format!("/uptime/monitors/{tcp}/action"),
            &[("action", "check")],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("/uptime/monitors/{tcp}").as_str())
    );
    assert_eq!(
        result_count(&s, tcp).await,
        2,
        "Check now from the page records a check"
    );
    let m = monitor(&s, tcp).await;
    let want = format!("cannot connect to 127.0.0.1:{port}: connection refused");
    assert_eq!(m["last_failure"], want, "{m}");
    assert_eq!(m["status"], "down");
    let (_, page) = b.get(&format!("/uptime/monitors/{tcp}")).await;
    assert!(page.contains(&want), "the page shows the reason");
    assert!(page.contains("every 1 h"), "the interval reads as words");
    assert!(
        page.contains("beat beat-down"),
        "the failed check is a red beat"
    );

    // An HTTP monitor on the same closed port says the same.
    let http = create(
        &s,
        json!({"name": "web", "type": "http", "url": format!("http://127.0.0.1:{port}/"),
               "interval_seconds": 3600, "failure_threshold": 1}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let m = wait_status(&s, http, "down", 15).await;
    assert_eq!(m["last_failure"], want, "{m}");

    // A paused monitor is not checked on request.
    s.client()
        .post(&format!("/api/v1/monitors/{id}/check"), json!({}))
        .await
        .expect(200);
    let mut paused = monitor(&s, id).await;
    paused["paused"] = json!(true);
    s.client()
        .put(&format!("/api/v1/monitors/{id}"), paused)
        .await
        .expect(200);
    let r = s
        .client()
        .post(&format!("/api/v1/monitors/{id}/check"), json!({}))
        .await;
    assert_eq!(r.parts().0, 409);
}

async fn a_daily_heartbeat_is_up_on_its_first_ping_and_logs_it(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let m = create(
        &s,
        json!({"name": "nightly backup", "type": "heartbeat", "interval_seconds": 86400}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    assert_eq!(m["status"], "pending");
    assert!(m["last_ping_at"].is_null());
    let push = m["push_url"].as_str().unwrap().to_string();
    let path = &push[push.find("/api/v1/push/").unwrap()..];
    s.anon().post(path, json!({})).await.expect(200);
    // Up within a runner reload, not at the next daily check.
    let m = wait_status(&s, id, "up", 10).await;
    assert!(m["last_ping_at"].is_string(), "{m}");
    let b = Browser::login(&s).await;
    let (status, page) = b.get(&format!("/uptime/monitors/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("last ping <time"),
        "last ping, relative: {page}"
    );
    assert!(page.contains("id=\"pings\""), "the ping log is shown");
    assert!(
        page.contains("127.0.0.1") && page.contains("POST"),
        "with source and method"
    );
    assert!(page.contains("every 1 day"));
    let (_, list) = b.get("/uptime").await;
    assert!(list.contains("every 1 day"), "the list says how often too");
}

async fn the_edit_form_keeps_typed_values_and_names_the_field(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let t = HttpTarget::start().await;
    let id = create(
        &s,
        json!({"name": "api", "type": "http", "url": t.url("/health"), "interval_seconds": 60,
               "headers": {"X-Probe": "lookout"}}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let b = Browser::login(&s).await;
    let (status, form) = b.get(&format!("/uptime/monitors/{id}/edit")).await;
    assert_eq!(status, 200);
    assert!(
        form.contains("value=\"api\"") && form.contains("value=\"60\""),
        "prefilled"
    );

    let edit = |name: &'static str, interval: &'static str| {
        vec![
            ("name", name),
            ("target", ""),
            ("interval_seconds", interval),
            ("timeout_seconds", "5"),
        ]
    };
    let url = t.url("/health");
    let mut fields = edit("api renamed", "0");
    fields[1].1 = &url;
    let (status, page) = b
        .post(&format!("/uptime/monitors/{id}/edit"), &fields)
        .await;
    assert_eq!(status, 422);
    assert!(
        page.contains("interval_seconds: must be between 1 and 604800"),
        "{page}"
    );
    assert!(
        page.contains("value=\"api renamed\""),
        "the typed name is kept"
    );
    assert!(page.contains("value=\"5\""), "the typed timeout is kept");
    assert!(
        page.contains(r#"name="interval_seconds" inputmode="numeric" placeholder="60" value="0" aria-invalid="true""#),
        "the wrong field is marked: {page}"
    );
    assert_eq!(monitor(&s, id).await["name"], "api", "nothing was saved");

    let mut fields = edit("api renamed", "120");
    fields[1].1 = &url;
    let (status, to) = b
        .post(&format!("/uptime/monitors/{id}/edit"), &fields)
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("/uptime/monitors/{id}").as_str())
    );
    let m = monitor(&s, id).await;
    assert_eq!(
        (
            m["name"].as_str(),
            m["interval_seconds"].as_i64(),
            m["timeout_seconds"].as_i64()
        ),
        (Some("api renamed"), Some(120), Some(5))
    );
    assert_eq!(
        m["headers"]["X-Probe"], "lookout",
        "fields the form does not show are kept"
    );

    // Clone: the add form prefilled, named "… (copy)".
    let (_, clone) = b.get(&format!("/uptime/monitors/{id}/clone")).await;
    assert!(clone.contains("value=\"api renamed (copy)\""), "{clone}");
    let mut fields = edit("api renamed (copy)", "120");
    fields[1].1 = &url;
    fields.push(("type", "http"));
    let (status, to) = b
        .post(&format!("/uptime/monitors/{id}/clone"), &fields)
        .await;
    assert_eq!(status, 303);
    let copy: i64 = to.rsplit('/').next().unwrap().parse().unwrap();
    assert_ne!(copy, id);
    let c = monitor(&s, copy).await;
    assert_eq!(c["name"], "api renamed (copy)");
    assert_eq!(c["headers"]["X-Probe"], "lookout");

    // A monitor's stored credentials follow a copy only to the same destination: cloning it
    // to another host is refused, naming the URL, and creates nothing.
    let private = create(
        &s,
        json!({"name": "private", "type": "http", "url": t.url("/health"),
               "interval_seconds": 60, "bearer_token": "s3cret-token"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let before = s.client().get("/api/v1/monitors").await.json["items"]
        .as_array()
        .unwrap()
        .len();
    let elsewhere = "http://127.0.0.2:9/health".to_string();
    let mut fields = edit("private (copy)", "60");
    fields[1].1 = &elsewhere;
    fields.push(("type", "http"));
    let (status, page) = b
        .post(&format!("/uptime/monitors/{private}/clone"), &fields)
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("points somewhere else"), "{page}");
    let after = s.client().get("/api/v1/monitors").await.json["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing was created");
    let mut fields = edit("private (copy)", "60");
    fields[1].1 = &url;
    fields.push(("type", "http"));
    let (status, _) = b
        .post(&format!("/uptime/monitors/{private}/clone"), &fields)
        .await;
    assert_eq!(status, 303, "the same destination keeps its credentials");

    // Maintenance from the page: a one-off window from now, listed on the page.
    let (status, _) = b
        .post(
            &format!("/uptime/monitors/{id}/action"),
            &[("action", "maintenance"), ("minutes", "0")],
        )
        .await;
    assert_eq!(status, 422, "zero minutes is refused");
    let (status, _) = b
        .post(
            &format!("/uptime/monitors/{id}/action"),
            &[
                ("action", "maintenance"),
                ("minutes", "60"),
                ("title", "Database upgrade"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(monitor(&s, id).await["status"], "maintenance");
    assert_ne!(
        monitor(&s, copy).await["status"],
        "maintenance",
        "only this monitor"
    );
    let (_, page) = b.get(&format!("/uptime/monitors/{id}")).await;
    assert!(
        page.contains("Database upgrade") && page.contains("in progress, ends <time"),
        "{page}"
    );
}
