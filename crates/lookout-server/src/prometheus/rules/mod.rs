//! Prometheus recording and alerting rules (docs/rules.md): rule files per project, from the
//! API (`/api/v1/prometheus/rules`, [`api`]), the Rules page ([`ui`]) and the config file's
//! `rule_files:` ([`config`]); checked as `promtool check rules` checks them ([`parse`]);
//! evaluated on a leased schedule ([`runner`]) by the state machine in [`eval`]; listed by the
//! Prometheus-compatible `GET /prometheus/api/v1/rules` and `/alerts` ([`read`]).
//!
//! [`service`] is the one place files are validated and stored: the API, the page and the
//! config reconciler all call it.

pub mod api;
pub mod config;
pub mod eval;
pub mod parse;
pub mod read;
pub mod runner;
pub mod service;
pub mod template;
pub mod ui;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The Prometheus-compatible read endpoints, under `/prometheus`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/prometheus/api/v1/rules", get(read::rules))
        .route("/prometheus/api/v1/alerts", get(read::alerts))
}

/// Largest Rules page form: the file, URL-encoded (up to three bytes per byte), and its name.
const MAX_FORM_BYTES: usize = parse::MAX_FILE_BYTES * 3 + 4096;

/// `/api/v1/prometheus/rules`. A body over [`parse::MAX_FILE_BYTES`] is refused with 413
/// before it is read whole.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::put, api::delete))
        .layer(axum::extract::DefaultBodyLimit::max(parse::MAX_FILE_BYTES))
}

/// The Rules page (its form refused with 413 past [`MAX_FORM_BYTES`]).
pub fn pages() -> Router<AppState> {
    Router::new()
        .route(
            "/explore/metrics/rules",
            get(ui::page)
                .post(ui::save)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        .route(
            "/explore/metrics/rules/delete",
            axum::routing::post(ui::delete),
        )
}

/// The evaluator: rule shards placed on the live replicas.
pub fn workers(bg: &crate::tasks::Background) -> crate::tasks::Workers {
    let ctx = Arc::new(runner::RulesContext {
        store: bg.store.clone(),
        alerting: bg.alerting.clone(),
        cluster: bg.cluster.clone(),
        external_url: bg.public_url.clone(),
    });
    vec![runner::placement(ctx, bg.stop.clone())]
}
