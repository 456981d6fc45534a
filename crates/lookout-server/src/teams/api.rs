//! `/api/v1/teams` (teams and their members; changes are the admin's), `/api/v1/me/teams`,
//! `/api/v1/me/shifts`, and the on-call calendar feed with its revocable token
//! (`/api/v1/me/calendar-feed`, `/api/v1/me/oncall.ics?token=…`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::service;
use crate::api::{not_found, page_of, ListParams};
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_core::time::now_ms;
use lookout_store::teams::{self, Team};
use lookout_store::tenancy;

/// A team as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    /// Numeric id.
    pub id: i64,
    /// Written `#slug` in ownership rules and searches.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The escalation policy that pages the team for issues it owns.
    pub escalation_policy_id: Option<i64>,
    /// Members.
    pub member_count: i64,
    /// Created, RFC 3339.
    pub created_at: String,
}

impl From<Team> for TeamView {
    fn from(t: Team) -> Self {
        TeamView {
            id: t.id,
            slug: t.slug,
            name: t.name,
            escalation_policy_id: t.escalation_policy_id,
            member_count: t.member_count,
            created_at: iso(t.created_at),
        }
    }
}

page_of!(TeamPage, TeamView);

/// A member of a team.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// User id.
    pub id: i64,
    /// Login email; admins only (`null` for other roles, who see names).
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
}

/// A team with its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamDetail {
    /// The team.
    #[serde(flatten)]
    pub team: TeamView,
    /// Its members, by email.
    pub members: Vec<MemberView>,
    /// Who is on call for the team now, through its schedules and escalation policies.
    pub on_call_now: Vec<service::OnCallNow>,
}

/// A new team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    /// Display name (1 to 100 characters).
    pub name: String,
    /// Lower-case letters, digits, `-`, `_` (default: made from the name).
    pub slug: Option<String>,
    /// The escalation policy that pages the team.
    pub escalation_policy_id: Option<i64>,
}

/// Changes to a team (absent fields stay as they are).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamUpdate {
    /// New name.
    pub name: Option<String>,
    /// New slug.
    pub slug: Option<String>,
    /// New escalation policy; `null` unlinks it.
    #[serde(default, deserialize_with = "crate::teams::ownership::present")]
    #[schema(value_type = Option<i64>)]
    pub escalation_policy_id: Option<Option<i64>>,
}

