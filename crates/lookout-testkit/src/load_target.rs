//! A local HTTP application for load-test tests: JSON items, a login that hands out a token and
//! a session header, a page that needs the token, slow and failing endpoints, a redirect, a
//! chunked body; it logs every request so tests can check what the generator sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// One request the target received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

/// The running target.
pub struct LoadTarget {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl LoadTarget {
    /// Starts the target on a free port of 127.0.0.1 (on the caller's runtime).
    pub async fn start() -> LoadTarget {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let app = Router::new()
            .route("/items/{n}", get(item))
            .route("/login", post(login))
            .route("/me", get(me))
            .route("/slow", get(slow))
            .route("/status/{code}", any(status))
            .route("/redirect", get(redirect))
            .route("/chunked", get(chunked))
            .route("/echo", any(echo))
            .route("/session/{user}", post(session_login))
            .route("/session", get(session_me))
            .layer(axum::middleware::from_fn_with_state(hits.clone(), record))
            .with_state(());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LoadTarget { addr, hits }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

async fn record(
    State(hits): State<Arc<Mutex<Vec<Hit>>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let hit = Hit {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        at: Instant::now(),
    };
    if let Ok(mut h) = hits.lock() {
        h.push(hit);
    }
    next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn item(Path(n): Path<String>) -> Json<Value> {
    Json(json!({"id": n, "name": format!("item {n}")}))
}

async fn login(Json(body): Json<Value>) -> Response {
    let user = body["user"].as_str().unwrap_or("").to_string();
    if user.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "user missing"})),
        )
            .into_response();
    }
    (
        [("x-session", format!("s-{user}"))],
        Json(json!({"token": format!("tok-{user}"), "user": {"name": user}})),
    )
        .into_response()
}

async fn me(headers: HeaderMap) -> Response {
    match headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer tok-"))
    {
        Some(user) => Json(json!({"user": user})).into_response(),
        None => (StatusCode::UNAUTHORIZED, "no token").into_response(),
    }
}

async fn slow(Query(q): Query<HashMap<String, String>>) -> &'static str {
    let ms = q.get("ms").and_then(|v| v.parse().ok()).unwrap_or(100);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slow"
}

async fn status(Path(code): Path<u16>) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        "status",
    )
        .into_response()
}

async fn redirect() -> Response {
    (StatusCode::FOUND, [("location", "/items/redirected")], "").into_response()
}

async fn chunked() -> Response {
    let parts: Vec<Result<String, std::io::Error>> =
        (0..5).map(|i| Ok(format!("part{i};"))).collect();
    // A streamed body without a length goes out chunked.
    Body::from_stream(futures_util::stream::iter(parts)).into_response()
}

async fn session_login(Path(user): Path<String>) -> Response {
    (
        [("set-cookie", format!("sid=s-{user}; Path=/; HttpOnly"))],
        "logged in",
    )
        .into_response()
}

async fn session_me(headers: HeaderMap) -> Response {
    let cookie = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match cookie
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("sid=s-"))
    {
        Some(user) => Json(json!({"user": user})).into_response(),
        None => (StatusCode::UNAUTHORIZED, "no session").into_response(),
    }
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: String) -> Json<Value> {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Json(
        json!({"method": method.as_str(), "uri": uri.to_string(), "headers": headers, "body": body}),
    )
}
