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
use crate::tenancy::service::validate_new_user;
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
    /// `viewer`, `member` or `admin`.
    #[schema(value_type = String)]
    pub role: Role,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            role: u.role,
            created_at: iso(u.created_at),
        }
    }
}

page_of!(UserPage, UserView);

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// Login email.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
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

/// Creates a user (admin).
#[utoipa::path(post, operation_id = "users_create", path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    validate_new_user(&body.email, &body.password)?;
    let role = body.role.unwrap_or(Role::Member);
    let u = tenancy::create_user(state.store(), &body.email, &body.password, role).await?;
    tracing::info!(user = u.id, role = %u.role, "User created.");
    Ok((StatusCode::CREATED, Json(u.into())))
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
