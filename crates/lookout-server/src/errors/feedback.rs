//! User feedback in the API: per issue (also on the issue page) and per project.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::{not_found, page_of, ListParams};
use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{iso, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_store::errors::feedback::{self, UserReport};
use lookout_store::{errors, tenancy, Cursor};

/// A user's report as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserReportView {
    /// Numeric id.
    pub id: i64,
    /// The event it is about.
    pub event_id: Option<String>,
    /// That event's issue, once the event is stored.
    pub issue_id: Option<i64>,
    /// Name, as the user gave it.
    pub name: Option<String>,
    /// Email, as the user gave it.
    pub email: Option<String>,
    /// What the user said.
    pub comments: String,
    /// Received, RFC 3339.
    pub created_at: String,
}

impl From<UserReport> for UserReportView {
    fn from(r: UserReport) -> Self {
        UserReportView {
            id: r.id,
            event_id: r.event_id,
            issue_id: r.issue_id,
            name: r.name,
            email: r.email,
            comments: r.comments,
            created_at: iso(r.created_at),
        }
    }
}

page_of!(UserReportPage, UserReportView);

/// What users reported about an issue's events, newest first.
#[utoipa::path(get, operation_id = "issues_feedback", path = "/api/v1/issues/{id}/feedback", tag = "errors",
    params(("id" = i64, Path, description = "Issue id")),
    responses((status = 200, body = Vec<UserReportView>), (status = 404, body = ErrorBody)))]
pub async fn for_issue(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<UserReportView>>> {
    errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    let items = feedback::for_issue(state.store(), id).await?;
    Ok(Json(items.into_iter().map(UserReportView::from).collect()))
}

/// A project's user feedback, newest first.
#[utoipa::path(get, operation_id = "projects_feedback", path = "/api/v1/projects/{id}/feedback", tag = "errors",
    params(("id" = i64, Path, description = "Project id"), ListParams),
    responses((status = 200, body = UserReportPage), (status = 404, body = ErrorBody)))]
pub async fn for_project(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<UserReportPage>> {
    tenancy::get_project(state.store(), id)
        .await
        .map_err(not_found("project"))?;
    let page = feedback::for_project(
        state.store(),
        id,
        &Cursor {
            after: q.cursor,
            limit: q.limit,
        },
    )
    .await?;
    Ok(Json(page.map(UserReportView::from).into()))
}
