//! On-call configuration as a team changes it, on both backends: schedules, escalation policies
//! and channels switched off and on (through the API's `enabled` and the Alerts list), what
//! "off" means to who is on call and to an incident, runbook deletion that refuses to pull a
//! runbook from under the policies attaching it, and the schedule form's users by id and layer
//! end.

use serde_json::json;

use lookout_core::Role;
use lookout_store::tenancy;
use lookout_testkit::{both, Backend, Client};

use crate::Harness;

const FORM: &str = "application/x-www-form-urlencoded";

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// A signed-in member's browser session and its CSRF token.
async fn member_session(h: &Harness) -> (Client, String) {
    let user = tenancy::create_user(
        &h.store,
        "member-ui@example.com",
        "correct horse battery",
        Role::Member,
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

fn schedule_body(enabled: serde_json::Value) -> serde_json::Value {
    json!({"name": "Primary", "time_zone": "UTC", "enabled": enabled,
           "schedule_layers": [{"start": "2020-01-01T00:00:00Z",
               "rotation_virtual_start": "2020-01-01T09:00:00Z",
               "rotation_turn_length_seconds": 86400, "users": [1]}]})
}

/// `enabled` is the same field on schedules, escalation policies and channels as on alert
/// policies: absent means on, false is kept, anything else is refused naming it, and a viewer
/// cannot change it. Off, a schedule has nobody on call; on again, it answers as before.
async fn enabled_is_one_field_on_schedules_escalations_and_channels(backend: Backend) {
    let h = Harness::new(backend).await;
    let s = h
        .admin
        .post("/api/v1/schedules", schedule_body(json!(null)))
        .await
        .expect(201);
    assert_eq!(s["enabled"], true, "absent means on: {s}");
    let id = s["id"].as_i64().unwrap();
    let at =
        "/api/v1/schedules/{id}/oncall?at=2026-01-02T12:00:00Z".replace("{id}", &id.to_string());
    assert_eq!(h.admin.get(&at).await.expect(200)["user"]["id"], 1);

    let bad = h
        .admin
        .put(
            &format!("/api/v1/schedules/{id}"),
            schedule_body(json!("no")),
        )
        .await;
    assert_eq!(bad.status, 422, "{bad:?}");
    assert!(
        bad.text().contains("enabled must be true or false"),
        "{bad:?}"
    );
    let refused = h
        .viewer
        .put(
            &format!("/api/v1/schedules/{id}"),
            schedule_body(json!(false)),
        )
        .await;
    assert_eq!(refused.status, 403);

    let off = h
        .member
        .put(
            &format!("/api/v1/schedules/{id}"),
            schedule_body(json!(false)),
        )
        .await
        .expect(200);
    assert_eq!(off["enabled"], false);
    assert_eq!(
        h.admin.get(&at).await.expect(200)["user"],
        serde_json::Value::Null,
        "a disabled schedule has nobody on call"
    );
    h.member
        .put(
            &format!("/api/v1/schedules/{id}"),
            schedule_body(json!(true)),
        )
        .await
        .expect(200);
    assert_eq!(h.admin.get(&at).await.expect(200)["user"]["id"], 1);

    let ep = h
        .admin
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "Primary", "enabled": false, "escalation_rules": [
                {"escalation_delay_in_minutes": 10, "targets": [{"type": "schedule", "id": id}]}]}),
        )
        .await
        .expect(201);
    assert_eq!(ep["enabled"], false);
    let bad = h
        .admin
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "Other", "enabled": 1, "escalation_rules": [
                {"escalation_delay_in_minutes": 10, "targets": [{"type": "user", "id": 1}]}]}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.text().contains("enabled must be true or false"));

    let ch = h
        .admin
        .post(
            "/api/v1/channels",
            json!({"name": "Hook", "type": "webhook", "url": "http://127.0.0.1:9/h",
                   "enabled": false}),
        )
        .await
        .expect(201);
    assert_eq!(ch["enabled"], false);
    let cid = ch["id"].as_i64().unwrap();
    let got = h
        .admin
        .get(&format!("/api/v1/channels/{cid}"))
        .await
        .expect(200);
    assert_eq!(got["enabled"], false);
    assert!(
        got.get("config").is_none(),
        "enabled is no config key: {got}"
    );
    let on = h
        .admin
        .put(
            &format!("/api/v1/channels/{cid}"),
            json!({"name": "Hook", "type": "webhook", "url": "http://127.0.0.1:9/h"}),
        )
        .await
        .expect(200);
    assert_eq!(on["enabled"], true, "absent means on, as for policies");
}

