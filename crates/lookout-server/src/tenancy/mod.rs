//! The core every capability stands on: organizations and projects, users and sessions, API
//! tokens, settings, deploy markers and the activity feed, and the overview page; invitations,
//! password resets and one's own account (`links`, `api::account`, `ui::account`).

pub mod api;
pub mod audit;
pub mod code_guard;
pub mod links;
pub mod service;
pub mod sso;
pub mod totp;
pub mod ui;
use axum::routing::{get, post};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The core's API routes.
pub fn api() -> OpenApiRouter<AppState> {
    use api::{account, activity, invitations, projects, tokens, two_factor, users};
    OpenApiRouter::new()
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get_one, projects::update))
        .routes(routes!(activity::list_markers, activity::create_marker))
        .routes(routes!(activity::list_events))
        .routes(routes!(users::me, account::update))
        .routes(routes!(account::change_password))
        .routes(routes!(account::sessions))
        .routes(routes!(account::revoke_session))
        .routes(routes!(account::request_reset))
        .routes(routes!(audit::list))
        .routes(routes!(sso::settings::api_get))
        .routes(routes!(sso::settings::api_test))
        .routes(routes!(invitations::list))
        .routes(routes!(invitations::resend))
        .routes(routes!(invitations::revoke))
        .routes(routes!(invitations::get_mail, invitations::put_mail))
        .routes(routes!(two_factor::get_status, two_factor::begin))
        .routes(routes!(two_factor::confirm))
        .routes(routes!(two_factor::disable))
        .routes(routes!(two_factor::set_required))
        .routes(routes!(two_factor::clear))
        .routes(routes!(two_factor::get_security, two_factor::put_security))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get_one, users::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::delete))
}

/// The core's pages: overview, login, setup, project switcher and settings.
pub fn pages() -> Router<AppState> {
    use ui::{account, activity, invite, overview, session, settings, two_factor};
    Router::new()
        .route("/", get(overview::overview))
        .route("/activity", get(activity::activity))
        .route("/login", get(session::login_form).post(session::login))
        .route("/setup", get(session::setup_form).post(session::setup))
        .route("/logout", post(session::logout))
        .route("/auth/oidc/login", get(sso::flow::login))
        .route("/auth/oidc/callback", get(sso::flow::callback))
        .route("/settings/sso", get(sso::settings::show))
        .route("/settings/sso/test", post(sso::settings::test))
        .route("/switch-project", get(session::switch_project))
        .route("/settings", get(settings::settings))
        .route(
            "/settings/projects",
            post(settings::settings_create_project),
        )
        .route(
            "/settings/projects/{id}/team",
            post(settings::settings_project_team),
        )
        .route("/settings/tokens", post(settings::settings_create_token))
        .route(
            "/settings/tokens/{id}/revoke",
            post(settings::settings_revoke_token),
        )
        .route("/settings/users", post(settings::settings_create_user))
        .route(
            "/settings/invitations/{id}/resend",
            post(settings::settings_resend_invitation),
        )
        .route(
            "/settings/invitations/{id}/revoke",
            post(settings::settings_revoke_invitation),
        )
        .route("/settings/mail", post(settings::settings_mail))
        .route(
            "/invite/{token}",
            get(invite::invite_form).post(invite::accept),
        )
        .route(
            "/reset",
            get(invite::reset_request_form).post(invite::reset_request),
        )
        .route(
            "/reset/{token}",
            get(invite::reset_form).post(invite::reset),
        )
        .route("/login/code", post(two_factor::login_code))
        .route("/login/enrol", post(two_factor::login_enrol))
        .route("/account/2fa", post(two_factor::account_begin))
        .route("/account/2fa/confirm", post(two_factor::account_confirm))
        .route("/account/2fa/disable", post(two_factor::account_disable))
        .route("/settings/security", post(settings::settings_security))
        .route(
            "/settings/users/{id}/totp-required",
            post(settings::settings_user_totp),
        )
        .route("/settings/audit", get(crate::tenancy::audit::page))
        .route("/account", get(account::account))
        .route("/account/profile", post(account::save_profile))
        .route("/account/notification-rules", post(account::save_rules))
        .route("/account/password", post(account::save_password))
        .route("/account/sessions/revoke", post(account::revoke_session))
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
        // A year of audit log is kept: long enough for a yearly access review.
        PeriodicJob::on_store("audit.cleanup", 3_600_000, &bg.store, |store| async move {
            let year_ago = lookout_core::time::now_ms() - 365 * 86_400_000;
            let n = lookout_store::audit::delete_before(&store, year_ago)
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(deleted = n, "Old audit entries deleted.");
            Ok(())
        }),
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
