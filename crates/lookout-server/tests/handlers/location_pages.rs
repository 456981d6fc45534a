//! The Locations page and the monitor form's location fields, in process: only admins see or
//! change locations (a member's form is refused with 403 before its body is read, as the API
//! refuses), a location made from the page shows its token once with the `lookout probe`
//! command, a refused name comes back as typed naming the field, and a monitor form naming an
//! unknown location or too many failing locations is refused with 422 naming the field, with
//! the ticked locations kept.

use lookout_core::Role;

use lookout_testkit::{Client, Response};

use crate::{form, Harness, FORM};

/// Posts a form.
async fn post(c: &Client, path: &str, pairs: &[(&str, &str)]) -> Response {
    c.post_raw(path, FORM, form(pairs)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_manage_locations_on_the_page_and_the_token_is_shown_once() {
    let h = Harness::sqlite().await;
    let (admin, csrf) = h.ui_session(Role::Admin, "loc").await;
    let (member, member_csrf) = h.ui_session(Role::Member, "loc").await;

    assert_eq!(member.get("/uptime/locations").await.status.as_u16(), 403);
    // Refused before the body is read: a member's garbage is a 403, not a 422.
    let r = member
        .post_raw("/uptime/locations", FORM, b"%%%".to_vec())
        .await;
    assert_eq!(r.status.as_u16(), 403, "{r:?}");
    let r = post(
        &member,
        "/uptime/locations",
        &[("csrf", &member_csrf), ("name", "eu-west")],
    )
    .await;
    assert_eq!(r.status.as_u16(), 403);

    // A bad name: 422, the field named and marked, what was typed kept.
    let r = post(
        &admin,
        "/uptime/locations",
        &[
            ("csrf", &csrf),
            ("name", "EU West"),
            ("description", "Frankfurt"),
        ],
    )
    .await;
    assert_eq!(r.status.as_u16(), 422);
    let html = r.text();
    assert!(html.contains(r#"id="form-error">name:"#), "{html}");
    assert!(
        html.contains(r#"value="EU West" aria-invalid="true""#),
        "{html}"
    );
    assert!(html.contains(r#"value="Frankfurt""#), "{html}");

    let r = post(
        &admin,
        "/uptime/locations",
        &[("csrf", &csrf), ("name", "eu-west")],
    )
    .await;
    assert_eq!(r.status.as_u16(), 201);
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    let html = r.text();
    let token = html
        .split(r#"id="token-value" class="wrap-any">"#)
        .nth(1)
        .and_then(|t| t.split('<').next())
        .expect("the token is on the page")
        .to_string();
    assert!(token.starts_with("lkp_"), "{token}");
    assert!(
        html.contains(&format!(
            "LOOKOUT_PROBE_TOKEN={token} lookout probe --server "
        )) && html.contains("--location eu-west")
            && !html.contains("--token"),
        "the command line to start an agent: {html}"
    );
    let html = admin.get("/uptime/locations").await.text();
    assert!(!html.contains(&token), "the token is shown once");
    assert!(html.contains("waiting"), "{html}");

    // A member sees no Locations link on the Uptime page.
    assert!(!member
        .get("/uptime")
        .await
        .text()
        .contains("locations-link"));
    assert!(admin.get("/uptime").await.text().contains("locations-link"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_form_names_the_location_field_it_refuses_and_keeps_the_ticks() {
    let h = Harness::sqlite().await;
    let (member, csrf) = h.ui_session(Role::Member, "loc").await;
    h.admin
        .post("/api/v1/locations", serde_json::json!({"name": "eu-west"}))
        .await
        .expect(201);
    let base = [
        ("csrf", csrf.as_str()),
        ("name", "Shop"),
        ("type", "http"),
        ("target", "http://127.0.0.1:9/"),
        ("loc_local", "on"),
        ("loc_eu-west", "on"),
    ];
    // More failing locations than locations.
    let mut pairs = base.to_vec();
    pairs.push(("min_failing_locations", "3"));
    let r = post(&member, "/uptime/monitors", &pairs).await;
    assert_eq!(r.status.as_u16(), 422);
    let html = r.text();
    assert!(html.contains("min_failing_locations"), "{html}");
    assert!(
        html.contains(r#"name="min_failing_locations" inputmode="numeric" placeholder="majority" value="3" aria-invalid="true""#),
        "{html}"
    );
    assert!(html.contains(r#"name="loc_eu-west" checked"#), "{html}");
    // Not a number.
    let mut pairs = base.to_vec();
    pairs.push(("min_failing_locations", "two"));
    let r = post(&member, "/uptime/monitors", &pairs).await;
    assert_eq!(r.status.as_u16(), 422);
    let html = r.text();
    assert!(
        html.contains("min_failing_locations: ")
            && html.contains("two")
            && html.contains("is not a whole number"),
        "{html}"
    );
    // A location that does not exist (deleted meanwhile, or a forged form).
    let mut pairs = base.to_vec();
    pairs.push(("loc_mars", "on"));
    let r = post(&member, "/uptime/monitors", &pairs).await;
    assert_eq!(r.status.as_u16(), 422);
    let html = r.text();
    assert!(
        html.contains("no location ") && html.contains("mars"),
        "{html}"
    );
    assert!(
        html.contains(r#"id="m-locations" class="location-picks" aria-invalid="true""#),
        "{html}"
    );
    // Accepted: the monitor names both, with the rule.
    let mut pairs = base.to_vec();
    pairs.push(("min_failing_locations", "2"));
    let r = post(&member, "/uptime/monitors", &pairs).await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let list = h.admin.get("/api/v1/monitors").await.expect(200);
    let m = &list["items"][0];
    let names: Vec<&str> = m["locations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(names, ["local", "eu-west"], "{m}");
    assert_eq!(m["confirm"]["min_failing_locations"], 2, "{m}");
}
