//! OTLP/HTTP ingest: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`, protobuf or JSON, optionally
//! gzipped, on the OTLP listener (default `127.0.0.1:4318`) and on the main listener.
//!
//! Answers follow the OTLP specification so exporters retry exactly when they should: 200 (with
//! `partial_success` when some items were refused), 400 for malformed data, 401 for a bad token,
//! 413 over the size cap, 415 for an unknown content type, 503 with `Retry-After` when the
//! bounded write queue is full. Spans and logs are acknowledged only once committed.
//!
//! Which project data lands in: `Authorization: Bearer <key>` names it by one of its DSN public
//! keys. Without a token, data sent to the OTLP listener goes to the first project — that
//! listener binds to loopback by default, for agents on the same host — while the main listener,
//! usually public, always requires a token.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lookout_apm::decode::{self, DecodeError, Encoding, Signal};
use lookout_core::time::now_ms;
use lookout_store::StoreError;

use crate::observe;
use crate::state::AppState;

/// Largest compressed body read; the decompressed size is capped separately.
const MAX_WIRE_BODY: usize = decode::MAX_BODY;

/// The OTLP listener's router: tokens optional.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/traces",
            post(|s, h, b| export(s, h, b, Signal::Traces, false)),
        )
        .route(
            "/v1/metrics",
            post(|s, h, b| export(s, h, b, Signal::Metrics, false)),
        )
        .route(
            "/v1/logs",
            post(|s, h, b| export(s, h, b, Signal::Logs, false)),
        )
        .route("/healthz", get(observe::healthz))
        .layer(DefaultBodyLimit::max(MAX_WIRE_BODY))
        .layer(axum::middleware::from_fn(observe::track_requests))
        .with_state(state)
}

/// The same paths on the main listener, where a token is required.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/traces",
            post(|s, h, b| export(s, h, b, Signal::Traces, true)),
        )
        .route(
            "/v1/metrics",
            post(|s, h, b| export(s, h, b, Signal::Metrics, true)),
        )
        .route(
            "/v1/logs",
            post(|s, h, b| export(s, h, b, Signal::Logs, true)),
        )
        .layer(DefaultBodyLimit::max(MAX_WIRE_BODY))
}

/// A refusal: status, gRPC code, message, and a Retry-After for throttling.
pub(super) struct Refusal {
    status: StatusCode,
    code: i32,
    message: String,
    retry_after: Option<u32>,
}

impl Refusal {
    fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn busy() -> Self {
        Refusal {
            retry_after: Some(1),
            ..Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                14,
                "server is busy; retry later",
            )
        }
    }
}

pub(super) fn from_store(e: StoreError) -> Refusal {
    match e {
        StoreError::Overloaded | StoreError::ShuttingDown => Refusal::busy(),
        other => {
            tracing::error!(error = %other, "OTLP write failed.");
            Refusal {
                retry_after: Some(5),
                ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, 14, "storage unavailable")
            }
        }
    }
}

fn from_decode(e: DecodeError) -> Refusal {
    let status = match e {
        DecodeError::Busy => return Refusal::busy(),
        DecodeError::TooLarge | DecodeError::TooMuchToTranslate(_) => StatusCode::PAYLOAD_TOO_LARGE,
        DecodeError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        DecodeError::Malformed { .. } => StatusCode::BAD_REQUEST,
    };
    Refusal::new(status, 3, e.to_string())
}

fn respond(
    encoding: Encoding,
    status: StatusCode,
    body: Vec<u8>,
    retry_after: Option<u32>,
) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    if let Some(s) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    res
}

async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
    signal: Signal,
    token_required: bool,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        tracing::info!(
            content_type,
            "OTLP export refused: unsupported content type."
        );
        return respond(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            decode::status_body(
                Encoding::Json,
                3,
                "use Content-Type application/x-protobuf or application/json",
            ),
            None,
        );
    };
    match handle(&state, &headers, body, encoding, signal, token_required).await {
        Ok((rejected, message)) => respond(
            encoding,
            StatusCode::OK,
            decode::success_body(encoding, signal, rejected, &message),
            None,
        ),
        Err(r) => {
            tracing::info!(status = r.status.as_u16(), signal = ?signal, reason = %r.message, "OTLP export refused.");
            respond(
                encoding,
                r.status,
                decode::status_body(encoding, r.code, &r.message),
                r.retry_after,
            )
        }
    }
}

