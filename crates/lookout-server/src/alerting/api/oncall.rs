//! `/api/v1/channels`, `/api/v1/schedules` (with overrides and who is on call) and
//! `/api/v1/escalation-policies`, in PagerDuty's shapes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::alerting::deliver::CHANNEL_TYPES;
use crate::alerting::oncall as svc;
use crate::alerting::{engine, REDACTED};
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::teams::ownership::{filter_owned, TeamParam};
use lookout_core::time::{iso, now_ms};
use lookout_core::Role;
use lookout_oncall::schedule::parse_rfc3339;
use lookout_store::alerting::{self as astore, ChannelRow, SpecRow, SpecTable};
use lookout_store::{tenancy, StoreError};

/// `{"items": [...]}`.
pub(crate) fn items(v: Vec<Value>) -> Json<Value> {
    Json(json!({ "items": v }))
}

fn user_json(u: &(i64, Option<String>, String)) -> Value {
    json!({"id": u.0, "name": u.1.clone().unwrap_or_else(|| u.2.clone()), "email": u.2})
}

// ---------------------------------------------------------------------------------- channels

/// A channel as the API shows it: secrets replaced by `********`.
fn channel_view(c: &ChannelRow) -> Value {
    let mut config = c.config.clone();
    let secrets = CHANNEL_TYPES
        .iter()
        .find(|t| t.0 == c.kind)
        .map_or(&[][..], |t| t.2);
    if let Some(m) = config.as_object_mut() {
        for s in secrets {
            if m.contains_key(*s) {
                m.insert((*s).into(), json!(REDACTED));
            }
        }
    }
    let mut v = json!({
        "id": c.id, "name": c.name, "type": c.kind, "user_id": c.user_id,
        "urgencies": c.urgencies, "enabled": c.enabled, "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    });
    if let (Some(m), Some(cfg)) = (v.as_object_mut(), config.as_object()) {
        for (k, val) in cfg {
            // Columns win over config keys: a channel saved before `enabled` was a column
            // may hold it in its config.
            m.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    v
}

/// Whether `who` may hold a channel owned by `owner` (`None`: a team channel). A user manages
/// only their own contact methods; team channels and other users' contact methods need the
/// member role. Checked on a channel's owner before and after every change.
fn may_own_channel(who: &Principal, owner: Option<i64>) -> ApiResult<()> {
    match (owner, who.user_id()) {
        (Some(o), Some(me)) if o == me => Ok(()),
        _ => who.require(Role::Member),
    }
}

/// Lists notification channels and contact methods (`?user_id=` for one user's).
#[utoipa::path(get, path = "/api/v1/channels", tag = "on-call",
    responses((status = 200, body = crate::api::schemas::ChannelList), (status = 401, body = ErrorBody)))]
pub async fn list_channels(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<UserFilter>,
) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let rows = astore::channel_list(state.store(), org.id, q.user_id).await?;
    Ok(items(rows.iter().map(channel_view).collect()))
}

/// `?user_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// Only this user's contact methods.
    pub user_id: Option<i64>,
}

/// Creates a channel: `{"name", "type": "webhook|slack|discord|mattermost|email|ntfy|pagerduty",
/// "url", …}`; with `user_id`, a contact method of that user for `urgencies`.
#[utoipa::path(post, path = "/api/v1/channels", tag = "on-call", request_body = crate::api::schemas::ChannelInput,
    responses((status = 201, body = crate::api::schemas::ChannelView), (status = 422, body = ErrorBody)))]
pub async fn create_channel(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // Authorised on the owner the body names before the rest of it is validated, so a viewer
    // gets 403, not the details of a 422.
    may_own_channel(&who, body.get("user_id").and_then(Value::as_i64))?;
    let row = svc::create_channel(&state, &body).await?;
    Ok((StatusCode::CREATED, Json(channel_view(&row))))
}

/// One channel.
#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Channel id")),
    responses((status = 200, body = crate::api::schemas::ChannelView), (status = 404, body = ErrorBody)))]
pub async fn get_channel(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(channel_view(
        &astore::channel_get(state.store(), id).await?,
    )))
}

