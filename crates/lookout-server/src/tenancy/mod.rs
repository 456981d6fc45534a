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
    use ui::{activity, overview, session, settings};
    Router::new()
        .route("/", get(overview::overview))
        .route("/activity", get(activity::activity))
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

/// The core's periodic upkeep: expired sessions and finished one-off jobs.
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    use crate::tasks::PeriodicJob;
    vec![
        PeriodicJob::on_store(
            "sessions.cleanup",
            3_600_000,
            &bg.store,
            |store| async move {
                let n = lookout_store::tenancy::delete_expired_sessions(&store)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::debug!(deleted = n, "Expired sessions deleted.");
                Ok(())
            },
        ),
        PeriodicJob::on_store("jobs.cleanup", 3_600_000, &bg.store, |store| async move {
            let week_ago = lookout_core::time::now_ms() - 7 * 86_400_000;
            let n = lookout_store::jobs::delete_finished_before(&store, week_ago)
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(deleted = n, "Finished jobs deleted.");
            Ok(())
        }),
    ]
}
