//! The audit log on the real binary: API changes, a form, a failed and a right sign-in, newest
//! first with actor, address and target; filters, keyset paging, admins only, no secret in it.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::identity::{browser, csrf_of, log_in};
use crate::bin;

lookout_testkit::both!(the_audit_log_names_who_changed_what_and_from_where);

async fn the_audit_log_names_who_changed_what_and_from_where(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let uid = s.client().user("ada@example.com", "admin").await;
    let ep = s
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "primary", "num_loops": 0, "escalation_rules": [
            {"escalation_delay_in_minutes": 30, "targets": [{"type": "user", "id": uid}]}]}),
        )
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    s.client()
        .put(
            "/api/v1/settings/mail",
            json!({"smtp_host": "127.0.0.1", "password": "mail-s3cret", "from": "ops@example.com"}),
        )
        .await
        .expect(200);
    // A refused write is not a change.
    s.client()
        .put(
            "/api/v1/settings/mail",
            json!({"smtp_host": "", "from": "x"}),
        )
        .await
        .expect(422);
    assert!(log_in(&s, "ada@example.com", "not her password")
        .await
        .is_none());
    let session = log_in(&s, "ada@example.com", "correct horse battery")
        .await
        .unwrap();
    let csrf = csrf_of(&s, &session).await;
    // A form, as the UI posts it.
    let r = browser()
        .post(s.at("/settings/security"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("require_totp", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let log = s.client().get("/api/v1/audit").await.expect(200);
    let items = log["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "POST /settings/security",
            "session.login",
            "session.login_failed",
            "PUT /api/v1/settings/mail",
            "POST /api/v1/escalation-policies",
            "POST /api/v1/users",
        ],
        "newest first; the refused write is not there"
    );
    let form = &items[0];
    assert_eq!(form["actor"], format!("user:{uid}"));
    assert_eq!(form["actor_label"], "ada@example.com");
    assert_eq!(form["address"], "127.0.0.1");
    assert_eq!(items[2]["actor"], "email:ada@example.com");
    assert!(items[4]["actor"].as_str().unwrap().starts_with("token:"));
    assert!(
        !log.to_string().contains("mail-s3cret"),
        "secrets are never recorded"
    );
    // A change to one policy names it as the target.
    s.client()
        .delete(&format!("/api/v1/escalation-policies/{ep}"))
        .await
        .expect(204);

    // Filters and keyset paging.
    let only = s
        .client()
        .get("/api/v1/audit?action=escalation-policies")
        .await
        .expect(200);
    let only = only["items"].as_array().unwrap();
    assert_eq!(only.len(), 2);
    assert_eq!(only[0]["action"], "DELETE /api/v1/escalation-policies/{id}");
    assert_eq!(only[0]["target"], ep.to_string());
    let hers = s.client().get("/api/v1/audit?actor=ada@").await.expect(200);
    assert_eq!(hers["items"].as_array().unwrap().len(), 3);
    let later = s
        .client()
        .get("/api/v1/audit?since=2999-01-01T00:00:00Z")
        .await
        .expect(200);
    assert!(later["items"].as_array().unwrap().is_empty());
    let bad = s.client().get("/api/v1/audit?since=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.message().starts_with("since"));
    let first = s.client().get("/api/v1/audit?limit=4").await.expect(200);
    let next = first["next"].as_str().unwrap();
    let second = s
        .client()
        .get(&format!("/api/v1/audit?limit=4&cursor={next}"))
        .await
        .expect(200);
    let mut all: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|i| i["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), 7);
    all.dedup();
    assert_eq!(all.len(), 7, "no entry on two pages");
    assert!(second["next"].is_null());

    // Admins only; the page shows the same.
    let viewer = s.client().token("viewer").await;
    s.anon()
        .bearer(&viewer)
        .get("/api/v1/audit")
        .await
        .expect(403);
    let page = browser()
        .get(s.at("/settings/audit?action=login"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("session.login_failed") && !page.contains("/api/v1/users"));

    // A password typed into the email field is not kept in clear: only a hash of what matched
    // no account.
    assert!(log_in(&s, "hunter2-secret", "whatever").await.is_none());
    let log = s
        .client()
        .get("/api/v1/audit?action=login_failed")
        .await
        .expect(200);
    let newest = &log["items"][0];
    let actor = newest["actor"].as_str().unwrap();
    assert!(actor.starts_with("email:unknown:"), "{actor}");
    assert!(!log.to_string().contains("hunter2"), "{log}");
}
