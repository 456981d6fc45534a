//! `/api/v1/me/notification-rules` and `/api/v1/users/{id}/notification-rules` (admin): a
//! user's notification rules per urgency (see `alerting::notification_rules`).

use axum::extract::State;
use axum::Json;

use crate::alerting::notification_rules::{self as svc, RulesView};
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

fn own_user(who: &Principal) -> ApiResult<i64> {
    who.user_id().ok_or_else(|| {
        ApiError::Validation(
            "this needs a user: sign in, or use a token that belongs to a user".into(),
        )
    })
}

/// The caller's notification rules: per urgency, contact methods in order with their delays
/// (an empty list: every contact method for that urgency at once).
#[utoipa::path(get, path = "/api/v1/me/notification-rules", tag = "on-call",
    responses((status = 200, body = RulesView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_mine(State(state): State<AppState>, who: Principal) -> ApiResult<Json<RulesView>> {
    Ok(Json(svc::get(&state, own_user(&who)?).await?))
}

/// Replaces the caller's rules for the urgencies in the body (`{"high": [{"channel_id",
/// "delay_minutes"}], "low": []}`; an absent urgency is kept, an empty list goes back to every
/// contact method at once).
#[utoipa::path(put, path = "/api/v1/me/notification-rules", tag = "on-call", request_body = RulesView,
    responses((status = 200, body = RulesView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_mine(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<RulesView>,
) -> ApiResult<Json<RulesView>> {
    Ok(Json(svc::set(&state, own_user(&who)?, &body).await?))
}

/// A user's notification rules (admin).
#[utoipa::path(get, path = "/api/v1/users/{id}/notification-rules", tag = "on-call",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = RulesView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RulesView>> {
    Ok(Json(svc::get(&state, id).await?))
}

/// Replaces a user's notification rules (admin), as `PUT /api/v1/me/notification-rules`.
#[utoipa::path(put, path = "/api/v1/users/{id}/notification-rules", tag = "on-call",
    params(("id" = i64, Path, description = "User id")), request_body = RulesView,
    responses((status = 200, body = RulesView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn put_user(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RulesView>,
) -> ApiResult<Json<RulesView>> {
    Ok(Json(svc::set(&state, id, &body).await?))
}
