//! The alert-configuration forms, in process, as a signed-in browser posts them: a viewer is
//! refused every form before its body is read; a member's refused form comes back with what was
//! typed and the wrong field marked, and nothing is stored; Send test shows why a delivery
//! failed.

use lookout_core::Role;
use lookout_store::tenancy;
use lookout_testkit::Client;

use crate::Harness;

/// A UI session of a new user with `role`: the client (cookie) and the CSRF token.
async fn session(h: &Harness, role: Role) -> (Client, String) {
    let user = tenancy::create_user(
        &h.store,
        &format!("{role}-ui@example.com"),
        "correct horse battery",
        role,
    )
    .await
    .expect("user");
    let (id, s) = tenancy::create_session(&h.store, &user, 3_600_000)
        .await
        .expect("session");
    (
        h.anon
            .session(&format!("lookout_session={id}"), &s.csrf_token),
        s.csrf_token,
    )
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Every POST the alert-configuration pages add.
const POSTS: &[&str] = &[
    "/alerts/channels",
    "/alerts/channels/1",
    "/alerts/channels/1/delete",
    "/alerts/channels/1/test",
    "/alerts/channels/1/enabled",
    "/alerts/integrations",
    "/alerts/integrations/1",
    "/alerts/integrations/1/delete",
    "/alerts/escalation-policies",
    "/alerts/escalation-policies/1",
    "/alerts/escalation-policies/1/delete",
    "/alerts/escalation-policies/1/enabled",
    "/alerts/policies",
    "/alerts/policies/1",
    "/alerts/policies/1/delete",
    "/alerts/policies/1/enabled",
    "/alerts/runbooks",
    "/alerts/runbooks/1",
    "/alerts/runbooks/1/delete",
    "/on-call/schedules",
    "/on-call/schedules/1",
    "/on-call/schedules/1/delete",
    "/on-call/schedules/1/enabled",
    "/on-call/schedules/1/overrides",
    "/on-call/schedules/1/overrides/1/delete",
];

/// A viewer gets 403 on each form; the body is not even a form (a JSON body the form extractor
/// would refuse with 415), so the 403 shows the role was checked first. A GET of the form
/// pages is refused too; anonymous posts are sent to log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_refused_every_alert_form_before_its_body_is_read() {
    let h = Harness::sqlite().await;
    let (viewer, _) = session(&h, Role::Viewer).await;
    for path in POSTS {
        let r = viewer
            .post_raw(path, "application/json", "{not a form")
            .await;
        assert_eq!(r.status.as_u16(), 403, "{path}: {r:?}");
        let r = h.anon.post_raw(path, FORM, form(&[("name", "x")])).await;
        assert!(
            matches!(r.status.as_u16(), 303 | 401 | 403),
            "{path} anonymous: {r:?}"
        );
    }
    for page in [
        "/alerts/channels/new",
        "/alerts/integrations/new",
        "/alerts/escalation-policies/new",
        "/alerts/policies/new",
        "/alerts/runbooks/new",
        "/on-call/schedules/new",
    ] {
        assert_eq!(viewer.get(page).await.status.as_u16(), 403, "{page}");
    }
    // The Alerts page itself stays readable, without the forms' links.
    let r = viewer.get("/alerts").await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(!r.text().contains("/alerts/channels/new"));
}

