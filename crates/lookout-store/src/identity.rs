//! Accounts beyond the login form: invited users and their invitation links, password-reset
//! links, changing one's password and name, one's own sessions, and installation-wide settings
//! (the SMTP server account mail goes through).
//!
//! Links are single use and expiring. Only a SHA-256 of a link's secret is kept (the server
//! makes and signs the secret; see `lookout-server`'s `tenancy::links`); using a link marks it
//! used in the same transaction as what it does, with a conditional UPDATE, so two tabs
//! submitting the same link cannot both succeed.

use serde_json::{json, Value as Json};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::events;
use crate::row::RowExt;
use crate::tenancy::{user_from_row, User, USER_COLUMNS};
use crate::{Result, Store, StoreError};
use lookout_core::secret::{hash_password, hash_token, verify_password};
use lookout_core::time::now_ms;
use lookout_core::Role;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Joining: the invitee sets a name and password.
    Invite,
    /// A forgotten password: the user sets a new one.
    Reset,
}

impl LinkPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Invite => "invite",
            LinkPurpose::Reset => "reset",
        }
    }
}

/// A pending invitation: the invited user and their newest link.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// The invited user (status `invited`).
    pub user: User,
    /// The admin who sent the newest link, if still a user.
    pub invited_by: Option<i64>,
    /// When the newest link was made, ms.
    pub sent_at: i64,
    /// When it stops working, ms.
    pub expires_at: i64,
}

