//! One typed client for talking to Lookout in tests, over a socket (a [`crate::TestServer`]) or
//! in process (the router itself, through `oneshot`): the same calls and the same assertions
//! either way, so a test can move between the e2e suite and the handler suite unchanged.
//!
//! A client carries one credential: an API token, a UI session (cookie plus the CSRF header),
//! or none. Every call answers a [`Response`] that has already read its body: its status, its
//! headers, the raw bytes and the JSON (`null` when the body is not JSON).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

/// Where requests go.
#[derive(Clone)]
enum Transport {
    /// A listening server at `base` (`http://127.0.0.1:PORT`).
    Http { http: reqwest::Client, base: String },
    /// The router, called without a socket.
    Router(axum::Router),
}

/// How a client proves who it is.
#[derive(Clone)]
enum Auth {
    Anonymous,
    Bearer(String),
    Session { cookie: String, csrf: String },
}

/// A request body.
pub enum Body {
    /// No body.
    Empty,
    /// JSON.
    Json(Value),
    /// Raw bytes without a content type (as some SDKs send them).
    Bytes(Vec<u8>),
    /// Raw bytes with their content type.
    Raw {
        /// `Content-Type`.
        content_type: String,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

impl From<Value> for Body {
    fn from(v: Value) -> Body {
        Body::Json(v)
    }
}

impl From<Option<Value>> for Body {
    fn from(v: Option<Value>) -> Body {
        v.map_or(Body::Empty, Body::Json)
    }
}

/// A test client bound to one server and one credential.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    auth: Auth,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Client {
    /// An anonymous client of the server at `base` (`http://host:port`).
    pub fn http(base: &str) -> Client {
        Client::http_with(reqwest::Client::new(), base)
    }

    /// Like [`Client::http`], over this `reqwest` client (its pool, redirect policy, timeouts).
    pub fn http_with(http: reqwest::Client, base: &str) -> Client {
        Client {
            transport: Transport::Http {
                http,
                base: base.trim_end_matches('/').to_string(),
            },
            auth: Auth::Anonymous,
            headers: Vec::new(),
        }
    }

    /// An anonymous client calling `app` in process. Requests carry a loopback peer address,
    /// as the listener would add.
    pub fn router(app: axum::Router) -> Client {
        Client {
            transport: Transport::Router(app),
            auth: Auth::Anonymous,
            headers: Vec::new(),
        }
    }

    /// The same server, with this API token.
    pub fn bearer(&self, token: &str) -> Client {
        Client {
            auth: Auth::Bearer(token.to_string()),
            ..self.clone()
        }
    }

    /// The same server, as a logged-in UI session: `cookie` is `lookout_session=…`, and writes
    /// send `csrf` in `X-CSRF-Token` as the UI does.
    pub fn session(&self, cookie: &str, csrf: &str) -> Client {
        Client {
            auth: Auth::Session {
                cookie: cookie.to_string(),
                csrf: csrf.to_string(),
            },
            ..self.clone()
        }
    }

    /// The same server, without a credential.
    pub fn anonymous(&self) -> Client {
        Client {
            auth: Auth::Anonymous,
            ..self.clone()
        }
    }

    /// The same client, sending this header on every request too.
    pub fn header(&self, name: &str, value: &str) -> Client {
        let mut c = self.clone();
        c.headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        ));
        c
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, Body::Empty).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path, Body::Empty).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send(Method::POST, path, Body::Json(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.send(Method::PUT, path, Body::Json(body)).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.send(Method::PATCH, path, Body::Json(body)).await
    }

    /// `POST path` with raw bytes of `content_type`.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> Response {
        let body = Body::Raw {
            content_type: content_type.to_string(),
            bytes: bytes.into(),
        };
        self.send(Method::POST, path, body).await
    }

    /// Any request.
    ///
    /// # Panics
    /// When the server cannot be reached (a test failure, not an answer).
    pub async fn send(&self, method: Method, path: &str, body: impl Into<Body>) -> Response {
        let what = format!("{method} {path}");
        let mut headers = HeaderMap::new();
        match &self.auth {
            Auth::Anonymous => {}
            Auth::Bearer(t) => {
                headers.insert(header::AUTHORIZATION, value(&format!("Bearer {t}")));
            }
            Auth::Session { cookie, csrf } => {
                headers.insert(header::COOKIE, value(cookie));
                headers.insert("x-csrf-token", value(csrf));
            }
        }
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
        let bytes = match body.into() {
            Body::Empty => Vec::new(),
            Body::Json(v) => {
                headers.insert(header::CONTENT_TYPE, value("application/json"));
                v.to_string().into_bytes()
            }
            Body::Bytes(bytes) => bytes,
            Body::Raw {
                content_type,
                bytes,
            } => {
                headers.insert(header::CONTENT_TYPE, value(&content_type));
                bytes
            }
        };
        let (status, headers, body) = match &self.transport {
            Transport::Http { http, base } => {
                let r = http
                    .request(method, format!("{base}{path}"))
                    .headers(headers)
                    .body(bytes)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let (status, headers) = (r.status(), r.headers().clone());
                let body = r
                    .bytes()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
                (status, headers, body)
            }
            Transport::Router(app) => {
                use tower::ServiceExt;
                let mut req = axum::http::Request::builder()
                    .method(method)
                    .uri(path)
                    .body(axum::body::Body::from(bytes))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                *req.headers_mut() = headers;
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(SocketAddr::from((
                        [127, 0, 0, 1],
                        40000,
                    ))));
                let r = app
                    .clone()
                    .oneshot(req)
                    .await
                    .unwrap_or_else(|e| match e {});
                let (parts, body) = r.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
                (parts.status, parts.headers, body)
            }
        };
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Response {
            what,
            status,
            headers,
            body,
            json,
        }
    }

    /// A new API token with `role` (made through the API, so as this client); its secret.
    pub async fn token(&self, role: &str) -> String {
        let t = self
            .post("/api/v1/tokens", json!({"name": role, "role": role}))
            .await
            .expect(201);
        assert_eq!(t["role"], role, "{t}");
        t["token"].as_str().expect("the token's secret").to_string()
    }

    /// A new user with `role` and the password `correct horse battery`; their id.
    pub async fn user(&self, email: &str, role: &str) -> i64 {
        let u = self
            .post(
                "/api/v1/users",
                json!({"email": email, "password": "correct horse battery", "role": role}),
            )
            .await
            .expect(201);
        u["id"].as_i64().expect("the user's id")
    }
}

fn value(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).expect("header value")
}

/// An answer, body read.
pub struct Response {
    /// `METHOD path`, for failure messages.
    pub what: String,
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as sent.
    pub body: Bytes,
    /// The body as JSON, `null` when it is not JSON.
    pub json: Value,
}

impl std::fmt::Debug for Response {
    /// What a failed wait shows: the request, the status and the body (pretty when JSON).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.json.is_null() {
            write!(f, "{} → {}: {}", self.what, self.status, self.text())
        } else {
            write!(f, "{} → {}: {:#}", self.what, self.status, self.json)
        }
    }
}

impl Response {
    /// Asserts the status is `want`; the JSON body.
    ///
    /// # Panics
    /// On another status, with the request and the body in the message.
    #[track_caller]
    pub fn expect(self, want: u16) -> Value {
        assert_eq!(self.status.as_u16(), want, "{}: {}", self.what, self.text());
        self.json
    }

    /// Status and JSON, for tests that look at both.
    pub fn parts(self) -> (StatusCode, Value) {
        (self.status, self.json)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The API error's `error.message` (empty when there is none).
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }

    /// The API error's `error.code` (empty when there is none).
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// A header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
