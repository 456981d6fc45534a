//! Issues after ingest: lifecycle, merge and unmerge, release health.

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::{json, Value};

use super::*;
use crate::json_of;

lookout_testkit::both!(
    resolve_regress_ignore_and_merge,
    release_health_counts_sessions_and_new_issues,
    unmerge_splits_an_issue_back_out,
);

async fn resolve_regress_ignore_and_merge(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let c = reqwest::Client::new();
    let send = |ty: &'static str, release: &'static str| {
        let id = new_id();
        let r = post_envelope(
            &c,
            &s,
            envelope(
                &id,
                &exception_event(&id, ty, "boom", "work", release),
                None,
            ),
        );
        async move { assert_eq!(r.send().await.unwrap().status(), 200) }
    };
    let count_of = |ty: &'static str, n: i64| {
        move |i: &[Value]| {
            i.iter()
                .any(|x| x["title"].as_str().unwrap().starts_with(ty) && x["count"] == n)
        }
    };
    send("TimeoutError", "api@1.0").await;
    let issues = wait_issues(&s, count_of("TimeoutError", 1)).await;
    let id = issues[0]["id"].as_i64().unwrap();
    // Resolved, then a new event: regression.
    assert_eq!(
        s.client()
            .put(
                &format!("/api/v1/issues/{id}"),
                json!({"status": "resolved"})
            )
            .await
            .expect(200)["status"],
        "resolved"
    );
    send("TimeoutError", "api@1.0").await;
    let issues = wait_issues(&s, count_of("TimeoutError", 2)).await;
    assert_eq!(
        (
            issues[0]["status"].as_str(),
            issues[0]["substatus"].as_str()
        ),
        (Some("unresolved"), Some("regressed"))
    );
    // Resolved in the next release: the current release may still report; a new one regresses.
    s.client()
        .put(
            &format!("/api/v1/issues/{id}"),
            json!({"status": "resolved_next_release"}),
        )
        .await
        .expect(200);
    send("TimeoutError", "api@1.0").await;
    let issues = wait_issues(&s, count_of("TimeoutError", 3)).await;
    assert_eq!(issues[0]["status"], "resolved_next_release");
    send("TimeoutError", "api@1.1").await;
    let issues = wait_issues(&s, count_of("TimeoutError", 4)).await;
    assert_eq!(
        (
            issues[0]["status"].as_str(),
            issues[0]["substatus"].as_str()
        ),
        (Some("unresolved"), Some("regressed"))
    );
    // Ignored until 2 more events: the third brings it back.
    s.client()
        .put(
            &format!("/api/v1/issues/{id}"),
            json!({"status": "ignored", "ignore_count": 2}),
        )
        .await
        .expect(200);
    send("TimeoutError", "api@1.1").await;
    send("TimeoutError", "api@1.1").await;
    assert_eq!(
        wait_issues(&s, count_of("TimeoutError", 6)).await[0]["status"],
        "ignored"
    );
    send("TimeoutError", "api@1.1").await;
    assert_eq!(
        wait_issues(&s, count_of("TimeoutError", 7)).await[0]["status"],
        "unresolved"
    );
    // The default list shows unresolved issues only; status filters work.
    let (_, res) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?status=resolved"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(res["items"].as_array().unwrap().len(), 0);
    let (st, bad) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?status=nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st.as_u16(), bad["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    // Merge: another issue folds into this one, and its later events follow.
    send("ConnectionError", "api@1.1").await;
    let issues = wait_issues(&s, count_of("ConnectionError", 1)).await;
    let other = issues
        .iter()
        .find(|i| i["title"].as_str().unwrap().starts_with("ConnectionError"))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, merged) = json_of(
        s.admin_client()
            .post(s.at(&format!("/api/v1/issues/{id}/merge")))
            .json(&json!({"issues": [other]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{merged}");
    assert_eq!(merged["count"], 8);
    send("ConnectionError", "api@1.1").await;
    let issues = wait_issues(&s, |i| i.len() == 1 && i[0]["count"] == 9).await;
    assert_eq!(issues[0]["id"], id);
    let (_, evs) = json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/issues/{id}/events?limit=3")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(evs["items"].as_array().unwrap().len(), 3);
    assert!(evs["next"].is_string());
    // Viewers cannot change issues.
    let (_, viewer) = json_of(
        s.admin_client()
            .post(s.at("/api/v1/tokens"))
            .json(&json!({"name": "v", "role": "viewer"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = reqwest::Client::new()
        .put(s.at(&format!("/api/v1/issues/{id}")))
        .bearer_auth(viewer["token"].as_str().unwrap())
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

async fn release_health_counts_sessions_and_new_issues(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let c = reqwest::Client::new();
    let post = |body: Vec<u8>| post_envelope(&c, &s, body).send();
    let item = |kind: &str, v: Value| format!("{{}}\n{{\"type\":\"{kind}\"}}\n{v}\n").into_bytes();
    let started = "2026-11-28T12:00:00Z";
    // Two sessions of 2.0 start; one crashes, one exits after handled errors; an ongoing update
    // in between must not count twice. A server-mode aggregate adds ten sessions of 2.1.
    for v in [
        json!({"sid": "a", "init": true, "status": "ok", "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
        json!({"sid": "b", "init": true, "status": "ok", "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
        json!({"sid": "a", "init": false, "status": "ok", "errors": 1, "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
        json!({"sid": "a", "init": false, "status": "crashed", "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
        json!({"sid": "b", "init": false, "status": "exited", "errors": 3, "started": started, "attrs": {"release": "app@2.0", "environment": "prod"}}),
    ] {
        assert_eq!(post(item("session", v)).await.unwrap().status(), 200);
    }
    let agg = json!({"attrs": {"release": "app@2.1", "environment": "prod"}, "aggregates": [{"started": started, "exited": 9, "crashed": 1}]});
    assert_eq!(post(item("sessions", agg)).await.unwrap().status(), 200);
    let id = new_id();
    assert_eq!(
        post(envelope(
            &id,
            &exception_event(&id, "BrandNew", "in 2.1", "f", "app@2.1"),
            None
        ))
        .await
        .unwrap()
        .status(),
        200
    );
    let releases = eventually("both releases to fill")
        .until(
            || async {
                let r = s
                    .client()
                    .get("/api/v1/projects/1/releases")
                    .await
                    .expect(200);
                r["items"].as_array().cloned().unwrap_or_default()
            },
            |items| {
                items
                    .iter()
                    .any(|i| i["release"] == "app@2.1" && i["events"] == 1)
                    && items.iter().any(|i| i["release"] == "app@2.0")
            },
        )
        .await;
    let r20 = releases.iter().find(|i| i["release"] == "app@2.0").unwrap();
    assert_eq!(
        (
            r20["sessions"].as_i64(),
            r20["crashed"].as_i64(),
            r20["errored"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(r20["crash_free_percent"].as_f64(), Some(50.0));
    let r21 = releases.iter().find(|i| i["release"] == "app@2.1").unwrap();
    assert_eq!(
        (
            r21["sessions"].as_i64(),
            r21["crashed"].as_i64(),
            r21["new_issues"].as_i64()
        ),
        (Some(10), Some(1), Some(1))
    );
    assert_eq!(r21["crash_free_percent"].as_f64(), Some(90.0));
    // "New in this release" through the issue list.
    let (_, new) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?first_release=app@2.1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(new["items"][0]["title"], "BrandNew: in 2.1");
    let (_, none) = json_of(
        s.admin_client()
            .get(s.at("/api/v1/projects/1/issues?first_release=app@2.0"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
}

async fn unmerge_splits_an_issue_back_out(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let c = reqwest::Client::new();
    let send = |ty: &'static str| {
        let id = new_id();
        let r = post_envelope(
            &c,
            &s,
            envelope(&id, &exception_event(&id, ty, "boom", ty, "r1"), None),
        );
        async move { assert_eq!(r.send().await.unwrap().status(), 200) }
    };
    send("TimeoutError").await;
    send("TimeoutError").await;
    send("ConnectionError").await;
    let issues = wait_issues(&s, |i| {
        i.len() == 2 && i.iter().map(|x| x["count"].as_i64().unwrap()).sum::<i64>() == 3
    })
    .await;
    let id_of = |t: &str| {
        issues
            .iter()
            .find(|i| i["title"].as_str().unwrap().starts_with(t))
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (a, b) = (id_of("TimeoutError"), id_of("ConnectionError"));
    let admin = s.admin_client();
    let (st, _) = json_of(
        admin
            .post(s.at(&format!("/api/v1/issues/{a}/merge")))
            .json(&json!({"issues": [b]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let (_, hs) = json_of(
        admin
            .get(s.at(&format!("/api/v1/issues/{a}/hashes")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let split: Vec<String> = hs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["latest_title"]
                .as_str()
                .is_some_and(|t| t.starts_with("ConnectionError"))
        })
        .map(|h| h["hash"].as_str().unwrap().to_string())
        .collect();
    assert!(!split.is_empty(), "{hs}");
    let (st, bad) = json_of(
        admin
            .post(s.at(&format!("/api/v1/issues/{a}/unmerge")))
            .json(&json!({"hashes": ["0".repeat(32)]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st.as_u16(), bad["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (st, new) = json_of(
        admin
            .post(s.at(&format!("/api/v1/issues/{a}/unmerge")))
            .json(&json!({"hashes": split}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{new}");
    assert_eq!(new["count"], 1);
    assert!(new["title"]
        .as_str()
        .unwrap()
        .starts_with("ConnectionError"));
    let (_, after) = json_of(
        admin
            .get(s.at(&format!("/api/v1/issues/{a}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(after["count"], 2);
    // The split-off hashes now belong to the new issue: its next event lands there.
    send("ConnectionError").await;
    let new_id = new["id"].as_i64().unwrap();
    wait_issues(&s, |i| {
        i.iter().any(|x| x["id"] == new_id && x["count"] == 2)
    })
    .await;
}
