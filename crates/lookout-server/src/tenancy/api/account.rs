//! `/api/v1/me/…` and `/api/v1/password-reset`: a user's own name, password and sessions, and
//! the forgotten-password email. Every role may manage their own account; nobody else's.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::users::UserView;
use crate::auth::{cookie, Caller, ClientAddr, Principal, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath};
use crate::state::AppState;
use crate::tenancy::links::{self, validate_name, validate_password};
use lookout_core::secret::hash_token;
use lookout_store::identity;
use lookout_store::tenancy;

/// The user behind the call, or 422 for tokens that belong to no user.
pub(super) fn own_id(who: &Principal) -> ApiResult<i64> {
    who.user_id().ok_or_else(|| {
        ApiError::Validation("this token belongs to no user: use a user's session or token".into())
    })
}

/// The cookie value of the calling session, if the call came from one.
fn own_session<'a>(who: &Principal, headers: &'a HeaderMap) -> Option<&'a str> {
    match who.caller {
        Caller::Session(_) => cookie(headers, SESSION_COOKIE),
        Caller::Token(_) => None,
    }
}

/// Changes to one's own profile.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileChanges {
    /// Display name (1 to 100 characters).
    pub name: String,
}

/// Changes one's own display name; answers the user.
#[utoipa::path(patch, operation_id = "me_update", path = "/api/v1/me", tag = "users", request_body = ProfileChanges,
    responses((status = 200, body = UserView), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<ProfileChanges>,
) -> ApiResult<Json<UserView>> {
    let id = own_id(&who)?;
    let name = validate_name(&body.name)?;
    lookout_store::alerting::set_user_name(state.store(), id, Some(&name)).await?;
    Ok(Json(tenancy::get_user(state.store(), id).await?.into()))
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The new one, at least 8 characters.
    pub new_password: String,
}

/// Changes one's own password; every other session of the user ends (the calling one stays).
/// A wrong current password counts as a failed login.
#[utoipa::path(post, operation_id = "me_password", path = "/api/v1/me/password", tag = "users", request_body = PasswordChange,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    who: Principal,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let id = own_id(&who)?;
    validate_password(&body.new_password)?;
    let user = tenancy::get_user(state.store(), id).await?;
    let now = lookout_core::time::now_ms();
    if let Err(wait_ms) = state
        .login_throttle()
        .begin_shared(&user.email, client, now)
        .await
    {
        return Err(ApiError::Unavailable(format!(
            "too many wrong passwords: try again in {} s",
            (wait_ms + 999) / 1000
        )));
    }
    if !identity::password_matches(state.store(), id, &body.current_password).await? {
        state
            .login_throttle()
            .failed_shared(&user.email, client, lookout_core::time::now_ms())
            .await;
        tracing::info!(
            user = id,
            "Password change refused: wrong current password."
        );
        return Err(ApiError::Validation(
            "current_password is not your password".into(),
        ));
    }
    state
        .login_throttle()
        .succeeded_shared(&user.email, client)
        .await;
    identity::change_password(
        state.store(),
        id,
        &body.new_password,
        own_session(&who, &headers),
    )
    .await?;
    tracing::info!(user = id, "Password changed; other sessions ended.");
    Ok(StatusCode::NO_CONTENT)
}

/// One of the caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Id, for `DELETE /api/v1/me/sessions/{id}`.
    pub id: String,
    /// Started, RFC 3339.
    pub created_at: String,
    /// Ends, RFC 3339.
    pub expires_at: String,
    /// This is the session making the call.
    pub current: bool,
}

/// The caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Live sessions, newest first.
    pub items: Vec<SessionView>,
}

/// Lists one's own live sessions.
#[utoipa::path(get, operation_id = "me_sessions", path = "/api/v1/me/sessions", tag = "users",
    responses((status = 200, body = SessionList), (status = 422, body = ErrorBody)))]
pub async fn sessions(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
) -> ApiResult<Json<SessionList>> {
    let id = own_id(&who)?;
    let current = own_session(&who, &headers).map(hash_token);
    let items = identity::list_sessions(state.store(), id)
        .await?
        .into_iter()
        .map(|s| SessionView {
            current: current.as_deref() == Some(s.id.as_str()),
            id: s.id,
            created_at: iso(s.created_at),
            expires_at: iso(s.expires_at),
        })
        .collect();
    Ok(Json(SessionList { items }))
}

/// Ends one of one's own sessions (404 for anyone else's).
#[utoipa::path(delete, operation_id = "me_sessions_delete", path = "/api/v1/me/sessions/{id}", tag = "users",
    params(("id" = String, Path, description = "Session id from the list")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(sid): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let id = own_id(&who)?;
    identity::revoke_session(state.store(), id, &sid)
        .await
        .map_err(crate::api::not_found("session"))?;
    tracing::info!(user = id, "Session ended by its user.");
    Ok(StatusCode::NO_CONTENT)
}

/// A forgotten password.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    /// The account's email.
    pub email: String,
}

/// The same answer whether or not the address has an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetAccepted {
    /// What happens next.
    pub message: &'static str,
}

/// What every reset request is told.
pub const RESET_MESSAGE: &str =
    "If an account uses this address, a link to choose a new password was emailed to it. It works for an hour.";

/// Emails a password-reset link if an account uses this address. No sign-in needed; the answer
/// is the same for every address, so it does not tell who has an account.
#[utoipa::path(post, operation_id = "password_reset", path = "/api/v1/password-reset", tag = "users", request_body = ResetRequest,
    responses((status = 202, body = ResetAccepted), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn request_reset(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<ResetRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if let Some(wait_s) = state
        .reset_requests()
        .admit_shared(client, lookout_core::time::now_ms())
        .await
    {
        tracing::warn!(client = ?client, "Password reset refused: too many requests from this address.");
        let body = crate::error::ErrorBody {
            error: crate::error::ErrorDetail {
                code: "too_many_requests",
                message: format!(
                    "too many reset requests from this address: try again in {wait_s} s"
                ),
            },
        };
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::RETRY_AFTER, wait_s.to_string())],
            Json(body),
        )
            .into_response());
    }
    if body.email.len() <= 254 {
        links::request_reset(&state, &body.email);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetAccepted {
            message: RESET_MESSAGE,
        }),
    )
        .into_response())
}
