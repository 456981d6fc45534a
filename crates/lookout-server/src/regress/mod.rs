//! Regression detection: benchmark series, their points and the change points found in them.
//! The detector is the `lookout-regress` crate.

pub mod api;
pub mod ui;
use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Series and change points in the API; pushes carry whole benchmark runs, so these routes take
/// the same large bodies as load-test reports.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list))
        .routes(routes!(api::get_one))
        .routes(routes!(api::points, api::push))
        .routes(routes!(api::change_points))
        .routes(routes!(api::recent))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::load::api::MAX_REPORT,
        ))
}

/// The regression pages.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/regressions", get(ui::list))
        .route("/regressions/series/{id}", get(ui::series_page))
}