/// An incident routed to a disabled escalation policy is still opened, pages nobody, and its
/// timeline names the policy and says why; enabled again, the next incident is paged.
async fn an_incident_routed_to_a_disabled_escalation_policy_pages_nobody(backend: Backend) {
    let h = Harness::new(backend).await;
    let ch = h
        .admin
        .post(
            "/api/v1/channels",
            json!({"name": "Hook", "type": "webhook", "url": "http://127.0.0.1:9/h"}),
        )
        .await
        .expect(201);
    let rules = json!([{"escalation_delay_in_minutes": 10,
                        "targets": [{"type": "channel", "id": ch["id"]}]}]);
    let ep = h
        .admin
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "Night shift", "escalation_rules": rules, "enabled": false}),
        )
        .await
        .expect(201);
    let epid = ep["id"].as_i64().unwrap();
    let inc = h
        .admin
        .post(
            "/api/v1/incidents",
            json!({"title": "Checkout down", "severity": "critical", "escalation_policy_id": epid}),
        )
        .await
        .expect(201);
    let full = h
        .admin
        .get(&format!("/api/v1/incidents/{}", inc["id"]))
        .await
        .expect(200);
    let said: Vec<&str> = full["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        said.contains(&"Escalation policy \"Night shift\" is disabled: nobody was paged."),
        "{said:?}"
    );
    assert_eq!(
        full["notifications"].as_array().map_or(0, Vec::len),
        0,
        "{full}"
    );

    h.admin
        .put(
            &format!("/api/v1/escalation-policies/{epid}"),
            json!({"name": "Night shift", "escalation_rules": rules}),
        )
        .await
        .expect(200);
    let inc = h
        .admin
        .post(
            "/api/v1/incidents",
            json!({"title": "Search down", "severity": "critical", "escalation_policy_id": epid}),
        )
        .await
        .expect(201);
    let full = h
        .admin
        .get(&format!("/api/v1/incidents/{}", inc["id"]))
        .await
        .expect(200);
    assert_eq!(
        full["notifications"].as_array().map_or(0, Vec::len),
        1,
        "on again, it pages: {full}"
    );
}

/// A runbook an alert policy attaches cannot be deleted (409 naming the policy, in the API and
/// on the page); once the policy attaches none, it is deleted, and a viewer never can.
async fn a_runbook_in_use_is_not_deleted_from_under_its_policy(backend: Backend) {
    let h = Harness::new(backend).await;
    let rb = h
        .admin
        .post(
            "/api/v1/runbooks",
            json!({"name": "Disk full", "body": "# Disk full\n\nFree space."}),
        )
        .await
        .expect(201);
    let rid = rb["id"].as_i64().unwrap();
    let conditions = json!([{"source": "monitor", "events": ["down"]}]);
    let p = h
        .admin
        .post(
            "/api/v1/policies",
            json!({"name": "Disks", "conditions": conditions, "runbook_id": rid}),
        )
        .await
        .expect(201);
    assert_eq!(
        h.viewer
            .delete(&format!("/api/v1/runbooks/{rid}"))
            .await
            .status,
        403
    );
    let refused = h.member.delete(&format!("/api/v1/runbooks/{rid}")).await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(
        refused.text().contains("alert policy \\\"Disks\\\""),
        "{}",
        refused.text()
    );
    let (member, csrf) = member_session(&h).await;
    let page = member
        .post_raw(
            &format!("/alerts/runbooks/{rid}/delete"),
            FORM,
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(page.status.as_u16(), 409);
    assert!(
        page.text().contains("alert policy &#34;Disks&#34;"),
        "{}",
        page.text()
    );
    h.admin
        .get(&format!("/api/v1/runbooks/{rid}"))
        .await
        .expect(200);

    h.admin
        .put(
            &format!("/api/v1/policies/{}", p["id"]),
            json!({"name": "Disks", "conditions": conditions}),
        )
        .await
        .expect(200);
    let done = member
        .post_raw(
            &format!("/alerts/runbooks/{rid}/delete"),
            FORM,
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(done.status.as_u16(), 303, "{done:?}");
    assert_eq!(
        h.admin.get(&format!("/api/v1/runbooks/{rid}")).await.status,
        404
    );
    assert_eq!(
        h.member
            .delete(&format!("/api/v1/runbooks/{rid}"))
            .await
            .status,
        404
    );
}

/// The Alerts list switches schedules, escalation policies and channels off and on, and marks
/// what is off with a Disabled badge.
async fn the_alerts_list_switches_and_badges_what_is_off(backend: Backend) {
    let h = Harness::new(backend).await;
    let s = h
        .admin
        .post("/api/v1/schedules", schedule_body(json!(true)))
        .await
        .expect(201);
    let ch = h
        .admin
        .post(
            "/api/v1/channels",
            json!({"name": "Hook", "type": "webhook", "url": "http://127.0.0.1:9/h"}),
        )
        .await
        .expect(201);
    let ep = h
        .admin
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "Primary", "escalation_rules": [{"escalation_delay_in_minutes": 5,
                   "targets": [{"type": "user", "id": 1}]}]}),
        )
        .await
        .expect(201);
    let (member, csrf) = member_session(&h).await;
    let before = member.get("/alerts").await.text();
    assert!(!before.contains("Disabled</span>"), "{before}");
    for path in [
        format!("/on-call/schedules/{}/enabled", s["id"]),
        format!("/alerts/channels/{}/enabled", ch["id"]),
        format!("/alerts/escalation-policies/{}/enabled", ep["id"]),
    ] {
        let r = member
            .post_raw(&path, FORM, form(&[("csrf", &csrf), ("enabled", "false")]))
            .await;
        assert_eq!(r.status.as_u16(), 303, "{path}: {r:?}");
    }
    let after = member.get("/alerts").await.text();
    assert_eq!(after.matches("Disabled</span>").count(), 3, "{after}");
    assert_eq!(
        h.admin
            .get(&format!("/api/v1/channels/{}", ch["id"]))
            .await
            .expect(200)["enabled"],
        false
    );
    let oncall = member.get("/on-call").await.text();
    assert!(
        oncall.contains("nobody: the schedule is disabled"),
        "{oncall}"
    );
    let r = member
        .post_raw(
            &format!("/on-call/schedules/{}/enabled", s["id"]),
            FORM,
            form(&[("csrf", &csrf), ("enabled", "true")]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303);
    assert_eq!(
        member
            .get("/alerts")
            .await
            .text()
            .matches("Disabled</span>")
            .count(),
        2
    );
}

