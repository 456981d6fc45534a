//! The OTLP/HTTP listener (default `127.0.0.1:4318`, the OpenTelemetry default port).
//!
//! The foundation owns the listener so its address is configured, bound and shown from the first
//! release; the OTLP decoders and the trace, metric and log stores arrive with APM. Until then the
//! three OTLP paths answer 501 with a JSON body that says so, rather than accepting data that
//! would be dropped: an exporter pointed here sees a clear error, not silent loss.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::observe;
use crate::state::AppState;

/// The OTLP listener's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/traces", post(not_yet))
        .route("/v1/metrics", post(not_yet))
        .route("/v1/logs", post(not_yet))
        .route("/healthz", get(observe::healthz))
        .layer(axum::middleware::from_fn(observe::track_requests))
        .with_state(state)
}

async fn not_yet() -> Response {
    tracing::info!("OTLP export refused: OTLP ingest is not in this build.");
    (
        StatusCode::NOT_IMPLEMENTED,
        Json(json!({ "error": { "code": "not_implemented", "message": "OTLP ingest is not available in this build of Lookout" } })),
    )
        .into_response()
}
