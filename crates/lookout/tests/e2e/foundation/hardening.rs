//! The holes the security review found, each driven the way an attacker or a careless client
//! would: a viewer moving a contact method onto the admin, deleting the last admin to reopen
//! `/setup`, reading integration keys, open redirects, script links, missing headers, readable
//! data files, monitor URL passwords, LIKE wildcards and mangled cursors.

use std::time::Duration;

use lookout_testkit::{Backend, Client, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::sessions::{session_csrf, sign_in};
use crate::errors::{envelope, exception_event, new_id, post_envelope, wait_issues};
use crate::{bin, json_of};

lookout_testkit::both!(
    a_viewer_cannot_move_contact_methods_onto_others,
    the_last_admin_stays_and_setup_never_reopens,
    integration_keys_are_for_members_only,
    monitor_url_passwords_are_sealed_and_masked,
    issue_search_takes_wildcards_literally_and_bad_cursors_get_400,
    a_taken_slug_in_a_form_is_named_not_a_server_error,
);

/// A logged-in UI session: the typed client sending its cookie and CSRF token (API calls the
/// way the UI makes them), and the raw client and cookie for its pages.
struct Session {
    api: Client,
    c: reqwest::Client,
    cookie: String,
}

impl Session {
    async fn login(s: &TestServer, email: &str, password: &str) -> Session {
        let (c, cookie) = sign_in(s, email, password).await;
        let csrf = session_csrf(&c, s, &cookie).await;
        Session {
            api: Client::http_with(c.clone(), &s.url).session(&cookie, &csrf),
            c,
            cookie,
        }
    }
}

/// Issue #23, high 1: a viewer's own webhook contact method could be moved onto the admin (or
/// made a team channel), after which the admin's pages and their signed links went to the
/// viewer. Through the session (the UI's way) and through the viewer's own token.
async fn a_viewer_cannot_move_contact_methods_onto_others(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let admin_id = {
        let (_, me) = s
            .client()
            .send(Method::GET, "/api/v1/me", None)
            .await
            .parts();
        me["user"]["id"].as_i64()
    };
    let member_id = s.client().user("member@example.com", "member").await;
    let target = admin_id.unwrap_or(member_id);
    let viewer_id = s.client().user("viewer@example.com", "viewer").await;
    let viewer = Session::login(&s, "viewer@example.com", "correct horse battery").await;
    // A viewer's own token, made through the session.
    let (st, tok) = viewer
        .api
        .send(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "mine"})),
        )
        .await
        .parts();
    assert_eq!(st, 201, "{tok}");
    let token = tok["token"].as_str().unwrap().to_string();
    let by_token = s.anon().bearer(&token);
    // Their own contact method: allowed, and theirs to change.
    let hook = json!({"name": "my hook", "type": "webhook", "url": "http://127.0.0.1:9/hook",
                      "user_id": viewer_id});
    let (st, ch) = viewer
        .api
        .send(Method::POST, "/api/v1/channels", Some(hook.clone()))
        .await
        .parts();
    assert_eq!(st, 201, "{ch}");
    let path = format!("/api/v1/channels/{}", ch["id"]);
    let mut renamed = hook.clone();
    renamed["name"] = json!("my pager hook");
    let (st, v) = viewer
        .api
        .send(Method::PUT, &path, Some(renamed))
        .await
        .parts();
    assert_eq!(
        (st, v["name"].as_str()),
        (StatusCode::OK, Some("my pager hook"))
    );
    // Moved onto another user, or made a team channel: refused on both paths, and unchanged.
    let mut onto_admin = hook.clone();
    onto_admin["user_id"] = json!(target);
    let mut team = hook.clone();
    team.as_object_mut().unwrap().remove("user_id");
    for body in [onto_admin.clone(), team.clone()] {
        let (st, v) = viewer
            .api
            .send(Method::PUT, &path, Some(body.clone()))
            .await
            .parts();
        assert_eq!(st, 403, "session: {v}");
        let (st, v) = by_token.send(Method::PUT, &path, Some(body)).await.parts();
        assert_eq!(st, 403, "token: {v}");
    }
    let (st, v) = viewer
        .api
        .send(Method::POST, "/api/v1/channels", Some(onto_admin.clone()))
        .await
        .parts();
    assert_eq!(st, 403, "create for another user: {v}");
    // A broken body for someone else's contact method is still a 403, not a 422 that
    // tells the viewer what to fix.
    let mut broken = onto_admin.clone();
    broken["type"] = json!("carrier-pigeon");
    let (st, _) = viewer
        .api
        .send(Method::POST, "/api/v1/channels", Some(broken))
        .await
        .parts();
    assert_eq!(st, 403);
    let (_, now) = s.client().send(Method::GET, &path, None).await.parts();
    assert_eq!(now["user_id"], viewer_id, "{now}");
    // Others' contact methods and team channels: the viewer can neither change nor delete.
    let (st, theirs) = s
        .client()
        .send(
            Method::POST,
            "/api/v1/channels",
            Some(
                json!({"name": "admin hook", "type": "webhook", "url": "http://127.0.0.1:9/a",
                    "user_id": target}),
            ),
        )
        .await
        .parts();
    assert_eq!(st, 201, "{theirs}");
    let theirs = format!("/api/v1/channels/{}", theirs["id"]);
    let (st, _) = viewer
        .api
        .send(Method::PUT, &theirs, Some(hook.clone()))
        .await
        .parts();
    assert_eq!(st, 403);
    let (st, _) = viewer.api.send(Method::DELETE, &theirs, None).await.parts();
    assert_eq!(st, 403);
    let (st, _) = by_token.send(Method::DELETE, &theirs, None).await.parts();
    assert_eq!(st, 403);
    // A member manages any contact method.
    let member = Session::login(&s, "member@example.com", "correct horse battery").await;
    let (st, _) = member
        .api
        .send(Method::PUT, &theirs, Some(onto_admin))
        .await
        .parts();
    assert_eq!(st, 200);
    // The viewer deletes their own.
    let (st, _) = viewer.api.send(Method::DELETE, &path, None).await.parts();
    assert_eq!(st, 204);
}

