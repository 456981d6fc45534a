//! The JSON API under `/api/v1/`, and its OpenAPI document generated from the same handlers.
//!
//! Every route is registered through `utoipa_axum::routes!`, which reads the handler's
//! `#[utoipa::path]`: a route cannot exist without its documentation, so the document at
//! `/api/v1/openapi.json` always matches what the server serves.

mod activity;
pub mod alert_config;
pub mod apm;
pub mod backups;
pub mod dashboards;
pub mod databases;
pub mod incidents;
mod issues;
pub mod load;
pub mod monitors;
pub mod oncall;
mod projects;
pub mod query;
pub mod reports;
pub mod schemas;
pub mod schemas_ops;
mod series;
pub mod status_pages;
mod tokens;
mod users;

pub use activity::MarkerView;
pub use issues::IssueView;
pub use projects::ProjectView;
pub use tokens::TokenView;
pub use users::{validate_new_user, UserView};

use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorBody;
use crate::state::AppState;
use lookout_store::Cursor;

/// Query parameters every list takes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Rows per page: default 50, at most 1000 (larger values are clamped).
    pub limit: Option<i64>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

impl ListParams {
    fn cursor(&self) -> Cursor {
        Cursor {
            after: self.cursor.clone(),
            limit: self.limit,
        }
    }
}

/// Declares a concrete page type for the OpenAPI document (`{"items": [...], "next": ...}`).
macro_rules! page_of {
    ($name:ident, $item:ty) => {
        #[doc = concat!("A page of `", stringify!($item), "`.")]
        #[derive(serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            /// The rows of this page.
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; `null` on the last page.
            pub next: Option<String>,
        }
        impl From<lookout_store::Page<$item>> for $name {
            fn from(p: lookout_store::Page<$item>) -> Self {
                $name {
                    items: p.items,
                    next: p.next,
                }
            }
        }
    };
}
pub(crate) use page_of;

#[derive(OpenApi)]
#[openapi(
    info(title = "Lookout API", description = "Lookout's JSON API. Lists take `limit` and `cursor`; errors are `{\"error\": {\"code\", \"message\"}}`."),
    components(schemas(ErrorBody)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = []))
)]
struct ApiDoc;

/// Declares the two ways to authenticate.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "UI session; changes also need the X-CSRF-Token header",
            ))),
        );
    }
}

