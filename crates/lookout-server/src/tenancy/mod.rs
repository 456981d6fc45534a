//! The core every capability stands on: organizations and projects, users and sessions, API
//! tokens, settings, deploy markers and the activity feed, and the overview page.

pub mod api;
pub mod service;
pub mod ui;
use axum::routing::{get, post};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The core's API routes.
pub fn api() -> OpenApiRouter<AppState> {
    use api::{activity, projects, tokens, users};
    OpenApiRouter::new()
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get_one, projects::update))
        .routes(routes!(activity::list_markers, activity::create_marker))
        .routes(routes!(activity::list_events))
        .routes(routes!(users::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get_one, users::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::delete))
}

/// The core's pages: overview, login, setup, project switcher and settings.
pub fn pages() -> Router<AppState> {
    use ui::{overview, session, settings};
    Router::new()
        .route("/", get(overview::overview))
        .route("/login", get(session::login_form).post(session::login))
        .route("/setup", get(session::setup_form).post(session::setup))
        .route("/logout", post(session::logout))
        .route("/switch-project", get(session::switch_project))
        .route("/settings", get(settings::settings))
        .route(
            "/settings/projects",
            post(settings::settings_create_project),
        )
        .route("/settings/tokens", post(settings::settings_create_token))
        .route(
            "/settings/tokens/{id}/revoke",
            post(settings::settings_revoke_token),
        )
        .route("/settings/users", post(settings::settings_create_user))
}
