//! The incident actions — reassign, snooze, add responder, merge — through the API and the
//! incident page's forms, in process: viewers are refused before the body is read, bad input
//! is refused naming the field (and the form keeps what was typed), each action queues its
//! pages in the outbox for the right people, a snooze ends through the timers with the clock
//! given, and a merged incident's later events join the target.

use std::sync::Arc;

use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_server::alerting::{timers, Alerting};
use lookout_store::alerting as astore;
use lookout_store::tenancy;
use lookout_testkit::{both, Backend, Client};
use serde_json::{json, Value};

use crate::Harness;

pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

pub(crate) fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// A UI session of a new user with `role`: the client and the CSRF token.
pub(crate) async fn session(h: &Harness, role: Role) -> (Client, String) {
    let user = tenancy::create_user(
        &h.store,
        &format!("{role}-incident@example.com"),
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

/// The timers over the harness's store (the router's own are not running in process).
fn alerting(h: &Harness) -> Alerting {
    let sealer = lookout_core::seal::Sealer::from_hex(&lookout_core::seal::Sealer::new_key_hex())
        .expect("a fresh key");
    Alerting::new(
        h.store.clone(),
        sealer,
        "http://lookout.test",
        Arc::new(lookout_outbound::NetPolicy::default()),
    )
}

/// A user named `name` with a webhook contact method for both urgencies; their id.
async fn paged_user(h: &Harness, email: &str, name: &str) -> i64 {
    let id = h.admin.user(email, "member").await;
    astore::set_user_name(&h.store, id, Some(name))
        .await
        .expect("name");
    h.admin
        .post(
            "/api/v1/channels",
            json!({"name": "pager", "type": "webhook", "url": "http://127.0.0.1:9/hook",
                   "user_id": id, "urgencies": ["high", "low"]}),
        )
        .await
        .expect(201);
    id
}

/// An escalation policy whose one rule pages user `uid`; its id.
async fn policy(h: &Harness, name: &str, uid: i64) -> i64 {
    h.admin
        .post(
            "/api/v1/escalation-policies",
            json!({"name": name, "escalation_rules": [
                {"escalation_delay_in_minutes": 30, "targets": [{"type": "user", "id": uid}]}]}),
        )
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap()
}

/// A manual incident with `dedup_key` paging `ep`; its id.
async fn incident(h: &Harness, key: &str, ep: Option<i64>) -> i64 {
    h.member
        .post(
            "/api/v1/incidents",
            json!({"title": format!("checkout down ({key})"), "severity": "critical",
                   "dedup_key": key, "escalation_policy_id": ep}),
        )
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap()
}

async fn get(h: &Harness, id: i64) -> Value {
    h.admin
        .get(&format!("/api/v1/incidents/{id}"))
        .await
        .expect(200)
}

/// `(event, user_id)` of an incident's notifications, oldest first.
fn pages(v: &Value) -> Vec<(String, Option<i64>)> {
    v["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["event"].as_str().unwrap().to_string(),
                n["user_id"].as_i64(),
            )
        })
        .collect()
}

fn messages(v: &Value) -> Vec<String> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["type"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect()
}

const API: &[&str] = &["reassign", "snooze", "responders", "merge"];

/// A viewer is refused each action with 403 whatever the body (not even JSON here), through
/// the API and through the page's forms; anonymous callers get 401 or the login page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_refused_every_incident_action_before_the_body_is_read() {
    let h = Harness::sqlite().await;
    let id = incident(&h, "k", None).await;
    let (viewer, _) = session(&h, Role::Viewer).await;
    for action in API {
        let path = format!("/api/v1/incidents/{id}/{action}");
        let r = h
            .viewer
            .post_raw(&path, "application/json", "{not json")
            .await;
        assert_eq!(r.status.as_u16(), 403, "{r:?}");
        let r = h.anon.post(&path, json!({})).await;
        assert_eq!(r.status.as_u16(), 401, "{r:?}");
        let page = format!("/incidents/{id}/{action}");
        let r = viewer
            .post_raw(&page, "application/json", "{not a form")
            .await;
        assert_eq!(r.status.as_u16(), 403, "{page}: {r:?}");
    }
    // Nothing happened to the incident.
    let v = get(&h, id).await;
    assert_eq!(v["status"], "triggered");
    assert_eq!(v["snoozed_until"], Value::Null);
}

