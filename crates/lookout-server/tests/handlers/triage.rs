//! Teams and triage, in process: who may change teams, assign, comment and set ownership rules,
//! and the refusals of bad input (a taken slug, an unknown assignee, an empty comment, a wrong
//! ownership line, an oversized search, a forged feed token).

use lookout_core::Role;
use lookout_testkit::{both, Backend};
use serde_json::json;

use crate::incident_actions::{form, session, FORM};
use crate::Harness;

both!(teams_triage_roles_and_validation);

async fn teams_triage_roles_and_validation(backend: Backend) {
    let h = Harness::new(backend).await;
    // Teams: admin only for changes; everyone reads.
    assert_eq!(
        h.member
            .post("/api/v1/teams", json!({"name": "Ops"}))
            .await
            .status,
        403
    );
    let t = h
        .admin
        .post("/api/v1/teams", json!({"name": "Ops", "slug": "#ops"}))
        .await
        .expect(201);
    assert_eq!(t["slug"], "ops");
    assert_eq!(
        h.viewer.get("/api/v1/teams").await.expect(200)["items"][0]["slug"],
        "ops"
    );
    let r = h.admin.post("/api/v1/teams", json!({"name": ""})).await;
    assert_eq!(r.status, 422);
    assert!(r.message().starts_with("name"), "{}", r.message());
    let r = h.admin.post("/api/v1/teams", json!({"name": "Ops"})).await;
    assert_eq!(r.status, 409);
    let r = h
        .admin
        .post("/api/v1/teams", json!({"name": "x", "owner": 1}))
        .await;
    assert_eq!(r.status, 400, "unknown fields are refused: {}", r.text());
    let r = h
        .admin
        .put("/api/v1/teams/1", json!({"escalation_policy_id": 42}))
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.message().starts_with("escalation_policy_id"),
        "{}",
        r.message()
    );

    // Ownership rules: admin only; the wrong line is named.
    let rules = json!({"raw": "path:src/* #ops"});
    assert_eq!(
        h.member
            .put("/api/v1/projects/1/ownership", rules.clone())
            .await
            .status,
        403
    );
    h.admin
        .put("/api/v1/projects/1/ownership", rules)
        .await
        .expect(200);
    let r = h
        .admin
        .put(
            "/api/v1/projects/1/ownership",
            json!({"raw": "path:a/* #ops\n\nurl:* nobody\n"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.message().contains("line 3"), "{}", r.message());
    let r = h
        .admin
        .put(
            "/api/v1/projects/1/ownership",
            json!({"raw": "path:* #ops\n".repeat(6000)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.message().contains("longer than 65536 bytes"),
        "{}",
        r.message()
    );
    // Under the size cap, over the rule count: the error names the first rule too many.
    let r = h
        .admin
        .put(
            "/api/v1/projects/1/ownership",
            json!({"raw": "path:* #ops\n".repeat(501)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.message().contains("line 501"), "{}", r.message());
    assert!(r.message().contains("at most 500 rules"), "{}", r.message());
    assert_eq!(
        h.viewer
            .get("/api/v1/projects/1/ownership")
            .await
            .expect(200)["raw"],
        "path:src/* #ops"
    );

    // A rename the saved rules would no longer match is refused, naming project and line; a
    // change of the name alone keeps the slug.
    let tid = t["id"].as_i64().unwrap();
    let r = h
        .admin
        .put(&format!("/api/v1/teams/{tid}"), json!({"slug": "ops-2"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.message().starts_with("slug") && r.message().contains("project 1 name #ops (line 1)"),
        "{}",
        r.message()
    );
    let renamed = h
        .admin
        .put(
            &format!("/api/v1/teams/{tid}"),
            json!({"name": "Operations"}),
        )
        .await
        .expect(200);
    assert_eq!(
        (renamed["slug"].as_str(), renamed["name"].as_str()),
        (Some("ops"), Some("Operations"))
    );
    // Members' emails are for admins; other roles see the member without it.
    h.admin
        .put(&format!("/api/v1/teams/{tid}/members/1"), json!({}))
        .await
        .expect(204);
    let seen = h
        .viewer
        .get(&format!("/api/v1/teams/{tid}"))
        .await
        .expect(200);
    assert_eq!(seen["members"][0]["id"], 1);
    assert!(seen["members"][0]["email"].is_null(), "{seen}");
    let seen = h
        .admin
        .get(&format!("/api/v1/teams/{tid}"))
        .await
        .expect(200);
    assert!(seen["members"][0]["email"].is_string(), "{seen}");

    // Assigning and commenting need an issue; viewers are refused before that.
    assert_eq!(
        h.viewer
            .put("/api/v1/issues/1/assignee", json!({"assignedTo": "me"}))
            .await
            .status,
        403
    );
    assert_eq!(
        h.member
            .put("/api/v1/issues/999/assignee", json!({"assignedTo": ""}))
            .await
            .status,
        404
    );
    assert_eq!(
        h.member
            .post("/api/v1/issues/999/comments", json!({"text": "hi"}))
            .await
            .status,
        404
    );
    assert_eq!(
        h.viewer
            .put("/api/0/issues/1/", json!({"assignedTo": ""}))
            .await
            .status,
        403
    );
    let r = h
        .member
        .put("/api/v1/issues/1/assignee", json!({"assignedTo": "me"}))
        .await;
    assert_eq!(
        r.status,
        422,
        "a token of no user has no 'me': {}",
        r.text()
    );

    // Bulk assignment from the issue list: a viewer is refused before the body is read (even
    // one that is not JSON); the count is bounded; unknown issues change nothing.
    let r = h
        .viewer
        .send(
            axum::http::Method::PUT,
            "/api/v1/issues/assignee",
            lookout_testkit::Body::Bytes(b"not json".to_vec()),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h
        .viewer
        .send(
            axum::http::Method::PUT,
            "/api/0/projects/default/default/issues/?id=1",
            lookout_testkit::Body::Bytes(b"not json".to_vec()),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h
        .member
        .put(
            "/api/0/projects/default/default/issues/?id=x",
            json!({"assignedTo": ""}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = h
        .member
        .put(
            "/api/v1/issues/assignee",
            json!({"ids": [], "assignedTo": "#ops"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.message().starts_with("ids"), "{}", r.message());
    let many: Vec<i64> = (1..=101).collect();
    let r = h
        .member
        .put(
            "/api/v1/issues/assignee",
            json!({"ids": many, "assignedTo": "#ops"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.message().contains("at most 100"), "{}", r.message());
    let r = h
        .member
        .put(
            "/api/v1/issues/assignee",
            json!({"ids": [998, 999], "assignedTo": "#ops"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = h
        .member
        .put(
            "/api/v1/issues/assignee",
            json!({"ids": [1], "assignedTo": "#ghosts"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.message().contains("#ghosts"), "{}", r.message());

    // Sentry's bulk update names no issue: refused naming `id` (not "every issue").
    let r = h
        .member
        .put(
            "/api/0/projects/default/default/issues/",
            json!({"assignedTo": ""}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.message().starts_with("id"), "{}", r.message());

    // The list's bulk-assign form: a viewer is refused, and so is a wrong or missing CSRF token;
    // none of them is a 500.
    let (viewer_ui, viewer_csrf) = session(&h, Role::Viewer).await;
    let r = viewer_ui
        .post_raw(
            "/errors/assign",
            FORM,
            form(&[("csrf", &viewer_csrf), ("id", "1"), ("assigned_to", "#ops")]),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let (member_ui, _) = session(&h, Role::Member).await;
    for csrf in [&[("csrf", "forged")][..], &[][..]] {
        let mut pairs = csrf.to_vec();
        pairs.extend([("id", "1"), ("assigned_to", "#ops"), ("back", "/errors")]);
        let r = member_ui
            .post_raw("/errors/assign", FORM, form(&pairs))
            .await;
        assert!(
            r.status == 403 || r.status == 400,
            "CSRF {csrf:?}: {} {}",
            r.status,
            r.text()
        );
    }

    // Searches are bounded and name unknown teams.
    let long = "a".repeat(600);
    let r = h
        .viewer
        .get(&format!("/api/v1/projects/1/issues?query={long}"))
        .await;
    assert_eq!(r.status, 422);
    let r = h
        .viewer
        .get("/api/v1/projects/1/issues?query=assigned%3A%23ghosts")
        .await;
    assert_eq!(r.status, 422);
    assert!(r.message().contains("#ghosts"), "{}", r.message());
    h.viewer
        .get("/api/v1/projects/1/issues?query=assigned%3A%23ops+is%3Aunassigned")
        .await
        .expect(200);

    // The calendar feed: a forged or missing token is 401, never a 500 or another's shifts.
    let forged = format!("?token={}", "0".repeat(48));
    for q in ["", "?token=", "?token=zz", forged.as_str()] {
        assert_eq!(
            h.anon
                .get(&format!("/api/v1/me/oncall.ics{q}"))
                .await
                .status,
            401,
            "{q}"
        );
    }
}
