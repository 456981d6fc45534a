//! The Sentry ingest endpoints: `POST /api/{project_id}/envelope/` and the legacy
//! `POST /api/{project_id}/store/`, also behind a DSN path prefix (`/prefix/api/42/envelope/`).
//!
//! Statuses follow Relay, because SDKs act on them: 200 `{"id": …}` once the items are durably
//! committed; 400 malformed; 401 no key; 403 unknown key or a key of another project; 413 over a
//! size limit; 503 with `Retry-After` when the write queue is full. Unknown item types are
//! skipped, never an error. Browsers post cross-origin, so every answer carries CORS headers and
//! preflights are answered.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;
use lookout_core::time::now_ms;
use lookout_protocol::event::{self, Clock};
use lookout_protocol::{auth, decompress, envelope, store as legacy, ProtocolError};
use lookout_store::errors::process::ingest_writes;
use lookout_store::errors::NewAttachment;
use lookout_store::{tenancy, StoreError};

/// Largest body read off the wire, and largest envelope after decompression (Relay's limit).
pub const MAX_ENVELOPE_BYTES: usize = 200 * 1024 * 1024;
/// Largest attachment kept; larger ones are dropped (the event is still kept).
pub const MAX_ATTACHMENT_BYTES: usize = 20 * 1024 * 1024;
/// Largest session, check-in or client-report item.
const MAX_SMALL_ITEM_BYTES: usize = 100 * 1024;

/// Per-project ingest rate limits: a fixed one-minute window per project, counted in this
/// process. With several replicas each enforces the limit on its share of the traffic, which is
/// how Relay's per-instance quotas behave too; the limit is a guard against floods, not billing.
#[derive(Default)]
pub struct RateLimiter {
    windows: std::sync::Mutex<std::collections::HashMap<i64, (i64, i64)>>,
}

impl RateLimiter {
    /// Counts one event for `project`; `Some(seconds until the window ends)` if over `limit`.
    fn over(&self, project: i64, limit: i64, now: i64) -> Option<i64> {
        let window = now / 60_000;
        let mut w = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = w.entry(project).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= limit {
            return Some(((window + 1) * 60_000 - now + 999) / 1000);
        }
        entry.1 += 1;
        None
    }
}

/// DSN keys looked up in the last few seconds: (project, rate limit), or unknown.
///
/// Every ingest request needs its key's project; asking the database each time cost a thread
/// round trip per request (measured: it capped ingest). Entries live 5 s, so a revoked key or a
/// changed rate limit takes effect within 5 s; the map is cleared if it grows past 10,000 keys,
/// so a flood of random keys cannot grow memory.
#[derive(Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (i64, Option<KeySettings>)>>,
}

/// A key's project and that project's rate limit (events per minute).
type KeySettings = (i64, Option<i64>);

const KEY_TTL_MS: i64 = 5_000;

impl KeyCache {
    pub(crate) async fn lookup(
        &self,
        state: &AppState,
        key: &str,
        now: i64,
    ) -> Result<Option<(i64, Option<i64>)>, StoreError> {
        {
            let map = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, v)) = map.get(key) {
                if now - at < KEY_TTL_MS {
                    return Ok(*v);
                }
            }
        }
        let v = tenancy::ingest_settings_for_key(state.store(), key).await?;
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert(key.to_string(), (now, v));
        Ok(v)
    }
}

/// An ingest refusal, answered the way Sentry answers it.
struct Refusal(StatusCode, String);

