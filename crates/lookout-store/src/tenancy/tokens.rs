//! API tokens: stored as the SHA-256 of the secret (random, so that suffices), shown once at
//! creation; their use is recorded at most once a minute; a revoked token stops working at once.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::page::{Cursor, Page};
use crate::{Result, Store, StoreError};
use lookout_core::secret::{self, hash_token};
use lookout_core::time::now_ms;
use lookout_core::Role;

use super::role_of;

/// An API token's metadata (its secret is shown once, at creation, and never stored).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    /// Numeric id.
    pub id: i64,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The user it was made by, if any (bootstrap and CLI tokens have none).
    pub user_id: Option<i64>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last used, ms since the epoch (updated at most once a minute).
    pub last_used_at: Option<i64>,
}

const TOKEN_COLUMNS: &str = "id, name, role, user_id, created_at, last_used_at";

fn token_from_row(r: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: role_of(r, "role")?,
        user_id: r.try_get("user_id")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

/// Stores a token whose secret the caller chose (bootstrap) or made; returns its metadata.
async fn insert_token(
    store: &Store,
    secret_value: &str,
    name: &str,
    role: Role,
    user_id: Option<i64>,
) -> Result<ApiToken> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO api_tokens (token_hash, name, role, user_id, created_at) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(hash_token(secret_value))
    .bind(name)
    .bind(role.as_str())
    .bind(user_id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("this token"))?
    .try_get("id")?;
    crate::commit_audited(tx).await?;
    Ok(ApiToken {
        id,
        name: name.to_string(),
        role,
        user_id,
        created_at: now,
        last_used_at: None,
    })
}

/// Creates a token; returns the secret (shown once) and its metadata.
pub async fn create_token(
    store: &Store,
    name: &str,
    role: Role,
    user_id: Option<i64>,
) -> Result<(String, ApiToken)> {
    let value = secret::new_api_token();
    let token = insert_token(store, &value, name, role, user_id).await?;
    Ok((value, token))
}

/// Ensures a token with exactly this secret exists (`LOOKOUT_BOOTSTRAP_TOKEN`); true if created.
pub async fn ensure_token(store: &Store, value: &str, name: &str, role: Role) -> Result<bool> {
    if token_for_secret(store, value).await?.is_some() {
        return Ok(false);
    }
    match insert_token(store, value, name, role, None).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The live token with this secret, if any; records its use (at most once a minute).
pub async fn token_for_secret(store: &Store, value: &str) -> Result<Option<ApiToken>> {
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
    ))
    .bind(hash_token(value))
    .fetch_optional(store.pool())
    .await?;
    let Some(token) = row.as_ref().map(token_from_row).transpose()? else {
        return Ok(None);
    };
    let now = now_ms();
    if token.last_used_at.is_none_or(|t| now - t > 60_000) {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(token.id)
            .execute(store.pool())
            .await?;
    }
    Ok(Some(token))
}

/// Live tokens in id order, all of them or one user's.
pub async fn list_tokens(
    store: &Store,
    user_id: Option<i64>,
    cursor: &Cursor,
) -> Result<Page<ApiToken>> {
    let limit = cursor.limit();
    let rows = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens
         WHERE revoked_at IS NULL AND id > $1 AND ($2 IS NULL OR user_id = $2) ORDER BY id LIMIT $3"
    ))
    .bind(cursor.after_i64()?.unwrap_or(0))
    .bind(user_id)
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    Page::try_from_rows(&rows, limit, token_from_row, |t| t.id.to_string())
}

/// One live token by id.
pub async fn get_token(store: &Store, id: i64) -> Result<ApiToken> {
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1 AND revoked_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    token_from_row(&row)
}

/// Revokes a token; it stops working at once.
pub async fn revoke_token(store: &Store, id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n =
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await
}
