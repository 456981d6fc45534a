//! The emailed links do not get around the second factor: a reset link proves the mailbox, not
//! the authenticator app, so a user with two-factor sign-in still types a code after choosing a
//! new password; an invited colleague whose installation requires two-factor sign-in sets it up
//! before a session exists. Codes computed by PyOTP, mail through a real SMTP server (aiosmtpd).

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::identity::{
    browser, csrf_of, link_in, log_in, me, open_form, post_form, readable, set_cookie, set_up_mail,
};
use super::sessions::csrf_field;
use super::two_factor::{app_code, code_step, unix_now};
use crate::alerting::Smtp;
use crate::bin;

lookout_testkit::both!(emailed_links_still_ask_for_the_second_factor);

/// Posts a link's form (its CSRF cookie and field); the answer, which must not be a session.
async fn post_link_form(link: &str, fields: &[(&str, &str)]) -> (String, String) {
    let c = browser();
    let (status, cookie, page) = open_form(&c, link).await;
    assert_eq!(status, 200, "{page}");
    let csrf = csrf_field(&page);
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let r = post_form(&c, link, &cookie.unwrap(), &all).await;
    assert_eq!(
        r.status(),
        200,
        "the second step, not a redirect into the app"
    );
    assert!(
        set_cookie(&r, "lookout_session").is_none(),
        "no session before the second factor"
    );
    let cookie = set_cookie(&r, "lookout_csrf").unwrap();
    (cookie, r.text().await.unwrap())
}

async fn emailed_links_still_ask_for_the_second_factor(backend: Backend) {
    let smtp = Smtp::start().await;
    let s = TestServer::start(bin(), backend).await;
    set_up_mail(&s, &smtp).await;

    // Ada turns on two-factor sign-in.
    s.client().user("ada@example.com", "member").await;
    let session = log_in(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap();
    let csrf = csrf_of(&s, &session).await;
    let ada = s.anon().session(&session, &csrf);
    let en = ada
        .post(
            "/api/v1/me/totp",
            json!({"password": "correct horse battery"}),
        )
        .await
        .expect(201);
    let secret = en["secret"].as_str().unwrap().to_string();
    let t0 = unix_now();
    let recovery = ada
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

    // She forgets her password: the reset link sets a new one, then asks for the code.
    s.anon()
        .post(
            "/api/v1/password-reset",
            json!({"email": "ada@example.com"}),
        )
        .await
        .expect(202);
    let mail = smtp.wait(20, |t| readable(t).contains("/reset/")).await;
    let link = link_in(&mail, &s.at(""), "reset");
    let step = post_link_form(&link, &[("password", "difference engine")]).await;
    assert!(step.1.contains("authenticator app"), "{}", step.1);
    let wrong = code_step(&s, "/login/code", &step, "000000").await;
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(&wrong, "lookout_session").is_none());
    let ok = code_step(&s, "/login/code", &step, &app_code(&secret, t0 + 30)).await;
    assert_eq!(ok.status(), 303);
    let fresh = set_cookie(&ok, "lookout_session").unwrap();
    assert_eq!(me(&s, &fresh).await.1["user"]["email"], "ada@example.com");

    // A new phone: the password alone is not enough while a device is enrolled; with a code
    // from the old one (here a recovery code) a new enrolment starts.
    let fresh_csrf = csrf_of(&s, &fresh).await;
    let ada = s.anon().session(&fresh, &fresh_csrf);
    let no_code = ada
        .post("/api/v1/me/totp", json!({"password": "difference engine"}))
        .await;
    assert_eq!(no_code.status, 422);
    assert!(
        no_code.message().starts_with("code"),
        "{}",
        no_code.message()
    );
    let again = ada
        .post(
            "/api/v1/me/totp",
            json!({"password": "difference engine", "code": recovery[0]}),
        )
        .await
        .expect(201);
    assert_ne!(again["secret"], secret.as_str());
    // Lost again before confirming: an admin clears it, and the audit log says so.
    let ada_id = me(&s, &fresh).await.1["user"]["id"].as_i64().unwrap();
    let viewer = s.client().token("viewer").await;
    s.anon()
        .bearer(&viewer)
        .delete(&format!("/api/v1/users/{ada_id}/totp"))
        .await
        .expect(403);
    s.client()
        .delete(&format!("/api/v1/users/{ada_id}/totp"))
        .await
        .expect(204);
    assert_eq!(
        ada.get("/api/v1/me/totp").await.expect(200)["enabled"],
        false
    );
    let audit = s
        .client()
        .get("/api/v1/audit")
        .await
        .expect(200)
        .to_string();
    assert!(audit.contains("DELETE /api/v1/users/{id}/totp"), "{audit}");

    // Required of everyone: an invited colleague enrols before any session exists.
    s.client()
        .put("/api/v1/settings/security", json!({"require_totp": true}))
        .await
        .expect(200);
    let u = s
        .client()
        .post(
            "/api/v1/users",
            json!({"email": "grace@example.com", "name": "Grace", "role": "member"}),
        )
        .await
        .expect(201);
    let invite = u["invite_url"].as_str().unwrap().to_string();
    let step = post_link_form(
        &invite,
        &[("name", "Grace"), ("password", "correct horse battery")],
    )
    .await;
    assert!(step.1.contains("id=\"totp-secret\""), "enrolment is asked");
    let grace_secret = step
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
        &app_code(&grace_secret, unix_now()),
    )
    .await;
    assert_eq!(r.status(), 200);
    let grace = set_cookie(&r, "lookout_session").unwrap();
    assert_eq!(me(&s, &grace).await.1["user"]["email"], "grace@example.com");
    // The invitation was spent by the password step: it cannot start another sign-in.
    assert_eq!(open_form(&browser(), &invite).await.0, 410);
}
