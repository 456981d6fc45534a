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
    let token = session_csrf(&c, &s, &session).await;
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

/// Wrong passwords slow an account down instead of locking it: past three free failures each
/// one makes the next attempt wait longer (429 with `Retry-After`, the password not even
/// checked), and once the wait is over the right password signs in. Another account is not
/// affected; one client failing on many accounts is slowed down too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_slow_the_account_down_but_never_lock_out_the_right_password() {
    let s = TestServer::start(bin(), Backend::Sqlite).await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let attempt = |email: String, password: &'static str| {
        let c = c.clone();
        let url = s.at("/login");
        async move {
            let (cookie, csrf) = login_form(&c, &url).await;
            let form = [
                ("email", email.as_str()),
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
    let admin = || "admin@example.com".to_string();
    // Six failures, each tried as soon as it is allowed (inside a wait the answer is 429 and
    // the attempt is not counted): three free, then waits of 1 s and 2 s, and the sixth leaves
    // a wait of 4 s, counted from its answer.
    let mut failures = 0;
    while failures < 6 {
        let r = attempt(admin(), "wrong password").await;
        match r.status().as_u16() {
            401 => failures += 1,
            429 => {
                let s: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(s * 1000 + 50)).await;
            }
            other => panic!("wrong password answered {other}"),
        }
    }
    // Even the right password waits for it.
    let slowed = attempt(admin(), "correct horse battery").await;
    assert_eq!(slowed.status(), 429);
    let retry: u64 = slowed.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(slowed
        .text()
        .await
        .unwrap()
        .contains("Too many failed logins"));
    // Another account is not affected.
    assert_eq!(
        attempt("nobody@example.com".into(), "whatever")
            .await
            .status(),
        401
    );
    // Once the wait is over, the right password signs in (and clears the account's count).
    tokio::time::sleep(std::time::Duration::from_millis(retry * 1000 + 100)).await;
    assert_eq!(
        attempt(admin(), "correct horse battery").await.status(),
        303
    );
    // One client trying many accounts runs out of free failures too.
    let mut refused = false;
    for i in 0..12 {
        let st = attempt(format!("guess{i}@example.com"), "password1")
            .await
            .status();
        assert!(st == 401 || st == 429, "{st}");
        refused |= st == 429;
    }
    assert!(
        refused,
        "a client failing on 12 more accounts must be slowed down"
    );
}

/// A logged-in session's CSRF token, read off a page's form as the UI does.
pub(crate) async fn session_csrf(c: &reqwest::Client, s: &TestServer, cookie: &str) -> String {
    let page = c
        .get(s.at("/settings"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    csrf_field(&page)
}

/// The value of a page's hidden `csrf` form field.
pub(crate) fn csrf_field(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// Signs in through the login form with a client that does not follow redirects (so a test can
/// read the answers' `Location`): the client and the session cookie (`lookout_session=…`).
pub(crate) async fn sign_in(
    s: &TestServer,
    email: &str,
    password: &str,
) -> (reqwest::Client, String) {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (pre, csrf) = login_form(&c, &s.at("/login")).await;
    let r = c
        .post(s.at("/login"))
        .header("cookie", &pre)
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in of {email}");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("lookout_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    (c, cookie)
}

/// Opens the login form: its pre-login CSRF cookie (`name=value`) and the matching form field.
pub(crate) async fn login_form(c: &reqwest::Client, url: &str) -> (String, String) {
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
