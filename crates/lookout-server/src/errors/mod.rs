//! Error tracking: Sentry-compatible ingest (envelopes, store, DSN prefixes), the issues API and
//! the issue pages. Grouping and storage live in `lookout_store::errors`.

pub mod api;
pub mod attachments;
pub mod feedback;
pub mod ingest;
pub mod mentions;
pub mod sentry_api;
pub mod sentry_issues;
pub mod sourcemaps;
pub mod triage;
pub mod triage_ui;
pub mod ui;
use axum::routing::{get, post};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The issues API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list))
        .routes(routes!(api::releases))
        .routes(routes!(api::client_reports))
        .routes(routes!(api::get_one, api::update))
        .routes(routes!(api::merge))
        .routes(routes!(api::unmerge))
        .routes(routes!(api::hashes))
        .routes(routes!(api::events))
        .routes(routes!(api::event))
        .routes(routes!(sourcemaps::list))
        .routes(routes!(sourcemaps::delete))
        .routes(routes!(sourcemaps::reprocess))
        .routes(routes!(attachments::list))
        .routes(routes!(attachments::download))
        .routes(routes!(feedback::for_issue))
        .routes(routes!(feedback::for_project))
        .routes(routes!(triage::put_assignee))
        .routes(routes!(triage::put_bulk_assignee))
        .routes(routes!(triage::activity))
        .routes(routes!(triage::post_comment))
        .routes(routes!(triage::get_ownership, triage::put_ownership))
}

/// The part of Sentry's web API its clients use to triage issues (assign, comment), token auth.
pub fn sentry_issues() -> Router<AppState> {
    sentry_issues::routes()
}

/// The part of Sentry's web API that `sentry-cli` uses to upload source maps (token auth).
pub fn sentry_cli() -> Router<AppState> {
    sentry_api::routes()
}

/// The issue pages.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/errors", get(ui::list))
        .route("/errors/issues/{id}", get(ui::issue))
        .route("/errors/issues/{id}/status", post(ui::set_status))
        .route(
            "/errors/issues/{id}/reprocess",
            post(sourcemaps::reprocess_form),
        )
        .route("/errors/source-maps", get(sourcemaps::page))
        .route("/errors/issues/{id}/assign", post(triage_ui::assign))
        .route("/errors/assign", post(triage_ui::bulk_assign))
        .route("/errors/issues/{id}/comments", post(triage_ui::comment))
        .route(
            "/errors/ownership",
            get(triage_ui::ownership).post(triage_ui::save_ownership),
        )
}

/// Sentry's ingest endpoints, authenticated by the DSN key rather than a session or token.
pub fn public() -> Router<AppState> {
    Router::new()
        .route(
            "/api/{project_id}/envelope/",
            post(ingest::envelope_endpoint).options(ingest::preflight),
        )
        .route(
            "/api/{project_id}/envelope",
            post(ingest::envelope_endpoint).options(ingest::preflight),
        )
        .route(
            "/api/{project_id}/store/",
            post(ingest::store_endpoint).options(ingest::preflight),
        )
        .route(
            "/api/{project_id}/store",
            post(ingest::store_endpoint).options(ingest::preflight),
        )
}

/// Retention of events and issues.
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    vec![crate::tasks::PeriodicJob::on_store(
        "errors.retention",
        600_000,
        &bg.store,
        |store| async move {
            let r = lookout_store::errors::enforce_retention(&store)
                .await
                .map_err(|e| e.to_string())?;
            let s = lookout_store::errors::sourcemaps::enforce_retention(&store)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(
                chunks = s.chunks,
                files = s.files,
                "Source map retention enforced."
            );
            tracing::info!(
                events = r.events,
                issues = r.issues,
                inbox_items = r.inbox_items,
                "Retention enforced."
            );
            Ok(())
        },
    )]
}

/// The processor that groups ingested events into issues.
pub fn workers(bg: &crate::tasks::Background) -> crate::tasks::Workers {
    vec![tokio::spawn(
        lookout_store::errors::process::ErrorProcessor::new(bg.store.clone(), &bg.replica)
            // Idle polling every 100 ms bounds how long a new event waits to be grouped.
            .run(std::time::Duration::from_millis(100), bg.stopping()),
    )]
}
