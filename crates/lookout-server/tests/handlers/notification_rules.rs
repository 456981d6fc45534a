//! Notification rules, in process: only the user's own contact methods, delays 0 to 1440
//! minutes, at most 10 rules an urgency, each refusal naming the rule and storing nothing; an
//! absent urgency is kept and an empty one goes back to the default; other users' rules are
//! the admin's.

use lookout_testkit::{both, Backend};
use serde_json::json;

use crate::Harness;

both!(notification_rules_are_checked_and_kept_per_urgency);

async fn notification_rules_are_checked_and_kept_per_urgency(backend: Backend) {
    let h = Harness::new(backend).await;
    let uid = h.admin.user("pager@example.com", "member").await;
    let mine = h
        .admin
        .post(
            "/api/v1/channels",
            json!({"name": "push", "type": "webhook", "url": "http://127.0.0.1:9/p", "user_id": uid}),
        )
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let team = h
        .admin
        .post(
            "/api/v1/channels",
            json!({"name": "team", "type": "webhook", "url": "http://127.0.0.1:9/t"}),
        )
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let at = format!("/api/v1/users/{uid}/notification-rules");
    assert_eq!(
        h.admin.get(&at).await.expect(200),
        json!({"high": [], "low": []}),
        "no rules: every contact method at once"
    );
    let refused = [
        (
            json!({"high": [{"channel_id": team, "delay_minutes": 0}]}),
            "high[0].channel_id",
        ),
        (
            json!({"high": [{"channel_id": mine, "delay_minutes": 0},
                            {"channel_id": mine, "delay_minutes": 1441}]}),
            "high[1].delay_minutes",
        ),
        (
            json!({"low": [{"channel_id": mine, "delay_minutes": -1}]}),
            "low[0].delay_minutes",
        ),
        (
            json!({"low": vec![json!({"channel_id": mine, "delay_minutes": 0}); 11]}),
            "low",
        ),
    ];
    for (body, field) in refused {
        let r = h.admin.put(&at, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.message().starts_with(field), "{body}: {}", r.message());
    }
    let r = h
        .admin
        .put(&at, json!({"high": [{"channel_id": mine, "delay": 1}]}))
        .await;
    assert_eq!(r.status, 400, "unknown fields are refused: {}", r.text());
    assert_eq!(
        h.admin.get(&at).await.expect(200),
        json!({"high": [], "low": []})
    );

    let both = json!({"high": [{"channel_id": mine, "delay_minutes": 0},
                               {"channel_id": mine, "delay_minutes": 5}],
                      "low": [{"channel_id": mine, "delay_minutes": 30}]});
    assert_eq!(h.admin.put(&at, both.clone()).await.expect(200), both);
    // An absent urgency is kept; an empty list goes back to the default.
    let v = h.admin.put(&at, json!({"low": []})).await.expect(200);
    assert_eq!(v["high"], both["high"]);
    assert_eq!(v["low"], json!([]));

    // Other users' rules are the admin's; `me` needs a user.
    assert_eq!(h.member.get(&at).await.status, 403);
    assert_eq!(h.member.put(&at, json!({"low": []})).await.status, 403);
    assert_eq!(
        h.member.get("/api/v1/me/notification-rules").await.status,
        422
    );
    assert_eq!(
        h.admin
            .get("/api/v1/users/999/notification-rules")
            .await
            .status,
        404
    );

    // Deleting the contact method deletes its rules.
    h.admin
        .delete(&format!("/api/v1/channels/{mine}"))
        .await
        .expect(204);
    assert_eq!(
        h.admin.get(&at).await.expect(200),
        json!({"high": [], "low": []})
    );
}