/// Decodes and stores one export; the number of items refused and why.
///
/// The token is checked before the body is read. The body, and what it inflates to, are reserved
/// from the ingest memory budget Sentry ingest and remote write share (`limits.max_inflight_bytes`)
/// before they are allocated, and held until the write is acknowledged; a spent budget answers 503
/// with `Retry-After`. Decoding runs on the blocking pool, at most [`DECODES`] at once, because a
/// protobuf message decodes into structs many times its wire size.
async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
    signal: Signal,
    token_required: bool,
) -> Result<(i64, String), Refusal> {
    let project = project(state, headers, token_required).await?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_WIRE_BODY) {
        return Err(from_decode(DecodeError::TooLarge));
    }
    let budget = state.ingest_budget().clone();
    let mut held = budget.reservation();
    let reserved = declared.unwrap_or(MAX_WIRE_BODY);
    if !budget.reserve(&mut held, reserved) {
        return Err(Refusal::busy());
    }
    // Past the cap, or a body that broke off: either way nothing usable arrived (a client that
    // hung up does not read the answer).
    let wire = axum::body::to_bytes(body, MAX_WIRE_BODY)
        .await
        .map_err(|_| from_decode(DecodeError::TooLarge))?;
    budget.release(&mut held, reserved.saturating_sub(wire.len()));
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _turn = DECODES.acquire().await.map_err(|_| Refusal::busy())?;
    let grant_budget = budget.clone();
    let (decoded, held) = tokio::task::spawn_blocking(move || {
        let mut held = held;
        let decoded = decode::decompress_within(&wire, content_encoding.as_deref(), &mut |n| {
            grant_budget.reserve(&mut held, n)
        })
        .and_then(|raw| Decoded::from(&raw, encoding, signal));
        (decoded, held)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "OTLP decoding stopped.");
        Refusal::busy()
    })?;
    let decoded = decoded.map_err(from_decode)?;
    // What was reserved stays held until the write below is acknowledged.
    let _held = held;
    match decoded {
        Decoded::Traces(spans) => {
            metrics::counter!("lookout_otlp_spans_total").increment(spans.spans.len() as u64);
            if !spans.spans.is_empty() {
                state
                    .writes()
                    .write(lookout_store::apm::span_writes(
                        project,
                        spans.spans,
                        &spans.resources,
                    ))
                    .await
                    .map_err(from_store)?;
            }
            Ok((spans.rejected, spans.rejection.unwrap_or_default()))
        }
        Decoded::Logs(records) => {
            metrics::counter!("lookout_otlp_log_records_total").increment(records.len() as u64);
            if !records.is_empty() {
                state
                    .writes()
                    .write(lookout_store::apm::log_writes(project, records))
                    .await
                    .map_err(from_store)?;
            }
            Ok((0, String::new()))
        }
        Decoded::Metrics(points, rejected, translated) => {
            metrics::counter!("lookout_otlp_metric_points_total").increment(points.len() as u64);
            let mut message = if rejected > 0 {
                "points without a finite value or with mismatched buckets were refused".to_string()
            } else {
                String::new()
            };
            // The Prometheus store first: it is idempotent (a timestamp keeps its first value),
            // so when it fails (503) or the APM write after it fails, the exporter's retry
            // writes nothing twice. The other way round, a Prometheus failure after the APM
            // tables committed would make the retry count delta points twice there.
            if let Err(refused) = super::prom::ingest(state, project, translated).await? {
                message = refused;
            }
            if !points.is_empty() {
                lookout_store::apm::metrics::ingest(state.store(), project, &points)
                    .await
                    .map_err(from_store)?;
            }
            Ok((rejected, message))
        }
    }
}

/// Decodes at once: two, one per core of the machines Lookout targets; more would only hold more
/// decoded exports in memory at the same time.
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// One export, decoded and turned into what storage takes.
enum Decoded {
    Traces(lookout_apm::span::Spans),
    Logs(Vec<lookout_apm::log::LogRecord>),
    Metrics(
        Vec<lookout_apm::metric::Point>,
        i64,
        lookout_apm::prom::Translated,
    ),
}

impl Decoded {
    fn from(raw: &[u8], encoding: Encoding, signal: Signal) -> Result<Decoded, DecodeError> {
        Ok(match signal {
            Signal::Traces => Decoded::Traces(lookout_apm::span::from_request(&decode::traces(
                raw, encoding,
            )?)),
            Signal::Logs => Decoded::Logs(lookout_apm::log::from_request(&decode::logs(
                raw, encoding,
            )?)),
            Signal::Metrics => {
                let req = decode::metrics(raw, encoding)?;
                let (points, rejected) = lookout_apm::metric::from_request(&req);
                let translated = lookout_apm::prom::translate(&req)
                    .map_err(|e| DecodeError::TooMuchToTranslate(e.to_string()))?;
                Decoded::Metrics(points, rejected, translated)
            }
        })
    }
}

/// The project an export belongs to (see the module documentation).
async fn project(
    state: &AppState,
    headers: &HeaderMap,
    token_required: bool,
) -> Result<i64, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match token {
        Some(key) => match state.ingest_keys().lookup(state, key, now_ms()).await {
            Ok(Some((pid, _))) => Ok(pid),
            Ok(None) => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                16,
                "unknown ingest token",
            )),
            Err(e) => Err(from_store(e)),
        },
        None if token_required => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            16,
            "send Authorization: Bearer <a project's DSN public key>",
        )),
        None => {
            // Remembered for a few seconds: under ingest this query ran once per export, and
            // waited for a pooled connection behind the writers.
            static FIRST: std::sync::Mutex<(i64, i64)> = std::sync::Mutex::new((0, 0));
            let now = now_ms();
            if let Ok(f) = FIRST.lock() {
                if f.1 > 0 && now - f.0 < 10_000 {
                    return Ok(f.1);
                }
            }
            let first = lookout_store::apm::tokenless_project(state.store())
                .await
                .map_err(from_store)?;
            let first = first.ok_or_else(|| {
                Refusal::new(StatusCode::UNAUTHORIZED, 16, "no project exists yet")
            })?;
            if let Ok(mut f) = FIRST.lock() {
                *f = (now, first);
            }
            Ok(first)
        }
    }
}
