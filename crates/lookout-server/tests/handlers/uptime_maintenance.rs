//! Ending maintenance early, through the API (`POST /api/v1/maintenance-windows/{id}/end`) and
//! the monitor page's **End maintenance now**, which share `uptime::service::end_window`: the
//! roles of creating maintenance (member), a window that is not in progress refused (409), a
//! window the page does not list refused (404), the monitor out of maintenance at once, and a
//! recurring window keeping its later openings.

use lookout_core::Role;
use serde_json::{json, Value};

use crate::{form, Harness, FORM};

/// An RFC 3339 time `offset_ms` from now.
fn at(offset_ms: i64) -> String {
    lookout_core::time::iso(lookout_core::time::now_ms() + offset_ms)
}

/// A monitor (no runner checks it here) and a one-off window over it, open now for an hour.
async fn monitor_in_maintenance(h: &Harness) -> (i64, i64) {
    let m = h
        .admin
        .post(
            "/api/v1/monitors",
            json!({"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 9}),
        )
        .await
        .expect(201);
    let id = m["id"].as_i64().unwrap();
    let w = h
        .member
        .post(
            "/api/v1/maintenance-windows",
            json!({"title": "db upgrade", "starts_at": at(-60_000), "ends_at": at(3_600_000), "monitor_ids": [id]}),
        )
        .await
        .expect(201);
    assert_eq!(w["active"], true, "{w}");
    (id, w["id"].as_i64().unwrap())
}

async fn status(h: &Harness, monitor: i64) -> Value {
    h.admin
        .get(&format!("/api/v1/monitors/{monitor}"))
        .await
        .expect(200)["status"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_ends_a_window_in_progress_for_members_only() {
    let h = Harness::sqlite().await;
    let (monitor, window) = monitor_in_maintenance(&h).await;
    assert_eq!(status(&h, monitor).await, "maintenance");
    let end = format!("/api/v1/maintenance-windows/{window}/end");

    assert_eq!(h.anon.post(&end, json!({})).await.status.as_u16(), 401);
    assert_eq!(h.viewer.post(&end, json!({})).await.status.as_u16(), 403);
    assert_eq!(
        status(&h, monitor).await,
        "maintenance",
        "a refusal ended it"
    );

    let w = h.member.post(&end, json!({})).await.expect(200);
    assert_eq!(w["active"], false, "{w}");
    let ends = chrono::DateTime::parse_from_rfc3339(w["ends_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(ends <= lookout_core::time::now_ms(), "{w}");
    assert_eq!(w["title"], "db upgrade", "the rest of the window is kept");
    assert_ne!(status(&h, monitor).await, "maintenance");

    // Once ended there is nothing to end; a window that does not exist is 404.
    let r = h.member.post(&end, json!({})).await;
    assert_eq!(r.status.as_u16(), 409, "{r:?}");
    assert!(r.message().contains("not in progress"), "{r:?}");
    let r = h
        .member
        .post("/api/v1/maintenance-windows/999/end", json!({}))
        .await;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");

    // A window that has not started yet is not in progress either.
    let later = h
        .member
        .post(
            "/api/v1/maintenance-windows",
            json!({"title": "later", "starts_at": at(3_600_000), "ends_at": at(7_200_000), "monitor_ids": [monitor]}),
        )
        .await
        .expect(201);
    let r = h
        .member
        .post(
            &format!("/api/v1/maintenance-windows/{}/end", later["id"]),
            json!({}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 409, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_recurring_window_keeps_its_later_openings() {
    let h = Harness::sqlite().await;
    let m = h
        .admin
        .post(
            "/api/v1/monitors",
            json!({"name": "api", "type": "tcp", "host": "127.0.0.1", "port": 9}),
        )
        .await
        .expect(201);
    let monitor = m["id"].as_i64().unwrap();
    // Opens at every minute for ten minutes: always open, and it opens again a minute on.
    let w = h
        .member
        .post(
            "/api/v1/maintenance-windows",
            json!({"title": "rolling", "recurrence": {"crontab": "* * * * *", "duration_minutes": 10}, "monitor_ids": [monitor]}),
        )
        .await
        .expect(201);
    assert_eq!(w["active"], true, "{w}");
    let ended = h
        .member
        .post(
            &format!("/api/v1/maintenance-windows/{}/end", w["id"]),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(ended["active"], false, "{ended}");
    assert_eq!(ended["recurrence"]["crontab"], "* * * * *", "{ended}");
    assert!(
        ended["next_start"].is_string(),
        "later openings kept: {ended}"
    );
    assert_ne!(status(&h, monitor).await, "maintenance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_page_ends_the_maintenance_it_lists() {
    let h = Harness::sqlite().await;
    let (monitor, window) = monitor_in_maintenance(&h).await;
    let page = format!("/uptime/monitors/{monitor}");
    let action = format!("{page}/action");
    let (member, csrf) = h.ui_session(Role::Member, "maint").await;
    let (viewer, viewer_csrf) = h.ui_session(Role::Viewer, "maint").await;

    // The page offers the button on the window in progress.
    let html = member.get(&page).await.text();
    assert!(
        html.contains(&format!(r#"id="end-maintenance-{window}""#)),
        "{html}"
    );
    let w = window.to_string();

    // A viewer may not, and the window stays open.
    let r = viewer
        .post_raw(
            &action,
            FORM,
            form(&[
                ("csrf", &viewer_csrf),
                ("action", "end_maintenance"),
                ("window", &w),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{r:?}");
    assert_eq!(status(&h, monitor).await, "maintenance");

    // A window this monitor's page does not list (it covers another monitor) is not found.
    let other = h
        .admin
        .post(
            "/api/v1/monitors",
            json!({"name": "other", "type": "tcp", "host": "127.0.0.1", "port": 9}),
        )
        .await
        .expect(201);
    let r = member
        .post_raw(
            &format!("/uptime/monitors/{}/action", other["id"]),
            FORM,
            form(&[
                ("csrf", &csrf),
                ("action", "end_maintenance"),
                ("window", &w),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    assert_eq!(status(&h, monitor).await, "maintenance");

    // The member ends it: back to the page, which shows it ended.
    let r = member
        .post_raw(
            &action,
            FORM,
            form(&[
                ("csrf", &csrf),
                ("action", "end_maintenance"),
                ("window", &w),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{r:?}");
    assert_eq!(r.header("location"), Some(page.as_str()));
    assert_ne!(status(&h, monitor).await, "maintenance");
    let html = member.get(&page).await.text();
    assert!(html.contains(r#"data-state="ended""#), "{html}");
    assert!(!html.contains("end-maintenance-"), "{html}");

    // Again: it is no longer in progress, and the page says so.
    let r = member
        .post_raw(
            &action,
            FORM,
            form(&[
                ("csrf", &csrf),
                ("action", "end_maintenance"),
                ("window", &w),
            ]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 409, "{r:?}");
    assert!(r.text().contains("not in progress"), "{}", r.text());
}
