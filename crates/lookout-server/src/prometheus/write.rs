//! `POST /prometheus/api/v1/write`: Prometheus remote write 1.0 and 2.0 into the metric store.
//!
//! Order of checks, cheapest and least trusting first: credentials (before a byte of the body is
//! read), `Content-Type` (415), a slot among the requests in flight (503 with `Retry-After`
//! beyond [`MAX_IN_FLIGHT`], or [`MAX_IN_FLIGHT_PER_PROJECT`] for one project), the body's bytes
//! reserved from the ingest budget and read under [`MAX_WIRE_BODY`] (413) within
//! [`body_timeout`], the snappy header's decoded length against [`remote_write::MAX_DECODED`]
//! (413), the series and samples counted on the wire (413 beyond the caps) and their structs
//! reserved, then decoding with per-series label limits (400). The answer is 204 only once the
//! samples are committed; 400 refuses the whole batch (Prometheus drops it and goes on), 503
//! carries `Retry-After` (Prometheus retries with backoff; 429 is never answered, since
//! Prometheus 2.42 drops such batches by default).
//!
//! Remote write 2.0 answers carry `X-Prometheus-Remote-Write-Samples-Written`,
//! `-Histograms-Written` and `-Exemplars-Written`. Native histogram samples are stored as the
//! classic series they equal (`_bucket{le}`, `_count`, `_sum`; see
//! `lookout_protocol::native_histogram`) and counted as written. Exemplars are not stored: they
//! are counted as not written, which 2.0 senders report, while the samples of the same batch are
//! kept.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lookout_protocol::remote_write::{self, RemoteWriteError, Version};
use lookout_store::prom::{self, IngestError};

use super::{authenticate, PromError};
use crate::state::AppState;

/// Largest compressed body read (Prometheus sends ~2,000 samples per request, well under 1 MiB).
pub const MAX_WIRE_BODY: usize = 8 * 1024 * 1024;
/// Remote-write requests handled at once; more are answered 503 with `Retry-After`
/// (Prometheus before 2.45 drops a batch answered 429 unless `retry_on_http_429` is set, but
/// always retries 5xx).
pub const MAX_IN_FLIGHT: usize = 32;
/// Of [`MAX_IN_FLIGHT`], most one project may hold, so one busy project cannot starve the others.
pub const MAX_IN_FLIGHT_PER_PROJECT: usize = 8;
/// How far ahead of the server's clock a sample may be, ms (Prometheus's TSDB allows none past
/// its head; 10 minutes leaves room for clock skew).
pub const FUTURE_MS: i64 = 10 * 60_000;

/// Most series a project may have: `LOOKOUT_PROMETHEUS_MAX_SERIES`, else 1,000,000.
pub fn max_series() -> i64 {
    std::env::var("LOOKOUT_PROMETHEUS_MAX_SERIES")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1_000_000)
}