/// The API router and its OpenAPI document.
pub fn router() -> Router<AppState> {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get_one, projects::update))
        .routes(routes!(activity::list_markers, activity::create_marker))
        .routes(routes!(activity::list_events))
        .routes(routes!(issues::list))
        .routes(routes!(issues::releases))
        .routes(routes!(issues::client_reports))
        .routes(routes!(issues::get_one, issues::update))
        .routes(routes!(issues::merge))
        .routes(routes!(issues::unmerge))
        .routes(routes!(issues::hashes))
        .routes(routes!(issues::events))
        .routes(routes!(issues::event))
        .routes(routes!(users::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get_one, users::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::delete))
        .routes(routes!(monitors::list, monitors::create))
        .routes(routes!(
            monitors::get_one,
            monitors::update,
            monitors::delete
        ))
        .routes(routes!(monitors::results))
        .routes(routes!(monitors::changes))
        .routes(routes!(monitors::list_windows, monitors::create_window))
        .routes(routes!(
            monitors::get_window,
            monitors::update_window,
            monitors::delete_window
        ))
        .routes(routes!(status_pages::list, status_pages::create))
        .routes(routes!(
            status_pages::get_one,
            status_pages::update,
            status_pages::delete
        ))
        .routes(routes!(
            status_pages::list_incidents,
            status_pages::create_incident
        ))
        .routes(routes!(status_pages::add_update))
        .routes(routes!(oncall::list_channels, oncall::create_channel))
        .routes(routes!(
            oncall::get_channel,
            oncall::update_channel,
            oncall::delete_channel
        ))
        .routes(routes!(oncall::list_schedules, oncall::create_schedule))
        .routes(routes!(
            oncall::get_schedule,
            oncall::update_schedule,
            oncall::delete_schedule
        ))
        .routes(routes!(oncall::oncall))
        .routes(routes!(oncall::list_overrides, oncall::create_override))
        .routes(routes!(oncall::delete_override))
        .routes(routes!(
            oncall::list_escalation_policies,
            oncall::create_escalation_policy
        ))
        .routes(routes!(
            oncall::get_escalation_policy,
            oncall::update_escalation_policy,
            oncall::delete_escalation_policy
        ))
        .routes(routes!(oncall::set_user_name))
        .routes(routes!(query::query))
        .routes(routes!(dashboards::list, dashboards::create))
        .routes(routes!(
            dashboards::get_one,
            dashboards::update,
            dashboards::delete
        ))
        .routes(routes!(dashboards::install_pack))
        .routes(routes!(reports::get_report, reports::make))
        .routes(routes!(reports::history))
        .routes(routes!(reports::get_one))
        .routes(routes!(reports::get_settings, reports::put_settings))
        .routes(routes!(reports::list_slos, reports::create_slo))
        .routes(routes!(
            reports::get_slo,
            reports::update_slo,
            reports::delete_slo
        ))
        .routes(routes!(apm::services))
        .routes(routes!(apm::service, apm::update_service))
        .routes(routes!(apm::transactions))
        .routes(routes!(apm::search))
        .routes(routes!(apm::trace))
        .routes(routes!(apm::logs))
        .routes(routes!(apm::service_map))
        .routes(routes!(apm::metrics))
        .routes(routes!(apm::metric_points))
        .routes(routes!(incidents::list, incidents::create))
        .routes(routes!(incidents::metrics))
        .routes(routes!(incidents::get_one))
        .routes(routes!(incidents::acknowledge))
        .routes(routes!(incidents::resolve))
        .routes(routes!(incidents::add_note))
        .routes(routes!(incidents::tick))
        .routes(routes!(incidents::postmortem))
        .routes(routes!(
            alert_config::list_policies,
            alert_config::create_policy
        ))
        .routes(routes!(
            alert_config::get_policy,
            alert_config::update_policy,
            alert_config::delete_policy
        ))
        .routes(routes!(
            alert_config::list_integrations,
            alert_config::create_integration
        ))
        .routes(routes!(
            alert_config::get_integration,
            alert_config::update_integration,
            alert_config::delete_integration
        ))
        .routes(routes!(
            alert_config::list_runbooks,
            alert_config::create_runbook
        ))
        .routes(routes!(
            alert_config::get_runbook,
            alert_config::update_runbook
        ))
        .routes(routes!(databases::list, databases::create))
        .routes(routes!(
            databases::get_one,
            databases::update,
            databases::delete
        ))
        .routes(routes!(databases::check_now))
        .routes(routes!(databases::checks))
        .routes(routes!(databases::report))
        .routes(routes!(databases::slow_queries))
        .routes(routes!(backups::overview))
        .routes(routes!(backups::drill_builtin))
        .routes(routes!(backups::list, backups::create))
        .routes(routes!(backups::get_one, backups::delete))
        .routes(routes!(backups::backup_now))
        .routes(routes!(backups::drill))
        .routes(routes!(backups::check))
        .routes(routes!(backups::runs))
        .merge(
            // Run reports carry per-second series: a long run's summary passes the 1 MiB limit.
            OpenApiRouter::new()
                .routes(routes!(load::list, load::create))
                .routes(routes!(load::compare))
                .routes(routes!(load::get_one, load::delete))
                .routes(routes!(series::list))
                .routes(routes!(series::get_one))
                .routes(routes!(series::points, series::push))
                .routes(routes!(series::change_points))
                .routes(routes!(series::recent))
                .layer(axum::extract::DefaultBodyLimit::max(load::MAX_REPORT)),
        )
        .split_for_parts();
    let doc = std::sync::Arc::new(doc);
    router.route(
        "/api/v1/openapi.json",
        get(move || async move { Json((*doc).clone()) }),
    )
}
