//! Two-factor sign-in over the API: one's own enrolment (`/api/v1/me/totp…`), the admin's
//! requirement for one user (`PUT /api/v1/users/{id}/totp-required`) or everyone
//! (`/api/v1/settings/security`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::account::own_id;
use crate::auth::{Admin, Caller, ClientAddr, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::tenancy::totp::{self, Enrolment, SecuritySettings, Status};
use lookout_store::{identity, mfa, tenancy};

/// One's own second-factor status.
#[utoipa::path(get, operation_id = "me_totp", path = "/api/v1/me/totp", tag = "users",
    responses((status = 200, body = Status), (status = 422, body = ErrorBody)))]
pub async fn get_status(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Status>> {
    let id = own_id(&who)?;
    Ok(Json(totp::status(&state, id).await?))
}

/// The signed-in user behind a session: enrolment is refused to API tokens, which a leaked
/// token must not be able to turn into the owner's second factor.
async fn session_user(
    state: &AppState,
    who: &Principal,
) -> ApiResult<lookout_store::tenancy::User> {
    match &who.caller {
        Caller::Session(s) => Ok(tenancy::get_user(state.store(), s.user.id).await?),
        Caller::Token(_) => Err(ApiError::Validation(
            "two-factor enrolment needs a signed-in session, not an API token".into(),
        )),
    }
}

/// What starting enrolment needs.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BeginBody {
    /// The account's current password.
    pub password: String,
    /// When two-factor sign-in is on already: a current code from the enrolled app (this sets
    /// up a new device in its place).
    #[serde(default)]
    pub code: Option<String>,
}

/// Starts enrolment (a signed-in session, not a token; the current password, and a current code
/// when a device is enrolled already): a new seed, its `otpauth://` URL and QR code. Confirm
/// with a code.
#[utoipa::path(post, operation_id = "me_totp_begin", path = "/api/v1/me/totp", tag = "users",
    request_body = BeginBody,
    responses((status = 201, body = Enrolment), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn begin(
    State(state): State<AppState>,
    who: Principal,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<BeginBody>,
) -> ApiResult<(StatusCode, Json<Enrolment>)> {
    let user = session_user(&state, &who).await?;
    match totp::begin_proven(&state, &user, &body.password, body.code.as_deref(), client).await {
        Ok(en) => Ok((StatusCode::CREATED, Json(en))),
        Err(totp::BeginRefused::Throttled(s)) => Err(ApiError::Unavailable(format!(
            "too many wrong passwords or codes: try again in {s} s"
        ))),
        Err(totp::BeginRefused::Service(e)) => Err(e.into()),
    }
}

/// Clears a user's two-factor sign-in (admin; for a lost phone and lost recovery codes). If it
/// is required of them they enrol again at their next sign-in.
#[utoipa::path(delete, operation_id = "users_totp_clear", path = "/api/v1/users/{id}/totp", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn clear(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    tenancy::get_user(state.store(), id)
        .await
        .map_err(crate::api::not_found("user"))?;
    totp::clear_for(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeBody {
    /// Six digits.
    pub code: String,
}

/// The recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes for when the phone is lost.
    pub recovery_codes: Vec<String>,
}

/// Confirms enrolment with a current code; answers ten recovery codes (shown only here).
#[utoipa::path(post, operation_id = "me_totp_confirm", path = "/api/v1/me/totp/confirm", tag = "users",
    request_body = CodeBody,
    responses((status = 200, body = RecoveryCodes), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn confirm(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<CodeBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let user = session_user(&state, &who).await?;
    let recovery_codes = totp::confirm(&state, &user, &body.code).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// The password, to turn the second factor off.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordBody {
    /// The account's password.
    pub password: String,
}

/// Turns one's second factor off (the password again; refused while it is required). A wrong
/// password counts as a failed login.
#[utoipa::path(post, operation_id = "me_totp_disable", path = "/api/v1/me/totp/disable", tag = "users",
    request_body = PasswordBody,
    responses((status = 204), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn disable(
    State(state): State<AppState>,
    who: Principal,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    let user = tenancy::get_user(state.store(), own_id(&who)?).await?;
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
    if !identity::password_matches(state.store(), user.id, &body.password).await? {
        state
            .login_throttle()
            .failed_shared(&user.email, client, lookout_core::time::now_ms())
            .await;
        return Err(ApiError::Validation("password is not your password".into()));
    }
    state
        .login_throttle()
        .succeeded_shared(&user.email, client)
        .await;
    totp::disable(&state, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a user must sign in with a second factor.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Requirement {
    /// Required of this user.
    pub required: bool,
}

/// Requires (or stops requiring) a second factor of one user (admin). Without one set up, they
/// enrol at their next sign-in.
#[utoipa::path(put, operation_id = "users_totp_required", path = "/api/v1/users/{id}/totp-required", tag = "users",
    params(("id" = i64, Path, description = "User id")), request_body = Requirement,
    responses((status = 200, body = Requirement), (status = 404, body = ErrorBody)))]
pub async fn set_required(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Requirement>,
) -> ApiResult<Json<Requirement>> {
    mfa::set_required(state.store(), id, body.required)
        .await
        .map_err(crate::api::not_found("user"))?;
    tracing::info!(
        user = id,
        required = body.required,
        "Two-factor requirement changed."
    );
    Ok(Json(Requirement {
        required: mfa::required_for(state.store(), id).await?,
    }))
}

/// The installation's sign-in rules (admin).
#[utoipa::path(get, operation_id = "security_settings_get", path = "/api/v1/settings/security", tag = "users",
    responses((status = 200, body = SecuritySettings), (status = 403, body = ErrorBody)))]
pub async fn get_security(
    State(state): State<AppState>,
    _who: Admin,
) -> ApiResult<Json<SecuritySettings>> {
    Ok(Json(totp::security(&state).await?))
}

/// Sets the installation's sign-in rules (admin); answers them.
#[utoipa::path(put, operation_id = "security_settings_put", path = "/api/v1/settings/security", tag = "users",
    request_body = SecuritySettings,
    responses((status = 200, body = SecuritySettings), (status = 403, body = ErrorBody)))]
pub async fn put_security(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<SecuritySettings>,
) -> ApiResult<Json<SecuritySettings>> {
    totp::save_security(&state, &body).await?;
    tracing::info!(require_totp = body.require_totp, "Sign-in rules changed.");
    Ok(Json(totp::security(&state).await?))
}