/// Longest a body may take to arrive: `LOOKOUT_PROMETHEUS_BODY_TIMEOUT_MS`, else 30 s
/// (Prometheus's own `remote_timeout` default), so a sender trickling bytes cannot hold a slot.
pub fn body_timeout() -> Duration {
    let ms = std::env::var("LOOKOUT_PROMETHEUS_BODY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms >= 100)
        .unwrap_or(30_000);
    Duration::from_millis(ms)
}

fn in_flight() -> &'static Mutex<HashMap<i64, usize>> {
    static S: OnceLock<Mutex<HashMap<i64, usize>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

/// One request's place among those in flight, given back when dropped.
struct Slot(i64);

impl Slot {
    /// A place for `project`, if both the total and the project's share have one.
    fn take(project: i64) -> Option<Slot> {
        let mut m = in_flight().lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = m.values().sum();
        let mine = m.get(&project).copied().unwrap_or(0);
        if total >= MAX_IN_FLIGHT || mine >= MAX_IN_FLIGHT_PER_PROJECT {
            return None;
        }
        m.insert(project, mine + 1);
        Some(Slot(project))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = in_flight().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.0);
            }
        }
    }
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
    let Some(_slot) = Slot::take(access.project) else {
        return Err(PromError::busy(
            "too many remote-write requests in flight; retry later",
        ));
    };
    // The body's bytes are reserved before it is read: its Content-Length (refused at once when
    // over the limit), else the whole limit.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_WIRE_BODY) {
        return Err(wire_too_large());
    }
    let budget = state.ingest_budget().clone();
    let mut held = budget.reservation();
    if !budget.reserve(&mut held, declared.unwrap_or(MAX_WIRE_BODY)) {
        return Err(PromError::busy(
            "ingest memory budget is spent; retry later",
        ));
    }
    // A sender trickling its body must not hold a slot for ever.
    let wait = body_timeout();
    let wire = match tokio::time::timeout(wait, axum::body::to_bytes(body, MAX_WIRE_BODY)).await {
        Err(_) => {
            tracing::info!(
                project = access.project,
                "Remote write: body read timed out."
            );
            return Err(PromError::busy(format!(
                "body not received within {} ms",
                wait.as_millis()
            )));
        }
        Ok(Err(_)) => return Err(wire_too_large()),
        Ok(Ok(w)) => w,
    };
    // The decoded size the snappy header claims, reserved before decompressing (a bomb claims
    // far more than it sends, and is refused here without allocating).
    let claimed =
        remote_write::decoded_len(&wire).map_err(|e| PromError::bad_data(e.to_string()))?;
    if claimed > remote_write::MAX_DECODED {
        return Err(too_large(RemoteWriteError::TooLarge(claimed)));
    }
    if !budget.reserve(&mut held, claimed) {
        return Err(PromError::busy(
            "ingest memory budget is spent; retry later",
        ));
    }
    // Decompression, the wire count, then decoding and canonicalisation are CPU work: off the
    // async workers. Each step reserves what it is about to allocate before allocating it: the
    // structs the counted messages become, the strings (1.0: at most the decoded bytes; 2.0:
    // what the symbol references copy, summed by the decoder first).
    let budget2 = budget.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let raw = remote_write::unsnappy(&wire)?;
        drop(wire);
        let counts = remote_write::prescan(&raw, version)?;
        let strings = match version {
            Version::V1 => raw.len(),
            Version::V2 => 0,
        };
        if !budget2.reserve(&mut held, counts.struct_bytes() + strings) {
            return Err(RemoteWriteError::OverBudget);
        }
        let batch =
            remote_write::decode_raw(&raw, version, &mut |n| budget2.reserve(&mut held, n))?;
        Ok((batch, held))
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "Remote write: the decoding task failed.");
        PromError::busy("decoding failed; retry later")
    })?;
    let (batch, _held) = decoded.map_err(|e| match e {
        RemoteWriteError::TooLarge(_) | RemoteWriteError::TooMany(_) => too_large(e),
        RemoteWriteError::OverBudget => PromError::busy(e.to_string()),
        RemoteWriteError::Malformed(m) => {
            tracing::info!(project = access.project, error = %m, "Remote write refused.");
            PromError::bad_data(m)
        }
    })?;
    // Out of bounds as Prometheus's TSDB has it: older than what is kept, or more than
    // 10 minutes ahead. Such samples are dropped and the rest stored, and the answer is then
    // 400 naming how many (as Mimir does; Prometheus as a receiver answers 400 too), so the
    // sender drops the batch rather than retrying samples that would never be accepted.
    let mut batch = batch;
    let now = lookout_core::time::now_ms();
    let (oldest, newest) = (now - super::retention_ms(), now + FUTURE_MS);
    // Counted as the sender counts them: float samples, and histogram samples by their
    // `_count` series (one sample each) rather than by the series they were expanded into.
    let first_derived = batch.series.len() - batch.derived;
    let (mut out_of_bounds, mut floats) = (0usize, 0usize);
    let mut histograms_out = 0usize;
    for (i, s) in batch.series.iter_mut().enumerate() {
        let before = s.samples.len();
        s.samples.retain(|(t, _)| (oldest..=newest).contains(t));
        let dropped = before - s.samples.len();
        if i < first_derived {
            out_of_bounds += dropped;
            floats += s.samples.len();
        } else if batch.native_counts.binary_search(&i).is_ok() {
            histograms_out += dropped;
        }
    }
    let histograms_written = batch.histograms - histograms_out;
    out_of_bounds += histograms_out;
    batch.series.retain(|s| !s.samples.is_empty());
    let written = prom::ingest_limited(
        state.store(),
        state.writes(),
        access.project,
        &batch,
        max_series(),
    )
    .await
    .map_err(|e| match e {
        IngestError::Collision(s) => {
            PromError::bad_data(format!("series {s} collides with a stored series"))
        }
        IngestError::SeriesLimit(n) => {
            tracing::warn!(
                project = access.project,
                limit = n,
                "Remote write: series limit."
            );
            metrics::counter!("lookout_prometheus_series_limit_refusals_total").increment(1);
            PromError::bad_data(format!(
                "per-project series limit of {n} reached (LOOKOUT_PROMETHEUS_MAX_SERIES)"
            ))
        }
        IngestError::Store(e) => e.into(),
    })?;
    if out_of_bounds > 0 {
        metrics::counter!("lookout_prometheus_samples_out_of_bounds_total")
            .increment(out_of_bounds as u64);
        tracing::info!(
            project = access.project,
            out_of_bounds,
            "Remote write: samples out of bounds dropped."
        );
        return Err(PromError::bad_data(format!(
            "{out_of_bounds} samples out of bounds (older than retention or more than 10 \
             minutes ahead) were dropped; {} were written",
            floats + histograms_written
        )));
    }
    metrics::counter!("lookout_prometheus_samples_written_total").increment(written.samples as u64);
    metrics::counter!("lookout_prometheus_native_histograms_written_total")
        .increment(histograms_written as u64);
    metrics::counter!("lookout_prometheus_series_created_total")
        .increment(written.new_series as u64);
    let mut res = StatusCode::NO_CONTENT.into_response();
    if version == Version::V2 {
        let h = res.headers_mut();
        h.insert(
            "x-prometheus-remote-write-samples-written",
            HeaderValue::from(floats),
        );
        h.insert(
            "x-prometheus-remote-write-histograms-written",
            HeaderValue::from(histograms_written),
        );
        h.insert(
            "x-prometheus-remote-write-exemplars-written",
            HeaderValue::from(0),
        );
    }
    Ok(res)
}

fn wire_too_large() -> PromError {
    PromError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        kind: "bad_data",
        message: format!("body over {MAX_WIRE_BODY} bytes; lower max_samples_per_send"),
        retry_after: None,
    }
}

fn too_large(e: RemoteWriteError) -> PromError {
    PromError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        kind: "bad_data",
        message: e.to_string(),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_project_cannot_take_every_slot() {
        // Project ids far from any other test's.
        let (a, b) = (-9_001, -9_002);
        let mine: Vec<Slot> = (0..MAX_IN_FLIGHT_PER_PROJECT)
            .map(|_| Slot::take(a).expect("a slot below the project's share"))
            .collect();
        assert!(Slot::take(a).is_none(), "a 9th request of one project");
        let other = Slot::take(b).expect("another project still gets a slot");
        drop(mine);
        assert!(Slot::take(a).is_some(), "slots come back when requests end");
        drop(other);
    }
}