/// Replaces a channel; `********` keeps a stored secret.
#[utoipa::path(put, path = "/api/v1/channels/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Channel id")), request_body = crate::api::schemas::ChannelInput,
    responses((status = 200, body = crate::api::schemas::ChannelView), (status = 404, body = ErrorBody)))]
pub async fn update_channel(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let old = astore::channel_get(state.store(), id).await?;
    // Both sides: the channel as it is (whose pages it receives now) and as it would be. A
    // check on the old owner alone let a viewer move their own contact method onto another
    // user, or make it a team channel, and receive their pages with the signed links.
    may_own_channel(&who, old.user_id)?;
    may_own_channel(&who, body.get("user_id").and_then(Value::as_i64))?;
    let row = svc::update_channel(&state, &old, &body).await?;
    Ok(Json(channel_view(&row)))
}

/// Deletes a channel.
#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Channel id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_channel(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let old = astore::channel_get(state.store(), id).await?;
    may_own_channel(&who, old.user_id)?;
    astore::channel_delete(state.store(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --------------------------------------------------------------------------------- schedules

/// A `(name, spec)` object as the API shows it: the spec with `id`, `name` and times, and
/// `enabled` (true for objects stored before they had the flag).
pub(crate) fn spec_view(row: &SpecRow) -> Value {
    let mut v = row.spec.clone();
    if let Some(m) = v.as_object_mut() {
        m.entry("enabled").or_insert(json!(true));
        m.insert("id".into(), json!(row.id));
        m.insert("name".into(), json!(row.name));
        m.insert("team_id".into(), json!(row.team_id));
        m.insert("created_at".into(), json!(iso(row.created_at)));
        m.insert("updated_at".into(), json!(iso(row.updated_at)));
    }
    v
}

/// A schedule with its overrides that have not ended yet.
async fn schedule_view(state: &AppState, row: &SpecRow) -> ApiResult<Value> {
    let mut v = spec_view(row);
    let upcoming = astore::overrides_between(state.store(), row.id, now_ms(), i64::MAX).await?;
    v["overrides"] = json!(upcoming
        .iter()
        .map(
            |o| json!({"id": o.id, "user": o.user_id, "start": iso(o.starts_at),
                        "end": iso(o.ends_at)})
        )
        .collect::<Vec<_>>());
    Ok(v)
}

/// Lists schedules.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "on-call", params(TeamParam),
    responses((status = 200, body = crate::api::schemas::ScheduleList)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(team): ApiQuery<TeamParam>,
) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let rows = astore::spec_list(state.store(), SpecTable::Schedules, org.id).await?;
    let rows = filter_owned(&state, who.user_id(), &team, rows, |r| r.team_id).await?;
    Ok(items(rows.iter().map(spec_view).collect()))
}

/// Creates a schedule (PagerDuty's shape: `time_zone`, `schedule_layers`, and `overrides` as
/// `{"start", "end", "user"}`).
#[utoipa::path(post, path = "/api/v1/schedules", tag = "on-call", request_body = crate::api::schemas::ScheduleInput,
    responses((status = 201, body = crate::api::schemas::ScheduleView), (status = 422, body = ErrorBody)))]
pub async fn create_schedule(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let row = svc::create_schedule(&state, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(schedule_view(&state, &row).await?),
    ))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = crate::api::schemas::ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let row = astore::spec_get(state.store(), SpecTable::Schedules, id).await?;
    Ok(Json(schedule_view(&state, &row).await?))
}

/// Replaces a schedule's layers; overrides in the body without an `id` are added.
#[utoipa::path(put, path = "/api/v1/schedules/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Schedule id")), request_body = crate::api::schemas::ScheduleInput,
    responses((status = 200, body = crate::api::schemas::ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn update_schedule(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let row = svc::update_schedule(&state, id, &body).await?;
    Ok(Json(schedule_view(&state, &row).await?))
}

/// Deletes a schedule.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    astore::spec_delete(state.store(), SpecTable::Schedules, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?at=` or `?since=&until=` (RFC 3339).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OnCallQuery {
    /// Who is on call at this instant.
    pub at: Option<String>,
    /// Start of the rendered range.
    pub since: Option<String>,
    /// End of the rendered range.
    pub until: Option<String>,
}

fn time_param(name: &str, v: &str) -> ApiResult<i64> {
    parse_rfc3339(v).map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))
}

