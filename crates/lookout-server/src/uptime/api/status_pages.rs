//! `/api/v1/status-pages`: public status pages (shown without login at `/status/{slug}`), their
//! incidents and timestamped updates.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{page_of, ListParams};
use crate::auth::{Member, Principal};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::uptime::service::{self, StatusPageInput};
use crate::uptime::view::{incident_view, IncidentView};
use lookout_store::tenancy;
use lookout_store::uptime::pages;

/// A status page.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusPageView {
    /// Id.
    pub id: i64,
    /// Slug.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// Monitors shown.
    pub monitor_ids: Vec<i64>,
    /// The public page.
    pub url: String,
    /// Its Atom feed of incidents.
    pub feed_url: String,
    /// Its JSON.
    pub json_url: String,
    /// `config` when declared in the config file.
    pub managed_by: Option<String>,
    /// Created, RFC 3339.
    pub created_at: String,
}

fn page_view(state: &AppState, p: pages::StatusPageRow) -> StatusPageView {
    let base = format!("{}/status/{}", state.settings().public_url, p.slug);
    StatusPageView {
        id: p.id,
        feed_url: format!("{base}/feed.atom"),
        json_url: format!("{base}.json"),
        url: base,
        slug: p.slug,
        title: p.title,
        description: p.description,
        logo_url: p.logo_url,
        monitor_ids: p.monitor_ids,
        managed_by: p.managed_by,
        created_at: iso(p.created_at),
    }
}

page_of!(StatusPagePage, StatusPageView);

/// Lists status pages, a page at a time like every other list.
#[utoipa::path(get, operation_id = "status_pages_list", path = "/api/v1/status-pages", tag = "status pages", params(ListParams),
    responses((status = 200, body = StatusPagePage), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<StatusPagePage>> {
    let org = tenancy::default_org(state.store()).await?;
    let page = pages::page_pages(state.store(), org.id, &q.cursor()).await?;
    Ok(Json(page.map(|p| page_view(&state, p)).into()))
}

/// Creates a status page (role member).
#[utoipa::path(post, operation_id = "status_pages_create", path = "/api/v1/status-pages", tag = "status pages", request_body = StatusPageInput,
    responses((status = 201, body = StatusPageView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(body): ApiJson<StatusPageInput>,
) -> ApiResult<(StatusCode, Json<StatusPageView>)> {
    let p = service::save_status_page(&state, None, &body).await?;
    Ok((StatusCode::CREATED, Json(page_view(&state, p))))
}

/// One status page.
#[utoipa::path(get, operation_id = "status_pages_get_one", path = "/api/v1/status-pages/{id}", tag = "status pages",
    params(("id" = i64, Path, description = "Page id")),
    responses((status = 200, body = StatusPageView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<StatusPageView>> {
    Ok(Json(page_view(
        &state,
        pages::get_page(state.store(), id).await?,
    )))
}

/// Replaces a status page (role member).
#[utoipa::path(put, operation_id = "status_pages_update", path = "/api/v1/status-pages/{id}", tag = "status pages", request_body = StatusPageInput,
    params(("id" = i64, Path, description = "Page id")),
    responses((status = 200, body = StatusPageView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<StatusPageInput>,
) -> ApiResult<Json<StatusPageView>> {
    Ok(Json(page_view(
        &state,
        service::save_status_page(&state, Some(id), &body).await?,
    )))
}

/// Deletes a status page and its incidents (role member).
#[utoipa::path(delete, operation_id = "status_pages_delete", path = "/api/v1/status-pages/{id}", tag = "status pages",
    params(("id" = i64, Path, description = "Page id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    pages::delete_page(state.store(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new incident on a status page.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentInput {
    /// Title.
    pub title: String,
    /// `none`, `minor`, `major` or `critical` (default `minor`).
    pub impact: Option<String>,
    /// `investigating` (default), `identified`, `monitoring` or `resolved`.
    pub status: Option<String>,
    /// The first update's text.
    pub body: String,
}

/// An update to an incident.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    /// The status it moves to.
    pub status: String,
    /// Text.
    pub body: String,
}

/// Lists a page's incidents.
#[utoipa::path(get, path = "/api/v1/status-pages/{id}/incidents", tag = "status pages",
    params(("id" = i64, Path, description = "Page id")),
    responses((status = 200, body = Vec<IncidentView>), (status = 404, body = ErrorBody)))]
pub async fn list_incidents(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<IncidentView>>> {
    pages::get_page(state.store(), id).await?;
    let rows = pages::incidents(state.store(), id, 100).await?;
    Ok(Json(rows.into_iter().map(incident_view).collect()))
}

/// Opens an incident on a page (role member).
#[utoipa::path(post, path = "/api/v1/status-pages/{id}/incidents", tag = "status pages", request_body = IncidentInput,
    params(("id" = i64, Path, description = "Page id")),
    responses((status = 201, body = IncidentView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_incident(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<IncidentInput>,
) -> ApiResult<(StatusCode, Json<IncidentView>)> {
    let i = service::open_incident(
        &state,
        id,
        &b.title,
        b.impact.as_deref(),
        b.status.as_deref(),
        &b.body,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(incident_view(i))))
}

/// Adds an update to an incident; `resolved` closes it (role member).
#[utoipa::path(post, path = "/api/v1/status-pages/{id}/incidents/{incident_id}/updates", tag = "status pages",
    request_body = UpdateInput,
    params(("id" = i64, Path, description = "Page id"), ("incident_id" = i64, Path, description = "Incident id")),
    responses((status = 201, body = IncidentView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_update(
    State(state): State<AppState>,
    _who: Member,
    ApiPath((id, incident_id)): ApiPath<(i64, i64)>,
    ApiJson(b): ApiJson<UpdateInput>,
) -> ApiResult<(StatusCode, Json<IncidentView>)> {
    let i = service::update_incident(&state, id, incident_id, &b.status, &b.body).await?;
    Ok((StatusCode::CREATED, Json(incident_view(i))))
}
