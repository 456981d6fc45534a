//! Lookout's HTTP server: the JSON API, authentication, the web UI shell, self-observability,
//! and the runtime that wires storage, the write queue and background jobs together.
//!
//! [`app`] builds the router without a socket, so handlers are tested with `oneshot`;
//! [`runtime::serve`] is what `lookout serve` runs.

pub mod alerting;
pub mod api;
pub mod apm;
pub mod auth;
pub mod backups;
pub mod dashboards;
pub mod dbhealth;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod listener;
pub mod nrql;
pub mod observe;
pub mod otlp;
pub mod reports;
pub mod runtime;
pub mod state;
pub mod trace_view;
pub mod ui;
pub mod uptime;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
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
    let sentry = Router::new()
        .route(
            "/api/{project_id}/envelope/",
            post(ingest::sentry::envelope_endpoint).options(ingest::sentry::preflight),
        )
        .route(
            "/api/{project_id}/envelope",
            post(ingest::sentry::envelope_endpoint).options(ingest::sentry::preflight),
        )
        .route(
            "/api/{project_id}/store/",
            post(ingest::sentry::store_endpoint).options(ingest::sentry::preflight),
        )
        .route(
            "/api/{project_id}/store",
            post(ingest::sentry::store_endpoint).options(ingest::sentry::preflight),
        )
        .route(
            "/api/{project_id}/cron/{slug}/{key}/",
            get(uptime::checkins::http_checkin).post(uptime::checkins::http_checkin),
        )
        .route(
            "/api/{project_id}/cron/{slug}/{key}",
            get(uptime::checkins::http_checkin).post(uptime::checkins::http_checkin),
        )
        .route(
            "/api/v1/push/{token}",
            get(uptime::checkins::push).post(uptime::checkins::push),
        );
    // Inbound alert integrations carry their own key; PagerDuty's path is fixed by its clients.
    let inbound = Router::new()
        .route("/v2/enqueue", post(alerting::inbound::pagerduty))
        .route(
            "/integrations/{key}/{kind}",
            post(alerting::inbound::webhook),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            alerting::inbound::MAX_BODY + 1,
        ));
    // Public status pages are HTML served to anyone: the same CSP and framing rules as the UI.
    let mut public = Router::new()
        .route("/status/{slug}", get(ui::status_page::page))
        .route("/status/{slug}/feed.atom", get(ui::status_page::feed));
    for (name, value) in ui::status_page_headers() {
        public = public.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    Router::new()
        .merge(api::router())
        .merge(sentry)
        .merge(crate::otlp::routes())
        .merge(inbound)
        .merge(public)
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
    if let Some((endpoint, project)) = ingest::sentry::match_prefixed(uri.path()) {
        let (parts, body) = req.into_parts();
        return ingest::sentry::prefixed(
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
