//! `POST /prometheus/api/v1/write`: Prometheus remote write 1.0 and 2.0 into the metric store.
//!
//! Order of checks, cheapest and least trusting first: credentials (before a byte of the body is
//! read), `Content-Type` (415), a slot among the requests in flight (429 with `Retry-After`
//! beyond [`MAX_IN_FLIGHT`]), the body read under [`MAX_WIRE_BODY`] (413), the snappy header's
//! decoded length against the ingest memory budget and [`remote_write::MAX_DECODED`] (413 or
//! 503), then decoding with per-series label limits (400). The answer is 204 only once the
//! samples are committed; 400 refuses the whole batch (Prometheus drops it and goes on), 429
//! and 503 carry `Retry-After` (Prometheus retries with backoff).
//!
//! Remote write 2.0 answers carry `X-Prometheus-Remote-Write-Samples-Written`,
//! `-Histograms-Written` and `-Exemplars-Written`. Native histograms and exemplars are not
//! stored yet: they are counted as not written, which 2.0 senders report, while the float
//! samples of the same batch are kept.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lookout_protocol::remote_write::{self, RemoteWriteError, Version};
use lookout_store::prom::{self, IngestError};
use tokio::sync::Semaphore;

use super::{authenticate, PromError};
use crate::state::AppState;

/// Largest compressed body read (Prometheus sends ~2,000 samples per request, well under 1 MiB).
pub const MAX_WIRE_BODY: usize = 8 * 1024 * 1024;
/// Remote-write requests decoded at once; more are answered 429 (their senders back off).
pub const MAX_IN_FLIGHT: usize = 32;

fn in_flight() -> &'static Semaphore {
    static S: OnceLock<Semaphore> = OnceLock::new();
    S.get_or_init(|| Semaphore::new(MAX_IN_FLIGHT))
}

/// Receives one remote-write request.
pub async fn remote_write(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&state, query.as_deref(), &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, PromError> {
    let access = authenticate(state, headers, query, true).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf");
    let Some(version) = Version::from_content_type(content_type) else {
        return Err(PromError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind: "bad_data",
            message: format!(
                "Content-Type {content_type:?}: send application/x-protobuf \
                 (proto=prometheus.WriteRequest or io.prometheus.write.v2.Request)"
            ),
            retry_after: None,
        });
    };
    if let Some(enc) = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        if !enc.eq_ignore_ascii_case("snappy") {
            return Err(PromError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                kind: "bad_data",
                message: format!("Content-Encoding {enc:?}: remote write bodies are snappy"),
                retry_after: None,
            });
        }
    }
    let Ok(_slot) = in_flight().try_acquire() else {
        return Err(PromError::throttled(
            "too many remote-write requests in flight; retry later",
        ));
    };
    let budget = state.ingest_budget().clone();
    let mut held = budget.reservation();
    let wire = axum::body::to_bytes(body, MAX_WIRE_BODY)
        .await
        .map_err(|_| PromError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "bad_data",
            message: format!("body over {MAX_WIRE_BODY} bytes; lower max_samples_per_send"),
            retry_after: None,
        })?;
    // The decoded size the snappy header claims, reserved before decompressing (a bomb claims
    // far more than it sends, and is refused here without allocating).
    let claimed =
        remote_write::decoded_len(&wire).map_err(|e| PromError::bad_data(e.to_string()))?;
    if claimed > remote_write::MAX_DECODED {
        return Err(too_large(RemoteWriteError::TooLarge(claimed)));
    }
    // The decoded bytes, then prost's strings and vectors made from them (a few times as many
    // bytes for messages of short labels, measured roughly): reserved, never waited for.
    if !budget.reserve(&mut held, wire.len() + 4 * claimed) {
        return Err(PromError::busy(
            "ingest memory budget is spent; retry later",
        ));
    }
    let batch = remote_write::decode(&wire, version).map_err(|e| match e {
        RemoteWriteError::TooLarge(_) => too_large(e),
        RemoteWriteError::Malformed(m) => PromError::bad_data(m),
    })?;
    drop(wire);
    let written = prom::ingest(state.store(), state.writes(), access.project, &batch)
        .await
        .map_err(|e| match e {
            IngestError::Collision(s) => {
                PromError::bad_data(format!("series {s} collides with a stored series"))
            }
            IngestError::Store(e) => e.into(),
        })?;
    metrics::counter!("lookout_prometheus_samples_written_total").increment(written.samples as u64);
    metrics::counter!("lookout_prometheus_series_created_total")
        .increment(written.new_series as u64);
    let mut res = StatusCode::NO_CONTENT.into_response();
    if version == Version::V2 {
        let h = res.headers_mut();
        h.insert(
            "x-prometheus-remote-write-samples-written",
            HeaderValue::from(written.samples),
        );
        h.insert(
            "x-prometheus-remote-write-histograms-written",
            HeaderValue::from(0),
        );
        h.insert(
            "x-prometheus-remote-write-exemplars-written",
            HeaderValue::from(0),
        );
        if batch.histograms > 0 {
            tracing::info!(
                histograms = batch.histograms,
                "Native histogram samples are not stored yet; counted as not written."
            );
        }
    }
    Ok(res)
}

fn too_large(e: RemoteWriteError) -> PromError {
    PromError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        kind: "bad_data",
        message: e.to_string(),
        retry_after: None,
    }
}