/// Who is on call: `?at=` answers `{"user": {…} | null}`; `?since=&until=` answers the final
/// rendered spans `{"items": [{"user", "start", "end"}]}`.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/oncall", tag = "on-call", params(("id" = i64, Path, description = "Schedule id"), OnCallQuery),
    responses((status = 200, body = crate::api::schemas::OnCallAnswer), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn oncall(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<OnCallQuery>,
) -> ApiResult<Json<Value>> {
    match (&q.since, &q.until) {
        (Some(s), Some(u)) => {
            let (since, until) = (time_param("since", s)?, time_param("until", u)?);
            if until <= since {
                return Err(ApiError::BadRequest("until must be after since".into()));
            }
            if until - since > lookout_oncall::schedule::MAX_RENDER_MS {
                return Err(ApiError::BadRequest(
                    "since..until may span at most 366 days".into(),
                ));
            }
            let mut conn = state
                .store()
                .pool()
                .acquire()
                .await
                .map_err(StoreError::from)?;
            let s = engine::schedule_with_overrides(&mut conn, id, since, until)
                .await?
                .ok_or(ApiError::NotFound("schedule"))?;
            // Back to the pool before the names are read on another connection: holding one
            // while waiting for a second could take every connection of a small pool.
            drop(conn);
            let spans = s.render(since, until);
            let mut ids: Vec<i64> = spans.iter().map(|s| s.user).collect();
            ids.sort_unstable();
            ids.dedup();
            let users = astore::user_names(state.store(), &ids).await?;
            let out = spans
                .iter()
                .map(|s| {
                    let user = users
                        .iter()
                        .find(|u| u.0 == s.user)
                        .map(user_json)
                        .unwrap_or_else(|| json!({"id": s.user}));
                    json!({"user": user, "start": iso(s.start), "end": iso(s.end)})
                })
                .collect();
            Ok(items(out))
        }
        (None, None) => {
            let at = match &q.at {
                Some(t) => time_param("at", t)?,
                None => now_ms(),
            };
            astore::spec_get(state.store(), SpecTable::Schedules, id).await?;
            let mut conn = state
                .store()
                .pool()
                .acquire()
                .await
                .map_err(StoreError::from)?;
            let on_call = engine::on_call(&mut conn, id, at).await?;
            drop(conn);
            let user = match on_call {
                Some(u) => astore::user_names(state.store(), &[u])
                    .await?
                    .first()
                    .map(user_json),
                None => None,
            };
            Ok(Json(json!({"user": user, "at": iso(at)})))
        }
        _ => Err(ApiError::BadRequest(
            "give ?at=, or both ?since= and ?until=".into(),
        )),
    }
}

/// Lists a schedule's overrides (`?since=&until=`, default: from now on).
#[utoipa::path(get, path = "/api/v1/schedules/{id}/overrides", tag = "on-call",
    params(("id" = i64, Path, description = "Schedule id"), OnCallQuery), responses((status = 200, body = crate::api::schemas::OverrideList)))]
pub async fn list_overrides(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<OnCallQuery>,
) -> ApiResult<Json<Value>> {
    astore::spec_get(state.store(), SpecTable::Schedules, id).await?;
    let since = match &q.since {
        Some(s) => time_param("since", s)?,
        None => now_ms(),
    };
    let until = match &q.until {
        Some(u) => time_param("until", u)?,
        None => i64::MAX,
    };
    let rows = astore::overrides_between(state.store(), id, since, until).await?;
    Ok(items(
        rows.iter()
            .map(|o| {
                json!({"id": o.id, "user": o.user_id, "start": iso(o.starts_at),
                            "end": iso(o.ends_at)})
            })
            .collect(),
    ))
}