/// Hashes a password off the async workers (argon2id takes tens of milliseconds of CPU).
async fn hash_off_thread(password: &str) -> Result<String> {
    let _turn = crate::tenancy::argon2_turn().await;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

async fn insert_link(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    purpose: LinkPurpose,
    user_id: i64,
    created_by: Option<i64>,
    secret: &str,
    expires_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO account_links (purpose, user_id, token_hash, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(purpose.as_str())
    .bind(user_id)
    .bind(hash_token(secret))
    .bind(created_by)
    .bind(now_ms())
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates an invited user (no password; cannot sign in) with a link whose secret is `secret`,
/// and publishes `user.created`, in one transaction.
pub async fn invite_user(
    store: &Store,
    email: &str,
    name: Option<&str>,
    role: Role,
    created_by: Option<i64>,
    secret: &str,
    expires_at: i64,
) -> Result<User> {
    let email = email.trim().to_lowercase();
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO users (email, name, password_hash, role, status, created_at)
         VALUES ($1, $2, '', $3, 'invited', $4) RETURNING id",
    )
    .bind(&email)
    .bind(name)
    .bind(role.as_str())
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a user with this email"))?
    .try_get("id")?;
    insert_link(
        &mut tx,
        LinkPurpose::Invite,
        id,
        created_by,
        secret,
        expires_at,
    )
    .await?;
    let event = events::publish(
        "user.created",
        None,
        Some(id.to_string()),
        &json!({ "email": email, "role": role, "status": "invited" }),
    );
    events::publish_in_tx(store, &mut tx, &[event]).await?;
    crate::commit_audited(tx).await?;
    Ok(User {
        id,
        email,
        name: name.map(str::to_string),
        role,
        invited: true,
        created_at: now,
    })
}

fn invitation_from_row(r: &AnyRow) -> Result<Invitation> {
    Ok(Invitation {
        user: user_from_row(r)?,
        invited_by: r.try_get("invited_by")?,
        sent_at: r.try_get("sent_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Invited users who have not joined, newest first, each with their newest link (expired ones
/// included: the admin sees it expired and resends).
pub async fn pending_invitations(store: &Store) -> Result<Vec<Invitation>> {
    let rows = sqlx::query(&format!(
        "SELECT {cols}, l.created_by AS invited_by, l.created_at AS sent_at, l.expires_at AS expires_at
         FROM users u JOIN account_links l ON l.id = (
             SELECT MAX(l2.id) FROM account_links l2 WHERE l2.user_id = u.id AND l2.purpose = 'invite')
         WHERE u.status = 'invited' ORDER BY u.id DESC LIMIT 1000",
        cols = prefixed_user_columns("u")
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(invitation_from_row).collect()
}

/// One pending invitation by the invited user's id.
pub async fn invitation(store: &Store, user_id: i64) -> Result<Invitation> {
    pending_invitations(store)
        .await?
        .into_iter()
        .find(|i| i.user.id == user_id)
        .ok_or(StoreError::NotFound)
}

fn prefixed_user_columns(alias: &str) -> String {
    USER_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c} AS {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Replaces a user's live links of `purpose` with a new one whose secret is `secret` (the old
/// ones stop working at once). For invitations the user must still be invited (else NotFound).
pub async fn renew_link(
    store: &Store,
    purpose: LinkPurpose,
    user_id: i64,
    created_by: Option<i64>,
    secret: &str,
    expires_at: i64,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    // The user's row locked (PostgreSQL; SQLite's write transactions are serial already) so two
    // concurrent resends take turns: the second revokes the first's link, never both live.
    let status: Option<String> = sqlx::query(&format!(
        "SELECT status FROM users WHERE id = $1{}",
        crate::dialect::for_update(store.backend())
    ))
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get("status"))
    .transpose()?;
    match (purpose, status.as_deref()) {
        (_, None) => return Err(StoreError::NotFound),
        (LinkPurpose::Invite, Some(s)) if s != "invited" => return Err(StoreError::NotFound),
        (LinkPurpose::Reset, Some(s)) if s != "active" => return Err(StoreError::NotFound),
        _ => {}
    }
    sqlx::query(
        "UPDATE account_links SET revoked_at = $1
         WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id)
    .bind(purpose.as_str())
    .execute(&mut *tx)
    .await?;
    insert_link(&mut tx, purpose, user_id, created_by, secret, expires_at).await?;
    crate::commit_audited(tx).await?;
    Ok(())
}

/// Withdraws an invitation: the invited user (who never joined) is deleted with their links.
/// NotFound if there is no such invited user (joined users are deleted as users).
pub async fn revoke_invitation(store: &Store, user_id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("DELETE FROM users WHERE id = $1 AND status = 'invited'")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await
}

/// The user a live link of `purpose` with this secret belongs to (to show its form).
pub async fn link_user(store: &Store, purpose: LinkPurpose, secret: &str) -> Result<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {cols} FROM account_links l JOIN users u ON u.id = l.user_id
         WHERE l.token_hash = $1 AND l.purpose = $2 AND l.used_at IS NULL AND l.revoked_at IS NULL
           AND l.expires_at > $3",
        cols = prefixed_user_columns("u")
    ))
    .bind(hash_token(secret))
    .bind(purpose.as_str())
    .bind(now_ms())
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Marks a live link used, in `tx`, and revokes the user's other live links of `purpose` (one
/// spent link ends them all); the user id if it was live (and is now spent).
///
/// The user's row is locked first (PostgreSQL), the same lock `renew_link` takes, so two links
/// of one user spent at once take turns: the second finds itself revoked by the first.
async fn spend_link(
    store: &Store,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    purpose: LinkPurpose,
    secret: &str,
) -> Result<Option<i64>> {
    let hash = hash_token(secret);
    let now = now_ms();
    let owner: Option<i64> = sqlx::query("SELECT user_id FROM account_links WHERE token_hash = $1")
        .bind(&hash)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get("user_id"))
        .transpose()?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    sqlx::query(&format!(
        "SELECT id FROM users WHERE id = $1{}",
        crate::dialect::for_update(store.backend())
    ))
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?;
    let n = sqlx::query(
        "UPDATE account_links SET used_at = $1
         WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND revoked_at IS NULL
           AND expires_at > $1",
    )
    .bind(now)
    .bind(&hash)
    .bind(purpose.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE account_links SET revoked_at = $1
         WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(owner)
    .bind(purpose.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(Some(owner))
}

async fn user_in_tx(tx: &mut sqlx::Transaction<'static, sqlx::Any>, id: i64) -> Result<User> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    user_from_row(&row)
}

/// Accepts an invitation: spends the link (and revokes any other), sets the name and password,
/// and makes the user active, in one transaction; `None` (nothing changed) when the user has
/// joined already. `None` if the link is not live (unknown, used, revoked, expired).
pub async fn accept_invitation(
    store: &Store,
    secret: &str,
    name: &str,
    password: &str,
) -> Result<Option<User>> {
    let hash = hash_off_thread(password).await?;
    let mut tx = store.begin_write().await?;
    let Some(user_id) = spend_link(store, &mut tx, LinkPurpose::Invite, secret).await? else {
        return Ok(None);
    };
    let joined = sqlx::query(
        "UPDATE users SET name = $1, password_hash = $2, status = 'active' WHERE id = $3 AND status = 'invited'",
    )
    .bind(name)
    .bind(&hash)
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if joined == 0 {
        // Joined already (through another live link): this link signs no one in. Dropping the
        // transaction rolls back the spend.
        return Ok(None);
    }
    let user = user_in_tx(&mut tx, user_id).await?;
    let event = events::publish(
        "user.joined",
        None,
        Some(user_id.to_string()),
        &json!({ "email": user.email }),
    );
    events::publish_in_tx(store, &mut tx, &[event]).await?;
    crate::commit_audited(tx).await?;
    Ok(Some(user))
}

/// Sets a new password through a reset link: spends it (and revokes the user's other reset
/// links), sets the password, ends every session of the user and revokes their API tokens and
/// calendar feed address, in one transaction. `None` if the link is not live.
pub async fn reset_password(store: &Store, secret: &str, password: &str) -> Result<Option<User>> {
    let hash = hash_off_thread(password).await?;
    let mut tx = store.begin_write().await?;
    let Some(user_id) = spend_link(store, &mut tx, LinkPurpose::Reset, secret).await? else {
        return Ok(None);
    };
    let set =
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND status = 'active'")
            .bind(&hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if set == 0 {
        return Ok(None);
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    // The calendar feed address is a credential too: a reset (lost or stolen password) ends it.
    sqlx::query("DELETE FROM calendar_feed_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    // The user's API tokens too: a reset is what someone does who thinks the account was
    // taken over, and a token made by the intruder must not outlive it.
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let user = user_in_tx(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(Some(user))
}

/// The active user with this email, if any.
pub async fn active_user_by_email(store: &Store, email: &str) -> Result<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND status = 'active'"
    ))
    .bind(email.trim().to_lowercase())
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// When the user's newest live link of `purpose` was made, if one is live (a reset is not
/// emailed again within a minute of the last: one address cannot be flooded).
pub async fn newest_live_link(
    store: &Store,
    purpose: LinkPurpose,
    user_id: i64,
) -> Result<Option<i64>> {
    Ok(sqlx::query(
        "SELECT MAX(created_at) AS at FROM account_links
         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now_ms())
    .fetch_one(store.pool())
    .await?
    .try_get("at")?)
}

/// Whether `password` is the user's current password (checked off the async workers).
pub async fn password_matches(store: &Store, user_id: i64, password: &str) -> Result<bool> {
    let hash: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound)?
        .try_get("password_hash")?;
    if hash.is_empty() {
        return Ok(false);
    }
    let _turn = crate::tenancy::argon2_turn().await;
    let password = password.to_string();
    Ok(
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false),
    )
}

/// Sets a user's password and ends their other sessions (all but the one whose cookie value is
/// `keep_session`), their calendar feed address and any live reset link, in one transaction.
pub async fn change_password(
    store: &Store,
    user_id: i64,
    password: &str,
    keep_session: Option<&str>,
) -> Result<()> {
    let hash = hash_off_thread(password).await?;
    let keep = keep_session.map(hash_token).unwrap_or_default();
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND status = 'active'")
        .bind(&hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
        .bind(user_id)
        .bind(&keep)
        .execute(&mut *tx)
        .await?;
    // The calendar feed address reads the user's shifts without a session: a password change
    // ends it like the other sessions (a new one is a click on /account).
    sqlx::query("DELETE FROM calendar_feed_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE account_links SET revoked_at = $1
         WHERE user_id = $2 AND purpose = 'reset' AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    crate::commit_audited(tx).await?;
    Ok(())
}

/// One of a user's sessions as they may see it. `id` is the SHA-256 of the cookie value (what
/// the table keys on): it names the session without being able to sign in as it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Stable id (hash of the cookie value).
    pub id: String,
    /// Started, ms.
    pub created_at: i64,
    /// Ends, ms.
    pub expires_at: i64,
}

/// A user's live sessions, newest first.
pub async fn list_sessions(store: &Store, user_id: i64) -> Result<Vec<SessionInfo>> {
    let rows = sqlx::query(
        "SELECT id_hash, created_at, expires_at FROM sessions
         WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC LIMIT 1000",
    )
    .bind(user_id)
    .bind(now_ms())
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SessionInfo {
                id: r.try_get("id_hash")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .collect()
}

/// Ends one of the user's own sessions by its id; NotFound if it is not theirs.
pub async fn revoke_session(store: &Store, user_id: i64, id: &str) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("DELETE FROM sessions WHERE id_hash = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await
}

/// The stored value of the installation-wide setting `name`, if set.
pub async fn setting(store: &Store, name: &str) -> Result<Option<Json>> {
    let row = sqlx::query("SELECT value FROM server_settings WHERE name = $1")
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| r.json("value")).transpose()
}

/// Writes the `server_settings` row `name` with the caller's connection (or transaction).
pub(crate) async fn upsert_setting_in(
    conn: &mut crate::Conn,
    name: &str,
    value: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO server_settings (name, value, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the installation-wide setting `name` (`None` removes it), with the request's audit
/// entry in the same transaction, its details the value before and after (secrets masked).
pub async fn put_setting(store: &Store, name: &str, value: Option<&Json>) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let before = sqlx::query("SELECT value FROM server_settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.json("value"))
        .transpose()?
        .unwrap_or(Json::Null);
    match value {
        Some(v) => upsert_setting_in(&mut tx, name, &v.to_string()).await?,
        None => {
            sqlx::query("DELETE FROM server_settings WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
    }
    let after = value.cloned().unwrap_or(Json::Null);
    crate::audit::record_pending_change_in(&mut tx, &before, &after).await?;
    tx.commit().await?;
    Ok(())
}
