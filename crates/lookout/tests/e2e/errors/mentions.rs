//! Mentions in comments and bulk assignment on the real binary, with a real SMTP server
//! (aiosmtpd): `@name`, `@email` and `#team` in a comment are kept with it, linked on the issue
//! page and emailed to whom they name (a team's members), never to the author; a name that finds
//! nobody stays text. Ticked issues of the list are assigned at once, through the API and the
//! list's form, all or none.

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use super::triage::{page_text, send_event, sign_in};
use super::*;
use crate::alerting::Smtp;
use crate::foundation::identity::{readable, set_up_mail};

lookout_testkit::both!(mentions_are_linked_and_emailed_and_issues_assigned_in_bulk);

async fn mentions_are_linked_and_emailed_and_issues_assigned_in_bulk(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let smtp = Smtp::start().await;
    set_up_mail(&s, &smtp).await;
    let admin = s.client();
    let ada = admin.user("ada@example.com", "member").await;
    let bob = admin.user("bob@example.com", "member").await;
    let team = admin
        .post("/api/v1/teams", json!({"name": "Payments"}))
        .await
        .expect(201);
    let tid = team["id"].as_i64().unwrap();
    // Carol is invited to the team's installation but never joined: a #team mention skips her.
    let carol = admin
        .post(
            "/api/v1/users",
            json!({"email": "carol@example.com", "role": "member"}),
        )
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    admin.user("dan@example.com", "member").await;
    for member in [bob, carol] {
        admin
            .put(&format!("/api/v1/teams/{tid}/members/{member}"), json!({}))
            .await
            .expect(204);
    }
    let (ada_api, browser, cookie, csrf) = sign_in(&s, "ada@example.com").await;
    send_event(&s, "TimeoutError", "eu").await;
    send_event(&s, "KeyError", "eu").await;
    let issues = wait_issues(&s, |i| i.len() == 2).await;
    let all: Vec<i64> = issues.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    let first = all[0];

    // Ada mentions herself (no mail to the author), Bob's team, by email, and someone unknown.
    let note = ada_api
        .post(
            &format!("/api/v1/issues/{first}/comments"),
            json!({"text": "@ada and #payments, see this. cc @BOB@example.com and @nobody."}),
        )
        .await
        .expect(201);
    let mentions = note["data"]["mentions"].as_array().unwrap();
    let named: Vec<(&str, &str, i64)> = mentions
        .iter()
        .map(|m| {
            (
                m["text"].as_str().unwrap(),
                m["type"].as_str().unwrap(),
                m["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        vec![
            ("@ada", "user", ada),
            ("#payments", "team", tid),
            ("@BOB@example.com", "user", bob)
        ]
    );
    // Bob gets one email (as a team member and by address), with the comment and its link.
    let mail = smtp
        .wait(20, |t| {
            t.contains("bob@example.com") && readable(t).contains("#activity-")
        })
        .await;
    let text = readable(&mail);
    assert!(text.contains("ada@example.com mentioned you on"), "{text}");
    assert!(text.contains("cc @BOB@example.com"), "{text}");
    assert!(
        text.contains(&format!("/errors/issues/{first}#activity-{}", note["id"])),
        "{text}"
    );
    assert!(
        !text.contains("mail-s3cret"),
        "the SMTP password is not in the mail"
    );
    assert_eq!(
        text.matches("mentioned you on").count(),
        1,
        "one email to Bob, none to the author: {text}"
    );
    // Mentioning Bob again on the same issue, twice, mails nobody (one mail per person and issue
    // every 10 minutes); Dan, new on this issue, is mailed, and after his mail the count says
    // Bob got one and Carol (invited, not joined) none.
    for _ in 0..2 {
        ada_api
            .post(
                &format!("/api/v1/issues/{first}/comments"),
                json!({"text": "@bob, again"}),
            )
            .await
            .expect(201);
    }
    ada_api
        .post(
            &format!("/api/v1/issues/{first}/comments"),
            json!({"text": "@dan have a look"}),
        )
        .await
        .expect(201);
    let all_mail = readable(&smtp.wait(20, |t| readable(t).contains("have a look")).await);
    assert_eq!(
        all_mail.matches("mentioned you on").count(),
        2,
        "Bob once, Dan once, Carol never: {all_mail}"
    );
    assert!(!all_mail.contains("@bob, again"), "{all_mail}");

    // A filter on a value the menus do not offer (they list recently seen issues' values) stays
    // selected, so submitting the form again keeps it; the page's issues are filtered by it.
    let list = page_text(
        &browser,
        &cookie,
        s.at("/errors?environment=staging-2019&release=old%401"),
    )
    .await;
    assert!(
        list.contains("<option selected>staging-2019</option>"),
        "{list}"
    );
    assert!(list.contains("<option selected>old@1</option>"), "{list}");
    assert!(!list.contains("TimeoutError"), "{list}");

    // The page links what the mentions name (to what is assigned to them); @nobody is text.
    let page = page_text(&browser, &cookie, s.at(&format!("/errors/issues/{first}"))).await;
    assert!(
        page.contains(
            "<a class=\"mention\" href=\"/errors?query=assigned%3A%23payments\">#payments</a>"
        ),
        "{page}"
    );
    assert!(
        page.contains(
            "<a class=\"mention\" href=\"/errors?query=assigned%3Aada%40example.com\">@ada</a>"
        ),
        "{page}"
    );
    assert!(page.contains(" and @nobody."), "unknown mentions stay text");
    assert!(!page.contains(">@nobody</a>"));
    // Markup in a comment is text: the page shows it escaped, the mention beside it is still a
    // link, and a mention glued to a quote stays text (mentions start after a space).
    ada_api
        .post(
            &format!("/api/v1/issues/{first}/comments"),
            json!({"text": "<script>alert(1)</script> @ada <img src=x onerror=alert(2)> \"#payments\""}),
        )
        .await
        .expect(201);
    let page = page_text(&browser, &cookie, s.at(&format!("/errors/issues/{first}"))).await;
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62; <a class=\"mention\""),
        "{page}"
    );
    assert!(
        page.contains("&#60;img src=x onerror=alert(2)&#62; &#34;#payments&#34;</p>"),
        "{page}"
    );

    // Bulk assignment: all or none, bounded, and the activity of each issue says so.
    let bulk = |body: Value| {
        let c = ada_api.clone();
        async move { c.put("/api/v1/issues/assignee", body).await }
    };
    let r = bulk(json!({"ids": [all[0], 99999], "assignedTo": "#payments"})).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let unassigned = ada_api
        .get("/api/v1/projects/1/issues?query=is%3Aunassigned")
        .await
        .expect(200);
    assert_eq!(
        unassigned["items"].as_array().unwrap().len(),
        2,
        "nothing changed"
    );
    let done = bulk(json!({"ids": all, "assignedTo": "#payments"}))
        .await
        .expect(200);
    assert_eq!(done["updated"], 2);
    let again = bulk(json!({"ids": all, "assignedTo": "#payments"}))
        .await
        .expect(200);
    assert_eq!(again["updated"], 0, "already assigned: nothing to change");
    for id in &all {
        let i = admin.get(&format!("/api/v1/issues/{id}")).await.expect(200);
        assert_eq!(i["assignedTo"]["name"], "payments");
    }
    // And through the list's form, back to the list as it was filtered.
    let mut form = vec![
        ("csrf", csrf.clone()),
        ("assigned_to", format!("user:{ada}")),
        ("back", "/errors?query=is%3Aassigned".to_string()),
    ];
    form.extend(all.iter().map(|id| ("id", id.to_string())));
    let r = browser
        .post(s.at("/errors/assign"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/errors?query=is%3Aassigned");
    // A refused form (an assignee who is gone) shows the same filtered list again with the
    // issues still ticked and says why, instead of an error page that loses the selection.
    let mut form = vec![
        ("csrf", csrf.clone()),
        ("assigned_to", "user:99999".to_string()),
        ("back", "/errors?query=is%3Aassigned".to_string()),
    ];
    form.extend(all.iter().map(|id| ("id", id.to_string())));
    let r = browser
        .post(s.at("/errors/assign"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("id=\"bulk-error\""),
        "the reason is shown: {page}"
    );
    for id in &all {
        assert!(
            page.contains(&format!(
                "value=\"{id}\" aria-label=\"Select issue {id}\" checked"
            )),
            "issue {id} is still ticked"
        );
    }
    assert!(
        page.contains("value=\"is:assigned\""),
        "the list keeps its filter"
    );
    let mine = ada_api
        .get("/api/v1/projects/1/issues?query=assigned%3Ame")
        .await
        .expect(200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    // Sentry's bulk update of the project's issues, as its clients send it.
    let q: Vec<String> = all.iter().map(|id| format!("id={id}")).collect();
    let v = admin
        .put(
            &format!("/api/0/projects/default/default/issues/?{}", q.join("&")),
            json!({"assignedTo": ""}),
        )
        .await
        .expect(200);
    assert_eq!(v["assignedTo"], Value::Null);
    let unassigned = ada_api
        .get("/api/v1/projects/1/issues?query=is%3Aunassigned")
        .await
        .expect(200);
    assert_eq!(unassigned["items"].as_array().unwrap().len(), 2);
}