/// Two people with the same name are told apart in the schedule form (by email beside the
/// name) and the one chosen is the one saved, by id; a layer's end is saved and shown again.
async fn the_schedule_form_picks_users_by_id_and_keeps_a_layers_end(backend: Backend) {
    let h = Harness::new(backend).await;
    let mut ids = Vec::new();
    for email in ["alex.kim@example.com", "alex.kim@other.example"] {
        let u = tenancy::create_user(&h.store, email, "correct horse battery", Role::Member)
            .await
            .expect("user");
        lookout_store::alerting::set_user_name(&h.store, u.id, Some("Alex Kim"))
            .await
            .unwrap();
        ids.push(u.id);
    }
    let (member, csrf) = member_session(&h).await;
    let new = member.get("/on-call/schedules/new").await.text();
    assert!(
        new.contains("Alex Kim &#60;alex.kim@other.example&#62;"),
        "{new}"
    );
    let second = ids[1].to_string();
    let r = member
        .post_raw(
            "/on-call/schedules",
            FORM,
            form(&[
                ("csrf", &csrf),
                ("name", "Primary"),
                ("time_zone", "Europe/Berlin"),
                ("layer0_user", &second),
                ("layer0_user", ""),
                ("layer0_turn", "604800"),
                ("layer0_handoff", "2026-01-05T09:00"),
                ("layer0_end", "2026-07-01T09:00"),
                ("enabled", "on"),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    let at = r.header("location").unwrap().to_string();
    let id = at.rsplit('/').next().unwrap();
    let s = h
        .admin
        .get(&format!("/api/v1/schedules/{id}"))
        .await
        .expect(200);
    assert_eq!(s["schedule_layers"][0]["users"], json!([ids[1]]));
    // Berlin is UTC+2 in July.
    assert_eq!(s["schedule_layers"][0]["end"], "2026-07-01T07:00:00.000Z");
    assert_eq!(s["enabled"], true);
    let page = member.get(&at).await.text();
    assert!(
        page.contains(r#"name="layer0_end" value="2026-07-01T09:00""#),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"<option value="{}" selected>"#, ids[1])),
        "{page}"
    );
}

/// A schedule and the overrides its body carries are stored together.
async fn a_schedule_and_its_overrides_are_stored_together(backend: Backend) {
    let h = Harness::new(backend).await;
    let mut body = schedule_body(json!(true));
    body["overrides"] = json!([{"start": "2099-01-01T00:00:00Z", "end": "2099-01-02T00:00:00Z",
                                "user": 1}]);
    let s = h
        .admin
        .post("/api/v1/schedules", body.clone())
        .await
        .expect(201);
    assert_eq!(s["overrides"].as_array().unwrap().len(), 1, "{s}");
    body["overrides"] = json!([{"start": "2099-01-03T00:00:00Z", "end": "2099-01-02T00:00:00Z",
                                "user": 1}]);
    let bad = h.admin.post("/api/v1/schedules", body).await;
    assert_eq!(bad.status, 422);
    assert_eq!(h.count("/api/v1/schedules").await, 1, "nothing half-saved");
}

both!(
    enabled_is_one_field_on_schedules_escalations_and_channels,
    an_incident_routed_to_a_disabled_escalation_policy_pages_nobody,
    a_runbook_in_use_is_not_deleted_from_under_its_policy,
    the_alerts_list_switches_and_badges_what_is_off,
    the_schedule_form_picks_users_by_id_and_keeps_a_layers_end,
    a_schedule_and_its_overrides_are_stored_together,
);