/// Adds an override `{"start", "end", "user"}`: that user is on call in between, above every
/// layer.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/overrides", tag = "on-call",
    params(("id" = i64, Path, description = "Schedule id")),
    request_body = crate::api::schemas::OverrideInput, responses((status = 201, body = crate::api::schemas::OverrideView), (status = 422, body = ErrorBody)))]
pub async fn create_override(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    astore::spec_get(state.store(), SpecTable::Schedules, id).await?;
    let o: lookout_oncall::Override =
        serde_json::from_value(body).map_err(|e| ApiError::Validation(format!("override: {e}")))?;
    let row = svc::add_override(&state, id, o.user, o.start, o.end).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": row.id, "user": row.user_id, "start": iso(row.starts_at),
                    "end": iso(row.ends_at)}),
        ),
    ))
}

/// Removes an override.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}/overrides/{override_id}", tag = "on-call",
    params(("id" = i64, Path, description = "Schedule id"), ("override_id" = i64, Path, description = "Override id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_override(
    State(state): State<AppState>,
    _who: Member,
    ApiPath((id, override_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    astore::override_delete(state.store(), id, override_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------- escalation policies

/// Lists escalation policies.
#[utoipa::path(get, path = "/api/v1/escalation-policies", tag = "on-call", params(TeamParam),
    responses((status = 200, body = crate::api::schemas::EscalationPolicyList)))]
pub async fn list_escalation_policies(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(team): ApiQuery<TeamParam>,
) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let rows = astore::spec_list(state.store(), SpecTable::EscalationPolicies, org.id).await?;
    let rows = filter_owned(&state, who.user_id(), &team, rows, |r| r.team_id).await?;
    Ok(items(rows.iter().map(spec_view).collect()))
}

/// Creates an escalation policy: `escalation_rules` (`escalation_delay_in_minutes`, `targets`
/// of `{"type": "user|schedule|channel", "id"}`), `num_loops`, `ack_timeout_minutes`
/// (default 30, 0 = off).
#[utoipa::path(post, path = "/api/v1/escalation-policies", tag = "on-call", request_body = crate::api::schemas::EscalationPolicyInput,
    responses((status = 201, body = crate::api::schemas::EscalationPolicyView), (status = 422, body = ErrorBody)))]
pub async fn create_escalation_policy(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let row = svc::create_escalation_policy(&state, &body).await?;
    Ok((StatusCode::CREATED, Json(spec_view(&row))))
}

/// One escalation policy.
#[utoipa::path(get, path = "/api/v1/escalation-policies/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Escalation policy id")),
    responses((status = 200, body = crate::api::schemas::EscalationPolicyView), (status = 404, body = ErrorBody)))]
pub async fn get_escalation_policy(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let row = astore::spec_get(state.store(), SpecTable::EscalationPolicies, id).await?;
    Ok(Json(spec_view(&row)))
}

/// Replaces an escalation policy (open incidents follow the new rules from their next step).
#[utoipa::path(put, path = "/api/v1/escalation-policies/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Escalation policy id")),
    request_body = crate::api::schemas::EscalationPolicyInput,
    responses((status = 200, body = crate::api::schemas::EscalationPolicyView), (status = 404, body = ErrorBody)))]
pub async fn update_escalation_policy(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let row = svc::update_escalation_policy(&state, id, &body).await?;
    Ok(Json(spec_view(&row)))
}

/// Deletes an escalation policy.
#[utoipa::path(delete, path = "/api/v1/escalation-policies/{id}", tag = "on-call",
    params(("id" = i64, Path, description = "Escalation policy id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_escalation_policy(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    astore::spec_delete(state.store(), SpecTable::EscalationPolicies, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a user's display name `{"name"}` (shown in on-call answers and the UI).
#[utoipa::path(put, path = "/api/v1/users/{id}/name", tag = "on-call",
    params(("id" = i64, Path, description = "User id")), request_body = crate::api::schemas::UserNameInput,
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn set_user_name(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    if who.user_id() != Some(id) {
        who.require(Role::Admin)?;
    }
    let name = body.get("name").and_then(Value::as_str).map(str::trim);
    astore::set_user_name(state.store(), id, name.filter(|n| !n.is_empty())).await?;
    Ok(StatusCode::NO_CONTENT)
}
