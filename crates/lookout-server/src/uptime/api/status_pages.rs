//! `/api/v1/status-pages`: public status pages (shown without login at `/status/{slug}`), their
//! incidents and timestamped updates.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{page_of, ListParams};
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::uptime::config::refuse_if_declared;
use lookout_store::tenancy;
use lookout_store::uptime::pages;

/// Checks a page slug: 1 to 50 of a-z, 0-9 and '-'.
pub fn validate_slug(slug: &str) -> Result<(), String> {
    if slug.is_empty()
        || slug.len() > 50
        || !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "slug {slug:?} must be 1 to 50 characters of a-z, 0-9 and '-'"
        ));
    }
    Ok(())
}

/// A status page definition.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusPageInput {
    /// URL slug: the page is public at `/status/{slug}`.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Text under the title.
    #[serde(default)]
    pub description: String,
    /// Logo image URL (https).
    pub logo_url: Option<String>,
    /// Monitors shown, in order.
    #[serde(default)]
    pub monitor_ids: Vec<i64>,
}

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

async fn checked_page(state: &AppState, b: &StatusPageInput) -> ApiResult<pages::NewStatusPage> {
    validate_slug(&b.slug).map_err(ApiError::Validation)?;
    let title = b.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::Validation(
            "title must be 1 to 200 characters".into(),
        ));
    }
    if let Some(l) = &b.logo_url {
        if !(l.starts_with("https://") || l.starts_with("http://") || l.starts_with('/'))
            || l.len() > 2000
        {
            return Err(ApiError::Validation(
                "logo_url must be an http(s) URL or a path".into(),
            ));
        }
    }
    crate::uptime::api::monitors::ensure_monitors(state, &b.monitor_ids).await?;
    let org = tenancy::default_org(state.store()).await?;
    Ok(pages::NewStatusPage {
        org_id: org.id,
        slug: b.slug.clone(),
        title: title.to_string(),
        description: b.description.clone(),
        logo_url: b.logo_url.clone(),
        monitor_ids: b.monitor_ids.clone(),
        managed_by: None,
    })
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
    let p = save(&state, None, &body).await?;
    Ok((StatusCode::CREATED, Json(page_view(&state, p))))
}

/// Creates (`id` none) or replaces a page after validation (the API and the UI editor).
pub(crate) async fn save(
    state: &AppState,
    id: Option<i64>,
    body: &StatusPageInput,
) -> ApiResult<pages::StatusPageRow> {
    if let Some(id) = id {
        let old = pages::get_page(state.store(), id).await?;
        refuse_if_declared(old.managed_by.as_deref(), "status page")?;
    }
    let new = checked_page(state, body).await?;
    Ok(match id {
        Some(id) => pages::update_page(state.store(), id, &new).await?,
        None => pages::create_page(state.store(), &new).await?,
    })
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
        save(&state, Some(id), &body).await?,
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

/// An incident with its updates, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Impact.
    pub impact: String,
    /// Current status.
    pub status: String,
    /// Opened, RFC 3339.
    pub created_at: String,
    /// Resolved, RFC 3339.
    pub resolved_at: Option<String>,
    /// Updates.
    pub updates: Vec<UpdateView>,
}

/// One update.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateView {
    /// When, RFC 3339.
    pub at: String,
    /// Status.
    pub status: String,
    /// Text.
    pub body: String,
}

/// The API shape of an incident.
pub fn incident_view(i: pages::Incident) -> IncidentView {
    IncidentView {
        id: i.id,
        title: i.title,
        impact: i.impact,
        status: i.status,
        created_at: iso(i.created_at),
        resolved_at: i.resolved_at.map(iso),
        updates: i
            .updates
            .into_iter()
            .map(|u| UpdateView {
                at: iso(u.at),
                status: u.status,
                body: u.body,
            })
            .collect(),
    }
}

const STATUSES: &[&str] = &["investigating", "identified", "monitoring", "resolved"];
const IMPACTS: &[&str] = &["none", "minor", "major", "critical"];

fn check_text(field: &str, s: &str, max: usize) -> ApiResult<()> {
    if s.trim().is_empty() || s.chars().count() > max {
        return Err(ApiError::Validation(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    Ok(())
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
    let i = open_incident(
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

/// Validates and opens an incident (the API and the UI).
pub(crate) async fn open_incident(
    state: &AppState,
    page_id: i64,
    title: &str,
    impact: Option<&str>,
    status: Option<&str>,
    body: &str,
) -> ApiResult<pages::Incident> {
    pages::get_page(state.store(), page_id).await?;
    check_text("title", title, 200)?;
    check_text("body", body, 10_000)?;
    let status = status.unwrap_or("investigating");
    let impact = impact.unwrap_or("minor");
    one_of("status", status, STATUSES)?;
    one_of("impact", impact, IMPACTS)?;
    Ok(pages::create_incident(state.store(), page_id, title.trim(), impact, status, body).await?)
}

fn one_of(field: &str, v: &str, allowed: &[&str]) -> ApiResult<()> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        )))
    }
}

/// Validates and adds an update to an incident of a page (the API and the UI).
pub(crate) async fn update_incident(
    state: &AppState,
    page_id: i64,
    incident_id: i64,
    status: &str,
    body: &str,
) -> ApiResult<pages::Incident> {
    let incident = pages::get_incident(state.store(), incident_id).await?;
    if incident.page_id != page_id {
        return Err(ApiError::NotFound("incident"));
    }
    check_text("body", body, 10_000)?;
    one_of("status", status, STATUSES)?;
    Ok(pages::add_update(state.store(), incident_id, status, body).await?)
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
    let i = update_incident(&state, id, incident_id, &b.status, &b.body).await?;
    Ok((StatusCode::CREATED, Json(incident_view(i))))
}
