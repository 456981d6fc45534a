//! The JSON API under `/api/v1/`, and its OpenAPI document generated from the same handlers.
//!
//! Every route is registered through `utoipa_axum::routes!`, which reads the handler's
//! `#[utoipa::path]`: a route cannot exist without its documentation, so the document at
//! `/api/v1/openapi.json` always matches what the server serves.

pub mod schemas;
pub mod schemas_cluster;
pub mod schemas_ops;
pub(crate) mod scope;

pub use crate::errors::api::IssueView;
pub use crate::tenancy::api::activity::MarkerView;
pub use crate::tenancy::api::projects::ProjectView;
pub use crate::tenancy::api::tokens::TokenView;
pub use crate::tenancy::api::users::UserView;

use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use lookout_store::{Cursor, StoreError};

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
    pub(crate) fn cursor(&self) -> Cursor {
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

/// Maps a missing row to a 404 naming `what`; other store errors pass through.
pub(crate) fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(what),
        e => e.into(),
    }
}
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

/// The API router and its OpenAPI document: every capability's routes, in navigation order.
pub fn router() -> Router<AppState> {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::tenancy::api())
        .merge(crate::teams::api())
        .merge(crate::errors::api())
        .merge(crate::apm::api())
        .merge(crate::uptime::api())
        .merge(crate::locations::api())
        .merge(crate::alerting::api())
        .merge(crate::query::api())
        .merge(crate::prometheus::api())
        .merge(crate::load::api())
        .merge(crate::regress::api())
        .merge(crate::dbhealth::api())
        .merge(crate::reports::api())
        .merge(crate::backups::api())
        .merge(crate::operations::api())
        .merge(crate::prometheus::rules::api())
        .split_for_parts();
    let doc = std::sync::Arc::new(doc);
    router.route(
        "/api/v1/openapi.json",
        get(move || async move { Json((*doc).clone()) }),
    )
}
