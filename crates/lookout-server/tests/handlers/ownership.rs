//! Team ownership, in process: schedules, escalation policies, alert policies, monitors and
//! projects take an optional `team_id` (an unknown team is a 422 naming the field and stores
//! nothing), show it, keep it when a PUT leaves it out, clear it with `null`, and their lists
//! narrow to one team with `?team=` (an unknown team is a 422).

use lookout_testkit::{both, Backend};
use serde_json::{json, Value};

use crate::Harness;

both!(owned_objects_take_a_team_and_lists_filter_by_it);

/// `(collection, a valid new object, how updates are sent)`.
fn objects() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "/api/v1/schedules",
            json!({"name": "Primary", "time_zone": "UTC",
                   "schedule_layers": [{"start": "2020-01-01T00:00:00Z",
                       "rotation_virtual_start": "2020-01-01T09:00:00Z",
                       "rotation_turn_length_seconds": 86400, "users": [1]}]}),
            "put",
        ),
        (
            "/api/v1/escalation-policies",
            json!({"name": "Payments", "escalation_rules": [
                {"escalation_delay_in_minutes": 5, "targets": [{"type": "user", "id": 1}]}]}),
            "put",
        ),
        (
            "/api/v1/policies",
            json!({"name": "Down", "conditions": [{"source": "monitor", "events": ["down"]}]}),
            "put",
        ),
        (
            "/api/v1/monitors",
            json!({"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 9}),
            "put",
        ),
        ("/api/v1/projects", json!({"name": "Checkout"}), "patch"),
    ]
}

fn with(body: &Value, team: Value) -> Value {
    let mut b = body.clone();
    b["team_id"] = team;
    b
}

async fn owned_objects_take_a_team_and_lists_filter_by_it(backend: Backend) {
    let h = Harness::new(backend).await;
    let team = h
        .admin
        .post(
            "/api/v1/teams",
            json!({"name": "Payments", "slug": "payments"}),
        )
        .await
        .expect(201);
    let tid = team["id"].as_i64().unwrap();
    for (path, body, update) in objects() {
        let before = h.count(path).await;
        // An unknown team is refused, naming the field, and nothing is stored.
        let r = h.member.post(path, with(&body, json!(999))).await;
        assert_eq!(r.status, 422, "{path}: {}", r.text());
        assert!(
            r.message().starts_with("team_id"),
            "{path}: {}",
            r.message()
        );
        assert_eq!(
            h.count(path).await,
            before,
            "{path}: a refused create stored nothing"
        );
        // A team is named by id: a slug is refused naming the field (400 where the body is
        // typed, as every wrong JSON type there; 422 where it is checked by hand).
        let r = h.member.post(path, with(&body, json!("payments"))).await;
        assert!(
            matches!(r.status.as_u16(), 400 | 422),
            "{path}: {}",
            r.text()
        );
        assert!(r.message().contains("team_id"), "{path}: {}", r.message());

        // One owned, one not.
        let owned = h
            .member
            .post(path, with(&body, json!(tid)))
            .await
            .expect(201);
        assert_eq!(owned["team_id"], tid, "{path}: {owned}");
        let id = owned["id"].as_i64().unwrap();
        let mut other = body.clone();
        other["name"] = json!("Unowned");
        let unowned = h.member.post(path, other).await.expect(201);
        assert_eq!(unowned["team_id"], Value::Null, "{path}");
        let at = format!("{path}/{id}");
        assert_eq!(
            h.viewer.get(&at).await.expect(200)["team_id"],
            tid,
            "{path}"
        );

        // Lists: all, one team by slug (with or without #) or id, and unknown teams refused.
        let all = h.viewer.get(path).await.expect(200);
        assert!(all["items"].as_array().unwrap().len() >= 2, "{path}");
        for filter in ["payments", "%23payments", &tid.to_string()] {
            let only = h
                .viewer
                .get(&format!("{path}?team={filter}"))
                .await
                .expect(200);
            let ids: Vec<i64> = only["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap())
                .collect();
            assert_eq!(ids, vec![id], "{path}?team={filter}");
        }
        let r = h.viewer.get(&format!("{path}?team=nope")).await;
        assert_eq!(r.status, 422, "{path}: {}", r.text());
        assert!(r.message().starts_with("team"), "{}", r.message());
        // `mine` needs a user; these tokens belong to none.
        let r = h.viewer.get(&format!("{path}?team=mine")).await;
        assert_eq!(r.status, 422, "{path}: {}", r.text());

        // An update without team_id keeps the owner; null clears it; an unknown one is refused
        // and keeps it.
        let send = |b: Value| {
            let at = at.clone();
            let c = h.member.clone();
            async move {
                if update == "patch" {
                    c.patch(&at, b).await
                } else {
                    c.put(&at, b).await
                }
            }
        };
        let same = if update == "patch" {
            json!({"name": "Checkout 2"})
        } else {
            body.clone()
        };
        assert_eq!(
            send(same.clone()).await.expect(200)["team_id"],
            tid,
            "{path}"
        );
        let r = send(with(&same, json!(12345))).await;
        assert_eq!(r.status, 422, "{path}: {}", r.text());
        assert_eq!(
            h.viewer.get(&at).await.expect(200)["team_id"],
            tid,
            "{path}"
        );
        assert_eq!(
            send(with(&same, Value::Null)).await.expect(200)["team_id"],
            Value::Null,
            "{path}"
        );

        // Deleting the team leaves objects unowned, not deleted (checked once, at the end).
        let again = send(with(&same, json!(tid))).await.expect(200);
        assert_eq!(again["team_id"], tid);
    }
    h.admin
        .delete(&format!("/api/v1/teams/{tid}"))
        .await
        .expect(204);
    for (path, _, _) in objects() {
        let items = h.viewer.get(path).await.expect(200);
        assert!(
            items["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["team_id"].is_null()),
            "{path}: {items}"
        );
    }
}
