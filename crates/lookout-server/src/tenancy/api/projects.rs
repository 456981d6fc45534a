//! `/api/v1/projects`: the projects data is reported to, each with its DSN.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{page_of, ListParams};
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::{AppState, HttpSettings};
use crate::teams::ownership::{check_team, filter_owned, TeamParam};
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
    /// Error events older than this many days are deleted.
    pub retention_days: i64,
    /// At most this many error events are kept.
    pub max_events: i64,
    /// Events accepted per minute before ingest answers 429; null: no limit.
    pub rate_limit_per_minute: Option<i64>,
    /// The owning team's id, if any.
    pub team_id: Option<i64>,
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
            retention_days: p.retention_days,
            max_events: p.max_events,
            rate_limit_per_minute: p.rate_limit_per_minute,
            team_id: p.team_id,
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
    /// The owning team's id.
    pub team_id: Option<i64>,
}

/// Lists projects.
/// With `team`, a page holds only that team's projects and can be shorter than `limit`.
#[utoipa::path(get, operation_id = "projects_list", path = "/api/v1/projects", tag = "projects", params(ListParams, TeamParam),
    responses((status = 200, body = ProjectPage), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListParams>,
    ApiQuery(team): ApiQuery<TeamParam>,
) -> ApiResult<Json<ProjectPage>> {
    let page = tenancy::list_projects(state.store(), &q.cursor()).await?;
    let items = filter_owned(&state, who.user_id(), &team, page.items, |p| p.team_id).await?;
    Ok(Json(ProjectPage {
        items: items
            .into_iter()
            .map(|p| ProjectView::new(p, state.settings()))
            .collect(),
        next: page.next,
    }))
}

/// Creates a project with a DSN key (role member or admin).
#[utoipa::path(post, operation_id = "projects_create", path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = ProjectView), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(body): ApiJson<NewProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
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
    if let Some(team) = body.team_id {
        check_team(&state, team).await?;
    }
    let org = tenancy::default_org(state.store()).await?;
    let p = tenancy::create_project_owned(
        state.store(),
        org.id,
        name,
        Some(&slug),
        body.platform.as_deref(),
        body.team_id,
    )
    .await?;
    tracing::info!(project = p.id, slug = %p.slug, "Project created.");
    Ok((
        StatusCode::CREATED,
        Json(ProjectView::new(p, state.settings())),
    ))
}

/// Shows one project.
#[utoipa::path(get, operation_id = "projects_get_one", path = "/api/v1/projects/{id}", tag = "projects",
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

/// Changes to a project; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectUpdate {
    /// Display name, 1 to 100 characters.
    pub name: Option<String>,
    /// Keep error events this many days (1 to 3650).
    pub retention_days: Option<i64>,
    /// Keep at most this many error events (10 to 100,000,000).
    pub max_events: Option<i64>,
    /// Events accepted per minute before 429; 0 turns the limit off.
    pub rate_limit_per_minute: Option<i64>,
    /// The owning team's id; null leaves the project unowned, absent keeps the owner.
    #[serde(default, deserialize_with = "crate::teams::ownership::present")]
    #[schema(value_type = Option<i64>)]
    pub team_id: Option<Option<i64>>,
}

/// Changes a project's name, retention or ingest rate limit (member).
#[utoipa::path(patch, operation_id = "projects_update", path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path, description = "Project id")), request_body = ProjectUpdate,
    responses((status = 200, body = ProjectView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ProjectUpdate>,
) -> ApiResult<Json<ProjectView>> {
    let name = body.name.as_deref().map(str::trim).map(str::to_string);
    if name
        .as_deref()
        .is_some_and(|n| n.is_empty() || n.chars().count() > 100)
    {
        return Err(ApiError::Validation(
            "name must be 1 to 100 characters".into(),
        ));
    }
    if body
        .retention_days
        .is_some_and(|d| !(1..=3650).contains(&d))
    {
        return Err(ApiError::Validation(
            "retention_days must be 1 to 3650".into(),
        ));
    }
    if body
        .max_events
        .is_some_and(|m| !(10..=100_000_000).contains(&m))
    {
        return Err(ApiError::Validation(
            "max_events must be 10 to 100000000".into(),
        ));
    }
    if body.rate_limit_per_minute.is_some_and(|r| r < 0) {
        return Err(ApiError::Validation(
            "rate_limit_per_minute must be 0 (off) or more".into(),
        ));
    }
    if let Some(Some(team)) = body.team_id {
        check_team(&state, team).await?;
    }
    let changes = tenancy::ProjectChanges {
        name,
        retention_days: body.retention_days,
        max_events: body.max_events,
        rate_limit_per_minute: body.rate_limit_per_minute.map(|r| (r > 0).then_some(r)),
        team_id: body.team_id,
    };
    let p = tenancy::update_project(state.store(), id, &changes)
        .await
        .map_err(|e| match e {
            lookout_store::StoreError::NotFound => ApiError::NotFound("project"),
            e => e.into(),
        })?;
    tracing::info!(project = id, "Project settings changed.");
    Ok(Json(ProjectView::new(p, state.settings())))
}
