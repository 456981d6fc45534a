//! Two-factor sign-in: each user's TOTP seed (sealed by the server before it gets here), whether
//! it is confirmed, the newest accepted time step (so a code works once), single-use recovery
//! codes (SHA-256 only), and whether an admin requires it of the user.

use sqlx::Row;

use crate::row::RowExt;
use crate::{Result, Store, StoreError};
use lookout_core::secret::hash_token;
use lookout_core::time::now_ms;

/// A user's second factor as stored.
#[derive(Debug, Clone)]
pub struct Totp {
    /// The seed, sealed.
    pub secret: String,
    /// Confirmed with a right code: asked at sign-in.
    pub confirmed: bool,
    /// The newest 30-second step accepted.
    pub last_step: i64,
}

/// The user's TOTP row, if any (confirmed or being enrolled).
pub async fn totp(store: &Store, user_id: i64) -> Result<Option<Totp>> {
    let row =
        sqlx::query("SELECT secret, confirmed_at, last_step FROM user_totp WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(store.pool())
            .await?;
    row.map(|r| {
        Ok(Totp {
            secret: r.try_get("secret")?,
            confirmed: r.try_get::<Option<i64>, _>("confirmed_at")?.is_some(),
            last_step: r.try_get("last_step")?,
        })
    })
    .transpose()
}

/// Starts (or restarts) enrolment with a new sealed seed. Conflict if a confirmed one exists
/// (turn it off first).
pub async fn begin_enrolment(store: &Store, user_id: i64, sealed_secret: &str) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let confirmed = sqlx::query(
        "SELECT 1 AS one FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL",
    )
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?
    .is_some();
    if confirmed {
        return Err(StoreError::Conflict("two-factor sign-in".into()));
    }
    sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO user_totp (user_id, secret, created_at) VALUES ($1, $2, $3)")
        .bind(user_id)
        .bind(sealed_secret)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Confirms enrolment after a right code for `step`, replacing the recovery codes with these,
/// in one transaction. False if there was no enrolment under way.
pub async fn confirm(store: &Store, user_id: i64, step: i64, codes: &[String]) -> Result<bool> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE user_totp SET confirmed_at = $1, last_step = $2
         WHERE user_id = $3 AND confirmed_at IS NULL",
    )
    .bind(now_ms())
    .bind(step)
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for c in codes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(user_id)
            .bind(hash_token(c))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Accepts a right code for `step` if no code for this or a later step was accepted before;
/// false for a replay.
pub async fn accept_step(store: &Store, user_id: i64, step: i64) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE user_totp SET last_step = $1
         WHERE user_id = $2 AND confirmed_at IS NOT NULL AND last_step < $1",
    )
    .bind(step)
    .bind(user_id)
    .execute(store.pool())
    .await?
    .rows_affected()
        == 1)
}

/// Spends a recovery code; false if it is not one of the user's unused codes.
pub async fn use_recovery_code(store: &Store, user_id: i64, code: &str) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id)
    .bind(hash_token(code))
    .execute(store.pool())
    .await?
    .rows_affected()
        == 1)
}

/// How many unused recovery codes the user has.
pub async fn recovery_codes_left(store: &Store, user_id: i64) -> Result<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(store.pool())
    .await?
    .try_get("n")?)
}

/// Turns two-factor sign-in off for the user (seed and recovery codes deleted).
pub async fn disable(store: &Store, user_id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    crate::commit_audited(tx).await?;
    Ok(())
}

/// Whether an admin requires two-factor sign-in of this user.
pub async fn required_for(store: &Store, user_id: i64) -> Result<bool> {
    sqlx::query("SELECT totp_required FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound)?
        .flag("totp_required")
}

/// Requires (or stops requiring) two-factor sign-in of a user.
pub async fn set_required(store: &Store, user_id: i64, required: bool) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("UPDATE users SET totp_required = $1 WHERE id = $2")
        .bind(i64::from(required))
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await
}

/// The ids of users an admin required two-factor sign-in of, and of users who have it on:
/// `(required, enabled)`, for the users list.
pub async fn user_flags(store: &Store) -> Result<(Vec<i64>, Vec<i64>)> {
    let required = sqlx::query_scalar("SELECT id FROM users WHERE totp_required <> 0 ORDER BY id")
        .fetch_all(store.pool())
        .await?;
    let enabled = sqlx::query_scalar(
        "SELECT user_id FROM user_totp WHERE confirmed_at IS NOT NULL ORDER BY user_id",
    )
    .fetch_all(store.pool())
    .await?;
    Ok((required, enabled))
}
