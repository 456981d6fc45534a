//! `/api/v1/projects/{id}/markers` (change markers, written durably) and `/api/v1/events`
//! (the domain-event stream, newest first: the activity feed).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{page_of, ListParams};
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_store::markers::{self, Marker};
use lookout_store::{events, tenancy, Cursor, Page, StoreError};

/// A change marker as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkerView {
    /// Time-ordered id.
    pub id: String,
    /// The project.
    pub project_id: i64,
    /// `deploy`, `config`, `feature_flag`, …
    pub kind: String,
    /// What changed.
    pub title: String,
    /// Version deployed, if any.
    pub version: Option<String>,
    /// Link to the change, if any.
    pub url: Option<String>,
    /// When it happened, RFC 3339.
    pub at: String,
}

impl From<Marker> for MarkerView {
    fn from(m: Marker) -> Self {
        MarkerView {
            id: m.id,
            project_id: m.project_id,
            kind: m.kind,
            title: m.title,
            version: m.version,
            url: m.url,
            at: iso(m.at),
        }
    }
}

page_of!(MarkerPage, MarkerView);

/// A new change marker.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewMarker {
    /// What kind of change: 1 to 40 characters of a-z, 0-9, `_`, `.`, `-`. Default `deploy`.
    pub kind: Option<String>,
    /// What changed, 1 to 500 characters.
    pub title: String,
    /// The version deployed.
    pub version: Option<String>,
    /// A link to the change.
    pub url: Option<String>,
    /// When it happened, RFC 3339; default now.
    pub at: Option<String>,
}

async fn project_exists(state: &AppState, id: i64) -> ApiResult<()> {
    match tenancy::get_project(state.store(), id).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("project")),
        Err(e) => Err(e.into()),
    }
}

/// Lists a project's change markers, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/markers", tag = "markers",
    params(("id" = i64, Path, description = "Project id"), ListParams),
    responses((status = 200, body = MarkerPage), (status = 404, body = ErrorBody)))]
pub async fn list_markers(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<MarkerPage>> {
    project_exists(&state, id).await?;
    let page = markers::list(state.store(), id, &q.cursor()).await?;
    Ok(Json(page.map(MarkerView::from).into()))
}

/// Records a change marker. Answered only once it is committed to disk; 503 with
/// `Retry-After` when the write queue is full.
#[utoipa::path(post, path = "/api/v1/projects/{id}/markers", tag = "markers",
    params(("id" = i64, Path, description = "Project id")), request_body = NewMarker,
    responses((status = 201, body = MarkerView), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "Overloaded; retry after Retry-After")))]
pub async fn create_marker(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewMarker>,
) -> ApiResult<(StatusCode, Json<MarkerView>)> {
    let kind = body.kind.unwrap_or_else(|| "deploy".to_string());
    if kind.is_empty()
        || kind.len() > 40
        || !kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
    {
        return Err(ApiError::Validation(
            "kind must be 1 to 40 characters of a-z, 0-9, _ . -".into(),
        ));
    }
    let title = body.title.trim().to_string();
    if title.is_empty() || title.chars().count() > 500 {
        return Err(ApiError::Validation(
            "title must be 1 to 500 characters".into(),
        ));
    }
    let url = body.url.filter(|u| !u.is_empty());
    // Shown as a link in the UI: only web URLs, never `javascript:` or `data:`.
    if url
        .as_deref()
        .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2000)
    {
        return Err(ApiError::Validation(
            "url must be an http(s) URL of at most 2000 characters".into(),
        ));
    }
    let at = match body.at.as_deref() {
        None => lookout_core::time::now_ms(),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| ApiError::Validation(format!("at must be RFC 3339: {e}")))?
            .timestamp_millis(),
    };
    project_exists(&state, id).await?;
    let marker = Marker {
        id: lookout_core::id::new_sortable_id(),
        project_id: id,
        kind,
        title,
        version: body.version.filter(|v| !v.is_empty()),
        url,
        at,
    };
    state.writes().write(markers::record(&marker)).await?;
    Ok((StatusCode::CREATED, Json(marker.into())))
}

/// A domain event as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Position in the stream.
    pub seq: i64,
    /// What happened (`project.created`, `marker.created`, …).
    pub kind: String,
    /// The project it concerns, if any.
    pub project_id: Option<i64>,
    /// The id of the thing it concerns, if any.
    pub subject: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// When, RFC 3339.
    pub created_at: String,
}

page_of!(EventPage, EventView);

/// Filters of the event feed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this project.
    pub project_id: Option<i64>,
}

/// The activity feed: domain events, newest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams, ListParams),
    responses((status = 200, body = EventPage)))]
pub async fn list_events(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(f): ApiQuery<EventParams>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<EventPage>> {
    let cursor: Cursor = q.cursor();
    let limit = cursor.limit();
    let rows =
        events::read_newest(state.store(), cursor.after_i64()?, limit + 1, f.project_id).await?;
    let page = Page::from_rows(rows, limit, |e| e.seq.to_string());
    Ok(Json(
        page.map(|e| EventView {
            seq: e.seq,
            kind: e.kind,
            project_id: e.project_id,
            subject: e.subject,
            payload: e.payload,
            created_at: iso(e.created_at),
        })
        .into(),
    ))
}
