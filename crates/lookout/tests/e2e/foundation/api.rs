//! The JSON API: start-up state, roles, bad input, pagination, OpenAPI parity, metrics.

use std::time::Duration;

use lookout_testkit::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{bin, json_of};

crate::both!(
    starts_ready_with_a_default_project_and_its_dsn,
    roles_are_enforced_on_every_api_route,
    bad_input_gets_a_clear_json_4xx,
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

async fn roles_are_enforced_on_every_api_route(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let admin = s.admin_client();
    let token = |role: &'static str| {
        let admin = admin.clone();
        let url = s.at("/api/v1/tokens");
        async move {
            let (st, t) = json_of(
                admin
                    .post(url)
                    .json(&json!({"name": role, "role": role}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(st, 201, "{t}");
            assert_eq!(t["role"], role);
            t["token"].as_str().unwrap().to_string()
        }
    };
    let viewer = token("viewer").await;
    let member = token("member").await;
    let c = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, tok: &str, body: Option<Value>| {
        let mut r = c.request(method, s.at(path)).bearer_auth(tok);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move { json_of(r.send().await.unwrap()).await }
    };
    use reqwest::Method as M;
    // No credential, a wrong one: 401 with the error shape.
    let (st, body) = json_of(c.get(s.at("/api/v1/projects")).send().await.unwrap()).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert_eq!(
        call(M::GET, "/api/v1/projects", "lk_wrong", None).await.0,
        401
    );
    // Viewer reads, cannot write.
    assert_eq!(call(M::GET, "/api/v1/projects", &viewer, None).await.0, 200);
    assert_eq!(
        call(M::GET, "/api/v1/projects/1/markers", &viewer, None)
            .await
            .0,
        200
    );
    let (st, body) = call(
        M::POST,
        "/api/v1/projects",
        &viewer,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    assert_eq!(
        call(
            M::POST,
            "/api/v1/projects/1/markers",
            &viewer,
            Some(json!({"title": "x"}))
        )
        .await
        .0,
        403
    );
    // Viewers cannot mint a stronger token.
    assert_eq!(
        call(
            M::POST,
            "/api/v1/tokens",
            &viewer,
            Some(json!({"name": "up", "role": "admin"}))
        )
        .await
        .0,
        403
    );
    // Member writes project data, cannot manage users.
    assert_eq!(
        call(
            M::POST,
            "/api/v1/projects",
            &member,
            Some(json!({"name": "Shop"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            M::POST,
            "/api/v1/projects/1/markers",
            &member,
            Some(json!({"title": "v2"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(call(M::GET, "/api/v1/users", &member, None).await.0, 403);
    assert_eq!(
        call(
            M::POST,
            "/api/v1/users",
            &member,
            Some(json!({"email": "e@x.io", "password": "12345678"}))
        )
        .await
        .0,
        403
    );
    // Non-admins see only their own tokens; the bootstrap token is not theirs.
    let (_, mine) = call(M::GET, "/api/v1/tokens", &member, None).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        call(M::DELETE, "/api/v1/tokens/1", &member, None).await.0,
        404
    );
    // Admin manages users; a revoked token stops at once.
    let (st, u) = call(
        M::POST,
        "/api/v1/users",
        &s.admin_token,
        Some(json!({"email": "Eve@Example.com", "password": "12345678", "role": "viewer"})),
    )
    .await;
    assert_eq!(st, 201);
    assert_eq!(u["email"], "eve@example.com");
    let (_, all) = call(M::GET, "/api/v1/tokens", &s.admin_token, None).await;
    let viewer_id = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "viewer")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        call(
            M::DELETE,
            &format!("/api/v1/tokens/{viewer_id}"),
            &s.admin_token,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(call(M::GET, "/api/v1/projects", &viewer, None).await.0, 401);
    let (_, me) = call(M::GET, "/api/v1/me", &s.admin_token, None).await;
    assert_eq!(
        (me["auth"].as_str(), me["role"].as_str()),
        (Some("token"), Some("admin"))
    );
}

async fn bad_input_gets_a_clear_json_4xx(backend: Backend) {
    let s = TestServer::start(bin(), backend).await;
    let c = s.admin_client();
    let post = |path: &str, body: &'static str, ct: &'static str| {
        c.post(s.at(path))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    // The oversized body goes on its own connection: the server answers 413 before reading it
    // and closes that connection, which a pooled client could otherwise race on the next call.
    let oversize_client = {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", s.admin_token).parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(h)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            post("/api/v1/projects", "{not json", "application/json")
                .await
                .unwrap(),
            400,
            "bad_request",
        ),
        (
            post("/api/v1/projects", "{\"name\": 5}", "application/json")
                .await
                .unwrap(),
            400,
            "bad_request",
        ),
        (
            post(
                "/api/v1/projects",
                "name=x",
                "application/x-www-form-urlencoded",
            )
            .await
            .unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            post("/api/v1/projects", "{\"name\": \"\"}", "application/json")
                .await
                .unwrap(),
            422,
            "validation_failed",
        ),
        (
            post(
                "/api/v1/projects",
                "{\"name\": \"a\", \"slug\": \"Bad Slug\"}",
                "application/json",
            )
            .await
            .unwrap(),
            422,
            "validation_failed",
        ),
        (
            post(
                "/api/v1/projects/1/markers",
                "{\"title\": \"x\", \"url\": \"javascript:alert(1)\"}",
                "application/json",
            )
            .await
            .unwrap(),
            422,
            "validation_failed",
        ),
        (
            post(
                "/api/v1/projects/1/markers",
                "{\"title\": \"x\", \"at\": \"yesterday\"}",
                "application/json",
            )
            .await
            .unwrap(),
            422,
            "validation_failed",
        ),
        (
            post(
                "/api/v1/projects/999/markers",
                "{\"title\": \"x\"}",
                "application/json",
            )
            .await
            .unwrap(),
            404,
            "not_found",
        ),
        (
            c.get(s.at("/api/v1/projects/abc")).send().await.unwrap(),
            400,
            "bad_request",
        ),
        (
            c.get(s.at("/api/v1/projects/999")).send().await.unwrap(),
            404,
            "not_found",
        ),
        (
            c.get(s.at("/api/v1/projects?limit=many"))
                .send()
                .await
                .unwrap(),
            400,
            "bad_request",
        ),
        (
            c.get(s.at("/api/v1/no-such-route")).send().await.unwrap(),
            404,
            "not_found",
        ),
        (
            oversize_client
                .post(s.at("/api/v1/projects"))
                .header("content-type", "application/json")
                .body(vec![b' '; 2 * 1024 * 1024])
                .send()
                .await
                .unwrap(),
            413,
            "payload_too_large",
        ),
    ];
    for (i, (resp, status, code)) in cases.into_iter().enumerate() {
        let (st, body) = json_of(resp).await;
        assert_eq!(st.as_u16(), status, "case {i}: {body}");
        assert_eq!(body["error"]["code"], code, "case {i}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "case {i} has no message"
        );
    }
    let (st, _) = json_of(
        post(
            "/api/v1/projects",
            "{\"name\": \"Dup\"}",
            "application/json",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st, 201);
    let (st, body) = json_of(
        post(
            "/api/v1/projects",
            "{\"name\": \"Dup\"}",
            "application/json",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (st.as_u16(), body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    // The server is still healthy after all of that.
    assert_eq!(c.get(s.at("/readyz")).send().await.unwrap().status(), 200);
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
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = reqwest::get(s.at("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let wanted = [
            r#"lookout_http_requests_total{route="/api/v1/projects/{id}",method="GET",status="200"} 1"#,
            "lookout_http_request_duration_seconds_bucket{route=\"/api/v1/projects/{id}\"",
            "lookout_storage_commit_seconds_bucket",
            "lookout_write_queue_depth",
            "lookout_job_lag_seconds_bucket{kind=\"sessions.cleanup\"",
            "lookout_process_resident_memory_bytes",
        ];
        let missing: Vec<_> = wanted.iter().filter(|w| !text.contains(*w)).collect();
        if missing.is_empty() {
            assert!(
                !text.contains(&s.admin_token),
                "a secret leaked into /metrics"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing from /metrics: {missing:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
