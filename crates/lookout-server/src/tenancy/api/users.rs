//! `/api/v1/users` and `/api/v1/me`: who can log in, and who is calling.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{page_of, ListParams};
use crate::auth::{Admin, Caller, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::tenancy::links::{self, validate_name};
use crate::tenancy::service::{validate_email, validate_new_user};
use lookout_core::Role;
use lookout_store::tenancy::{self, User};
use lookout_store::StoreError;

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Numeric id.
    pub id: i64,
    /// Login email.
    pub email: String,
    /// Display name, if set.
    pub name: Option<String>,
    /// `viewer`, `member` or `admin`.
    #[schema(value_type = String)]
    pub role: Role,
    /// `active`, or `invited` until the invitation is accepted.
    pub status: &'static str,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            status: u.status(),
            email: u.email,
            name: u.name,
            role: u.role,
            created_at: iso(u.created_at),
        }
    }
}

/// A user just created: as [`UserView`], with the invitation link for an invited user (only in
/// this answer, to the admin who made it).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    /// Numeric id.
    pub id: i64,
    /// Login email.
    pub email: String,
    /// Display name, if set.
    pub name: Option<String>,
    /// `viewer`, `member` or `admin`.
    #[schema(value_type = String)]
    pub role: Role,
    /// `invited` (no password given) or `active`.
    pub status: &'static str,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// The single-use invitation link (invited users only), valid 7 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_url: Option<String>,
    /// Whether the link was emailed through the server's SMTP settings (invited users only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_emailed: Option<bool>,
}

page_of!(UserPage, UserView);

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// Login email.
    pub email: String,
    /// Display name (1 to 100 characters).
    pub name: Option<String>,
    /// At least 8 characters. Without one the user is invited: a single-use link is emailed and
    /// returned as `invite_url`, and they choose their password there.
    pub password: Option<String>,
    /// `viewer`, `member` (default) or `admin`.
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
}

/// Who is calling.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `session` or `token`.
    pub auth: &'static str,
    /// The effective role.
    #[schema(value_type = String)]
    pub role: Role,
    /// The user, for sessions and user-owned tokens.
    pub user: Option<UserView>,
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Me>> {
    let user = match who.user_id() {
        Some(id) => Some(tenancy::get_user(state.store(), id).await?.into()),
        None => None,
    };
    let auth = match who.caller {
        Caller::Token(_) => "token",
        Caller::Session(_) => "session",
    };
    Ok(Json(Me {
        auth,
        role: who.role(),
        user,
    }))
}

/// Lists users (admin).
#[utoipa::path(get, operation_id = "users_list", path = "/api/v1/users", tag = "users", params(ListParams),
    responses((status = 200, body = UserPage), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Admin,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<UserPage>> {
    let page = tenancy::list_users(state.store(), &q.cursor()).await?;
    Ok(Json(page.map(UserView::from).into()))
}

/// Creates a user (admin): with a password, an active user; without one, an invited user whose
/// invitation link is emailed and returned once as `invite_url`.
#[utoipa::path(post, operation_id = "users_create", path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = CreatedUser), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Admin,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    let role = body.role.unwrap_or(Role::Member);
    let name = body.name.as_deref().map(validate_name).transpose()?;
    let (u, sent) = match body.password.as_deref() {
        Some(password) => {
            validate_new_user(&body.email, password)?;
            let mut u = tenancy::create_user(state.store(), &body.email, password, role).await?;
            if let Some(n) = &name {
                lookout_store::alerting::set_user_name(state.store(), u.id, Some(n)).await?;
                u.name = Some(n.clone());
            }
            tracing::info!(user = u.id, role = %u.role, "User created.");
            (u, None)
        }
        None => {
            validate_email(&body.email)?;
            let (u, sent) =
                links::invite(&state, &body.email, name.as_deref(), role, who.user_id()).await?;
            (u, Some(sent))
        }
    };
    let v = UserView::from(u);
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            id: v.id,
            email: v.email,
            name: v.name,
            role: v.role,
            status: v.status,
            created_at: v.created_at,
            invite_emailed: sent.as_ref().map(|s| s.emailed),
            invite_url: sent.map(|s| s.url),
        }),
    ))
}

/// Shows a user (admin, or the user themself).
#[utoipa::path(get, operation_id = "users_get_one", path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<UserView>> {
    if who.user_id() != Some(id) {
        who.require(Role::Admin)?;
    }
    match tenancy::get_user(state.store(), id).await {
        Ok(u) => Ok(Json(u.into())),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("user")),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a user with their sessions and tokens (admin; not yourself, not the last admin).
#[utoipa::path(delete, operation_id = "users_delete", path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    if who.user_id() == Some(id) {
        return Err(ApiError::Validation("you cannot delete yourself".into()));
    }
    match tenancy::delete_user(state.store(), id).await {
        Ok(tenancy::UserDeletion::Deleted) => {
            tracing::info!(user = id, "User deleted.");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(tenancy::UserDeletion::LastAdmin) => {
            tracing::info!(user = id, "Refused to delete the last administrator.");
            Err(ApiError::Conflict(
                "this is the last administrator: make another user an admin first".into(),
            ))
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("user")),
        Err(e) => Err(e.into()),
    }
}
