//! The audit log on the real binary: API changes, a form, a failed and a right sign-in, newest
//! first with actor, address and target; filters, keyset paging, admins only, no secret in it
//! (masked in settings' before and after, never sealed or in clear).

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::identity::{browser, csrf_of, log_in};
use crate::bin;

lookout_testkit::both!(
    the_audit_log_names_who_changed_what_and_from_where,
    every_configuration_change_commits_with_its_audit_entry
);

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

/// Teams, projects, users and invitations, API tokens, settings, runbooks, integrations,
/// schedule overrides, status pages, locations and report settings, changed through the API:
/// each change has its entry, written in the change's own transaction (the store marks those
/// "with the change"; entries the middleware writes after the fact carry the answer's status
/// instead). Settings show before and after with secrets masked; a token's secret and an
/// integration's key appear nowhere in the log.
async fn every_configuration_change_commits_with_its_audit_entry(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let c = s.client();
    let uid = c.user("ada@example.com", "admin").await;
    let ok = |r: lookout_testkit::Response| {
        assert!(r.status.as_u16() < 300, "{} {}", r.status, r.message());
        r
    };
    let id = |v: &serde_json::Value| v["id"].as_i64().unwrap();

    let team = id(&c
        .post("/api/v1/teams", json!({"name": "Payments"}))
        .await
        .expect(201));
    ok(
        c.put(&format!("/api/v1/teams/{team}/members/{uid}"), json!({}))
            .await,
    );
    ok(
        c.put(&format!("/api/v1/teams/{team}"), json!({"name": "Pay"}))
            .await,
    );
    ok(c.delete(&format!("/api/v1/teams/{team}/members/{uid}"))
        .await);
    let project = id(&c
        .post("/api/v1/projects", json!({"name": "shop"}))
        .await
        .expect(201));
    ok(c.patch(
        &format!("/api/v1/projects/{project}"),
        json!({"name": "Shop"}),
    )
    .await);
    let invited = c
        .post(
            "/api/v1/users",
            json!({"email": "bea@example.com", "name": "Bea", "role": "member"}),
        )
        .await
        .expect(201);
    ok(c.post(
        &format!("/api/v1/invitations/{}/resend", id(&invited)),
        json!({}),
    )
    .await);
    ok(c.delete(&format!("/api/v1/invitations/{}", id(&invited)))
        .await);
    let token = c
        .post("/api/v1/tokens", json!({"name": "ci", "role": "member"}))
        .await
        .expect(201);
    let secret = token["token"].as_str().unwrap().to_string();
    ok(c.delete(&format!("/api/v1/tokens/{}", id(&token))).await);
    c.put(
        "/api/v1/settings/mail",
        json!({"smtp_host": "127.0.0.1", "password": "mail-s3cret", "from": "ops@example.com"}),
    )
    .await
    .expect(200);
    c.put(
        "/api/v1/settings/mail",
        json!({"smtp_host": "127.0.0.2", "password": "other-s3cret", "from": "ops@example.com"}),
    )
    .await
    .expect(200);
    let rb = id(&c
        .post(
            "/api/v1/runbooks",
            json!({"name": "Disk", "body": "# Disk\n\nFree space."}),
        )
        .await
        .expect(201));
    ok(c.put(
        &format!("/api/v1/runbooks/{rb}"),
        json!({"name": "Disk", "body": "# Disk\n\nMore."}),
    )
    .await);
    let ep = id(&c
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "primary", "num_loops": 0, "escalation_rules": [
            {"escalation_delay_in_minutes": 30, "targets": [{"type": "user", "id": uid}]}]}),
        )
        .await
        .expect(201));
    let integration = c
        .post(
            "/api/v1/integrations",
            json!({"name": "pd", "type": "pagerduty", "escalation_policy_id": ep}),
        )
        .await
        .expect(201);
    let schedule = id(&c
        .post(
            "/api/v1/schedules",
            json!({"name": "Primary", "time_zone": "UTC", "schedule_layers": [{
            "start": "2026-03-01T00:00:00Z", "rotation_virtual_start": "2026-03-01T00:00:00Z",
            "rotation_turn_length_seconds": 604800, "users": [uid]}]}),
        )
        .await
        .expect(201));
    c.post(
        &format!("/api/v1/schedules/{schedule}/overrides"),
        json!({"start": "2026-03-25T12:00:00Z", "end": "2026-03-25T18:00:00Z", "user": uid}),
    )
    .await
    .expect(201);
    let page = id(&c
        .post(
            "/api/v1/status-pages",
            json!({"slug": "acme", "title": "Acme"}),
        )
        .await
        .expect(201));
    ok(c.delete(&format!("/api/v1/status-pages/{page}")).await);
    let created = c
        .post("/api/v1/locations", json!({"name": "eu-west"}))
        .await
        .expect(201);
    let location = id(&created["location"]);
    ok(c.patch(
        &format!("/api/v1/locations/{location}"),
        json!({"description": "Dublin"}),
    )
    .await);
    let rotated = ok(c
        .post(&format!("/api/v1/locations/{location}/token"), json!({}))
        .await)
    .json;
    ok(c.delete(&format!("/api/v1/locations/{location}/token"))
        .await);
    ok(
        c.put("/api/v1/settings/security", json!({"require_totp": false}))
            .await,
    );
    let cy = c.user("cy@example.com", "viewer").await;
    ok(c.put(
        &format!("/api/v1/users/{cy}/totp-required"),
        json!({"required": true}),
    )
    .await);
    ok(c.delete(&format!("/api/v1/users/{cy}")).await);
    ok(c.put(
        "/api/v1/report-settings",
        json!({"timezone": "Europe/Berlin"}),
    )
    .await);
    ok(c.delete(&format!("/api/v1/teams/{team}")).await);

    let log = c.get("/api/v1/audit?limit=200").await.expect(200);
    let items = log["items"].as_array().unwrap();
    let made: Vec<&str> = items
        .iter()
        .rev()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    let expected = [
        "POST /api/v1/users",
        "POST /api/v1/teams",
        "PUT /api/v1/teams/{id}/members/{id}",
        "PUT /api/v1/teams/{id}",
        "DELETE /api/v1/teams/{id}/members/{id}",
        "POST /api/v1/projects",
        "PATCH /api/v1/projects/{id}",
        "POST /api/v1/users",
        "POST /api/v1/invitations/{id}/resend",
        "DELETE /api/v1/invitations/{id}",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{id}",
        "PUT /api/v1/settings/mail",
        "PUT /api/v1/settings/mail",
        "POST /api/v1/runbooks",
        "PUT /api/v1/runbooks/{id}",
        "POST /api/v1/escalation-policies",
        "POST /api/v1/integrations",
        "POST /api/v1/schedules",
        "POST /api/v1/schedules/{id}/overrides",
        "POST /api/v1/status-pages",
        "DELETE /api/v1/status-pages/{id}",
        "POST /api/v1/locations",
        "PATCH /api/v1/locations/{id}",
        "POST /api/v1/locations/{id}/token",
        "DELETE /api/v1/locations/{id}/token",
        "PUT /api/v1/settings/security",
        "POST /api/v1/users",
        "PUT /api/v1/users/{id}/totp-required",
        "DELETE /api/v1/users/{id}",
        "PUT /api/v1/report-settings",
        "DELETE /api/v1/teams/{id}",
    ];
    assert_eq!(made, expected, "oldest first, one entry per change");
    for i in items {
        let details = &i["details"];
        let in_tx = details["recorded"] == "with the change" || details.get("before").is_some();
        assert!(in_tx, "not written with its change: {i}");
    }
    assert_eq!(items[0]["target"], team.to_string());
    // Settings: before and after, the password masked in both.
    let mail: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| i["action"] == "PUT /api/v1/settings/mail")
        .collect();
    assert_eq!(mail[0]["details"]["before"]["smtp_host"], "127.0.0.1");
    assert_eq!(mail[0]["details"]["after"]["smtp_host"], "127.0.0.2");
    assert_eq!(mail[1]["details"]["before"], serde_json::Value::Null);
    // The password is there as a mask: changed or not, never its value or its sealed form.
    assert_eq!(mail[0]["details"]["before"]["password"], "********");
    assert_eq!(mail[0]["details"]["after"]["password"], "********");
    assert_eq!(mail[1]["details"]["after"]["password"], "********");
    let text = log.to_string();
    let location_token = rotated["token"].as_str().unwrap();
    for secret in [
        "mail-s3cret",
        "other-s3cret",
        secret.as_str(),
        integration["key"].as_str().unwrap_or("no key shown"),
        location_token,
        created["token"].as_str().unwrap(),
        // What a sealed credential starts with: none is copied into an entry either.
        "enc:v1:",
    ] {
        assert!(!text.contains(secret), "{secret} is in the audit log");
    }
}
