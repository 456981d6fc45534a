//! `/api/v1/locations` (admin): locations, their agents and their tokens. A location's token is
//! in the answer to its creation and to a rotation only; it is stored hashed.

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderName, StatusCode};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::service::{self, LocationInput, LocationPatch};
use crate::auth::Admin;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath};
use crate::state::AppState;

/// Answers that hold a token: no cache (browser or proxy) may keep them.
const NO_STORE: [(HeaderName, &str); 1] = [(CACHE_CONTROL, "no-store")];
use lookout_store::locations::{self as lstore, LocationRow};

/// One agent of a location, as it last reported itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// The agent's id (`--agent-id`, or made up at its start).
    pub agent_id: String,
    /// Its version.
    pub version: String,
    /// Whether it shares the location's monitors now (seen within the liveness timeout).
    pub live: bool,
    /// First seen, RFC 3339.
    pub first_seen_at: String,
    /// Last request, RFC 3339.
    pub last_seen_at: String,
    /// Results it holds, not yet uploaded.
    pub buffered: i64,
    /// Results it dropped since it started (its buffer was full).
    pub dropped: i64,
}

/// A location.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationView {
    /// Id.
    pub id: i64,
    /// The name monitors list in `locations`.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `online` (an agent reports), `offline` (none within the timeout), `waiting` (no agent
    /// ever reported) or `revoked` (the token was revoked).
    pub status: String,
    /// Agents seen, newest first.
    pub agents: Vec<AgentView>,
    /// Monitors checked from it.
    pub monitors: usize,
    /// When the current token was made, RFC 3339.
    pub token_created_at: Option<String>,
    /// When the token was revoked, RFC 3339.
    pub revoked_at: Option<String>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
}

/// A new token for a location: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationToken {
    /// The token agents of this location use (`lookout probe --token`). It is not stored in
    /// clear and cannot be shown again; rotate to get a new one.
    pub token: String,
    /// The location.
    pub location: LocationView,
}

/// A location as the API shows it.
pub async fn location_view(state: &AppState, row: LocationRow) -> ApiResult<LocationView> {
    let now = super::service::clock(state);
    let agents = lstore::agents(state.store(), row.id).await?;
    let newest = agents.iter().map(|a| a.last_seen_at).max();
    let status = service::status(&row, newest, now);
    let monitors = service::monitors_naming(state, &row.name).await?.len();
    Ok(LocationView {
        id: row.id,
        status: status.into(),
        agents: agents
            .into_iter()
            .map(|a| AgentView {
                live: now - a.last_seen_at <= service::AGENT_LIVE_MS,
                agent_id: a.agent_id,
                version: a.version,
                first_seen_at: iso(a.first_seen_at),
                last_seen_at: iso(a.last_seen_at),
                buffered: a.buffered,
                dropped: a.dropped,
            })
            .collect(),
        monitors,
        token_created_at: row.token_created_at.map(iso),
        revoked_at: row.revoked_at.map(iso),
        created_at: iso(row.created_at),
        updated_at: iso(row.updated_at),
        name: row.name,
        description: row.description,
    })
}

/// Lists locations with their agents (admin).
#[utoipa::path(get, operation_id = "locations_list", path = "/api/v1/locations", tag = "monitors",
    responses((status = 200, body = Vec<LocationView>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Admin,
) -> ApiResult<Json<Vec<LocationView>>> {
    let mut out = Vec::new();
    for row in lstore::list_locations(state.store()).await? {
        out.push(location_view(&state, row).await?);
    }
    Ok(Json(out))
}

/// Creates a location (admin); the answer holds its agent token, shown this once.
#[utoipa::path(post, operation_id = "locations_create", path = "/api/v1/locations", tag = "monitors",
    request_body = LocationInput,
    responses((status = 201, body = LocationToken), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<LocationInput>,
) -> ApiResult<(
    StatusCode,
    [(HeaderName, &'static str); 1],
    Json<LocationToken>,
)> {
    let (token, row) = service::create(&state, &body).await?;
    let location = location_view(&state, row).await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(LocationToken { token, location }),
    ))
}

/// One location (admin).
#[utoipa::path(get, operation_id = "locations_get_one", path = "/api/v1/locations/{id}", tag = "monitors",
    params(("id" = i64, Path, description = "Location id")),
    responses((status = 200, body = LocationView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<LocationView>> {
    let row = lstore::get_location(state.store(), id)
        .await
        .map_err(crate::service::ServiceError::not_found("location"))?;
    Ok(Json(location_view(&state, row).await?))
}

/// Renames or redescribes a location (admin). A location monitors use cannot be renamed (409).
#[utoipa::path(patch, operation_id = "locations_update", path = "/api/v1/locations/{id}", tag = "monitors",
    request_body = LocationPatch, params(("id" = i64, Path, description = "Location id")),
    responses((status = 200, body = LocationView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<LocationPatch>,
) -> ApiResult<Json<LocationView>> {
    let row = service::update(&state, id, &body).await?;
    Ok(Json(location_view(&state, row).await?))
}

/// Deletes a location with its agents and results (admin). A location monitors use cannot be
/// deleted (409).
#[utoipa::path(delete, operation_id = "locations_delete", path = "/api/v1/locations/{id}", tag = "monitors",
    params(("id" = i64, Path, description = "Location id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    service::delete(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates a location's token (admin): the old one stops working at once, a revocation is
/// lifted, and the answer holds the new token, shown this once.
#[utoipa::path(post, operation_id = "locations_rotate_token", path = "/api/v1/locations/{id}/token", tag = "monitors",
    params(("id" = i64, Path, description = "Location id")),
    responses((status = 200, body = LocationToken), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<([(HeaderName, &'static str); 1], Json<LocationToken>)> {
    let token = service::rotate(&state, id).await?;
    let row = lstore::get_location(state.store(), id).await?;
    let location = location_view(&state, row).await?;
    Ok((NO_STORE, Json(LocationToken { token, location })))
}

/// Revokes a location's token (admin): its agents are refused with 401 and stop; the location
/// leaves every monitor's quorum until a rotation.
#[utoipa::path(delete, operation_id = "locations_revoke_token", path = "/api/v1/locations/{id}/token", tag = "monitors",
    params(("id" = i64, Path, description = "Location id")),
    responses((status = 200, body = LocationView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<LocationView>> {
    let row = service::revoke(&state, id).await?;
    Ok(Json(location_view(&state, row).await?))
}
