//! Schedules through the API: who is on call at an instant, the rendered spans over a range,
//! overrides on top, and validation that names the field.

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::user;
use crate::{bin, json_of};

async fn schedule_api_answers_who_is_on_call(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let alice = user(&s, "alice@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let carol = user(&s, "carol@example.com").await;
    let (st, _) = json_of(
        s.admin_client()
            .put(s.at(&format!("/api/v1/users/{alice}/name")))
            .json(&json!({"name": "Alice"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 204);
    // Weekly rotation handing off Mondays 09:00 Berlin time, across the March DST change.
    let sched = s
        .client()
        .post(
            "/api/v1/schedules",
            json!({"name": "Primary", "time_zone": "Europe/Berlin", "schedule_layers": [{
            "start": "2026-03-01T00:00:00Z",
            "rotation_virtual_start": "2026-03-23T09:00:00+01:00",
            "rotation_turn_length_seconds": 604800,
            "users": [alice, bob]}]}),
        )
        .await
        .expect(201);
    let id = sched["id"].as_i64().unwrap();
    let at = |t: &str| format!("/api/v1/schedules/{id}/oncall?at={t}");
    let v = s
        .client()
        .get(&at("2026-03-25T12:00:00Z"))
        .await
        .expect(200);
    assert_eq!(v["user"]["id"], alice);
    assert_eq!(v["user"]["name"], "Alice");
    assert_eq!(v["user"]["email"], "alice@example.com");
    // After the change to summer time, 09:00 local is 07:00Z.
    assert_eq!(
        s.client()
            .get(&at("2026-03-30T06:59:00Z"))
            .await
            .expect(200)["user"]["id"],
        alice
    );
    assert_eq!(
        s.client()
            .get(&at("2026-03-30T07:00:00Z"))
            .await
            .expect(200)["user"]["id"],
        bob
    );
    assert_eq!(
        s.client()
            .get(&at("2026-02-01T00:00:00Z"))
            .await
            .expect(200)["user"],
        json!(null)
    );

    // Carol covers Wednesday afternoon.
    s.client()
        .post(
            &format!("/api/v1/schedules/{id}/overrides"),
            json!({"start": "2026-03-25T12:00:00Z", "end": "2026-03-25T18:00:00Z", "user": carol}),
        )
        .await
        .expect(201);
    let spans = s
        .client()
        .get(&format!(
            "/api/v1/schedules/{id}/oncall?since=2026-03-25T00:00:00Z&until=2026-03-31T00:00:00Z"
        ))
        .await
        .expect(200);
    let got: Vec<(i64, String, String)> = spans["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["user"]["id"].as_i64().unwrap(),
                x["start"].as_str().unwrap().to_string(),
                x["end"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                alice,
                "2026-03-25T00:00:00.000Z".into(),
                "2026-03-25T12:00:00.000Z".into()
            ),
            (
                carol,
                "2026-03-25T12:00:00.000Z".into(),
                "2026-03-25T18:00:00.000Z".into()
            ),
            (
                alice,
                "2026-03-25T18:00:00.000Z".into(),
                "2026-03-30T07:00:00.000Z".into()
            ),
            (
                bob,
                "2026-03-30T07:00:00.000Z".into(),
                "2026-03-31T00:00:00.000Z".into()
            ),
        ]
    );

    // Overrides can come inside the schedule body too, and GET shows the ones still to come;
    // sending the document back does not duplicate them.
    let with = s
        .client()
        .post(
            "/api/v1/schedules",
            json!({"name": "Backup", "time_zone": "UTC", "schedule_layers": [],
               "overrides": [{"start": "2099-01-01T00:00:00Z", "end": "2099-01-02T00:00:00Z",
                              "user": {"id": bob}}]}),
        )
        .await
        .expect(201);
    assert_eq!(with["overrides"][0]["user"], bob);
    let bid = with["id"].as_i64().unwrap();
    let (st, _) = json_of(
        s.admin_client()
            .put(s.at(&format!("/api/v1/schedules/{bid}")))
            .json(&with)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let again = s
        .client()
        .get(&format!("/api/v1/schedules/{bid}"))
        .await
        .expect(200);
    assert_eq!(again["overrides"].as_array().unwrap().len(), 1, "{again}");
    assert_eq!(
        s.client()
            .get(&format!(
                "/api/v1/schedules/{bid}/oncall?at=2099-01-01T12:00:00Z"
            ))
            .await
            .expect(200)["user"]["id"],
        bob
    );

    // Errors name what is wrong.
    let (st, v) = json_of(
        s.admin_client()
            .post(s.at("/api/v1/schedules"))
            .json(&json!({"name": "bad", "time_zone": "Europe/Nowhere", "schedule_layers": []}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("time_zone"));
    let (st, v) = json_of(
        s.admin_client()
            .post(s.at("/api/v1/schedules"))
            .json(
                &json!({"name": "bad", "time_zone": "UTC", "schedule_layers": [{
                "start": "2026-01-01T00:00:00Z", "rotation_virtual_start": "2026-01-01T00:00:00Z",
                "rotation_turn_length_seconds": 86400, "users": [9999]}]}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 422);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("9999"),
        "{v}"
    );
    let (st, _) = json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/schedules/{id}/oncall?at=yesterday")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 400);
}

lookout_testkit::both!(schedule_api_answers_who_is_on_call);
