//! Error tracking: Sentry-compatible ingest (envelopes, store, DSN prefixes), the issues API and
//! the issue pages. Grouping and storage live in `lookout_store::errors`.

pub mod api;
pub mod ingest;
pub mod ui;
use axum::routing::{get, post};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The issues API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list))
        .routes(routes!(api::releases))
        .routes(routes!(api::client_reports))
        .routes(routes!(api::get_one, api::update))
        .routes(routes!(api::merge))
        .routes(routes!(api::unmerge))
        .routes(routes!(api::hashes))
        .routes(routes!(api::events))
        .routes(routes!(api::event))
}

/// The issue pages.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/errors", get(ui::list))
        .route("/errors/issues/{id}", get(ui::issue))
        .route("/errors/issues/{id}/status", post(ui::set_status))
}

/// Sentry's ingest endpoints, authenticated by the DSN key rather than a session or token.
pub fn public() -> Router<AppState> {
    Router::new()
        .route(
            "/api/{project_id}/envelope/",
            post(ingest::envelope_endpoint).options(ingest::preflight),
        )
        .route(
            "/api/{project_id}/envelope",
            post(ingest::envelope_endpoint).options(ingest::preflight),
        )
        .route(
            "/api/{project_id}/store/",
            post(ingest::store_endpoint).options(ingest::preflight),
        )
        .route(
            "/api/{project_id}/store",
            post(ingest::store_endpoint).options(ingest::preflight),
        )
}
