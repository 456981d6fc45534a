//! Audit entries written in the same transaction as the configuration changes they record (the
//! entry says so): alerting and uptime objects, and teams like every other configuration. A
//! change refused as not found (a missing team or membership) leaves no entry.

use lookout_testkit::{both, Backend};
use serde_json::{json, Value};

use crate::Harness;

both!(configuration_changes_are_audited_with_their_transaction);

async fn configuration_changes_are_audited_with_their_transaction(backend: Backend) {
    let h = Harness::new(backend).await;
    let m = h
        .member
        .post(
            "/api/v1/monitors",
            json!({"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 9}),
        )
        .await
        .expect(201);
    let id = m["id"].as_i64().unwrap();
    h.member
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "Night", "escalation_rules": [
                {"escalation_delay_in_minutes": 5, "targets": [{"type": "user", "id": 1}]}]}),
        )
        .await
        .expect(201);
    h.member
        .delete(&format!("/api/v1/monitors/{id}"))
        .await
        .expect(204);
    let ops = h
        .admin
        .post("/api/v1/teams", json!({"name": "Ops"}))
        .await
        .expect(201);
    let ops = ops["id"].as_i64().unwrap();
    // A team, or a membership, that is not there: 404 and no entry (the check comes before the
    // commit, not after it).
    assert_eq!(
        h.admin
            .put("/api/v1/teams/999", json!({"name": "Nobody"}))
            .await
            .status,
        404
    );
    assert_eq!(h.admin.delete("/api/v1/teams/999").await.status, 404);
    assert_eq!(
        h.admin
            .delete(&format!("/api/v1/teams/{ops}/members/999"))
            .await
            .status,
        404
    );
    // A refused change writes nothing, in or out of a transaction.
    assert_eq!(
        h.member
            .post("/api/v1/monitors", json!({"name": "x", "type": "http"}))
            .await
            .status,
        422
    );
    // A change that fails inside its transaction (nothing to delete) rolls its entry back.
    assert_eq!(h.member.delete("/api/v1/monitors/999").await.status, 404);
    let log = h.admin.get("/api/v1/audit").await.expect(200);
    let items = log["items"].as_array().unwrap();
    let find = |action: &str| -> Value {
        items
            .iter()
            .find(|i| i["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} in {log}"))
    };
    for action in [
        "POST /api/v1/monitors",
        "POST /api/v1/escalation-policies",
        "DELETE /api/v1/monitors/{id}",
    ] {
        assert_eq!(
            find(action)["details"]["recorded"],
            "with the change",
            "{action}"
        );
    }
    assert_eq!(
        find("DELETE /api/v1/monitors/{id}")["target"],
        id.to_string()
    );
    assert_eq!(
        find("POST /api/v1/teams")["details"]["recorded"],
        "with the change"
    );
    let creates = items
        .iter()
        .filter(|i| i["action"] == "POST /api/v1/monitors")
        .count();
    assert_eq!(creates, 1, "the refused create is not in the log: {log}");
    let deletes = items
        .iter()
        .filter(|i| i["action"] == "DELETE /api/v1/monitors/{id}")
        .count();
    assert_eq!(deletes, 1, "the failed delete is not in the log: {log}");
    for action in [
        "PUT /api/v1/teams/{id}",
        "DELETE /api/v1/teams/{id}",
        "DELETE /api/v1/teams/{id}/members/{user_id}",
    ] {
        assert!(
            items.iter().all(|i| i["action"] != action),
            "the 404 {action} is not in the log: {log}"
        );
    }
}
