//! `/api/v1/tokens`: API tokens. The secret is shown once, in the creation answer.
//!
//! Admins see and revoke every token; others see and revoke their own, and cannot mint a token
//! more powerful than themselves.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{page_of, ListParams};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_core::Role;
use lookout_store::tenancy::{self, ApiToken};
use lookout_store::StoreError;

/// A token's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Numeric id.
    pub id: i64,
    /// What it is for.
    pub name: String,
    /// What it may do.
    #[schema(value_type = String)]
    pub role: Role,
    /// The user who made it, if any.
    pub user_id: Option<i64>,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Last use, RFC 3339 (updated at most once a minute).
    pub last_used_at: Option<String>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            role: t.role,
            user_id: t.user_id,
            created_at: iso(t.created_at),
            last_used_at: t.last_used_at.map(iso),
        }
    }
}

page_of!(TokenPage, TokenView);

/// A new token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewToken {
    /// What it is for, 1 to 100 characters.
    pub name: String,
    /// Its role; default and maximum: the caller's role.
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
}

/// A token just made: its metadata and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The metadata.
    #[serde(flatten)]
    pub meta: TokenView,
    /// The secret to send as `Authorization: Bearer <token>`. Not shown again.
    pub token: String,
}

/// Lists tokens (all for admins, your own otherwise).
#[utoipa::path(get, operation_id = "tokens_list", path = "/api/v1/tokens", tag = "tokens", params(ListParams),
    responses((status = 200, body = TokenPage)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<TokenPage>> {
    let owner = if who.role() == Role::Admin {
        None
    } else {
        Some(who.user_id().unwrap_or(-1))
    };
    let page = tenancy::list_tokens(state.store(), owner, &q.cursor()).await?;
    Ok(Json(page.map(TokenView::from).into()))
}

/// Creates a token.
#[utoipa::path(post, operation_id = "tokens_create", path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::Validation(
            "name must be 1 to 100 characters".into(),
        ));
    }
    let role = body.role.unwrap_or(who.role());
    who.require(role)?;
    let (secret, meta) = tenancy::create_token(state.store(), name, role, who.user_id()).await?;
    tracing::info!(token = meta.id, role = %role, "API token created.");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            meta: meta.into(),
            token: secret,
        }),
    ))
}

/// Revokes a token (admins: any; others: their own).
#[utoipa::path(delete, operation_id = "tokens_delete", path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let token = match tenancy::get_token(state.store(), id).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("token")),
        Err(e) => return Err(e.into()),
    };
    // Someone else's token is "not found" to a non-admin: its existence is not theirs to know.
    let own = token.user_id.is_some() && token.user_id == who.user_id();
    if who.role() != Role::Admin && !own {
        return Err(ApiError::NotFound("token"));
    }
    tenancy::revoke_token(state.store(), id).await?;
    tracing::info!(token = id, "API token revoked.");
    Ok(StatusCode::NO_CONTENT)
}