/// A member without the session's CSRF token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_the_csrf_token_is_refused() {
    let h = Harness::sqlite().await;
    let (member, _) = session(&h, Role::Member).await;
    let r = member
        .post_raw(
            "/alerts/runbooks",
            FORM,
            form(&[("csrf", "forged"), ("name", "rb"), ("body", "# x")]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{r:?}");
    assert_eq!(h.count("/api/v1/runbooks").await, 0);
}

/// One refused form: where it is posted, what is typed, the message part naming the field,
/// the marked input (its `name`) and a typed value that must come back.
struct Refused {
    path: &'static str,
    pairs: Vec<(&'static str, &'static str)>,
    says: &'static str,
    marked: &'static str,
    kept: &'static str,
    list: &'static str,
}

fn refusals() -> Vec<Refused> {
    vec![
        Refused {
            path: "/alerts/channels",
            pairs: vec![
                ("name", "Ops hook"),
                ("type", "webhook"),
                ("url", "ftp://files.example.com/x"),
                ("secret", "s3cret"),
                ("urgency_high", "on"),
            ],
            says: "url must be http or https",
            marked: r#"name="url" type="text" inputmode="url" value="ftp://files.example.com/x" placeholder="https://hooks.example.com/…" aria-invalid="true""#,
            kept: r#"value="Ops hook""#,
            list: "/api/v1/channels",
        },
        Refused {
            path: "/alerts/channels",
            pairs: vec![
                ("name", "Mail"),
                ("type", "email"),
                ("to", "oncall@example.com"),
                ("from", "lookout@example.com"),
                ("smtp_host", "127.0.0.1"),
                ("smtp_port", "smtp"),
            ],
            says: "smtp_port must be a port number",
            marked: r#"name="smtp_port" value="smtp" inputmode="numeric" placeholder="587" aria-invalid="true""#,
            kept: r#"value="oncall@example.com""#,
            list: "/api/v1/channels",
        },
        Refused {
            path: "/alerts/integrations",
            pairs: vec![
                ("name", "prometheus"),
                ("type", "alertmanager"),
                ("escalation_policy_id", "9999"),
                ("service", "shop"),
            ],
            says: "escalation policy 9999 does not exist",
            marked: r#"name="escalation_policy_id" aria-invalid="true""#,
            kept: r#"value="shop""#,
            list: "/api/v1/integrations",
        },
        Refused {
            path: "/alerts/escalation-policies",
            pairs: vec![
                ("name", "Primary"),
                ("rule0_target", "user:9999"),
                ("rule0_delay", "15"),
                ("num_loops", "1"),
            ],
            says: "escalation_rules[0].targets: User 9999 does not exist",
            marked: r#"data-rule="0" aria-invalid="true""#,
            kept: r#"name="rule0_delay" value="15""#,
            list: "/api/v1/escalation-policies",
        },
        Refused {
            path: "/alerts/escalation-policies",
            pairs: vec![
                ("name", "Primary"),
                ("rule0_target", "user:1"),
                ("rule0_delay", "15"),
                ("num_loops", "12"),
            ],
            says: "num_loops must be at most 9",
            marked: r#"name="num_loops" value="12" inputmode="numeric" aria-invalid="true""#,
            kept: r#"value="Primary""#,
            list: "/api/v1/escalation-policies",
        },
        Refused {
            path: "/alerts/policies",
            pairs: vec![
                ("name", "Slow"),
                ("c0_source", "monitor"),
                ("c0_events", "down"),
                ("c1_source", "errors"),
                ("c1_events", "sometimes"),
                ("severity", "critical"),
            ],
            says: "conditions[1].event must be one of",
            marked: r#"name="c1_events" value="sometimes" aria-invalid="true""#,
            kept: r#"value="Slow""#,
            list: "/api/v1/policies",
        },
        Refused {
            path: "/alerts/policies",
            pairs: vec![
                ("name", "Latency"),
                ("c0_source", "nrql"),
                ("c0_nrql", "SELECT average(duration) FROM Transaction"),
                ("c0_critical_operator", "above"),
                ("c0_critical_value", "0.5"),
                ("c0_window_seconds", "60"),
                ("c0_critical_duration", "90"),
            ],
            says:
                "conditions[0].critical.duration_seconds: up to 86400, a multiple of window_seconds",
            marked: r#"aria-label="Critical duration (seconds)" placeholder="seconds (one window)" aria-invalid="true""#,
            kept: r#"name="c0_nrql" value="SELECT average(duration) FROM Transaction""#,
            list: "/api/v1/policies",
        },
        Refused {
            path: "/alerts/policies",
            pairs: vec![
                ("name", "Some monitors"),
                ("c0_source", "monitor"),
                ("c0_ids", "3, web"),
            ],
            says: "conditions[0].monitor_ids: \"web\" is not an id",
            marked: r#"name="c0_ids" value="3, web" aria-invalid="true""#,
            kept: r#"value="Some monitors""#,
            list: "/api/v1/policies",
        },
        Refused {
            path: "/alerts/runbooks",
            pairs: vec![
                ("name", "Disk full"),
                ("url", "javascript:alert(1)"),
                ("body", "# Disk full\n\nFree space."),
            ],
            says: "url must be an http or https address",
            marked: r#"name="url" value="javascript:alert(1)" inputmode="url" aria-invalid="true""#,
            kept: "Free space.",
            list: "/api/v1/runbooks",
        },
        Refused {
            path: "/on-call/schedules",
            pairs: vec![
                ("name", "Primary"),
                ("time_zone", "Mars/Olympus"),
                ("layer0_user", "1"),
                ("layer0_turn", "604800"),
                ("layer0_handoff", "2026-01-05T09:00"),
            ],
            says: "time_zone: unknown IANA time zone",
            marked: r#"name="time_zone" value="Mars/Olympus" list="zones" required aria-invalid="true""#,
            kept: r#"name="layer0_handoff" value="2026-01-05T09:00""#,
            list: "/api/v1/schedules",
        },
        Refused {
            path: "/on-call/schedules",
            pairs: vec![
                ("name", "Primary"),
                ("time_zone", "Europe/Berlin"),
                ("layer0_user", "1"),
                ("layer0_user", "9999"),
                ("layer0_turn", "604800"),
                ("layer0_handoff", "2026-01-05T09:00"),
                ("layer0_end", "2026-06-01T09:00"),
            ],
            says: "schedule_layers[0].users: no user \"9999\"",
            marked: r#"data-layer="0" aria-invalid="true""#,
            kept: r#"name="layer0_end" value="2026-06-01T09:00""#,
            list: "/api/v1/schedules",
        },
    ]
}

/// Each refused form answers 422 with the message, the wrong field marked and the typed values
/// in place, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_form_keeps_what_was_typed_and_names_the_field() {
    let h = Harness::sqlite().await;
    let (member, csrf) = session(&h, Role::Member).await;
    for case in refusals() {
        let before = h.count(case.list).await;
        let mut pairs = vec![("csrf", csrf.as_str())];
        pairs.extend(case.pairs.iter().copied());
        let r = member.post_raw(case.path, FORM, form(&pairs)).await;
        let html = r.text();
        assert_eq!(r.status.as_u16(), 422, "{}: {html}", case.path);
        assert!(
            html.contains(&askama_escape(case.says)),
            "{}: the message {:?} in {html}",
            case.path,
            case.says
        );
        assert!(
            html.contains(case.marked),
            "{}: the field marked {:?} in {html}",
            case.path,
            case.marked
        );
        assert!(
            html.contains(case.kept),
            "{}: typed value {:?} kept in {html}",
            case.path,
            case.kept
        );
        assert_eq!(
            h.count(case.list).await,
            before,
            "{} stored nothing",
            case.path
        );
    }
}

