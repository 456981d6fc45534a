//! `/api/v1/projects`: the projects data is reported to, each with its DSN.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{page_of, ListParams};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::{AppState, HttpSettings};
use lookout_core::Role;
use lookout_store::tenancy::{self, Project};

/// A project as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    /// Numeric id (also the last segment of the DSN).
    pub id: i64,
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// SDK platform, if set.
    pub platform: Option<String>,
    /// The DSN to configure Sentry SDKs with.
    pub dsn: Option<String>,
    /// The DSN's public key (32 hex characters).
    pub public_key: Option<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

impl ProjectView {
    pub(crate) fn new(p: Project, settings: &HttpSettings) -> Self {
        ProjectView {
            dsn: p.public_key.as_deref().map(|k| settings.dsn(k, p.id)),
            id: p.id,
            slug: p.slug,
            name: p.name,
            platform: p.platform,
            public_key: p.public_key,
            created_at: iso(p.created_at),
        }
    }
}

page_of!(ProjectPage, ProjectView);

/// A new project.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProject {
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// URL-safe name; derived from `name` when absent.
    pub slug: Option<String>,
    /// SDK platform (`python`, `node`, …).
    pub platform: Option<String>,
}

/// Lists projects.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(ListParams),
    responses((status = 200, body = ProjectPage), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ProjectPage>> {
    let page = tenancy::list_projects(state.store(), &q.cursor()).await?;
    Ok(Json(
        page.map(|p| ProjectView::new(p, state.settings())).into(),
    ))
}

/// Creates a project with a DSN key (role member or admin).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = ProjectView), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<NewProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    who.require(Role::Member)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::Validation(
            "name must be 1 to 100 characters".into(),
        ));
    }
    let slug = body.slug.as_deref().map(str::trim).unwrap_or_default();
    let slug = if slug.is_empty() {
        tenancy::slugify(name)
    } else {
        slug.to_string()
    };
    if slug.is_empty()
        || slug.len() > 50
        || !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ApiError::Validation(
            "slug must be 1 to 50 characters of a-z, 0-9 and '-'".into(),
        ));
    }
    let org = tenancy::default_org(state.store()).await?;
    let p = tenancy::create_project(
        state.store(),
        org.id,
        name,
        Some(&slug),
        body.platform.as_deref(),
    )
    .await?;
    tracing::info!(project = p.id, slug = %p.slug, "Project created.");
    Ok((
        StatusCode::CREATED,
        Json(ProjectView::new(p, state.settings())),
    ))
}

/// Shows one project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path, description = "Project id")),
    responses((status = 200, body = ProjectView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ProjectView>> {
    let p = tenancy::get_project(state.store(), id)
        .await
        .map_err(|e| match e {
            lookout_store::StoreError::NotFound => ApiError::NotFound("project"),
            e => e.into(),
        })?;
    Ok(Json(ProjectView::new(p, state.settings())))
}
