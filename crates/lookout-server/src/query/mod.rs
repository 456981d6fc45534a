//! Query: the NRQL engine over everything Lookout stores, the query console, and dashboards
//! (specs, packs, config-file dashboards).

pub mod api;
pub mod dashboards;
pub mod nrql;
pub mod ui;
pub mod words;
use axum::routing::{get, post};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// NRQL and dashboards in the API.
pub fn api() -> OpenApiRouter<AppState> {
    use api::{dashboards, nrql};
    OpenApiRouter::new()
        .routes(routes!(nrql::query))
        .routes(routes!(dashboards::list, dashboards::create))
        .routes(routes!(
            dashboards::get_one,
            dashboards::update,
            dashboards::delete
        ))
        .routes(routes!(dashboards::install_pack))
}

/// The query console and dashboard pages.
pub fn pages() -> Router<AppState> {
    use ui::{console, dashboards};
    Router::new()
        .route("/query", get(console::console))
        .route(
            "/dashboards",
            get(dashboards::list).post(dashboards::import),
        )
        .route("/dashboards/pack", post(dashboards::install_pack))
        .route("/dashboards/{slug}", get(dashboards::show))
        .route(
            "/dashboards/{slug}/edit",
            get(dashboards::edit).post(dashboards::save),
        )
        .route("/dashboards/{slug}/export.yaml", get(dashboards::export))
}
