//! UI sessions: CSRF on login and on cookie-authenticated API calls, login lockout.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use crate::bin;

/// The UI's login form refuses a post without its CSRF cookie, and a session cannot change
/// anything through the API without the CSRF header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_need_csrf_tokens() {
    let s = TestServer::start(bin(), Backend::Sqlite).await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = [
        ("email", "admin@example.com"),
        ("password", "correct horse battery"),
        ("csrf", "forged"),
        ("next", "/"),
    ];
    let r = c.post(s.at("/login")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // The real flow: the form's hidden token matches its cookie.
    let (cookie, csrf) = login_form(&c, &s.at("/login")).await;
    let form = [
        ("email", "admin@example.com"),
        ("password", "correct horse battery"),
        ("csrf", csrf.as_str()),
        ("next", "//evil.example/"),
    ];
    let r = c
        .post(s.at("/login"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/",
        "an off-site `next` must not be followed"
    );
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("lookout_session="))
        .unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
    let session = session.split(';').next().unwrap().to_string();
    let r = c
        .post(s.at("/api/v1/projects"))
        .header("cookie", &session)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let home = c
        .get(s.at("/settings"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_field(&home);
    let r = c
        .post(s.at("/api/v1/projects"))
        .header("cookie", &session)
        .header("x-csrf-token", token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// Five wrong passwords lock an account's logins for the window, even with the right password
/// afterwards; other accounts are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_lock_the_account_for_a_while() {
    let s = TestServer::start(bin(), Backend::Sqlite).await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let attempt = |email: &'static str, password: &'static str| {
        let c = c.clone();
        let url = s.at("/login");
        async move {
            let (cookie, csrf) = login_form(&c, &url).await;
            let form = [
                ("email", email),
                ("password", password),
                ("csrf", csrf.as_str()),
                ("next", "/"),
            ];
            c.post(&url)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(
            attempt("admin@example.com", "wrong password")
                .await
                .status(),
            401
        );
    }
    let locked = attempt("admin@example.com", "correct horse battery").await;
    assert_eq!(locked.status(), 429);
    let retry: i64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    assert!(locked
        .text()
        .await
        .unwrap()
        .contains("Too many failed logins"));
    // Another account is not affected.
    assert_eq!(
        attempt("nobody@example.com", "whatever").await.status(),
        401
    );
}

/// The value of a page's hidden `csrf` form field.
fn csrf_field(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// Opens the login form: its pre-login CSRF cookie (`name=value`) and the matching form field.
async fn login_form(c: &reqwest::Client, url: &str) -> (String, String) {
    let page = c.get(url).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    (cookie, csrf_field(&page.text().await.unwrap()))
}
