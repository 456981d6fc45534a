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

use crate::budget::{ByteBudget, IngestLimits, Reservation};
use crate::state::AppState;
use lookout_core::time::now_ms;
use lookout_protocol::event::{self, Clock};
use lookout_protocol::{auth, decompress, envelope, store as legacy, ProtocolError};
use lookout_store::errors::process::ingest_writes;
use lookout_store::errors::NewAttachment;
use lookout_store::{tenancy, StoreError};

/// Largest session, check-in or client-report item.
const MAX_SMALL_ITEM_BYTES: usize = 100 * 1024;
/// Largest envelope header (the first line); SDKs send well under 2 KiB.
const MAX_ENVELOPE_HEADER_BYTES: usize = 64 * 1024;

/// Per-project ingest rate limits: a fixed one-minute window per project. With Redis configured
/// the window is counted there, across every replica (see [`crate::shared::limits`]); without
/// it, or while it is unreachable, each replica counts its share of the traffic, which is how
/// Relay's per-instance quotas behave too.
#[derive(Default)]
pub struct RateLimiter {
    windows: std::sync::Mutex<std::collections::HashMap<i64, (i64, i64)>>,
}

impl RateLimiter {
    /// Counts one event for `project`, across replicas when Redis answers, else in this
    /// process; `Some(seconds until the window ends)` if over `limit`.
    pub(crate) async fn over_shared(&self, project: i64, limit: i64, now: i64) -> Option<i64> {
        // Counted here too, so a replica that loses Redis mid-window keeps its own share.
        let local = self.over(project, limit, now);
        match crate::shared::get().ingest_over(project, limit).await {
            Some(shared) => shared,
            None => local,
        }
    }

    /// Counts one event for `project` in this process; `Some(seconds until the window ends)` if over `limit`.
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
/// so a flood of random keys cannot grow memory. A key longer than [`MAX_KEY_LEN`] or with
/// anything but letters and digits is unknown without a lookup or an entry (Lookout issues 32 hex
/// digits), so no entry holds a megabyte of header.
#[derive(Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (i64, Option<KeySettings>)>>,
}

/// A key's project and that project's rate limit (events per minute).
type KeySettings = (i64, Option<i64>);

const KEY_TTL_MS: i64 = 5_000;

/// The longest key looked up: Lookout issues 32 hex digits.
const MAX_KEY_LEN: usize = 64;

