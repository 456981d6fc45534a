//! Invitations and account self-service on the real binary, with a real SMTP server (aiosmtpd):
//! an admin invites a colleague by email, the colleague follows the emailed link, chooses a name
//! and password and is signed in; a used, withdrawn, replaced or expired link is refused. A user
//! changes their password (their other sessions end), signs out one session, renames themself,
//! and resets a forgotten password through the emailed link, without the answer telling who has
//! an account. (Two-factor sign-in: two_factor.rs; the audit log: audit_log.rs.)

use lookout_testkit::{Backend, TestServer};
use reqwest::redirect::Policy;
use serde_json::json;

use super::sessions::{csrf_field, login_form};
use crate::alerting::Smtp;
use crate::bin;

pub(super) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The mail as a person would read it: quoted-printable soft breaks joined and `=3D` decoded.
pub(crate) fn readable(mail: &str) -> String {
    mail.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The last link to `{base}/{kind}/…` in the mail text.
pub(super) fn link_in(mail: &str, base: &str, kind: &str) -> String {
    let text = readable(mail);
    let prefix = format!("{base}/{kind}/");
    let start = text
        .rfind(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in:\n{text}"));
    text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect()
}

/// `name=value` of the cookie `name` a response sets.
pub(super) fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// Opens a page with a pre-login form: its CSRF cookie and field, and the page.
pub(super) async fn open_form(c: &reqwest::Client, url: &str) -> (u16, Option<String>, String) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let cookie = set_cookie(&r, "lookout_csrf");
    (status, cookie, r.text().await.unwrap())
}

/// Posts a pre-login form opened with [`open_form`]; the answer.
pub(super) async fn post_form(
    c: &reqwest::Client,
    url: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    c.post(url)
        .header("cookie", cookie)
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// Signs in through the login form; the session cookie, or `None` when refused.
pub(super) async fn log_in(s: &TestServer, email: &str, password: &str) -> Option<String> {
    let c = browser();
    let (cookie, csrf) = login_form(&c, &s.at("/login")).await;
    let r = post_form(
        &c,
        &s.at("/login"),
        &cookie,
        &[
            ("email", email),
            ("password", password),
            ("csrf", &csrf),
            ("next", "/"),
        ],
    )
    .await;
    (r.status() == 303)
        .then(|| set_cookie(&r, "lookout_session"))
        .flatten()
}

/// `GET /api/v1/me` with a session cookie: status and body.
pub(super) async fn me(s: &TestServer, session: &str) -> (u16, serde_json::Value) {
    let r = browser()
        .get(s.at("/api/v1/me"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// The CSRF token of a signed-in session (from a page's forms).
pub(super) async fn csrf_of(s: &TestServer, session: &str) -> String {
    let page = browser()
        .get(s.at("/account"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    csrf_field(&page.text().await.unwrap())
}

/// Points account mail at `smtp`.
pub(crate) async fn set_up_mail(s: &TestServer, smtp: &Smtp) {
    let m = s
        .client()
        .put(
            "/api/v1/settings/mail",
            json!({"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "security": "none",
                   "username": "", "password": "mail-s3cret",
                   "from": "Lookout <lookout@example.com>"}),
        )
        .await
        .expect(200);
    assert_eq!(
        m["password"], "********",
        "the SMTP password never comes back"
    );
    assert_eq!(m["smtp_host"], "127.0.0.1");
}

lookout_testkit::both!(
    an_invited_colleague_joins_through_the_emailed_link_once,
    users_change_their_password_and_sessions_and_reset_a_forgotten_one
);

async fn an_invited_colleague_joins_through_the_emailed_link_once(backend: Backend) {
    let smtp = Smtp::start().await;
    let s = TestServer::start(bin(), backend).await;
    let viewer = s.client().token("viewer").await;
    // Roles before the body: a viewer is refused even with a body that is not JSON.
    let r = s
        .anon()
        .bearer(&viewer)
        .post_raw("/api/v1/users", "application/json", "{not json")
        .await;
    assert_eq!(r.status, 403);
    s.anon()
        .bearer(&viewer)
        .get("/api/v1/invitations")
        .await
        .expect(403);
    s.anon()
        .bearer(&viewer)
        .get("/api/v1/settings/mail")
        .await
        .expect(403);
    assert!(s
        .client()
        .get("/api/v1/settings/mail")
        .await
        .expect(200)
        .is_null());
    set_up_mail(&s, &smtp).await;
    // A bad sender is named.
    let bad = s
        .client()
        .put(
            "/api/v1/settings/mail",
            json!({"smtp_host": "127.0.0.1", "from": "not an address"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.message().starts_with("from"), "{}", bad.message());

    // The invitation: no password, a link shown to the admin once and emailed.
    let u = s
        .client()
        .post(
            "/api/v1/users",
            json!({"email": "Grace@Example.com", "name": "Grace", "role": "member"}),
        )
        .await
        .expect(201);
    assert_eq!(u["status"], "invited");
    assert_eq!(u["email"], "grace@example.com");
    assert_eq!(u["name"], "Grace");
    assert_eq!(u["invite_emailed"], true);
    let invite_url = u["invite_url"].as_str().unwrap().to_string();
    assert!(invite_url.starts_with(&s.at("/invite/")), "{invite_url}");
    let uid = u["id"].as_i64().unwrap();
    let listed = s.client().get("/api/v1/users").await.expect(200);
    let row = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == uid)
        .unwrap()
        .clone();
    assert_eq!(row["status"], "invited");
    assert_eq!(row["name"], "Grace");
    assert!(
        row.get("invite_url").is_none(),
        "the link is shown only to its creator"
    );
    let pending = s.client().get("/api/v1/invitations").await.expect(200);
    assert_eq!(pending["items"][0]["email"], "grace@example.com");
    assert_eq!(pending["items"][0]["expired"], false);
    // An invited user cannot sign in before accepting.
    assert_eq!(log_in(&s, "grace@example.com", "").await, None);

    let mail = smtp
        .wait(20, |t| {
            t.contains("grace@example.com") && readable(t).contains("/invite/")
        })
        .await;
    assert!(
        !mail.contains("mail-s3cret"),
        "the SMTP password is not in the mail"
    );
    let emailed = link_in(&mail, &s.at(""), "invite");
    assert_eq!(emailed, invite_url, "the emailed link is the one shown");

    // The invitee opens it, sees their address, and a too-short password is named and the
    // typed name kept.
    let c = browser();
    let (status, cookie, page) = open_form(&c, &emailed).await;
    assert_eq!(status, 200);
    assert!(page.contains("grace@example.com"), "{page}");
    let cookie = cookie.unwrap();
    let csrf = csrf_field(&page);
    let short = post_form(
        &c,
        &emailed,
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "Grace Hopper"),
            ("password", "short"),
        ],
    )
    .await;
    assert_eq!(short.status(), 422);
    let cookie = set_cookie(&short, "lookout_csrf").unwrap();
    let page = short.text().await.unwrap();
    assert!(page.contains("at least 8 characters") && page.contains("value=\"Grace Hopper\""));
    let csrf = csrf_field(&page);
    let joined = post_form(
        &c,
        &emailed,
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "Grace Hopper"),
            ("password", "cobol forever"),
        ],
    )
    .await;
    assert_eq!(joined.status(), 303, "joining signs in");
    let session = set_cookie(&joined, "lookout_session").unwrap();
    let (status, who) = me(&s, &session).await;
    assert_eq!(status, 200);
    assert_eq!(who["user"]["name"], "Grace Hopper");
    assert_eq!(who["user"]["status"], "active");
    assert_eq!(who["role"], "member");
    assert!(
        s.client().get("/api/v1/invitations").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Single use: the same link is refused, to a new visit and to a replayed form.
    let (status, _, page) = open_form(&c, &emailed).await;
    assert_eq!(status, 410);
    assert!(page.contains("no longer valid"), "{page}");
    let replay = post_form(
        &c,
        &emailed,
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "Mallory"),
            ("password", "taken over!"),
        ],
    )
    .await;
    assert_eq!(replay.status(), 410);
    assert!(log_in(&s, "grace@example.com", "taken over!")
        .await
        .is_none());
    assert!(log_in(&s, "grace@example.com", "cobol forever")
        .await
        .is_some());
    // A forged signature is refused before any lookup.
    let forged = format!("{}0", &emailed[..emailed.len() - 1]);
    assert_eq!(open_form(&c, &forged).await.0, 410);

    // Sent again: the old link dies, the new one works; withdrawn: the new one dies too.
    let l = s
        .client()
        .post(
            "/api/v1/users",
            json!({"email": "linus@example.com", "role": "viewer"}),
        )
        .await
        .expect(201);
    let lid = l["id"].as_i64().unwrap();
    let first = l["invite_url"].as_str().unwrap().to_string();
    let again = s
        .client()
        .post(&format!("/api/v1/invitations/{lid}/resend"), json!({}))
        .await
        .expect(200);
    let second = again["invite_url"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(open_form(&c, &first).await.0, 410);
    assert_eq!(open_form(&c, &second).await.0, 200);
    s.client()
        .delete(&format!("/api/v1/invitations/{lid}"))
        .await
        .expect(204);
    assert_eq!(open_form(&c, &second).await.0, 410);
    s.client()
        .get(&format!("/api/v1/users/{lid}"))
        .await
        .expect(404);
    s.client()
        .delete(&format!("/api/v1/invitations/{uid}"))
        .await
        .expect(404);

    // Expired: a link a week and a day old is refused.
    let e = s
        .client()
        .post("/api/v1/users", json!({"email": "late@example.com"}))
        .await
        .expect(201);
    let late = e["invite_url"].as_str().unwrap().to_string();
    let url = s.database_url().map_or_else(
        || lookout_store::Store::sqlite_url_for_dir(s.data_dir()),
        str::to_string,
    );
    let store = lookout_store::Store::open(&url).await.unwrap();
    sqlx::query("UPDATE account_links SET created_at = created_at - 691200000, expires_at = expires_at - 691200000 WHERE user_id = $1")
        .bind(e["id"].as_i64().unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    assert_eq!(open_form(&c, &late).await.0, 410);
    let pending = s.client().get("/api/v1/invitations").await.expect(200);
    assert_eq!(pending["items"][0]["email"], "late@example.com");
    assert_eq!(pending["items"][0]["expired"], true);
}

async fn users_change_their_password_and_sessions_and_reset_a_forgotten_one(backend: Backend) {
    let smtp = Smtp::start().await;
    let s = TestServer::start(bin(), backend).await;
    set_up_mail(&s, &smtp).await;
    s.client().user("ada@example.com", "viewer").await;
    s.client().user("bob@example.com", "member").await;
    let laptop = log_in(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap();
    let phone = log_in(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap();
    let bobs = log_in(&s, "bob@example.com", "correct horse battery")
        .await
        .unwrap();
    let csrf = csrf_of(&s, &laptop).await;
    let api = |session: &str, csrf: &str| s.anon().session(session, csrf);

    // One's own sessions: this one is marked; another user's cannot be ended.
    let listed = api(&laptop, &csrf)
        .get("/api/v1/me/sessions")
        .await
        .expect(200);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|i| i["current"] == true).count(), 1);
    let bob_csrf = csrf_of(&s, &bobs).await;
    let bob_session = api(&bobs, &bob_csrf)
        .get("/api/v1/me/sessions")
        .await
        .expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api(&laptop, &csrf)
        .delete(&format!("/api/v1/me/sessions/{bob_session}"))
        .await
        .expect(404);
    assert_eq!(me(&s, &bobs).await.0, 200);

    // A viewer renames themself; a blank name is refused.
    let renamed = api(&laptop, &csrf)
        .patch("/api/v1/me", json!({"name": "Ada Lovelace"}))
        .await
        .expect(200);
    assert_eq!(renamed["name"], "Ada Lovelace");
    api(&laptop, &csrf)
        .patch("/api/v1/me", json!({"name": "  "}))
        .await
        .expect(422);

    // A wrong current password changes nothing; the right one ends the phone's session.
    let wrong = api(&laptop, &csrf)
        .post(
            "/api/v1/me/password",
            json!({"current_password": "nope nope", "new_password": "analytical engine"}),
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.message().starts_with("current_password"));
    api(&laptop, &csrf)
        .post(
            "/api/v1/me/password",
            json!({"current_password": "correct horse battery", "new_password": "analytical engine"}),
        )
        .await
        .expect(204);
    assert_eq!(me(&s, &phone).await.0, 401, "other sessions end");
    assert_eq!(me(&s, &laptop).await.0, 200, "this one stays");
    assert!(log_in(&s, "ada@example.com", "correct horse battery")
        .await
        .is_none());
    let desk = log_in(&s, "ada@example.com", "analytical engine")
        .await
        .unwrap();
    // Ending one session from another.
    let listed = api(&laptop, &csrf)
        .get("/api/v1/me/sessions")
        .await
        .expect(200);
    let desk_id = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    api(&laptop, &csrf)
        .delete(&format!("/api/v1/me/sessions/{desk_id}"))
        .await
        .expect(204);
    assert_eq!(me(&s, &desk).await.0, 401);

    // A forgotten password: the answer is the same for an unknown address, and only the
    // account's owner gets mail.
    let unknown = s
        .anon()
        .post(
            "/api/v1/password-reset",
            json!({"email": "nobody@example.com"}),
        )
        .await
        .expect(202);
    let known = s
        .anon()
        .post(
            "/api/v1/password-reset",
            json!({"email": "ADA@example.com"}),
        )
        .await
        .expect(202);
    assert_eq!(unknown, known);
    let mail = smtp.wait(20, |t| readable(t).contains("/reset/")).await;
    assert!(!mail.contains("nobody@example.com"));
    let link = link_in(&mail, &s.at(""), "reset");
    let c = browser();
    let (status, cookie, page) = open_form(&c, &link).await;
    assert_eq!(status, 200);
    assert!(page.contains("ada@example.com"));
    let r = post_form(
        &c,
        &link,
        &cookie.unwrap(),
        &[
            ("csrf", &csrf_field(&page)),
            ("password", "difference engine"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303, "a reset signs in");
    let fresh = set_cookie(&r, "lookout_session").unwrap();
    assert_eq!(me(&s, &fresh).await.1["user"]["name"], "Ada Lovelace");
    assert_eq!(
        me(&s, &laptop).await.0,
        401,
        "a reset ends every old session"
    );
    assert!(log_in(&s, "ada@example.com", "difference engine")
        .await
        .is_some());
    assert_eq!(open_form(&c, &link).await.0, 410, "a reset link works once");
}
