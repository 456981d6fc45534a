//! Teams: users grouped under a `#slug`, owning issues and paged through a linked escalation
//! policy; "my teams", "my shifts" and the per-user on-call calendar feed.

pub mod api;
pub mod owned_ui;
pub mod ownership;
pub mod service;
pub mod ui;

use axum::routing::{get, post};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The teams API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get_one, api::update, api::delete))
        .routes(routes!(api::add_member, api::remove_member))
        .routes(routes!(api::my_teams))
        .routes(routes!(api::my_shifts))
        .routes(routes!(api::create_feed, api::revoke_feed))
        .routes(routes!(api::feed))
}

/// The teams pages (under Settings) and the account's calendar feed forms.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/settings/teams", get(ui::page).post(ui::create))
        .route("/settings/teams/{id}/members", post(ui::add_member))
        .route(
            "/settings/teams/{id}/members/{user_id}/remove",
            post(ui::remove_member),
        )
        .route("/settings/teams/{id}/escalation", post(ui::set_escalation))
        .route("/settings/teams/{id}/delete", post(ui::delete))
        .route("/account/calendar-feed", post(ui::account_feed))
        .route(
            "/account/calendar-feed/revoke",
            post(ui::account_feed_revoke),
        )
}
