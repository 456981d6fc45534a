//! Teams and triage on the real binary: teams and members, assigning issues through our API and
//! Sentry's (`PUT /api/0/issues/{id}/`), comments, the "assigned to me / my teams / unassigned"
//! searches, the issue page's forms, ownership rules assigning new issues, and a "notify owners"
//! alert policy paging the owning team's escalation policy.

use lookout_testkit::{Backend, Client, TestServer};
use serde_json::{json, Value};

use super::*;

lookout_testkit::both!(
    teams_assignment_comments_and_searches,
    ownership_rules_assign_new_issues_and_page_the_owning_team,
    my_shifts_and_the_calendar_feed,
);

/// Signs `email` in through the login form: a client carrying the session cookie and CSRF token
/// (for the API) and the raw cookie (for forms).
pub(super) async fn sign_in(
    s: &TestServer,
    email: &str,
) -> (Client, reqwest::Client, String, String) {
    let (c, cookie) = crate::foundation::sessions::sign_in(s, email, "correct horse battery").await;
    let html = page_text(&c, &cookie, s.at("/account")).await;
    let csrf = crate::foundation::sessions::csrf_field(&html);
    let api = s.anon().session(&cookie, &csrf);
    (api, c, cookie, csrf)
}

/// A page's HTML, fetched with a session cookie.
pub(super) async fn page_text(c: &reqwest::Client, cookie: &str, url: String) -> String {
    c.get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub(super) async fn send_event(s: &TestServer, ty: &str, region: &str) {
    let id = new_id();
    let mut ev = exception_event(&id, ty, "boom", "work", "1.0");
    ev["tags"] = json!({ "region": region });
    let r = post_envelope(&reqwest::Client::new(), s, envelope(&id, &ev, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn ids(page: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    v.sort_unstable();
    v
}

async fn teams_assignment_comments_and_searches(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let admin = s.client();
    let ada = admin.user("ada@example.com", "member").await;
    admin.user("vic@example.com", "viewer").await;
    let viewer = s.anon().bearer(&admin.token("viewer").await);

    // Teams: admins create them; the slug is made from the name and must be free and well formed.
    let team = admin
        .post("/api/v1/teams", json!({"name": "Backend On-call"}))
        .await
        .expect(201);
    assert_eq!(team["slug"], "backend-on-call");
    let tid = team["id"].as_i64().unwrap();
    let dup = admin
        .post(
            "/api/v1/teams",
            json!({"name": "Other", "slug": "backend-on-call"}),
        )
        .await;
    assert_eq!(dup.status, 409, "{}", dup.text());
    let bad = admin
        .post("/api/v1/teams", json!({"name": "x", "slug": "Not A Slug"}))
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.message().starts_with("slug"), "{}", bad.message());
    assert_eq!(
        viewer
            .post("/api/v1/teams", json!({"name": "Sneaky"}))
            .await
            .status,
        403
    );
    admin
        .put(&format!("/api/v1/teams/{tid}/members/{ada}"), json!({}))
        .await
        .expect(204);
    assert_eq!(
        admin
            .put(&format!("/api/v1/teams/{tid}/members/9999"), json!({}))
            .await
            .status,
        404
    );
    let detail = viewer
        .get(&format!("/api/v1/teams/{tid}"))
        .await
        .expect(200);
    // A viewer sees the member, not their email; an admin sees both.
    assert_eq!(detail["members"][0]["id"], ada);
    assert!(detail["members"][0]["email"].is_null(), "{detail}");
    let detail = admin.get(&format!("/api/v1/teams/{tid}")).await.expect(200);
    assert_eq!(detail["members"][0]["email"], "ada@example.com");

    let (ada_api, browser, cookie, csrf) = sign_in(&s, "ada@example.com").await;
    let mine = ada_api.get("/api/v1/me/teams").await.expect(200);
    assert_eq!(mine["items"][0]["slug"], "backend-on-call");

    // Two issues.
    send_event(&s, "TimeoutError", "eu").await;
    send_event(&s, "KeyError", "eu").await;
    let issues = wait_issues(&s, |i| i.len() == 2).await;
    let id_of = |ty: &str| {
        issues
            .iter()
            .find(|i| i["title"].as_str().unwrap().starts_with(ty))
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (timeout, key) = (id_of("TimeoutError"), id_of("KeyError"));
    assert_eq!(issues[0]["assignedTo"], Value::Null);

    // Ada takes one through our API; the admin gives the other to the team through Sentry's.
    let v = ada_api
        .put(
            &format!("/api/v1/issues/{timeout}/assignee"),
            json!({"assignedTo": "me"}),
        )
        .await
        .expect(200);
    assert_eq!(v["assignedTo"]["type"], "user");
    assert_eq!(v["assignedTo"]["email"], "ada@example.com");
    let v = admin
        .put(
            &format!("/api/0/issues/{key}/"),
            json!({"assignedTo": format!("team:{tid}")}),
        )
        .await
        .expect(200);
    assert_eq!(v["assignedTo"]["type"], "team");
    assert_eq!(v["assignedTo"]["name"], "backend-on-call");
    assert_eq!(v["id"], key.to_string());
    // Viewers cannot assign; unknown assignees are refused by name, nothing changes.
    assert_eq!(
        viewer
            .put(
                &format!("/api/v1/issues/{key}/assignee"),
                json!({"assignedTo": ""})
            )
            .await
            .status,
        403
    );
    for bad in ["user:9999", "#nope", "nobody@example.com", "team:x"] {
        let r = admin
            .put(
                &format!("/api/0/issues/{key}/"),
                json!({"assignedTo": bad, "status": "resolved"}),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        assert!(r.message().starts_with("assignedTo"), "{}", r.message());
    }
    let still = admin
        .get(&format!("/api/v1/issues/{key}"))
        .await
        .expect(200);
    assert_eq!(
        still["status"], "unresolved",
        "a refused update changed nothing"
    );
    // Both at once land together (one transaction), and the status can go back.
    let v = admin
        .put(
            &format!("/api/0/issues/{key}/"),
            json!({"assignedTo": format!("team:{tid}"), "status": "resolved"}),
        )
        .await
        .expect(200);
    assert_eq!(
        (v["status"].as_str(), v["assignedTo"]["type"].as_str()),
        (Some("resolved"), Some("team"))
    );
    admin
        .put(
            &format!("/api/0/issues/{key}/"),
            json!({"status": "unresolved"}),
        )
        .await
        .expect(200);

    // Searches, as Sentry writes them.
    let search = |q: &str| {
        let (c, q) = (ada_api.clone(), q.replace(':', "%3A").replace('#', "%23"));
        async move {
            c.get(&format!("/api/v1/projects/1/issues?query={q}"))
                .await
                .expect(200)
        }
    };
    assert_eq!(ids(&search("assigned:me").await), vec![timeout]);
    assert_eq!(ids(&search("assigned:my_teams").await), vec![key]);
    assert_eq!(ids(&search("assigned:#backend-on-call").await), vec![key]);
    assert_eq!(ids(&search("is:assigned").await).len(), 2);
    assert!(ids(&search("is:unassigned").await).is_empty());
    assert_eq!(
        ids(&search("assigned:me Timeout").await),
        vec![timeout],
        "free text still narrows"
    );
    let r = ada_api
        .get("/api/v1/projects/1/issues?query=assigned%3A%23ghosts")
        .await;
    assert_eq!(r.status, 422);
    // Unassigning is an empty assignee.
    admin
        .put(
            &format!("/api/v1/issues/{timeout}/assignee"),
            json!({"assignedTo": ""}),
        )
        .await
        .expect(200);
    assert_eq!(ids(&search("is:unassigned").await), vec![timeout]);

    // Comments: Sentry's endpoint and ours; empty ones are refused.
    let note = admin
        .post(
            &format!("/api/0/issues/{timeout}/comments/"),
            json!({"text": "Looking into it"}),
        )
        .await
        .expect(201);
    assert_eq!(note["type"], "note");
    assert_eq!(note["data"]["text"], "Looking into it");
    let r = ada_api
        .post(
            &format!("/api/v1/issues/{timeout}/comments"),
            json!({"text": "  "}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        viewer
            .post(
                &format!("/api/v1/issues/{timeout}/comments"),
                json!({"text": "hi"})
            )
            .await
            .status,
        403
    );
    let listed = admin
        .get(&format!("/api/0/issues/{timeout}/comments/"))
        .await
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let act = viewer
        .get(&format!("/api/v1/issues/{timeout}/activity"))
        .await
        .expect(200);
    let kinds: Vec<&str> = act["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["assigned", "unassigned", "note"]);
    assert_eq!(act["items"][0]["actor"], "ada@example.com");

    // The issue page: assign and comment through its forms.
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let (b, cookie, csrf, url) = (browser.clone(), cookie.clone(), csrf.clone(), s.at(&path));
        async move {
            let mut form = vec![("csrf", csrf)];
            form.extend(fields);
            let r = b
                .post(url)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (st, _) = post(
        format!("/errors/issues/{timeout}/assign"),
        vec![("assigned_to", format!("team:{tid}"))],
    )
    .await;
    assert_eq!(st, 303);
    let (st, html) = post(
        format!("/errors/issues/{timeout}/comments"),
        vec![("text", " ".into())],
    )
    .await;
    assert_eq!(st, 422, "an empty comment comes back with the reason");
    assert!(html.contains("id=\"comment-error\""), "{html}");
    let (st, _) = post(
        format!("/errors/issues/{timeout}/comments"),
        vec![("text", "Fixed <b>by</b> the retry".into())],
    )
    .await;
    assert_eq!(st, 303);
    let page = page_text(
        &browser,
        &cookie,
        s.at(&format!("/errors/issues/{timeout}")),
    )
    .await;
    // The assignee element itself (the picker lists every team, so the page always names it).
    let at = page.find("id=\"assignee\"").expect("assignee element");
    let assignee = &page[at..at + page[at..].find("</p>").unwrap()];
    assert!(assignee.contains("#backend-on-call"), "{assignee}");
    assert!(!assignee.contains("Unassigned"), "{assignee}");
    assert!(page.contains("the retry"), "comment shown");
    assert!(!page.contains("<b>by</b>"), "comment escaped, not markup");
    let list = page_text(&browser, &cookie, s.at("/errors?query=assigned%3Amy_teams")).await;
    assert!(list.contains("TimeoutError") && list.contains("KeyError"));

    // Teams on the account page, and the audit log has the assignments and comments.
    let account = page_text(&browser, &cookie, s.at("/account")).await;
    assert!(account.contains("id=\"my-team-backend-on-call\""));
    let audit = admin.get("/api/v1/audit?limit=200").await.expect(200);
    let actions: Vec<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "PUT /api/v1/issues/{id}/assignee",
        // The audit log writes every number in a path as `{id}`, Sentry's `/api/0` too.
        "PUT /api/{id}/issues/{id}/",
        "POST /api/{id}/issues/{id}/comments/",
        "POST /errors/issues/{id}/comments",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }

    // Deleting the team unassigns its issues.
    admin
        .delete(&format!("/api/v1/teams/{tid}"))
        .await
        .expect(204);
    assert_eq!(ids(&search("is:unassigned").await).len(), 2);
}

async fn ownership_rules_assign_new_issues_and_page_the_owning_team(backend: Backend) {
    use crate::alerting::{paged_user, wait_any_incident, Receiver};
    let s = TestServer::start(crate::bin(), backend).await;
    let admin = s.client();
    let r = Receiver::start().await;
    let (_uid, ep, _) = paged_user(&s, &r, "s3cret").await;
    let team = admin
        .post(
            "/api/v1/teams",
            json!({"name": "Payments", "escalation_policy_id": ep}),
        )
        .await
        .expect(201);
    assert_eq!(team["escalation_policy_id"], ep);
    let bad_ep = admin
        .post(
            "/api/v1/teams",
            json!({"name": "Ghosts", "escalation_policy_id": 999}),
        )
        .await;
    assert_eq!(bad_ep.status, 422);

    // Rules are checked line by line: the error names the wrong one, nothing is saved.
    let r422 = admin
        .put(
            "/api/v1/projects/1/ownership",
            json!({"raw": "path:src/* #payments\nfoo:bar #payments\n"}),
        )
        .await;
    assert_eq!(r422.status, 422);
    assert!(r422.message().contains("line 2"), "{}", r422.message());
    let r422 = admin
        .put(
            "/api/v1/projects/1/ownership",
            json!({"raw": "tag:region:eu #nobody-here"}),
        )
        .await;
    assert!(r422.message().contains("line 1"), "{}", r422.message());
    assert_eq!(
        admin.get("/api/v1/projects/1/ownership").await.expect(200)["raw"],
        ""
    );
    admin
        .put(
            "/api/v1/projects/1/ownership",
            json!({"raw": "# routing\ntag:region:eu #payments\npath:lib/* admin@example.com\n"}),
        )
        .await
        .expect(200);
    admin
        .post(
            "/api/v1/policies",
            json!({"name": "Owners", "notify_owners": true,
                   "conditions": [{"source": "errors", "event": "new_issue"}]}),
        )
        .await
        .expect(201);

    // An EU event: the first rule matches (the last one does not), so #payments owns it…
    send_event(&s, "CardDeclined", "eu").await;
    let issues = wait_issues(&s, |i| {
        i.iter().any(|x| x["assignedTo"]["name"] == "payments")
    })
    .await;
    let issue = issues
        .iter()
        .find(|x| x["title"].as_str().unwrap().starts_with("CardDeclined"))
        .unwrap();
    let act = admin
        .get(&format!("/api/v1/issues/{}/activity", issue["id"]))
        .await
        .expect(200);
    assert_eq!(act["items"][0]["type"], "auto_assigned");
    assert_eq!(act["items"][0]["actor"], "ownership rules");
    // …and the policy that notifies owners pages the team's escalation policy.
    let inc = wait_any_incident(&s, 30, |v| {
        v["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("New issue: CardDeclined"))
    })
    .await;
    assert_eq!(inc["escalation_policy_id"], ep, "{inc:#}");
    let got = r.wait(1, 30).await;
    assert!(
        got[0].json().to_string().contains("CardDeclined"),
        "{:?}",
        got[0].json()
    );

    // A policy that pages a real escalation policy, newer than "Owners" (which would win a tie).
    admin
        .post(
            "/api/v1/policies",
            json!({"name": "Pager", "escalation_policy_id": ep,
                   "conditions": [{"source": "errors", "event": "new_issue"}]}),
        )
        .await
        .expect(201);
    // A US event matches no rule: nobody owns it…
    send_event(&s, "Timeout", "us").await;
    let issues = wait_issues(&s, |i| i.len() == 2).await;
    let us = issues
        .iter()
        .find(|x| x["title"].as_str().unwrap().starts_with("Timeout"))
        .unwrap();
    assert_eq!(us["assignedTo"], Value::Null);
    // …so "Owners" pages nobody and the policy that does page speaks for the incident.
    let inc = wait_any_incident(&s, 30, |v| {
        v["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("New issue: Timeout"))
    })
    .await;
    assert_eq!(inc["escalation_policy_id"], ep, "{inc:#}");
}

/// "My shifts" from a real schedule, and the iCalendar feed a calendar app subscribes to with its
/// own revocable token.
async fn my_shifts_and_the_calendar_feed(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let admin = s.client();
    let ada = admin.user("ada@example.com", "member").await;
    admin
        .post(
            "/api/v1/schedules",
            json!({"name": "Payments, primary", "time_zone": "UTC", "schedule_layers": [{
                "start": "2026-01-01T00:00:00Z", "rotation_virtual_start": "2026-01-01T00:00:00Z",
                "rotation_turn_length_seconds": 86400, "users": [ada]}]}),
        )
        .await
        .expect(201);
    let (ada_api, browser, cookie, csrf) = sign_in(&s, "ada@example.com").await;
    let shifts = ada_api.get("/api/v1/me/shifts?days=3").await.expect(200);
    let items = shifts["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{shifts}");
    assert_eq!(items[0]["schedule"], "Payments, primary");
    assert_eq!(ada_api.get("/api/v1/me/shifts?days=0").await.status, 422);
    let account = page_text(&browser, &cookie, s.at("/account")).await;
    assert!(
        account.contains("id=\"my-shifts\""),
        "shifts on the account page"
    );

    let feed = ada_api
        .post("/api/v1/me/calendar-feed", json!({}))
        .await
        .expect(201);
    let url = feed["url"].as_str().unwrap();
    let path = &url[url.find("/api/").unwrap()..];
    let r = reqwest::get(s.at(path)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/calendar"));
    let ics = r.text().await.unwrap();
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"), "{ics}");
    assert!(
        ics.contains("SUMMARY:On call: Payments\\, primary\r\n"),
        "{ics}"
    );
    assert!(ics.contains("BEGIN:VEVENT") && ics.ends_with("END:VCALENDAR\r\n"));
    // The shift in progress (Ada is always on call) started in the past, and a refresh names it
    // with the same UID and start, so calendar apps update it instead of adding another.
    let uid_of = |doc: &str| {
        doc.lines()
            .find(|l| l.starts_with("UID:"))
            .map(str::to_string)
            .unwrap()
    };
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = reqwest::get(s.at(path))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(uid_of(&ics), uid_of(&again));
    let start = |doc: &str| {
        doc.lines()
            .find(|l| l.starts_with("DTSTART:"))
            .map(str::to_string)
            .unwrap()
    };
    assert_eq!(start(&ics), start(&again));
    let first = chrono::DateTime::parse_from_rfc3339(items[0]["start"].as_str().unwrap()).unwrap();
    assert!(
        first < chrono::Utc::now() - chrono::Duration::days(1),
        "{shifts}"
    );
    // A new address replaces the old one; revoking ends it.
    let again = ada_api
        .post("/api/v1/me/calendar-feed", json!({}))
        .await
        .expect(201);
    assert_eq!(reqwest::get(s.at(path)).await.unwrap().status(), 401);
    let url2 = again["url"].as_str().unwrap();
    let path2 = &url2[url2.find("/api/").unwrap()..];
    assert_eq!(reqwest::get(s.at(path2)).await.unwrap().status(), 200);
    ada_api.delete("/api/v1/me/calendar-feed").await.expect(204);
    assert_eq!(reqwest::get(s.at(path2)).await.unwrap().status(), 401);

    // The answers that show a feed token are never cached: the API's and the account page's.
    let made = ada_api.post("/api/v1/me/calendar-feed", json!({})).await;
    assert_eq!(made.status, 201);
    assert_eq!(made.header("cache-control"), Some("no-store"));
    let url3 = made.json["url"].as_str().unwrap().to_string();
    let path3 = &url3[url3.find("/api/").unwrap()..];
    let page = browser
        .post(s.at("/account/calendar-feed"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await.unwrap();
    let at = page
        .find("oncall.ics?token=")
        .expect("the page shows the address");
    let token4: String = page[at + 17..].chars().take(48).collect();
    let path4 = format!("/api/v1/me/oncall.ics?token={token4}");
    assert_eq!(reqwest::get(s.at(&path4)).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(s.at(path3)).await.unwrap().status(), 401);
    // A password change ends the feed address like the user's other sessions.
    ada_api
        .post(
            "/api/v1/me/password",
            json!({"current_password": "correct horse battery", "new_password": "another horse battery"}),
        )
        .await
        .expect(204);
    assert_eq!(reqwest::get(s.at(&path4)).await.unwrap().status(), 401);
}
