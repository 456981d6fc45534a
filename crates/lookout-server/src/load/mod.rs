//! Load testing: the runs `lookout load` uploads, their comparison, and their pages.
//! The load generator itself is the `lookout-load` crate.

pub mod api;
pub mod ui;
use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Load-test runs in the API. Run reports carry per-second series: a long run's summary passes
/// the API's 1 MiB limit, so these routes take up to [`api::MAX_REPORT`].
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::compare))
        .routes(routes!(api::get_one, api::delete))
        .layer(axum::extract::DefaultBodyLimit::max(api::MAX_REPORT))
}

/// The load-test pages.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/load-tests", get(ui::list))
        .route("/load-tests/compare", get(ui::compare))
        .route("/load-tests/{id}", get(ui::run))
}