/// How askama writes text into HTML.
fn askama_escape(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
}

/// An override typed in the schedule's zone is stored at that zone's instant; one that ends
/// before it starts is refused with the typed times kept; deleting it from the page removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_read_in_the_schedules_time_zone() {
    let h = Harness::sqlite().await;
    let (member, csrf) = session(&h, Role::Member).await;
    let r = member
        .post_raw(
            "/on-call/schedules",
            FORM,
            form(&[
                ("csrf", &csrf),
                ("name", "Primary"),
                ("time_zone", "Europe/Berlin"),
                ("layer0_user", "1"),
                ("layer0_turn", "604800"),
                ("layer0_handoff", "2026-01-05T09:00"),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let at = r.header("location").unwrap().to_string();
    let id: i64 = at.rsplit('/').next().unwrap().parse().unwrap();
    let s = h
        .admin
        .get(&format!("/api/v1/schedules/{id}"))
        .await
        .expect(200);
    assert_eq!(
        s["schedule_layers"][0]["rotation_virtual_start"],
        "2026-01-05T08:00:00.000Z"
    );
    let admin_id = s["schedule_layers"][0]["users"][0].as_i64().unwrap();

    let bad = member
        .post_raw(
            &format!("/on-call/schedules/{id}/overrides"),
            FORM,
            form(&[
                ("csrf", &csrf),
                ("user", &admin_id.to_string()),
                ("start", "2099-07-01T18:00"),
                ("end", "2099-07-01T09:00"),
            ]),
        )
        .await;
    let html = bad.text();
    assert_eq!(bad.status.as_u16(), 422, "{html}");
    assert!(html.contains("end must be after start"), "{html}");
    assert!(html.contains(r#"value="2099-07-01T18:00""#), "{html}");

    let ok = member
        .post_raw(
            &format!("/on-call/schedules/{id}/overrides"),
            FORM,
            form(&[
                ("csrf", &csrf),
                ("user", &admin_id.to_string()),
                ("start", "2099-07-01T09:00"),
                ("end", "2099-07-01T18:00"),
            ]),
        )
        .await;
    assert_eq!(ok.status.as_u16(), 303, "{ok:?}");
    let list = h
        .admin
        .get(&format!("/api/v1/schedules/{id}/overrides"))
        .await
        .expect(200);
    // Berlin is UTC+2 in July.
    assert_eq!(
        list["items"][0]["start"], "2099-07-01T07:00:00.000Z",
        "{list}"
    );
    assert_eq!(
        list["items"][0]["end"], "2099-07-01T16:00:00.000Z",
        "{list}"
    );
    let oid = list["items"][0]["id"].as_i64().unwrap();
    let page = member.get(&format!("/on-call/schedules/{id}")).await;
    assert!(
        page.text().contains("Wed 01 Jul 09:00"),
        "shown in Berlin time: {}",
        page.text()
    );
    let del = member
        .post_raw(
            &format!("/on-call/schedules/{id}/overrides/{oid}/delete"),
            FORM,
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(del.status.as_u16(), 303, "{del:?}");
    assert_eq!(
        h.count(&format!("/api/v1/schedules/{id}/overrides")).await,
        0
    );
}

/// Send test goes through the delivery path: a destination nothing listens on answers with the
/// reason, shown on the page; secrets stay masked and are kept when left masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_shows_why_a_delivery_failed_and_secrets_stay_masked() {
    let h = Harness::sqlite().await;
    let (member, csrf) = session(&h, Role::Member).await;
    let r = member
        .post_raw(
            "/alerts/channels",
            FORM,
            form(&[
                ("csrf", &csrf),
                ("name", "Hook"),
                ("type", "webhook"),
                ("url", "http://127.0.0.1:9/hook"),
                ("secret", "s3cret"),
                ("urgency_high", "on"),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let at = r.header("location").unwrap().to_string();
    let page = member.get(&at).await.text();
    assert!(page.contains(r#"name="secret" value="********""#), "{page}");
    assert!(!page.contains("s3cret"));
    let test = member
        .post_raw(&format!("{at}/test"), FORM, form(&[("csrf", &csrf)]))
        .await;
    let html = test.text();
    assert_eq!(test.status.as_u16(), 200, "{html}");
    assert!(html.contains("Test notification: failed"), "{html}");
    // Saved again with the secret left masked: the stored secret is kept.
    let id: i64 = at.rsplit('/').next().unwrap().parse().unwrap();
    let before = lookout_store::alerting::channel_get(&h.store, id)
        .await
        .unwrap()
        .config["secret"]
        .clone();
    let r = member
        .post_raw(
            &at,
            FORM,
            form(&[
                ("csrf", &csrf),
                ("name", "Hook 2"),
                ("type", "webhook"),
                ("url", "http://127.0.0.1:9/hook"),
                ("secret", "********"),
                ("urgency_high", "on"),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let after = lookout_store::alerting::channel_get(&h.store, id)
        .await
        .unwrap();
    assert_eq!(after.name, "Hook 2");
    assert_eq!(after.config["secret"], before);
}

/// Send test is held to the outbound policy like every page: a channel pointed at the cloud
/// metadata address is saved (the address is well formed) but the test is refused before any
/// connection, and the page says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_goes_through_the_outbound_policy() {
    let h = Harness::sqlite().await;
    let (member, csrf) = session(&h, Role::Member).await;
    let r = member
        .post_raw(
            "/alerts/channels",
            FORM,
            form(&[
                ("csrf", &csrf),
                ("name", "Metadata"),
                ("type", "webhook"),
                ("url", "http://169.254.169.254/latest/meta-data/"),
                ("urgency_high", "on"),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let at = r.header("location").unwrap().to_string();
    let html = member
        .post_raw(&format!("{at}/test"), FORM, form(&[("csrf", &csrf)]))
        .await
        .text();
    assert!(html.contains("Test notification: failed"), "{html}");
    assert!(html.contains("outbound policy"), "{html}");
}

/// Saving a policy from its form keeps what the form shows of it, grouping included: a
/// `per_policy` policy edited in the UI still groups its signals into one incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_policy_in_its_form_keeps_its_grouping() {
    let h = Harness::sqlite().await;
    let created = h
        .admin
        .post(
            "/api/v1/policies",
            serde_json::json!({"name": "Monitors", "grouping": "per_policy",
                               "conditions": [{"source": "monitor", "events": ["down"]}]}),
        )
        .await
        .expect(201);
    let id = created["id"].as_i64().expect("id");
    let (member, csrf) = session(&h, Role::Member).await;
    let page = member.get(&format!("/alerts/policies/{id}")).await.text();
    assert!(
        page.contains(r#"<option value="per_policy" selected>"#),
        "the form shows the grouping: {page}"
    );
    let r = member
        .post_raw(
            &format!("/alerts/policies/{id}"),
            FORM,
            form(&[
                ("csrf", csrf.as_str()),
                ("name", "Monitors renamed"),
                ("c0_source", "monitor"),
                ("c0_events", "down"),
                ("grouping", "per_policy"),
                ("enabled", "on"),
            ]),
        )
        .await;
    assert!(r.status.is_redirection(), "{}: {}", r.status, r.text());
    let saved = h.admin.get(&format!("/api/v1/policies/{id}")).await.json;
    assert_eq!(saved["name"], "Monitors renamed");
    assert_eq!(saved["grouping"], "per_policy");
}
