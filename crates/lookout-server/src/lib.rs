//! Lookout's HTTP server: the JSON API, authentication, the web UI shell, self-observability,
//! and the runtime that wires storage, the write queue and background jobs together.
//!
//! [`app`] builds the router without a socket, so handlers are tested with `oneshot`;
//! [`runtime::serve`] is what `lookout serve` runs.

// Shared plumbing.
pub mod api;
pub mod auth;
pub mod budget;
pub mod charts;
pub mod cluster;
pub mod error;
pub mod extract;
pub mod listener;
pub mod observe;
pub mod runtime;
pub mod service;
pub mod shared;
pub mod state;
pub mod tasks;
pub mod ui;

// One folder per capability.
pub mod alerting;
pub mod apm;
pub mod backups;
pub mod dbhealth;
pub mod errors;
pub mod load;
pub mod locations;
pub mod operations;
pub mod prometheus;
pub mod query;
pub mod regress;
pub mod reports;
pub mod statsd;
pub mod teams;
pub mod tenancy;
pub mod uptime;

use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

pub use state::{AppState, HttpSettings};

/// Largest request body the API and UI accept (ingest endpoints set their own limits).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The main listener's router: UI, API, health and metrics.
pub fn app(state: AppState) -> Router {
    let mut ui = ui::router();
    for (name, value) in ui::security_headers() {
        ui = ui.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    // Every change through the API or a form goes to the audit log (tenancy::audit).
    let audit =
        || axum::middleware::from_fn_with_state(state.clone(), tenancy::audit::record_writes);
    let ui = ui.layer(audit());
    Router::new()
        .merge(api::router().layer(audit()))
        .merge(errors::public())
        .merge(errors::sentry_cli())
        .merge(errors::sentry_issues().layer(audit()))
        .merge(apm::otlp::routes())
        .merge(prometheus::routes())
        .merge(alerting::public())
        .merge(uptime::public())
        .merge(ui)
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(observe::track_requests))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

/// Unknown paths: Sentry ingest behind a DSN path prefix; else the API's JSON error under
/// `/api/`, a page elsewhere.
async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri().clone();
    if let Some((endpoint, project)) = errors::ingest::match_prefixed(uri.path()) {
        let (parts, body) = req.into_parts();
        return errors::ingest::prefixed(
            &state,
            endpoint,
            &project,
            &parts.method,
            uri.query(),
            &parts.headers,
            body,
        )
        .await;
    }
    if uri.path().starts_with("/api/") {
        error::ApiError::NotFound("API route").into_response()
    } else {
        ui::not_found_page()
    }
}
