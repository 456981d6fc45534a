//! Locations: remote vantage points for uptime checks. Admins create them (each with an agent
//! token, shown once), `lookout probe` agents of a location connect out with its token to fetch
//! the monitors assigned to them and post results ([`agent`]), and monitors name the locations
//! they are checked from (`locations` in their spec). Admins manage them on the Locations page
//! ([`ui`]).

pub mod agent;
pub mod api;
pub mod service;
pub mod ui;

use axum::routing::{get, post};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Locations (admin) and the agent protocol in the API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get_one, api::update, api::delete))
        .routes(routes!(api::rotate, api::revoke))
        .routes(routes!(agent::assignments))
        .routes(routes!(agent::results))
}

/// The Locations page (under Uptime in the navigation).
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/uptime/locations", get(ui::list).post(ui::create))
        .route("/uptime/locations/{id}", post(ui::action))
}