/// Lists teams (every role: pickers and filters need them).
#[utoipa::path(get, operation_id = "teams_list", path = "/api/v1/teams", tag = "teams", params(ListParams),
    responses((status = 200, body = TeamPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<TeamPage>> {
    let org = tenancy::default_org(state.store()).await?;
    let page = teams::list(state.store(), org.id, &q.cursor()).await?;
    Ok(Json(page.map(TeamView::from).into()))
}

/// Creates a team (admin).
#[utoipa::path(post, operation_id = "teams_create", path = "/api/v1/teams", tag = "teams", request_body = NewTeam,
    responses((status = 201, body = TeamView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<NewTeam>,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    let t = service::create(
        &state,
        &body.name,
        body.slug.as_deref(),
        body.escalation_policy_id,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(t.into())))
}

async fn detail(state: &AppState, id: i64, with_emails: bool) -> ApiResult<TeamDetail> {
    let t = teams::get(state.store(), id)
        .await
        .map_err(not_found("team"))?;
    let members = teams::members(state.store(), id)
        .await?
        .into_iter()
        .map(|m| MemberView {
            id: m.id,
            email: with_emails.then_some(m.email),
            name: m.name,
        })
        .collect();
    let on_call_now = service::on_call_now(state, &t, now_ms()).await?;
    Ok(TeamDetail {
        team: t.into(),
        members,
        on_call_now,
    })
}

/// Shows a team with its members.
#[utoipa::path(get, operation_id = "teams_get_one", path = "/api/v1/teams/{id}", tag = "teams",
    params(("id" = i64, Path, description = "Team id")),
    responses((status = 200, body = TeamDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TeamDetail>> {
    // Members' emails are personal data: admins manage accounts and see them, others see names.
    let admin = who.role() >= lookout_core::Role::Admin;
    Ok(Json(detail(&state, id, admin).await?))
}

/// Changes a team's name, slug or escalation policy (admin).
#[utoipa::path(put, operation_id = "teams_update", path = "/api/v1/teams/{id}", tag = "teams",
    params(("id" = i64, Path, description = "Team id")), request_body = TeamUpdate,
    responses((status = 200, body = TeamView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TeamUpdate>,
) -> ApiResult<Json<TeamView>> {
    let changes = teams::TeamChanges {
        name: body
            .name
            .as_deref()
            .map(service::validate_name)
            .transpose()?,
        slug: body
            .slug
            .as_deref()
            .map(service::validate_slug)
            .transpose()?,
        escalation_policy_id: body.escalation_policy_id,
    };
    if let Some(ep) = changes.escalation_policy_id {
        service::check_escalation(&state, ep).await?;
    }
    if let Some(slug) = &changes.slug {
        service::check_rename(&state, id, slug).await?;
    }
    let t = teams::update(state.store(), id, &changes)
        .await
        .map_err(|e| match e {
            lookout_store::StoreError::NotFound => ApiError::NotFound("team"),
            e => crate::service::ServiceError::from(e).into(),
        })?;
    tracing::info!(team = id, "Team changed.");
    Ok(Json(t.into()))
}

/// Deletes a team; issues assigned to it become unassigned (admin).
#[utoipa::path(delete, operation_id = "teams_delete", path = "/api/v1/teams/{id}", tag = "teams",
    params(("id" = i64, Path, description = "Team id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    teams::delete(state.store(), id)
        .await
        .map_err(not_found("team"))?;
    tracing::info!(team = id, "Team deleted.");
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a user to a team (admin; a member already: nothing changes).
#[utoipa::path(put, operation_id = "teams_add_member", path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams",
    params(("id" = i64, Path, description = "Team id"), ("user_id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_member(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath((id, user_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    teams::add_member(state.store(), id, user_id)
        .await
        .map_err(not_found("team or user"))?;
    tracing::info!(team = id, user = user_id, "Team member added.");
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user from a team (admin).
#[utoipa::path(delete, operation_id = "teams_remove_member", path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams",
    params(("id" = i64, Path, description = "Team id"), ("user_id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath((id, user_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    teams::remove_member(state.store(), id, user_id)
        .await
        .map_err(not_found("membership"))?;
    tracing::info!(team = id, user = user_id, "Team member removed.");
    Ok(StatusCode::NO_CONTENT)
}

/// The teams of the calling user.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyTeams {
    /// The teams, by slug.
    pub items: Vec<TeamView>,
}

fn own_user(who: &Principal) -> ApiResult<i64> {
    who.user_id().ok_or_else(|| {
        ApiError::Validation(
            "this needs a user: sign in, or use a token that belongs to a user".into(),
        )
    })
}

/// The caller's teams.
#[utoipa::path(get, path = "/api/v1/me/teams", tag = "teams",
    responses((status = 200, body = MyTeams), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn my_teams(State(state): State<AppState>, who: Principal) -> ApiResult<Json<MyTeams>> {
    let uid = own_user(&who)?;
    let items = teams::of_user(state.store(), uid)
        .await?
        .into_iter()
        .map(TeamView::from)
        .collect();
    Ok(Json(MyTeams { items }))
}

/// One of the caller's on-call shifts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShiftView {
    /// The schedule.
    pub schedule_id: i64,
    /// Its name.
    pub schedule: String,
    /// From, RFC 3339.
    pub start: String,
    /// Until, RFC 3339.
    pub end: String,
}

/// The caller's shifts.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyShifts {
    /// Shifts in time order (at most 500).
    pub items: Vec<ShiftView>,
}

/// How far ahead to look.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShiftParams {
    /// Days from now, 1 to 60 (default 14).
    pub days: Option<i64>,
}

/// The caller's next on-call shifts on every schedule (overrides included).
#[utoipa::path(get, path = "/api/v1/me/shifts", tag = "teams", params(ShiftParams),
    responses((status = 200, body = MyShifts), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn my_shifts(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ShiftParams>,
) -> ApiResult<Json<MyShifts>> {
    let uid = own_user(&who)?;
    let days = q.days.unwrap_or(14);
    if !(1..=service::FEED_DAYS).contains(&days) {
        return Err(ApiError::Validation(format!(
            "days must be 1 to {}",
            service::FEED_DAYS
        )));
    }
    let now = now_ms();
    let items = service::shifts_of(&state, uid, now, now + days * 86_400_000)
        .await?
        .into_iter()
        .map(|s| ShiftView {
            schedule_id: s.schedule_id,
            schedule: s.schedule,
            start: iso(s.start),
            end: iso(s.end),
        })
        .collect();
    Ok(Json(MyShifts { items }))
}

/// A new calendar feed address: shown once (only the token's hash is kept).
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedCreated {
    /// The address to subscribe to in a calendar app.
    pub url: String,
    /// The token in it.
    pub token: String,
}

/// Makes (or replaces) the caller's calendar feed token; the previous address stops working.
#[utoipa::path(post, path = "/api/v1/me/calendar-feed", tag = "teams",
    responses((status = 201, body = FeedCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_feed(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<(
    StatusCode,
    [(header::HeaderName, &'static str); 1],
    Json<FeedCreated>,
)> {
    let uid = own_user(&who)?;
    let token = teams::rotate_feed_token(state.store(), uid).await?;
    tracing::info!(user = uid, "Calendar feed token made.");
    Ok((
        StatusCode::CREATED,
        // The answer holds a credential: no cache (browser or proxy) may keep it.
        [(header::CACHE_CONTROL, "no-store")],
        Json(FeedCreated {
            url: feed_url(&state, &token),
            token,
        }),
    ))
}

/// The feed address for a token.
pub fn feed_url(state: &AppState, token: &str) -> String {
    format!(
        "{}/api/v1/me/oncall.ics?token={token}",
        state.settings().public_url.trim_end_matches('/')
    )
}

/// Revokes the caller's calendar feed token.
#[utoipa::path(delete, path = "/api/v1/me/calendar-feed", tag = "teams",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn revoke_feed(State(state): State<AppState>, who: Principal) -> ApiResult<StatusCode> {
    let uid = own_user(&who)?;
    teams::revoke_feed_token(state.store(), uid).await?;
    tracing::info!(user = uid, "Calendar feed token revoked.");
    Ok(StatusCode::NO_CONTENT)
}

/// The feed's token.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The token from `POST /api/v1/me/calendar-feed`.
    pub token: Option<String>,
}

/// The user's next 60 days of on-call shifts as iCalendar, for calendar apps to subscribe to.
/// Authenticated by the feed token alone (calendar apps send no other credentials).
#[utoipa::path(get, path = "/api/v1/me/oncall.ics", tag = "teams", params(FeedParams), security(()),
    responses((status = 200, description = "iCalendar (RFC 5545)", content_type = "text/calendar"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn feed(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FeedParams>,
) -> ApiResult<Response> {
    // Tokens are 48 hex characters; anything else is refused before the database is asked.
    let token = q.token.unwrap_or_default();
    if token.len() != 48 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        tracing::info!("Calendar feed asked with a malformed or missing token.");
        return Err(ApiError::Unauthorized);
    }
    let Some(uid) = teams::user_for_feed_token(state.store(), &token).await? else {
        tracing::info!("Calendar feed asked with an unknown or revoked token.");
        return Err(ApiError::Unauthorized);
    };
    let user = tenancy::get_user(state.store(), uid).await?;
    let now = now_ms();
    let shifts =
        service::shifts_of(&state, uid, now, now + service::FEED_DAYS * 86_400_000).await?;
    let body = service::ical(&user.email, &shifts, now);
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response())
}
