//! Two-factor sign-in on the real binary, with codes computed by PyOTP (an implementation
//! independent of the server's): enrolment, the code asked after the password and before any
//! session, each code once, recovery codes once, a forged pending sign-in refused, enrolment at
//! sign-in when required, turning it off only when allowed and with the password.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::identity::{browser, csrf_of, log_in, me, post_form, set_cookie};
use super::sessions::{csrf_field, login_form};
use crate::bin;

lookout_testkit::both!(two_factor_codes_from_an_app_are_asked_before_a_session);

/// The code an authenticator app shows at `unix_s` for this base32 seed, computed by PyOTP (an
/// implementation independent of the server's).
pub(super) fn app_code(secret: &str, unix_s: u64) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, pyotp; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &unix_s.to_string(),
        ])
        .output()
        .expect("python3 (pip install pyotp)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs in with the password; the second-step page (its CSRF cookie and page) when one is
/// asked, the session cookie otherwise.
async fn password_step(
    s: &TestServer,
    email: &str,
    password: &str,
) -> Result<String, (String, String)> {
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
    if r.status() == 303 {
        return Ok(set_cookie(&r, "lookout_session").unwrap());
    }
    assert_eq!(r.status(), 200, "a right password asks for the second step");
    assert!(
        set_cookie(&r, "lookout_session").is_none(),
        "no session before the second factor"
    );
    let cookie = set_cookie(&r, "lookout_csrf").unwrap();
    Err((cookie, r.text().await.unwrap()))
}

/// The value of a page's hidden `pending` field.
pub(super) fn pending_field(html: &str) -> String {
    html.split("name=\"pending\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// Posts a code on the second-step page; the answer.
pub(super) async fn code_step(
    s: &TestServer,
    path: &str,
    step: &(String, String),
    code: &str,
) -> reqwest::Response {
    let (cookie, page) = step;
    post_form(
        &browser(),
        &s.at(path),
        cookie,
        &[
            ("csrf", &csrf_field(page)),
            ("pending", &pending_field(page)),
            ("code", code),
            ("next", "/"),
        ],
    )
    .await
}

async fn two_factor_codes_from_an_app_are_asked_before_a_session(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    s.client().user("ada@example.com", "member").await;
    let session = log_in(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap();
    let csrf = csrf_of(&s, &session).await;
    let ada = s.anon().session(&session, &csrf);

    // Enrolment: a seed, its otpauth URL and QR code; a wrong code is refused.
    // Not with an API token, not without the password.
    let token = s.client().token("member").await;
    let by_token = s
        .anon()
        .bearer(&token)
        .post(
            "/api/v1/me/totp",
            json!({"password": "correct horse battery"}),
        )
        .await;
    assert_eq!(by_token.status, 422);
    assert!(
        by_token.message().contains("session"),
        "{}",
        by_token.message()
    );
    let wrong = ada
        .post("/api/v1/me/totp", json!({"password": "not it at all"}))
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.message().starts_with("password"));
    let en = ada
        .post(
            "/api/v1/me/totp",
            json!({"password": "correct horse battery"}),
        )
        .await
        .expect(201);
    let secret = en["secret"].as_str().unwrap().to_string();
    assert!(en["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Lookout:ada%40example.com?"));
    assert!(en["qr_svg"].as_str().unwrap().starts_with("<svg"));
    let t0 = unix_now();
    let bad = ada
        .post("/api/v1/me/totp/confirm", json!({"code": "12345"}))
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.message().starts_with("code"));
    let codes = ada
        .post(
            "/api/v1/me/totp/confirm",
            json!({"code": app_code(&secret, t0)}),
        )
        .await
        .expect(200)["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(codes.len(), 10);
    // The seed is sealed at rest.
    let url = s.database_url().map_or_else(
        || lookout_store::Store::sqlite_url_for_dir(s.data_dir()),
        str::to_string,
    );
    let store = lookout_store::Store::open(&url).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT secret FROM user_totp")
        .fetch_one(store.pool())
        .await
        .unwrap();
    store.close().await;
    assert!(lookout_core::seal::is_sealed(&stored), "{stored}");

    // Signing in: the password, then the code, and only then a session.
    let step = password_step(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap_err();
    assert!(step.1.contains("authenticator app"));
    let wrong = code_step(&s, "/login/code", &step, "000000").await;
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(&wrong, "lookout_session").is_none());
    let next_code = app_code(&secret, t0 + 30);
    let ok = code_step(&s, "/login/code", &step, &next_code).await;
    assert_eq!(ok.status(), 303);
    assert_eq!(
        me(&s, &set_cookie(&ok, "lookout_session").unwrap()).await.0,
        200
    );
    // A code works once; a recovery code instead, once.
    let step = password_step(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap_err();
    assert_eq!(
        code_step(&s, "/login/code", &step, &next_code)
            .await
            .status(),
        401
    );
    let ok = code_step(&s, "/login/code", &step, &codes[0].to_uppercase()).await;
    assert_eq!(
        ok.status(),
        303,
        "recovery codes are read whatever their case"
    );
    // Its pending token replayed after it signed in, even with a right code: over, no session,
    // and the recovery code is not spent.
    let replay = code_step(&s, "/login/code", &step, &codes[1]).await;
    assert_eq!(replay.status(), 403);
    assert!(set_cookie(&replay, "lookout_session").is_none());
    assert!(replay.text().await.unwrap().contains("Sign-in expired"));
    let step = password_step(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap_err();
    assert_eq!(
        code_step(&s, "/login/code", &step, &codes[0])
            .await
            .status(),
        401
    );
    let st = ada.get("/api/v1/me/totp").await.expect(200);
    assert_eq!(st["enabled"], true);
    assert_eq!(st["recovery_codes_left"], 9);
    // A forged pending sign-in is refused.
    let (cookie, page) = &step;
    let forged = page.replace(&pending_field(page), "2.9999999999999.00.abc");
    assert_eq!(
        code_step(&s, "/login/code", &(cookie.clone(), forged), &codes[1])
            .await
            .status(),
        403
    );

    // Required of everyone: a user without it enrols at sign-in, before a session exists.
    s.client()
        .put("/api/v1/settings/security", json!({"require_totp": true}))
        .await
        .expect(200);
    s.client().user("bob@example.com", "viewer").await;
    let step = password_step(&s, "bob@example.com", "correct horse battery")
        .await
        .unwrap_err();
    assert!(step.1.contains("<svg"), "the QR code is on the page");
    let bob_secret = step
        .1
        .split("id=\"totp-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let r = code_step(
        &s,
        "/login/enrol",
        &step,
        &app_code(&bob_secret, unix_now()),
    )
    .await;
    assert_eq!(r.status(), 200);
    let bob = set_cookie(&r, "lookout_session").unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"recovery-codes\""), "{page}");
    assert_eq!(me(&s, &bob).await.1["user"]["email"], "bob@example.com");

    // Turning it off: not while required; then only with the password.
    let off = ada
        .post(
            "/api/v1/me/totp/disable",
            json!({"password": "correct horse battery"}),
        )
        .await;
    assert_eq!(off.status, 409);
    s.client()
        .put("/api/v1/settings/security", json!({"require_totp": false}))
        .await
        .expect(200);
    ada.post("/api/v1/me/totp/disable", json!({"password": "wrong one!"}))
        .await
        .expect(422);
    ada.post(
        "/api/v1/me/totp/disable",
        json!({"password": "correct horse battery"}),
    )
    .await
    .expect(204);
    assert!(
        password_step(&s, "ada@example.com", "correct horse battery")
            .await
            .is_ok()
    );
    // Required of one user by an admin.
    let uid = me(&s, &session).await.1["user"]["id"].as_i64().unwrap();
    s.client()
        .put(
            &format!("/api/v1/users/{uid}/totp-required"),
            json!({"required": true}),
        )
        .await
        .expect(200);
    let step = password_step(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap_err();
    assert!(
        step.1.contains("id=\"totp-secret\""),
        "enrolment asked at sign-in"
    );
}