impl KeyCache {
    pub(crate) async fn lookup(
        &self,
        state: &AppState,
        key: &str,
        now: i64,
    ) -> Result<Option<(i64, Option<i64>)>, StoreError> {
        if key.is_empty()
            || key.len() > MAX_KEY_LEN
            || !key.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Ok(None);
        }
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
            ProtocolError::OverBudget => over_budget(),
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
    let encoding = encoding_label(header_str(headers, "content-encoding"));
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
    let budget = state.ingest_budget().clone();
    let limits = *budget.limits();
    let project_id: i64 = project.parse().map_err(|_| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "project id in the path must be a number".into(),
        )
    })?;
    // A key in a header or the query string is checked before a byte of the body is read, so an
    // unknown key costs a cache lookup, not a body read and a decompression.
    let outer_key = auth::agree(&[
        header_str(headers, "x-sentry-auth").and_then(auth::key_from_sentry_auth),
        header_str(headers, "authorization").and_then(auth::key_from_authorization),
        query.and_then(auth::key_from_query),
    ])
    .map_err(|e| Refusal(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let mut rate_limit = None;
    match (&outer_key, endpoint) {
        (Some(key), _) => rate_limit = check_key(state, key, project_id, received).await?,
        // The legacy store body has no envelope header, so nowhere else a key could be.
        (None, Endpoint::Store) => return Err(missing_key()),
        (None, Endpoint::Envelope) => {}
    }
    let cap = match endpoint {
        Endpoint::Envelope => limits.max_envelope_bytes,
        Endpoint::Store => limits.max_event_bytes,
    };
    let encoding = header_str(headers, "content-encoding").map(str::to_string);
    let mut wire = budget.reservation();
    let raw = read_body(body, headers, cap, &budget, &mut wire).await?;
    if outer_key.is_none() {
        // The key can only be in the envelope header, the first line: inflate just that line
        // (a bomb is not inflated before its sender is known), check the key, then go on.
        let enc = encoding.clone();
        let head = raw.clone();
        let line = blocking(move || {
            decompress::decode_first_line(enc.as_deref(), &head, MAX_ENVELOPE_HEADER_BYTES)
        })
        .await??;
        let dsn: Value = serde_json::from_slice(&line).map_err(|e| {
            Refusal(
                StatusCode::BAD_REQUEST,
                format!("envelope header is not valid JSON: {e}"),
            )
        })?;
        let key = dsn
            .get("dsn")
            .and_then(Value::as_str)
            .and_then(auth::key_from_dsn)
            .ok_or_else(missing_key)?;
        rate_limit = check_key(state, &key, project_id, received).await?;
    }
    // Decompressing and parsing run on the blocking pool: a large or slow-to-inflate body must
    // not stall the async workers that answer every other request (health checks included).
    let parse_budget = budget.clone();
    let (env, _decoded) = blocking(move || {
        let mut held = parse_budget.reservation();
        let identity = matches!(
            encoding
                .as_deref()
                .map(|e| e.trim().to_ascii_lowercase())
                .as_deref(),
            None | Some("" | "identity" | "utf-8")
        );
        let decoded: Bytes = if identity {
            if raw.len() > cap {
                return Err(too_large(cap));
            }
            // The body is the envelope: its bytes stay reserved as long as it lives.
            parse_budget.transfer(&mut wire, &mut held);
            raw
        } else {
            // Each growth moves the output to a new buffer and frees the old one, so by the
            // next growth the buffer before the last is gone and its bytes go back: what stays
            // reserved is the live buffer (two while moving), not the sum of every size, which
            // made a large compressed envelope need three times its size and get 503 forever.
            let (mut live, mut freed) = (0usize, 0usize);
            let out = decompress::decode_budgeted(encoding.as_deref(), &raw, cap, &mut |n| {
                if !parse_budget.reserve(&mut held, n) {
                    return false;
                }
                parse_budget.release(&mut held, freed);
                (freed, live) = (live, n);
                true
            })?;
            parse_budget.release(&mut held, freed);
            // The compressed body is no longer needed: neither are its bytes of the budget.
            drop(raw);
            drop(wire);
            Bytes::from(out)
        };
        let env = match endpoint {
            Endpoint::Envelope => envelope::parse_with(&decoded, &mut |ty, len| {
                let keep = item_cap(&limits, project_id, ty, len)?;
                if keep && !parse_budget.reserve(&mut held, len) {
                    return Err(ProtocolError::OverBudget);
                }
                Ok(keep)
            })?,
            Endpoint::Store => {
                let json = legacy::event_json(&decoded, limits.max_event_bytes)?;
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
        Ok::<_, ProtocolError>((env, held))
    })
    .await??;
    // A key in the envelope header must agree with one sent outside it (Relay does the same).
    if let (Some(outer), Some(inner)) = (
        &outer_key,
        env.header_str("dsn").and_then(auth::key_from_dsn),
    ) {
        if *outer != inner {
            return Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "multiple different sentry keys in one request".into(),
            ));
        }
    }
    // Events and transactions count against the project's rate limit; sessions, check-ins and
    // client reports never do (Sentry never rate-limits check-ins either).
    let counted = env
        .items
        .iter()
        .any(|i| matches!(i.ty(), "event" | "transaction"));
    if let (Some(limit), true) = (rate_limit, counted) {
        if let Some(retry_after) = state
            .ingest_limits()
            .over_shared(project_id, limit, received)
            .await
        {
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
        metrics::counter!("lookout_ingest_items_total", "type" => item_label(kind)).increment(1);
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
                let v = json_object(&item.payload, kind)?;
                let id = envelope_event_id
                    .or_else(|| v.get("event_id").and_then(Value::as_str))
                    .and_then(event::normalize_id);
                answer_id = answer_id.or_else(|| id.clone());
                items.push(("transaction".to_string(), id, v.to_string()));
            }
            "session" | "sessions" | "check_in" | "client_report" => {
                let v = json_object(&item.payload, kind)?;
                items.push((kind.to_string(), None, v.to_string()));
            }
            "attachment" => {
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
            "user_report" | "feedback" => {
                let v = json_object(&item.payload, kind)?;
                // The event id travels in the payload: the inbox's `event_id` names events only.
                if let Some(report) = user_report(kind, &v) {
                    items.push(("user_report".to_string(), None, report.to_string()));
                }
            }
            // Logs, profiles, replays, spans, …: accepted and skipped, never an error.
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

/// The `encoding` label: one of the encodings we decode, or `other` (the header is the client's
/// to choose, and every distinct label value is a series kept for the life of the process).
fn encoding_label(header: Option<&str>) -> &'static str {
    match header
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
        .unwrap_or("")
    {
        "" | "identity" | "utf-8" => "identity",
        "gzip" | "x-gzip" => "gzip",
        "deflate" => "deflate",
        "br" => "br",
        "zstd" => "zstd",
        _ => "other",
    }
}

/// The `type` label of an item: the kinds Sentry SDKs send, or `other`.
fn item_label(kind: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "event",
        "transaction",
        "session",
        "sessions",
        "check_in",
        "client_report",
        "attachment",
        "user_report",
        "feedback",
        "profile",
        "profile_chunk",
        "replay_event",
        "replay_recording",
        "replay_video",
        "span",
        "log",
        "otel_log",
        "statsd",
        "metric_buckets",
    ];
    KNOWN
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("other")
}

/// Whether an item of `kind` and `len` bytes is kept: each kind has its own cap. Events and
/// transactions over theirs refuse the envelope (413, as Relay does), an attachment over its
/// cap is dropped with a log line, and kinds Lookout does not store are left out uncopied.
fn item_cap(
    limits: &IngestLimits,
    project: i64,
    kind: &str,
    len: usize,
) -> Result<bool, ProtocolError> {
    match kind {
        "event" | "transaction" if len > limits.max_event_bytes => Err(ProtocolError::TooLarge(
            format!("{kind} exceeds {} bytes", limits.max_event_bytes),
        )),
        "event" | "transaction" => Ok(true),
        "session" | "sessions" | "check_in" | "client_report" | "user_report" | "feedback"
            if len > MAX_SMALL_ITEM_BYTES =>
        {
            Err(ProtocolError::TooLarge(format!(
                "{kind} item exceeds size limits"
            )))
        }
        "user_report" | "feedback" => Ok(true),
        "session" | "sessions" | "check_in" | "client_report" if len > MAX_SMALL_ITEM_BYTES => Err(
            ProtocolError::TooLarge(format!("{kind} item exceeds size limits")),
        ),
        "session" | "sessions" | "check_in" | "client_report" => Ok(true),
        "attachment" if len > limits.max_attachment_bytes => {
            tracing::info!(project, size = len, "Attachment over the size cap dropped.");
            Ok(false)
        }
        "attachment" => Ok(true),
        // Logs, profiles, replays, spans, feedback, …: accepted and skipped, never an error.
        _ => Ok(false),
    }
}

/// Checks a DSN key against the project in the path: its rate limit, or 403 (401-class answers
/// come before: a missing key is 401).
async fn check_key(
    state: &AppState,
    key: &str,
    project_id: i64,
    now: i64,
) -> Result<Option<i64>, Refusal> {
    match state.ingest_keys().lookup(state, key, now).await {
        Ok(Some((pid, limit))) if pid == project_id => Ok(limit),
        Ok(_) => Err(Refusal(
            StatusCode::FORBIDDEN,
            "event submission rejected with_reason: ProjectId or key".into(),
        )),
        Err(e) => Err(storage_unavailable("Key lookup failed.", &e)),
    }
}

fn missing_key() -> Refusal {
    Refusal(
        StatusCode::UNAUTHORIZED,
        "missing authorization information".into(),
    )
}

fn too_large(cap: usize) -> ProtocolError {
    ProtocolError::TooLarge(format!("envelope exceeds {cap} bytes"))
}

/// The in-flight byte budget is spent: 503 with `Retry-After`, which SDKs honour.
fn over_budget() -> Refusal {
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "server is busy; retry later".into(),
    )
}

/// Reads the request body under the wire cap, reserving from the budget before it is held.
/// A declared `Content-Length` over the cap is refused without reading; otherwise that length is
/// reserved and read into one buffer. A body without one is kept as the chunks it arrives in
/// (no reallocation, whose old and new buffers would both be live) and joined once at the end.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    cap: usize,
    budget: &ByteBudget,
    held: &mut Reservation,
) -> Result<Bytes, Refusal> {
    use futures_util::StreamExt;
    let too_big = || {
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "envelope exceeded size limits".into(),
        )
    };
    let read_error = |e: axum::Error| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        )
    };
    let declared =
        header_str(headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
    let mut stream = body.into_data_stream();
    if let Some(len) = declared {
        if len > cap {
            return Err(too_big());
        }
        // The buffer grows (doubling, up to the declared length) as bytes arrive, and only what
        // is allocated is reserved: reserving the declared length up front let a few uploads
        // that declare 20 MiB and then trickle a byte a minute hold the whole budget.
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(read_error)?;
            let need = buf.len() + chunk.len();
            // hyper enforces the declared length; this only guards the allocation.
            if need > len {
                return Err(too_big());
            }
            if need > buf.capacity() {
                let grown = need.max(buf.capacity() * 2).max(64 * 1024).min(len);
                if !budget.reserve(held, grown - buf.capacity()) {
                    return Err(over_budget());
                }
                buf.reserve_exact(grown - buf.len());
            }
            buf.extend_from_slice(&chunk);
        }
        return Ok(Bytes::from(buf));
    }
    let mut chunks = Vec::new();
    let mut chunks_held = budget.reservation();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(read_error)?;
        total += chunk.len();
        if total > cap {
            return Err(too_big());
        }
        if !budget.reserve(&mut chunks_held, chunk.len()) {
            return Err(over_budget());
        }
        chunks.push(chunk);
    }
    if chunks.len() == 1 {
        budget.transfer(&mut chunks_held, held);
        return Ok(chunks.pop().unwrap_or_default());
    }
    if !budget.reserve(held, total) {
        return Err(over_budget());
    }
    let mut buf = Vec::with_capacity(total);
    for c in chunks {
        buf.extend_from_slice(&c);
    }
    Ok(Bytes::from(buf))
}