async fn bad_input_is_refused_naming_the_field(backend: Backend) {
    let h = Harness::new(backend).await;
    let ep = policy(&h, "primary", 1).await;
    let id = incident(&h, "a", Some(ep)).await;
    let other = incident(&h, "b", None).await;
    let post = |action: &str, body: Value| {
        let path = format!("/api/v1/incidents/{id}/{action}");
        let c = h.member.clone();
        async move { c.post(&path, body).await }
    };
    for (action, body, status, says) in [
        (
            "reassign",
            json!({}),
            422,
            "user_id or escalation_policy_id is required",
        ),
        (
            "reassign",
            json!({"user_id": 1, "escalation_policy_id": ep}),
            422,
            "not both",
        ),
        (
            "reassign",
            json!({"user_id": 999}),
            422,
            "user_id: there is no user 999",
        ),
        (
            "reassign",
            json!({"user_id": "alice"}),
            422,
            "user_id must be a number",
        ),
        (
            "reassign",
            json!({"escalation_policy_id": 999}),
            422,
            "escalation_policy_id: there is no",
        ),
        ("snooze", json!({}), 422, "duration_minutes is required"),
        (
            "snooze",
            json!({"duration_minutes": 0}),
            422,
            "duration_minutes must be 1 to 10080",
        ),
        (
            "snooze",
            json!({"duration_minutes": 10081}),
            422,
            "duration_minutes must be 1 to 10080",
        ),
        (
            "snooze",
            json!({"duration_minutes": "1h"}),
            422,
            "duration_minutes must be a whole",
        ),
        (
            "responders",
            json!({"user_id": 1, "message": "x".repeat(1001)}),
            422,
            "message: at most 1000",
        ),
        (
            "responders",
            json!({"escalation_policy_id": 999}),
            422,
            "escalation_policy_id",
        ),
        ("merge", json!({}), 422, "source_incident_ids"),
        (
            "merge",
            json!({"source_incident_ids": []}),
            422,
            "source_incident_ids must",
        ),
        (
            "merge",
            json!({"source_incident_ids": [id]}),
            422,
            "cannot be merged into itself",
        ),
        (
            "merge",
            json!({"source_incident_ids": (1..=51).collect::<Vec<i64>>()}),
            422,
            "1 to 50",
        ),
        (
            "merge",
            json!({"source_incident_ids": [9999]}),
            404,
            "incident not found",
        ),
    ] {
        let r = post(action, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{action} {body}: {r:?}");
        assert!(r.message().contains(says), "{action} {body}: {r:?}");
    }
    // A missing incident is not found; a resolved one cannot be changed or merged into.
    let r = h
        .member
        .post(
            "/api/v1/incidents/9999/snooze",
            json!({"duration_minutes": 60}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    h.member
        .post(&format!("/api/v1/incidents/{other}/resolve"), json!({}))
        .await
        .expect(200);
    let r = post("merge", json!({"source_incident_ids": [other]})).await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert!(r.message().contains("is resolved already"), "{r:?}");
    let third = incident(&h, "c", None).await;
    let r = h
        .member
        .post(
            &format!("/api/v1/incidents/{other}/merge"),
            json!({"source_incident_ids": [third]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert!(r.message().contains("is resolved"), "{r:?}");
    // Nothing refused changed anything.
    let v = get(&h, id).await;
    assert_eq!(v["status"], "triggered");
    assert_eq!(v["alert_count"], 1);
    assert_eq!(v["responders"], json!([]));
    assert_eq!(get(&h, third).await["status"], "triggered");
}

async fn reassign_snooze_and_responders_page_the_right_people(backend: Backend) {
    let h = Harness::new(backend).await;
    let bob = paged_user(&h, "bob@example.com", "Bob Builder").await;
    let alice = paged_user(&h, "alice@example.com", "Alice Adams").await;
    let carol = paged_user(&h, "carol@example.com", "Carol Chen").await;
    let primary = policy(&h, "primary", bob).await;
    let secondary = policy(&h, "database team", carol).await;
    let id = incident(&h, "db", Some(primary)).await;
    assert_eq!(pages(&get(&h, id).await), [("triggered".into(), Some(bob))]);

    // Reassign to a user: they are paged, become the assignee, and escalation carries on.
    let v = h
        .member
        .post(
            &format!("/api/v1/incidents/{id}/reassign"),
            json!({"user_id": alice}),
        )
        .await
        .expect(200);
    assert_eq!(v["assigned_user_id"], alice);
    assert_eq!(v["status"], "triggered");
    assert!(v["next_escalation_at"].is_string(), "{v}");
    let v = get(&h, id).await;
    assert!(
        pages(&v).contains(&("reassigned".into(), Some(alice))),
        "{v}"
    );
    assert!(
        messages(&v).contains(&"reassigned: Reassigned to Alice Adams".into()),
        "{v}"
    );

    // Snooze an unacknowledged incident: it is acknowledged, and nobody is paged until the end.
    let before = pages(&v).len();
    let v = h
        .member
        .post(
            &format!("/api/v1/incidents/{id}/snooze"),
            json!({"duration_minutes": 60}),
        )
        .await
        .expect(200);
    assert_eq!(v["status"], "acknowledged");
    let until =
        lookout_oncall::schedule::parse_rfc3339(v["snoozed_until"].as_str().unwrap()).unwrap();
    assert!((until - now_ms() - 3_600_000).abs() < 60_000, "{v}");
    let a = alerting(&h);
    assert_eq!(timers::tick_at(&a, until - 60_000).await.unwrap(), 0);
    let v = get(&h, id).await;
    assert_eq!(v["status"], "acknowledged");
    let acked = pages(&v);
    assert!(
        acked[before..].iter().all(|(e, _)| e == "acknowledged"),
        "only the acknowledgement went out while snoozed: {acked:?}"
    );
    // The snooze ends: triggered again, the assignee (the current level) paged again.
    assert_eq!(timers::tick_at(&a, until + 1000).await.unwrap(), 1);
    let v = get(&h, id).await;
    assert_eq!(v["status"], "triggered");
    assert_eq!(v["snoozed_until"], Value::Null);
    assert!(
        pages(&v).contains(&("snooze_ended".into(), Some(alice))),
        "{v}"
    );
    assert!(
        messages(&v).iter().any(|m| m.starts_with("snooze_ended:")),
        "{v}"
    );

    // A responder request pages the policy's first level and leaves the assignee alone.
    let r = h
        .member
        .post(
            &format!("/api/v1/incidents/{id}/responders"),
            json!({"escalation_policy_id": secondary, "message": "is the primary healthy?"}),
        )
        .await
        .expect(201);
    assert_eq!(r["target_name"], "database team");
    assert_eq!(r["notifications"][0]["user_id"], carol);
    let v = get(&h, id).await;
    assert_eq!(v["assigned_user_id"], alice);
    assert_eq!(v["escalation_policy_id"], primary);
    assert!(
        pages(&v).contains(&("responder_request".into(), Some(carol))),
        "{v}"
    );
    assert_eq!(v["responders"][0]["message"], "is the primary healthy?");

    // Reassign to a policy: it takes over from its first level, which is paged.
    let v = h
        .member
        .post(
            &format!("/api/v1/incidents/{id}/reassign"),
            json!({"escalation_policy_id": secondary}),
        )
        .await
        .expect(200);
    assert_eq!(v["escalation_policy_id"], secondary);
    assert_eq!(v["assigned_user_id"], Value::Null);
    assert_eq!(v["escalation_level"], 1);
    let v = get(&h, id).await;
    assert!(
        pages(&v).contains(&("reassigned".into(), Some(carol))),
        "{v}"
    );
    assert!(
        messages(&v).contains(
            &"reassigned: Reassigned to escalation policy database team; escalation starts again at level 1"
                .into()
        ),
        "{v}"
    );
}

async fn merged_incidents_resolve_and_their_later_events_join_the_target(backend: Backend) {
    let h = Harness::new(backend).await;
    let target = incident(&h, "api-5xx", None).await;
    let a = incident(&h, "api-latency", None).await;
    let b = incident(&h, "api-errors", None).await;
    let v = h
        .member
        .post(
            &format!("/api/v1/incidents/{target}/merge"),
            json!({"source_incident_ids": [a, b]}),
        )
        .await
        .expect(200);
    assert_eq!(v["alert_count"], 3);
    for src in [a, b] {
        let s = get(&h, src).await;
        assert_eq!(s["status"], "resolved");
        assert_eq!(s["merged_into"], target);
        assert!(
            messages(&s)
                .iter()
                .any(|m| m.starts_with(&format!("merged: Merged into #{target}"))),
            "{s}"
        );
    }
    let t = get(&h, target).await;
    let merged = messages(&t);
    assert!(
        merged.iter().any(|m| m.starts_with(&format!(
            "merged: Merged in #{a} (checkout down (api-latency)), #{b}"
        ))),
        "{merged:?}"
    );
    // A later event for a merged incident's key joins the target.
    let again = h
        .member
        .post(
            "/api/v1/incidents",
            json!({"title": "latency again", "dedup_key": "api-latency"}),
        )
        .await
        .expect(200);
    assert_eq!(again["id"], target);
    let t = get(&h, target).await;
    assert_eq!(t["alert_count"], 4);
    assert!(
        messages(&t).iter().any(|m| m.contains("latency again")),
        "{t}"
    );
    // Once the target is resolved, the key opens a new incident again.
    h.member
        .post(&format!("/api/v1/incidents/{target}/resolve"), json!({}))
        .await
        .expect(200);
    let fresh = h
        .member
        .post(
            "/api/v1/incidents",
            json!({"title": "latency, later", "dedup_key": "api-latency"}),
        )
        .await
        .expect(201);
    assert_ne!(fresh["id"], target);
}

both!(
    bad_input_is_refused_naming_the_field,
    reassign_snooze_and_responders_page_the_right_people,
    merged_incidents_resolve_and_their_later_events_join_the_target,
);

/// The page's forms: a refused snooze comes back 422 with the message, the typed length kept
/// and marked; a good one redirects and the page shows "Snoozed until" relative with the
/// absolute time on hover; reassign and merge from the page name people and incidents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_page_forms_keep_what_was_typed_and_act() {
    let h = Harness::sqlite().await;
    let bob = paged_user(&h, "bob@example.com", "Bob Builder").await;
    let ep = policy(&h, "primary", bob).await;
    let id = incident(&h, "page", Some(ep)).await;
    let other = incident(&h, "page-2", None).await;
    let (member, csrf) = session(&h, Role::Member).await;
    let page = member.get(&format!("/incidents/{id}")).await;
    assert_eq!(page.status.as_u16(), 200);
    let text = page.text();
    assert!(
        text.contains(&format!(
            r#"<option value="user:{bob}">Bob Builder</option>"#
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        r#"<option value="escalation_policy:{ep}">primary</option>"#
    )));
    assert!(text.contains(&format!(r#"name="source" value="{other}""#)));

    let path = format!("/incidents/{id}/snooze");
    let r = member
        .post_raw(
            &path,
            FORM,
            form(&[
                ("csrf", &csrf),
                ("duration", "custom"),
                ("custom_minutes", "20000"),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    let text = r.text();
    assert!(
        text.contains("duration_minutes must be 1 to 10080"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"name="custom_minutes" inputmode="numeric" value="20000" aria-invalid="true""#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"<details id="snooze-menu" open>"#),
        "{text}"
    );
    assert_eq!(get(&h, id).await["status"], "triggered");

    let r = member
        .post_raw(&path, FORM, form(&[("csrf", &csrf), ("duration", "240")]))
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let text = member.get(&format!("/incidents/{id}")).await.text();
    let snoozed = text
        .split(r#"<p id="snoozed-until">"#)
        .nth(1)
        .unwrap_or_else(|| panic!("no snooze line: {text}"));
    assert!(
        snoozed.starts_with("Snoozed until <time datetime="),
        "{snoozed}"
    );
    assert!(
        snoozed.contains(">in 3 h</time>") || snoozed.contains(">in 4 h</time>"),
        "{snoozed}"
    );

    let r = member
        .post_raw(
            &format!("/incidents/{id}/reassign"),
            FORM,
            form(&[("csrf", &csrf), ("target", "")]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert!(r
        .text()
        .contains(r#"id="reassign-target" name="target" aria-invalid="true""#));
    let r = member
        .post_raw(
            &format!("/incidents/{id}/reassign"),
            FORM,
            form(&[("csrf", &csrf), ("target", &format!("user:{bob}"))]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let r = member
        .post_raw(
            &format!("/incidents/{id}/merge"),
            FORM,
            form(&[("csrf", &csrf), ("source", &other.to_string())]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let text = member.get(&format!("/incidents/{id}")).await.text();
    assert!(
        text.contains(r#"<p id="assignee">Assigned to <b>Bob Builder</b></p>"#),
        "{text}"
    );
    assert!(text.contains("Reassigned to Bob Builder"), "{text}");
    assert!(
        text.contains(&format!(r#"<a href="/incidents/{other}">#{other}</a>"#)),
        "{text}"
    );
    // The timeline names the actor by name where one is set, and times are relative.
    assert!(text.contains("member-incident@example.com"), "{text}");
    let timeline = text.split(r#"id="timeline""#).nth(1).unwrap_or_default();
    assert!(
        !timeline.contains("user:"),
        "actors are shown as people: {timeline}"
    );
}
