//! The JSON API: start-up state, pagination, OpenAPI parity, metrics. (Roles and bad input are
//! answered by the router alone: crates/lookout-server/tests/handlers.)

use std::time::Duration;

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::{json, Value};

use crate::{bin, json_of};

lookout_testkit::both!(
    starts_ready_with_a_default_project_and_its_dsn,
    lists_paginate_with_limit_and_cursor,
    metrics_cover_requests_storage_and_jobs,
);

async fn starts_ready_with_a_default_project_and_its_dsn(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let c = s.admin_client();
    assert_eq!(c.get(s.at("/healthz")).send().await.unwrap().status(), 200);
    let (st, ready) = json_of(c.get(s.at("/readyz")).send().await.unwrap()).await;
    assert_eq!(st, 200);
    assert_eq!(ready["status"], "ready");
    assert!(ready["schema_version"].as_i64().unwrap() >= 2);
    let (_, page) = json_of(c.get(s.at("/api/v1/projects")).send().await.unwrap()).await;
    let p = &page["items"][0];
    assert_eq!(p["id"], 1);
    assert_eq!(p["slug"], "default");
    let key = p["public_key"].as_str().unwrap();
    assert_eq!(key.len(), 32);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    // The banner's DSN is the project's DSN: scheme://key@host:port/1.
    assert_eq!(p["dsn"], s.dsn.as_str());
    assert_eq!(
        s.dsn,
        format!("{}/1", s.url.replacen("://", &format!("://{key}@"), 1))
    );
    // The OTLP listener is up on its own port.
    assert_eq!(
        reqwest::get(format!("{}/healthz", s.otlp_url))
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn lists_paginate_with_limit_and_cursor(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let c = s.admin_client();
    for i in 0..6 {
        let r = c
            .post(s.at("/api/v1/projects"))
            .json(&json!({"name": format!("svc {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let mut names = Vec::new();
    let mut url = s.at("/api/v1/projects?limit=3");
    loop {
        let (_, page) = json_of(c.get(&url).send().await.unwrap()).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        names.extend(
            items
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => url = s.at(&format!("/api/v1/projects?limit=3&cursor={next}")),
            None => break,
        }
    }
    assert_eq!(
        names,
        ["Default", "svc 0", "svc 1", "svc 2", "svc 3", "svc 4", "svc 5"]
    );
    let (_, big) = json_of(
        c.get(s.at("/api/v1/projects?limit=5000"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(big["items"].as_array().unwrap().len(), 7);
    assert!(big["next"].is_null());
    // The activity feed pages newest first.
    let (_, feed) = json_of(c.get(s.at("/api/v1/events?limit=2")).send().await.unwrap()).await;
    let seqs: Vec<i64> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.len() == 2 && seqs[0] > seqs[1]);
    let (_, older) = json_of(
        c.get(s.at(&format!(
            "/api/v1/events?limit=2&cursor={}",
            feed["next"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert!(older["items"][0]["seq"].as_i64().unwrap() < seqs[1]);
}

async fn metrics_cover_requests_storage_and_jobs(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let c = s.admin_client();
    c.get(s.at("/api/v1/projects/1")).send().await.unwrap();
    c.post(s.at("/api/v1/projects/1/markers"))
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    // The maintenance jobs are due at start; give the scheduler a moment to run them.
    let wanted = [
        r#"lookout_http_requests_total{route="/api/v1/projects/{id}",method="GET",status="200"} 1"#,
        "lookout_http_request_duration_seconds_bucket{route=\"/api/v1/projects/{id}\"",
        "lookout_storage_commit_seconds_bucket",
        "lookout_write_queue_depth",
        "lookout_job_lag_seconds_bucket{kind=\"sessions.cleanup\"",
        "lookout_process_resident_memory_bytes",
    ];
    let text = eventually(format!("/metrics to show {wanted:?}"))
        .secs(10)
        .every(Duration::from_millis(200))
        .until(
            || async { s.anon().get("/metrics").await.text() },
            |text| wanted.iter().all(|w| text.contains(*w)),
        )
        .await;
    assert!(
        !text.contains(&s.admin_token),
        "a secret leaked into /metrics"
    );
}

/// Every operation in the OpenAPI document is served, and every served API route is documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_routes() {
    let s = TestServer::start(bin(), Backend::Sqlite).await;
    let c = s.admin_client();
    let doc: Value = c
        .get(s.at("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            let concrete = path.replace("{id}", "1");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (st, body) = json_of(
                c.request(m, s.at(&concrete))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                !(st == 404 && body["error"]["message"] == "API route not found") && st != 405,
                "{method} {path} is documented but not served ({st})"
            );
        }
    }
    for expected in [
        "GET /api/v1/projects",
        "POST /api/v1/projects",
        "GET /api/v1/projects/{id}",
        "GET /api/v1/projects/{id}/markers",
        "POST /api/v1/projects/{id}/markers",
        "GET /api/v1/events",
        "GET /api/v1/me",
        "GET /api/v1/users",
        "POST /api/v1/users",
        "GET /api/v1/users/{id}",
        "DELETE /api/v1/users/{id}",
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{id}",
    ] {
        assert!(
            documented.iter().any(|d| d == expected),
            "{expected} is not documented"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