/// Decoding jobs that run at once: one per core. Sixteen clients each had a blocking thread
/// decoding at the same moment, and every thread keeps its own allocator pages (peak RSS grew by
/// about 2 MB per thread under bench/errors.sh) while the two cores could only run two of them.
/// A request waits for a slot without holding a thread; its body is already within the budget.
fn decode_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        tokio::sync::Semaphore::new(cores.max(2))
    })
}

/// Runs CPU-heavy work (decompression, parsing) on the blocking pool, one job per core.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refusal> {
    // The semaphore is never closed, so acquiring only fails if it were.
    let _slot = decode_slots().acquire().await.map_err(|e| {
        tracing::error!(error = %e, "Ingest decoding slots closed.");
        Refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
    })?;
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "Ingest decoding task failed.");
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    })
}

/// Logs a storage failure (the cause stays in the log) and answers 503 so SDKs retry later.
fn storage_unavailable(what: &'static str, e: &StoreError) -> Refusal {
    tracing::error!(error = %e, "{what}");
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable".into(),
    )
}

/// What a user said about an error, from a `user_report` item (`{event_id, name, email,
/// comments}`) or a current SDK's feedback event (`contexts.feedback`: `message`,
/// `contact_email`, `name`, `associated_event_id`), as `{event_id, name, email, comments}`
/// with each field capped. `None` when there is no comment.
fn user_report(kind: &str, v: &Value) -> Option<Value> {
    let (event_id, name, email, comments) = if kind == "feedback" {
        let f = v.pointer("/contexts/feedback")?;
        (
            f.get("associated_event_id"),
            f.get("name"),
            f.get("contact_email"),
            f.get("message"),
        )
    } else {
        (
            v.get("event_id"),
            v.get("name"),
            v.get("email"),
            v.get("comments"),
        )
    };
    let text = |x: Option<&Value>, cap: usize| {
        x.and_then(Value::as_str)
            .map(|s| s.chars().take(cap).collect::<String>())
            .filter(|s| !s.trim().is_empty())
    };
    let comments = text(comments, 4096)?;
    let event_id = event_id
        .and_then(Value::as_str)
        .and_then(event::normalize_id);
    Some(serde_json::json!({
        "event_id": event_id,
        "name": text(name, 200),
        "email": text(email, 200),
        "comments": comments,
    }))
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