/// Issue #23, medium 4: the bootstrap token could delete every user, and `/setup` then
/// offered anyone the first-admin form.
async fn the_last_admin_stays_and_setup_never_reopens(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let (_, users) = s
        .client()
        .send(Method::GET, "/api/v1/users", None)
        .await
        .parts();
    let admins: Vec<i64> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"] == "admin")
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(admins.len(), 1, "{users}");
    let second = s.client().user("second@example.com", "admin").await;
    let viewer = s.client().user("v@example.com", "viewer").await;
    // One of two admins may go; the last one may not.
    let del = |id: i64| {
        let s = &s;
        async move {
            s.client()
                .send(Method::DELETE, &format!("/api/v1/users/{id}"), None)
                .await
                .parts()
        }
    };
    assert_eq!(del(second).await.0, 204);
    let (st, body) = del(admins[0]).await;
    assert_eq!(st, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last administrator"),
        "{body}"
    );
    assert_eq!(del(viewer).await.0, 204);
    // Set up already: the form is never offered, and posting it creates nobody.
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(s.at("/setup")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let r = c
        .post(s.at("/setup"))
        .form(&[
            ("email", "mallory@example.com"),
            ("password", "mallory's password"),
            ("csrf", "x"),
        ])
        .header("cookie", "lookout_csrf=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, users) = s
        .client()
        .send(Method::GET, "/api/v1/users", None)
        .await
        .parts();
    assert!(!users.to_string().contains("mallory"), "{users}");
}

/// Issue #23, medium 6: integration keys open and resolve incidents; viewers must not read them.
async fn integration_keys_are_for_members_only(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    for kind in ["alertmanager", "pagerduty"] {
        let (st, _) = s
            .client()
            .send(
                Method::POST,
                "/api/v1/integrations",
                Some(json!({"name": kind, "type": kind})),
            )
            .await
            .parts();
        assert_eq!(st, 201);
    }
    let (_, as_admin) = s
        .client()
        .send(Method::GET, "/api/v1/integrations", None)
        .await
        .parts();
    let keys: Vec<String> = as_admin["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect();
    assert!(keys.iter().all(|k| k.len() == 32), "{as_admin}");
    s.client().user("viewer@example.com", "viewer").await;
    let viewer = Session::login(&s, "viewer@example.com", "correct horse battery").await;
    let (st, as_viewer) = viewer
        .api
        .send(Method::GET, "/api/v1/integrations?limit=1", None)
        .await
        .parts();
    assert_eq!(st, 200);
    let first = &as_viewer["items"][0];
    assert_eq!(first["key"], "********", "{as_viewer}");
    let (_, one) = viewer
        .api
        .send(
            Method::GET,
            &format!("/api/v1/integrations/{}", first["id"]),
            None,
        )
        .await
        .parts();
    assert_eq!(one["key"], "********");
    // Neither the API nor the Alerts page shows any key to the viewer.
    let page = viewer
        .c
        .get(s.at("/alerts"))
        .header("cookie", &viewer.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/integrations/********/alertmanager"),
        "{page}"
    );
    for k in &keys {
        assert!(!as_viewer.to_string().contains(k.as_str()));
        assert!(!one.to_string().contains(k.as_str()));
        assert!(!page.contains(k.as_str()));
    }
}

/// Issue #23, low 14: a password in a monitor's URL was stored in clear and shown to viewers.
async fn monitor_url_passwords_are_sealed_and_masked(backend: Backend) {
    let sqlite = matches!(backend, Backend::Sqlite);
    let s = TestServer::start(bin(), backend).await;
    let t = crate::uptime::targets::HttpTarget::start().await;
    // The target insists on the credentials: "up" proves the checker still sends them.
    t.set(|b| b.require = Some("authorization: basic b3bzonmzy3jlda==".into()));
    let url = format!("http://ops:s3cret@{}/health", t.addr);
    let m = crate::uptime::create(
        &s,
        json!({"name": "private", "type": "http", "url": url, "interval_seconds": 1}),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    let masked = format!("http://ops:********@{}/health", t.addr);
    assert_eq!(m["url"], masked.as_str(), "{m}");
    crate::uptime::wait_status(&s, id, "up", 20).await;
    s.client().user("viewer@example.com", "viewer").await;
    let viewer = Session::login(&s, "viewer@example.com", "correct horse battery").await;
    let (_, seen) = viewer
        .api
        .send(Method::GET, &format!("/api/v1/monitors/{id}"), None)
        .await
        .parts();
    assert_eq!(seen["url"], masked.as_str(), "{seen}");
    assert!(!seen.to_string().contains("s3cret"));
    // An edit that sends the masked URL back keeps the password (still up after the edit).
    let spec = json!({"name": "private api", "type": "http", "url": masked, "interval_seconds": 1});
    let (st, v) = s
        .client()
        .send(Method::PUT, &format!("/api/v1/monitors/{id}"), Some(spec))
        .await
        .parts();
    assert_eq!(st, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    crate::uptime::wait_status(&s, id, "up", 20).await;
    // At rest it is sealed: the password is nowhere in the database files.
    let in_clear = |s: &TestServer| {
        ["lookout.db", "lookout.db-wal"].iter().any(|f| {
            let bytes = std::fs::read(s.data_dir().join(f)).unwrap_or_default();
            bytes.windows(6).any(|w| w == b"s3cret")
        })
    };
    if sqlite {
        assert!(!in_clear(&s), "the database holds the password in clear");
    }
    // A URL password an older version stored in clear is sealed at the next start.
    let mut s = s;
    s.terminate();
    let db_url = match s.database_url() {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", s.data_dir().join("lookout.db").display()),
    };
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&db_url).await.unwrap();
    let spec: String = sqlx::query_scalar("SELECT spec FROM monitors WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    let mut spec: Value = serde_json::from_str(&spec).unwrap();
    spec["url"] = json!(url);
    sqlx::query("UPDATE monitors SET spec = $1 WHERE id = 1")
        .bind(spec.to_string())
        .execute(&db)
        .await
        .unwrap();
    // An older version never ran the one-time sealing pass.
    sqlx::query("DELETE FROM instance_flags WHERE name = 'monitor_secrets_sealed'")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    s.restart();
    let db = sqlx::AnyPool::connect(&db_url).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT spec FROM monitors WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    assert!(!stored.contains("s3cret"), "{stored}");
    crate::uptime::wait_status(&s, id, "up", 20).await;
}

/// Issue #23, low 15: `_` and `%` in an issue search matched anything, and a cursor that no
/// page returned silently started over.
async fn issue_search_takes_wildcards_literally_and_bad_cursors_get_400(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let c = reqwest::Client::new();
    for ty in ["Rate_Limit", "RateXLimit", "Quota"] {
        let id = new_id();
        let value = if ty == "Quota" {
            "100% used"
        } else {
            "1000 used"
        };
        let r = post_envelope(
            &c,
            &s,
            envelope(&id, &exception_event(&id, ty, value, "work", "a@1"), None),
        );
        assert_eq!(r.send().await.unwrap().status(), 200);
    }
    wait_issues(&s, |i| i.len() == 3).await;
    let titles = |q: &'static str| {
        let c = s.admin_client();
        let url = s.at("/api/v1/projects/1/issues");
        async move {
            let (st, v) = json_of(
                c.get(url)
                    .query(&[("status", "all"), ("query", q)])
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(st, 200, "{v}");
            let mut t: Vec<String> = v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["title"].as_str().unwrap().to_string())
                .collect();
            t.sort();
            t
        }
    };
    assert_eq!(titles("rate_limit").await, ["Rate_Limit: 1000 used"]);
    assert_eq!(titles("100%").await, ["Quota: 100% used"]);
    assert_eq!(titles("ratexlimit").await, ["RateXLimit: 1000 used"]);
    for path in [
        "/api/v1/projects?cursor=abc",
        "/api/v1/projects/1/issues?cursor=%27%20OR%201",
        "/api/v1/events?cursor=-x",
        "/api/v1/users?cursor=1e9",
    ] {
        let (st, v) = s.client().send(Method::GET, path, None).await.parts();
        assert_eq!(st, 400, "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("cursor"),
            "{path}: {v}"
        );
    }
}

/// Issue #23, lows 11–14 (one backend: nothing here touches storage differently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_links_headers_and_file_modes() {
    let s = TestServer::start(bin(), Backend::Sqlite).await;
    // 11: `next` that a browser would read as another host.
    let admin = Session::login(&s, "admin@example.com", "correct horse battery").await;
    for next in [
        "/%09/evil.example",
        "/%5C%5Cevil.example",
        "/%0d%0a//evil.example",
    ] {
        let r = admin
            .c
            .get(s.at(&format!("/switch-project?project=1&next={next}")))
            .header("cookie", &admin.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{next}");
        assert_eq!(r.headers()["location"], "/", "{next}");
    }
    // 12: runbook URLs must be web addresses.
    for url in [
        "javascript:alert(document.cookie)",
        "data:text/html,<b>x</b>",
    ] {
        let (st, v) = s
            .client()
            .send(
                Method::POST,
                "/api/v1/runbooks",
                Some(json!({"name": "rb", "url": url})),
            )
            .await
            .parts();
        assert_eq!(st, 422, "{url}: {v}");
    }
    // 13: public status pages carry the UI's CSP and framing rules.
    let (st, _) = s
        .client()
        .send(
            Method::POST,
            "/api/v1/status-pages",
            Some(json!({"slug": "pub", "title": "Public"})),
        )
        .await
        .parts();
    assert_eq!(st, 201);
    for path in ["/status/pub", "/status/pub/feed.atom"] {
        let r = reqwest::get(s.at(path)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        // A logo on the company's own site still shows.
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("img-src 'self' data: https:"),
            "{path}"
        );
    }
    // 14: the data directory and the database files are the owner's alone, and a data
    // directory left readable by an older version is made private at start.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    let files = ["lookout.db", "lookout.db-wal", "secret.key"];
    for f in files {
        assert_eq!(mode(s.data_dir().join(f)), 0o600, "{f}");
    }
    let mut s = s;
    s.terminate();
    let chmod = |p: std::path::PathBuf, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    chmod(s.data_dir().to_path_buf(), 0o755);
    for f in files {
        if s.data_dir().join(f).exists() {
            chmod(s.data_dir().join(f), 0o644);
        }
    }
    s.restart();
    assert_eq!(mode(s.data_dir().to_path_buf()), 0o700);
    for f in ["lookout.db", "lookout.db-wal"] {
        assert_eq!(mode(s.data_dir().join(f)), 0o600, "{f} after restart");
    }
}

/// A status page saved from the UI with a slug another page has: the editor again with the
/// reason and 422, as the API answers 409 with it; never the "something went wrong" page.
/// (When the service layer first wrapped the store's conflict, the page fell through to 500.)
async fn a_taken_slug_in_a_form_is_named_not_a_server_error(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let admin = Session::login(&s, "admin@example.com", "correct horse battery").await;
    let csrf = session_csrf(&admin.c, &s, &admin.cookie).await;
    let save = |slug: &'static str, title: &'static str| {
        let (c, cookie, csrf, url) = (
            admin.c.clone(),
            admin.cookie.clone(),
            csrf.clone(),
            s.at("/uptime/status-pages"),
        );
        async move {
            c.post(url)
                .header("cookie", cookie)
                .form(&[("csrf", csrf.as_str()), ("slug", slug), ("title", title)])
                .send()
                .await
                .unwrap()
        }
    };
    let first = save("shop", "Shop").await;
    assert_eq!(
        first.status(),
        StatusCode::SEE_OTHER,
        "the first page is created"
    );
    let again = save("shop", "Shop again").await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = again.text().await.unwrap();
    assert!(
        page.contains("already exists"),
        "the reason is shown: {page}"
    );
    assert!(!page.contains("Something went wrong"), "{page}");
    // The API says the same with its own status.
    let (st, body) = s
        .client()
        .send(
            Method::POST,
            "/api/v1/status-pages",
            Some(json!({"slug": "shop", "title": "Shop 3"})),
        )
        .await
        .parts();
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    let (_, pages) = s
        .client()
        .send(Method::GET, "/api/v1/status-pages", None)
        .await
        .parts();
    assert_eq!(pages["items"].as_array().unwrap().len(), 1, "{pages}");
}