/// A 429 that tells SDKs how long to hold back which categories.
fn rate_limited(retry_after: i64) -> Response {
    tracing::info!(retry_after, "Ingest rate limited.");
    let mut res = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "detail": "event submission rejected with_reason: ProjectQuota" })),
    )
        .into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        h.insert(header::RETRY_AFTER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{retry_after}:error;default;transaction;security:project:project_quota"
    )) {
        h.insert("x-sentry-rate-limits", v);
    }
    res
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        tracing::info!(status = self.0.as_u16(), reason = %self.1, "Ingest request refused.");
        let mut res = (self.0, Json(json!({ "detail": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

impl From<ProtocolError> for Refusal {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::TooLarge(m) => Refusal(StatusCode::PAYLOAD_TOO_LARGE, m),
            other => Refusal(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

/// CORS for browser SDKs: any origin may post events (the DSN key is the credential).
fn with_cors(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-sentry-error, x-sentry-rate-limits, retry-after"),
    );
    res
}

/// `OPTIONS` preflight of a browser SDK.
pub async fn preflight() -> Response {
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("x-sentry-auth, x-requested-with, origin, accept, content-type, content-encoding, authorization, sentry-trace, baggage"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("3600"),
    );
    with_cors(res)
}

/// Which endpoint a request came to.
#[derive(Clone, Copy, PartialEq)]
pub enum Endpoint {
    /// `/envelope/`
    Envelope,
    /// `/store/` (legacy)
    Store,
}

/// `POST /api/{project_id}/envelope/`
pub async fn envelope_endpoint(
    State(state): State<AppState>,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(
        &state,
        Endpoint::Envelope,
        &project,
        q.as_deref(),
        &headers,
        body,
    )
    .await
}

/// `POST /api/{project_id}/store/`
pub async fn store_endpoint(
    State(state): State<AppState>,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(
        &state,
        Endpoint::Store,
        &project,
        q.as_deref(),
        &headers,
        body,
    )
    .await
}

/// Ingests and answers, refusals included, with CORS headers.
async fn answer(
    state: &AppState,
    endpoint: Endpoint,
    project: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    with_cors(
        ingest(state, endpoint, project, query, headers, body)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    )
}

/// The endpoint and project of a path with a DSN prefix: `/{prefix}/api/{id}/envelope/`.
pub fn match_prefixed(path: &str) -> Option<(Endpoint, String)> {
    let trimmed = path.trim_end_matches('/');
    let (rest, endpoint) = if let Some(r) = trimmed.strip_suffix("/envelope") {
        (r, Endpoint::Envelope)
    } else {
        (trimmed.strip_suffix("/store")?, Endpoint::Store)
    };
    let (before, project) = rest.rsplit_once('/')?;
    before
        .ends_with("/api")
        .then(|| (endpoint, project.to_string()))
}

/// Serves a prefixed ingest path found by the router's fallback.
pub async fn prefixed(
    state: &AppState,
    endpoint: Endpoint,
    project: &str,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    if method == Method::OPTIONS {
        return preflight().await;
    }
    answer(state, endpoint, project, query, headers, body).await
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Counts every ingest request by endpoint, content encoding and answer, then answers it.
async fn ingest(
    state: &AppState,
    endpoint: Endpoint,
    project: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let result = ingest_inner(state, endpoint, project, query, headers, body).await;
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(Refusal(s, _)) => s.as_u16(),
    };
    let encoding = header_str(headers, "content-encoding")
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "identity".into());
    let endpoint = match endpoint {
        Endpoint::Envelope => "envelope",
        Endpoint::Store => "store",
    };
    metrics::counter!("lookout_ingest_requests_total", "endpoint" => endpoint, "encoding" => encoding, "status" => status.to_string()).increment(1);
    result
}

async fn ingest_inner(
    state: &AppState,
    endpoint: Endpoint,
    project: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let received = now_ms();
    let project_id: i64 = project.parse().map_err(|_| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "project id in the path must be a number".into(),
        )
    })?;
    let raw: Bytes = axum::body::to_bytes(body, MAX_ENVELOPE_BYTES)
        .await
        .map_err(|_| {
            Refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "envelope exceeded size limits".into(),
            )
        })?;
    let decoded = decompress::decode(
        header_str(headers, "content-encoding"),
        &raw,
        MAX_ENVELOPE_BYTES,
    )?;
    // Parse first: the envelope header may carry the DSN, one of the places keys come from.
    let env = match endpoint {
        Endpoint::Envelope => envelope::parse(&decoded)?,
        Endpoint::Store => {
            let json = legacy::event_json(&decoded, event::MAX_EVENT_BYTES)?;
            let mut item_headers = serde_json::Map::new();
            item_headers.insert("type".into(), Value::String("event".into()));
            envelope::Envelope {
                headers: serde_json::Map::new(),
                items: vec![envelope::Item {
                    headers: item_headers,
                    payload: json,
                }],
            }
        }
    };
    let key = auth::agree(&[
        header_str(headers, "x-sentry-auth").and_then(auth::key_from_sentry_auth),
        header_str(headers, "authorization").and_then(auth::key_from_authorization),
        query.and_then(auth::key_from_query),
        env.header_str("dsn").and_then(auth::key_from_dsn),
    ])
    .map_err(|e| Refusal(StatusCode::UNAUTHORIZED, e.to_string()))?
    .ok_or_else(|| {
        Refusal(
            StatusCode::UNAUTHORIZED,
            "missing authorization information".into(),
        )
    })?;
    let rate_limit = match state.ingest_keys().lookup(state, &key, received).await {
        Ok(Some((pid, limit))) if pid == project_id => limit,
        Ok(_) => {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                "event submission rejected with_reason: ProjectId or key".into(),
            ))
        }
        Err(e) => return Err(storage_unavailable("Key lookup failed.", &e)),
    };
    // Events and transactions count against the project's rate limit; sessions, check-ins and
    // client reports never do (Sentry never rate-limits check-ins either).
    let counted = env
        .items
        .iter()
        .any(|i| matches!(i.ty(), "event" | "transaction"));
    if let (Some(limit), true) = (rate_limit, counted) {
        if let Some(retry_after) = state.ingest_limits().over(project_id, limit, received) {
            return Ok(rate_limited(retry_after));
        }
    }
    let clock = Clock {
        received_ms: received,
        sent_at_ms: env.headers.get("sent_at").and_then(event::parse_timestamp),
    };
    let envelope_event_id = env.header_str("event_id");
    let mut items = Vec::new();
    let mut attachments = Vec::new();
    let mut answer_id: Option<String> = None;
    for item in &env.items {
        let kind = item.ty();
        metrics::counter!("lookout_ingest_items_total", "type" => kind.to_string()).increment(1);
        match kind {
            "event" => {
                let ev = event::parse_event(&item.payload, envelope_event_id, &clock)?;
                answer_id = Some(ev.event_id.clone());
                items.push((
                    "event".to_string(),
                    Some(ev.event_id.clone()),
                    ev.body.to_string(),
                ));
            }
            "transaction" => {
                if item.payload.len() > event::MAX_EVENT_BYTES {
                    return Err(Refusal(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "transaction exceeds 1 MiB".into(),
                    ));
                }
                let v = json_object(&item.payload, kind)?;
                let id = envelope_event_id
                    .or_else(|| v.get("event_id").and_then(Value::as_str))
                    .and_then(event::normalize_id);
                answer_id = answer_id.or_else(|| id.clone());
                items.push(("transaction".to_string(), id, v.to_string()));
            }
            "session" | "sessions" | "check_in" | "client_report" => {
                if item.payload.len() > MAX_SMALL_ITEM_BYTES {
                    return Err(Refusal(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("{kind} item exceeds size limits"),
                    ));
                }
                let v = json_object(&item.payload, kind)?;
                items.push((kind.to_string(), None, v.to_string()));
            }
            "attachment" => {
                if item.payload.len() > MAX_ATTACHMENT_BYTES {
                    tracing::info!(
                        project = project_id,
                        size = item.payload.len(),
                        "Attachment over the size cap dropped."
                    );
                    continue;
                }
                let Some(event_id) = envelope_event_id.and_then(event::normalize_id) else {
                    continue;
                };
                attachments.push(NewAttachment {
                    event_id,
                    filename: item
                        .headers
                        .get("filename")
                        .and_then(Value::as_str)
                        .unwrap_or("attachment")
                        .chars()
                        .take(200)
                        .collect(),
                    content_type: item
                        .headers
                        .get("content_type")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    data: item.payload.clone(),
                });
            }
            // Logs, profiles, replays, spans, feedback, …: accepted and skipped, never an error.
            _ => {}
        }
    }
    if !items.is_empty() || !attachments.is_empty() {
        match state
            .writes()
            .write(ingest_writes(project_id, received, items, attachments))
            .await
        {
            Ok(()) => {}
            Err(StoreError::Overloaded) | Err(StoreError::ShuttingDown) => {
                return Err(Refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server is busy; retry later".into(),
                ))
            }
            Err(e) => return Err(storage_unavailable("Ingest write failed.", &e)),
        }
    }
    let body = match answer_id {
        Some(id) => json!({ "id": id }),
        None => json!({}),
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// Logs a storage failure (the cause stays in the log) and answers 503 so SDKs retry later.
fn storage_unavailable(what: &'static str, e: &StoreError) -> Refusal {
    tracing::error!(error = %e, "{what}");
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable".into(),
    )
}

fn json_object(payload: &[u8], kind: &str) -> Result<Value, Refusal> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("{kind} item is not a JSON object"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_paths_are_recognised() {
        assert!(
            matches!(match_prefixed("/some/prefix/api/42/envelope/"), Some((Endpoint::Envelope, p)) if p == "42")
        );
        assert!(matches!(match_prefixed("/x/api/7/store"), Some((Endpoint::Store, p)) if p == "7"));
        assert!(match_prefixed("/x/apis/7/store/").is_none());
        assert!(match_prefixed("/settings").is_none());
    }
}
